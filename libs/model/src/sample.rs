//! What a prober observes besides probe results: one scrape interval of a mixer pod, one sample
//! of its node, one sample of a pod on its node. Like a [`ProbeResult`], each travels in the
//! prober's write-ahead buffer and in sequence-numbered batches, so it is stored exactly once.
//!
//! Every counter here is already an **interval delta** (reset-safe, see [`crate::counters`]):
//! the aggregator only adds. Gauges are the value at the sample. `weight_ms` is how much time a
//! sample stands for (the sampling interval), so that a gauge summed as `value × weight` over a
//! minute and divided by 60 000 is its time-average, and sums across pods add up to the
//! region's total (active streams).

use crate::ids::EntityName;
use crate::result::ProbeResult;

/// Anything a prober buffers and ships.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Probe(ProbeResult),
    Mixer(MixerSample),
    Node(NodeSample),
    Pod(PodSample),
}

impl Record {
    /// When it was observed (unix ms): what the buffer's age bound and the store's minute use.
    pub fn at_ms(&self) -> i64 {
        match self {
            Record::Probe(r) => r.started_at_ms,
            Record::Mixer(s) => s.at_ms,
            Record::Node(s) => s.at_ms,
            Record::Pod(s) => s.at_ms,
        }
    }
}

impl From<ProbeResult> for Record {
    fn from(r: ProbeResult) -> Self {
        Record::Probe(r)
    }
}

/// One scrape of one mixer pod's `:8080/metrics`, as deltas over the interval since the
/// previous scrape of the same pod.
///
/// A pod's first scrape (and a failed scrape) carries no deltas, only `scrape_ok` and whatever
/// gauges it read: its counters hold the pod's whole history, not one interval's.
#[derive(Debug, Clone, PartialEq)]
pub struct MixerSample {
    /// The pod scraped (its Kubernetes name, or the static target's name).
    pub pod: EntityName,
    /// The node it runs on (the prober's node).
    pub node: EntityName,
    pub at_ms: i64,
    /// The scrape interval this sample stands for.
    pub weight_ms: u32,
    /// The scrape answered and parsed; `false` carries no figures.
    pub scrape_ok: bool,
    /// The pod restarted since the previous scrape (counters were reset).
    pub restarted: bool,
    /// `ai_mixer_requests_total` increase by HTTP status code, sorted by status.
    pub requests: Vec<(u16, u64)>,
    /// `ai_mixer_processing_duration_seconds`: per bucket (upper bound in seconds, `+Inf` last)
    /// the increase of observations **in that bucket alone** (not cumulative), sorted by bound.
    pub duration_buckets: Vec<(f64, u64)>,
    /// Increase of the histogram's `_count` and `_sum` (microseconds).
    pub duration_count: u64,
    pub duration_sum_us: u64,
    /// `ai_mixer_active_streams` at the scrape.
    pub active_streams: Option<f64>,
    /// `ai_mixer_audio_peak_db` (dBFS) and `ai_mixer_audio_lufs` at the scrape.
    pub audio_peak_db: Option<f64>,
    pub audio_lufs: Option<f64>,
    /// `ai_mixer_genre_classifications_total` increase by genre, sorted by genre.
    pub genres: Vec<(EntityName, u64)>,
    /// The time the deltas cover: since the pod's previous successful scrape (0 when there
    /// are no deltas). Rates divide by the time covered, not by a window's length.
    pub covered_ms: u32,
    /// The pod's first successful scrape in the minute of `at_ms`: how a region's minute counts
    /// its pods (see [`crate::figures`]).
    pub first_in_minute: bool,
}

/// One sample of the prober's node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    pub node: EntityName,
    pub at_ms: i64,
    pub weight_ms: u32,
    /// Share of CPU time not idle since the previous sample, 0..=1; `None` on the first.
    pub cpu_busy_ratio: Option<f64>,
    /// `MemTotal - MemAvailable`, and `MemTotal`.
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Bytes received and sent since the previous sample over every interface but loopback
    /// (reset-safe: a wrapped or reset interface counter adds its new value, never a negative).
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub disks: Vec<DiskSample>,
}

/// Use of one mounted file system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskSample {
    /// The mount point (`/`, `/var/lib/kubelet`); any printable text, at most 256 bytes.
    pub mount: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// One sample of one pod on the prober's node.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub pod: EntityName,
    pub namespace: EntityName,
    pub node: EntityName,
    pub at_ms: i64,
    pub weight_ms: u32,
    /// Every container ready (the pod's `Ready` condition).
    pub ready: bool,
    /// Increase of the sum of its containers' restart counts since the previous sample.
    pub restarts: u64,
    /// Working-set memory of its containers and the sum of their limits, when known (a
    /// container without a limit makes the pod's limit unknown).
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}
