//! Every shipped alert rule, end to end with real processes: redis-server, the simulated fleet
//! (four regions, a node each), four probers (one per region, each probing from its own
//! loopback address and observing its node's pods through the simulator's Kubernetes API), the
//! aggregator evaluating the rules on Redis, and the query service answering `/api/v1/alerts`
//! and Alertmanager's `/api/v2/alerts` (read with the real `amtool` where it is installed).
//!
//! The rules are the shipped `config/rules.yaml` with every `for` shortened to 5 s and the
//! 5-minute windows to 1 minute, so the scenario takes minutes, not a quarter of an hour; the
//! expressions, scopes, thresholds and labels are the shipped ones. (`scripts/bench.sh detect`
//! measures the shipped timing itself.)
//!
//! Phase 1 injects one fault per rule at once, each on its own target, and waits until every
//! rule fires; phase 2 clears them and waits until each resolves (the burn-rate alerts resolve
//! only as their windows, of hours, move on: the engine's table test covers them over simulated
//! time); phase 3 cuts one prober off and kills another.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure};
use mixmon_integration_tests::alerting::{alerts, send, source_ip, test_rules, wait_fired, wait_for, Fleet, REGIONS};
use mixmon_integration_tests::start;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_rule_fires_and_resolves_against_the_simulator() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(Some(test_rules()?), 1).await?;
    let outcome = scenario(&mut fleet).await;
    if let Err(error) = outcome {
        bail!("{error:#}\n{}", fleet.logs());
    }
    Ok(())
}

