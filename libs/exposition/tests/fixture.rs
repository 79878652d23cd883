//! The design brief's scrape of one mixer pod (`shared/fixtures/ai_mixer_metrics.prom`, copied
//! into `tests/fixtures/` so the crate tests stand alone) parses to exactly its values: every
//! family, every label set, every value, and nothing else.

use mixmon_exposition::{parse, render, Format, MetricKind, Scrape};

const FIXTURE: &str = include_str!("fixtures/ai_mixer_metrics.prom");

fn fixture() -> Scrape {
    parse(FIXTURE, Format::Prometheus).expect("the fixture parses")
}

/// (sample name, labels, value) for every sample of a family, in file order.
type Labels<'a> = &'a [(&'a str, &'a str)];
type Expected<'a> = &'a [(&'a str, Labels<'a>, f64)];

fn check_family(scrape: &Scrape, name: &str, kind: MetricKind, help: &str, expected: Expected<'_>) {
    let family = scrape.family(name).unwrap_or_else(|| panic!("family {name} missing"));
    assert_eq!(family.kind, kind, "{name}");
    assert_eq!(family.help.as_deref(), Some(help), "{name}");
    assert_eq!(family.unit, None, "{name}");
    assert_eq!(family.samples.len(), expected.len(), "{name}: sample count");
    for (sample, (want_name, want_labels, want_value)) in family.samples.iter().zip(expected) {
        assert_eq!(sample.name, *want_name);
        let labels: Vec<(&str, &str)> = sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, *want_labels, "{name}");
        assert_eq!(sample.value.to_bits(), want_value.to_bits(), "{name}{labels:?}");
        assert_eq!(sample.timestamp_ms, None);
    }
}

#[test]
fn fixture_has_exactly_the_expected_families() {
    let scrape = fixture();
    let names: Vec<&str> = scrape.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ai_mixer_requests_total",
            "ai_mixer_processing_duration_seconds",
            "ai_mixer_active_streams",
            "ai_mixer_audio_peak_db",
            "ai_mixer_audio_lufs",
            "ai_mixer_genre_classifications_total",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ]
    );
    assert_eq!(scrape.sample_count(), 5 + 14 + 1 + 1 + 1 + 7 + 1 + 1);
}

#[test]
fn fixture_requests_by_status() {
    let n = "ai_mixer_requests_total";
    let r = |status| -> [(&str, &str); 2] { [("region", "us-west"), ("status", status)] };
    let (s200, s400, s429, s500, s503) = (r("200"), r("400"), r("429"), r("500"), r("503"));
    check_family(
        &fixture(),
        n,
        MetricKind::Counter,
        "Mix requests handled, by HTTP status.",
        &[(n, &s200, 1_843_211.0), (n, &s400, 312.0), (n, &s429, 57.0), (n, &s500, 1190.0), (n, &s503, 44.0)],
    );
    let family = fixture().family(n).cloned().expect("family");
    assert_eq!(family.value(n, &[("status", "500"), ("region", "us-west")]), Some(1190.0));
}

#[test]
fn fixture_processing_duration_histogram() {
    let scrape = fixture();
    let family = scrape.family("ai_mixer_processing_duration_seconds").expect("histogram");
    assert_eq!(family.kind, MetricKind::Histogram);
    assert_eq!(family.help.as_deref(), Some("Time spent mixing one request."));
    let histograms = family.histograms();
    assert_eq!(histograms.len(), 1);
    let h = &histograms[0];
    assert_eq!(h.labels, [("region".to_owned(), "us-west".to_owned())]);
    let expected: [(f64, f64); 12] = [
        (0.005, 20_412.0),
        (0.01, 181_003.0),
        (0.025, 902_218.0),
        (0.05, 1_640_055.0),
        (0.1, 1_812_440.0),
        (0.25, 1_838_120.0),
        (0.5, 1_843_990.0),
        (1.0, 1_844_701.0),
        (2.5, 1_844_811.0),
        (5.0, 1_844_814.0),
        (10.0, 1_844_814.0),
        (f64::INFINITY, 1_844_814.0),
    ];
    assert_eq!(h.buckets, expected);
    assert_eq!(h.sum, Some(61_877.31));
    assert_eq!(h.count, Some(1_844_814.0));
    assert_eq!(h.created, None);
    assert!(h.is_cumulative());
    // The raw samples: 12 buckets in file order, then _sum and _count.
    let names: Vec<&str> = family.samples.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(&names[..12], &["ai_mixer_processing_duration_seconds_bucket"; 12]);
    assert_eq!(
        &names[12..],
        &["ai_mixer_processing_duration_seconds_sum", "ai_mixer_processing_duration_seconds_count"]
    );
    let les: Vec<&str> = family.samples[..12].iter().filter_map(|s| s.label("le")).collect();
    assert_eq!(les, ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]);
}

