//! Scraping the mixer pods' `/metrics` and turning each scrape into a [`MixerSample`] of
//! interval deltas.
//!
//! One [`PodScraper`] per pod keeps the pod's [`SeriesTracker`] (reset-safe deltas) and one
//! keep-alive HTTP/1.1 connection. [`run`] scrapes every target at each interval, all pods at
//! once, and follows the target list as discovery changes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mixmon_exposition::{observation, Format, SeriesId};
use mixmon_model::counters::{Continuity, IntervalDeltas, SeriesTracker};
use mixmon_model::{EntityName, MixerSample, Record};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{unix_ms, Emit, RateLimitedWarn};

const REQUESTS: &str = "ai_mixer_requests_total";
const DURATION: &str = "ai_mixer_processing_duration_seconds";
const ACTIVE_STREAMS: &str = "ai_mixer_active_streams";
const PEAK_DB: &str = "ai_mixer_audio_peak_db";
const LUFS: &str = "ai_mixer_audio_lufs";
const GENRES: &str = "ai_mixer_genre_classifications_total";

/// A body bigger than this is a failed scrape: a mixer pod answers a few kilobytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long the first scrape round waits for the first discovered list.
const FIRST_DISCOVERY_WAIT: Duration = Duration::from_secs(10);
/// Scrapes a series may be missing before its last value is forgotten.
const RETAIN_MISSING: u32 = 20;

/// A `/metrics` URL, split for connecting (plain HTTP only: pods serve their metrics in the clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeUrl {
    url: String,
    host: String,
    port: u16,
    authority: String,
    path: PathAndQuery,
}

impl ScrapeUrl {
    /// Refuses anything but an absolute `http://host[:port][/path]` URL, with the reason.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| format!("{url:?} is not a URL: {e}"))?;
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => {}
            Some(s) => return Err(format!("{url:?}: scheme {s} is not supported (only http)")),
            None => return Err(format!("{url:?} has no scheme (expected http://)")),
        }
        let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).to_owned();
        let path = match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
            _ => PathAndQuery::from_static("/"),
        };
        Ok(ScrapeUrl {
            url: url.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

/// One pod to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub pod: EntityName,
    pub url: ScrapeUrl,
}

#[derive(Debug, Clone)]
pub struct ScrapeSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body_bytes: usize,
}

impl ScrapeSettings {
    fn weight_ms(&self) -> u32 {
        u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX)
    }
}

/// Why a scrape gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("http: {0}")]
    Http(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("body over {0} bytes")]
    TooLarge(usize),
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("parse: {0}")]
    Parse(String),
}

