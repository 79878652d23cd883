//! Query latency of the Grafana datasource against a real `redis-server` holding 15 days of
//! rollups (6 endpoints x 4 regions, every minute), written through `Store::apply_batch`.
//!
//! The measured request is a 24 h dashboard panel: `POST /query` over HTTP to the query
//! service (in process, on a loopback socket), range = the last 24 h, `intervalMs` 60 000,
//! `maxDataPoints` 1000, one series per (endpoint, region) = 24 series. Prints p50/p99 of the
//! whole request (connect, JSON, store reads, SLIs, JSON back), plus the first (cold cache)
//! request and a heavier four-metric panel with rolling 24 h uptime. Run by
//! `scripts/bench.sh query`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_bench::figure;
use mixmon_model::{CheckId, FailureKind, Minute, ProberId, Region, Rollup, RollupDelta, SeriesKey};
use mixmon_query::{app, serve, QueryOptions};
use mixmon_store::{BatchId, RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::RedisServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const ENDPOINTS: [&str; 6] = ["us-west", "us-east", "eu-west", "ap", "edge", "api"];
const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];
const DAYS: i64 = 15;
/// Probes per (endpoint, region, minute): one every 3 s.
const PROBES_PER_MINUTE: u64 = 20;
const RUNS: usize = 300;

fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn minute_rollup(rng: &mut StdRng) -> Rollup {
    let mut rollup = Rollup { total: PROBES_PER_MINUTE, ..Default::default() };
    for _ in 0..PROBES_PER_MINUTE {
        if rng.random::<f64>() < 0.005 {
            *rollup.failures.entry(FailureKind::Timeout).or_insert(0) += 1;
            continue;
        }
        let us = 40_000.0 * (0.5 * standard_normal(rng)).exp();
        rollup.successes += 1;
        rollup.latency_sum_us += us as u64;
        rollup.latency.add(us);
        rollup.phases.add(&mixmon_model::PhaseTimings {
            dns_us: 500,
            connect_us: 2_000,
            tls_us: 6_000,
            first_byte_us: us as u64 / 2,
            transfer_us: 100,
        });
    }
    rollup
}

/// 15 days of every series, one batch per (region, hour) as a prober of that region would.
async fn fill(store: &RedisStore, now: Minute) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(11);
    let first_hour = (now.0 - DAYS * 24 * 60).div_euclid(60);
    let last_hour = now.0.div_euclid(60);
    let mut rollups = 0u64;
    for region in REGIONS {
        let prober = ProberId::new(format!("{region}-node-1"))?;
        let region = Region::new(region)?;
        for (seq, hour) in (first_hour..=last_hour).enumerate() {
            let mut delta = RollupDelta::default();
            for endpoint in ENDPOINTS {
                let series = SeriesKey { check: CheckId::new(endpoint)?, region: region.clone() };
                for m in hour * 60..(hour + 1) * 60 {
                    if m > now.0 {
                        break;
                    }
                    delta.add_rollup(series.clone(), Minute(m), &minute_rollup(&mut rng));
                    rollups += 1;
                }
            }
            let id = BatchId { prober: prober.clone(), epoch: 1, seq: seq as u64 + 1 };
            store.apply_batch(&id, &delta).await?;
        }
    }
    Ok(rollups)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

