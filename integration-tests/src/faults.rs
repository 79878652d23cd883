//! Fault scenarios with real processes: `redis-server`, `mixmon-aggregator` replicas and
//! `mixmon-prober`s with their write-ahead logs and ground-truth logs. Each scenario breaks
//! one thing while the probers keep probing, lets the system recover, stops the probers
//! gracefully and then counts, per (check, region, minute), what the store holds against
//! what the probers measured: `lost` results are measured but not stored, `duplicated` ones
//! stored more often than measured.
//!
//! The integration tests (`tests/faults.rs`) run them short and assert zero; `scripts/bench.sh
//! faults` runs them at full length and prints the figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_model::{Minute, SeriesKey};
use mixmon_store::{RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::{ChildProcess, ProberConfig, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{start, start_with_ready_file, unix_ms, write, READY_DEADLINE};

/// What a scenario measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    pub measured: u64,
    pub stored: u64,
    pub lost: u64,
    pub duplicated: u64,
}

/// Results per (check, region, minute start).
pub type Counts = BTreeMap<(String, String, i64), u64>;

/// How long the system gets to catch up after a fault before that counts as a failure.
const CATCH_UP: Duration = Duration::from_secs(90);
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// Answers every connection with `200 OK`: the endpoint the probers probe.
pub async fn ok_endpoint() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                // One request per connection; the probe opens a new one each time.
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// A port that is free now (bound, then released), so a restarted aggregator can reuse it.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct Aggregator {
    pub port: u16,
    config: PathBuf,
    dir: PathBuf,
    starts: u32,
    pub process: Option<ChildProcess>,
}

impl Aggregator {
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let ready = self.dir.join(format!("aggregator-{}-{}.json", self.port, self.starts));
        let service = start_with_ready_file(
            "mixmon-aggregator",
            &[
                "--config".into(),
                self.config.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", self.port),
                "--ready-file".into(),
                ready.display().to_string(),
            ],
            &ready,
        )
        .await?;
        self.process = Some(service.process);
        Ok(())
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.as_ref().map(|p| p.log_tail(n)).unwrap_or_default()
    }
}

pub struct Prober {
    pub region: String,
    config: PathBuf,
    pub truth: PathBuf,
    pub wal: PathBuf,
    pub process: Option<ChildProcess>,
}

impl Prober {
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.process = Some(start("mixmon-prober", &["--config".into(), self.config.display().to_string()])?);
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM and wait: the prober seals what it holds, sends it and waits for the acks.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.terminate()?;
            let status = process.wait_exit(EXIT_DEADLINE)?;
            if !status.success() {
                bail!("prober {} exited with {status}:\n{}", self.region, process.log_tail(30));
            }
            let log = std::fs::read_to_string(process.log_path()).unwrap_or_default();
            if log.contains("panicked") {
                bail!("prober {} panicked:\n{}", self.region, process.log_tail(60));
            }
        }
        Ok(())
    }

    /// How often this run of the prober connected to an aggregator.
    pub fn connections(&self) -> usize {
        self.process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.log_path()).ok())
            .map_or(0, |log| log.matches("connected to the control plane").count())
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.as_ref().map(|p| p.log_tail(n)).unwrap_or_default()
    }
}

/// One deployment under test.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub redis: RedisServer,
    pub aggregators: Vec<Aggregator>,
    pub probers: Vec<Prober>,
}

pub struct ClusterSpec {
    pub aggregators: usize,
    pub regions: Vec<&'static str>,
    pub checks: usize,
    pub interval_s: u32,
    pub append_only_redis: bool,
}