/// A keep-alive connection to one pod.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    task: JoinHandle<()>,
    /// Which `host:port` it goes to (a pod's IP can change under the same name).
    to: (String, u16),
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Figures of one scrape that did not fit a [`MixerSample`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildNotes {
    /// Genre label values that are not valid entity names (dropped).
    pub dropped_genres: usize,
    /// Request series whose `status` is not an HTTP code (dropped).
    pub dropped_statuses: usize,
}

/// The scrape state of one pod: its series' last values and its connection.
pub struct PodScraper {
    pod: EntityName,
    url: ScrapeUrl,
    tracker: SeriesTracker<SeriesId>,
    conn: Option<Conn>,
    warn: RateLimitedWarn,
    /// When the previous successful scrape was: the deltas of the next cover the time since.
    last_ok_at_ms: Option<i64>,
    /// The minute (unix ms / 60 000) of the latest successful scrape, so the first of each
    /// minute is flagged.
    last_ok_minute: Option<i64>,
}

impl PodScraper {
    pub fn new(target: ScrapeTarget) -> Self {
        PodScraper {
            pod: target.pod,
            url: target.url,
            tracker: SeriesTracker::new(RETAIN_MISSING),
            conn: None,
            warn: RateLimitedWarn::new(Duration::from_secs(300)),
            last_ok_at_ms: None,
            last_ok_minute: None,
        }
    }

    /// The pod moved (a new IP under the same name): scrape the new address. The tracker stays:
    /// a restarted process is recognised by its counters.
    pub fn retarget(&mut self, url: ScrapeUrl) {
        if url != self.url {
            self.url = url;
            self.conn = None;
        }
    }

    /// Scrapes once and returns the interval's sample (`scrape_ok: false` on any failure).
    pub async fn scrape(&mut self, node: &EntityName, settings: &ScrapeSettings) -> MixerSample {
        let at_ms = unix_ms();
        let fetched = match tokio::time::timeout(settings.timeout, self.fetch(settings.max_body_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout(settings.timeout)),
        };
        let parsed = fetched.and_then(|(text, format)| {
            mixmon_exposition::parse(&text, format).map_err(|e| ScrapeError::Parse(e.to_string()))
        });
        match parsed {
            Ok(scrape) => {
                let deltas = self.tracker.observe(observation(&scrape));
                let (mut sample, notes) =
                    build_sample(&deltas, self.pod.clone(), node.clone(), at_ms, settings.weight_ms());
                if deltas.continuity != Continuity::FirstScrape {
                    let since = self.last_ok_at_ms.map_or(0, |last| at_ms.saturating_sub(last).max(0));
                    sample.covered_ms = u32::try_from(since).unwrap_or(u32::MAX);
                }
                let minute = at_ms.div_euclid(60_000);
                sample.first_in_minute = self.last_ok_minute != Some(minute);
                self.last_ok_at_ms = Some(at_ms);
                self.last_ok_minute = Some(minute);
                if notes != BuildNotes::default() {
                    tracing::debug!(pod = %self.pod, ?notes, "scrape had series that could not be used");
                }
                sample
            }
            Err(error) => {
                // Whatever state the connection is in after a failure, it is not worth reusing.
                self.conn = None;
                tracing::debug!(pod = %self.pod, url = self.url.as_str(), %error, "scrape failed");
                if self.warn.allow() {
                    tracing::warn!(pod = %self.pod, url = self.url.as_str(), %error, "mixer scrape failed");
                }
                failed_sample(self.pod.clone(), node.clone(), at_ms, settings.weight_ms())
            }
        }
    }

    async fn fetch(&mut self, max_body_bytes: usize) -> Result<(String, Format), ScrapeError> {
        let to = (self.url.host.clone(), self.url.port);
        let reusable = self.conn.as_ref().is_some_and(|c| c.to == to && !c.sender.is_closed());
        if reusable {
            // A kept-alive connection the pod closed meanwhile fails before any answer: one
            // more try on a fresh connection, inside the same timeout.
            match self.fetch_on_conn(max_body_bytes).await {
                Err(ScrapeError::Http(_)) => self.conn = None,
                other => return other,
            }
        }
        let conn = connect(to).await?;
        self.conn = Some(conn);
        self.fetch_on_conn(max_body_bytes).await
    }

    async fn fetch_on_conn(&mut self, max_body_bytes: usize) -> Result<(String, Format), ScrapeError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(ScrapeError::Http("no connection".into()));
        };
        let request = Request::get(self.url.path.as_str())
            .header(header::HOST, self.url.authority.as_str())
            .header(header::ACCEPT, Format::ACCEPT)
            .header(header::USER_AGENT, concat!("mixmon-prober/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| ScrapeError::Http(e.to_string()))?;
        conn.sender.ready().await.map_err(|e| ScrapeError::Http(e.to_string()))?;
        let response = conn.sender.send_request(request).await.map_err(|e| ScrapeError::Http(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ScrapeError::Status(status.as_u16()));
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body_bytes as u64) {
            return Err(ScrapeError::TooLarge(max_body_bytes));
        }
        let format = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(Format::Prometheus, Format::from_content_type);
        let body = Limited::new(response.into_body(), max_body_bytes).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ScrapeError::TooLarge(max_body_bytes)
            } else {
                ScrapeError::Http(e.to_string())
            }
        })?;
        let text = String::from_utf8(body.to_bytes().to_vec()).map_err(|_| ScrapeError::NotUtf8)?;
        Ok((text, format))
    }
}

