//! `scripts/bench.sh probe`: mixmon's HTTP check engine side by side with the Prometheus
//! blackbox exporter, against the same local target, in one run.
//!
//! * The target is this binary re-run as `probe target` (its own process, so its CPU is never
//!   counted as the prober's). It serves two ports: one holds every response 50 ms, measured
//!   with a monotonic clock, and reports the true hold (an `X-Hold-Us` header, and a line
//!   `<id> <hold_us>` on stdout for request `/h/<id>`, which is how holds are matched to the
//!   blackbox exporter's probes, whose responses we never see); the other answers at once.
//! * Timing truth: both probe the holding port at a fixed rate; overshoot is each probe's
//!   measured total minus the target's true hold for that very request (the blackbox
//!   exporter's total is its `probe_duration_seconds`).
//! * Cost: both probe the instant port as fast as they can (new connection per probe for
//!   both); CPU per probe is the process's utime+stime delta over the probes done. The prober
//!   runs in this process (which does nothing else then); the blackbox exporter's CPU is its
//!   own process's, the HTTP client driving its `/probe` is not counted against it. The
//!   prober's figures are named `prober_inprocess_*` for that: they are its check engine's
//!   cost, without the process around it (the footprint run measures the whole process).
//! * Footprint: the release `mixmon-prober` binary, connected to a release
//!   `mixmon-aggregator` (memory store) whose catalogue has 100 HTTP checks at a 1 s interval
//!   against the holding port, and at the same time finding the 23 simulated mixer pods on its
//!   node (release `mixmon-mixer-sim`, all pods on one node) through the simulator's Kubernetes
//!   API, scraping their `/metrics` every second (each at the container port named `metrics`),
//!   and sampling those pods (Kubernetes API and metrics.k8s.io) and its node (`/proc`) every
//!   second; its peak VmRSS over the run. `prober_scraped_pods` counts the simulated pods whose
//!   `/metrics` the prober requested at least twice during the run, as the simulator counted
//!   them (`GET /scrapes`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_bench::{figure, rss_mb};
use mixmon_model::{CheckId, CheckKind, CheckSpec, HttpCheck};
use mixmon_prober::checks::HttpProber;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOLD: Duration = Duration::from_millis(50);
/// Fixed rate of the timing runs: enough samples for a p99 in a few seconds, far from
/// saturating either side, so the overshoot is the probe's own, not queueing.
const TIMING_RATE_PER_S: u64 = 100;
const TIMING_SECONDS: u64 = 8;
const THROUGHPUT_SECONDS: u64 = 6;
const CONCURRENCY: usize = 32;
const RSS_CHECKS: usize = 100;
/// Request ids of the footprint run's checks, far above the timing runs' ids.
const RSS_CHECK_ID_BASE: u64 = 1_000_000_000;
const RSS_SECONDS: u64 = 15;
/// Simulated mixer pods on the prober's node during the footprint run.
const RSS_PODS: usize = 23;
const RSS_NODE: &str = "node-us-west-0";
const HOLD_THREADS: usize = 32;
const BLACKBOX: &str = "prometheus-blackbox-exporter";

type Holds = Arc<Mutex<HashMap<u64, u64>>>;
/// A probe's id and its measured total, µs.
type Sample = (u64, u64);

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("target") {
        return target_main();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench())
}

// ---------------------------------------------------------------------------------------------
// The target process.

fn target_main() -> anyhow::Result<()> {
    // The holding port is served by a pool of blocking threads: a blocked read wakes
    // straight into the handler, so the target's own reaction time, which both probers would
    // see as overshoot, is as small as it gets. The instant port must take tens of thousands of
    // connections a second, so it is served by a tokio runtime.
    let hold = std::net::TcpListener::bind("127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let instant = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
    println!("ports {} {}", hold.local_addr()?.port(), instant.local_addr()?.port());
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for (id, us) in rx {
            if writeln!(out, "{id} {us}").and_then(|()| out.flush()).is_err() {
                return;
            }
        }
    });
    runtime.spawn(serve(instant, Duration::ZERO, None));
    // A pool blocked in accept(): far more threads than connections held at once at the
    // timing rate (rate x hold = 5), so a connection never waits for a free thread.
    let mut pool = Vec::new();
    for _ in 0..HOLD_THREADS {
        let (listener, tx) = (hold.try_clone()?, tx.clone());
        pool.push(std::thread::Builder::new().stack_size(128 * 1024).spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                answer_blocking(stream, &tx);
            }
        })?);
    }
    for thread in pool {
        let _ = thread.join();
    }
    Ok(())
}

