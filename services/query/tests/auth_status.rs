//! Bearer-token protection, the `/api/v1/status` health table, and store failures.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use mixmon_config::Secret;
use mixmon_model::sli::{HealthStatus, HealthThresholds};
use mixmon_model::{Hour, Minute, RawRecord, Rollup, RollupDelta, SeriesKey};
use mixmon_query::{app, status_snapshot, QueryOptions};
use mixmon_store::{ApplyOutcome, BatchId, Store, StoreError};
use serde_json::json;

#[tokio::test]
async fn token_is_required_except_for_liveness() {
    let store = store_with(vec![("api", "eu-west", T0, counts(1, 1))]).await;
    let options = QueryOptions { auth_token: Some(Secret::new("s3cret")), ..Default::default() };
    let router = app(store, options);
    for path in ["/", "/healthz"] {
        assert_eq!(call(&router, "GET", path, "", None).await.status, 200, "{path}");
    }
    let protected = [
        ("POST", "/query"),
        ("POST", "/metrics"),
        ("POST", "/variable"),
        ("POST", "/tag-keys"),
        ("GET", "/api/v1/status"),
    ];
    for (method, path) in protected {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
            let reply = call(&router, method, path, "{}", token).await;
            assert_eq!(reply.status, 403, "{method} {path} with {token:?}");
            assert_error_body(&reply, "forbidden");
            assert!(!reply.json.to_string().contains("s3cret"), "the token never appears in answers");
        }
        let reply = call(&router, method, path, "{}", Some("s3cret")).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.json);
    }
    let basic = axum::http::Request::builder()
        .method("POST")
        .uri("/query")
        .header("authorization", "Basic czNjcmV0")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), basic).await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn status_classifies_by_the_operators_thresholds() {
    let now = T0 + 24 * 60 * MIN + 30_000;
    let recent = T0 + 24 * 60 * MIN;
    let store = store_with(vec![
        // healthy: all fast and successful, recently.
        ("api", "eu-west", recent - 2 * MIN, rollup(&[20.0; 100], 0)),
        // degraded in one region by latency (150 ms > 100 ms), healthy in the other.
        ("edge", "eu-west", recent, rollup(&[150.0; 100], 0)),
        ("edge", "us-west", recent, rollup(&[10.0; 1900], 0)),
        // unhealthy: 2 % errors.
        ("us-east", "ap", recent - MIN, rollup(&[30.0; 98], 2)),
        // data only 2 hours ago: no recent probes, so no data (not down), uptime still known.
        ("ap", "ap", recent - 120 * MIN, rollup(&[30.0; 10], 0)),
        // unhealthy by uptime: 88 % over the day, though fine right now.
        ("mixer", "eu-west", recent - 600 * MIN, counts(100, 76)),
        ("mixer", "eu-west", recent, rollup(&[10.0; 100], 0)),
    ])
    .await;
    let rows = status_snapshot(store.as_ref(), now, &HealthThresholds::default()).await.unwrap();
    let find = |endpoint: &str, region: &str| {
        rows.iter()
            .find(|r| r.endpoint == endpoint && r.region == region)
            .unwrap_or_else(|| panic!("{endpoint} {region}: {rows:#?}"))
    };
    assert_eq!(find("api", "all").status, HealthStatus::Healthy);
    assert_eq!(find("api", "all").success_rate_5m, Some(1.0));
    assert_eq!(find("api", "all").probes_5m, 100);
    assert_eq!(find("edge", "eu-west").status, HealthStatus::Degraded);
    assert_eq!(find("edge", "us-west").status, HealthStatus::Healthy);
    assert_eq!(find("edge", "all").status, HealthStatus::Healthy, "merged p95 of 2000 probes is 10 ms");
    assert_eq!(find("us-east", "ap").status, HealthStatus::Unhealthy);
    assert_eq!(find("us-east", "ap").success_rate_5m, Some(0.98));
    let ap = find("ap", "all");
    assert_eq!(
        (ap.status, ap.probes_5m, ap.success_rate_5m, ap.uptime_24h),
        (HealthStatus::NoData, 0, None, Some(1.0))
    );
    let mixer = find("mixer", "all");
    assert_eq!(mixer.uptime_24h, Some(176.0 / 200.0));
    assert_eq!(mixer.status, HealthStatus::Unhealthy);
    let p95 = find("edge", "eu-west").p95_ms_5m.unwrap();
    assert!((p95 - 150.0).abs() <= 150.0 * 0.0075, "{p95}");
    let order: Vec<String> = rows.iter().map(|r| format!("{} {}", r.endpoint, r.region)).collect();
    assert_eq!(&order[..4], ["ap all", "ap ap", "api all", "api eu-west"]);

    let json = serde_json::to_value(find("edge", "eu-west")).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["region"], "eu-west");
    let reply = call(&router(store), "GET", "/api/v1/status", "", None).await;
    assert_eq!(reply.status, 200);
    assert!(reply.json.as_array().unwrap().iter().all(|r| r["status"] == "no_data"), "real clock: nothing recent");
}

