//! The services' own metrics, in Prometheus text format: counters, gauges and histograms that
//! a service declares once (`Registry::counter` and friends, at start-up) and updates with an
//! atomic add on its hot paths, and that `GET /metrics` renders through `mixmon_exposition`
//! (the same renderer and parser the prober scrapes mixer pods with).
//!
//! Names are `mixmon_<subsystem>_<name>_<unit>` and are checked when declared. Labelled
//! counters hold at most [`MAX_SERIES_PER_FAMILY`] label sets: past it, new label sets are
//! counted under `overflow="true"`, so a bug that puts an unbounded value in a label costs a
//! counter, not the process's memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mixmon_exposition::{Family, Format, MetricKind, Sample, Scrape};

/// Label sets one labelled family holds before it folds the rest into one overflow series.
pub const MAX_SERIES_PER_FAMILY: usize = 1_000;

/// Latency buckets in seconds: 0.5 ms to 10 s, the span of a store call and of a probe batch.
pub const LATENCY_BUCKETS_S: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A count that only goes up.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as the bits of an `f64`).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Counters by label values, in the label order the family was declared with.
#[derive(Debug, Clone)]
pub struct CounterVec {
    labels: &'static [&'static str],
    series: Arc<Mutex<BTreeMap<Vec<String>, u64>>>,
    overflow: Counter,
}

impl CounterVec {
    /// Adds `n` to the series of `values` (one per declared label; missing ones are empty).
    pub fn add(&self, values: &[&str], n: u64) {
        let key: Vec<String> =
            (0..self.labels.len()).map(|i| values.get(i).copied().unwrap_or("").to_string()).collect();
        let mut series = lock(&self.series);
        if let Some(count) = series.get_mut(&key) {
            *count += n;
        } else if series.len() < MAX_SERIES_PER_FAMILY {
            series.insert(key, n);
        } else {
            self.overflow.add(n);
        }
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// The count of one series (0 when it was never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        lock(&self.series).get(&key).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct HistogramState {
    /// Per bucket, not cumulative; one more for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Observations in fixed buckets, with their sum and count.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    state: Arc<Mutex<HistogramState>>,
}

/// A latency histogram ([`LATENCY_BUCKETS_S`]), to declare with [`Registry::add_histogram`].
impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&LATENCY_BUCKETS_S)
    }
}

impl Histogram {
    pub fn with_bounds(bounds: &'static [f64]) -> Self {
        let state = HistogramState { counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 };
        Histogram { bounds, state: Arc::new(Mutex::new(state)) }
    }

    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let bucket = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        let mut state = lock(&self.state);
        state.counts[bucket] += 1;
        state.sum += value;
        state.count += 1;
    }

    /// Observes the time since `started`, in seconds.
    pub fn observe_since(&self, started: std::time::Instant) {
        self.observe(started.elapsed().as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        lock(&self.state).count
    }
}

/// A value read when scraped, from state the service keeps anyway (a buffer's depth).
type Read = Arc<dyn Fn() -> f64 + Send + Sync>;

#[derive(Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    CounterVec(CounterVec),
    Histogram(Histogram),
    CounterFn(Read),
    GaugeFn(Read),
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metric::Counter(c) => f.debug_tuple("Counter").field(c).finish(),
            Metric::Gauge(g) => f.debug_tuple("Gauge").field(g).finish(),
            Metric::CounterVec(v) => f.debug_tuple("CounterVec").field(v).finish(),
            Metric::Histogram(h) => f.debug_tuple("Histogram").field(h).finish(),
            Metric::CounterFn(_) => f.write_str("CounterFn"),
            Metric::GaugeFn(_) => f.write_str("GaugeFn"),
        }
    }
}

#[derive(Debug, Clone)]
struct Declared {
    name: String,
    help: String,
    metric: Metric,
}

/// A metric name is `mixmon_` then lowercase letters, digits and underscores; a counter's ends
/// in `_total`.
pub fn valid_name(name: &str, counter: bool) -> bool {
    name.starts_with("mixmon_")
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.ends_with('_')
        && counter == name.ends_with("_total")
}