fn answer_blocking(mut stream: std::net::TcpStream, log: &std::sync::mpsc::Sender<(u64, u64)>) {
    use std::io::Read as _;
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) if len + n == buf.len() => return,
            Ok(n) => len += n,
        }
    }
    let received = Instant::now();
    let head = std::str::from_utf8(&buf[..len]).unwrap_or("");
    let id = head.split(' ').nth(1).and_then(|p| p.strip_prefix("/h/")).and_then(|id| id.parse::<u64>().ok());
    std::thread::sleep(HOLD);
    let held_us = received.elapsed().as_micros() as u64;
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Hold-Us: {held_us}\r\nConnection: close\r\n\r\nok");
    if stream.write_all(response.as_bytes()).is_ok() {
        if let Some(id) = id {
            let _ = log.send((id, held_us));
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

async fn serve(listener: TcpListener, hold: Duration, log: Option<std::sync::mpsc::Sender<(u64, u64)>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let log = log.clone();
        tokio::spawn(async move {
            let _ = answer(stream, hold, log).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    hold: Duration,
    log: Option<std::sync::mpsc::Sender<(u64, u64)>>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 || len + n == buf.len() {
            return Ok(());
        }
        len += n;
    }
    let received = Instant::now();
    let head = std::str::from_utf8(&buf[..len]).unwrap_or("");
    let id = head.split(' ').nth(1).and_then(|p| p.strip_prefix("/h/")).and_then(|id| id.parse::<u64>().ok());
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let held_us = received.elapsed().as_micros() as u64;
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Hold-Us: {held_us}\r\nConnection: close\r\n\r\nok");
    stream.write_all(response.as_bytes()).await?;
    if let (Some(log), Some(id)) = (log, id) {
        let _ = log.send((id, held_us));
    }
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

async fn bench() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("the bench binary has a directory")?.to_path_buf();
    let scratch = tempfile_dir()?;
    let _scratch = RemoveOnDrop(scratch.clone());

    let (target, hold_port, instant_port, holds) = start_target(&exe)?;
    let _target = Guard(target);
    let blackbox = start_blackbox(&scratch).await?;
    let blackbox_pid = blackbox.1;
    let _blackbox = Guard(blackbox.0);
    let bbe_addr = blackbox.2;
    let blackbox_idle_rss = rss_mb(blackbox_pid).unwrap_or(0.0);

    let prober = Arc::new(HttpProber::new()?);
    // Warm both up (first connections, lazy initialisation), untimed.
    for id in 0..20 {
        probe_prober(&prober, hold_port, id).await;
        let _ = blackbox_probe_once(bbe_addr, hold_port, 1_000_000 + id).await;
    }

    // Timing truth, at a fixed rate, same target, interleaved (prober, blackbox, prober, ...)
    // so both see the same machine: a burst of load elsewhere hits both alike.
    let next_id = Arc::new(AtomicU64::new(10_000));
    // The blackbox exporter's HTTP client runs on a runtime of its own, so its wake-ups never
    // queue behind (or in front of) the prober's probes on the same worker threads.
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let client_handle = client.handle().clone();
    let totals = fixed_rate(2 * TIMING_RATE_PER_S, TIMING_SECONDS, {
        let (prober, next_id) = (prober.clone(), next_id.clone());
        move || {
            let (prober, id) = (prober.clone(), next_id.fetch_add(1, Ordering::Relaxed));
            if id % 2 == 0 {
                tokio::spawn(async move { probe_prober(&prober, hold_port, id).await.map(|us| (id, us)) })
            } else {
                client_handle
                    .spawn(async move { blackbox_probe_once(bbe_addr, hold_port, id).await.map(|us| (id, us)) })
            }
        }
    })
    .await;
    client.shutdown_background();
    let (prober_totals, blackbox_totals): (Vec<Sample>, Vec<Sample>) =
        totals.into_iter().partition(|(id, _)| id % 2 == 0);
    tokio::time::sleep(Duration::from_millis(300)).await; // the last hold lines
    let prober_overshoot = overshoots(&prober_totals, &holds);
    let blackbox_overshoot = overshoots(&blackbox_totals, &holds);
    if prober_overshoot.len() < prober_totals.len() * 9 / 10
        || blackbox_overshoot.len() < blackbox_totals.len() * 9 / 10
    {
        bail!(
            "too few probes matched to a hold: prober {}/{}, blackbox {}/{}",
            prober_overshoot.len(),
            prober_totals.len(),
            blackbox_overshoot.len(),
            blackbox_totals.len()
        );
    }

    // Cost at full speed, new connection per probe, instant answers.
    let me = std::process::id();
    let (prober_probes, prober_cpu_s, prober_wall) = flat_out(me, {
        let prober = prober.clone();
        move || {
            let prober = prober.clone();
            async move { probe_prober(&prober, instant_port, 0).await.is_some() }
        }
    })
    .await?;
    let blackbox_rss_load = Arc::new(Mutex::new(0.0f64));
    let (blackbox_probes, blackbox_cpu_s, blackbox_wall) = {
        let sampler = sample_rss(blackbox_pid, blackbox_rss_load.clone());
        let result = flat_out_blackbox(blackbox_pid, bbe_addr, instant_port).await;
        sampler.store(true, Ordering::Relaxed);
        result?
    };

    let (prober_rss, scraped_pods, probed_checks) = prober_rss(&bin_dir, &scratch, hold_port, &holds).await?;

    // Report.
    let prober_cpu_us = prober_cpu_s * 1e6 / prober_probes.max(1) as f64;
    let blackbox_cpu_us = blackbox_cpu_s * 1e6 / blackbox_probes.max(1) as f64;
    let prober_rate = prober_probes as f64 / prober_wall;
    let blackbox_rate = blackbox_probes as f64 / blackbox_wall;
    let (pp50, pp99) = (quantile(&prober_overshoot, 0.5), quantile(&prober_overshoot, 0.99));
    let (bp50, bp99) = (quantile(&blackbox_overshoot, 0.5), quantile(&blackbox_overshoot, 0.99));

    figure(
        "probes_timed_per_side",
        format!("{} prober, {} blackbox", prober_overshoot.len(), blackbox_overshoot.len()),
    );
    figure("prober_inprocess_cpu_us_per_probe", format!("{prober_cpu_us:.1}"));
    figure("blackbox_cpu_us_per_probe", format!("{blackbox_cpu_us:.1}"));
    figure("prober_inprocess_probes_per_s", format!("{prober_rate:.0}"));
    figure("blackbox_probes_per_s", format!("{blackbox_rate:.0}"));
    figure("prober_inprocess_overshoot_p50_ms", format!("{pp50:.3}"));
    figure("prober_inprocess_overshoot_p99_ms", format!("{pp99:.3}"));
    figure("blackbox_overshoot_p50_ms", format!("{bp50:.3}"));
    figure("blackbox_overshoot_p99_ms", format!("{bp99:.3}"));
    figure("prober_rss_mb", format!("{prober_rss:.1}"));
    figure("prober_rss_checks", format!("{probed_checks} of {RSS_CHECKS} assigned"));
    figure("prober_scraped_pods", scraped_pods);
    figure("blackbox_rss_idle_mb", format!("{blackbox_idle_rss:.1}"));
    let load_rss = *blackbox_rss_load.lock().map_err(|_| anyhow::anyhow!("rss sampler poisoned"))?;
    figure("blackbox_rss_load_mb", format!("{load_rss:.1}"));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    figure(
        "cpu_ratio_prober_inprocess_over_blackbox_process",
        format!("{:.3} (goal <= 0.200)", ratio(prober_cpu_us, blackbox_cpu_us)),
    );
    figure("overshoot_p50_ratio", format!("{:.3} (goal <= 0.333)", ratio(pp50, bp50)));
    figure("overshoot_p99_ratio", format!("{:.3} (goal <= 0.333)", ratio(pp99, bp99)));
    figure("throughput_goal", format!("{} (>= 12000/s)", if prober_rate >= 12_000.0 { "met" } else { "NOT met" }));
    figure("rss_goal", format!("{} (<= 15 MB)", if prober_rss <= 15.0 { "met" } else { "NOT met" }));
    Ok(())
}

/// Kills a child process when dropped, so a failed run leaves nothing behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the run's scratch directory (configs, ready files) however the run ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mixmon-bench-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn start_target(exe: &Path) -> anyhow::Result<(Child, u16, u16, Holds)> {
    // The target is the measuring instrument: its own reaction time (reading a request after
    // it arrived) is overshoot for both probers alike but belongs to neither. At a higher
    // priority (nice -10, when allowed) it suffers less from other load on the machine.
    let mut command = if Command::new("nice").args(["-n", "-10", "true"]).status().is_ok_and(|s| s.success()) {
        let mut nice = Command::new("nice");
        nice.args(["-n", "-10"]).arg(exe);
        nice
    } else {
        Command::new(exe)
    };
    let mut child = command.arg("target").stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
    let stdout = child.stdout.take().context("target stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("target said nothing")??;
    let ports: Vec<u16> = first.split_whitespace().skip(1).filter_map(|p| p.parse().ok()).collect();
    let [hold, instant] = ports[..] else { bail!("target said {first:?}") };
    let holds: Holds = Arc::default();
    let sink = holds.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut parts = line.split_whitespace().filter_map(|p| p.parse::<u64>().ok());
            if let (Some(id), Some(us)) = (parts.next(), parts.next()) {
                if let Ok(mut holds) = sink.lock() {
                    holds.insert(id, us);
                }
            }
        }
    });
    Ok((child, hold, instant, holds))
}

