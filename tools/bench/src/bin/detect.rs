//! `scripts/bench.sh detect`: how fast the shipped rules fire and resolve, from real processes
//! (redis-server and the debug builds of the simulator, two aggregator replicas, the query
//! service and four probers, as the fault benchmarks use; 5 s check intervals) and the shipped `config/rules.yaml` unchanged, as read
//! on Alertmanager's API (`GET /api/v2/alerts`) of the query service.
//!
//! Prints, each the median of `RUNS` (default 3) where it is timed:
//! `detect_s` (the `edge` endpoint killed in the simulator to ServiceDown{edge} listed),
//! `resolve_s` (the fault cleared to ServiceDown{edge} gone), `false_pages_region_cut` (one
//! region's probers cut off from every endpoint for 90 s: critical alerts that fired during
//! the cut and the minute after it),
//! `duplicate_fires_restart` (the evaluating aggregator killed while ServiceDown fires and a
//! replica taking over: extra transitions to firing recorded), `leader_failover_s` (the kill
//! to the replica holding the evaluator lease), `rule_eval_p50_ms` and `rule_eval_p99_ms`
//! (one evaluation of every shipped rule over the fleet's 6 endpoints x 4 regions: gathering
//! from Redis and judging, in this process, 200 times).
//!
//! Usage: `detect [RUNS]`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_aggregator::alerting::counts::CountCache;
use mixmon_aggregator::alerting::engine::{relation_inhibits, Engine};
use mixmon_aggregator::alerting::gather::gather;
use mixmon_integration_tests::alerting::{send, source_ip, Fleet};
use mixmon_integration_tests::unix_ms;
use mixmon_testkit::http;
use serde_json::{json, Value};

const POLL: Duration = Duration::from_millis(100);

/// Whether `/api/v2/alerts` lists `alertname` for `endpoint`.
async fn listed(query_url: &str, alertname: &str, endpoint: &str) -> anyhow::Result<bool> {
    let response = http::get(&format!("{query_url}/api/v2/alerts")).await?;
    let alerts: Value = response.json()?;
    Ok(alerts.as_array().into_iter().flatten().any(|a| {
        a["labels"]["alertname"].as_str() == Some(alertname) && a["labels"]["endpoint"].as_str() == Some(endpoint)
    }))
}

/// Seconds from now until `listed` is `want`.
async fn until_listed(query_url: &str, want: bool, within: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    while listed(query_url, "ServiceDown", "edge").await? != want {
        if start.elapsed() > within {
            bail!("ServiceDown{{edge}} not {} within {within:?}", if want { "listed" } else { "gone" });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Transitions in the history since `from_ms`, as (alertname, endpoint, severity, to).
async fn history(query_url: &str, from_ms: i64) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let url = format!("{query_url}/api/v1/alerts/history?from={from_ms}&to={}&limit=10000", unix_ms() + 1);
    let response = http::get(&url).await?;
    let body: Value = response.json().with_context(|| format!("history: {}", response.text()))?;
    Ok(body
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let label = |k: &str| t["labels"][k].as_str().unwrap_or_default().to_string();
            (label("alertname"), label("endpoint"), label("severity"), t["to"].as_str().unwrap_or_default().to_string())
        })
        .collect())
}

fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn lease_holder(port: u16) -> anyhow::Result<String> {
    redis_cli(port, &["HGET", "mixmon:v1:alerts:{alerts}:lease", "holder"])
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(3).max(1);
    let mut fleet = Fleet::start(None, 2).await?;
    match bench(&mut fleet, runs).await {
        Ok(()) => Ok(()),
        Err(error) => bail!("{error:#}\n{}", fleet.logs()),
    }
}

