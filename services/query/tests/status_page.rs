//! `GET /status`, fetched with a plain HTTP client over TCP (no JavaScript, as a browser with
//! scripts off sees it): every endpoint and region of `/api/v1/status` is on the page with its
//! status and the same figures, to the last bit (`<data value>`), and the long windows,
//! incidents and failures from the same store; the token is required unless the page is
//! public (401 with a reason); strings from the store are escaped; a dead store is a 503 page;
//! the page's reads are bounded whatever the request or the number of viewers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::{counts, key, rollup, MIN};
use mixmon_config::Secret;
use mixmon_model::alert::{AlertInstance, AlertState, LabelSet};
use mixmon_model::{
    CheckId, FailureKind, Hour, Minute, ProberId, RawRecord, Rollup, RollupDelta, SeriesKey, RECORDS_KEPT,
};
use mixmon_query::{app, QueryOptions, StatusPageOptions};
use mixmon_store::{AlertStore, ApplyOutcome, BatchId, MemoryStore, OutboxStore, Store, StoreError};
use mixmon_testkit::http;
use serde_json::Value;

const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const TOKEN: &str = "s3cret-token";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Serves `router` on a free loopback port; the base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn get(url: &str, token: Option<&str>) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request("GET", url, &headers, None).await.unwrap()
}

/// Writes `delta` as one batch.
async fn apply(store: &MemoryStore, delta: &RollupDelta, seq: u64) {
    let batch = BatchId { prober: ProberId::new("test").unwrap(), epoch: 1, seq };
    store.apply_batch(&batch, delta).await.unwrap();
}

/// A fleet around the real clock: every minute from 30 minutes ago to 2 minutes ahead holds
/// the same rollup, so the 5-minute and 24 h figures do not move while the test runs, also
/// across a minute's turn. `api` is healthy, `edge` degraded in eu-west (150 ms), `us-east`
/// unhealthy from ap (2 % errors), `ap` has data 2 and 10 days ago only (no data now; 7 d and
/// 15 d uptime known).
async fn fleet() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let now = now_ms();
    let mut delta = RollupDelta::default();
    for m in -30..=2 {
        let minute = Minute::containing(now + m * MIN);
        delta.add_rollup(key("api", "eu-west"), minute, &rollup(&[20.0; 60], 0));
        delta.add_rollup(key("api", "us-west"), minute, &rollup(&[30.0; 60], 0));
        delta.add_rollup(key("edge", "eu-west"), minute, &rollup(&[150.0; 60], 0));
        delta.add_rollup(key("edge", "us-west"), minute, &rollup(&[12.0; 60], 0));
        delta.add_rollup(key("us-east", "ap"), minute, &rollup(&[40.0; 98], 2));
    }
    delta.add_rollup(key("ap", "ap"), Minute::containing(now - 2 * DAY), &counts(100, 90));
    delta.add_rollup(key("ap", "ap"), Minute::containing(now - 10 * DAY), &counts(100, 50));
    let failed = |at_ms: i64, kind: FailureKind, status_code: u16| RawRecord {
        started_at_ms: at_ms,
        duration_us: 2_500,
        status_code,
        failure: Some(kind),
        address: Some(std::net::SocketAddr::from(([10, 0, 0, 7], 443))),
    };
    let ok = |at_ms: i64| RawRecord {
        started_at_ms: at_ms,
        duration_us: 1_000,
        status_code: 200,
        failure: None,
        address: None,
    };
    delta.records.insert(
        key("us-east", "ap"),
        vec![
            failed(now - 90_000, FailureKind::BadStatus, 503),
            ok(now - 80_000),
            failed(now - 60_000, FailureKind::Timeout, 0),
        ],
    );
    apply(&store, &delta, 1).await;
    let lease = store.acquire_lease("test", 60_000, now).await.unwrap().unwrap();
    let mut down = AlertInstance::firing(
        LabelSet::new().with("alertname", "HighErrorRate").with("severity", "critical").with("endpoint", "us-east"),
        now - 3 * MIN,
    );
    down.annotations = BTreeMap::from([("summary".to_string(), "us-east errors at 2 %".to_string())]);
    let mut pending =
        AlertInstance::firing(LabelSet::new().with("alertname", "HighLatency").with("severity", "critical"), now);
    pending.state = AlertState::Pending;
    store.commit_alerts(&lease, &[down, pending], &[], &[], now).await.unwrap();
    store
}