async fn start_blackbox(scratch: &Path) -> anyhow::Result<(Child, u32, SocketAddr)> {
    let config = scratch.join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {BLACKBOX} (scripts/bench.sh probe installs it)"))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("{BLACKBOX} did not listen on {addr} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, pid, addr))
}

fn check(port: u16, id: u64) -> (CheckSpec, HttpCheck) {
    let url = if id == 0 { format!("http://127.0.0.1:{port}/") } else { format!("http://127.0.0.1:{port}/h/{id}") };
    let http = HttpCheck::get(url);
    let spec = CheckSpec {
        id: CheckId::new("bench").expect("a valid literal id"),
        interval_ms: 10_000,
        timeout_ms: 5_000,
        phase_shift_ms: 0,
        kind: CheckKind::Http(http.clone()),
    };
    (spec, http)
}

/// One mixmon probe; its measured total in µs when it succeeded.
async fn probe_prober(prober: &HttpProber, port: u16, id: u64) -> Option<u64> {
    let (spec, http) = check(port, id);
    let result = prober.probe(&spec, &http, 0).await;
    result.success().then_some(result.duration_us)
}

fn probe_path(target_port: u16, id: u64) -> String {
    let target = if id == 0 { String::new() } else { format!("h%2F{id}") };
    format!("/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A{target_port}%2F{target}")
}

