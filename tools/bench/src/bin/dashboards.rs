//! Issue 14's figure: the five Grafana dashboards' full refreshes over the last 24 h, 50
//! clients at once, against a real `redis-server` holding 15 days of data at the operators'
//! scale (4 regions, 6 endpoints probed from every region, the mixer of each region, 2 nodes
//! per region, 30 pods; every minute), written through `Store::apply_batch` one batch per
//! (prober, hour) as a prober's batches would be, plus alert transitions for the annotations.
//!
//! The requests are the dashboards test's (`mixmon_integration_tests::dashboards`): the
//! variables resolved against the query service (at `All`), each panel's exact `POST /query`
//! body with Grafana's `maxDataPoints` and interval for 24 h, and the mixmon annotation query.
//! First every request is sent once and the targets answered with nothing are counted
//! (`unanswered_targets`, listed on stderr). Then, per dashboard, one client alone and then 50
//! clients each send the dashboard's requests one after the other for `ROUNDS` rounds over
//! their own keep-alive connection (a client starts no round after a minute); each request's latency (request written to answer read)
//! and each client's refresh (its whole set of requests) are recorded. The query service runs
//! in this process on a loopback socket (as `scripts/bench.sh query` runs it). Run by
//! `scripts/bench.sh dashboards [rounds]`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_bench::figure;
use mixmon_integration_tests::dashboards::{load_dashboards, prepare, send, Kind, Pick, Request, Sweep, TimeRange};
use mixmon_model::alert::{AlertInstance, AlertState, AlertTransition, LabelSet};
use mixmon_model::{
    CheckId, DiskSample, EntityName, FailureKind, Minute, MixerSample, NodeSample, PhaseTimings, PodSample, ProberId,
    Region, Rollup, RollupDelta, SeriesKey,
};
use mixmon_query::{app, serve, QueryOptions};
use mixmon_store::{AlertStore, BatchId, RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::RedisServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ENDPOINTS: [&str; 6] = ["us-west", "us-east", "eu-west", "ap", "edge", "api"];
const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];
const NODES_PER_REGION: usize = 2;
const PODS: usize = 30;
const DAYS: i64 = 15;
/// Probes per (endpoint, prober, minute): one every 6 s, so 20 per (endpoint, region).
const PROBES_PER_MINUTE: u64 = 10;
const GENRES: [&str; 4] = ["ambient", "classical", "jazz", "rock"];
/// Processing-duration buckets of the mixer's histogram (seconds).
const BUCKETS: [f64; 6] = [0.01, 0.025, 0.05, 0.1, 0.25, f64::INFINITY];
const CLIENTS: usize = 50;
const DEFAULT_ROUNDS: usize = 5;
/// No client starts a round after this (a slow dashboard then runs fewer rounds).
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
/// Batches written at once while filling (one task per prober would only queue in Redis).
const FILL_TASKS: usize = 2;

fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn name(text: &str) -> anyhow::Result<EntityName> {
    Ok(EntityName::new(text)?)
}

/// One prober's minute of probes of one endpoint: mostly fine, now and then a failure of any
/// kind (so every failure-kind panel has something), `api` failing more.
fn minute_rollup(rng: &mut StdRng, endpoint: &str) -> Rollup {
    let failure_rate = if endpoint == "api" { 0.02 } else { 0.003 };
    let mut rollup = Rollup { total: PROBES_PER_MINUTE, ..Default::default() };
    for _ in 0..PROBES_PER_MINUTE {
        if rng.random::<f64>() < failure_rate {
            let kind = FailureKind::ALL[rng.random_range(0..FailureKind::ALL.len())];
            *rollup.failures.entry(kind).or_insert(0) += 1;
            continue;
        }
        let us = 40_000.0 * (0.5 * standard_normal(rng)).exp();
        rollup.successes += 1;
        rollup.latency_sum_us += us as u64;
        rollup.latency.add(us);
        rollup.phases.add(&PhaseTimings {
            dns_us: 500,
            connect_us: 2_000,
            tls_us: 6_000,
            first_byte_us: us as u64 / 2,
            transfer_us: 100,
        });
    }
    rollup
}

/// A prober on one node: what it probes, scrapes and samples.
struct Prober {
    id: ProberId,
    region: Region,
    node: EntityName,
    pods: Vec<EntityName>,
}

