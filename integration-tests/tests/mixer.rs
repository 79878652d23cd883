//! The mixer's own figures end to end, with real processes: redis-server, the aggregator on
//! Redis, the query service, the simulated fleet and one prober that finds the mixer pods on
//! its node through the simulator's Kubernetes API (`/k8s`), scrapes their `/metrics` every
//! second and samples the pods on its node (restarts, readiness, memory against the limit).
//!
//! Scenario: region `us-west` has 4 pods over 2 nodes, so the prober's node `node-us-west-0`
//! runs `mixer-us-west-0` and `mixer-us-west-2` (region `eu-west` runs elsewhere). From the
//! start, every us-west pod fails a quarter of its requests and `mixer-us-west-2` sits at 90 %
//! of its memory limit. In the middle of the second whole minute, `mixer-us-west-0` restarts
//! (its counters back to zero). Then `POST /query` must show, for three whole minutes:
//! * `mixer_request_rate` for us-west positive, never below zero and never a spike: every
//!   minute within 1.5x of the simulator's known rate (2 pods x `RPS_PER_POD`) and of the
//!   median of the others, the restart minute included;
//! * `mixer_error_rate` near the injected share;
//! * `pod_restarts` of `mixer-us-west-0`: exactly the one restart, in the restart minute, and
//!   its `pod_ready_ratio` below 1 there (not ready for a moment after the restart);
//! * `pod_memory_limit_ratio` of `mixer-us-west-2` about 0.9.
//!
//! The prober finds each simulated pod's scrape port in the container port named `metrics`
//! (the simulator's pods share one loopback address on distinct ports; real pods are scraped
//! at `podIP:<port>` as configured).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_simulator, unix_ms, write};
use mixmon_testkit::{http, ProberConfig, RedisServer};
use serde_json::{json, Value};

const MINUTE_MS: i64 = 60_000;
/// The simulator's mean request rate per pod (its `--rps-per-pod`).
const RPS_PER_POD: f64 = 40.0;
/// Pods of us-west on the prober's node (`node-us-west-0`: pods 0 and 2 of 4 over 2 nodes).
const PODS_ON_NODE: f64 = 2.0;
const NODE: &str = "node-us-west-0";
const RESTARTED: &str = "mixer-us-west-0";
const PRESSED: &str = "mixer-us-west-2";
const ERROR_SHARE: f64 = 0.25;
const MEMORY_PRESSURE: f64 = 0.9;
/// A spike or a dip is anything further than this factor from the expected rate.
const RATE_FACTOR: f64 = 1.5;

async fn send_json(method: &str, url: &str, body: &Value) -> anyhow::Result<()> {
    let body = serde_json::to_vec(body)?;
    let response = http::request(method, url, &[("Content-Type", "application/json")], Some(&body)).await?;
    ensure!((200..300).contains(&response.status), "{method} {url}: {} {}", response.status, response.text());
    Ok(())
}

/// One `POST /query` target's series: tags and `(minute ms, value)` points.
struct Series {
    tags: Value,
    points: BTreeMap<i64, Option<f64>>,
}