/// One blackbox probe over its own connection; `probe_duration_seconds` in µs when it succeeded.
async fn blackbox_probe_once(bbe: SocketAddr, target_port: u16, id: u64) -> Option<u64> {
    let mut stream = TcpStream::connect(bbe).await.ok()?;
    let request = format!("GET {} HTTP/1.0\r\nHost: {bbe}\r\n\r\n", probe_path(target_port, id));
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await.ok()?;
    parse_probe(&String::from_utf8_lossy(&body))
}

fn parse_probe(text: &str) -> Option<u64> {
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    };
    (value("probe_success")? == 1.0).then(|| (value("probe_duration_seconds").unwrap_or(0.0) * 1e6) as u64)
}

/// Runs `probe` `rate` times a second for `seconds`, each in its own task; the successes.
/// Calls `start` `rate` times a second for `seconds` (each call starts one probe as a task);
/// the successes.
async fn fixed_rate<F>(rate: u64, seconds: u64, start: F) -> Vec<Sample>
where
    F: Fn() -> tokio::task::JoinHandle<Option<Sample>>,
{
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        tick.tick().await;
        tasks.push(start());
    }
    let mut out = Vec::new();
    for task in tasks {
        if let Ok(Some(sample)) = task.await {
            out.push(sample);
        }
    }
    out
}