/// A store whose backend is down.
struct DownStore;

impl mixmon_store::AlertStore for DownStore {}
impl mixmon_store::OutboxStore for DownStore {}

#[async_trait]
impl Store for DownStore {
    async fn apply_batch(&self, _: &BatchId, _: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
    async fn read_rollups(
        &self,
        _: &[SeriesKey],
        _: Minute,
        _: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
    async fn read_hourly(&self, _: &[SeriesKey], _: Hour, _: Hour) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
    async fn read_records(&self, _: &SeriesKey, _: usize) -> Result<Vec<RawRecord>, StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("redis://:hunter2@db:6379 refused".into()))
    }
}

#[tokio::test]
async fn store_failure_is_503_without_details() {
    let router = app(Arc::new(DownStore), QueryOptions::default());
    let query = json!({"targets": [{"refId": "A", "target": "uptime"}]}).to_string();
    for (method, path, body) in [
        ("POST", "/query", query.as_str()),
        ("POST", "/variable", r#"{"payload": {"target": "endpoints"}}"#),
        ("POST", "/tag-values", r#"{"key": "region"}"#),
        ("GET", "/api/v1/status", ""),
    ] {
        let reply = call(&router, method, path, body, None).await;
        assert_eq!(reply.status, 503, "{path}");
        assert_error_body(&reply, "store_unavailable");
        assert!(!reply.json.to_string().contains("hunter2"));
    }
    assert_eq!(call(&router, "GET", "/", "", None).await.status, 200, "liveness does not depend on the store");
}

#[tokio::test]
async fn raw_records_newest_first_with_limits() {
    use mixmon_model::{FailureKind, ProbeResult, ProberId};
    let store = Arc::new(mixmon_store::MemoryStore::new());
    let mut delta = RollupDelta::default();
    let region = mixmon_model::Region::new("eu-west").unwrap();
    for i in 0..5u64 {
        let result = ProbeResult {
            check_id: mixmon_model::CheckId::new("api").unwrap(),
            started_at_ms: 1_700_000_000_000 + i as i64,
            failure: (i == 4).then_some(FailureKind::Dns),
            duration_us: 1_500 * (i + 1),
            status_code: if i == 4 { 0 } else { 200 },
            error: String::new(),
            phases: Default::default(),
            details: mixmon_model::ProbeDetails {
                address: Some(std::net::SocketAddr::from(([10, 0, 0, i as u8], 443))),
                ..Default::default()
            },
        };
        delta.add(&region, &result);
    }
    let batch = BatchId { prober: ProberId::new("p").unwrap(), epoch: 1, seq: 1 };
    store.apply_batch(&batch, &delta).await.unwrap();
    let router = app(store, QueryOptions::default());
    let reply = call(&router, "GET", "/api/v1/records?endpoint=api&region=eu-west&limit=2", "", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json,
        json!([
            {"started_at_ms": 1_700_000_000_004i64, "duration_ms": 7.5, "status_code": 0, "success": false, "failure": "dns",
             "address": "10.0.0.4:443"},
            {"started_at_ms": 1_700_000_000_003i64, "duration_ms": 6.0, "status_code": 200, "success": true, "failure": null,
             "address": "10.0.0.3:443"}
        ])
    );
    let all = call(&router, "GET", "/api/v1/records?endpoint=api&region=eu-west", "", None).await;
    assert_eq!(all.json.as_array().unwrap().len(), 5);
    for bad in [
        "/api/v1/records?region=eu-west",
        "/api/v1/records?endpoint=a%20b&region=x",
        "/api/v1/records?endpoint=api&region=eu-west&limit=0",
    ] {
        let reply = call(&router, "GET", bad, "", None).await;
        assert_eq!(reply.status, 400, "{bad}");
    }
}