/// 8 probers (2 nodes in each of 4 regions), the 30 pods dealt over the nodes.
fn fleet() -> anyhow::Result<Vec<Prober>> {
    let mut probers = Vec::new();
    for region in REGIONS {
        for n in 0..NODES_PER_REGION {
            probers.push(Prober {
                id: ProberId::new(format!("{region}-node-{n}"))?,
                region: Region::new(region)?,
                node: name(&format!("node-{region}-{n}"))?,
                pods: Vec::new(),
            });
        }
    }
    let count = probers.len();
    for pod in 0..PODS {
        let prober = &mut probers[pod % count];
        let pod_name = format!("ai-mixer-{}-{}", prober.node, prober.pods.len());
        prober.pods.push(name(&pod_name)?);
    }
    Ok(probers)
}

/// One minute of a prober: its probes of every endpoint, one scrape of each of its mixer pods,
/// one sample of its node and of each pod (each standing for the whole minute).
fn add_minute(delta: &mut RollupDelta, rng: &mut StdRng, prober: &Prober, minute: i64) -> anyhow::Result<()> {
    let at_ms = minute * 60_000 + 30_000;
    for endpoint in ENDPOINTS {
        let series = SeriesKey { check: CheckId::new(endpoint)?, region: prober.region.clone() };
        delta.add_rollup(series, Minute(minute), &minute_rollup(rng, endpoint));
    }
    let namespace = name("mixer")?;
    for pod in &prober.pods {
        let requests: u64 = 600 + rng.random_range(0..200);
        let errors = u64::from(rng.random::<f64>() < 0.3) * rng.random_range(1..4);
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        let mut left = requests;
        for (i, le) in BUCKETS.iter().enumerate() {
            let share = if i + 1 == BUCKETS.len() { left } else { left * 6 / 10 };
            buckets.push((*le, share));
            left -= share;
        }
        let genres = GENRES
            .iter()
            .map(|g| Ok((name(g)?, rng.random_range(10..60))))
            .collect::<anyhow::Result<Vec<(EntityName, u64)>>>()?;
        delta.add_mixer(
            &prober.region,
            &MixerSample {
                pod: pod.clone(),
                node: prober.node.clone(),
                at_ms,
                weight_ms: 60_000,
                scrape_ok: true,
                restarted: false,
                requests: vec![(200, requests - errors), (500, errors)],
                duration_buckets: buckets,
                duration_count: requests,
                duration_sum_us: requests * 30_000,
                active_streams: Some(f64::from(rng.random_range(5..40u32))),
                audio_peak_db: Some(-6.0 - 6.0 * rng.random::<f64>()),
                audio_lufs: Some(-16.0 - 4.0 * rng.random::<f64>()),
                genres,
                covered_ms: 60_000,
                first_in_minute: true,
            },
        );
        delta.add_pod(
            &prober.region,
            &PodSample {
                pod: pod.clone(),
                namespace: namespace.clone(),
                node: prober.node.clone(),
                at_ms,
                weight_ms: 60_000,
                ready: rng.random::<f64>() > 0.002,
                restarts: u64::from(rng.random::<f64>() < 0.001),
                memory_bytes: Some(600_000_000 + rng.random_range(0..200_000_000)),
                memory_limit_bytes: Some(1_073_741_824),
            },
        )?;
    }
    let gib = 1u64 << 30;
    delta.add_node(
        &prober.region,
        &NodeSample {
            node: prober.node.clone(),
            at_ms,
            weight_ms: 60_000,
            cpu_busy_ratio: Some(0.2 + 0.5 * rng.random::<f64>()),
            memory_used_bytes: 8 * gib + rng.random_range(0..4 * gib),
            memory_total_bytes: 32 * gib,
            net_rx_bytes: rng.random_range(50_000_000..200_000_000),
            net_tx_bytes: rng.random_range(50_000_000..200_000_000),
            disks: vec![
                DiskSample { mount: "/".into(), used_bytes: 40 * gib, total_bytes: 100 * gib },
                DiskSample { mount: "/var/lib/kubelet".into(), used_bytes: 120 * gib, total_bytes: 500 * gib },
            ],
        },
    );
    Ok(())
}