async fn connect(to: (String, u16)) -> Result<Conn, ScrapeError> {
    let addr = format!("{}:{}", to.0, to.1);
    let tcp = tokio::net::TcpStream::connect((to.0.as_str(), to.1))
        .await
        .map_err(|source| ScrapeError::Connect { addr: addr.clone(), source })?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| ScrapeError::Http(e.to_string()))?;
    let task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::trace!(%error, "scrape connection ended");
        }
    });
    Ok(Conn { sender, task, to })
}

fn failed_sample(pod: EntityName, node: EntityName, at_ms: i64, weight_ms: u32) -> MixerSample {
    MixerSample {
        pod,
        node,
        at_ms,
        weight_ms,
        scrape_ok: false,
        restarted: false,
        requests: Vec::new(),
        duration_buckets: Vec::new(),
        duration_count: 0,
        duration_sum_us: 0,
        active_streams: None,
        audio_peak_db: None,
        audio_lufs: None,
        genres: Vec::new(),
        covered_ms: 0,
        first_in_minute: false,
    }
}

/// A non-negative finite amount as a whole count.
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // Saturating float-to-int conversion; counts are far below 2^53.
        v.round() as u64
    } else {
        0
    }
}

/// Builds the sample of one successful scrape from the tracker's interval deltas.
///
/// Requests and genres with no increase are left out; histogram buckets are all listed, each
/// with the observations in that bucket alone, summed over the histogram's label sets.
pub fn build_sample(
    deltas: &IntervalDeltas<SeriesId>,
    pod: EntityName,
    node: EntityName,
    at_ms: i64,
    weight_ms: u32,
) -> (MixerSample, BuildNotes) {
    let mut notes = BuildNotes::default();
    let mut requests: BTreeMap<u16, f64> = BTreeMap::new();
    let mut genres: BTreeMap<EntityName, f64> = BTreeMap::new();
    for (id, delta) in &deltas.counters {
        if id.name == REQUESTS {
            match id.label("status").and_then(|s| s.parse::<u16>().ok()) {
                Some(status) => *requests.entry(status).or_default() += delta,
                None => notes.dropped_statuses += 1,
            }
        } else if id.name == GENRES {
            match id.label("genre").and_then(|g| EntityName::new(g).ok()) {
                Some(genre) => *genres.entry(genre).or_default() += delta,
                None => notes.dropped_genres += 1,
            }
        }
    }

    // Non-cumulative per bucket, summed over label sets (by bound).
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut duration_count, mut duration_sum) = (0.0, 0.0);
    for (id, h) in &deltas.histograms {
        if id.name != DURATION {
            continue;
        }
        duration_count += h.count;
        duration_sum += h.sum;
        let mut below = 0.0;
        for &(le, cumulative) in &h.buckets {
            let alone = (cumulative - below).max(0.0);
            below = cumulative;
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += alone,
                None => buckets.push((le, alone)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));

    let gauges = |name: &'static str| deltas.gauges.iter().filter(move |(id, _)| id.name == name).map(|(_, v)| *v);
    let active_streams = gauges(ACTIVE_STREAMS).reduce(|a, b| a + b);
    let audio_peak_db = gauges(PEAK_DB).reduce(f64::max);
    let lufs: Vec<f64> = gauges(LUFS).collect();
    #[allow(clippy::cast_precision_loss)]
    let audio_lufs = (!lufs.is_empty()).then(|| lufs.iter().sum::<f64>() / lufs.len() as f64);

    let sample = MixerSample {
        pod,
        node,
        at_ms,
        weight_ms,
        scrape_ok: true,
        restarted: deltas.continuity == Continuity::Restarted || deltas.resets > 0,
        requests: requests.into_iter().map(|(s, v)| (s, count(v))).filter(|(_, n)| *n > 0).collect(),
        duration_buckets: buckets.into_iter().map(|(le, n)| (le, count(n))).collect(),
        duration_count: count(duration_count),
        duration_sum_us: count(duration_sum * 1e6),
        active_streams,
        audio_peak_db,
        audio_lufs,
        genres: genres.into_iter().map(|(g, v)| (g, count(v))).filter(|(_, n)| *n > 0).collect(),
        // Set by the scraper, which knows when the previous scrape was.
        covered_ms: 0,
        first_in_minute: false,
    };
    (sample, notes)
}