async fn query(query_url: &str, target: &str, payload: Value, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<Series>> {
    let request = json!({
        "range": {"from": from_ms, "to": to_ms},
        "intervalMs": MINUTE_MS,
        "maxDataPoints": 100,
        "targets": [{"refId": "A", "target": target, "payload": payload}],
    });
    let (status, response) = http::post_json(&format!("{query_url}/query"), &request, None).await?;
    ensure!(status == 200, "query {target} answered {status}: {response}");
    let series = response.as_array().with_context(|| format!("query {target}: not a list: {response}"))?;
    Ok(series
        .iter()
        .map(|s| Series {
            tags: s["tags"].clone(),
            points: s["datapoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[1].as_i64()?, p[0].as_f64())))
                .collect(),
        })
        .collect())
}

/// The series whose tag `key` is `value` (pods may be tagged `<namespace>.<pod>`).
fn tagged<'a>(series: &'a [Series], key: &str, value: &str) -> Option<&'a Series> {
    series.iter().find(|s| s.tags[key].as_str().is_some_and(|t| t == value || t.ends_with(&format!(".{value}"))))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Sleeps until the wall clock reaches `unix_ms`.
async fn sleep_until(target_ms: i64) {
    let wait = (target_ms - unix_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Where the scenario's figures are checked; a failure names the minute and the figure.
struct Check {
    query_url: String,
    /// The three whole minutes checked: before, with and after the restart.
    minutes: [i64; 3],
    restart_minute: i64,
}

impl Check {
    async fn request_rates(&self) -> anyhow::Result<Vec<f64>> {
        let series = self.series("mixer_request_rate", json!({"region": "us-west"})).await?;
        let us_west = tagged(&series, "region", "us-west").context("no us-west request-rate series")?;
        self.values(us_west, "mixer_request_rate")
    }

    async fn series(&self, target: &str, payload: Value) -> anyhow::Result<Vec<Series>> {
        query(&self.query_url, target, payload, self.minutes[0] - MINUTE_MS, self.minutes[2] + 2 * MINUTE_MS).await
    }

    fn values(&self, series: &Series, what: &str) -> anyhow::Result<Vec<f64>> {
        self.minutes
            .iter()
            .map(|m| series.points.get(m).copied().flatten().with_context(|| format!("{what}: no value at minute {m}")))
            .collect()
    }

    /// Every assertion of the scenario; `Err` names the first that does not hold (yet).
    async fn all(&self) -> anyhow::Result<()> {
        let rates = self.request_rates().await?;
        let expected = PODS_ON_NODE * RPS_PER_POD;
        for (minute, rate) in self.minutes.iter().zip(&rates) {
            ensure!(*rate >= 0.0, "request rate {rate} below zero at minute {minute}");
            ensure!(
                (expected / RATE_FACTOR..=expected * RATE_FACTOR).contains(rate),
                "request rate {rate}/s at minute {minute} is not within {RATE_FACTOR}x of the simulated {expected}/s \
                 (all: {rates:?})"
            );
        }
        for (i, rate) in rates.iter().enumerate() {
            let mut others: Vec<f64> = rates.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| *r).collect();
            let median = median(&mut others);
            ensure!(
                *rate <= median * RATE_FACTOR && *rate >= median / RATE_FACTOR,
                "request rate {rate}/s at minute {} is a spike or a dip against the others' median {median}/s",
                self.minutes[i]
            );
        }

        let series = self.series("mixer_error_rate", json!({"region": "us-west"})).await?;
        let errors = self.values(tagged(&series, "region", "us-west").context("no us-west error series")?, "errors")?;
        for (minute, share) in self.minutes.iter().zip(&errors) {
            ensure!(
                (share - ERROR_SHARE).abs() < 0.02,
                "error rate {share} at minute {minute}, injected {ERROR_SHARE}"
            );
        }

        let series = self.series("pod_restarts", json!({"region": "us-west"})).await?;
        ensure!(
            tagged(&series, "pod", "mixer-us-west-1").is_none(),
            "pod_restarts has a series for mixer-us-west-1, which is not on {NODE}"
        );
        let restarted =
            tagged(&series, "pod", RESTARTED).with_context(|| format!("no pod_restarts for {RESTARTED}"))?;
        let restarts = self.values(restarted, "pod_restarts")?;
        let at_restart = restarted.points.get(&self.restart_minute).copied().flatten();
        let total: f64 = restarted.points.values().flatten().sum();
        ensure!(
            at_restart == Some(1.0) && total == 1.0,
            "pod_restarts of {RESTARTED}: {at_restart:?} in the restart minute, {total} in all ({restarts:?})"
        );
        let pressed = tagged(&series, "pod", PRESSED).with_context(|| format!("no pod_restarts for {PRESSED}"))?;
        let none: f64 = pressed.points.values().flatten().sum();
        ensure!(none == 0.0, "{PRESSED} never restarted, yet pod_restarts sums to {none}");

        let series = self.series("pod_ready_ratio", json!({"region": "us-west"})).await?;
        let ready = tagged(&series, "pod", RESTARTED).with_context(|| format!("no pod_ready_ratio for {RESTARTED}"))?;
        let ready_at_restart = ready.points.get(&self.restart_minute).copied().flatten();
        ensure!(
            ready_at_restart.is_some_and(|r| r < 1.0 && r > 0.5),
            "pod_ready_ratio of {RESTARTED} in the restart minute: {ready_at_restart:?} (not ready for ~3 s)"
        );

        let series = self.series("pod_memory_limit_ratio", json!({"region": "us-west"})).await?;
        let pressed = tagged(&series, "pod", PRESSED).with_context(|| format!("no memory ratio for {PRESSED}"))?;
        for (minute, ratio) in self.minutes.iter().zip(self.values(pressed, "pod_memory_limit_ratio")?) {
            ensure!(
                (ratio - MEMORY_PRESSURE).abs() < 0.02,
                "{PRESSED} memory/limit {ratio} at minute {minute}, pressure {MEMORY_PRESSURE}"
            );
        }
        let calm = tagged(&series, "pod", RESTARTED).with_context(|| format!("no memory ratio for {RESTARTED}"))?;
        for (minute, ratio) in self.minutes.iter().zip(self.values(calm, "pod_memory_limit_ratio")?) {
            ensure!((0.35..=0.65).contains(&ratio), "{RESTARTED} memory/limit {ratio} at minute {minute}");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixer_scrape_and_pod_sampling_through_the_kubernetes_api() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let redis = RedisServer::start()?;

    let sim = start_simulator(
        dir.path(),
        "us-west=4,eu-west=2",
        &["--nodes-per-region", "2", "--rps-per-pod", &RPS_PER_POD.to_string()],
    )
    .await?;
    let admin = format!("http://{}", sim.address("admin")?);
    send_json("PUT", &format!("{admin}/faults/regions/us-west"), &json!({"error_share": ERROR_SHARE})).await?;
    send_json(
        "PUT",
        &format!("{admin}/faults/pods/{PRESSED}"),
        &json!({"error_share": ERROR_SHARE, "memory_pressure": MEMORY_PRESSURE}),
    )
    .await?;
    let us_west_front = sim.ready["endpoints"]["us-west"].as_str().context("no us-west front")?.to_string();

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
            interval_s = 5
            timeout_ms = 1000
            [[checks]]
            id = "us-west-health"
            url = "http://{us_west_front}/health"
            "#,
            redis = redis.url(),
        ),
    )?;
    let (aggregator, grpc) = start_aggregator(dir.path(), &aggregator_config).await?;
    let (query_service, query_url) = start_query(dir.path(), &redis.url()).await?;

    let prober_config = ProberConfig::new("us-west", &[format!("http://{grpc}")])
        .node(NODE)
        .buffer_dir(Path::new(&path("wal")))
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
            [node]
            interval_ms = 1000
            proc_root = "/proc"
            [pods]
            interval_ms = 1000
            namespace = ""
            "#
        ))
        .write(dir.path(), "prober.toml")?;
    let mut prober = start("mixmon-prober", &["--config".into(), prober_config.display().to_string()])?;
    let started_ms = unix_ms();

    let outcome = scenario(&query_url, &admin, started_ms).await;
    if let Err(error) = outcome {
        bail!(
            "{error:#}\n--- prober log:\n{}\n--- aggregator log:\n{}\n--- query log:\n{}\n--- simulator log:\n{}",
            prober.log_tail(40),
            aggregator.process.log_tail(20),
            query_service.process.log_tail(20),
            sim.process.log_tail(20),
        );
    }
    prober.terminate()?;
    let status = prober.wait_exit(Duration::from_secs(30))?;
    let log = std::fs::read_to_string(prober.log_path()).unwrap_or_default();
    ensure!(!log.contains("panicked"), "the prober panicked:\n{}", prober.log_tail(60));
    ensure!(status.success(), "the prober exited with {status}:\n{}", prober.log_tail(30));
    Ok(())
}

