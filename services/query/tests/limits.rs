//! Bounded work per request: a request past the concurrency limit is shed at once with 503
//! and `Retry-After`, one past its deadline is stopped with 503 naming the limit, and liveness
//! answers throughout.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use mixmon_model::{Hour, Minute, RawRecord, Rollup, RollupDelta, SeriesKey};
use mixmon_query::{app, QueryOptions};
use mixmon_store::{ApplyOutcome, BatchId, MemoryStore, Store, StoreError};
use tower::ServiceExt;

/// A store that takes `delay` to list its series (as a slow or overloaded Redis would).
struct SlowStore {
    inner: MemoryStore,
    delay: Duration,
    /// Reads begun: a request holding its slot has reached the store.
    entered: std::sync::atomic::AtomicUsize,
}

impl SlowStore {
    fn new(delay: Duration) -> Arc<SlowStore> {
        Arc::new(SlowStore { inner: MemoryStore::new(), delay, entered: Default::default() })
    }
}

impl mixmon_store::AlertStore for SlowStore {}
impl mixmon_store::OutboxStore for SlowStore {}

#[async_trait]
impl Store for SlowStore {
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        self.inner.apply_batch(batch, delta).await
    }
    async fn read_rollups(
        &self,
        s: &[SeriesKey],
        f: Minute,
        t: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        self.inner.read_rollups(s, f, t).await
    }
    async fn read_hourly(&self, s: &[SeriesKey], f: Hour, t: Hour) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        self.inner.read_hourly(s, f, t).await
    }
    async fn read_records(&self, s: &SeriesKey, limit: usize) -> Result<Vec<RawRecord>, StoreError> {
        self.inner.read_records(s, limit).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.list_series().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

async fn get(router: &axum::Router, path: &str) -> (u16, Option<String>, serde_json::Value) {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, retry, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn past_the_concurrency_limit_a_request_is_shed_with_retry_after() {
    let store = SlowStore::new(Duration::from_secs(2));
    let options = QueryOptions { max_concurrent: 1, ..Default::default() };
    let router = app(store.clone(), options);
    let slow = tokio::spawn({
        let router = router.clone();
        async move { get(&router, "/api/v1/status").await }
    });
    // Until the slow request holds the only slot (it is in the store, for 2 s).
    mixmon_testkit::eventually(Duration::from_secs(5), Duration::from_millis(5), || async {
        store.entered.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await
    .unwrap();
    let (status, retry, body) = get(&router, "/api/v1/status").await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(body["message"].as_str().unwrap().contains("max_concurrent_requests"), "{body}");
    assert_eq!(get(&router, "/healthz").await.0, 200, "liveness is never shed");
    assert_eq!(slow.await.unwrap().0, 200, "the request in flight finishes");
    assert_eq!(get(&router, "/api/v1/status").await.0, 200, "the slot is free again");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_stopped_naming_the_limit() {
    let store = SlowStore::new(Duration::from_secs(5));
    let options = QueryOptions { request_timeout: Duration::from_millis(200), ..Default::default() };
    let router = app(store, options);
    let (status, retry, body) = get(&router, "/api/v1/status").await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
    assert_eq!(body["error"]["code"], "deadline");
    assert!(body["message"].as_str().unwrap().contains("request_timeout_ms"), "{body}");
}