async fn timed_query(url: &str, body: &Value, expect_series: usize) -> anyhow::Result<Duration> {
    let payload = serde_json::to_vec(body)?;
    let headers = [("Content-Type", "application/json")];
    let started = Instant::now();
    let reply = mixmon_testkit::http::request("POST", url, &headers, Some(&payload)).await?;
    let elapsed = started.elapsed();
    // Checked after the clock stops: parsing the answer is the dashboard's work, not ours.
    let text = reply.text();
    if reply.status != 200 {
        bail!("query answered {}: {text}", reply.status);
    }
    let series = serde_json::from_str::<Value>(&text)?.as_array().map_or(0, Vec::len);
    if series != expect_series {
        bail!("expected {expect_series} series, got {series}");
    }
    Ok(elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let redis = RedisServer::start().context("starting redis-server")?;
    let store = Arc::new(RedisStore::connect(RedisStoreConfig::new(redis.url())).await?);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let fill_started = Instant::now();
    let rollups = fill(&store, Minute::containing(now_ms)).await?;
    figure("query_fill_minute_rollups", rollups);
    figure("query_fill_seconds", format!("{:.1}", fill_started.elapsed().as_secs_f64()));
    let info = store.server_info("memory").await?;
    if let Some(line) = info.lines().find(|l| l.starts_with("used_memory_human:")) {
        figure("redis_used_memory", line.trim_start_matches("used_memory_human:").trim());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/query", listener.local_addr()?);
    let router = app(store.clone(), QueryOptions::default());
    tokio::spawn(serve(listener, Default::default(), router, std::future::pending()));

    let range = json!({"from": now_ms - 24 * 3_600_000, "to": now_ms});
    let panel = json!({
        "range": range, "intervalMs": 60_000, "maxDataPoints": 1000,
        "targets": [{"refId": "A", "target": "latency_p95", "payload": {}}]
    });
    let dashboard = json!({
        "range": range, "intervalMs": 60_000, "maxDataPoints": 1000,
        "targets": [
            {"refId": "A", "target": "latency_p95", "payload": {}},
            {"refId": "B", "target": "latency_p99", "payload": {}},
            {"refId": "C", "target": "success_rate", "payload": {}},
            {"refId": "D", "target": "uptime", "payload": {}}
        ]
    });
    let series = ENDPOINTS.len() * REGIONS.len();
    let cold = timed_query(&url, &panel, series).await?;
    figure("query_cold_ms", format!("{:.2}", cold.as_secs_f64() * 1_000.0));
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        times.push(timed_query(&url, &panel, series).await?);
    }
    times.sort();
    figure("query_series", series);
    figure("query_p50_ms", format!("{:.2}", percentile(&times, 0.50)));
    figure("query_p90_ms", format!("{:.2}", percentile(&times, 0.90)));
    figure("query_p99_ms", format!("{:.2}", percentile(&times, 0.99)));
    figure("query_max_ms", format!("{:.2}", percentile(&times, 1.0)));

    // The store's share: the 24 series' minute blocks for the same 24 h, from the warm cache.
    let members: Vec<SeriesKey> = ENDPOINTS
        .iter()
        .flat_map(|e| REGIONS.iter().map(move |r| (*e, *r)))
        .map(|(e, r)| Ok(SeriesKey { check: CheckId::new(e)?, region: Region::new(r)? }))
        .collect::<anyhow::Result<_>>()?;
    let (from, to) = (Minute::containing(now_ms - 24 * 3_600_000), Minute::containing(now_ms).next());
    let mut reads = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let blocks = store.read_rollup_blocks(&members, from, to).await?;
        reads.push(started.elapsed());
        if blocks.len() != members.len() {
            bail!("store answered {} of {} series", blocks.len(), members.len());
        }
    }
    reads.sort();
    figure("store_read_24h_p50_ms", format!("{:.2}", percentile(&reads, 0.50)));
    figure("store_read_24h_p99_ms", format!("{:.2}", percentile(&reads, 0.99)));

    let cold = timed_query(&url, &dashboard, 4 * series).await?;
    figure("dashboard4_cold_ms", format!("{:.2}", cold.as_secs_f64() * 1_000.0));
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS / 3 {
        times.push(timed_query(&url, &dashboard, 4 * series).await?);
    }
    times.sort();
    figure("dashboard4_p50_ms", format!("{:.2}", percentile(&times, 0.50)));
    figure("dashboard4_p99_ms", format!("{:.2}", percentile(&times, 0.99)));
    Ok(())
}