async fn bench(fleet: &mut Fleet, runs: usize) -> anyhow::Result<()> {
    let (admin, query_url) = (fleet.admin.clone(), fleet.query_url.clone());
    // Every prober reporting, and a minute of healthy history.
    tokio::time::sleep(Duration::from_secs(60)).await;

    let mut detect = Vec::new();
    let mut resolve = Vec::new();
    for _ in 0..runs {
        send("PUT", &format!("{admin}/faults/endpoints/edge"), &json!({"down": true})).await?;
        detect.push(until_listed(&query_url, true, Duration::from_secs(120)).await?);
        send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
        resolve.push(until_listed(&query_url, false, Duration::from_secs(60)).await?);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    // One region's probers cut off from everything for 90 s, then let through again: nothing
    // critical may fire, during the cut nor in the minute after it (when the cut-off probers'
    // stale failures and their minutes of failed results could still count).
    let cut_at = unix_ms();
    send("PUT", &format!("{admin}/faults/clients/{}", source_ip(1)), &json!({"cut": true})).await?;
    tokio::time::sleep(Duration::from_secs(90)).await;
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let false_pages = history(&query_url, cut_at)
        .await?
        .iter()
        .filter(|(_, _, severity, to)| severity == "critical" && to == "firing")
        .count();

    // The leader killed while ServiceDown fires: the replica takes over, nothing re-fires.
    let episode_at = unix_ms();
    send("PUT", &format!("{admin}/faults/endpoints/edge"), &json!({"down": true})).await?;
    until_listed(&query_url, true, Duration::from_secs(120)).await?;
    let port = fleet.redis.port();
    let holder = lease_holder(port)?;
    let leader = fleet
        .aggregators
        .iter()
        .position(|a| holder.ends_with(&format!(":{}", a.process.pid())))
        .with_context(|| format!("no aggregator holds the lease {holder:?}"))?;
    let killed_at = Instant::now();
    fleet.aggregators[leader].process.kill();
    let failover_s = loop {
        let now = lease_holder(port)?;
        if !now.is_empty() && now != holder {
            break killed_at.elapsed().as_secs_f64();
        }
        if killed_at.elapsed() > Duration::from_secs(30) {
            bail!("no replica took the lease within 30 s (still {now:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fires = history(&query_url, episode_at)
        .await?
        .iter()
        .filter(|(name, endpoint, _, to)| name == "ServiceDown" && endpoint == "edge" && to == "firing")
        .count();
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;

    // One evaluation of every shipped rule, in this process, on the fleet's Redis.
    let store = mixmon_store::RedisStore::connect(mixmon_store::RedisStoreConfig::new(fleet.redis.url())).await?;
    let (_, catalogue, _) = mixmon_aggregator::reload::load(&fleet.aggregator_config)?;
    let rules = mixmon_rules::shipped()?;
    let inhibits = relation_inhibits(&rules);
    let mut engine = Engine::new(Vec::new());
    let mut counts = CountCache::default();
    gather(&store, &catalogue, &rules, &mut counts, unix_ms()).await?;
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let inputs = gather(&store, &catalogue, &rules, &mut counts, unix_ms()).await?;
        let _ = engine.evaluate(&rules, &inhibits, &inputs);
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);

    println!("runs: {runs}");
    println!("detect_s: {:.1}", median(&mut detect));
    println!("detect_s_all: {}", detect.iter().map(|d| format!("{d:.1}")).collect::<Vec<_>>().join(" "));
    println!("resolve_s: {:.1}", median(&mut resolve));
    println!("resolve_s_all: {}", resolve.iter().map(|d| format!("{d:.1}")).collect::<Vec<_>>().join(" "));
    println!("false_pages_region_cut: {false_pages}");
    println!("duplicate_fires_restart: {}", fires.saturating_sub(1));
    println!("leader_failover_s: {failover_s:.1}");
    println!("rule_eval_p50_ms: {:.2}", times[times.len() / 2]);
    println!("rule_eval_p99_ms: {:.2}", times[times.len() * 99 / 100]);
    println!("rule_eval_rules: {}", rules.rules.len());
    println!("rule_eval_series: {}", catalogue.checks.len() * 4);
    Ok(())
}
