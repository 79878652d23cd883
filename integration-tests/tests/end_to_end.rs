//! The whole path with real processes: redis-server, the aggregator on Redis, the query
//! service, two probers in different regions and the simulated fleet. Faults are injected in
//! the simulator, and `POST /query` must show exactly what the probers measured (their
//! ground-truth logs) and what was injected.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context};
use mixmon_integration_tests::{
    exact_quantile, read_ground_truth, start, start_aggregator, start_query, start_simulator, unix_ms, write, Truth,
};
use mixmon_testkit::{http, ProberConfig, RedisServer};
use serde_json::{json, Value};

const MINUTE_MS: i64 = 60_000;

async fn put_json(url: &str, body: &Value) -> anyhow::Result<()> {
    let body = serde_json::to_vec(body)?;
    let response = http::request("PUT", url, &[("Content-Type", "application/json")], Some(&body)).await?;
    ensure!(response.status == 200, "PUT {url}: {} {}", response.status, response.text());
    Ok(())
}

fn pod_address(sim: &Value, name: &str) -> anyhow::Result<String> {
    sim["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["name"] == name))
        .and_then(|p| p["addr"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no pod {name} in {sim}"))
}

/// The value at `minute_ms` of each series of one target, keyed by (endpoint, region).
fn points_at(response: &Value, ref_id: &str, minute_ms: i64) -> BTreeMap<(String, String), Option<f64>> {
    let mut points = BTreeMap::new();
    for series in response.as_array().into_iter().flatten().filter(|s| s["refId"] == ref_id) {
        let key = (
            series["tags"]["endpoint"].as_str().unwrap_or_default().to_string(),
            series["tags"]["region"].as_str().unwrap_or_default().to_string(),
        );
        let value = series["datapoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p[1].as_i64() == Some(minute_ms))
            .and_then(|p| p[0].as_f64());
        points.insert(key, value);
    }
    points
}

struct Expected {
    total: usize,
    successes: usize,
    p95_ms: Option<f64>,
}

fn expected_for_minute(truth: &[Truth], minute_ms: i64) -> BTreeMap<(String, String), Expected> {
    let mut grouped: BTreeMap<(String, String), Vec<&Truth>> = BTreeMap::new();
    for t in truth.iter().filter(|t| (minute_ms..minute_ms + MINUTE_MS).contains(&t.started_at_ms)) {
        grouped.entry((t.check.clone(), t.region.clone())).or_default().push(t);
    }
    grouped
        .into_iter()
        .map(|(key, results)| {
            let mut latencies: Vec<f64> =
                results.iter().filter(|t| t.success).map(|t| t.duration_us as f64 / 1_000.0).collect();
            let expected = Expected {
                total: results.len(),
                successes: results.iter().filter(|t| t.success).count(),
                p95_ms: exact_quantile(&mut latencies, 0.95),
            };
            (key, expected)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_show_in_the_datasource_as_measured() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let redis = RedisServer::start()?;

    // The fleet, with one pod down 5 s of every 20 s (a quarter of each minute) and another
    // holding every answer 50 ms.
    let sim = start_simulator(dir.path(), "us-west=2,eu-west=2", &[]).await?;
    let admin = format!("http://{}", sim.address("admin")?);
    put_json(&format!("{admin}/faults/pods/mixer-us-west-0"), &json!({"down_schedule": {"period_s": 20, "down_s": 5}}))
        .await?;
    put_json(&format!("{admin}/faults/pods/mixer-eu-west-0"), &json!({"latency_ms": 50})).await?;

    let aggregator_config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            r#"
            listen = "127.0.0.1:0"
            [store]
            kind = "redis"
            url = "{redis}"
            [defaults]
            interval_s = 1
            timeout_ms = 1000
            [[checks]]
            id = "flappy"
            url = "http://{flappy}/health"
            [[checks]]
            id = "slow"
            url = "http://{slow}/health"
            "#,
            redis = redis.url(),
            flappy = pod_address(&sim.ready, "mixer-us-west-0")?,
            slow = pod_address(&sim.ready, "mixer-eu-west-0")?,
        ),
    )?;
    let (aggregator, grpc) = start_aggregator(dir.path(), &aggregator_config).await?;
    let (_query, query_url) = start_query(dir.path(), &redis.url()).await?;

    let mut probers = Vec::new();
    for region in ["us-west", "eu-west"] {
        let config = ProberConfig::new(region, &[format!("http://{grpc}")])
            .buffer_dir(Path::new(&path("wal")))
            .ground_truth_file(Path::new(&path(&format!("truth-{region}.jsonl"))))
            .write(dir.path(), &format!("prober-{region}.toml"))?;
        probers.push(start("mixmon-prober", &["--config".into(), config.display().to_string()])?);
    }

    // The first minute that starts after the probers surely run, then until it is over.
    let minute_ms = (unix_ms() + 5_000).div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    let wait_ms = (minute_ms + MINUTE_MS + 1_000 - unix_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;

    let request = json!({
        "range": {"from": minute_ms, "to": minute_ms + MINUTE_MS},
        "intervalMs": 60_000,
        "maxDataPoints": 10,
        "targets": [
            {"refId": "N", "target": "probes", "payload": {"endpoint": ["flappy", "slow"]}},
            {"refId": "S", "target": "success_rate", "payload": {"endpoint": ["flappy", "slow"]}},
            {"refId": "P", "target": "latency_p95", "payload": {"endpoint": "slow"}},
        ],
    });
    // Delivery takes a moment after the minute ends: wait until every result the probers
    // logged for the minute is counted, neither fewer (lost) nor more (counted twice).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (truth, last) = loop {
        let mut truth = Vec::new();
        for region in ["us-west", "eu-west"] {
            truth.extend(read_ground_truth(&dir.path().join(format!("truth-{region}.jsonl")))?);
        }
        let (status, response) = http::post_json(&format!("{query_url}/query"), &request, None).await?;
        ensure!(status == 200, "query answered {status}: {response}");
        let counts = points_at(&response, "N", minute_ms);
        let expected = expected_for_minute(&truth, minute_ms);
        let matches = expected.len() == 4
            && expected.iter().all(|(key, e)| counts.get(key).copied().flatten() == Some(e.total as f64));
        if matches {
            break (truth, response);
        }
        if std::time::Instant::now() > deadline {
            let wanted: BTreeMap<_, _> = expected.iter().map(|(k, e)| (k.clone(), e.total)).collect();
            anyhow::bail!(
                "query counts {counts:?} never matched the ground truth {wanted:?}\naggregator log:\n{}",
                aggregator.process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let expected = expected_for_minute(&truth, minute_ms);

    let rates = points_at(&last, "S", minute_ms);
    for ((check, region), e) in &expected {
        let rate = rates.get(&(check.clone(), region.clone())).copied().flatten().context("missing success rate")?;
        let truth_rate = e.successes as f64 / e.total as f64;
        ensure!((rate - truth_rate).abs() < 1e-9, "{check}/{region}: success rate {rate} but measured {truth_rate}");
        // One probe a second: about 60 a minute (more when a loaded machine makes the
        // scheduler catch up), of which the injected quarter fails, give or take one probe per
        // down window (three a minute) that straddles its edge. The exact figure is the check
        // above against what the probers measured.
        let injected = if check == "flappy" { 0.75 } else { 1.0 };
        println!(
            "{check}/{region}: success rate {rate:.4} (measured {truth_rate:.4}, injected {injected}) over {} probes",
            e.total
        );
        ensure!(
            (rate - injected).abs() <= 3.0 / e.total as f64,
            "{check}/{region}: success rate {rate}, injected {injected} over {} probes",
            e.total
        );
    }

    let p95 = points_at(&last, "P", minute_ms);
    for region in ["us-west", "eu-west"] {
        let key = ("slow".to_string(), region.to_string());
        let shown = p95.get(&key).copied().flatten().context("missing p95")?;
        let exact = expected[&key].p95_ms.context("no successful probes")?;
        ensure!(exact >= 50.0, "the injected 50 ms must show in the truth: {exact}");
        println!(
            "slow/{region}: p95 {shown:.3} ms, exact {exact:.3} ms, error {:.3} %",
            (shown - exact).abs() / exact * 100.0
        );
        // The promise: within 1 % of the exact quantile (the sketch's own bound is 0.75 %).
        ensure!(((shown - exact) / exact).abs() <= 0.01, "{region}: p95 {shown} ms, exact {exact} ms");
    }

    for mut prober in probers {
        prober.terminate()?;
        let status = prober.wait_exit(Duration::from_secs(15))?;
        ensure!(status.success(), "prober exited with {status}: {}", prober.log_tail(20));
    }
    let mut aggregator = aggregator;
    aggregator.process.terminate()?;
    let status = aggregator.process.wait_exit(Duration::from_secs(15))?;
    ensure!(status.success(), "aggregator exited with {status}");
    let log = aggregator.process.log_tail(200);
    ensure!(!log.contains("panicked"), "aggregator log shows a panic:\n{log}");
    Ok(())
}