/// One row of the page's status table, read from its markup.
#[derive(Debug)]
struct PageRow {
    endpoint: String,
    region: String,
    status: String,
    /// `data-field` → the exact `<data value>` (`None` when empty).
    figures: BTreeMap<String, Option<f64>>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

/// Every `<tr ... data-status=...>` of the status table.
fn page_rows(html: &str) -> Vec<PageRow> {
    let table = html.split("<table class=\"status\">").nth(1).unwrap_or_default();
    let table = table.split("</table>").next().unwrap_or_default();
    table
        .split("<tr ")
        .skip(1)
        .filter(|chunk| chunk.contains("data-status="))
        .map(|chunk| {
            let tag = format!(" {}", chunk.split('>').next().unwrap());
            let body = chunk.split("</tr>").next().unwrap();
            let mut figures = BTreeMap::new();
            for data in body.split("<data ").skip(1) {
                let tag = format!(" {}", data.split('>').next().unwrap());
                let value = attribute(&tag, "value").unwrap();
                figures.insert(
                    attribute(&tag, "data-field").unwrap(),
                    (!value.is_empty()).then(|| value.parse().unwrap()),
                );
            }
            PageRow {
                endpoint: attribute(&tag, "data-endpoint").unwrap(),
                region: attribute(&tag, "data-region").unwrap(),
                status: attribute(&tag, "data-status").unwrap(),
                figures,
            }
        })
        .collect()
}

#[tokio::test]
async fn the_page_shows_every_endpoint_and_region_with_the_api_figures() {
    let base = serve(app(fleet().await, QueryOptions::default())).await;
    let api = get(&format!("{base}/api/v1/status"), None).await.json().unwrap();
    let page = get(&format!("{base}/status"), None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'none'"), "no script may run");
    let html = page.text();
    assert!(!html.to_lowercase().contains("<script"), "the page needs no JavaScript");
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));

    let api = api.as_array().unwrap();
    let rows = page_rows(&html);
    assert_eq!(rows.len(), api.len(), "one row per /api/v1/status row: {rows:#?}");
    assert_eq!(api.len(), 4 + 6, "4 endpoints merged + 6 regional rows");
    let as_f64 = |v: &Value| v.as_f64();
    for (expected, row) in api.iter().zip(&rows) {
        let name = format!("{} {}", row.endpoint, row.region);
        assert_eq!(row.endpoint, expected["endpoint"].as_str().unwrap(), "same order as the API");
        assert_eq!(row.region, expected["region"].as_str().unwrap(), "{name}");
        assert_eq!(row.status, expected["status"].as_str().unwrap(), "{name}");
        for field in ["success_rate_5m", "p95_ms_5m", "uptime_24h"] {
            assert_eq!(row.figures[field], as_f64(&expected[field]), "{name} {field}");
        }
    }
    let find = |endpoint: &str, region: &str| {
        rows.iter()
            .find(|r| r.endpoint == endpoint && r.region == region)
            .unwrap_or_else(|| panic!("{endpoint} {region}"))
    };
    let statuses: Vec<(&str, &str, &str)> = [
        ("api", "all", "healthy"),
        ("api", "eu-west", "healthy"),
        ("edge", "all", "degraded"),
        ("edge", "eu-west", "degraded"),
        ("edge", "us-west", "healthy"),
        ("us-east", "ap", "unhealthy"),
        ("ap", "all", "no_data"),
    ]
    .into();
    for (endpoint, region, status) in statuses {
        assert_eq!(find(endpoint, region).status, status, "{endpoint} {region}");
    }
    // The long windows, from hourly rollups: ap's 90/100 two days ago and 50/100 ten days ago.
    assert_eq!(find("ap", "ap").figures["uptime_7d"], Some(0.9));
    assert_eq!(find("ap", "ap").figures["uptime_15d"], Some(0.7));
    assert_eq!(find("ap", "ap").figures["uptime_24h"], None, "nothing in the last day");
    assert_eq!(find("us-east", "all").figures["uptime_7d"], Some(0.98));
    assert!(html.contains("<span class=\"pill no_data\">no data</span>"), "no data reads as words");
    // Each row with history draws its two sparklines.
    assert_eq!(html.matches("<svg class=\"spark p95\"").count(), rows.len());
    assert_eq!(html.matches("<svg class=\"spark bars\"").count(), rows.len());
    // The firing alert is an open incident; the pending one is not.
    let incidents = html.split("<section id=\"incidents\">").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(incidents.contains("Open incidents (1)"), "{incidents}");
    assert!(incidents.contains("data-alertname=\"HighErrorRate\"") && incidents.contains("us-east errors at 2 %"));
    assert!(!incidents.contains("HighLatency"), "pending is not an incident");
    // The latest failures, newest first, from the raw records.
    let failures = html.split("<section id=\"failures\">").nth(1).unwrap().split("</section>").next().unwrap();
    let kinds: Vec<&str> =
        failures.split("data-label=\"Failure\">").skip(1).map(|s| s.split('<').next().unwrap()).collect();
    assert_eq!(kinds, ["timeout", "bad status"], "{failures}");
    assert!(failures.contains(">503<") && failures.contains("10.0.0.7:443"), "{failures}");
    assert!(failures.contains("data-endpoint=\"us-east\" data-region=\"ap\""));
    // HEAD answers the same status without a body.
    let head = http::request("HEAD", &format!("{base}/status"), &[], None).await.unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[tokio::test]
async fn the_page_takes_the_api_token_unless_it_is_public() {
    let store = fleet().await;
    let private = QueryOptions { auth_token: Some(Secret::new(TOKEN)), ..Default::default() };
    let base = serve(app(store.clone(), private)).await;
    for token in [None, Some("wrong"), Some("s3cret-toke")] {
        let reply = get(&format!("{base}/status"), token).await;
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"mixmon\""));
        let text = reply.text();
        assert!(text.contains("token required") && text.contains("[status_page] public = true"), "{text}");
        assert!(!text.contains(TOKEN) && !text.contains("data-status"), "nothing of the page, never the token");
    }
    let reply = get(&format!("{base}/status"), Some(TOKEN)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("data-endpoint=\"api\""));
    assert_eq!(get(&format!("{base}/api/v1/status"), None).await.status, 403, "the API keeps its 403");
    let post = http::request("POST", &format!("{base}/status"), &[], None).await.unwrap();
    assert_eq!(post.status, 403, "only reading the page is treated apart");

    let public = QueryOptions {
        auth_token: Some(Secret::new(TOKEN)),
        status_page: StatusPageOptions { public: true, refresh_seconds: 60 },
        ..Default::default()
    };
    let base = serve(app(store, public)).await;
    let reply = get(&format!("{base}/status"), None).await;
    assert_eq!(reply.status, 200);
    let html = reply.text();
    assert!(html.contains("data-endpoint=\"api\"") && html.contains("content=\"60\""), "the configured refresh");
    assert!(!html.contains(TOKEN));
    assert_eq!(get(&format!("{base}/api/v1/status"), None).await.status, 403, "public is the page only");
    assert_eq!(get(&format!("{base}/api/v1/records?endpoint=api&region=eu-west"), None).await.status, 403);
}

