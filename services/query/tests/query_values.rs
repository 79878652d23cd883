//! `/query` values checked against hand computation and against the model's own sketch:
//! success rates, cross-region quantiles, rolling uptime, alignment, nulls and tables.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mixmon_model::alert::{Counts, Objective};
use mixmon_model::{LatencySketch, Rollup};
use serde_json::{json, Value};

async fn query(router: &axum::Router, body: String) -> Vec<Value> {
    let reply = post(router, "/query", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json.as_array().unwrap().clone()
}

#[tokio::test]
async fn success_rates_match_hand_computation() {
    let store = store_with(vec![
        ("api", "eu-west", T0, counts(10, 9)),
        ("api", "eu-west", T0 + MIN, counts(10, 5)),
        ("api", "eu-west", T0 + 2 * MIN, counts(4, 4)),
        ("api", "eu-west", T0 + 4 * MIN, counts(8, 2)),
    ])
    .await;
    let router = router(store);
    // 1-minute steps: each point is its own minute; minute 3 is empty.
    let body = query_body(T0, T0 + 5 * MIN, "success_rate", json!({}), json!({"intervalMs": 1000}));
    let got = points(&query(&router, body).await[0]);
    assert_eq!(
        got,
        vec![
            (Some(0.9), T0),
            (Some(0.5), T0 + MIN),
            (Some(1.0), T0 + 2 * MIN),
            (None, T0 + 3 * MIN),
            (Some(0.25), T0 + 4 * MIN)
        ]
    );
    // 2-minute steps merge counts (not rates): (9+5)/20, 4/4, 2/8.
    let body = query_body(T0, T0 + 6 * MIN, "success_rate", json!({}), json!({"intervalMs": 120000}));
    let got = points(&query(&router, body).await[0]);
    assert_eq!(got, vec![(Some(0.7), T0), (Some(1.0), T0 + 2 * MIN), (Some(0.25), T0 + 4 * MIN)]);
    let body = query_body(T0, T0 + 2 * MIN, "error_rate", json!({}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(1.0 - 0.9), T0), (Some(0.5), T0 + MIN)]);
    let body = query_body(T0, T0 + 2 * MIN, "probes", json!({}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(10.0), T0), (Some(10.0), T0 + MIN)]);
    let body = query_body(T0, T0 + 2 * MIN, "throughput", json!({}), json!({"intervalMs": 120000}));
    let got = query(&router, body).await;
    assert_eq!(points(&got[0]), vec![(Some(20.0 / 120.0), T0)]);
    assert_eq!(got[0]["unit"], "reqps");
}

