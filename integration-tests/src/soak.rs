//! The soak: the whole system at the operators' scale, at wall-clock speed, through a scripted
//! chaos schedule, then compared with the probers' ground truth.
//!
//! Real processes on a real `redis-server` (append-only, `appendfsync always`): the simulated
//! fleet (4 regions, 30 pods, 12 nodes, 6 endpoint fronts), two aggregator replicas, two query
//! replicas, and one prober per region probing every endpoint every 5 s, scraping its node's
//! mixer pods and sampling its node and pods. Each prober reaches the aggregators through
//! proxies of this harness, so a region's uplink can be cut. Meanwhile `clients` dashboard
//! clients refresh every 10 s against either query replica (the way a Kubernetes Service
//! spreads them), and the schedule, once per 15 minutes of run (at least once):
//! SIGKILLs a prober and restarts it, SIGKILLs an aggregator replica and restarts it, SIGKILLs a
//! query replica and restarts it, SIGKILLs Redis and restarts it from its append-only file,
//! cuts a region off (its probes blackholed at the fleet, its uplink to the aggregators cut)
//! for a minute, and fills a prober's buffer disk (a small tmpfs; needs root) for a minute.
//!
//! At the end the probers stop gracefully and the harness counts what the store holds against
//! what the probers measured (results lost, duplicated), compares every (endpoint, region,
//! minute) success rate the query API answers with the ground truth, and reports each steady
//! (never killed) process's resident-memory growth from the sixth of the run (the 5th of 30
//! minutes) to its end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_model::Minute;
use mixmon_testkit::{http, ChildProcess, ProberConfig, RedisServer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::alerting::{send, source_ip, REGIONS};
use crate::faults::{compare, free_port, stored_counts, truth_counts, Counts};
use crate::{start, start_simulator, start_with_ready_file, unix_ms, write, Service};

/// Every region probes every endpoint at this interval (the operators' figure).
const INTERVAL_S: u32 = 5;
/// How often a dashboard client refreshes.
const REFRESH: Duration = Duration::from_secs(10);
/// A query answered 503 this long after Redis answered again still counts as Redis being
/// down: the services' connections reconnect with a backoff.
const REDIS_GRACE_MS: i64 = 15_000;
/// The store gets this long to hold everything measured after the probers stopped.
const CATCH_UP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub minutes: f64,
    pub clients: usize,
}

/// What a soak measured.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub measured: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub query_requests: u64,
    /// 5xx answers outside the moments Redis was down.
    pub query_5xx: u64,
    /// 503 answers while Redis was down (or reconnecting): the clear answer then.
    pub query_503_redis_down: u64,
    /// Requests neither replica answered (connection refused by both).
    pub query_unreachable: u64,
    /// (endpoint, region, minute) figures compared with the ground truth, and those off by
    /// more than one probe (or whose probe count differs).
    pub figures_checked: u64,
    pub figures_wrong: u64,
    /// Steady process name and its resident-memory growth in MB.
    pub rss_growth_mb: Vec<(String, f64)>,
    /// Whether the buffer disk was filled (it needs root to mount a small tmpfs).
    pub disk_filled: bool,
    /// What the chaos schedule did, in order, with seconds since start.
    pub events: Vec<String>,
    /// The first few 5xx messages and wrong figures, for whoever reads a failure.
    pub samples: Vec<String>,
}

impl SoakReport {
    /// What a soak must show: nothing lost or counted twice, no 5xx but Redis's moments,
    /// every figure within one probe of the truth.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.measured == 0 {
            problems.push("the probers measured nothing".into());
        }
        if self.lost > 0 {
            problems.push(format!("{} results lost", self.lost));
        }
        if self.duplicated > 0 {
            problems.push(format!("{} results duplicated", self.duplicated));
        }
        if self.query_5xx > 0 {
            problems.push(format!("{} queries answered 5xx outside Redis's downtime", self.query_5xx));
        }
        if self.query_requests == 0 {
            problems.push("no dashboard query was answered".into());
        }
        if self.figures_checked == 0 {
            problems.push("no figure was compared with the ground truth".into());
        }
        if self.figures_wrong > 0 {
            problems.push(format!("{} of {} figures off the ground truth", self.figures_wrong, self.figures_checked));
        }
        problems
    }
}