/// 15 days of one prober, one batch per hour.
async fn fill_prober(store: Arc<RedisStore>, prober: Prober, seed: u64, now: Minute) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first_hour = (now.0 - DAYS * 24 * 60).div_euclid(60);
    let last_hour = now.0.div_euclid(60);
    let mut minutes = 0;
    for (seq, hour) in (first_hour..=last_hour).enumerate() {
        let mut delta = RollupDelta::default();
        for minute in (hour * 60..(hour + 1) * 60).take_while(|m| *m <= now.0) {
            add_minute(&mut delta, &mut rng, &prober, minute)?;
            minutes += 1;
        }
        let id = BatchId { prober: prober.id.clone(), epoch: 1, seq: seq as u64 + 1 };
        store.apply_batch(&id, &delta).await?;
    }
    Ok(minutes)
}

/// Every prober's 15 days, `FILL_TASKS` probers at a time; the prober-minutes written.
async fn fill(store: &Arc<RedisStore>, now: Minute) -> anyhow::Result<u64> {
    let mut probers = fleet()?.into_iter().enumerate();
    let mut minutes = 0;
    loop {
        let tasks: Vec<_> = probers
            .by_ref()
            .take(FILL_TASKS)
            .map(|(i, prober)| tokio::spawn(fill_prober(store.clone(), prober, 11 + i as u64, now)))
            .collect();
        if tasks.is_empty() {
            return Ok(minutes);
        }
        for task in tasks {
            minutes += task.await??;
        }
    }
}

/// Alert history: `ServiceDown` on `api` fires and resolves every 6 h over the 15 days, a
/// `HighLatency` on `edge` every 11 h, committed by the evaluator's lease as it would.
async fn fill_alerts(store: &RedisStore, now_ms: i64) -> anyhow::Result<usize> {
    let lease = store.acquire_lease("bench", 60_000, now_ms).await?.context("no evaluator lease")?;
    let mut transitions = Vec::new();
    let mut last = Vec::new();
    for (alert, endpoint, every_ms, severity) in
        [("ServiceDown", "api", 6 * 3_600_000, "critical"), ("HighLatency", "edge", 11 * 3_600_000, "warning")]
    {
        let labels = LabelSet::new().with("alertname", alert).with("endpoint", endpoint).with("severity", severity);
        let mut at = now_ms - DAYS * 86_400_000 + every_ms / 2;
        while at + 600_000 < now_ms {
            let mut instance = AlertInstance {
                labels: labels.clone(),
                annotations: BTreeMap::from([("summary".into(), format!("{endpoint} {alert}"))]),
                state: AlertState::Firing,
                value: Some(1.0),
                active_at_ms: Some(at - 60_000),
                fired_at_ms: Some(at),
                resolved_at_ms: None,
                last_bad_ms: Some(at),
                updated_at_ms: at,
                event: false,
                inhibited_by: Vec::new(),
                silenced_by: Vec::new(),
            };
            transitions.push(AlertTransition::of(&instance, AlertState::Pending, at));
            instance.state = AlertState::Resolved;
            instance.resolved_at_ms = Some(at + 600_000);
            instance.updated_at_ms = at + 600_000;
            transitions.push(AlertTransition::of(&instance, AlertState::Firing, at + 600_000));
            at += every_ms;
            if at + 600_000 >= now_ms {
                last.push(instance);
            }
        }
    }
    transitions.sort_by_key(|t| t.at_ms);
    store.commit_alerts(&lease, &last, &[], &transitions, now_ms).await?;
    store.release_lease(&lease).await?;
    Ok(transitions.len())
}

