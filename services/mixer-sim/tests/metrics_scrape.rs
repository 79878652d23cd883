//! `/metrics` has the real scrape's shape, its figures move, and a restart zeroes them.

mod support;

use std::collections::BTreeMap;

use support::{eventually, get, ok_requests, pod_addr, samples, small_fleet};

const FIXTURE: &str = include_str!("fixtures/ai_mixer_metrics.prom");

#[tokio::test]
async fn scrape_has_every_fixture_family_with_the_pods_region() {
    let sim = small_fleet(None).await;
    let reply = get(pod_addr(&sim, "mixer-b-1"), "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4"));
    let families = FIXTURE.lines().filter(|l| l.starts_with("# TYPE"));
    for type_line in families {
        assert!(reply.body.contains(type_line), "missing `{type_line}`");
    }
    let ours = samples(&reply.body);
    // Every fixture series exists with region "b" instead of "us-west".
    for series in samples(FIXTURE).keys() {
        let expected = series.replace("region=\"us-west\"", "region=\"b\"");
        assert!(ours.contains_key(&expected), "missing series {expected}");
    }
    assert_eq!(ours.len(), samples(FIXTURE).len(), "no extra series");
    sim.shutdown().await;
}

#[tokio::test]
async fn counters_grow_and_histogram_is_consistent() {
    let sim = small_fleet(None).await;
    let addr = pod_addr(&sim, "mixer-a-0");
    let first = samples(&get(addr, "/metrics").await.body);
    let genres = |s: &BTreeMap<String, f64>| -> f64 {
        s.iter().filter(|(k, _)| k.starts_with("ai_mixer_genre")).map(|(_, v)| v).sum()
    };
    let later = eventually("request and genre counters to grow", || async {
        let now = samples(&get(addr, "/metrics").await.body);
        let grew = ok_requests(&now, "a") > ok_requests(&first, "a") && genres(&now) > genres(&first);
        grew.then_some(now)
    })
    .await;

    let bucket = |le: &str| later[&format!("ai_mixer_processing_duration_seconds_bucket{{region=\"a\",le=\"{le}\"}}")];
    let bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
    for pair in bounds.windows(2) {
        assert!(bucket(pair[0]) <= bucket(pair[1]), "buckets cumulative at le={}", pair[1]);
    }
    let count = later["ai_mixer_processing_duration_seconds_count{region=\"a\"}"];
    assert_eq!(count, bucket("+Inf"));
    let requests: f64 = later.iter().filter(|(k, _)| k.starts_with("ai_mixer_requests_total")).map(|(_, v)| v).sum();
    assert_eq!(count, requests, "one observation per request");
    assert!(later["ai_mixer_processing_duration_seconds_sum{region=\"a\"}"] > 0.0);
    let streams = later["ai_mixer_active_streams{region=\"a\"}"];
    assert!((100.0..=200.0).contains(&streams));
    sim.shutdown().await;
}

#[tokio::test]
async fn restart_drops_counters_and_moves_start_time() {
    let sim = small_fleet(None).await;
    let addr = pod_addr(&sim, "mixer-b-0");
    let before = eventually("some traffic", || async {
        let now = samples(&get(addr, "/metrics").await.body);
        (ok_requests(&now, "b") >= 200.0).then_some(now)
    })
    .await;
    sim.restart_pod("mixer-b-0").expect("known pod");
    let after = samples(&get(addr, "/metrics").await.body);
    assert!(ok_requests(&after, "b") < ok_requests(&before, "b"));
    assert!(after["process_start_time_seconds"] > before["process_start_time_seconds"]);
    assert!(matches!(sim.restart_pod("mixer-z-0"), Err(mixmon_mixer_sim::SimError::UnknownPod(_))));
    sim.shutdown().await;
}
