//! From a parsed scrape to an [`Observation`] for [`mixmon_model::counters::SeriesTracker`]:
//! which series are counters, histograms and gauges, keyed by [`SeriesId`].
//!
//! The family's declared type decides; untyped families, gauge histograms, infos and state sets
//! are left out (a delta of something whose type is unknown would be a guess).

use mixmon_model::counters::{CounterObs, HistogramObs, Observation};

use crate::{MetricKind, Scrape};

/// The gauge whose change means the pod restarted.
pub const START_TIME_METRIC: &str = "process_start_time_seconds";

/// A series across scrapes: a sample name (for a histogram, its family name) and its labels
/// sorted by name (without `le`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl SeriesId {
    fn new(name: &str, labels: &[(String, String)]) -> Self {
        let mut labels = labels.to_vec();
        labels.sort();
        SeriesId { name: name.to_owned(), labels }
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The counters, histograms and gauges of one scrape.
///
/// - Counters: every sample of a counter family; in OpenMetrics the `_total` samples, with the
///   `_created` of the same labels attached. A summary's `_count` and `_sum` are counters too.
/// - Histograms: per label set, buckets sorted by `le`; `_count` defaults to the `+Inf` bucket
///   and `_sum` to 0 when missing.
/// - Gauges: every sample of a gauge family, and a summary's quantiles.
/// - The start time: the unlabelled `process_start_time_seconds` gauge.
pub fn observation(scrape: &Scrape) -> Observation<SeriesId> {
    let mut obs = Observation::default();
    for family in &scrape.families {
        match family.kind {
            MetricKind::Counter => {
                let created_name = format!("{}_created", family.name);
                let created: Vec<_> = family.samples.iter().filter(|s| s.name == created_name).collect();
                for sample in family.samples.iter().filter(|s| s.name != created_name) {
                    let id = SeriesId::new(&sample.name, &sample.labels);
                    let created = created.iter().find(|c| SeriesId::new("", &c.labels).labels == id.labels);
                    obs.counters.push((id, CounterObs { value: sample.value, created: created.map(|c| c.value) }));
                }
            }
            MetricKind::Gauge => {
                for sample in &family.samples {
                    if sample.name == START_TIME_METRIC && sample.labels.is_empty() {
                        obs.start_time_s = Some(sample.value);
                    }
                    obs.gauges.push((SeriesId::new(&sample.name, &sample.labels), sample.value));
                }
            }
            MetricKind::Histogram => {
                for h in family.histograms() {
                    let count = h.count.or_else(|| h.buckets.last().map(|b| b.1)).unwrap_or(0.0);
                    let id = SeriesId { name: family.name.clone(), labels: h.labels };
                    let histogram =
                        HistogramObs { buckets: h.buckets, count, sum: h.sum.unwrap_or(0.0), created: h.created };
                    obs.histograms.push((id, histogram));
                }
            }
            MetricKind::Summary => {
                for sample in &family.samples {
                    let id = SeriesId::new(&sample.name, &sample.labels);
                    if sample.name == family.name {
                        obs.gauges.push((id, sample.value));
                    } else if !sample.name.ends_with("_created") {
                        obs.counters.push((id, CounterObs::new(sample.value)));
                    }
                }
            }
            MetricKind::GaugeHistogram | MetricKind::Info | MetricKind::StateSet | MetricKind::Unknown => {}
        }
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, render, Format};
    use mixmon_model::counters::{Continuity, SeriesTracker};

    const FIXTURE: &str = include_str!("../tests/fixtures/ai_mixer_metrics.prom");

    fn requests(status: &str) -> SeriesId {
        SeriesId::new(
            "ai_mixer_requests_total",
            &[("status".to_owned(), status.to_owned()), ("region".to_owned(), "us-west".to_owned())],
        )
    }

    #[test]
    fn fixture_observation() {
        let obs = observation(&parse(FIXTURE, Format::Prometheus).expect("parses"));
        assert_eq!(obs.start_time_s, Some(1.7639e9));
        assert_eq!(obs.counters.len(), 5 + 7);
        assert!(obs.counters.contains(&(requests("500"), CounterObs::new(1190.0))));
        assert_eq!(obs.histograms.len(), 1);
        let (id, h) = &obs.histograms[0];
        assert_eq!((id.name.as_str(), id.label("region")), ("ai_mixer_processing_duration_seconds", Some("us-west")));
        assert_eq!((h.count, h.sum, h.buckets.len()), (1_844_814.0, 61_877.31, 12));
        let gauges: Vec<(&str, f64)> = obs.gauges.iter().map(|(id, v)| (id.name.as_str(), *v)).collect();
        assert_eq!(
            gauges,
            [
                ("ai_mixer_active_streams", 143.0),
                ("ai_mixer_audio_peak_db", -4.7),
                ("ai_mixer_audio_lufs", -14.2),
                ("process_resident_memory_bytes", 418_488_320.0),
                ("process_start_time_seconds", 1.7639e9),
            ]
        );
    }

    #[test]
    fn openmetrics_created_is_attached() {
        let text = "# TYPE c counter\nc_total{a=\"1\"} 5\nc_created{a=\"1\"} 100\nc_total{a=\"2\"} 7\n# EOF\n";
        let obs = observation(&parse(text, Format::OpenMetrics).expect("parses"));
        let got: Vec<(Option<&str>, CounterObs)> = obs.counters.iter().map(|(id, c)| (id.label("a"), *c)).collect();
        assert_eq!(
            got,
            [
                (Some("1"), CounterObs { value: 5.0, created: Some(100.0) }),
                (Some("2"), CounterObs { value: 7.0, created: None })
            ]
        );
    }

    /// The fixture pod restarts: `process_start_time_seconds` moves and every counter drops
    /// from its total to a handful. The interval's deltas are the handful, never negative,
    /// never the old total.
    #[test]
    fn fixture_pod_restart_gives_no_dip_and_no_spike() {
        let mut tracker = SeriesTracker::new(10);
        let before = observation(&parse(FIXTURE, Format::Prometheus).expect("parses"));
        assert_eq!(tracker.observe(before).continuity, Continuity::FirstScrape);

        let grown = FIXTURE.replace("status=\"500\"} 1190", "status=\"500\"} 1200");
        let normal = tracker.observe(observation(&parse(&grown, Format::Prometheus).expect("parses")));
        assert!(normal.counters.contains(&(requests("500"), 10.0)));
        assert!(normal.counters.iter().all(|(_, d)| *d >= 0.0 && *d <= 10.0));

        // The new process has counted a little: every counter and bucket is a small fraction
        // of before, and the start time moved by a minute.
        let mut scrape = parse(FIXTURE, Format::Prometheus).expect("parses");
        for family in &mut scrape.families {
            for sample in &mut family.samples {
                match (family.kind, sample.name.as_str()) {
                    (_, START_TIME_METRIC) => sample.value += 60.0,
                    (MetricKind::Counter | MetricKind::Histogram, _) => {
                        sample.value = (sample.value / 100_000.0).floor()
                    }
                    _ => {}
                }
            }
        }
        let restarted_text = render(&scrape, Format::Prometheus);
        let restarted = tracker.observe(observation(&parse(&restarted_text, Format::Prometheus).expect("parses")));
        assert_eq!(restarted.continuity, Continuity::Restarted);
        assert_eq!(restarted.counters.len(), 12);
        assert!(restarted.counters.contains(&(requests("200"), 18.0)));
        assert!(restarted.counters.contains(&(requests("500"), 0.0)));
        assert!(restarted.counters.iter().all(|(_, d)| (0.0..=18.0).contains(d)), "{:?}", restarted.counters);
        let (_, h) = &restarted.histograms[0];
        assert!(h.reset && h.count == 18.0);
        assert_eq!(restarted.resets, 12 + 1);
    }
}