#[test]
fn fixture_gauges() {
    let scrape = fixture();
    let us_west: Labels<'_> = &[("region", "us-west")];
    let table: [(&str, &str, Labels<'_>, f64); 5] = [
        ("ai_mixer_active_streams", "Audio streams being mixed right now.", us_west, 143.0),
        ("ai_mixer_audio_peak_db", "Peak level of the output over the last second, dBFS.", us_west, -4.7),
        ("ai_mixer_audio_lufs", "Integrated loudness of the output, LUFS.", us_west, -14.2),
        ("process_resident_memory_bytes", "Resident memory size in bytes.", &[], 418_488_320.0),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", &[], 1.7639e9),
    ];
    for (name, help, labels, value) in table {
        check_family(&scrape, name, MetricKind::Gauge, help, &[(name, labels, value)]);
    }
}

#[test]
fn fixture_genre_counts() {
    let n = "ai_mixer_genre_classifications_total";
    let genres = [
        ("electronic", 402_113.0),
        ("hip_hop", 311_876.0),
        ("rock", 198_004.0),
        ("pop", 455_120.0),
        ("jazz", 41_230.0),
        ("classical", 22_871.0),
        ("ambient", 61_002.0),
    ];
    let labels: Vec<[(&str, &str); 2]> = genres.iter().map(|(g, _)| [("region", "us-west"), ("genre", *g)]).collect();
    let expected: Vec<(&str, Labels<'_>, f64)> =
        labels.iter().zip(genres).map(|(l, (_, v))| (n, l.as_slice(), v)).collect();
    check_family(&fixture(), n, MetricKind::Counter, "Tracks classified, by genre.", &expected);
}

#[test]
fn fixture_round_trips_through_both_formats() {
    let scrape = fixture();
    let again = parse(&render(&scrape, Format::Prometheus), Format::Prometheus).expect("re-parse");
    assert_eq!(again, scrape);
    // Untouched, a Prometheus-text counter is not a valid OpenMetrics counter (no `_total`
    // family name stripping): the OpenMetrics body still re-parses to the same scrape.
    let om = render(&scrape, Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn fixture_as_openmetrics() {
    // The same pod answering in OpenMetrics: counters named without `_total`, `# EOF` at the end.
    let om = FIXTURE
        .replace("# HELP ai_mixer_requests_total", "# HELP ai_mixer_requests")
        .replace("# TYPE ai_mixer_requests_total", "# TYPE ai_mixer_requests")
        .replace("# HELP ai_mixer_genre_classifications_total", "# HELP ai_mixer_genre_classifications")
        .replace("# TYPE ai_mixer_genre_classifications_total", "# TYPE ai_mixer_genre_classifications")
        + "# EOF\n";
    let scrape = parse(&om, Format::OpenMetrics).expect("OpenMetrics fixture parses");
    let requests = scrape.family("ai_mixer_requests").expect("counter family");
    assert_eq!(requests.kind, MetricKind::Counter);
    assert_eq!(requests.value("ai_mixer_requests_total", &[("region", "us-west"), ("status", "500")]), Some(1190.0));
    assert_eq!(scrape.sample_count(), fixture().sample_count());
    assert!(scrape.family("ai_mixer_processing_duration_seconds").expect("histogram").histograms()[0].is_cumulative());
    let again = parse(&render(&scrape, Format::OpenMetrics), Format::OpenMetrics).expect("re-parse");
    assert_eq!(again, scrape);
}