/// A TCP proxy from one region's prober to one aggregator replica: cutting it drops every
/// open connection and refuses new ones, as a partition between the region and the center
/// would (the prober sees its stream break and its reconnects fail).
struct Uplink {
    port: u16,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Uplink {
    async fn start(target_port: u16) -> anyhow::Result<Uplink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0_u64);
        let (accept_open, accept_cuts) = (Arc::clone(&open), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset
                }
                let mut cut = accept_cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target_port)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Uplink { port, open, cuts })
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if !open {
            self.cuts.send_modify(|n| *n += 1);
        }
    }
}

/// A process the schedule kills and starts again with the same arguments (the same port).
struct Restartable {
    name: String,
    binary: &'static str,
    args: Vec<String>,
    /// Where it writes its ready file (`None`: it writes none; started without waiting).
    ready_dir: Option<PathBuf>,
    starts: u32,
    process: Option<ChildProcess>,
}

impl Restartable {
    async fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let process = match &self.ready_dir {
            Some(dir) => {
                let ready = dir.join(format!("{}-{}.json", self.name.replace(' ', "-"), self.starts));
                let mut args = self.args.clone();
                args.extend(["--ready-file".to_string(), ready.display().to_string()]);
                let Service { process, .. } = start_with_ready_file(self.binary, &args, &ready).await?;
                process
            }
            None => start(self.binary, &self.args)?,
        };
        self.process = Some(process);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    fn log_tail(&self, n: usize) -> String {
        let tail = self.process.as_ref().map(|p| p.log_tail(n)).unwrap_or_default();
        format!("--- {} log:\n{tail}\n", self.name)
    }

    fn panicked(&self) -> bool {
        self.process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.log_path()).ok())
            .is_some_and(|log| log.contains("panicked"))
    }
}

/// A small tmpfs mounted over a prober's buffer directory, so the harness can fill it.
struct SmallDisk {
    path: PathBuf,
    mounted: bool,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u32) -> SmallDisk {
        let _ = std::fs::create_dir_all(path);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        SmallDisk { path: path.to_path_buf(), mounted }
    }

    /// Writes a file until the disk refuses (ENOSPC); returns its path.
    fn fill(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler)?;
        let chunk = vec![0_u8; 1 << 20];
        loop {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        // Every last byte: small writes until even those fail.
        while file.write_all(&chunk[..512]).is_ok() {}
        Ok(filler)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// When Redis was down: (from, to) in unix ms; `to` is `None` while it still is.
type DownWindows = Arc<Mutex<Vec<(i64, Option<i64>)>>>;

#[derive(Default)]
struct ClientTally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    redis_down_503: AtomicU64,
    unreachable: AtomicU64,
    samples: Mutex<Vec<String>>,
}

fn in_redis_window(windows: &DownWindows, at_ms: i64) -> bool {
    windows
        .lock()
        .map(|w| w.iter().any(|(from, to)| at_ms >= *from && to.is_none_or(|to| at_ms <= to + REDIS_GRACE_MS)))
        .unwrap_or(false)
}

