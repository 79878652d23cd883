//! `scripts/bench.sh hostile`: the careless query of issue 13 against a release `mixmon up
//! --demo` (one process: simulator, probers, aggregator on the in-memory store, and the query
//! API), alone and 20 at once, while a dashboard panel's query keeps being asked.
//!
//! The request: five targets, each a Grafana multi-value `(m1|m2|...)` naming every metric
//! the service lists, over 31 days, `maxDataPoints` 10 000. Printed: the status it got
//! (`hostile_query_status`), the process's resident memory idle, at its peak during the
//! 20-request burst and 5 s after (`query_rss_*_mb`: the `mixmon up` process, which holds the
//! query API and everything else), and whether every dashboard query asked meanwhile was
//! answered with data (`dashboard_ok_during_hostile`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_bench::{figure, rss_mb};
use mixmon_testkit::{free_port, http, ChildProcess};
use serde_json::{json, Value};

const BURST: usize = 20;
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn dashboard_query(now: i64) -> Value {
    json!({
        "range": {"from": now - 3_600_000, "to": now},
        "interval": "1m",
        "maxDataPoints": 1000,
        "targets": [{"refId": "A", "target": "success_rate"}],
    })
}

fn answered_with_data(status: u16, body: &Value) -> bool {
    status == 200
        && body.as_array().is_some_and(|series| {
            series.iter().any(|s| s["datapoints"].as_array().is_some_and(|p| p.iter().any(|p| !p[0].is_null())))
        })
}

/// Peak RSS of `pid` until `stop`, sampled every 20 ms.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>, peak: Arc<Mutex<f64>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let (Some(rss), Ok(mut peak)) = (rss_mb(pid), peak.lock()) {
                *peak = peak.max(rss);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = std::env::current_exe()?.parent().context("no binary directory")?.join("mixmon");
    let (query_port, grpc_port, sim_port) = (free_port()?, free_port()?, free_port()?);
    let args = [
        "up".to_string(),
        "--demo".into(),
        "--status-every".into(),
        "0".into(),
        "--query-addr".into(),
        format!("127.0.0.1:{query_port}"),
        "--grpc-addr".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--sim-admin-addr".into(),
        format!("127.0.0.1:{sim_port}"),
    ];
    // Killed and reaped on drop.
    let up = ChildProcess::spawn(&bin, args, &[("RUST_LOG", "warn")])
        .with_context(|| format!("starting {} (scripts/bench.sh hostile builds it)", bin.display()))?;
    let pid = up.pid();
    let base = format!("http://127.0.0.1:{query_port}");

    // Until a dashboard panel shows data: the demo fleet is probed and its minutes stored.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((status, body)) = http::post_json(&format!("{base}/query"), &dashboard_query(now_ms()), None).await {
            if answered_with_data(status, &body) {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("mixmon up --demo showed no data within 120 s:\n{}", up.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Idle: the largest figure over a few quiet seconds.
    let mut idle = 0.0f64;
    for _ in 0..30 {
        idle = idle.max(rss_mb(pid).unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (_, metrics) = http::post_json(&format!("{base}/metrics"), &json!({}), None).await?;
    let names: Vec<&str> = metrics.as_array().into_iter().flatten().filter_map(|m| m["value"].as_str()).collect();
    let every_metric = format!("({})", names.join("|"));
    let now = now_ms();
    let hostile = json!({
        "range": {"from": now - 31 * DAY_MS, "to": now},
        "maxDataPoints": 10_000,
        "targets": (0..5).map(|i| json!({"refId": format!("R{i}"), "target": every_metric})).collect::<Vec<_>>(),
    });
    figure("hostile_request_bytes", hostile.to_string().len());
    let (status, body) = http::post_json(&format!("{base}/query"), &hostile, None).await?;
    figure("hostile_query_status", status);
    figure("hostile_query_message", body["message"].as_str().unwrap_or("(none)"));

    let hostile_burst = burst(&base, &hostile, pid, idle).await?;

    // Heavy but allowed: every endpoint and region's success rate over the 31 days at 10 000
    // points each, under the datapoint cap, 20 at once. What such answers cost must come back
    // too.
    let allowed = json!({
        "range": {"from": now - 31 * DAY_MS, "to": now},
        "maxDataPoints": 10_000,
        "targets": [{"refId": "A", "target": "success_rate"}],
    });
    let allowed_burst = burst(&base, &allowed, pid, idle).await?;

    let client_errors = hostile_burst.statuses.iter().filter(|s| (400..500).contains(*s)).count();
    figure("burst_statuses_4xx", format!("{client_errors} of {BURST}"));
    figure("query_rss_idle_mb", format!("{idle:.1}"));
    figure("query_rss_peak_mb", format!("{:.1} (goal <= 100)", hostile_burst.peak));
    figure(
        "query_rss_after_mb",
        format!("{:.1} (goal within 20 of idle: {:+.1})", hostile_burst.after, hostile_burst.after - idle),
    );
    figure("dashboard_queries_during_hostile", hostile_burst.dashboard_asked);
    figure("dashboard_ok_during_hostile", u8::from(hostile_burst.dashboard_ok));
    let answered = allowed_burst.statuses.iter().filter(|s| **s == 200).count();
    figure("allowed_heavy_answered", format!("{answered} of {BURST}"));
    figure("allowed_heavy_answer_bytes", allowed_burst.answer_bytes);
    figure("query_rss_peak_allowed_mb", format!("{:.1}", allowed_burst.peak));
    figure(
        "query_rss_after_allowed_mb",
        format!("{:.1} (goal within 20 of idle: {:+.1})", allowed_burst.after, allowed_burst.after - idle),
    );
    figure("dashboard_ok_during_allowed", u8::from(allowed_burst.dashboard_ok));
    Ok(())
}

struct Burst {
    statuses: Vec<u16>,
    /// The largest answer body of the burst.
    answer_bytes: usize,
    peak: f64,
    after: f64,
    dashboard_asked: usize,
    dashboard_ok: bool,
}

/// `BURST` copies of `body` at once while a dashboard keeps refreshing; resident memory at
/// its peak and 5 s after the last answer.
async fn burst(base: &str, body: &Value, pid: u32, idle: f64) -> anyhow::Result<Burst> {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(idle));
    let sampler = sample_peak(pid, stop.clone(), peak.clone());
    let tasks: Vec<_> = (0..BURST)
        .map(|_| {
            let (url, body) = (format!("{base}/query"), serde_json::to_vec(body).unwrap_or_default());
            tokio::spawn(async move {
                http::request("POST", &url, &[("Content-Type", "application/json")], Some(&body))
                    .await
                    .map_or((0, 0), |r| (r.status, r.body.len()))
            })
        })
        .collect();
    let mut dashboard_ok = true;
    let mut dashboard_asked = 0;
    while !tasks.iter().all(|task| task.is_finished()) || dashboard_asked < 5 {
        let answer = http::post_json(&format!("{base}/query"), &dashboard_query(now_ms()), None).await;
        dashboard_ok &= answer.is_ok_and(|(status, body)| answered_with_data(status, &body));
        dashboard_asked += 1;
    }
    let (mut statuses, mut answer_bytes) = (Vec::new(), 0);
    for task in tasks {
        let (status, bytes) = task.await.unwrap_or((0, 0));
        statuses.push(status);
        answer_bytes = answer_bytes.max(bytes);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_mb(pid).unwrap_or(f64::NAN);
    let peak = *peak.lock().map_err(|_| anyhow::anyhow!("sampler poisoned"))?;
    Ok(Burst { statuses, answer_bytes, peak, after, dashboard_asked, dashboard_ok })
}