/// Scrapes `static_targets` and the discovered ones every interval until `stop` turns true.
pub async fn run(
    settings: ScrapeSettings,
    node: EntityName,
    static_targets: Vec<ScrapeTarget>,
    mut discovered: Option<watch::Receiver<Arc<Vec<ScrapeTarget>>>>,
    emit: Emit,
    mut stop: watch::Receiver<bool>,
) {
    let mut scrapers: BTreeMap<EntityName, PodScraper> = BTreeMap::new();
    if let Some(found) = discovered.as_mut() {
        // The first round waits (a little) for the first list, so that the discovered pods'
        // baselines are not an interval late.
        let first_list = tokio::time::timeout(settings.interval.min(FIRST_DISCOVERY_WAIT), found.changed());
        tokio::select! {
            _ = first_list => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut targets: BTreeMap<EntityName, ScrapeUrl> =
            static_targets.iter().map(|t| (t.pod.clone(), t.url.clone())).collect();
        if let Some(found) = discovered.as_mut() {
            for t in found.borrow_and_update().iter() {
                targets.entry(t.pod.clone()).or_insert_with(|| t.url.clone());
            }
        }
        scrapers.retain(|pod, _| targets.contains_key(pod));
        for (pod, url) in targets {
            match scrapers.get_mut(&pod) {
                Some(scraper) => scraper.retarget(url),
                None => {
                    scrapers.insert(pod.clone(), PodScraper::new(ScrapeTarget { pod, url }));
                }
            }
        }
        let round = futures::future::join_all(scrapers.values_mut().map(|s| s.scrape(&node, &settings)));
        let started = Instant::now();
        let samples = tokio::select! {
            samples = round => samples,
            _ = stop.wait_for(|s| *s) => return,
        };
        tracing::trace!(pods = samples.len(), elapsed = ?started.elapsed(), "scrape round done");
        for sample in samples {
            emit(Record::Mixer(sample));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_exposition::{parse, render, MetricKind, Sample, Scrape, START_TIME_METRIC};

    const FIXTURE: &str = include_str!("../../tests/fixtures/ai_mixer_metrics.prom");
    const INF: f64 = f64::INFINITY;

    fn name(s: &str) -> EntityName {
        EntityName::new(s).expect("valid name")
    }

    fn sample_of(tracker: &mut SeriesTracker<SeriesId>, text: &str) -> (MixerSample, BuildNotes) {
        let scrape = parse(text, Format::Prometheus).expect("parses");
        let deltas = tracker.observe(observation(&scrape));
        build_sample(&deltas, name("mixer-0"), name("node-a"), 1_000, 15_000)
    }

    /// The fixture, edited.
    fn edited(f: impl FnOnce(&mut Scrape)) -> String {
        let mut scrape = parse(FIXTURE, Format::Prometheus).expect("parses");
        f(&mut scrape);
        render(&scrape, Format::Prometheus)
    }

    /// Every counter and histogram sample changed by `f(sample)`.
    fn counts(scrape: &mut Scrape, f: impl Fn(&Sample) -> f64) {
        for family in &mut scrape.families {
            if matches!(family.kind, MetricKind::Counter | MetricKind::Histogram) {
                for sample in &mut family.samples {
                    sample.value = f(sample);
                }
            }
        }
    }

    fn shift_start(scrape: &mut Scrape, by: f64) {
        for family in scrape.families.iter_mut().filter(|f| f.name == START_TIME_METRIC) {
            for sample in &mut family.samples {
                sample.value += by;
            }
        }
    }

    #[test]
    fn the_fixture_first_is_a_baseline_with_gauges() {
        let mut tracker = SeriesTracker::new(5);
        let (sample, notes) = sample_of(&mut tracker, FIXTURE);
        assert!(sample.scrape_ok && !sample.restarted);
        assert!(sample.requests.is_empty() && sample.genres.is_empty() && sample.duration_buckets.is_empty());
        assert_eq!((sample.duration_count, sample.duration_sum_us), (0, 0));
        assert_eq!(sample.active_streams, Some(143.0));
        assert_eq!(sample.audio_peak_db, Some(-4.7));
        assert_eq!(sample.audio_lufs, Some(-14.2));
        assert_eq!((sample.weight_ms, sample.at_ms, sample.node.as_str()), (15_000, 1_000, "node-a"));
        assert_eq!(notes, BuildNotes::default());
    }

    #[test]
    fn the_fixture_grown_gives_exact_deltas() {
        let mut tracker = SeriesTracker::new(5);
        sample_of(&mut tracker, FIXTURE);
        // +600 requests 200, +3 of 500, +1 of a status never seen before; 10 more tracks of
        // rock, 5 of jazz; 100 more mixes: 40 in (0.01, 0.025], 50 in (0.025, 0.05], 10 in
        // (1, 2.5], taking 4.5 s in all.
        let grown = edited(|scrape| {
            counts(scrape, |s| {
                let add = match (s.name.as_str(), s.label("status"), s.label("genre"), s.label("le")) {
                    (REQUESTS, Some("200"), _, _) => 600.0,
                    (REQUESTS, Some("500"), _, _) => 3.0,
                    (GENRES, _, Some("rock"), _) => 10.0,
                    (GENRES, _, Some("jazz"), _) => 5.0,
                    (_, _, _, Some(le)) => match le.parse::<f64>().unwrap_or(INF) {
                        le if le < 0.025 => 0.0,
                        le if le < 0.05 => 40.0,
                        le if le < 2.5 => 90.0,
                        _ => 100.0,
                    },
                    ("ai_mixer_processing_duration_seconds_count", ..) => 100.0,
                    ("ai_mixer_processing_duration_seconds_sum", ..) => 4.5,
                    _ => 0.0,
                };
                s.value + add
            });
            let requests = scrape.families.iter_mut().find(|f| f.name == REQUESTS).expect("in the fixture");
            requests.samples.push(Sample {
                name: REQUESTS.into(),
                labels: vec![("region".into(), "us-west".into()), ("status".into(), "502".into())],
                value: 1.0,
                timestamp_ms: None,
            });
        });
        let (sample, notes) = sample_of(&mut tracker, &grown);
        assert!(sample.scrape_ok && !sample.restarted);
        assert_eq!(sample.requests, [(200, 600), (500, 3), (502, 1)]);
        assert_eq!(sample.genres, [(name("jazz"), 5), (name("rock"), 10)]);
        let want: [(f64, u64); 12] = [
            (0.005, 0),
            (0.01, 0),
            (0.025, 40),
            (0.05, 50),
            (0.1, 0),
            (0.25, 0),
            (0.5, 0),
            (1.0, 0),
            (2.5, 10),
            (5.0, 0),
            (10.0, 0),
            (INF, 0),
        ];
        assert_eq!(sample.duration_buckets, want);
        assert_eq!(sample.duration_count, 100);
        assert_eq!(sample.duration_sum_us, 4_500_000);
        assert_eq!(sample.active_streams, Some(143.0));
        assert_eq!(notes, BuildNotes::default());

        // Nothing new: an interval of zeros, no restart.
        let (same, _) = sample_of(&mut tracker, &grown);
        assert!(same.scrape_ok && !same.restarted && same.requests.is_empty() && same.duration_count == 0);
        assert!(same.duration_buckets.iter().all(|b| b.1 == 0));
    }

    #[test]
    fn the_fixture_restarted_gives_small_deltas_never_negative() {
        // The new process counted a little: everything back to small values (not zero).
        let shrink = |scrape: &mut Scrape| counts(scrape, |s| (s.value / 100_000.0).floor());
        let mut tracker = SeriesTracker::new(5);
        sample_of(&mut tracker, FIXTURE);
        let restarted = edited(|scrape| {
            shrink(scrape);
            shift_start(scrape, 60.0);
        });
        let (sample, _) = sample_of(&mut tracker, &restarted);
        assert!(sample.scrape_ok && sample.restarted);
        assert_eq!(sample.requests, [(200, 18)], "the new process's counts, not the old totals");
        assert_eq!(sample.duration_count, 18);
        assert_eq!(sample.duration_buckets.iter().map(|b| b.1).sum::<u64>(), 18);
        assert_eq!(sample.genres.iter().map(|g| g.1).sum::<u64>(), 4 + 3 + 1 + 4);

        // Without a start time the drop alone shows the reset.
        let mut tracker = SeriesTracker::new(5);
        sample_of(&mut tracker, &edited(|scrape| scrape.families.retain(|f| f.name != START_TIME_METRIC)));
        let (sample, _) = sample_of(
            &mut tracker,
            &edited(|scrape| {
                shrink(scrape);
                scrape.families.retain(|f| f.name != START_TIME_METRIC);
            }),
        );
        assert!(sample.restarted);
        assert_eq!(sample.requests, [(200, 18)]);
    }

    #[test]
    fn bad_genres_are_dropped_and_counted_and_label_sets_merge() {
        let text = "# TYPE ai_mixer_genre_classifications_total counter\n\
            ai_mixer_genre_classifications_total{genre=\"lo fi\"} 1\n\
            ai_mixer_genre_classifications_total{genre=\"rock\",region=\"a\"} 1\n\
            ai_mixer_genre_classifications_total{genre=\"rock\",region=\"b\"} 1\n\
            # TYPE ai_mixer_requests_total counter\n\
            ai_mixer_requests_total{status=\"200\",region=\"a\"} 1\n\
            ai_mixer_requests_total{status=\"200\",region=\"b\"} 1\n\
            ai_mixer_requests_total{status=\"ok\"} 1\n\
            # TYPE ai_mixer_active_streams gauge\n\
            ai_mixer_active_streams{region=\"a\"} 3\n\
            ai_mixer_active_streams{region=\"b\"} 4\n\
            # TYPE ai_mixer_audio_peak_db gauge\n\
            ai_mixer_audio_peak_db{region=\"a\"} -6\n\
            ai_mixer_audio_peak_db{region=\"b\"} -3\n\
            # TYPE ai_mixer_audio_lufs gauge\n\
            ai_mixer_audio_lufs{region=\"a\"} -14\n\
            ai_mixer_audio_lufs{region=\"b\"} -16\n";
        let mut tracker = SeriesTracker::new(5);
        sample_of(&mut tracker, text);
        let (sample, notes) = sample_of(&mut tracker, &text.replace("} 1\n", "} 3\n"));
        assert_eq!(sample.genres, [(name("rock"), 4)]);
        assert_eq!(sample.requests, [(200, 4)]);
        assert_eq!(notes, BuildNotes { dropped_genres: 1, dropped_statuses: 1 });
        let gauges = (sample.active_streams, sample.audio_peak_db, sample.audio_lufs);
        assert_eq!(gauges, (Some(7.0), Some(-3.0), Some(-15.0)));
    }

    #[test]
    fn scrape_urls() {
        let url = ScrapeUrl::parse("http://10.0.0.7:8080/metrics").expect("valid");
        assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("10.0.0.7", 8080, "/metrics"));
        let url = ScrapeUrl::parse("http://[fd00::7]:8080/metrics?x=1").expect("valid");
        let parts = (url.host.as_str(), url.authority.as_str(), url.path.as_str());
        assert_eq!(parts, ("fd00::7", "[fd00::7]:8080", "/metrics?x=1"));
        assert_eq!(ScrapeUrl::parse("http://pod").expect("valid").port, 80);
        for bad in ["https://pod/metrics", "pod:8080/metrics", "/metrics", "", "http://"] {
            assert!(ScrapeUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
