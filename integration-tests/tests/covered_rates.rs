//! Rates over the time actually covered, from the first minute on. The simulator serves steady
//! traffic (6 pods of us-west on one node, `RPS_PER_POD` each); one prober scrapes them every
//! second from its start. For the five minutes after the start, every few seconds, the test
//! asks `POST /query` for `mixer_request_rate` of us-west per minute, and
//! `GET /api/v1/status/mixer` for the 5-minute rate, and every value must be within 5 % of the
//! simulated rate: the minute the prober started in, every whole minute, and the minute in
//! progress, as soon as any of them has a value. Dividing by the window's length, the first
//! minute and the minute in progress sat at a fraction of it, and the 5-minute rate climbed
//! from a fifth to all of it over five minutes.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_simulator, unix_ms, write};
use mixmon_testkit::{http, ProberConfig, RedisServer};
use serde_json::{json, Value};

const MINUTE_MS: i64 = 60_000;
const PODS: f64 = 6.0;
const RPS_PER_POD: f64 = 40.0;
const TOLERANCE: f64 = 0.05;
const WATCHED_MS: i64 = 5 * MINUTE_MS;
const NODE: &str = "node-us-west-0";

/// `(minute start ms, rate)` of every minute of us-west that has a value.
async fn minute_rates(query_url: &str, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<(i64, f64)>> {
    let request = json!({
        "range": {"from": from_ms, "to": to_ms},
        "intervalMs": MINUTE_MS,
        "maxDataPoints": 100,
        "targets": [{"refId": "A", "target": "mixer_request_rate", "payload": {"region": "us-west"}}],
    });
    let (status, response) = http::post_json(&format!("{query_url}/query"), &request, None).await?;
    ensure!(status == 200, "query answered {status}: {response}");
    let series = response.as_array().context("not a list")?;
    let Some(us_west) = series.iter().find(|s| s["tags"]["region"] == "us-west") else {
        return Ok(Vec::new());
    };
    Ok(us_west["datapoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[1].as_i64()?, p[0].as_f64()?)))
        .collect())
}

async fn status_rate(query_url: &str) -> anyhow::Result<Option<f64>> {
    let response = http::get(&format!("{query_url}/api/v1/status/mixer")).await?;
    ensure!(response.status == 200, "status answered {}: {}", response.status, response.text());
    let body: Value = response.json()?;
    Ok(body
        .as_array()
        .into_iter()
        .flatten()
        .find(|row| row["region"] == "us-west")
        .and_then(|row| row["request_rate_5m"].as_f64()))
}

fn within(rate: f64, expected: f64) -> bool {
    (rate - expected).abs() <= expected * TOLERANCE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_rate_is_true_from_the_first_minute_and_in_the_minute_in_progress() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = RedisServer::start()?;
    let sim = start_simulator(
        dir.path(),
        "us-west=6",
        &["--nodes-per-region", "1", "--rps-per-pod", &RPS_PER_POD.to_string()],
    )
    .await?;
    let admin = format!("http://{}", sim.address("admin")?);
    let front = sim.ready["endpoints"]["us-west"].as_str().context("no us-west front")?.to_string();
    let aggregator_config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            r#"
            listen = "127.0.0.1:0"
            [store]
            kind = "redis"
            url = "{redis}"
            [[checks]]
            id = "us-west-health"
            url = "http://{front}/health"
            "#,
            redis = redis.url(),
        ),
    )?;
    let (aggregator, grpc) = start_aggregator(dir.path(), &aggregator_config).await?;
    let (query_service, query_url) = start_query(dir.path(), &redis.url()).await?;
    let prober_config = ProberConfig::new("us-west", &[format!("http://{grpc}")])
        .node(NODE)
        .buffer_dir(&dir.path().join("wal"))
        .section(&format!(
            r#"
            [scrape]
            interval_ms = 1000
            timeout_ms = 800
            [scrape.kubernetes]
            api_url = "{admin}/k8s"
            label_selector = "app=ai-mixer"
            namespace = ""
            port = 8080
            path = "/metrics"
            discovery_interval_ms = 2000
            "#
        ))
        .write(dir.path(), "prober.toml")?;
    let started_ms = unix_ms();
    let mut prober = start("mixmon-prober", &["--config".into(), prober_config.display().to_string()])?;

    let outcome = watch(&query_url, started_ms).await;
    let logs = || {
        format!(
            "--- prober log:\n{}\n--- aggregator log:\n{}\n--- query log:\n{}",
            prober.log_tail(30),
            aggregator.process.log_tail(15),
            query_service.process.log_tail(15),
        )
    };
    match outcome {
        Ok(report) => eprintln!("{report}"),
        Err(error) => bail!("{error:#}\n{}", logs()),
    }
    prober.terminate()?;
    Ok(())
}

/// Looks every 3 s for five minutes; `Ok` says how many values it checked and how far the worst
/// was from the simulated rate.
async fn watch(query_url: &str, started_ms: i64) -> anyhow::Result<String> {
    let expected = PODS * RPS_PER_POD;
    let (mut checked, mut in_progress, mut first_minute, mut status_checked) = (0, 0, 0, 0);
    let mut worst: f64 = 0.0;
    let first_minute_ms = started_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    while unix_ms() < started_ms + WATCHED_MS {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = unix_ms();
        let current_ms = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        for (minute_ms, rate) in minute_rates(query_url, first_minute_ms - MINUTE_MS, now).await? {
            let offset_s = (now - minute_ms) as f64 / 1_000.0;
            ensure!(
                within(rate, expected),
                "{offset_s:.1} s after the start of minute {minute_ms} ({:.1} s after the start), its rate is \
                 {rate:.1} req/s, not within {:.0} % of the simulated {expected} req/s",
                (now - started_ms) as f64 / 1_000.0,
                TOLERANCE * 100.0,
            );
            worst = worst.max((rate - expected).abs() / expected);
            checked += 1;
            in_progress += usize::from(minute_ms == current_ms);
            first_minute += usize::from(minute_ms == first_minute_ms);
        }
        if let Some(rate) = status_rate(query_url).await? {
            ensure!(
                within(rate, expected),
                "{:.1} s after the start, the status's 5-minute rate is {rate:.1} req/s, not within {:.0} % of {expected}",
                (now - started_ms) as f64 / 1_000.0,
                TOLERANCE * 100.0,
            );
            worst = worst.max((rate - expected).abs() / expected);
            status_checked += 1;
        }
    }
    // The watch saw every kind of minute, so it cannot pass by seeing none.
    ensure!(
        in_progress >= 60 && first_minute >= 5 && checked >= 200 && status_checked >= 80,
        "too few values checked: {checked} in all, {in_progress} of minutes in progress, {first_minute} of the first \
         minute, {status_checked} status rates"
    );
    Ok(format!(
        "checked {checked} minute rates ({in_progress} of minutes in progress, {first_minute} of the first minute) and \
         {status_checked} status rates: the worst {:.2} % off {expected} req/s",
        worst * 100.0
    ))
}