impl Cluster {
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let redis = RedisServer::builder().append_only(spec.append_only_redis).start()?;
        let endpoint = ok_endpoint().await?;
        let mut catalogue = format!(
            "[store]\nkind = \"redis\"\nurl = \"{}\"\n[defaults]\ninterval_s = {}\ntimeout_ms = 1000\n",
            redis.url(),
            spec.interval_s
        );
        for i in 0..spec.checks {
            catalogue.push_str(&format!("[[checks]]\nid = \"c{i}\"\nurl = \"http://{endpoint}/health\"\n"));
        }
        let config = write(dir.path(), "aggregator.toml", &catalogue)?;
        let mut aggregators = Vec::new();
        for _ in 0..spec.aggregators {
            let mut aggregator = Aggregator {
                port: free_port()?,
                config: config.clone(),
                dir: dir.path().into(),
                starts: 0,
                process: None,
            };
            aggregator.start().await?;
            aggregators.push(aggregator);
        }
        let addresses: Vec<String> = aggregators.iter().map(|a| a.address()).collect();
        let mut probers = Vec::new();
        for region in spec.regions {
            let truth = dir.path().join(format!("truth-{region}.jsonl"));
            let wal_base = dir.path().join(format!("wal-{region}"));
            // The prober keeps its log in a directory named after its id.
            let wal = wal_base.join(format!("prober-{region}"));
            let config = ProberConfig::new(region, &addresses)
                .buffer_dir(&wal_base)
                .ground_truth_file(&truth)
                .write(dir.path(), &format!("prober-{region}.toml"))?;
            let mut prober = Prober { region: region.to_string(), config, truth, wal, process: None };
            prober.start()?;
            probers.push(prober);
        }
        Ok(Self { dir, redis, aggregators, probers })
    }

    /// Everything the probers measured so far.
    pub fn measured(&self) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        for prober in &self.probers {
            for ((check, region, minute), n) in truth_counts(&prober.truth)? {
                *counts.entry((check, region, minute)).or_default() += n;
            }
        }
        Ok(counts)
    }

    /// Everything the store holds.
    pub async fn stored(&self) -> anyhow::Result<Counts> {
        stored_counts(&self.redis.url()).await
    }

    /// Waits until the store holds at least everything measured up to now: delivery flows.
    pub async fn wait_caught_up(&self, deadline: Duration) -> anyhow::Result<()> {
        let measured = self.measured()?;
        let end = Instant::now() + deadline;
        loop {
            if let Ok(stored) = self.stored().await {
                if measured.iter().all(|(key, n)| stored.get(key).copied().unwrap_or(0) >= *n) {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                bail!("the store did not catch up within {deadline:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every prober stored something (all connected and delivering).
    pub async fn wait_flowing(&self) -> anyhow::Result<()> {
        let end = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(stored) = self.stored().await {
                if self.probers.iter().all(|p| stored.keys().any(|(_, region, _)| *region == p.region)) {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                bail!("probers did not start delivering within {READY_DEADLINE:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every prober gracefully, then compares the store with the ground truth.
    pub async fn finish(&mut self) -> anyhow::Result<Outcome> {
        for prober in &mut self.probers {
            prober.stop()?;
        }
        // Acknowledged means stored; a short grace covers nothing but slow reads.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (measured, stored) = (self.measured()?, self.stored().await?);
            let outcome = compare(&measured, &stored);
            if outcome.lost == 0 && outcome.duplicated == 0 {
                return Ok(outcome);
            }
            if Instant::now() > end {
                // Which series and minutes differ, for whoever debugs a failure.
                for (key, n) in &measured {
                    let s = stored.get(key).copied().unwrap_or(0);
                    if s != *n {
                        eprintln!("{key:?}: measured {n}, stored {s}");
                    }
                }
                return Ok(outcome);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        for a in &self.aggregators {
            text.push_str(&a.log_tail(15));
        }
        for p in &self.probers {
            text.push_str(&p.log_tail(15));
        }
        text
    }
}

pub fn compare(measured: &Counts, stored: &Counts) -> Outcome {
    let mut outcome =
        Outcome { measured: measured.values().sum(), stored: stored.values().sum(), ..Outcome::default() };
    for (key, n) in measured {
        let s = stored.get(key).copied().unwrap_or(0);
        outcome.lost += n.saturating_sub(s);
        outcome.duplicated += s.saturating_sub(*n);
    }
    for (key, s) in stored {
        if !measured.contains_key(key) {
            outcome.duplicated += s;
        }
    }
    outcome
}

/// Counts a ground-truth log; a line still being written (no newline yet) is not counted.
pub fn truth_counts(path: &Path) -> anyhow::Result<Counts> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Counts::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut counts = Counts::new();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("ground truth line {line:?}"))?;
        let started = v["started_at_ms"].as_i64().context("started_at_ms")?;
        let key = (
            v["check"].as_str().unwrap_or_default().to_string(),
            v["region"].as_str().unwrap_or_default().to_string(),
            Minute::containing(started).start_ms(),
        );
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}

/// Counts of every series in the store over the last hours (fresh connection each time, so no
/// cache stands between the test and Redis).
pub async fn stored_counts(redis_url: &str) -> anyhow::Result<Counts> {
    let store = RedisStore::connect(RedisStoreConfig::new(redis_url)).await?;
    let series: Vec<SeriesKey> = store.list_series().await?;
    let now = unix_ms();
    let from = Minute::containing(now - 3 * 3_600_000);
    let to = Minute::containing(now + 120_000);
    let rollups = store.read_rollups(&series, from, to).await?;
    let mut counts = Counts::new();
    for (key, minutes) in series.iter().zip(rollups) {
        for (minute, rollup) in minutes {
            if rollup.total > 0 {
                counts.insert((key.check.to_string(), key.region.to_string(), minute.start_ms()), rollup.total);
            }
        }
    }
    Ok(counts)
}

fn small_cluster(aggregators: usize, append_only_redis: bool) -> ClusterSpec {
    ClusterSpec { aggregators, regions: vec!["eu-west", "us-west"], checks: 10, interval_s: 1, append_only_redis }
}

/// The aggregator is killed for `outage` while the probers keep probing, then started again
/// on the same address.
pub async fn aggregator_outage(outage: Duration) -> anyhow::Result<Outcome> {
    let mut cluster = Cluster::start(small_cluster(1, false)).await?;
    cluster.wait_flowing().await?;
    let connections: Vec<usize> = cluster.probers.iter().map(Prober::connections).collect();
    cluster.aggregators[0].kill();
    // The outage itself, as long as the scenario asks.
    tokio::time::sleep(outage).await;
    cluster.aggregators[0].start().await?;
    // Each prober reconnects (after its backoff) and sends what it buffered.
    let end = Instant::now() + CATCH_UP;
    while cluster.probers.iter().zip(&connections).any(|(p, before)| p.connections() <= *before) {
        if Instant::now() > end {
            bail!("probers did not reconnect after the outage\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.wait_caught_up(CATCH_UP).await?;
    cluster.finish().await
}

/// Batches in flight when the prober is killed: more than one, so resends cover a run of them.
const UNACKED_AT_KILL: usize = 3;

/// One prober is killed with SIGKILL mid-stream and restarted on the same buffer directory,
/// once the aggregator reported it silent.
/// To make "mid-stream" certain, Redis is paused (SIGSTOP) first: the prober's last batches
/// are sent but unacknowledged when it dies, and the aggregator stores them once Redis
/// resumes, with nobody left to acknowledge to. The restarted prober sends them again under
/// the same sequence numbers, and the store must recognise every one.
pub async fn prober_kill(down: Duration) -> anyhow::Result<Outcome> {
    let mut cluster = Cluster::start(small_cluster(1, false)).await?;
    cluster.wait_flowing().await?;
    let redis_pid = cluster.redis.pid().context("redis is not running")?;
    signal(redis_pid, "STOP")?;
    // A few batches sent and held by the aggregator, not acknowledged: counted in the
    // prober's own write-ahead log.
    let wal = cluster.probers[0].wal.clone();
    mixmon_testkit::eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        let wal = wal.clone();
        async move { mixmon_prober::wal::inspect(&wal).is_ok_and(|log| log.sealed.len() >= UNACKED_AT_KILL) }
    })
    .await
    .context("the prober never had batches in flight while Redis was paused")?;
    cluster.probers[0].kill();
    signal(redis_pid, "CONT")?;
    // The prober stays dead this long, as the scenario asks.
    tokio::time::sleep(down).await;
    // The aggregator notices the silence (after three missed heartbeats, 15 s) and says so,
    // as an event, not as a failure of anything the prober probes.
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let log = cluster.aggregators[0]
            .process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.log_path()).ok())
            .unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains("prober_silent") && l.contains(&format!("prober-{}", cluster.probers[0].region)))
        {
            break;
        }
        if Instant::now() > end {
            bail!(
                "the aggregator never reported the killed prober as silent:\n{}",
                cluster.aggregators[0].log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.probers[0].start()?;
    // The restarted prober recovers its log and reconnects before it can catch up.
    let end = Instant::now() + CATCH_UP;
    loop {
        let prober = &cluster.probers[0];
        let log = prober.process.as_ref().and_then(|p| std::fs::read_to_string(p.log_path()).ok()).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("recovered the write-ahead log")) {
            // The kill must have caught batches in flight, or the resend path went untested.
            let batches = field(line, "batches").unwrap_or(0);
            if batches == 0 {
                bail!("the prober died with no batch in flight, so nothing was resent: {line}");
            }
            if prober.connections() > 0 {
                break;
            }
        }
        if Instant::now() > end {
            bail!("the restarted prober did not recover its write-ahead log and reconnect:\n{}", prober.log_tail(30));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.wait_caught_up(CATCH_UP).await?;
    cluster.finish().await
}

/// `redis-server` (append-only, `appendfsync always`) is killed under load for `down` and
/// started again on the same data; the aggregator holds and retries.
pub async fn redis_restart(down: Duration) -> anyhow::Result<Outcome> {
    let mut cluster = Cluster::start(small_cluster(1, true)).await?;
    cluster.wait_flowing().await?;
    cluster.redis.kill();
    // Redis stays down this long, as the scenario asks.
    tokio::time::sleep(down).await;
    cluster.redis.restart()?;
    cluster.wait_caught_up(CATCH_UP).await?;
    cluster.finish().await
}

/// Two aggregator replicas on one Redis; the one the probers use is killed. Returns the
/// outcome and the seconds until the other replica stored the first batch.
pub async fn failover() -> anyhow::Result<(Outcome, f64)> {
    let mut cluster = Cluster::start(small_cluster(2, false)).await?;
    cluster.wait_flowing().await?;
    // Probers start on the first address of their list.
    cluster.aggregators[0].kill();
    let killed = Instant::now();
    let at_kill: u64 = cluster.stored().await?.values().sum();
    let failover_s = loop {
        let now: u64 = cluster.stored().await?.values().sum();
        if now > at_kill {
            break killed.elapsed().as_secs_f64();
        }
        if killed.elapsed() > CATCH_UP {
            bail!("no batch was stored through the second replica\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    cluster.wait_caught_up(CATCH_UP).await?;
    Ok((cluster.finish().await?, failover_s))
}

/// Seconds from saving an edited catalogue file until a running prober applied it (the
/// aggregator polls the file every 250 ms and pushes the change on the assignment stream).
pub async fn catalogue_propagation() -> anyhow::Result<f64> {
    let spec =
        ClusterSpec { aggregators: 1, regions: vec!["eu-west"], checks: 3, interval_s: 1, append_only_redis: false };
    let mut cluster = Cluster::start(spec).await?;
    cluster.wait_flowing().await?;
    let config = cluster.dir.path().join("aggregator.toml");
    let original = std::fs::read_to_string(&config)?;
    let url = original.lines().find(|l| l.starts_with("url = \"http:")).context("no check url")?.to_string();
    let applied_checks = |prober: &Prober| -> Vec<u64> {
        prober
            .process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.log_path()).ok())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("assignment applied"))
            .filter_map(|l| field(l, "checks"))
            .collect()
    };
    let saved = Instant::now();
    std::fs::write(&config, format!("{original}[[checks]]\nid = \"added\"\n{url}\n"))?;
    loop {
        if applied_checks(&cluster.probers[0]).contains(&4) {
            let seconds = saved.elapsed().as_secs_f64();
            cluster.finish().await?;
            return Ok(seconds);
        }
        if saved.elapsed() > Duration::from_secs(30) {
            bail!("the prober never applied the edited catalogue\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bytes the write-ahead log grows by per hour of an aggregator outage, for `checks` checks
/// every `interval_s`: a real prober probes with nobody acknowledging for `run`, and its log
/// size per result is scaled to an hour.
pub async fn buffer_bytes_per_hour(checks: usize, interval_s: u32, run: Duration) -> anyhow::Result<(u64, u64)> {
    let spec = ClusterSpec { aggregators: 1, regions: vec!["eu-west"], checks, interval_s, append_only_redis: false };
    let mut cluster = Cluster::start(spec).await?;
    cluster.wait_flowing().await?;
    // Everything from here on stays in the log.
    cluster.aggregators[0].kill();
    let before = (dir_bytes(&cluster.probers[0].wal)?, cluster.measured()?.values().sum::<u64>());
    // The measured stretch of buffering: its length is what the bytes are divided by.
    tokio::time::sleep(run).await;
    let after = (dir_bytes(&cluster.probers[0].wal)?, cluster.measured()?.values().sum::<u64>());
    let results = after.1.saturating_sub(before.1);
    if results == 0 {
        bail!("the prober measured nothing in {run:?}\n{}", cluster.logs());
    }
    let bytes_per_result = after.0.saturating_sub(before.0) as f64 / results as f64;
    let per_hour = checks as f64 * 3_600.0 / f64::from(interval_s);
    cluster.probers[0].kill();
    Ok(((bytes_per_result * per_hour).round() as u64, bytes_per_result.round() as u64))
}

/// A numeric field `name=value` of a log line, colours and all.
pub fn field(line: &str, name: &str) -> Option<u64> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An ANSI colour sequence: ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let start = plain.find(&format!("{name}="))? + name.len() + 1;
    plain[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    // `kill(1)` keeps the harness free of unsafe libc calls.
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    if !status.success() {
        bail!("kill -{name} {pid} exited with {status}");
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
