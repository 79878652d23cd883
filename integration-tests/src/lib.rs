//! A small harness that starts mixmon's real binaries as processes, each with a config file
//! in a temporary directory, and reads back the addresses they bound (ready files), so each
//! end-to-end test reads as a scenario. `faults` holds the fault scenarios that both the
//! tests and `scripts/bench.sh faults` run; `soak` the day of load and faults that
//! `scripts/soak.sh` runs; `dashboards` the Grafana dashboards' requests that the dashboards
//! test and `scripts/bench.sh dashboards` send.

pub mod alerting;
pub mod dashboards;
pub mod faults;
pub mod notifications;
pub mod receivers;
pub mod smtp;
pub mod soak;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use mixmon_testkit::{binary_path, read_ready_file, ChildProcess};
use serde_json::Value;

pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A running binary and the addresses it announced.
pub struct Service {
    pub process: ChildProcess,
    pub ready: Value,
}

impl Service {
    pub fn address(&self, key: &str) -> anyhow::Result<String> {
        self.ready
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("ready file has no {key:?}: {}", self.ready))
    }
}

pub fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts `binary` with `args`, then waits for the JSON it writes to `ready_file`.
pub async fn start_with_ready_file(binary: &str, args: &[String], ready_file: &Path) -> anyhow::Result<Service> {
    let mut process = ChildProcess::spawn(&binary_path(binary)?, args, &[("RUST_LOG", "info")])?;
    match read_ready_file(ready_file, READY_DEADLINE).await {
        Ok(ready) => Ok(Service { process, ready }),
        Err(err) => {
            let status = process.try_status().ok().flatten();
            bail!("{binary} did not become ready ({err}); exit status {status:?}; log:\n{}", process.log_tail(40))
        }
    }
}

/// `mixmon-mixer-sim` with `regions` (`us-west=2,eu-west=2`), its admin API on a free port and
/// its addresses in `dir/sim.json`, ready; `extra` are further flags (`--nodes-per-region 2`).
pub async fn start_simulator(dir: &Path, regions: &str, extra: &[&str]) -> anyhow::Result<Service> {
    let ready = dir.join("sim.json");
    let mut args: Vec<String> =
        ["--regions", regions, "--admin-addr", "127.0.0.1:0", "--addr-file"].map(String::from).to_vec();
    args.push(ready.display().to_string());
    args.extend(extra.iter().map(|a| a.to_string()));
    start_with_ready_file("mixmon-mixer-sim", &args, &ready).await
}

/// `mixmon-aggregator` with the config file `config` (in `dir`), ready; and its gRPC address.
pub async fn start_aggregator(dir: &Path, config: &Path) -> anyhow::Result<(Service, String)> {
    let ready = dir.join("aggregator.json");
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let aggregator = start_with_ready_file("mixmon-aggregator", &args, &ready).await?;
    let grpc = aggregator.address("grpc")?;
    Ok((aggregator, grpc))
}

/// `mixmon-query` on the Redis at `redis_url`, ready; and its base URL.
pub async fn start_query(dir: &Path, redis_url: &str) -> anyhow::Result<(Service, String)> {
    let config = write(
        dir,
        "query.toml",
        &format!("listen = \"127.0.0.1:0\"\n[store]\nkind = \"redis\"\nurl = \"{redis_url}\"\n"),
    )?;
    let ready = dir.join("query.json");
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let query = start_with_ready_file("mixmon-query", &args, &ready).await?;
    let url = format!("http://{}", query.address("http")?);
    Ok((query, url))
}

pub fn start(binary: &str, args: &[String]) -> anyhow::Result<ChildProcess> {
    Ok(ChildProcess::spawn(&binary_path(binary)?, args, &[("RUST_LOG", "info")])?)
}

/// How long a binary that is expected to exit (a refused config, `mixmon validate`) may take.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `binary` until it exits: its exit code and the tail of its log (never a panic).
pub fn run_to_exit(binary: &str, args: &[String]) -> anyhow::Result<(i32, String)> {
    let mut process = start(binary, args)?;
    let status = process.wait_exit(EXIT_DEADLINE)?;
    let log = process.log_tail(50);
    anyhow::ensure!(!log.contains("panicked"), "{binary} panicked:\n{log}");
    Ok((status.code().unwrap_or(-1), log))
}

/// One line of a prober's ground-truth log.
#[derive(Debug, Clone)]
pub struct Truth {
    pub check: String,
    pub region: String,
    pub started_at_ms: i64,
    pub success: bool,
    pub duration_us: u64,
}

pub fn read_ground_truth(path: &Path) -> anyhow::Result<Vec<Truth>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).with_context(|| format!("ground truth line {line:?}"))?;
            Ok(Truth {
                check: v["check"].as_str().unwrap_or_default().to_string(),
                region: v["region"].as_str().unwrap_or_default().to_string(),
                started_at_ms: v["started_at_ms"].as_i64().unwrap_or_default(),
                success: v["success"].as_bool().unwrap_or_default(),
                duration_us: v["duration_us"].as_u64().unwrap_or_default(),
            })
        })
        .collect()
}

/// The exact quantile by the rank definition the sketch promises to approximate.
pub fn exact_quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * (values.len() - 1) as f64).floor() as usize;
    values.get(rank).copied()
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