fn overshoots(totals: &[(u64, u64)], holds: &Holds) -> Vec<f64> {
    let Ok(holds) = holds.lock() else { return Vec::new() };
    let mut out: Vec<f64> = totals
        .iter()
        .filter_map(|(id, total)| holds.get(id).map(|hold| (*total as f64 - *hold as f64) / 1_000.0))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("/proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `CONCURRENCY` loops running `probe` back to back for `THROUGHPUT_SECONDS`; the successes,
/// the CPU seconds `pid` used meanwhile, and the wall time.
async fn flat_out<F, Fut>(pid: u32, probe: F) -> anyhow::Result<(u64, f64, f64)>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let probe = Arc::new(probe);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    let loops: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (probe, done, stop) = (probe.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if probe().await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(THROUGHPUT_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let probes = done.load(Ordering::Relaxed);
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_before;
    for task in loops {
        let _ = task.await;
    }
    Ok((probes, cpu, wall))
}

/// The blackbox exporter at full speed, driven over keep-alive connections so its CPU is its
/// probes' and not our connections'.
async fn flat_out_blackbox(pid: u32, bbe: SocketAddr, target_port: u16) -> anyhow::Result<(u64, f64, f64)> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    let loops: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (done, stop) = (done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn: Option<KeepAlive> = None;
                while !stop.load(Ordering::Relaxed) {
                    let mut c = match conn.take() {
                        Some(c) => c,
                        None => match TcpStream::connect(bbe).await {
                            Ok(stream) => KeepAlive { stream, buf: Vec::new() },
                            Err(_) => continue,
                        },
                    };
                    match c.get(bbe, &probe_path(target_port, 0)).await {
                        Some(body) => {
                            if parse_probe(&body).is_some() {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            conn = Some(c);
                        }
                        None => conn = None,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(THROUGHPUT_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let probes = done.load(Ordering::Relaxed);
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_before;
    for task in loops {
        let _ = task.await;
    }
    Ok((probes, cpu, wall))
}

/// A minimal HTTP/1.1 keep-alive client: Content-Length or chunked bodies.
struct KeepAlive {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    async fn get(&mut self, host: SocketAddr, path: &str) -> Option<String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await.ok()?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()));
        self.buf.drain(..head_end);
        if let Some(len) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < len {
                self.fill().await?;
            }
            let body: Vec<u8> = self.buf.drain(..len).collect();
            return Some(String::from_utf8_lossy(&body).into_owned());
        }
        if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill().await?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    return Some(String::from_utf8_lossy(&body).into_owned());
                }
            }
        }
        None
    }

    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Some(())
    }
}

/// Samples `pid`'s VmRSS every 100 ms into `peak` until the returned flag is set.
fn sample_rss(pid: u32, peak: Arc<Mutex<f64>>) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            if let (Some(rss), Ok(mut peak)) = (rss_mb(pid), peak.lock()) {
                *peak = peak.max(rss);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    stop
}

