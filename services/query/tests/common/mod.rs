//! Shared test fixtures: a `MemoryStore` filled with known rollups through `apply_batch`, and
//! a one-shot HTTP call against the router.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mixmon_model::{CheckId, EntityName, Fields, Minute, ProberId, Region, Rollup, RollupDelta, SeriesKey, Subject};
use mixmon_query::{app, QueryOptions};
use mixmon_store::{BatchId, MemoryStore, Store};
use serde_json::Value;
use tower::ServiceExt;

/// 2024-10-18T06:00:00Z, aligned to the hour.
pub const T0: i64 = 1_729_231_200_000;
pub const MIN: i64 = 60_000;

pub fn key(check: &str, region: &str) -> SeriesKey {
    SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
}

/// A rollup of `failures` failed probes and one successful probe per latency given (ms).
pub fn rollup(latencies_ms: &[f64], failures: u64) -> Rollup {
    let mut r = Rollup {
        total: latencies_ms.len() as u64 + failures,
        successes: latencies_ms.len() as u64,
        ..Default::default()
    };
    for ms in latencies_ms {
        let us = ms * 1_000.0;
        r.latency.add(us);
        r.latency_sum_us += us as u64;
    }
    r
}

/// Counts only, no latencies recorded.
pub fn counts(total: u64, successes: u64) -> Rollup {
    Rollup { total, successes, ..Default::default() }
}

/// A store holding `rows` of (check, region, minute start in ms, rollup), and, as the
/// aggregator writes it, each check's all-regions series.
pub async fn store_with(rows: Vec<(&str, &str, i64, Rollup)>) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut delta = RollupDelta::default();
    for (check, region, at_ms, r) in rows {
        delta.add_rollup(key(check, region), Minute::containing(at_ms), &r);
    }
    let batch = BatchId { prober: ProberId::new("test").unwrap(), epoch: 1, seq: 1 };
    store.apply_batch(&batch, &delta).await.unwrap();
    store
}

/// Named fields: `sums` added, `maxes` maxed.
pub fn fields(sums: &[(&str, i64)], maxes: &[(&str, i64)]) -> Fields {
    let mut f = Fields::default();
    for (k, v) in sums {
        f.add(*k, *v);
    }
    for (k, v) in maxes {
        f.max(*k, *v);
    }
    f
}

pub fn mixer(region: &str) -> Subject {
    Subject::mixer(Region::new(region).unwrap())
}

pub fn node(region: &str, name: &str) -> Subject {
    Subject::node(Region::new(region).unwrap(), EntityName::new(name).unwrap())
}

pub fn pod(region: &str, namespace: &str, name: &str) -> Subject {
    Subject::pod(Region::new(region).unwrap(), &EntityName::new(namespace).unwrap(), &EntityName::new(name).unwrap())
        .unwrap()
}

/// A store holding `rows` of (subject, minute start in ms, fields), written through
/// `apply_batch` as the aggregator writes them.
pub async fn store_with_figures(rows: Vec<(Subject, i64, Fields)>) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut delta = RollupDelta::default();
    for (subject, at_ms, f) in rows {
        delta.figures.entry((subject, Minute::containing(at_ms))).or_default().merge(&f);
    }
    let batch = BatchId { prober: ProberId::new("test").unwrap(), epoch: 1, seq: 1 };
    store.apply_batch(&batch, &delta).await.unwrap();
    store
}

pub fn router(store: Arc<MemoryStore>) -> Router {
    app(store, QueryOptions::default())
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub json: Value,
}

/// Sends one request; `body` is raw text so tests can send garbage.
pub async fn call(router: &Router, method: &str, path: &str, body: &str, token: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {bytes:?}"));
    Reply { status, content_type, json }
}

pub async fn post(router: &Router, path: &str, body: &str) -> Reply {
    call(router, "POST", path, body, None).await
}

/// A `/query` body over `[from, to)` for one target.
pub fn query_body(from: i64, to: i64, target: &str, payload: Value, extra: Value) -> String {
    let mut body = serde_json::json!({
        "range": {"from": iso(from), "to": iso(to)},
        "targets": [{"refId": "A", "target": target, "payload": payload}]
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body.to_string()
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `(value, ts)` pairs of a time series element.
pub fn points(element: &Value) -> Vec<(Option<f64>, i64)> {
    element["datapoints"].as_array().unwrap().iter().map(|p| (p[0].as_f64(), p[1].as_i64().unwrap())).collect()
}

/// The error body every non-2xx answer must have.
pub fn assert_error_body(reply: &Reply, code: &str) {
    assert!(reply.content_type.starts_with("application/json"), "{}", reply.content_type);
    let message = reply.json["message"].as_str().unwrap_or_else(|| panic!("no message: {}", reply.json));
    assert!(!message.is_empty());
    assert_eq!(reply.json["error"]["message"], message);
    assert_eq!(reply.json["error"]["code"], code, "{}", reply.json);
}
