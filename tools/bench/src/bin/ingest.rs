//! Ingest throughput through the aggregator's real path: protobuf batches decoded, sorted by
//! `mixmon_aggregator::ingest::sort_batch` (hygiene and pre-aggregation into a `RollupDelta`),
//! and applied with `Store::apply_batch` into a real `redis-server` started here.
//!
//! Simulates a fleet of probers (6 endpoints x 4 regions, several probers per region), each a
//! task sending batches with increasing sequence numbers, as the control plane would apply
//! them. Prints `ingest_results_per_s`, Redis commands per result (top-level commands the
//! client sent, and every command including those run inside scripts), and the process's
//! resident memory at the start and end of the run. Run by `scripts/bench.sh ingest`.
//!
//! Arguments: `[seconds]` (default 30).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mixmon_aggregator::ingest::sort_batch;
use mixmon_aggregator::{AggregatorConfig, Catalogue};
use mixmon_bench::{figure, rss_mb};
use mixmon_model::{ProberId, Region};
use mixmon_proto::pb;
use mixmon_store::{BatchId, RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::RedisServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ENDPOINTS: [&str; 6] = ["us-west", "us-east", "eu-west", "ap", "edge", "api"];
const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];
const PROBERS_PER_REGION: usize = 4;
/// Results per batch: a prober probing 6 endpoints at a high rate ships a few hundred results
/// per flush.
const BATCH_RESULTS: usize = 600;
/// Distinct pre-encoded batches per prober; cycled, with fresh sequence numbers.
const TEMPLATES: usize = 8;

fn catalogue() -> anyhow::Result<Catalogue> {
    // Through the config file format, as the aggregator loads it.
    let mut text = String::from("[defaults]\ninterval_s = 1\ntimeout_ms = 1000\n");
    for e in ENDPOINTS {
        text.push_str(&format!("[[checks]]\nid = \"{e}\"\nurl = \"https://{e}.example/health\"\n"));
    }
    let config: AggregatorConfig = toml::from_str(&text)?;
    Ok(Catalogue::from_config(&config, None)?)
}

/// One encoded batch: results spread over the endpoints and two consecutive minutes, mostly
/// successes with lognormal latencies, a few failures of several kinds.
fn template(rng: &mut StdRng, now_ms: i64) -> Vec<u8> {
    let base = now_ms - 90_000 - rng.random_range(0..60_000);
    let results = (0..BATCH_RESULTS)
        .map(|i| {
            let failed = rng.random::<f64>() < 0.01;
            let z: f64 = {
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            };
            let duration_us = (40_000.0 * (0.5 * z).exp()) as u64;
            pb::ProbeResult {
                check_id: ENDPOINTS[i % ENDPOINTS.len()].to_string(),
                started_at_ms: base + (i as i64 * 60_000 / BATCH_RESULTS as i64),
                success: !failed,
                duration_us,
                failure: if failed { [pb::FailureKind::Timeout, pb::FailureKind::BadStatus][i % 2] as i32 } else { 0 },
                status_code: if failed { 503 } else { 200 },
                phases: Some(pb::PhaseTimings {
                    dns_us: duration_us / 20,
                    connect_us: duration_us / 10,
                    tls_us: duration_us / 5,
                    first_byte_us: duration_us / 3,
                    transfer_us: duration_us / 50,
                }),
                ..Default::default()
            }
        })
        .collect();
    mixmon_proto::wire::encode_batch(&pb::ResultBatch { seq: 0, results, ..Default::default() })
}

fn commandstats(info: &str) -> (u64, u64) {
    // `cmdstat_<name>:calls=<n>,...`: top-level commands are what the client sends; the
    // others (hincrby, expireat, sadd, ...) run inside scripts. The store's one top-level
    // SADD (the checks index) is sent once per check per 10 minutes and is left out.
    let (mut top, mut all) = (0, 0);
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
        let Some((name, stats)) = rest.split_once(':') else { continue };
        let calls: u64 =
            stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        all += calls;
        if matches!(name, "evalsha" | "eval" | "script|load" | "script" | "ping" | "hello" | "client|setinfo") {
            top += calls;
        }
    }
    (top, all)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(30);
    let redis = RedisServer::start().context("starting redis-server")?;
    let store = Arc::new(RedisStore::connect(RedisStoreConfig::new(redis.url())).await?);
    let catalogue = Arc::new(catalogue()?);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;

    let mut rng = StdRng::seed_from_u64(7);
    let mut probers = Vec::new();
    for region in REGIONS {
        for p in 0..PROBERS_PER_REGION {
            let templates: Vec<Vec<u8>> = (0..TEMPLATES).map(|_| template(&mut rng, now_ms)).collect();
            probers.push((Region::new(region)?, ProberId::new(format!("{region}-node-{p}"))?, templates));
        }
    }

    // Warm up: the script is loaded and the connection is up before measuring.
    let before = commandstats(&store.server_info("commandstats").await?);
    let rss_start = rss_mb(std::process::id()).unwrap_or(f64::NAN);
    let stored = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (region, prober, templates) in probers {
        let (store, catalogue, stored, batches) = (store.clone(), catalogue.clone(), stored.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < deadline {
                seq += 1;
                let bytes = &templates[seq as usize % templates.len()];
                let batch = mixmon_proto::wire::decode_batch(bytes.as_slice())?;
                let sorted = sort_batch(&region, &catalogue, batch.results, now_ms);
                let id = BatchId { prober: prober.clone(), epoch: 1, seq };
                store.apply_batch(&id, &sorted.delta).await?;
                stored.fetch_add(sorted.delta.result_count(), Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    // Resident memory at each tenth of the run: flat means no growth per result.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for i in 1..=10u32 {
            tokio::time::sleep_until((started + Duration::from_secs(seconds) * i / 10).into()).await;
            samples.push(format!("{:.1}", rss_mb(std::process::id()).unwrap_or(f64::NAN)));
        }
        samples
    });
    for task in tasks {
        task.await??;
    }
    let samples = sampler.await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rss_end = rss_mb(std::process::id()).unwrap_or(f64::NAN);
    let after = commandstats(&store.server_info("commandstats").await?);
    let results = stored.load(Ordering::Relaxed);
    figure("ingest_seconds", format!("{elapsed:.1}"));
    figure("ingest_results", results);
    figure("ingest_results_per_s", format!("{:.0}", results as f64 / elapsed));
    figure("batch_results", BATCH_RESULTS);
    // One pipeline per batch: every endpoint's script goes out together.
    figure(
        "redis_round_trips_per_result",
        format!("{:.4}", batches.load(Ordering::Relaxed) as f64 / results.max(1) as f64),
    );
    figure("redis_cmds_per_result", format!("{:.4}", (after.0 - before.0) as f64 / results.max(1) as f64));
    figure("redis_cmds_incl_script_per_result", format!("{:.3}", (after.1 - before.1) as f64 / results.max(1) as f64));
    figure("aggregator_rss_start_mb", format!("{rss_start:.1}"));
    figure("aggregator_rss_end_mb", format!("{rss_end:.1}"));
    figure("aggregator_rss_every_tenth_mb", samples.join(" "));
    Ok(())
}