/// Peak RSS of the release `mixmon-prober` running `RSS_CHECKS` checks assigned by a release
/// `mixmon-aggregator` while it scrapes and samples `RSS_PODS` simulated mixer pods on its node
/// (found through the simulator's Kubernetes API); also how many pods it scraped and how
/// many of its checks reached the target (each check has its own `/h/<id>`, as the target
/// logged them).
async fn prober_rss(
    bin_dir: &Path,
    scratch: &Path,
    hold_port: u16,
    holds: &Holds,
) -> anyhow::Result<(f64, usize, usize)> {
    let mut catalogue = String::from(
        "listen = \"127.0.0.1:0\"\n[store]\nkind = \"memory\"\n[defaults]\ninterval_s = 1\ntimeout_ms = 1000\n",
    );
    for i in 0..RSS_CHECKS {
        let id = RSS_CHECK_ID_BASE + i as u64;
        catalogue.push_str(&format!("[[checks]]\nid = \"check-{i}\"\nurl = \"http://127.0.0.1:{hold_port}/h/{id}\"\n"));
    }
    let aggregator_config = scratch.join("aggregator.toml");
    std::fs::write(&aggregator_config, catalogue)?;
    let ready = scratch.join("aggregator.json");
    let _ = std::fs::remove_file(&ready);
    let aggregator = Command::new(bin_dir.join("mixmon-aggregator"))
        .arg("--config")
        .arg(&aggregator_config)
        .arg("--ready-file")
        .arg(&ready)
        .env_remove("HEALTH_CHECK_INTERVAL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mixmon-aggregator (scripts/bench.sh probe builds it)")?;
    let _aggregator = Guard(aggregator);
    let grpc = wait_for_address(&ready, "grpc", "mixmon-aggregator").await?;

    // All the simulated pods on one node, the prober's.
    let sim_ready = scratch.join("sim.json");
    let _ = std::fs::remove_file(&sim_ready);
    let sim = Command::new(bin_dir.join("mixmon-mixer-sim"))
        .args(["--regions", &format!("us-west={RSS_PODS}"), "--nodes-per-region", "1", "--admin-addr", "127.0.0.1:0"])
        .arg("--addr-file")
        .arg(&sim_ready)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mixmon-mixer-sim (scripts/bench.sh probe builds it)")?;
    let _sim = Guard(sim);
    let sim_admin = wait_for_address(&sim_ready, "admin", "mixmon-mixer-sim").await?;

    let prober_config = scratch.join("prober.toml");
    std::fs::write(
        &prober_config,
        format!(
            r#"[identity]
id = "bench"
region = "us-west"
node = "{RSS_NODE}"
[aggregator]
addresses = ["http://{grpc}"]
[buffer]
dir = "{wal}"
[scrape]
interval_ms = 1000
timeout_ms = 800
[scrape.kubernetes]
api_url = "http://{sim_admin}/k8s"
label_selector = "app=ai-mixer"
discovery_interval_ms = 5000
[node]
interval_ms = 1000
[pods]
interval_ms = 1000
"#,
            wal = scratch.join("wal").display(),
        ),
    )?;
    let scrapes_before = sim_scrapes(&sim_admin).await?;
    let prober = Command::new(bin_dir.join("mixmon-prober"))
        .arg("--config")
        .arg(&prober_config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mixmon-prober (scripts/bench.sh probe builds it)")?;
    let pid = prober.id();
    let _prober = Guard(prober);
    let peak = Arc::new(Mutex::new(0.0f64));
    let stop = sample_rss(pid, peak.clone());
    tokio::time::sleep(Duration::from_secs(RSS_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let scrapes_after = sim_scrapes(&sim_admin).await?;
    let scraped = scrapes_after
        .iter()
        .filter(|(pod, after)| **after >= scrapes_before.get(*pod).copied().unwrap_or(0) + 2)
        .count();
    let peak = *peak.lock().map_err(|_| anyhow::anyhow!("rss sampler poisoned"))?;
    let probed = {
        let holds = holds.lock().map_err(|_| anyhow::anyhow!("hold log poisoned"))?;
        (0..RSS_CHECKS as u64).filter(|i| holds.contains_key(&(RSS_CHECK_ID_BASE + i))).count()
    };
    Ok((peak, scraped, probed))
}

/// Waits for a service's ready file and reads the address under `key`.
async fn wait_for_address(ready: &Path, key: &str, what: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let parsed =
            std::fs::read(ready).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if let Some(addr) = parsed.as_ref().and_then(|v| v.get(key)).and_then(|v| v.as_str()) {
            return Ok(addr.to_owned());
        }
        if Instant::now() > deadline {
            bail!("{what} did not write {key:?} to {} within 20 s", ready.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many `/metrics` requests each simulated pod has answered (`GET /scrapes`).
async fn sim_scrapes(admin: &str) -> anyhow::Result<HashMap<String, u64>> {
    let response = mixmon_testkit::http::get(&format!("http://{admin}/scrapes")).await?;
    if response.status != 200 {
        bail!("GET /scrapes answered {}: {}", response.status, response.text());
    }
    Ok(serde_json::from_slice(&response.body)?)
}
