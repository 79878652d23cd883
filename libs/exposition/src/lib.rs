//! A parser and renderer for the two text formats a mixer pod's `:8080/metrics` can answer in:
//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! No I/O, no async, no clock: [`parse`] takes the body, [`render`] gives one back. The parser
//! never panics, whatever the input, and its work is bounded by [`Limits`]: an input, a line,
//! a label set, a sample count or a family count over its limit is a typed [`ParseError`], not
//! an allocation that grows with the attacker's patience. The `fuzz/` project at the workspace
//! root holds it to that.
//!
//! [`observation`] turns a scrape into the input of `mixmon_model::counters::SeriesTracker`,
//! which computes counter-reset-safe per-interval deltas.
//!
//! # Decisions
//!
//! - **Duplicates are errors.** Two samples with the same name and label set (in any label
//!   order) in one scrape is [`ErrorKind::DuplicateSeries`]; a second `# TYPE`/`# HELP`/`# UNIT`
//!   for a family is [`ErrorKind::DuplicateMetadata`]; metadata after a family's samples is
//!   [`ErrorKind::MetadataAfterSamples`]. Picking one of two values silently would make the
//!   counter deltas computed from the scrape wrong in a way nobody sees.
//! - **Prometheus format is lenient where exporters differ**: blanks (spaces and tabs) around
//!   tokens and inside label sets, a trailing comma in a label set, free-form `#` comments, blank
//!   lines, and samples of an untyped or already-declared family arriving after another family
//!   (they are merged into it, as Prometheus does). Unknown escapes in `# HELP` text are kept
//!   verbatim (a help text is not worth failing a scrape for); in label values they are errors.
//! - **OpenMetrics is strict where the spec is**: single spaces, no blank lines, only
//!   `HELP`/`TYPE`/`UNIT`/`EOF` comments, `# EOF` required and nothing after it, a family's
//!   samples contiguous, counters' samples named `_total` or `_created`. Exemplars are checked
//!   for syntax and dropped. Timestamps (seconds, possibly fractional) become milliseconds.
//! - **Histograms and summaries**: a `_bucket` sample needs a numeric `le` label, a summary's
//!   quantile sample a numeric `quantile` label. Whether buckets are cumulative is a property
//!   of the data, not the syntax: [`HistogramSeries::is_cumulative`] checks it.
//! - Values `NaN`, `+Inf`, `-Inf` (and `Inf`, `infinity`, any case) and exponent floats are
//!   accepted; a `NaN` `le` or quantile is not.

mod error;
mod histogram;
mod observe;
mod parse;
mod render;
mod value;

pub use error::{ErrorKind, ParseError};
pub use histogram::{HistogramSeries, Quantile, SummarySeries};
pub use observe::{observation, SeriesId, START_TIME_METRIC};
pub use parse::{parse, parse_with_limits};
pub use render::render;

/// Which of the two text formats a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Accept` header a scraper sends: OpenMetrics preferred, Prometheus text accepted.
    pub const ACCEPT: &'static str =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    /// The format of a response from its `Content-Type` header. Anything that is not
    /// OpenMetrics (including a missing or garbled header) is read as Prometheus text, which is
    /// what every exporter falls back to.
    pub fn from_content_type(content_type: &str) -> Format {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a body rendered in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family's type, as declared by its `# TYPE` line (or [`MetricKind::Unknown`] when
/// there is none; Prometheus calls it `untyped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    /// OpenMetrics only.
    GaugeHistogram,
    Summary,
    /// OpenMetrics only.
    Info,
    /// OpenMetrics only.
    StateSet,
    /// `untyped` in Prometheus text, `unknown` in OpenMetrics.
    Unknown,
}

impl MetricKind {
    /// The type's name on a `# TYPE` line in `format`, or `None` if the format has no such type.
    pub fn from_type_name(name: &str, format: Format) -> Option<MetricKind> {
        let kind = match (name, format) {
            ("counter", _) => MetricKind::Counter,
            ("gauge", _) => MetricKind::Gauge,
            ("histogram", _) => MetricKind::Histogram,
            ("summary", _) => MetricKind::Summary,
            ("untyped", Format::Prometheus) => MetricKind::Unknown,
            ("unknown", Format::OpenMetrics) => MetricKind::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricKind::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricKind::Info,
            ("stateset", Format::OpenMetrics) => MetricKind::StateSet,
            _ => return None,
        };
        Some(kind)
    }

