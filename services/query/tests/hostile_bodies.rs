//! Any JSON body, of any shape and any values, to every endpoint that reads one: never a
//! panic, never a 5xx for a client's mistake, always a JSON answer, never more than the caps
//! allow. A property test: `PROPTEST_CASES=N` runs it longer (README has the fuzzing command).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use mixmon_config::Secret;
use mixmon_query::{app, QueryOptions};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";
/// The datapoint cap's answer is about 15 MB of JSON; anything far past it escaped a cap.
const MAX_ANSWER_BYTES: usize = 64 << 20;

const ENDPOINTS: &[&str] = &[
    "/query",
    "/variable",
    "/metrics",
    "/metric-payload-options",
    "/tag-keys",
    "/tag-values",
    "/search",
    "/api/v2/silences",
];

/// The names Grafana and our payloads use, so the bodies reach deep into the handlers.
const KEYS: &[&str] = &[
    "range",
    "from",
    "to",
    "raw",
    "targets",
    "target",
    "refId",
    "payload",
    "maxDataPoints",
    "intervalMs",
    "interval",
    "adhocFilters",
    "key",
    "operator",
    "value",
    "type",
    "region",
    "endpoint",
    "quantile",
    "window",
    "stat",
    "format",
    "metric",
    "name",
    "query",
    "variable",
    "matchers",
    "isRegex",
    "isEqual",
    "startsAt",
    "endsAt",
    "createdBy",
    "comment",
    "id",
    "hide",
    "scopedVars",
    "text",
];

const WORDS: &[&str] = &[
    "success_rate",
    "latency_p95",
    "latency_p99",
    "error_rate",
    "request_rate",
    "uptime_24h",
    "now-1h",
    "now",
    "2026-12-07T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "(a|b)",
    "(success_rate|error_rate)",
    ".*",
    "(.*)",
    "1m",
    "1h",
    "0s",
    "-5m",
    "",
    "eu-west",
    "_all",
    "=",
    "!=",
    "=~",
    "!~",
    "table",
    "time_series",
    "regions",
    "endpoints",
    "pods",
    "nodes",
    "genres",
    "mounts",
    "p95",
    "max",
    "\u{0}",
    "\u{202e}",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(i64::MAX), Just(i64::MIN), Just(10_000), Just(1 << 40)]
            .prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(String::from), 1 => "\\PC{0,12}"]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..7)
                .prop_map(|map: BTreeMap<String, Value>| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly objects (what every endpoint expects), sometimes anything at all, sometimes not
/// JSON.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::btree_map(key(), json(), 0..8)
            .prop_map(|map| Value::Object(map.into_iter().collect()).to_string()),
        2 => json().prop_map(|v| v.to_string()),
        1 => "\\PC{0,64}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_body_to_any_endpoint_is_answered_without_a_5xx(endpoint in prop::sample::select(ENDPOINTS), body in body()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = common::store_with(vec![
                ("api", "eu-west", 0, common::counts(10, 9)),
                ("api", "us-west", 60_000, common::rollup(&[12.0, 80.0], 1)),
            ])
            .await;
            let options = QueryOptions { auth_token: Some(Secret::new(TOKEN)), ..QueryOptions::default() };
            let router = app(store, options);
            let request = Request::builder()
                .method("POST")
                .uri(endpoint)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(body.clone()))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            prop_assert!(status.as_u16() < 500, "{endpoint} answered {status} to {body}: {bytes:?}");
            prop_assert!(bytes.len() <= MAX_ANSWER_BYTES, "{endpoint}: {} bytes", bytes.len());
            let answer: Result<Value, _> = serde_json::from_slice(&bytes);
            prop_assert!(answer.is_ok(), "{endpoint} answered {status} with non-JSON to {body}: {bytes:?}");
            Ok(())
        })?;
    }
}