#[tokio::test]
async fn strings_from_the_store_are_escaped() {
    // Endpoint and region names cannot carry markup: the store's ids refuse it where data
    // enters. Alert labels and annotations can (templated from rules files), and are escaped.
    assert!(CheckId::new("<script>").is_err() && CheckId::new("a\"b").is_err());
    let store = fleet().await;
    let now = now_ms();
    // The fleet's lease (60 s) is taken over once it has expired.
    let lease = store.acquire_lease("test2", 60_000, now + 61_000).await.unwrap().unwrap();
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    let mut alert = AlertInstance::firing(
        LabelSet::new().with("alertname", hostile).with("severity", hostile).with("endpoint", hostile),
        now - MIN,
    );
    alert.annotations = BTreeMap::from([("summary".to_string(), hostile.to_string())]);
    store.commit_alerts(&lease, &[alert], &[], &[], now + 61_000).await.unwrap();
    let base = serve(app(store, QueryOptions::default())).await;
    let html = get(&format!("{base}/status"), None).await.text();
    assert!(!html.contains("<script") && !html.contains("<img"), "no markup from the store");
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;";
    assert!(html.matches(escaped).count() >= 3, "alertname, label and summary shown escaped:\n{html}");
    assert!(html.contains("class=\"incident other\""), "an unknown severity is no class of the page");
}

/// A store whose backend is down.
struct DownStore;

impl AlertStore for DownStore {}
impl OutboxStore for DownStore {}

fn down() -> StoreError {
    StoreError::Unavailable("redis://:hunter2@db:6379 refused".into())
}

#[async_trait]
impl Store for DownStore {
    async fn apply_batch(&self, _: &BatchId, _: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        Err(down())
    }
    async fn read_rollups(
        &self,
        _: &[SeriesKey],
        _: Minute,
        _: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        Err(down())
    }
    async fn read_hourly(&self, _: &[SeriesKey], _: Hour, _: Hour) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        Err(down())
    }
    async fn read_records(&self, _: &SeriesKey, _: usize) -> Result<Vec<RawRecord>, StoreError> {
        Err(down())
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Err(down())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(down())
    }
}

