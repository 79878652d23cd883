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
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_with_ready_file, write};
use mixmon_testkit::{http, ChildProcess, RedisServer};
use serde_json::{json, Value};

const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];

fn source_ip(region_index: usize) -> String {
    format!("127.0.0.{}", region_index + 2)
}

async fn send(method: &str, url: &str, body: &Value) -> anyhow::Result<()> {
    let body = serde_json::to_vec(body)?;
    let response = http::request(method, url, &[("Content-Type", "application/json")], Some(&body)).await?;
    ensure!((200..300).contains(&response.status), "{method} {url}: {} {}", response.status, response.text());
    Ok(())
}

/// The shipped rules, timed for a test: `for` 5 s, 5-minute windows 1 minute.
fn test_rules() -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.trim_start().starts_with("for:") {
            format!("{}for: 5s", &line[..line.len() - line.trim_start().len()])
        } else {
            line.replace("[5m]", "[1m]")
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// `(alertname, key label, state)` of every live alert.
async fn alerts(query_url: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let response = http::get(&format!("{query_url}/api/v1/alerts")).await?;
    ensure!(response.status == 200, "GET /api/v1/alerts: {} {}", response.status, response.text());
    let body: Value = response.json()?;
    let list = body.as_array().context("alerts: not a list")?;
    Ok(list
        .iter()
        .map(|a| {
            let labels = &a["labels"];
            let key = ["endpoint", "node", "pod", "prober", "region"]
                .iter()
                .find_map(|k| labels[*k].as_str())
                .unwrap_or_default()
                .to_string();
            let name = labels["alertname"].as_str().unwrap_or_default().to_string();
            (name, key, a["state"].as_str().unwrap_or_default().to_string())
        })
        .collect())
}

/// Waits until every `(alertname, key)` of `want` is in `state` (or, for "gone", not firing).
async fn wait_for(query_url: &str, want: &[(&str, &str)], state: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let live = alerts(query_url).await?;
        let missing: Vec<String> = want
            .iter()
            .filter(|(name, key)| {
                let matching = live.iter().filter(|(n, k, _)| n == name && k == key);
                match state {
                    "not firing" => matching.clone().any(|(_, _, s)| s == "firing"),
                    _ => !matching.clone().any(|(_, _, s)| s == state),
                }
            })
            .map(|(name, key)| format!("{name}{{{key}}}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not {state} within {within:?}: {missing:?}; live alerts: {live:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Fleet {
    _redis: RedisServer,
    _dir: tempfile::TempDir,
    sim: mixmon_integration_tests::Service,
    aggregator: mixmon_integration_tests::Service,
    query: mixmon_integration_tests::Service,
    probers: Vec<ChildProcess>,
    prober_configs: Vec<std::path::PathBuf>,
    admin: String,
    query_url: String,
}

impl Fleet {
    async fn start() -> anyhow::Result<Fleet> {
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name).display().to_string();
        let redis = RedisServer::start()?;
        let sim = start_with_ready_file(
            "mixmon-mixer-sim",
            &[
                "--regions",
                "us-west=2,us-east=2,eu-west=2,ap=2",
                "--nodes-per-region",
                "1",
                "--admin-addr",
                "127.0.0.1:0",
                "--addr-file",
                &path("sim.json"),
            ]
            .map(String::from),
            &dir.path().join("sim.json"),
        )
        .await?;
        let admin = format!("http://{}", sim.address("admin")?);
        let endpoints = sim.ready["endpoints"].as_object().context("the simulator lists no endpoints")?.clone();
        let rules = write(dir.path(), "rules.yaml", &test_rules()?)?;
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nregions = {regions:?}\n[store]\nkind = \"redis\"\nurl = \"{redis}\"\n\
             [alerting]\nrules_file = \"{rules}\"\n[defaults]\ninterval_s = 5\ntimeout_ms = 1000\n",
            regions = REGIONS,
            redis = redis.url(),
            rules = rules.display(),
        );
        for (name, addr) in &endpoints {
            let addr = addr.as_str().context("endpoint address")?;
            config.push_str(&format!("[[checks]]\nid = \"{name}\"\nurl = \"http://{addr}/health\"\n"));
            if REGIONS.contains(&name.as_str()) {
                config.push_str(&format!("labels = {{ region = \"{name}\" }}\n"));
            }
        }
        let config = write(dir.path(), "aggregator.toml", &config)?;
        let (aggregator, grpc) = start_aggregator(dir.path(), &config).await?;
        let (query, query_url) = start_query(dir.path(), &redis.url()).await?;
        let mut probers = Vec::new();
        let mut prober_configs = Vec::new();
        for (i, region) in REGIONS.iter().enumerate() {
            let config = write(
                dir.path(),
                &format!("prober-{region}.toml"),
                &format!(
                    "[identity]\nid = \"prober-{region}\"\nregion = \"{region}\"\nnode = \"node-{region}-0\"\n\
                     [aggregator]\naddresses = [\"http://{grpc}\"]\n[buffer]\ndir = \"{wal}\"\n\
                     [probe]\nsource_ip = \"{ip}\"\n\
                     [scrape]\ninterval_ms = 2000\ntimeout_ms = 1000\n\
                     [scrape.kubernetes]\napi_url = \"{admin}/k8s\"\ndiscovery_interval_ms = 2000\n\
                     [pods]\ninterval_ms = 2000\n[node]\ninterval_ms = 2000\nsource = \"kubelet\"\n",
                    wal = path(&format!("wal-{region}")),
                    ip = source_ip(i),
                ),
            )?;
            probers.push(start("mixmon-prober", &["--config".into(), config.display().to_string()])?);
            prober_configs.push(config);
        }
        Ok(Fleet { _redis: redis, _dir: dir, sim, aggregator, query, probers, prober_configs, admin, query_url })
    }

    fn logs(&mut self) -> String {
        let probers: Vec<String> = self.probers.iter().map(|p| p.log_tail(15)).collect();
        format!(
            "--- aggregator log:\n{}\n--- query log:\n{}\n--- simulator log:\n{}\n--- prober logs:\n{}",
            self.aggregator.process.log_tail(40),
            self.query.process.log_tail(10),
            self.sim.process.log_tail(10),
            probers.join("\n")
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_rule_fires_and_resolves_against_the_simulator() -> anyhow::Result<()> {
    let mut fleet = Fleet::start().await?;
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
    wait_for(&query_url, &phase1, "firing", Duration::from_secs(240)).await?;
    amtool_lists(&query_url, &["ServiceDown", "RegionalFailure", "HighDiskUsage"]).await?;

    // Phase 2: everything cleared; each resolves (the burn rates as their windows move on).
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    let resolving: Vec<(&str, &str)> = phase1.iter().copied().filter(|(n, _)| !n.starts_with("ErrorBudget")).collect();
    wait_for(&query_url, &resolving, "not firing", Duration::from_secs(240)).await?;
    wait_for(&query_url, &[("CheckRecovered", "edge")], "firing", Duration::from_secs(10)).await?;

    // Phase 3: the us-west prober cut off from everything; the ap prober killed.
    send("PUT", &format!("{admin}/faults/clients/{}", source_ip(0)), &json!({"cut": true})).await?;
    fleet.probers[3].terminate()?;
    let phase3 = [("ProberIsolated", "prober-us-west"), ("ProberDown", "prober-ap")];
    wait_for(&query_url, &phase3, "firing", Duration::from_secs(90)).await?;
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