#[tokio::test]
async fn merged_regions_give_true_quantiles() {
    let eu: Vec<f64> = (1..=50).map(|i| i as f64).collect();
    let us: Vec<f64> = (1..=30).map(|i| 200.0 + 10.0 * i as f64).collect();
    let store = store_with(vec![
        ("api", "eu-west", T0, rollup(&eu, 3)),
        ("api", "us-west", T0, rollup(&us, 1)),
        ("edge", "us-west", T0, rollup(&[999.0], 0)),
    ])
    .await;
    let router = router(store);
    let mut expected = LatencySketch::new();
    eu.iter().chain(&us).for_each(|ms| expected.add(ms * 1_000.0));
    let expected_p95 = expected.quantile(0.95).unwrap() / 1_000.0;
    let body = query_body(T0, T0 + MIN, "latency_p95", json!({"endpoint": "api", "region": "all"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["target"], "api all");
    assert_eq!(got[0]["tags"], json!({"endpoint": "api", "region": "all"}));
    assert_eq!(points(&got[0]), vec![(Some(expected_p95), T0)]);
    // Not the mean of per-region p95s, and not either region's own.
    let per_region =
        query(&router, query_body(T0, T0 + MIN, "latency_p95", json!({"endpoint": "api"}), json!({}))).await;
    assert_eq!(per_region.len(), 2);
    for element in &per_region {
        assert_ne!(points(element)[0].0, Some(expected_p95));
    }
    // Counts merge too: (50 + 30) / (53 + 31).
    let body =
        query_body(T0, T0 + MIN, "success_rate", json!({"endpoint": ["api"], "region": ["all", "us-west"]}), json!({}));
    let got = query(&router, body).await;
    let targets: Vec<&str> = got.iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["api all", "api us-west"]);
    assert_eq!(points(&got[0])[0].0, Some(80.0 / 84.0));
    let mean = query(
        &router,
        query_body(T0, T0 + MIN, "latency_mean", json!({"endpoint": "api", "region": "all"}), json!({})),
    )
    .await;
    let sum: f64 = eu.iter().chain(&us).sum();
    let mean_got = points(&mean[0])[0].0.unwrap();
    assert!((mean_got - sum / 80.0).abs() < 1e-9, "{mean_got}");
}

#[tokio::test]
async fn uptime_uses_the_24_hours_before_each_point() {
    // Irregular data over two days: minute i has (i % 5 + 1) probes, i % 3 of them failing.
    let mut rows = Vec::new();
    let start = T0 - 26 * 60 * MIN;
    for i in 0..(28 * 60) {
        let total = (i % 5 + 1) as u64;
        let ok = total.saturating_sub((i % 3) as u64);
        if i % 17 != 0 {
            rows.push(("api", "eu-west", start + i * MIN, counts(total, ok)));
        }
    }
    let naive_rows: Vec<(i64, Rollup)> = rows.iter().map(|(_, _, at, r)| (*at, r.clone())).collect();
    let router = router(store_with(rows).await);
    let (from, to) = (T0 - 30 * MIN, T0 + 90 * MIN);
    let body = query_body(from, to, "uptime", json!({}), json!({"intervalMs": 600000}));
    let got = points(&query(&router, body).await[0]);
    assert_eq!(got.len(), 12);
    for (value, ts) in got {
        let end = ts + 10 * MIN;
        let window = naive_rows.iter().filter(|(at, _)| *at >= end - 24 * 60 * MIN && *at < end);
        let (total, ok) = window.fold((0u64, 0u64), |(t, s), (_, r)| (t + r.total, s + r.successes));
        assert_eq!(value, Some(ok as f64 / total as f64), "point at {ts}");
    }
    // Far past the data: no probes in the 24 h window means no value.
    let later = T0 + 3 * 24 * 60 * MIN;
    let body = query_body(later, later + MIN, "uptime", json!({}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(None, later)]);
}

#[tokio::test]
async fn slo_metrics_read_their_rolling_windows_from_integer_counts() {
    // Two days of irregular data, failing more in the last six hours.
    let mut rows = Vec::new();
    let start = T0 - 40 * 60 * MIN;
    for i in 0..(42 * 60) {
        let total = 20u64;
        let failed = if i > 34 * 60 { (i % 4) as u64 } else { u64::from(i % 50 == 0) };
        rows.push(("api", "eu-west", start + i * MIN, counts(total, total - failed)));
    }
    let naive: Vec<(i64, u64, u64)> = rows.iter().map(|(_, _, at, r)| (*at, r.total, r.successes)).collect();
    let window = |end: i64, minutes: i64| {
        naive
            .iter()
            .filter(|(at, _, _)| *at >= end - minutes * MIN && *at < end)
            .fold(Counts::default(), |c, (_, t, s)| Counts { total: c.total + t, good: c.good + s })
    };
    let objective = Objective::from_percent(99.9).unwrap();
    let router = router(store_with(rows).await);
    let (from, to) = (T0 - 60 * MIN, T0 + 60 * MIN);
    for (metric, expect) in [
        (
            "slo_burn_rate_1h",
            Box::new(move |end: i64| objective.burn_rate(window(end, 60))) as Box<dyn Fn(i64) -> Option<f64>>,
        ),
        ("slo_burn_rate_6h", Box::new(move |end: i64| objective.burn_rate(window(end, 360)))),
        ("slo_budget_remaining", Box::new(move |end: i64| objective.budget_remaining(window(end, 7 * 24 * 60)))),
        (
            "slo_time_to_exhaustion_s",
            Box::new(move |end: i64| {
                objective.seconds_to_exhaustion(window(end, 7 * 24 * 60), 7.0 * 86_400.0, window(end, 60), 3_600.0)
            }),
        ),
    ] {
        let body = query_body(from, to, metric, json!({}), json!({"intervalMs": 600000}));
        let got = points(&query(&router, body).await[0]);
        assert_eq!(got.len(), 12, "{metric}");
        for (value, ts) in got {
            assert_eq!(value, expect(ts + 10 * MIN), "{metric} at {ts}");
        }
    }
    // No probes in the window: no value, never a zero burn.
    let later = T0 + 3 * 24 * 60 * MIN;
    let body = query_body(later, later + MIN, "slo_burn_rate_1h", json!({}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(None, later)]);
}

#[tokio::test]
async fn timestamps_are_aligned_milliseconds_within_max_data_points() {
    let router = router(store_with(vec![("api", "eu-west", T0, counts(1, 1))]).await);
    let from = T0 + 17_345;
    let to = from + 6 * 3_600_000;
    for (max_points, interval) in [(1080, 20_000), (100, 1), (7, 60_000), (1, 0), (50_000, 1)] {
        let extra = json!({"maxDataPoints": max_points, "intervalMs": interval});
        let got = points(&query(&router, query_body(from, to, "probes", json!({}), extra)).await[0]);
        assert!(got.len() as i64 <= max_points.min(10_000), "{max_points}: {} points", got.len());
        let step = got.get(1).map_or(60_000, |p| p.1 - got[0].1);
        assert_eq!(step % 60_000, 0);
        for (i, (_, ts)) in got.iter().enumerate() {
            assert!(*ts > 1_000_000_000_000, "epoch ms, not seconds");
            assert_eq!(ts % step, 0, "aligned to the step");
            assert!(*ts < to);
            assert_eq!(*ts, got[0].1 + i as i64 * step, "ascending, evenly spaced");
        }
        if max_points > 1 {
            assert!(got[0].1 <= from && got[0].1 + step > from, "the first point covers `from`");
        }
    }
    // Epoch-millisecond ranges work too.
    let body = json!({"range": {"from": T0, "to": T0 + 2 * MIN}, "targets": [{"refId": "A", "target": "probes"}]});
    let got = query(&router, body.to_string()).await;
    assert_eq!(points(&got[0]), vec![(Some(1.0), T0), (None, T0 + MIN)]);
}

#[tokio::test]
async fn empty_steps_are_null_never_nan() {
    let router = router(store_with(vec![("api", "eu-west", T0, counts(2, 0))]).await);
    let body = query_body(T0, T0 + 3 * MIN, "(latency_p99|latency_mean|success_rate)", json!({}), json!({}));
    let reply = post(&router, "/query", &body).await;
    let text = reply.json.to_string();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    let got = reply.json.as_array().unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["target"], "api eu-west latency_p99");
    // Two failed probes: no latency at all, a 0 success rate, then empty minutes.
    assert_eq!(points(&got[0]), vec![(None, T0), (None, T0 + MIN), (None, T0 + 2 * MIN)]);
    assert_eq!(points(&got[1]), vec![(None, T0), (None, T0 + MIN), (None, T0 + 2 * MIN)]);
    assert_eq!(points(&got[2]), vec![(Some(0.0), T0), (None, T0 + MIN), (None, T0 + 2 * MIN)]);
    assert!(got[2]["datapoints"][1][0].is_null());
}

