//! Ingest as probers really send it: a release `mixmon-aggregator` process on a real
//! `redis-server`, and PROBERS prober connections, each its own gRPC channel that registers,
//! opens its report stream with a hello and then flushes a small batch every 200 ms (the
//! prober's flush interval), waiting for acknowledgements as a prober does (at most a window
//! of unacknowledged batches in flight). What it measures is the whole path: gRPC decode,
//! batch hygiene, the store's scripts, the acknowledgement.
//!
//! Prints `ingest_grpc_results_per_s` (results acknowledged per second over the measured
//! window), `ingest_grpc_probers`, `ingest_grpc_batch_results`, `ingest_grpc_flush_ms`,
//! `ingest_grpc_redis_commands_per_result` (top-level commands the aggregator sent) and
//! `ingest_grpc_aggregator_rss_mb` (the aggregator process at the end). Run by
//! `scripts/bench.sh ingest` after the in-process `ingest`.
//!
//! Arguments: `[seconds] [probers] [results per flush]` (defaults 20, 500, 20).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_bench::{figure, rss_mb};
use mixmon_proto::pb;
use mixmon_proto::pb::control_plane_client::ControlPlaneClient;
use mixmon_testkit::{ChildProcess, RedisServer};

const ENDPOINTS: [&str; 6] = ["us-west", "us-east", "eu-west", "ap", "edge", "api"];
const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];
const FLUSH: Duration = Duration::from_millis(200);
/// Unacknowledged batches a prober keeps in flight before it waits (as the uplink does).
const WINDOW: u64 = 8;
const WARM_UP: Duration = Duration::from_secs(5);

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn commands(info: &str) -> u64 {
    // Top-level commands are what the aggregator sends; the rest run inside its scripts.
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|rest| rest.split_once(':'))
        .filter(|(name, _)| matches!(*name, "evalsha" | "eval" | "sadd" | "ping"))
        .filter_map(|(_, stats)| {
            stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn redis_info(port: u16) -> anyhow::Result<String> {
    let out =
        std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "INFO", "commandstats"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn batch(prober: usize, seq: u64, results: usize) -> pb::ResultBatch {
    let now = unix_ms();
    let results = (0..results)
        .map(|i| {
            let failed = (seq as usize + i).is_multiple_of(97);
            pb::ProbeResult {
                check_id: ENDPOINTS[(prober + i) % ENDPOINTS.len()].to_string(),
                started_at_ms: now - 1_000 + i as i64,
                success: !failed,
                duration_us: 20_000 + ((seq as usize * 7919 + i * 104_729) % 60_000) as u64,
                failure: if failed { pb::FailureKind::Timeout as i32 } else { 0 },
                status_code: if failed { 0 } else { 200 },
                ..Default::default()
            }
        })
        .collect();
    pb::ResultBatch { seq, results, ..Default::default() }
}

/// One prober: register, report, flush every 200 ms; counts the results acknowledged.
async fn prober(
    address: String,
    index: usize,
    per_flush: usize,
    acked: Arc<AtomicU64>,
    until: Instant,
) -> anyhow::Result<()> {
    let region = REGIONS[index % REGIONS.len()];
    let identity = pb::ProberIdentity {
        prober_id: format!("bench-{index}"),
        region: region.to_string(),
        node: format!("node-{index}"),
        version: "bench".into(),
    };
    let channel = tonic::transport::Endpoint::from_shared(address)?.connect().await?;
    let mut client = ControlPlaneClient::new(channel);
    client.register(pb::RegisterRequest { identity: Some(identity.clone()) }).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ReportRequest>(64);
    let hello = pb::report_request::Msg::Hello(pb::ReportHello { identity: Some(identity), epoch: 1 });
    tx.send(pb::ReportRequest { msg: Some(hello) }).await?;
    let mut acks = client.report(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let last_acked = Arc::new(AtomicU64::new(0));
    let reader = {
        let last_acked = last_acked.clone();
        tokio::spawn(async move {
            while let Ok(Some(ack)) = acks.message().await {
                if let Some(pb::report_ack::Msg::AckedSeq(seq)) = ack.msg {
                    let before = last_acked.swap(seq, Ordering::SeqCst);
                    acked.fetch_add(seq.saturating_sub(before) * per_flush as u64, Ordering::SeqCst);
                }
            }
        })
    };
    let mut ticker = tokio::time::interval(FLUSH);
    let mut seq = 0u64;
    while Instant::now() < until {
        ticker.tick().await;
        if seq >= last_acked.load(Ordering::SeqCst) + WINDOW {
            continue; // the aggregator is behind: a prober holds its batches and waits
        }
        seq += 1;
        let message = pb::ReportRequest { msg: Some(pb::report_request::Msg::Batch(batch(index, seq, per_flush))) };
        if tx.send(message).await.is_err() {
            bail!("prober {index}: the report stream closed");
        }
    }
    drop(tx);
    reader.abort();
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let probers: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let per_flush: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);

    let redis = RedisServer::start().context("starting redis-server")?;
    let dir = tempfile::tempdir()?;
    let mut config = format!(
        "listen = \"127.0.0.1:0\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\n[alerting]\nnotify = false\n\
         [defaults]\ninterval_s = 1\ntimeout_ms = 1000\n",
        redis.url()
    );
    for e in ENDPOINTS {
        config.push_str(&format!("[[checks]]\nid = \"{e}\"\nurl = \"https://{e}.example/health\"\n"));
    }
    let config_path = dir.path().join("aggregator.toml");
    std::fs::write(&config_path, config)?;
    let ready = dir.path().join("ready.json");
    let bin_dir = std::env::current_exe()?.parent().context("no binary directory")?.to_path_buf();
    let args =
        ["--config".to_string(), config_path.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let aggregator = ChildProcess::spawn(&bin_dir.join("mixmon-aggregator"), args, &[])
        .context("starting the release mixmon-aggregator (scripts/bench.sh ingest builds it)")?;
    let ready = mixmon_testkit::read_ready_file(&ready, Duration::from_secs(30)).await?;
    let address = format!("http://{}", ready["grpc"].as_str().context("no grpc address")?);

    let acked = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + WARM_UP + Duration::from_secs(seconds) + FLUSH;
    let mut tasks = Vec::new();
    for index in 0..probers {
        tasks.push(tokio::spawn(prober(address.clone(), index, per_flush, acked.clone(), until)));
    }
    tokio::time::sleep(WARM_UP).await;
    let (start_acked, start_commands) = (acked.load(Ordering::SeqCst), commands(&redis_info(redis.port())?));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (end_acked, end_commands) = (acked.load(Ordering::SeqCst), commands(&redis_info(redis.port())?));
    let rss = rss_mb(aggregator.pid()).unwrap_or(f64::NAN);
    for task in tasks {
        task.await??;
    }
    let results = end_acked - start_acked;
    figure("ingest_grpc_results_per_s", format!("{:.0}", results as f64 / elapsed));
    figure("ingest_grpc_probers", probers);
    figure("ingest_grpc_batch_results", per_flush);
    figure("ingest_grpc_flush_ms", FLUSH.as_millis());
    figure(
        "ingest_grpc_redis_commands_per_result",
        format!("{:.3}", (end_commands - start_commands) as f64 / results.max(1) as f64),
    );
    figure("ingest_grpc_aggregator_rss_mb", format!("{rss:.1}"));
    Ok(())
}
