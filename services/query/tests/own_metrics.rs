//! `GET /metrics`: the query service's own metrics and the SLIs as gauges, in Prometheus text
//! format that our exposition parser (the one the prober scrapes with) reads back; the gauges
//! equal what `GET /api/v1/status` answers; the route takes the API's token.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use http_body_util::BodyExt;
use mixmon_config::Secret;
use mixmon_exposition::{parse, Format};
use mixmon_query::{app, QueryOptions};
use tower::ServiceExt;

async fn get(router: &axum::Router, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = Request::builder().method("GET").uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, content_type, body)
}

#[tokio::test]
async fn metrics_and_sli_gauges_agree_with_the_status_api() {
    let now = chrono::Utc::now().timestamp_millis();
    let store = store_with(vec![
        ("api", "eu-west", now - 2 * MIN, rollup(&[40.0, 60.0, 80.0], 1)),
        ("api", "us-west", now - MIN, counts(10, 10)),
        ("edge", "eu-west", now - 3 * MIN, rollup(&[20.0], 0)),
    ])
    .await;
    let options = QueryOptions { auth_token: Some(Secret::new("s3cret")), ..Default::default() };
    let router = app(store, options);
    assert_eq!(get(&router, "/metrics", None).await.0, 403, "the metrics reveal the SLIs: they take the token");
    let (status, _, table) = get(&router, "/api/v1/status", Some("s3cret")).await;
    assert_eq!(status, 200);
    let (status, content_type, body) = get(&router, "/metrics", Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let scrape = parse(&body, Format::Prometheus).unwrap();

    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    let rows = table.as_array().unwrap();
    assert_eq!(rows.len(), 5, "two endpoints merged and three (endpoint, region) rows: {table}");
    let uptime = scrape.family("mixmon_sli_uptime_24h_ratio").unwrap();
    let success = scrape.family("mixmon_sli_success_5m_ratio").unwrap();
    for row in rows {
        let labels = [("endpoint", row["endpoint"].as_str().unwrap()), ("region", row["region"].as_str().unwrap())];
        assert_eq!(uptime.value("mixmon_sli_uptime_24h_ratio", &labels), row["uptime_24h"].as_f64(), "{labels:?}");
        assert_eq!(
            success.value("mixmon_sli_success_5m_ratio", &labels),
            row["success_rate_5m"].as_f64(),
            "{labels:?}"
        );
    }
    assert_eq!(uptime.value("mixmon_sli_uptime_24h_ratio", &[("endpoint", "api"), ("region", "eu-west")]), Some(0.75));

    // The requests before this scrape were counted by route, never by raw path.
    let requests = scrape.family("mixmon_query_requests_total").unwrap();
    let counted =
        |route: &str, code: &str| requests.value("mixmon_query_requests_total", &[("route", route), ("code", code)]);
    assert_eq!(counted("/api/v1/status", "200"), Some(1.0));
    assert_eq!(counted("/metrics", "403"), Some(1.0));
    get(&router, "/no/such/path/42", Some("s3cret")).await;
    let (_, _, body) = get(&router, "/metrics", Some("s3cret")).await;
    let scrape = parse(&body, Format::Prometheus).unwrap();
    let requests = scrape.family("mixmon_query_requests_total").unwrap();
    assert_eq!(requests.value("mixmon_query_requests_total", &[("route", "unmatched"), ("code", "404")]), Some(1.0));
    let errors = scrape.family("mixmon_query_errors_total").unwrap();
    assert_eq!(errors.value("mixmon_query_errors_total", &[("kind", "not_found")]), Some(1.0));
    assert!(scrape.family("mixmon_query_request_duration_seconds").is_some());
}