async fn scenario(fleet: &mut Fleet) -> anyhow::Result<()> {
    let (admin, query_url) = (fleet.admin.clone(), fleet.query_url.clone());
    let probers: Vec<String> = REGIONS.iter().map(|r| format!("prober-{r}")).collect();
    let joined: Vec<(&str, &str)> = probers.iter().map(|p| ("ProberJoined", p.as_str())).collect();
    wait_for(&query_url, &joined, "firing", Duration::from_secs(60)).await?;
    // Healthy first: the mixer's figures are in before any fault, so a low rate is a drop.
    tokio::time::sleep(Duration::from_secs(15)).await;

    // Phase 1: one fault per rule, each on its own target.
    let phase1_at = mixmon_integration_tests::unix_ms();
    send("PUT", &format!("{admin}/faults/endpoints/edge"), &json!({"down": true})).await?;
    send("PUT", &format!("{admin}/faults/regions/eu-west"), &json!({"down": true})).await?;
    send("PUT", &format!("{admin}/faults/endpoints/us-east"), &json!({"latency_ms": 600})).await?;
    send("PUT", &format!("{admin}/faults/regions/us-west"), &json!({"error_share": 0.05})).await?;
    send("PUT", &format!("{admin}/faults/regions/us-east"), &json!({"traffic_factor": 0.01, "peak_db": -1.0})).await?;
    send("PUT", &format!("{admin}/faults/nodes/node-ap-0"), &json!({"disk_used_ratio": 0.9})).await?;
    send("PUT", &format!("{admin}/faults/pods/mixer-ap-0"), &json!({"memory_pressure": 0.9})).await?;
    // The ap prober reaches every front but `api`: a bad path from one region.
    send("PUT", &format!("{admin}/faults/clients/{}", source_ip(3)), &json!({"cut": true, "fronts": ["api"]})).await?;
    for _ in 0..4 {
        send("POST", &format!("{admin}/pods/mixer-ap-1/restart"), &json!({})).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let phase1 = [
        ("ServiceDown", "edge"),
        ("RegionalFailure", "eu-west"),
        ("HighLatency", "us-east"),
        ("HighLatencyP99", "us-east"),
        ("HighErrorRate", "us-west"),
        ("LowThroughput", "us-east"),
        ("AudioPeak", "us-east"),
        ("HighDiskUsage", "node-ap-0"),
        ("HighMemory", "mixer-ap-0"),
        ("PodRestarts", "mixer-ap-1"),
        ("ProbePathDegraded", "api"),
        ("ErrorBudgetBurnFast", "edge"),
        ("ErrorBudgetBurnSlow", "edge"),
    ];
    wait_fired(&query_url, &phase1, phase1_at, Duration::from_secs(240)).await?;
    amtool_lists(&query_url, &["ServiceDown", "RegionalFailure", "HighDiskUsage"]).await?;
    amtool_silences(&query_url).await?;

    // Phase 2: everything cleared; each resolves (the burn rates as their windows move on).
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    let resolving: Vec<(&str, &str)> = phase1.iter().copied().filter(|(n, _)| !n.starts_with("ErrorBudget")).collect();
    wait_for(&query_url, &resolving, "not firing", Duration::from_secs(240)).await?;
    wait_for(&query_url, &[("CheckRecovered", "edge")], "firing", Duration::from_secs(10)).await?;

    // Phase 3: the us-west prober cut off from everything; the ap prober killed.
    let phase3_at = mixmon_integration_tests::unix_ms();
    send("PUT", &format!("{admin}/faults/clients/{}", source_ip(0)), &json!({"cut": true})).await?;
    fleet.probers[3].terminate()?;
    let phase3 = [("ProberIsolated", "prober-us-west"), ("ProberDown", "prober-ap")];
    wait_fired(&query_url, &phase3, phase3_at, Duration::from_secs(90)).await?;
    let live = alerts(&query_url).await?;
    let pages: BTreeSet<String> = live
        .iter()
        .filter(|(name, _, state)| state == "firing" && ["ServiceDown", "RegionalFailure"].contains(&name.as_str()))
        .map(|(n, k, _)| format!("{n}{{{k}}}"))
        .collect();
    ensure!(pages.is_empty(), "a prober cut off or gone paged: {pages:?}");
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    let config = fleet.prober_configs[3].display().to_string();
    fleet.probers[3] = start("mixmon-prober", &["--config".into(), config])?;
    wait_for(&query_url, &phase3, "not firing", Duration::from_secs(60)).await?;
    Ok(())
}

/// `amtool alert query` against the query service lists `names` (skipped, loudly, where
/// amtool is not installed; `scripts/test.sh` installs it).
async fn amtool_lists(query_url: &str, names: &[&str]) -> anyhow::Result<()> {
    let amtool = match std::process::Command::new("amtool").arg("--version").output() {
        Ok(_) => "amtool",
        Err(_) if std::env::var_os("REQUIRE_AMTOOL").is_some() => bail!("amtool is not installed"),
        Err(_) => {
            eprintln!("SKIPPED amtool check: amtool is not installed (scripts/test.sh installs it)");
            return Ok(());
        }
    };
    let output = tokio::process::Command::new(amtool)
        .args([&format!("--alertmanager.url={query_url}"), "alert", "query", "-o", "extended"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "amtool failed: {} {}", text, String::from_utf8_lossy(&output.stderr));
    for name in names {
        ensure!(text.contains(name), "amtool alert query does not list {name}:\n{text}");
    }
    Ok(())
}

async fn amtool(query_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("amtool")
        .arg(format!("--alertmanager.url={query_url}"))
        .args(args)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    ensure!(output.status.success(), "amtool {args:?} failed: {text} {}", String::from_utf8_lossy(&output.stderr));
    Ok(text)
}

/// Whether the firing HighDiskUsage alert is silenced (by `id`, when given).
async fn disk_silenced(query_url: &str) -> anyhow::Result<Vec<String>> {
    let response =
        mixmon_testkit::http::get(&format!("{query_url}/api/v2/alerts?filter=alertname%3D%22HighDiskUsage%22")).await?;
    let body: serde_json::Value = response.json()?;
    let alert = body.as_array().and_then(|a| a.first()).cloned().unwrap_or_default();
    Ok(alert["status"]["silencedBy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect())
}

/// `amtool silence add` mutes the firing HighDiskUsage alert, `query` lists the silence,
/// `expire` lifts it (skipped, loudly, where amtool is not installed).
async fn amtool_silences(query_url: &str) -> anyhow::Result<()> {
    if std::process::Command::new("amtool").arg("--version").output().is_err() {
        ensure!(std::env::var_os("REQUIRE_AMTOOL").is_none(), "amtool is not installed");
        eprintln!("SKIPPED amtool silences: amtool is not installed (scripts/test.sh installs it)");
        return Ok(());
    }
    let id = amtool(
        query_url,
        &["silence", "add", "alertname=HighDiskUsage", "--author=sre", "--comment=disk swap", "--duration=1h"],
    )
    .await?
    .trim()
    .to_string();
    ensure!(id.len() == 36, "amtool silence add printed {id:?}, not an id");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while disk_silenced(query_url).await? != [id.clone()] {
        ensure!(std::time::Instant::now() < deadline, "HighDiskUsage not silenced by {id} within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = amtool(query_url, &["silence", "query", "-q"]).await?;
    ensure!(listed.lines().any(|l| l.trim() == id), "amtool silence query -q does not list {id}: {listed}");
    amtool(query_url, &["silence", "expire", &id]).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !disk_silenced(query_url).await?.is_empty() {
        ensure!(std::time::Instant::now() < deadline, "HighDiskUsage still silenced 10 s after amtool silence expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