/// One dashboard client: every refresh, a dashboard's worth of panel queries over the last
/// hour (eight metrics from the catalogue, a different eight per client and refresh) and the
/// status API, each to one replica and, when that one refuses the connection, the other.
async fn dashboard_client(
    index: usize,
    replicas: Vec<String>,
    metrics: Arc<Vec<String>>,
    stop: watch::Receiver<bool>,
    windows: DownWindows,
    tally: Arc<ClientTally>,
) {
    tokio::time::sleep(REFRESH.mul_f64(index as f64 / 50.0)).await;
    let mut refresh = 0_usize;
    while !*stop.borrow() {
        let now = unix_ms();
        let mut requests: Vec<(&str, String, Option<Vec<u8>>)> = Vec::new();
        for k in 0..8 {
            let metric = &metrics[(index * 8 + refresh * 3 + k) % metrics.len()];
            let body = json!({
                "range": {"from": now - 3_600_000, "to": now},
                "intervalMs": 15_000,
                "maxDataPoints": 1_000,
                "targets": [{"refId": "A", "target": metric, "payload": {}}],
            });
            requests.push(("POST", "/query".into(), Some(serde_json::to_vec(&body).unwrap_or_default())));
        }
        requests.push(("GET", "/api/v1/status".into(), None));
        for (method, path, body) in requests {
            let first = (index + refresh) % replicas.len();
            let mut answered = None;
            for attempt in 0..replicas.len() {
                let base = &replicas[(first + attempt) % replicas.len()];
                let headers = [("Content-Type", "application/json")];
                match http::request(method, &format!("{base}{path}"), &headers, body.as_deref()).await {
                    Ok(response) => {
                        answered = Some(response);
                        break;
                    }
                    Err(_) => continue,
                }
            }
            tally.requests.fetch_add(1, Ordering::Relaxed);
            let Some(response) = answered else {
                tally.unreachable.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if response.status >= 500 {
                if response.status == 503 && in_redis_window(&windows, unix_ms()) {
                    tally.redis_down_503.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.server_errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut samples) = tally.samples.lock() {
                        if samples.len() < 5 {
                            let text: String = response.text().chars().take(200).collect();
                            samples.push(format!("{method} {path}: {} {text}", response.status));
                        }
                    }
                }
            }
        }
        refresh += 1;
        let mut stop = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Resident memory of a process in MB (`VmRSS`).
/// How much a process's resident memory grew over the measured span: the median of its last
/// window of samples minus the median of its first, each window a quarter of the span and at
/// most 5 minutes. A query replica under 50 clients swings by a hundred megabytes between one
/// sample and the next (a 24 h answer in flight or not); two single samples would measure the
/// swing, the medians measure the level it swings around, which is what a leak moves.
fn rss_growth(samples: &[(Duration, f64)]) -> f64 {
    let (Some(&(from, _)), Some(&(to, _))) = (samples.first(), samples.last()) else {
        return 0.0;
    };
    let window = ((to - from) / 4).min(Duration::from_secs(300));
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let first = median(samples.iter().filter(|(at, _)| *at <= from + window).map(|(_, rss)| *rss).collect());
    let last = median(samples.iter().filter(|(at, _)| *at + window >= to).map(|(_, rss)| *rss).collect());
    last - first
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Per (endpoint, region, minute): (successes, total).
type Successes = BTreeMap<(String, String, i64), (u64, u64)>;

/// Per (endpoint, region, minute): (successes, total) the probers measured.
fn truth_successes(paths: &[PathBuf]) -> anyhow::Result<Successes> {
    let mut out = Successes::new();
    for path in paths {
        for t in crate::read_ground_truth(path)? {
            let entry = out.entry((t.check, t.region, Minute::containing(t.started_at_ms).start_ms())).or_default();
            entry.1 += 1;
            if t.success {
                entry.0 += 1;
            }
        }
    }
    Ok(out)
}

/// Every (endpoint, region) series of `metric` the query API answers, per minute.
async fn per_minute(query_url: &str, metric: &str, from: i64, to: i64) -> anyhow::Result<Figures> {
    let body = json!({
        "range": {"from": from, "to": to},
        "intervalMs": 60_000,
        "maxDataPoints": 100_000,
        "targets": [{"refId": "A", "target": metric, "payload": {}}],
    });
    let body = serde_json::to_vec(&body)?;
    let response =
        http::request("POST", &format!("{query_url}/query"), &[("Content-Type", "application/json")], Some(&body))
            .await?;
    ensure!(response.status == 200, "/query {metric}: {} {}", response.status, response.text());
    let mut out = Figures::new();
    for series in response.json()?.as_array().context("/query answers a list")? {
        let endpoint = series["tags"]["endpoint"].as_str().unwrap_or_default().to_string();
        let region = series["tags"]["region"].as_str().unwrap_or_default().to_string();
        for point in series["datapoints"].as_array().into_iter().flatten() {
            if let (Some(value), Some(ts)) = (point[0].as_f64(), point[1].as_i64()) {
                out.insert((endpoint.clone(), region.clone(), ts), value);
            }
        }
    }
    Ok(out)
}

/// Per (endpoint, region, minute start): the value the query API answered.
type Figures = BTreeMap<(String, String, i64), f64>;

pub async fn run(options: SoakOptions) -> anyhow::Result<SoakReport> {
    let run_for = Duration::from_secs_f64(options.minutes * 60.0);
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name);
    let mut report = SoakReport::default();

    let mut redis = RedisServer::builder().append_only(true).start()?;
    let sim = start_simulator(dir.path(), "us-west=8,us-east=8,eu-west=7,ap=7", &["--nodes-per-region", "3"]).await?;
    let admin = format!("http://{}", sim.address("admin")?);
    let endpoints = sim.ready["endpoints"].as_object().context("the simulator lists no endpoints")?.clone();

    let mut checks = String::new();
    for (name, addr) in &endpoints {
        let addr = addr.as_str().context("endpoint address")?;
        checks.push_str(&format!("[[checks]]\nid = \"{name}\"\nurl = \"http://{addr}/health\"\n"));
        if REGIONS.contains(&name.as_str()) {
            checks.push_str(&format!("labels = {{ region = \"{name}\" }}\n"));
        }
    }
    let aggregator_config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            "regions = {REGIONS:?}\n[store]\nkind = \"redis\"\nurl = \"{redis}\"\n[alerting]\nnotify = false\n\
             [defaults]\ninterval_s = {INTERVAL_S}\ntimeout_ms = 1000\n{checks}",
            redis = redis.url()
        ),
    )?;
    let mut aggregators = Vec::new();
    for name in ["aggregator A", "aggregator B"] {
        let port = free_port()?;
        let mut aggregator = Restartable {
            name: name.into(),
            binary: "mixmon-aggregator",
            args: vec![
                "--config".into(),
                aggregator_config.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ],
            ready_dir: Some(dir.path().into()),
            starts: 0,
            process: None,
        };
        aggregator.start().await?;
        aggregators.push((aggregator, port));
    }
    let mut queries = Vec::new();
    let mut query_urls = Vec::new();
    for name in ["query A", "query B"] {
        let port = free_port()?;
        let config = write(
            dir.path(),
            &format!("{}.toml", name.replace(' ', "-")),
            &format!("listen = \"127.0.0.1:{port}\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\n", redis.url()),
        )?;
        let mut query = Restartable {
            name: name.into(),
            binary: "mixmon-query",
            args: vec!["--config".into(), config.display().to_string()],
            ready_dir: Some(dir.path().into()),
            starts: 0,
            process: None,
        };
        query.start().await?;
        queries.push(query);
        query_urls.push(format!("http://127.0.0.1:{port}"));
    }

    // Region index 3 (ap) is cut off; eu-west's buffer disk is filled; us-east's prober is
    // killed; us-west's prober stays steady.
    let disk = SmallDisk::mount(&path("wal-eu-west"), 16);
    let mut uplinks: Vec<Vec<Uplink>> = Vec::new();
    let mut probers = Vec::new();
    let mut truths = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        let mut links = Vec::new();
        for (_, port) in &aggregators {
            links.push(Uplink::start(*port).await?);
        }
        // Half the regions prefer replica B, so killing either one moves probers.
        let mut addresses: Vec<String> = links.iter().map(|l| format!("http://127.0.0.1:{}", l.port)).collect();
        if i % 2 == 1 {
            addresses.reverse();
        }
        uplinks.push(links);
        let truth = path(&format!("truth-{region}.jsonl"));
        let config = ProberConfig::new(region, &addresses)
            .node(&format!("node-{region}-0"))
            .buffer_dir(&path(&format!("wal-{region}")))
            .ground_truth_file(&truth)
            .source_ip(&source_ip(i))
            .section(&format!(
                "[scrape]\ninterval_ms = 15000\ntimeout_ms = 5000\n\
                 [scrape.kubernetes]\napi_url = \"{admin}/k8s\"\ndiscovery_interval_ms = 30000\n\
                 [pods]\ninterval_ms = 15000\n[node]\ninterval_ms = 15000\nsource = \"kubelet\"\n"
            ))
            .write(dir.path(), &format!("prober-{region}.toml"))?;
        let mut prober = Restartable {
            name: format!("prober {region}"),
            binary: "mixmon-prober",
            args: vec!["--config".into(), config.display().to_string()],
            ready_dir: None,
            starts: 0,
            process: None,
        };
        prober.start().await?;
        probers.push(prober);
        truths.push(truth);
    }

    let started = Instant::now();
    let started_ms = unix_ms();
    let since = move || started.elapsed().as_secs_f64();
    let logs = |aggregators: &[(Restartable, u16)], queries: &[Restartable], probers: &[Restartable]| {
        let mut text = String::new();
        aggregators.iter().for_each(|(a, _)| text.push_str(&a.log_tail(15)));
        queries.iter().for_each(|q| text.push_str(&q.log_tail(10)));
        probers.iter().for_each(|p| text.push_str(&p.log_tail(10)));
        text
    };

    // The catalogue the dashboards draw from, from a query replica once it answers.
    let mut metrics = Vec::new();
    for _ in 0..100 {
        if let Ok(response) = http::request("POST", &format!("{}/metrics", query_urls[0]), &[], Some(b"{}")).await {
            if let Ok(list) = response.json() {
                metrics = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["value"].as_str().map(String::from))
                    .collect();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(!metrics.is_empty(), "the query service lists no metrics");
    let (stop_clients, stop_rx) = watch::channel(false);
    let windows: DownWindows = Arc::default();
    let tally = Arc::new(ClientTally::default());
    let metrics = Arc::new(metrics);
    let mut clients = Vec::new();
    for index in 0..options.clients {
        clients.push(tokio::spawn(dashboard_client(
            index,
            query_urls.clone(),
            Arc::clone(&metrics),
            stop_rx.clone(),
            Arc::clone(&windows),
            Arc::clone(&tally),
        )));
    }

    // The schedule: per cycle of at most 15 minutes, each fault at its share of the cycle.
    let cycles = ((options.minutes / 15.0).round() as u32).max(1);
    let cycle = run_for / cycles;
    let hold = (cycle / 8).min(Duration::from_secs(60));
    // Memory of the steady processes (never killed) and of Redis (its latest run), sampled
    // every 5 s from a sixth of the run on: the 5th to the 30th minute of a 30-minute soak.
    let redis_pid = Arc::new(AtomicU32::new(redis.pid().unwrap_or(0)));
    let steady: Vec<(String, Option<u32>)> = vec![
        ("aggregator A".into(), aggregators[0].0.pid()),
        ("query A".into(), queries[0].pid()),
        ("prober us-west".into(), probers[0].pid()),
    ];
    let rss_from = run_for / 6;
    let sampler = {
        let redis_pid = Arc::clone(&redis_pid);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut measured: BTreeMap<String, Vec<(Duration, f64)>> = BTreeMap::new();
            let mut trace = Vec::new();
            let mut samples = 0_u64;
            loop {
                let mut pids = steady.clone();
                pids.push(("redis".into(), Some(redis_pid.load(Ordering::SeqCst))));
                let mut line = format!("{:.0}s rss MB:", started.elapsed().as_secs_f64());
                for (name, pid) in pids {
                    if let Some(rss) = pid.and_then(rss_mb) {
                        line.push_str(&format!(" {name} {rss:.1}"));
                        let at = started.elapsed();
                        if at >= rss_from {
                            measured.entry(name).or_default().push((at, rss));
                        }
                    }
                }
                // A line every 30 s for whoever reads a growth.
                if samples.is_multiple_of(6) {
                    trace.push(line);
                }
                samples += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => break,
                }
            }
            let growth = measured.iter().map(|(name, samples)| (name.clone(), rss_growth(samples))).collect::<Vec<_>>();
            (growth, trace)
        })
    };

    let sleep_until = |at: Duration| {
        let wait = at.saturating_sub(started.elapsed());
        tokio::time::sleep(wait)
    };
    for c in 0..cycles {
        let base = cycle * c;
        let at = |share: f64| base + cycle.mul_f64(share);

        sleep_until(at(0.10)).await;
        probers[1].kill();
        report.events.push(format!("{:.0}s SIGKILL prober us-east", since()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        probers[1].start().await?;
        report.events.push(format!("{:.0}s prober us-east restarted", since()));

        sleep_until(at(0.20)).await;
        aggregators[1].0.kill();
        report.events.push(format!("{:.0}s SIGKILL aggregator B", since()));
        tokio::time::sleep(Duration::from_secs(10)).await;
        aggregators[1].0.start().await?;
        report.events.push(format!("{:.0}s aggregator B restarted", since()));

        sleep_until(at(0.30)).await;
        queries[1].kill();
        report.events.push(format!("{:.0}s SIGKILL query B", since()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        queries[1].start().await?;
        report.events.push(format!("{:.0}s query B restarted", since()));

        sleep_until(at(0.40)).await;
        if let Ok(mut w) = windows.lock() {
            w.push((unix_ms(), None));
        }
        redis.kill();
        report.events.push(format!("{:.0}s SIGKILL redis", since()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        tokio::task::block_in_place(|| redis.restart()).context("restarting redis from its append-only file")?;
        redis_pid.store(redis.pid().unwrap_or(0), Ordering::SeqCst);
        if let Ok(mut w) = windows.lock() {
            if let Some(last) = w.last_mut() {
                last.1 = Some(unix_ms());
            }
        }
        report.events.push(format!("{:.0}s redis restarted from its AOF", since()));

        sleep_until(at(0.50)).await;
        let cut_ip = source_ip(3);
        send("PUT", &format!("{admin}/faults/clients/{cut_ip}"), &json!({"cut": true})).await?;
        uplinks[3].iter().for_each(|u| u.set_open(false));
        report.events.push(format!("{:.0}s region ap cut off for {} s", since(), hold.as_secs()));
        tokio::time::sleep(hold).await;
        send("PUT", &format!("{admin}/faults/clients/{cut_ip}"), &json!({"cut": false})).await?;
        uplinks[3].iter().for_each(|u| u.set_open(true));
        report.events.push(format!("{:.0}s region ap reconnected", since()));

        sleep_until(at(0.65)).await;
        if disk.mounted {
            let filler = disk.fill()?;
            report.disk_filled = true;
            report.events.push(format!("{:.0}s prober eu-west's buffer disk full for {} s", since(), hold.as_secs()));
            tokio::time::sleep(hold).await;
            std::fs::remove_file(&filler)?;
            report.events.push(format!("{:.0}s prober eu-west's buffer disk freed", since()));
        }

        // The rest of the cycle runs undisturbed.
        sleep_until(base + cycle).await;
    }
    let _ = stop_clients.send(true);
    let (growth, trace) = sampler.await.unwrap_or_default();
    report.rss_growth_mb = growth;
    report.events.extend(trace);
    for client in clients {
        let _ = client.await;
    }
    report.query_requests = tally.requests.load(Ordering::Relaxed);
    report.query_5xx = tally.server_errors.load(Ordering::Relaxed);
    report.query_503_redis_down = tally.redis_down_503.load(Ordering::Relaxed);
    report.query_unreachable = tally.unreachable.load(Ordering::Relaxed);
    report.samples.extend(tally.samples.lock().map(|s| s.clone()).unwrap_or_default());

    // Graceful stop: each prober seals what it holds, sends it and waits for the acks.
    for prober in &mut probers {
        if let Some(mut process) = prober.process.take() {
            process.terminate()?;
            let status = process.wait_exit(Duration::from_secs(30))?;
            ensure!(status.success(), "{} exited with {status}:\n{}", prober.name, process.log_tail(30));
            prober.process = Some(process);
        }
    }
    let mut measured = Counts::new();
    for truth in &truths {
        for (key, n) in truth_counts(truth)? {
            *measured.entry(key).or_default() += n;
        }
    }
    let end = Instant::now() + CATCH_UP;
    let outcome = loop {
        let outcome = compare(&measured, &stored_counts(&redis.url()).await?);
        if (outcome.lost == 0 && outcome.duplicated == 0) || Instant::now() > end {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    report.measured = outcome.measured;
    report.lost = outcome.lost;
    report.duplicated = outcome.duplicated;

    // Every minute's figures, as the query API answers them, against the ground truth.
    let truth = truth_successes(&truths)?;
    let from = Minute::containing(started_ms).start_ms() - 60_000;
    let to = unix_ms();
    let rates = per_minute(&query_urls[0], "success_rate", from, to).await?;
    let probes = per_minute(&query_urls[0], "probes", from, to).await?;
    for (key, (good, total)) in &truth {
        report.figures_checked += 1;
        let want = *good as f64 / *total as f64;
        let rate = rates.get(key).copied();
        let count = probes.get(key).copied();
        let right =
            count == Some(*total as f64) && rate.is_some_and(|r| (r - want).abs() <= 1.0 / *total as f64 + 1e-9);
        if !right {
            report.figures_wrong += 1;
            if report.samples.len() < 10 {
                report
                    .samples
                    .push(format!("{key:?}: truth {good}/{total}, query answered rate {rate:?} over {count:?} probes"));
            }
        }
    }

    for process in aggregators.iter().map(|(a, _)| a).chain(&queries).chain(&probers) {
        if process.panicked() {
            bail!("{} panicked:\n{}", process.name, process.log_tail(60));
        }
    }
    if !report.problems().is_empty() {
        eprintln!("{}", logs(&aggregators, &queries, &probers));
    }
    drop(disk);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rss: impl Fn(u64) -> f64) -> Vec<(Duration, f64)> {
        (0..300).map(|i| (Duration::from_secs(300 + i * 5), rss(i))).collect()
    }

    #[test]
    fn a_swing_without_a_trend_is_no_growth() {
        let swinging = series(|i| if i % 3 == 0 { 220.0 } else { 95.0 + (i % 2) as f64 });
        assert!(rss_growth(&swinging).abs() <= 1.0, "{}", rss_growth(&swinging));
    }

    #[test]
    fn a_leak_is_measured_through_the_swing() {
        // 0.1 MB per sample over 300 samples under the same swing: about 25 MB between the
        // medians of the first and the last 5 minutes.
        let leaking = series(|i| i as f64 * 0.1 + if i % 3 == 0 { 220.0 } else { 95.0 });
        let growth = rss_growth(&leaking);
        assert!((20.0..=30.0).contains(&growth), "{growth}");
    }
}
