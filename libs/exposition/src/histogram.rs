//! Histogram and summary families regrouped per series: the `_bucket`, `_sum`, `_count` (and
//! `_created`) samples that share a label set, so callers need not match suffixes themselves.

use std::collections::BTreeMap;

use crate::value::parse_value;
use crate::{Family, MetricKind};

/// One histogram series: every bucket of one label set, with its sum and count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSeries {
    /// The series' labels without `le`, sorted by name.
    pub labels: Vec<(String, String)>,
    /// `(le, cumulative count)`, sorted by `le`.
    pub buckets: Vec<(f64, f64)>,
    pub sum: Option<f64>,
    pub count: Option<f64>,
    /// OpenMetrics `_created`, seconds since the epoch.
    pub created: Option<f64>,
}

impl HistogramSeries {
    /// Whether the buckets are what a histogram promises: counts never decreasing with `le`,
    /// the last bucket `+Inf`, and `_count` (when present) equal to it.
    pub fn is_cumulative(&self) -> bool {
        let non_decreasing = self.buckets.windows(2).all(|w| matches!(w, [(_, a), (_, b)] if a <= b));
        let last = self.buckets.last();
        let inf_last = last.is_some_and(|(le, _)| *le == f64::INFINITY);
        let count_matches = match (self.count, last) {
            (Some(count), Some((_, inf))) => count == *inf,
            _ => true,
        };
        non_decreasing && inf_last && count_matches
    }
}

/// One quantile of a summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

/// One summary series: its quantiles, sum and count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SummarySeries {
    /// The series' labels without `quantile`, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Sorted by quantile.
    pub quantiles: Vec<Quantile>,
    pub sum: Option<f64>,
    pub count: Option<f64>,
    pub created: Option<f64>,
}

/// The labels of a sample without `skip`, sorted: the key its series is grouped under.
fn key_without(labels: &[(String, String)], skip: &str) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> = labels.iter().filter(|(k, _)| k != skip).cloned().collect();
    key.sort();
    key
}

impl Family {
    /// The family's histogram series (empty unless it is a histogram or gauge histogram), in
    /// label order.
    pub fn histograms(&self) -> Vec<HistogramSeries> {
        if !matches!(self.kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
            return Vec::new();
        }
        let mut series: BTreeMap<Vec<(String, String)>, HistogramSeries> = BTreeMap::new();
        for sample in &self.samples {
            let suffix = sample.name.strip_prefix(self.name.as_str()).unwrap_or_default();
            let key = key_without(&sample.labels, "le");
            let entry =
                series.entry(key.clone()).or_insert_with(|| HistogramSeries { labels: key, ..Default::default() });
            match suffix {
                "_bucket" => {
                    // The parser refused buckets without a numeric `le`.
                    if let Some(le) = sample.label("le").and_then(parse_value) {
                        entry.buckets.push((le, sample.value));
                    }
                }
                "_sum" | "_gsum" => entry.sum = Some(sample.value),
                "_count" | "_gcount" => entry.count = Some(sample.value),
                "_created" => entry.created = Some(sample.value),
                _ => {}
            }
        }
        let mut out: Vec<HistogramSeries> = series.into_values().collect();
        for h in &mut out {
            h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out
    }

    /// The family's summary series (empty unless it is a summary), in label order.
    pub fn summaries(&self) -> Vec<SummarySeries> {
        if self.kind != MetricKind::Summary {
            return Vec::new();
        }
        let mut series: BTreeMap<Vec<(String, String)>, SummarySeries> = BTreeMap::new();
        for sample in &self.samples {
            let suffix = sample.name.strip_prefix(self.name.as_str()).unwrap_or_default();
            let key = key_without(&sample.labels, "quantile");
            let entry =
                series.entry(key.clone()).or_insert_with(|| SummarySeries { labels: key, ..Default::default() });
            match suffix {
                "" => {
                    if let Some(quantile) = sample.label("quantile").and_then(parse_value) {
                        entry.quantiles.push(Quantile { quantile, value: sample.value });
                    }
                }
                "_sum" => entry.sum = Some(sample.value),
                "_count" => entry.count = Some(sample.value),
                "_created" => entry.created = Some(sample.value),
                _ => {}
            }
        }
        let mut out: Vec<SummarySeries> = series.into_values().collect();
        for s in &mut out {
            s.quantiles.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
        }
        out
    }
}
