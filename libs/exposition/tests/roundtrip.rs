//! Property: any well-formed scrape, rendered in either format, parses back to itself; and
//! the parser never panics on arbitrary text.

use mixmon_exposition::{parse, render, Family, Format, MetricKind, Sample, Scrape};
use proptest::prelude::*;

const PROM_KINDS: [MetricKind; 5] =
    [MetricKind::Counter, MetricKind::Gauge, MetricKind::Histogram, MetricKind::Summary, MetricKind::Unknown];
const OM_KINDS: [MetricKind; 8] = [
    MetricKind::Counter,
    MetricKind::Gauge,
    MetricKind::Histogram,
    MetricKind::GaugeHistogram,
    MetricKind::Summary,
    MetricKind::Info,
    MetricKind::StateSet,
    MetricKind::Unknown,
];

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => (0u32..2_000_000).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

/// Raw material for one series: extra labels, a value per sample, a timestamp.
type RawSeries = (Vec<(String, String)>, Vec<f64>, Option<i64>);
type RawFamily = (usize, Option<String>, Option<String>, Vec<RawSeries>);

fn raw_family() -> impl Strategy<Value = RawFamily> {
    let labels = proptest::collection::btree_map("k_[a-z0-9_]{0,5}", "(?s).{0,10}", 0..3)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    let series = (labels, proptest::collection::vec(value(), 4), proptest::option::of(any::<i64>()));
    (
        any::<usize>(),
        // A Prometheus help text loses its leading blanks, so it starts with a letter.
        proptest::option::of("H(?s).{0,20}"),
        proptest::option::of("[a-z_]{0,6}"),
        proptest::collection::vec(series, 0..4),
    )
}

/// A valid scrape in `format` built from raw material: unique family names (`m<i>_...`), the
/// sample names each type wants, `le`/`quantile` where required, a distinct `i` label per series.
fn build(format: Format, raw: Vec<(String, RawFamily)>) -> Scrape {
    let kinds: &[MetricKind] = if format == Format::Prometheus { &PROM_KINDS } else { &OM_KINDS };
    let families = raw
        .into_iter()
        .enumerate()
        .map(|(i, (name, (kind, help, unit, series)))| {
            let kind = kinds[kind % kinds.len()];
            let name = format!("m{i}_{name}");
            let mut samples = Vec::new();
            for (j, (labels, values, ts)) in series.into_iter().enumerate() {
                for (suffix, value) in kind.sample_suffixes(format).iter().zip(values.iter().cycle()) {
                    let mut labels = labels.clone();
                    labels.insert(0, ("i".to_owned(), j.to_string()));
                    match (kind, *suffix) {
                        (MetricKind::Histogram | MetricKind::GaugeHistogram, "_bucket") => {
                            labels.push(("le".to_owned(), "+Inf".to_owned()))
                        }
                        (MetricKind::Summary, "") => labels.push(("quantile".to_owned(), "0.99".to_owned())),
                        _ => {}
                    }
                    samples.push(Sample { name: format!("{name}{suffix}"), labels, value: *value, timestamp_ms: ts });
                }
            }
            let unit = if format == Format::OpenMetrics { unit } else { None };
            Family { name, help, unit, kind, samples }
        })
        .collect();
    Scrape { families }
}

fn raw_scrape() -> impl Strategy<Value = Vec<(String, RawFamily)>> {
    proptest::collection::vec(("[a-z_:][a-z0-9_:]{0,8}", raw_family()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn prometheus_render_parse_round_trip(raw in raw_scrape()) {
        let scrape = build(Format::Prometheus, raw);
        let text = render(&scrape, Format::Prometheus);
        let again = parse(&text, Format::Prometheus).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(scrape.equivalent(&again), "{text}\n{scrape:?}\n{again:?}");
    }

    #[test]
    fn openmetrics_render_parse_round_trip(raw in raw_scrape()) {
        let scrape = build(Format::OpenMetrics, raw);
        let text = render(&scrape, Format::OpenMetrics);
        let again = parse(&text, Format::OpenMetrics).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(scrape.equivalent(&again), "{text}\n{scrape:?}\n{again:?}");
    }

    #[test]
    fn arbitrary_text_never_panics_and_accepted_text_round_trips(text in "(?s)[#a-z_{}=\",.0-9 \\\\\n+-]{0,200}") {
        for format in [Format::Prometheus, Format::OpenMetrics] {
            if let Ok(scrape) = parse(&text, format) {
                let again = parse(&render(&scrape, format), format);
                prop_assert!(again.is_ok_and(|a| a.equivalent(&scrape)), "{format:?}: {text:?}");
            }
        }
    }
}