/// A keep-alive HTTP/1.1 connection to the query service, for one client: a request and its
/// answer at a time, as one connection of Grafana's pool to the datasource.
struct Client {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Client {
    async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream: BufReader::new(stream), host: addr.to_string() })
    }

    /// `POST /query` with `body`: the status and the body of the answer.
    async fn post(&mut self, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST /query HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("status {line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((key, value)) = header.split_once(':') {
                let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
                if key == "content-length" {
                    length = Some(value.parse::<usize>()?);
                } else if key == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)?;
                let start = answer.len();
                answer.resize(start + size + 2, 0);
                self.stream.read_exact(&mut answer[start..]).await?;
                answer.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else {
            answer.resize(length.context("an answer with neither a length nor chunks")?, 0);
            self.stream.read_exact(&mut answer).await?;
        }
        Ok((status, answer))
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

/// What a load run measured.
#[derive(Default)]
struct Load {
    /// Every request's latency.
    requests: Vec<Duration>,
    /// Per request of the refresh (by index), its latencies.
    per_request: Vec<Vec<Duration>>,
    /// Every client's refresh: its whole set of requests, one after the other.
    refreshes: Vec<Duration>,
    /// Answers other than 200, by status, and the first one's body.
    failed: BTreeMap<u16, usize>,
    first_failure: Option<String>,
    elapsed: Duration,
}

/// `clients` clients, each on its own connection sending `bodies` in order, `rounds` times
/// (fewer when a round would start after `LOAD_DEADLINE`; at least once).
async fn load(addr: &str, bodies: Arc<Vec<Vec<u8>>>, clients: usize, rounds: usize) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + LOAD_DEADLINE;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (addr, bodies) = (addr.to_string(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            let mut measured = Load { per_request: vec![Vec::new(); bodies.len()], ..Default::default() };
            for round in 0..rounds {
                if round > 0 && Instant::now() > deadline {
                    break;
                }
                let refresh = Instant::now();
                for (i, body) in bodies.iter().enumerate() {
                    let sent = Instant::now();
                    let (status, answer) = client.post(body).await?;
                    let took = sent.elapsed();
                    measured.requests.push(took);
                    measured.per_request[i].push(took);
                    if status != 200 {
                        *measured.failed.entry(status).or_insert(0) += 1;
                        measured.first_failure.get_or_insert_with(|| String::from_utf8_lossy(&answer).into_owned());
                    }
                }
                measured.refreshes.push(refresh.elapsed());
            }
            anyhow::Ok(measured)
        }));
    }
    let mut total = Load { per_request: vec![Vec::new(); bodies.len()], ..Default::default() };
    for task in tasks {
        let measured = task.await??;
        total.requests.extend(measured.requests);
        total.refreshes.extend(measured.refreshes);
        for (status, n) in measured.failed {
            *total.failed.entry(status).or_insert(0) += n;
        }
        total.first_failure = total.first_failure.or(measured.first_failure);
        for (all, one) in total.per_request.iter_mut().zip(measured.per_request) {
            all.extend(one);
        }
    }
    total.elapsed = started.elapsed();
    total.requests.sort();
    total.refreshes.sort();
    for latencies in &mut total.per_request {
        latencies.sort();
    }
    Ok(total)
}

