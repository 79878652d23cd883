//! The Grafana JSON data source contract (research note §5): liveness, the discovery
//! endpoints, Grafana 11's full `/query` request, and JSON errors for garbage.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

async fn sample_router() -> axum::Router {
    router(
        store_with(vec![
            ("api", "eu-west", T0, rollup(&[10.0, 20.0], 0)),
            ("api", "us-west", T0, rollup(&[30.0], 1)),
            ("edge", "us-west", T0 + MIN, rollup(&[5.0], 0)),
        ])
        .await,
    )
}

#[tokio::test]
async fn liveness_routes_answer_200_json() {
    let router = sample_router().await;
    for path in ["/", "/healthz"] {
        let reply = call(&router, "GET", path, "", None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json, json!({"status": "ok"}));
        assert!(reply.content_type.starts_with("application/json"));
    }
    let reply = call(&router, "GET", "/query/", "", None).await;
    assert_eq!(reply.status, 404, "no redirects");
    assert_error_body(&reply, "not_found");
    let reply = call(&router, "GET", "/query", "", None).await;
    assert_eq!(reply.status, 405);
    assert_error_body(&reply, "method_not_allowed");
}

#[tokio::test]
async fn grafana_11_example_request_is_accepted() {
    let router = sample_router().await;
    // Research note §2.4 verbatim, with our metric names and one leftover field per level.
    let body = json!({
        "app": "dashboard", "requestId": "SQR104", "timezone": "browser",
        "range": {"from": "2024-10-18T06:00:00.000Z", "to": "2024-10-18T12:00:00.000Z",
                  "raw": {"from": "now-6h", "to": "now"}},
        "interval": "20s", "intervalMs": 20000,
        "targets": [
            {"datasource": {"type": "simpod-json-datasource", "uid": "query-api"}, "editorMode": "code",
             "payload": {"endpoint": "api", "host": "web-1"}, "refId": "A", "target": "success_rate"},
            {"datasource": {"type": "simpod-json-datasource", "uid": "query-api"}, "editorMode": "builder",
             "hide": false, "payload": {}, "refId": "B", "target": r"latency\_p95", "bucketAggs": [1]}
        ],
        "maxDataPoints": 1080,
        "scopedVars": {
            "host": {"selected": false, "text": "web-1", "value": "web-1"},
            "__sceneObject": {"text": "__sceneObject"},
            "__interval": {"text": "20s", "value": "20s"},
            "__interval_ms": {"text": "20000", "value": 20000}
        },
        "startTime": 1729252800123_i64, "rangeRaw": {"from": "now-6h", "to": "now"},
        "dashboardUID": "json-demo", "panelId": 2, "panelName": "CPU", "panelPluginId": "timeseries",
        "filters": [{"key": "region", "operator": "=", "value": "us-west", "condition": ""}],
        "groupByKeys": [], "someFutureField": {"nested": [null]}
    });
    let reply = post(&router, "/query", &body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let elements = reply.json.as_array().unwrap();
    let names: Vec<(&str, &str)> =
        elements.iter().map(|e| (e["refId"].as_str().unwrap(), e["target"].as_str().unwrap())).collect();
    assert_eq!(names, [("A", "api us-west"), ("B", "api us-west"), ("B", "edge us-west")]);
    assert_eq!(elements[0]["tags"], json!({"endpoint": "api", "region": "us-west"}));
    assert_eq!(elements[0]["unit"], "percentunit");
    assert_eq!(elements[1]["unit"], "ms");
    assert_eq!(points(&elements[0]).len(), 360, "6 h at 1 min steps");
    assert_eq!(points(&elements[0])[0], (Some(0.5), T0));
}

#[tokio::test]
async fn empty_requests_give_empty_arrays() {
    let router = sample_router().await;
    for body in
        ["", "{}", "null", r#"{"targets": []}"#, r#"{"targets": [{"refId": "A"}, {"target": "uptime", "hide": true}]}"#]
    {
        let reply = post(&router, "/query", body).await;
        assert_eq!((reply.status.as_u16(), reply.json.clone()), (200, json!([])), "{body}");
    }
}

#[tokio::test]
async fn metric_list_and_payload_options() {
    let router = sample_router().await;
    let reply = post(&router, "/metrics", "").await;
    assert_eq!(reply.status, 200);
    let metrics = reply.json.as_array().unwrap();
    let values: Vec<&str> = metrics.iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(values.len(), mixmon_query::Metric::ALL.len());
    assert!(values.contains(&"latency_p99") && values.contains(&"uptime"));
    // Probe metrics here; the figure metrics' payloads are checked in `figures.rs`.
    for metric in metrics.iter().filter(|m| mixmon_query::FigureMetric::parse(m["value"].as_str().unwrap()).is_none()) {
        assert!(metric["label"].is_string());
        let payloads = metric["payloads"].as_array().unwrap();
        let names: Vec<&str> = payloads.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["endpoint", "region", "format"]);
        assert_eq!(payloads[0]["type"], "multi-select");
        assert_eq!(
            payloads[2]["options"],
            json!([{"value": "time_series", "label": "Time series"}, {"value": "table", "label": "Table"}])
        );
    }
    let body = r#"{"metric": "success_rate", "payload": {"endpoint": "api"}, "name": "endpoint"}"#;
    assert_eq!(
        post(&router, "/metric-payload-options", body).await.json,
        json!([
            {"value": "api", "label": "api"}, {"value": "edge", "label": "edge"}
        ])
    );
    let regions = post(&router, "/metric-payload-options", r#"{"name": "region"}"#).await.json;
    let values: Vec<&str> = regions.as_array().unwrap().iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["all", "eu-west", "us-west"]);
    assert_eq!(
        post(&router, "/metric-payload-options", r#"{"name": "format"}"#).await.json.as_array().unwrap().len(),
        2
    );
    assert_eq!(post(&router, "/metric-payload-options", r#"{"name": "nope"}"#).await.json, json!([]));
}

#[tokio::test]
async fn variables_are_text_value_pairs() {
    let router = sample_router().await;
    let range = r#""range": {"from": "2024-10-18T06:00:00.000Z", "to": "2024-10-18T12:00:00.000Z"}"#;
    let reply = post(&router, "/variable", &format!(r#"{{"payload": {{"target": "endpoints"}}, {range}}}"#)).await;
    assert_eq!(reply.json, json!([{"__text": "api", "__value": "api"}, {"__text": "edge", "__value": "edge"}]));
    for payload in [r#""{\"target\": \"regions\"}""#, r#""regions""#, r#"{"target": "regions", "type": "x"}"#] {
        let reply = post(&router, "/variable", &format!(r#"{{"payload": {payload}}}"#)).await;
        assert_eq!(
            reply.json,
            json!([{"__text": "eu-west", "__value": "eu-west"}, {"__text": "us-west", "__value": "us-west"}]),
            "{payload}"
        );
    }
    let metrics = post(&router, "/variable", r#"{"payload": {"target": "metrics"}}"#).await.json;
    assert_eq!(metrics[0], json!({"__text": "Success rate", "__value": "success_rate"}));
    let reply = post(&router, "/variable", r#"{"payload": {"target": "hosts"}}"#).await;
    assert_eq!(reply.status, 400);
    assert_error_body(&reply, "unknown_variable");
}

#[tokio::test]
async fn tag_keys_and_values() {
    let router = sample_router().await;
    let keys = json!([
        {"type": "string", "text": "endpoint"},
        {"type": "string", "text": "region"},
        {"type": "string", "text": "node"},
        {"type": "string", "text": "pod"}
    ]);
    assert_eq!(post(&router, "/tag-keys", "").await.json, keys);
    assert_eq!(post(&router, "/tag-keys", r#"{"filters": [], "timeRange": {"from": "x"}}"#).await.json, keys);
    let body = r#"{"key": "region", "filters": [], "timeRange": {"from": "2024-10-18T06:00:00Z", "to": "2024-10-18T12:00:00Z"}}"#;
    assert_eq!(post(&router, "/tag-values", body).await.json, json!([{"text": "eu-west"}, {"text": "us-west"}]));
    assert_eq!(
        post(&router, "/tag-values", r#"{"key": "endpoint"}"#).await.json,
        json!([{"text": "api"}, {"text": "edge"}])
    );
    assert_eq!(post(&router, "/tag-values", r#"{"key": "host"}"#).await.json, json!([]));
}

#[tokio::test]
async fn legacy_search_lists_metrics() {
    let router = sample_router().await;
    let all = post(&router, "/search", "").await.json;
    assert_eq!(all.as_array().unwrap().len(), mixmon_query::Metric::ALL.len());
    assert_eq!(
        post(&router, "/search", r#"{"target": "latency_p9"}"#).await.json,
        json!(["latency_p90", "latency_p95", "latency_p99"])
    );
    assert_eq!(post(&router, "/search", r#"{"target": "endpoints"}"#).await.json, json!(["api", "edge"]));
}

#[tokio::test]
async fn garbage_is_a_4xx_json_error() {
    let router = sample_router().await;
    let ok_range = r#""range": {"from": "2024-10-18T06:00:00Z", "to": "2024-10-18T07:00:00Z"}"#;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "invalid_json"),
        ("[1, 2]".into(), 400, "invalid_body"),
        ("\"text\"".into(), 400, "invalid_body"),
        (r#"{"targets": {"refId": "A"}}"#.into(), 400, "invalid_targets"),
        (r#"{"targets": [null]}"#.into(), 400, "invalid_targets"),
        (format!(r#"{{{ok_range}, "targets": [{{"refId": "A", "target": "cpu.usage"}}]}}"#), 400, "unknown_metric"),
        (
            format!(r#"{{{ok_range}, "targets": [{{"target": "uptime", "payload": {{"endpoint": {{"a": 1}}}}}}]}}"#),
            400,
            "invalid_payload",
        ),
        (
            format!(r#"{{{ok_range}, "targets": [{{"target": "uptime", "payload": "{{broken"}}]}}"#),
            400,
            "invalid_payload",
        ),
        (r#"{"range": {"from": "now-6h", "to": "now"}}"#.into(), 400, "invalid_time"),
        (r#"{"range": {"from": "2024-13-45T00:00:00Z", "to": "2024-10-18T07:00:00Z"}}"#.into(), 400, "invalid_time"),
        (r#"{"range": {"from": "2024-10-18T07:00:00Z", "to": "2024-10-18T06:00:00Z"}}"#.into(), 400, "invalid_range"),
        // A long range is clamped to its last 31 days, not refused (see the datapoint cap test).
        (r#"{"range": [1, 2]}"#.into(), 400, "invalid_range"),
        (r#"{"maxDataPoints": {"x": 1}}"#.into(), 400, "invalid_field"),
        (
            format!(r#"{{{ok_range}, "filters": [{{"key": "region", "operator": "<", "value": "5"}}]}}"#),
            400,
            "unsupported_operator",
        ),
        (
            format!(r#"{{{ok_range}, "filters": [{{"key": "region", "operator": "=~", "value": "(["}}]}}"#),
            400,
            "invalid_regex",
        ),
        (format!(r#"{{{ok_range}, "adhocFilters": "region=eu"}}"#), 400, "invalid_filter"),
    ];
    for (body, status, code) in cases {
        let reply = post(&router, "/query", &body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.json);
        assert_error_body(&reply, code);
    }
    let reply = post(&router, "/query", &format!(r#"{{{ok_range}, "targets": [{{"target": "x"}}]}}"#)).await;
    let message = reply.json["message"].as_str().unwrap();
    assert!(message.starts_with("unknown metric 'x'; known: success_rate, error_rate, uptime"), "{message}");
    for path in ["/metrics", "/variable", "/tag-values", "/metric-payload-options", "/search"] {
        let reply = post(&router, path, "{oops").await;
        assert_eq!(reply.status, 400, "{path}");
        assert_error_body(&reply, "invalid_json");
        assert!(reply.json["message"].as_str().unwrap().contains("line 1"), "serde's message: {}", reply.json);
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let router = sample_router().await;
    let padding = "x".repeat(1 << 20);
    let reply = post(&router, "/query", &format!(r#"{{"pad": "{padding}"}}"#)).await;
    assert_eq!(reply.status, 413);
    assert_error_body(&reply, "body_too_large");
    let ok = post(&router, "/query", &format!(r#"{{"pad": "{}"}}"#, "x".repeat(1000))).await;
    assert_eq!((ok.status.as_u16(), ok.json), (200, Value::Array(vec![])));
}

#[tokio::test]
async fn a_query_past_the_datapoint_cap_is_refused_before_any_read_and_a_long_range_is_clamped() {
    let mut rows = Vec::new();
    for endpoint in ["us-west", "us-east", "eu-west", "ap", "edge", "api"] {
        for region in ["us-west", "us-east", "eu-west", "ap"] {
            rows.push((endpoint, region, T0, counts(10, 9)));
        }
    }
    let router = router(store_with(rows).await);
    // The issue's hostile request: five targets matching every probe metric, 31 days, 10 000 points.
    let every: Vec<&str> =
        mixmon_query::Metric::ALL.iter().filter(|m| m.figure().is_none()).map(|m| m.name()).collect();
    let regex = format!("({})", every.join("|"));
    let targets: Vec<Value> = (0..5).map(|i| json!({"refId": format!("T{i}"), "target": regex})).collect();
    let hostile = json!({
        "range": {"from": iso(T0 - 30 * 86_400_000), "to": iso(T0 + 86_400_000)},
        "maxDataPoints": 10_000,
        "targets": targets,
    });
    let reply = post(&router, "/query", &hostile.to_string()).await;
    assert_eq!(reply.status, 400, "{:?}", reply.json);
    assert_eq!(reply.json["error"]["code"], "too_many_datapoints");
    let message = reply.json["message"].as_str().unwrap();
    assert!(message.contains("at most 500000 are answered") && message.contains("fewer metrics"), "{message}");

    // Grafana's "Last 90 days" with its own maxDataPoints is cheap: answered for what is kept.
    let long = json!({
        "range": {"from": iso(T0 - 89 * 86_400_000), "to": iso(T0 + 86_400_000)},
        "maxDataPoints": 1_500,
        "targets": [{"refId": "A", "target": "probes", "payload": {"endpoint": "api", "region": "all"}}],
    });
    let reply = post(&router, "/query", &long.to_string()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    let points = reply.json[0]["datapoints"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 1_500);
    let total: f64 = points.iter().filter_map(|p| p[0].as_f64()).sum();
    assert_eq!(total, 40.0, "the data that exists is all there");
}