    /// The name written on a `# TYPE` line. Prometheus text has no gauge histograms, infos or
    /// state sets, so those are written `untyped` there.
    pub fn type_name(self, format: Format) -> &'static str {
        match (self, format) {
            (MetricKind::Counter, _) => "counter",
            (MetricKind::Gauge, _) => "gauge",
            (MetricKind::Histogram, _) => "histogram",
            (MetricKind::Summary, _) => "summary",
            (MetricKind::GaugeHistogram, Format::OpenMetrics) => "gaugehistogram",
            (MetricKind::Info, Format::OpenMetrics) => "info",
            (MetricKind::StateSet, Format::OpenMetrics) => "stateset",
            (MetricKind::Unknown, Format::OpenMetrics) => "unknown",
            (_, Format::Prometheus) => "untyped",
        }
    }

    /// The suffixes a sample name may add to its family's name for this type in `format`.
    pub fn sample_suffixes(self, format: Format) -> &'static [&'static str] {
        match (self, format) {
            (MetricKind::Histogram, Format::Prometheus) => &["_bucket", "_sum", "_count"],
            (MetricKind::Summary, Format::Prometheus) => &["", "_sum", "_count"],
            (_, Format::Prometheus) => &[""],
            (MetricKind::Counter, Format::OpenMetrics) => &["_total", "_created"],
            (MetricKind::Histogram, Format::OpenMetrics) => &["_bucket", "_count", "_sum", "_created"],
            (MetricKind::GaugeHistogram, Format::OpenMetrics) => &["_bucket", "_gcount", "_gsum"],
            (MetricKind::Summary, Format::OpenMetrics) => &["", "_count", "_sum", "_created"],
            (MetricKind::Info, Format::OpenMetrics) => &["_info"],
            (MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown, Format::OpenMetrics) => &[""],
        }
    }
}

/// Limits on the work one parse may do. Every one of them is reported as its own
/// [`ErrorKind`] when exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_input_bytes: usize,
    pub max_line_bytes: usize,
    pub max_labels_per_sample: usize,
    pub max_samples: usize,
    pub max_families: usize,
}

impl Default for Limits {
    /// Generous for a mixer pod (about 40 samples) and for a node exporter (a few thousand),
    /// small enough that a hostile or broken target cannot make the prober allocate much.
    fn default() -> Self {
        Limits {
            max_input_bytes: 16 * 1024 * 1024,
            max_line_bytes: 64 * 1024,
            max_labels_per_sample: 64,
            max_samples: 200_000,
            max_families: 20_000,
        }
    }
}

/// One sample line: a series (name and labels) and its value at the scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full sample name, suffix included (`ai_mixer_requests_total`,
    /// `..._bucket`, `..._sum`).
    pub name: String,
    /// In the order they were written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the unix epoch, when the exposition carried one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether the sample's label set is exactly `labels`, in any order.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len() && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// A metric family: its metadata and its samples, in exposition order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name: without `_total` for an OpenMetrics counter, without `_bucket`/`_sum`/
    /// `_count` for a histogram.
    pub name: String,
    pub help: Option<String>,
    /// OpenMetrics `# UNIT`; always `None` in Prometheus text.
    pub unit: Option<String>,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// The value of the sample named `name` with exactly the label set `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.iter().find(|s| s.name == name && s.has_labels(labels)).map(|s| s.value)
    }
}

/// Everything one scrape returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scrape {
    /// In order of first appearance.
    pub families: Vec<Family>,
}

impl Scrape {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// How many samples the scrape holds, over all families.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }

    /// Every sample, with the family it belongs to.
    pub fn samples(&self) -> impl Iterator<Item = (&Family, &Sample)> {
        self.families.iter().flat_map(|f| f.samples.iter().map(move |s| (f, s)))
    }

    /// Equality with `NaN` equal to `NaN` (`==` says a scrape holding a `NaN` differs from
    /// itself), for round-trip checks.
    pub fn equivalent(&self, other: &Scrape) -> bool {
        let same_value = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        self.families.len() == other.families.len()
            && self.families.iter().zip(&other.families).all(|(a, b)| {
                a.name == b.name
                    && a.help == b.help
                    && a.unit == b.unit
                    && a.kind == b.kind
                    && a.samples.len() == b.samples.len()
                    && a.samples.iter().zip(&b.samples).all(|(x, y)| {
                        x.name == y.name
                            && x.labels == y.labels
                            && x.timestamp_ms == y.timestamp_ms
                            && same_value(x.value, y.value)
                    })
            })
    }
}