#[tokio::test]
async fn a_dead_store_is_a_503_page_that_keeps_refreshing() {
    let base = serve(app(Arc::new(DownStore), QueryOptions::default())).await;
    let reply = get(&format!("{base}/status"), None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
    let html = reply.text();
    assert!(html.contains("metrics store is unavailable") && html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(!html.contains("hunter2"), "store details stay in the log");
}

/// What the page asked the store for.
#[derive(Default)]
struct Reads {
    list_series: AtomicUsize,
    hourly_series: AtomicUsize,
    hourly_span_max: AtomicUsize,
    records: AtomicUsize,
    records_limit_max: AtomicUsize,
}

/// A `MemoryStore` that counts the reads.
struct Counting {
    inner: Arc<MemoryStore>,
    reads: Arc<Reads>,
}

#[async_trait]
impl AlertStore for Counting {
    async fn load_alerts(&self) -> Result<Vec<AlertInstance>, StoreError> {
        self.inner.load_alerts().await
    }
}
impl OutboxStore for Counting {}

#[async_trait]
impl Store for Counting {
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        self.inner.apply_batch(batch, delta).await
    }
    async fn read_rollups(
        &self,
        s: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        self.inner.read_rollups(s, from, to).await
    }
    async fn read_hourly(&self, s: &[SeriesKey], from: Hour, to: Hour) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        self.reads.hourly_series.fetch_add(s.len(), Ordering::SeqCst);
        self.reads.hourly_span_max.fetch_max((to.0 - from.0) as usize, Ordering::SeqCst);
        self.inner.read_hourly(s, from, to).await
    }
    async fn read_records(&self, s: &SeriesKey, limit: usize) -> Result<Vec<RawRecord>, StoreError> {
        self.reads.records.fetch_add(1, Ordering::SeqCst);
        self.reads.records_limit_max.fetch_max(limit, Ordering::SeqCst);
        self.inner.read_records(s, limit).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        self.reads.list_series.fetch_add(1, Ordering::SeqCst);
        self.inner.list_series().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn its_reads_are_bounded_whatever_the_request_or_the_viewers() {
    // 60 endpoints x 3 regions, every one failing now and then: 240 rows, 180 failing series.
    let inner = Arc::new(MemoryStore::new());
    let now = now_ms();
    let mut delta = RollupDelta::default();
    for e in 0..60 {
        for region in ["ap", "eu-west", "us-west"] {
            let series = key(&format!("endpoint-{e:02}"), region);
            delta.add_rollup(series.clone(), Minute::containing(now - MIN), &rollup(&[10.0; 9], 1));
            let failed = RawRecord {
                started_at_ms: now - MIN,
                duration_us: 1,
                status_code: 500,
                failure: Some(FailureKind::BadStatus),
                address: None,
            };
            delta.records.insert(series, vec![failed]);
        }
    }
    apply(&inner, &delta, 1).await;
    let reads = Arc::new(Reads::default());
    let store = Arc::new(Counting { inner, reads: reads.clone() });
    let base = serve(app(store, QueryOptions::default())).await;

    // Twenty viewers at once, some with parameters a careless client might send.
    let urls: Vec<String> = (0..20)
        .map(|i| match i % 3 {
            0 => format!("{base}/status"),
            1 => format!("{base}/status?from=0&to=99999999999999&endpoint=.*"),
            _ => format!("{base}/status?limit=1000000&region=all"),
        })
        .collect();
    let pages = futures_join(urls.into_iter().map(|u| async move { get(&u, None).await })).await;
    assert!(pages.iter().all(|p| p.status == 200));
    let first = pages[0].text();
    assert!(pages.iter().all(|p| p.text() == first), "one render answers every viewer of the moment");
    assert_eq!(page_rows(&first).len(), 240, "every row is shown");
    assert!(first.contains("not read: the page draws the first rows only"), "rows past the bound have no history");

    let renders = reads.list_series.load(Ordering::SeqCst);
    assert!((1..=2).contains(&renders), "{renders} renders for 20 simultaneous viewers");
    let max_rows = 120;
    assert!(reads.hourly_series.load(Ordering::SeqCst) <= renders * max_rows, "hourly reads bounded by the row cap");
    assert_eq!(reads.hourly_span_max.load(Ordering::SeqCst), 15 * 24, "15 days, the retention");
    assert!(reads.records.load(Ordering::SeqCst) <= renders * 8, "at most 8 raw-record reads per render");
    assert!(reads.records_limit_max.load(Ordering::SeqCst) <= 100 && 100 < RECORDS_KEPT);
}

/// Runs the futures at once (the test crate has no `futures` dependency).
async fn futures_join<F: std::future::Future<Output = http::Response> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<http::Response> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