#[tokio::test]
async fn table_format_from_payload_and_legacy_type() {
    let router = router(
        store_with(vec![
            ("api", "eu-west", T0, counts(4, 3)),
            ("api", "eu-west", T0 + 30 * MIN, counts(4, 1)),
            ("api", "us-west", T0, counts(2, 2)),
        ])
        .await,
    );
    let (from, to) = (T0, T0 + 60 * MIN);
    let expected_rows = json!([[to, "api", "eu-west", 0.5], [to, "api", "us-west", 1.0]]);
    for body in [
        query_body(from, to, "success_rate", json!({"format": "table"}), json!({})),
        query_body(from, to, "success_rate", json!("{\"format\": \"table\"}"), json!({})),
        json!({"range": {"from": iso(from), "to": iso(to)}, "targets": [{"refId": "A", "target": "success_rate", "type": "table"}]})
            .to_string(),
    ] {
        let got = query(&router, body).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["type"], "table");
        assert_eq!(got[0]["refId"], "A");
        assert_eq!(got[0]["columns"], json!([
            {"text": "Time", "type": "time"}, {"text": "endpoint", "type": "string"},
            {"text": "region", "type": "string"}, {"text": "success_rate", "type": "number", "unit": "percentunit"}
        ]));
        assert_eq!(got[0]["rows"], expected_rows);
    }
    let body = query_body(from, to, "latency_p50", json!({"format": "table", "region": "all"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(got[0]["rows"], json!([[to, "api", "all", null]]), "no latencies recorded: null, not NaN");
}

#[tokio::test]
async fn ad_hoc_filters_and_escaped_values() {
    let router = router(
        store_with(vec![
            ("api", "eu-west", T0, counts(1, 1)),
            ("api", "us-west", T0, counts(1, 1)),
            ("edge", "us-east", T0, counts(1, 1)),
        ])
        .await,
    );
    let targets = |extra: Value, payload: Value| async {
        let got = query(&router, query_body(T0, T0 + MIN, "probes", payload, extra)).await;
        got.iter().map(|e| e["target"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let f = |op: &str, value: &str| json!({"filters": [{"key": "region", "operator": op, "value": value}]});
    assert_eq!(targets(f("=~", "us-.*"), json!({})).await, ["api us-west", "edge us-east"]);
    assert_eq!(targets(f("!~", "us-.*"), json!({})).await, ["api eu-west"]);
    assert_eq!(targets(f("=", "eu-west"), json!({})).await, ["api eu-west"]);
    assert_eq!(targets(f("!=", "eu-west"), json!({})).await, ["api us-west", "edge us-east"]);
    let legacy = json!({"adhocFilters": [{"key": "endpoint", "operator": "=", "value": "edge"}]});
    assert_eq!(targets(legacy, json!({})).await, ["edge us-east"]);
    assert_eq!(targets(json!({}), json!({"endpoint": r"(api|edge)", "region": r"us\-west"})).await, ["api us-west"]);
    assert_eq!(targets(json!({}), json!({"endpoint": "$__all", "region": "*"})).await.len(), 3);
    assert!(targets(json!({}), json!({"endpoint": "nope"})).await.is_empty());
}

/// Steps of whole hours read hourly rollups, and tables combine hours with minute edges; both
/// must give exactly what merging every minute gives, uptime included.
#[tokio::test]
async fn hourly_steps_and_ragged_tables_equal_minute_by_minute() {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for m in 0..(5 * 60) {
        let latencies: Vec<f64> = (0..3).map(|i| 10.0 + ((m * 7 + i * 13) % 97) as f64).collect();
        let failures = u64::from(m % 11 == 0);
        all.push((m, rollup(&latencies, failures)));
        rows.push(("api", "eu-west", T0 + m * MIN, rollup(&latencies, failures)));
    }
    let router = router(store_with(rows).await);
    let merged = |from: i64, to: i64| {
        let mut window = mixmon_model::Rollup::default();
        all.iter().filter(|(m, _)| (from..to).contains(m)).for_each(|(_, r)| window.merge(r));
        window
    };
    // Hourly points: 5 h in steps of 1 h.
    for metric in ["latency_p95", "success_rate", "probes", "uptime"] {
        let body = query_body(T0, T0 + 5 * 60 * MIN, metric, json!({}), json!({"intervalMs": 3_600_000}));
        let got = query(&router, body).await;
        let pts = points(&got[0]);
        assert_eq!(pts.len(), 5, "{metric}");
        for (h, (value, ts)) in pts.iter().enumerate() {
            let h = h as i64;
            assert_eq!(*ts, T0 + h * 60 * MIN);
            let window = merged(h * 60, (h + 1) * 60);
            let expected = match metric {
                "latency_p95" => mixmon_model::sli::latency_ms(&window, 0.95),
                "success_rate" => mixmon_model::sli::success_rate(&window),
                "probes" => Some(window.total as f64),
                _ => mixmon_model::sli::success_rate(&merged(0, (h + 1) * 60)),
            };
            assert_eq!(*value, expected, "{metric} hour {h}");
        }
    }
    // A table over a range that starts and ends inside hours.
    let (from, to) = (37, 4 * 60 + 11);
    let body = query_body(T0 + from * MIN, T0 + to * MIN, "latency_p99", json!({"format": "table"}), json!({}));
    let got = query(&router, body).await;
    let expected = mixmon_model::sli::latency_ms(&merged(from, to), 0.99);
    assert_eq!(got[0]["rows"][0][3].as_f64(), expected);
}