/// One service's metrics. Cheap to clone: clones share the metrics.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    declared: Arc<Mutex<Vec<Declared>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a metric. Names are constants of the code, so a bad or a repeated one is a bug
    /// found by the first test that starts the service: it panics.
    fn declare(&self, name: &str, help: &str, metric: Metric) {
        let counter = matches!(metric, Metric::Counter(_) | Metric::CounterVec(_) | Metric::CounterFn(_));
        assert!(valid_name(name, counter), "metric name {name:?} is not mixmon_<subsystem>_<name>_<unit>");
        let mut declared = lock(&self.declared);
        assert!(declared.iter().all(|d| d.name != name), "metric {name} declared twice");
        declared.push(Declared { name: name.to_string(), help: help.to_string(), metric });
    }

    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.declare(name, help, Metric::Counter(counter.clone()));
        counter
    }

    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.declare(name, help, Metric::Gauge(gauge.clone()));
        gauge
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &'static [&'static str]) -> CounterVec {
        let vec = CounterVec { labels, series: Arc::default(), overflow: Counter::default() };
        self.declare(name, help, Metric::CounterVec(vec.clone()));
        vec
    }

    /// A counter whose value `read` returns when scraped (a count the service keeps anyway).
    pub fn counter_fn(&self, name: &str, help: &str, read: impl Fn() -> u64 + Send + Sync + 'static) -> &Self {
        self.declare(name, help, Metric::CounterFn(Arc::new(move || read() as f64)));
        self
    }

    /// A gauge whose value `read` returns when scraped.
    pub fn gauge_fn(&self, name: &str, help: &str, read: impl Fn() -> f64 + Send + Sync + 'static) -> &Self {
        self.declare(name, help, Metric::GaugeFn(Arc::new(read)));
        self
    }

    pub fn histogram(&self, name: &str, help: &str, bounds: &'static [f64]) -> Histogram {
        let histogram = Histogram::with_bounds(bounds);
        self.add_histogram(name, help, &histogram);
        histogram
    }

    /// Declares a histogram made elsewhere (one that lives in a service's own stats).
    pub fn add_histogram(&self, name: &str, help: &str, histogram: &Histogram) -> &Self {
        self.declare(name, help, Metric::Histogram(histogram.clone()));
        self
    }

    /// Every declared metric's current value, in declaration order.
    pub fn families(&self) -> Vec<Family> {
        lock(&self.declared).iter().map(family).collect()
    }
}

fn sample(name: &str, labels: Vec<(String, String)>, value: f64) -> Sample {
    Sample { name: name.to_string(), labels, value, timestamp_ms: None }
}

fn family(declared: &Declared) -> Family {
    let name = declared.name.as_str();
    let (kind, samples) = match &declared.metric {
        Metric::Counter(counter) => (MetricKind::Counter, vec![sample(name, vec![], counter.get() as f64)]),
        Metric::Gauge(gauge) => (MetricKind::Gauge, vec![sample(name, vec![], gauge.get())]),
        Metric::CounterFn(read) => (MetricKind::Counter, vec![sample(name, vec![], read())]),
        Metric::GaugeFn(read) => (MetricKind::Gauge, vec![sample(name, vec![], read())]),
        Metric::CounterVec(vec) => {
            let mut samples: Vec<Sample> = lock(&vec.series)
                .iter()
                .map(|(values, count)| {
                    let labels = vec.labels.iter().zip(values).map(|(k, v)| (k.to_string(), v.clone())).collect();
                    sample(name, labels, *count as f64)
                })
                .collect();
            if vec.overflow.get() > 0 {
                samples.push(sample(name, vec![("overflow".into(), "true".into())], vec.overflow.get() as f64));
            }
            (MetricKind::Counter, samples)
        }
        Metric::Histogram(histogram) => {
            let state = lock(&histogram.state);
            let mut samples = Vec::with_capacity(histogram.bounds.len() + 3);
            let mut cumulative = 0;
            let bucket = format!("{name}_bucket");
            for (bound, count) in histogram.bounds.iter().zip(&state.counts) {
                cumulative += count;
                samples.push(sample(&bucket, vec![("le".into(), bound.to_string())], cumulative as f64));
            }
            cumulative += state.counts[histogram.bounds.len()];
            samples.push(sample(&bucket, vec![("le".into(), "+Inf".into())], cumulative as f64));
            samples.push(sample(&format!("{name}_sum"), vec![], state.sum));
            samples.push(sample(&format!("{name}_count"), vec![], state.count as f64));
            (MetricKind::Histogram, samples)
        }
    };
    Family { name: name.to_string(), help: Some(declared.help.clone()), unit: None, kind, samples }
}

/// The content type of [`render`]'s body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Families as a Prometheus text-format body.
pub fn render(families: Vec<Family>) -> String {
    mixmon_exposition::render(&Scrape { families }, Format::Prometheus)
}