/// `audio-quality.json` as a figure's suffix: `audio_quality`.
fn slug(file: &str) -> String {
    file.trim_end_matches(".json").replace('-', "_")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().with_context(|| format!("rounds must be a number, not {arg:?}"))?,
        None => DEFAULT_ROUNDS,
    };
    let boards = load_dashboards()?;
    let redis = RedisServer::start().context("starting redis-server")?;
    let store = Arc::new(RedisStore::connect(RedisStoreConfig::new(redis.url())).await?);
    let now_ms = mixmon_integration_tests::unix_ms();
    let fill_started = Instant::now();
    let prober_minutes = fill(&store, Minute::containing(now_ms)).await?;
    let transitions = fill_alerts(&store, now_ms).await?;
    figure("dashboards_fill_prober_minutes", prober_minutes);
    figure("dashboards_fill_alert_transitions", transitions);
    figure("dashboards_fill_seconds", format!("{:.1}", fill_started.elapsed().as_secs_f64()));
    let info = store.server_info("memory").await?;
    for key in ["used_memory", "used_memory_human"] {
        if let Some(line) = info.lines().find(|l| l.starts_with(&format!("{key}:"))) {
            figure(&format!("redis_{key}"), line[key.len() + 1..].trim());
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let url = format!("http://{addr}");
    let router = app(store.clone(), QueryOptions::default());
    tokio::spawn(serve(listener, Default::default(), router, std::future::pending()));

    // Every request once: the variables resolved, what each refresh sends, what is unanswered.
    let range = TimeRange::relative("now-24h", mixmon_integration_tests::unix_ms());
    let mut sweep = Sweep::default();
    let mut refreshes: Vec<(String, Vec<Request>)> = Vec::new();
    for board in &boards {
        let requests = prepare(&url, board, &range, Pick::Current, &mut sweep).await;
        for request in &requests {
            send(&url, request, Pick::Current, &mut sweep).await;
        }
        refreshes.push((slug(&board.file), requests));
    }
    for problem in &sweep.problems {
        eprintln!("unanswered: {problem}");
    }
    figure("dashboards", boards.len());
    figure("dashboard_targets", sweep.targets);
    figure("dashboard_variable_queries", sweep.variable_queries);
    figure("dashboard_annotation_queries", sweep.annotation_queries);
    figure("unanswered_targets", sweep.problems.len());

    let mut worst = ("", 0.0f64);
    let mut worst_refresh = 0.0f64;
    let mut total_requests = 0;
    let mut total_failed: BTreeMap<u16, usize> = BTreeMap::new();
    let mut slowest: Vec<(f64, f64, String)> = Vec::new();
    for (name, requests) in &refreshes {
        let bodies: Arc<Vec<Vec<u8>>> =
            Arc::new(requests.iter().map(|r| serde_json::to_vec(&r.body)).collect::<Result<_, _>>()?);
        figure(&format!("dashboard_requests_per_refresh_{name}"), bodies.len());
        // One client alone first (the latency without contention), then 50 at once.
        let alone = load(&addr, bodies.clone(), 1, rounds).await?;
        figure(&format!("dashboard_query_1client_p50_ms_{name}"), ms(percentile(&alone.requests, 0.50)));
        figure(&format!("dashboard_query_1client_p99_ms_{name}"), ms(percentile(&alone.requests, 0.99)));
        figure(&format!("dashboard_full_refresh_1client_p50_ms_{name}"), ms(percentile(&alone.refreshes, 0.50)));
        let crowd = load(&addr, bodies.clone(), CLIENTS, rounds).await?;
        let p99 = percentile(&crowd.requests, 0.99);
        let refresh_p99 = percentile(&crowd.refreshes, 0.99);
        figure(&format!("dashboard_query_p50_ms_{name}"), ms(percentile(&crowd.requests, 0.50)));
        figure(&format!("dashboard_query_p99_ms_{name}"), ms(p99));
        figure(&format!("dashboard_full_refresh_p99_ms_{name}"), ms(refresh_p99));
        figure(
            &format!("dashboard_requests_per_s_{name}"),
            format!("{:.0}", crowd.requests.len() as f64 / crowd.elapsed.as_secs_f64()),
        );
        if p99 > worst.1 {
            worst = (name, p99);
        }
        worst_refresh = worst_refresh.max(refresh_p99);
        total_requests += alone.requests.len() + crowd.requests.len();
        for (status, n) in alone.failed.iter().chain(&crowd.failed) {
            *total_failed.entry(*status).or_insert(0) += n;
        }
        if let Some(body) = alone.first_failure.as_ref().or(crowd.first_failure.as_ref()) {
            eprintln!(
                "{name}: a request was answered {:?}: {}",
                crowd.failed,
                body.chars().take(300).collect::<String>()
            );
        }
        for (request, (crowded, single)) in requests.iter().zip(crowd.per_request.iter().zip(&alone.per_request)) {
            let what = match request.kind {
                Kind::Panel => request.place.clone(),
                Kind::Annotation => format!("{} (annotation)", request.place),
            };
            slowest.push((percentile(crowded, 0.99), percentile(single, 0.50), what));
        }
    }
    figure("dashboard_clients", CLIENTS);
    figure("dashboard_rounds", rounds);
    figure("dashboard_query_requests", total_requests);
    figure("dashboard_query_non_200", total_failed.values().sum::<usize>());
    for (status, n) in &total_failed {
        figure(&format!("dashboard_query_status_{status}"), n);
    }
    figure("dashboard_query_p99_ms", ms(worst.1));
    figure("dashboard_query_p99_worst", worst.0);
    figure("dashboard_full_refresh_p99_ms", ms(worst_refresh));
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (p99, alone, what) in &slowest {
        eprintln!("request: p99 {p99:.2} ms at {CLIENTS} clients, p50 {alone:.2} ms alone: {what}");
    }
    Ok(())
}