async fn scenario(query_url: &str, admin: &str, started_ms: i64) -> anyhow::Result<()> {
    // (a) The region's request rate appears, positive.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = unix_ms();
        let last = match query(query_url, "mixer_request_rate", json!({"region": "us-west"}), now - 5 * MINUTE_MS, now)
            .await
        {
            Ok(series) => {
                let value = tagged(&series, "region", "us-west")
                    .and_then(|s| s.points.values().flatten().copied().reduce(f64::max));
                if value.is_some_and(|v| v > 0.0) {
                    break;
                }
                format!("{value:?}")
            }
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() > deadline {
            bail!("mixer_request_rate for us-west never became positive; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // (b)-(d): three whole minutes after the prober surely runs; the restart in the middle one.
    let first = (started_ms + 5_000).div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    let check = Check {
        query_url: query_url.to_string(),
        minutes: [first, first + MINUTE_MS, first + 2 * MINUTE_MS],
        restart_minute: first + MINUTE_MS,
    };
    sleep_until(check.restart_minute + 20_000).await;
    let response = http::request("POST", &format!("{admin}/pods/{RESTARTED}/restart"), &[], None).await?;
    ensure!(response.status == 204, "restart answered {}: {}", response.status, response.text());

    // Delivery takes a moment after the last minute ends; every figure only grows as samples
    // land, so wait until all hold, then make sure they still hold a little later.
    sleep_until(check.minutes[2] + MINUTE_MS + 2_000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check.all().await {
            Ok(()) => break,
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    // A few scrape and sample rounds (1 s each) later, the figures must still match: they
    // settle, they do not merely pass through the right values.
    tokio::time::sleep(Duration::from_secs(5)).await;
    check.all().await.context("the figures changed after they matched")
}