/// A gauge family built at scrape time (the SLIs, read from the store when scraped).
pub fn gauge_family(name: &str, help: &str, samples: Vec<(Vec<(String, String)>, f64)>) -> Family {
    Family {
        name: name.to_string(),
        help: Some(help.to_string()),
        unit: None,
        kind: MetricKind::Gauge,
        samples: samples.into_iter().map(|(labels, value)| sample(name, labels, value)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_declared_renders_and_parses_back() {
        let registry = Registry::new();
        let batches = registry.counter("mixmon_ingest_batches_total", "Batches applied.");
        let depth = registry.gauge("mixmon_prober_buffer_records", "Records waiting.");
        let outcomes = registry.counter_vec("mixmon_notify_sent_total", "Notifications.", &["integration", "outcome"]);
        let latency = registry.histogram("mixmon_store_call_duration_seconds", "Store calls.", &LATENCY_BUCKETS_S);
        batches.add(3);
        depth.set(17.0);
        outcomes.inc(&["slack", "done"]);
        outcomes.add(&["pagerduty", "retry"], 2);
        latency.observe(0.003);
        latency.observe(20.0);
        let body = render(registry.families());
        let scrape = mixmon_exposition::parse(&body, Format::Prometheus).unwrap();
        let value =
            |family: &str, sample: &str, labels: &[(&str, &str)]| scrape.family(family).unwrap().value(sample, labels);
        assert_eq!(value("mixmon_ingest_batches_total", "mixmon_ingest_batches_total", &[]), Some(3.0));
        assert_eq!(value("mixmon_prober_buffer_records", "mixmon_prober_buffer_records", &[]), Some(17.0));
        let slack = [("integration", "slack"), ("outcome", "done")];
        assert_eq!(value("mixmon_notify_sent_total", "mixmon_notify_sent_total", &slack), Some(1.0));
        let h = "mixmon_store_call_duration_seconds";
        assert_eq!(value(h, &format!("{h}_bucket"), &[("le", "0.0025")]), Some(0.0));
        assert_eq!(value(h, &format!("{h}_bucket"), &[("le", "0.005")]), Some(1.0));
        assert_eq!(value(h, &format!("{h}_bucket"), &[("le", "+Inf")]), Some(2.0));
        assert_eq!(value(h, &format!("{h}_count"), &[]), Some(2.0));
        assert!(body.contains("# TYPE mixmon_store_call_duration_seconds histogram"), "{body}");
    }

    #[test]
    fn read_metrics_are_read_when_scraped() {
        let registry = Registry::new();
        let depth = Arc::new(AtomicU64::new(5));
        let read = depth.clone();
        registry.gauge_fn("mixmon_test_depth_records", "Depth.", move || read.load(Ordering::Relaxed) as f64);
        registry.counter_fn("mixmon_test_seen_total", "Seen.", || 9);
        depth.store(8, Ordering::Relaxed);
        let families = registry.families();
        assert_eq!(families[0].value("mixmon_test_depth_records", &[]), Some(8.0));
        assert_eq!(
            (families[1].kind, families[1].value("mixmon_test_seen_total", &[])),
            (MetricKind::Counter, Some(9.0))
        );
    }

    #[test]
    fn labelled_counters_stop_growing_at_their_bound() {
        let registry = Registry::new();
        let vec = registry.counter_vec("mixmon_test_things_total", "Things.", &["id"]);
        for i in 0..MAX_SERIES_PER_FAMILY + 50 {
            vec.inc(&[&i.to_string()]);
        }
        let families = registry.families();
        assert_eq!(families[0].samples.len(), MAX_SERIES_PER_FAMILY + 1);
        assert_eq!(families[0].value("mixmon_test_things_total", &[("overflow", "true")]), Some(50.0));
    }

    #[test]
    fn names_follow_the_convention() {
        assert!(valid_name("mixmon_query_requests_total", true));
        assert!(valid_name("mixmon_prober_buffer_records", false));
        for bad in ["query_requests_total", "mixmon_Query_total", "mixmon_query-requests_total", "mixmon_x_"] {
            assert!(!valid_name(bad, true), "{bad}");
        }
        assert!(!valid_name("mixmon_query_requests", true), "a counter ends in _total");
        assert!(!valid_name("mixmon_query_depth_total", false), "a gauge does not");
    }

    #[test]
    #[should_panic(expected = "declared twice")]
    fn a_name_is_declared_once() {
        let registry = Registry::new();
        registry.counter("mixmon_x_a_total", "a");
        registry.counter("mixmon_x_a_total", "b");
    }
}
