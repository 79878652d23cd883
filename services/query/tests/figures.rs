//! The mixer's and the platform's figures through the Grafana datasource: real requests against
//! the router over a `MemoryStore` filled through `apply_batch`, values computed by hand.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mixmon_model::{EntityName, MixerSample, Region, RollupDelta};
use mixmon_query::MixerStatus;
use mixmon_store::{BatchId, MemoryStore, Store};
use serde_json::{json, Value};

async fn query(router: &axum::Router, body: String) -> Vec<Value> {
    let reply = post(router, "/query", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json.as_array().unwrap().clone()
}

fn by_name<'a>(elements: &'a [Value], name: &str) -> &'a Value {
    elements.iter().find(|e| e["target"] == name).unwrap_or_else(|| panic!("no series '{name}' in {elements:?}"))
}

fn names(elements: &[Value]) -> Vec<String> {
    elements.iter().map(|e| e["target"].as_str().unwrap().to_string()).collect()
}

/// `histogram_quantile`'s interpolation inside one bucket, in ms.
fn within(start: f64, end: f64, rank: f64, below: f64, count: f64) -> f64 {
    (start + (end - start) * ((rank - below) / count)) * 1000.0
}

/// Two regions' mixer fields over three minutes; us-west is silent in the third.
async fn mixer_store() -> std::sync::Arc<MemoryStore> {
    store_with_figures(vec![
        (
            mixer("eu-west"),
            T0,
            fields(
                &[
                    ("rq:200", 570),
                    ("rq:500", 30),
                    ("hb:0.01", 100),
                    ("hb:0.05", 300),
                    ("hb:0.1", 200),
                    ("hc", 600),
                    ("hs", 24_000_000),
                    ("st", 24 * 60_000),
                    ("stw", 120_000),
                    ("g:rock", 30),
                    ("g:jazz", 10),
                    ("so", 8),
                ],
                &[("pkx", -4_000)],
            ),
        ),
        (
            mixer("eu-west"),
            T0 + MIN,
            fields(
                &[("rq:200", 1_200), ("st", 24 * 60_000), ("stw", 120_000), ("g:rock", 10), ("g:pop", 10), ("so", 8)],
                &[("pkx", -2_000)],
            ),
        ),
        (mixer("eu-west"), T0 + 2 * MIN, fields(&[("rq:503", 60), ("so", 8)], &[])),
        (
            mixer("us-west"),
            T0,
            fields(
                &[("rq:200", 60), ("rq:404", 60), ("hb:0.1", 120), ("st", 6 * 60_000), ("stw", 60_000), ("so", 4)],
                &[("pkx", -1_500)],
            ),
        ),
        (mixer("us-west"), T0 + MIN, fields(&[("rq:200", 120), ("so", 3), ("sf", 1)], &[])),
    ])
    .await
}

#[tokio::test]
async fn mixer_rates_per_region_and_merged() {
    let router = router(mixer_store().await);
    let body = query_body(T0, T0 + 3 * MIN, "mixer_request_rate", json!({}), json!({"intervalMs": 60000}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer all", "mixer eu-west", "mixer us-west"], "the merge first, then regions");
    assert_eq!(got[1]["tags"], json!({"region": "eu-west"}));
    assert_eq!(got[1]["unit"], "reqps");
    assert_eq!(got[1]["refId"], "A");
    assert_eq!(points(&got[1]), vec![(Some(10.0), T0), (Some(20.0), T0 + MIN), (Some(1.0), T0 + 2 * MIN)]);
    assert_eq!(
        points(&got[2]),
        vec![(Some(2.0), T0), (Some(2.0), T0 + MIN), (None, T0 + 2 * MIN)],
        "a silent minute is null, not 0"
    );
    assert_eq!(points(&got[0]), vec![(Some(12.0), T0), (Some(22.0), T0 + MIN), (Some(1.0), T0 + 2 * MIN)]);
    // The response is JSON null, not NaN or 0.
    assert!(got[2]["datapoints"][2][0].is_null());

    let body = query_body(T0, T0 + 3 * MIN, "mixer_error_rate", json!({}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(
        points(by_name(&got, "mixer eu-west")),
        vec![(Some(0.05), T0), (Some(0.0), T0 + MIN), (Some(1.0), T0 + 2 * MIN)]
    );
    assert_eq!(
        points(by_name(&got, "mixer us-west")),
        vec![(Some(0.5), T0), (Some(0.0), T0 + MIN), (None, T0 + 2 * MIN)]
    );
    // Merged: (30 + 60) non-200 of (600 + 120).
    assert_eq!(points(by_name(&got, "mixer all"))[0], (Some(90.0 / 720.0), T0));

    // Two-minute steps add counts: eu-west 1 800 requests in 120 s.
    let body =
        query_body(T0, T0 + 4 * MIN, "mixer_request_rate", json!({"region": "eu-west"}), json!({"intervalMs": 120000}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer eu-west"]);
    assert_eq!(points(&got[0]), vec![(Some(15.0), T0), (Some(0.5), T0 + 2 * MIN)]);
    // Only the merge ("global" is an alias of "all").
    let body = query_body(T0, T0 + MIN, "mixer_request_rate", json!({"region": "global"}), json!({}));
    assert_eq!(names(&query(&router, body).await), ["mixer all"]);
    // Ad hoc filters on region narrow the merge too.
    let body = query_body(
        T0,
        T0 + MIN,
        "mixer_request_rate",
        json!({}),
        json!({"filters": [{"key": "region", "operator": "=", "value": "us-west"}]}),
    );
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer all", "mixer us-west"]);
    assert_eq!(points(&got[0]), vec![(Some(2.0), T0)]);
}

#[tokio::test]
async fn mixer_processing_quantiles_interpolate_and_merge_buckets() {
    let router = router(mixer_store().await);
    let body = query_body(T0, T0 + 2 * MIN, "mixer_processing_p95_ms", json!({}), json!({}));
    let got = query(&router, body).await;
    // eu-west: 100 / 300 / 200 in (0, 10 ms] / (10, 50] / (50, 100]; rank 570 lies in the third.
    let eu = within(0.05, 0.1, 0.95 * 600.0, 400.0, 200.0);
    assert_eq!(points(by_name(&got, "mixer eu-west")), vec![(Some(eu), T0), (None, T0 + MIN)]);
    assert!((eu - 92.5).abs() < 1e-9);
    // us-west: all 120 in (50, 100] but the lower buckets are unknown there: (0, 100].
    assert_eq!(points(by_name(&got, "mixer us-west"))[0], (Some(within(0.0, 0.1, 0.95 * 120.0, 0.0, 120.0)), T0));
    // Merged by bound: 100 / 300 / 320, rank 684.
    let all = within(0.05, 0.1, 0.95 * 720.0, 400.0, 320.0);
    assert_eq!(points(by_name(&got, "mixer all"))[0], (Some(all), T0));
    assert_eq!(got[0]["unit"], "ms");
    let body = query_body(T0, T0 + MIN, "mixer_processing_p50_ms", json!({"region": "eu-west"}), json!({}));
    let p50 = within(0.01, 0.05, 0.5 * 600.0, 100.0, 300.0);
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(p50), T0)]);
    // p99: rank 594, still in (50, 100].
    let body = query_body(T0, T0 + MIN, "mixer_processing_p99_ms", json!({"region": "eu-west"}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(within(0.05, 0.1, 0.99 * 600.0, 400.0, 200.0)), T0)]);
    // Mean: 24 s over 600 observations.
    let body = query_body(T0, T0 + MIN, "mixer_processing_mean_ms", json!({"region": "eu-west"}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(40.0), T0)]);
}

#[tokio::test]
async fn mixer_streams_audio_genres_and_scrapes() {
    let router = router(mixer_store().await);
    let body = query_body(T0, T0 + 3 * MIN, "mixer_active_streams", json!({}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(
        points(by_name(&got, "mixer eu-west")),
        vec![(Some(24.0), T0), (Some(24.0), T0 + MIN), (None, T0 + 2 * MIN)]
    );
    assert_eq!(points(by_name(&got, "mixer all"))[0], (Some(30.0), T0), "regions' streams add up");
    // A 2-minute step averages over the step: us-west had 6 streams in one of its minutes.
    let body = query_body(
        T0,
        T0 + 2 * MIN,
        "mixer_active_streams",
        json!({"region": "us-west"}),
        json!({"intervalMs": 120000}),
    );
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(3.0), T0)]);

    let body = query_body(T0, T0 + 3 * MIN, "mixer_audio_peak_db", json!({}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(
        points(by_name(&got, "mixer all")),
        vec![(Some(-1.5), T0), (Some(-2.0), T0 + MIN), (None, T0 + 2 * MIN)]
    );
    assert_eq!(got[0]["unit"], "dB");

    let body = query_body(T0, T0 + 3 * MIN, "mixer_genre_share", json!({"region": "eu-west"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer eu-west jazz", "mixer eu-west pop", "mixer eu-west rock"]);
    assert_eq!(got[2]["tags"], json!({"region": "eu-west", "genre": "rock"}));
    assert_eq!(points(&got[0]), vec![(Some(0.25), T0), (Some(0.0), T0 + MIN), (None, T0 + 2 * MIN)]);
    assert_eq!(points(&got[1]), vec![(Some(0.0), T0), (Some(0.5), T0 + MIN), (None, T0 + 2 * MIN)]);
    assert_eq!(points(&got[2]), vec![(Some(0.75), T0), (Some(0.5), T0 + MIN), (None, T0 + 2 * MIN)]);
    // One genre asked for; over the whole 3 minutes rock is 40 of 60.
    let body = query_body(
        T0,
        T0 + 3 * MIN,
        "mixer_genre_share",
        json!({"region": "all", "genre": "rock"}),
        json!({"intervalMs": 180000}),
    );
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer all rock"]);
    assert_eq!(points(&got[0])[0].0, Some(40.0 / 60.0));

    let body = query_body(T0, T0 + 3 * MIN, "mixer_scrape_success", json!({"region": "us-west"}), json!({}));
    assert_eq!(
        points(&query(&router, body).await[0]),
        vec![(Some(1.0), T0), (Some(0.75), T0 + MIN), (None, T0 + 2 * MIN)]
    );
}

#[tokio::test]
async fn mixer_tables_hours_and_several_metrics() {
    let router = router(mixer_store().await);
    let body = query_body(T0, T0 + 3 * MIN, "mixer_request_rate", json!({"format": "table"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "table");
    assert_eq!(got[0]["columns"][1]["text"], "region");
    assert_eq!(got[0]["columns"][2]["text"], "mixer_request_rate");
    let rate = |n: f64| n * 1000.0 / 180_000.0;
    assert_eq!(
        got[0]["rows"],
        json!([
            [T0 + 3 * MIN, "all", rate(2_100.0)],
            [T0 + 3 * MIN, "eu-west", rate(1_860.0)],
            [T0 + 3 * MIN, "us-west", rate(240.0)]
        ])
    );
    // Whole-hour steps read hourly fields: one point holds all three minutes.
    let body = query_body(
        T0,
        T0 + 120 * MIN,
        "mixer_request_rate",
        json!({"region": "eu-west"}),
        json!({"intervalMs": 3_600_000}),
    );
    let got = query(&router, body).await;
    assert_eq!(points(&got[0]), vec![(Some(1_860.0 * 1000.0 / 3_600_000.0), T0), (None, T0 + 60 * MIN)]);
    // Several metrics in one target name each series after its metric.
    let body =
        query_body(T0, T0 + MIN, r"(mixer\_request\_rate|mixer_error_rate)", json!({"region": "us-west"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer us-west mixer_request_rate", "mixer us-west mixer_error_rate"]);
    // Probe and figure metrics side by side, in one request.
    let body = json!({
        "range": {"from": iso(T0), "to": iso(T0 + MIN)},
        "targets": [{"refId": "A", "target": "probes"}, {"refId": "B", "target": "mixer_request_rate", "payload": {"region": "all"}}]
    });
    let got = query(&router, body.to_string()).await;
    assert_eq!(names(&got), ["mixer all"], "no probe series stored");
    assert_eq!(got[0]["refId"], "B");
}

#[tokio::test]
async fn samples_folded_by_the_model_read_back() {
    // Two pods' scrapes folded the way the aggregator folds them.
    let region = Region::new("ap").unwrap();
    let mut delta = RollupDelta::default();
    for (pod, streams) in [("ai-mixer-1", 7.0), ("ai-mixer-2", 5.0)] {
        for k in 0..4 {
            delta.add_mixer(
                &region,
                &MixerSample {
                    pod: EntityName::new(pod).unwrap(),
                    node: EntityName::new("node-a").unwrap(),
                    at_ms: T0 + k * 15_000,
                    weight_ms: 15_000,
                    scrape_ok: true,
                    restarted: false,
                    requests: vec![(200, 14), (500, 1)],
                    duration_buckets: vec![(0.05, 10), (0.1, 5), (f64::INFINITY, 0)],
                    duration_count: 15,
                    duration_sum_us: 600_000,
                    active_streams: Some(streams),
                    audio_peak_db: Some(-6.0),
                    audio_lufs: Some(-14.0),
                    genres: vec![(EntityName::new("rock").unwrap(), 3)],
                    covered_ms: 0,
                    first_in_minute: false,
                },
            );
        }
    }
    let store = std::sync::Arc::new(MemoryStore::new());
    let batch = BatchId { prober: mixmon_model::ProberId::new("p").unwrap(), epoch: 1, seq: 1 };
    store.apply_batch(&batch, &delta).await.unwrap();
    let router = router(store);
    let one = |metric: &str| query_body(T0, T0 + MIN, metric, json!({"region": "ap"}), json!({}));
    // 8 scrapes × 15 requests in 60 s.
    assert_eq!(points(&query(&router, one("mixer_request_rate")).await[0]), vec![(Some(2.0), T0)]);
    assert_eq!(points(&query(&router, one("mixer_error_rate")).await[0]), vec![(Some(8.0 / 120.0), T0)]);
    assert_eq!(points(&query(&router, one("mixer_active_streams")).await[0]), vec![(Some(12.0), T0)]);
    assert_eq!(points(&query(&router, one("mixer_audio_lufs")).await[0]), vec![(Some(-14.0), T0)]);
    assert_eq!(points(&query(&router, one("mixer_processing_mean_ms")).await[0]), vec![(Some(40.0), T0)]);
    let p95 = within(0.05, 0.1, 0.95 * 120.0, 80.0, 40.0);
    assert_eq!(points(&query(&router, one("mixer_processing_p95_ms")).await[0]), vec![(Some(p95), T0)]);
}

async fn platform_store() -> std::sync::Arc<MemoryStore> {
    store_with_figures(vec![
        (
            node("eu-west", "node-a"),
            T0,
            fields(
                &[
                    ("du:/", 50),
                    ("dt:/", 200),
                    ("dn:/", 1),
                    ("du:/data", 95),
                    ("dt:/data", 100),
                    ("dn:/data", 1),
                    ("cpu", 300_000),
                    ("cpun", 1),
                    ("mu", 4),
                    ("mt", 16),
                    ("mn", 1),
                    ("rx", 600_000),
                    ("tx", 60_000),
                    ("nw", 60_000),
                ],
                &[("dx:/", 250_000), ("dx:/data", 950_000), ("cpux", 300_000)],
            ),
        ),
        (
            node("eu-west", "node-a"),
            T0 + MIN,
            fields(&[("du:/", 60), ("dt:/", 200), ("dn:/", 1)], &[("dx:/", 300_000)]),
        ),
        (node("us-west", "node-b"), T0, fields(&[("du:/", 10), ("dt:/", 100), ("dn:/", 1)], &[("dx:/", 100_000)])),
        (
            pod("eu-west", "mixer", "ai-mixer-1"),
            T0,
            fields(
                &[("rs", 1), ("rdy", 1), ("n", 2), ("mm", 300), ("mmn", 1), ("ml", 1_000), ("mln", 1)],
                &[("mrx", 300_000)],
            ),
        ),
        (
            pod("eu-west", "mixer", "ai-mixer-1"),
            T0 + MIN,
            fields(
                &[("rs", 2), ("rdy", 2), ("n", 2), ("mm", 500), ("mmn", 1), ("ml", 1_000), ("mln", 1)],
                &[("mrx", 500_000)],
            ),
        ),
        (mixer("eu-west"), T0, fields(&[("rq:200", 60), ("so", 1)], &[])),
    ])
    .await
}

#[tokio::test]
async fn node_disk_per_mount_and_node_figures() {
    let router = router(platform_store().await);
    let body = query_body(T0, T0 + 2 * MIN, "node_disk_used_ratio", json!({}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["node-a eu-west /", "node-a eu-west /data", "node-b us-west /"]);
    assert_eq!(got[1]["tags"], json!({"node": "node-a", "region": "eu-west", "mount": "/data"}));
    assert_eq!(got[0]["unit"], "percentunit");
    assert_eq!(points(&got[0]), vec![(Some(0.25), T0), (Some(0.3), T0 + MIN)], "the highest sample by default");
    assert_eq!(points(&got[1]), vec![(Some(0.95), T0), (None, T0 + MIN)]);
    assert_eq!(points(&got[2]), vec![(Some(0.1), T0), (None, T0 + MIN)]);
    // One node's one mount, as a mean over a 2-minute step: (50 + 60) / (200 + 200).
    let body = query_body(
        T0,
        T0 + 2 * MIN,
        "node_disk_used_ratio",
        json!({"node": "node-a", "mount": "/", "stat": "mean"}),
        json!({"intervalMs": 120000}),
    );
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["node-a eu-west /"]);
    assert_eq!(points(&got[0]), vec![(Some(110.0 / 400.0), T0)]);
    // Filtered by region.
    let body = query_body(T0, T0 + MIN, "node_disk_used_ratio", json!({"region": "us-west"}), json!({}));
    assert_eq!(names(&query(&router, body).await), ["node-b us-west /"]);
    let body = query_body(
        T0,
        T0 + MIN,
        "node_disk_used_ratio",
        json!({}),
        json!({"filters": [{"key": "node", "operator": "!=", "value": "node-a"}]}),
    );
    assert_eq!(names(&query(&router, body).await), ["node-b us-west /"]);

    let body = query_body(T0, T0 + 2 * MIN, "node_net_rx_bytes_per_s", json!({"node": "node-a"}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["node-a eu-west"]);
    assert_eq!(got[0]["tags"], json!({"node": "node-a", "region": "eu-west"}));
    assert_eq!(points(&got[0]), vec![(Some(10_000.0), T0), (None, T0 + MIN)]);
    let body = query_body(T0, T0 + MIN, "node_net_tx_bytes_per_s", json!({"node": "node-a"}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(1_000.0), T0)]);
    let body = query_body(T0, T0 + MIN, "node_memory_ratio", json!({"node": "node-a"}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(0.25), T0)]);
    let body = query_body(T0, T0 + MIN, "node_cpu_ratio", json!({"node": "node-a", "stat": "max"}), json!({}));
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(0.3), T0)]);
    // As a table: a node column and a mount column.
    let body =
        query_body(T0, T0 + 2 * MIN, "node_disk_used_ratio", json!({"format": "table", "node": "node-a"}), json!({}));
    let got = query(&router, body).await;
    let columns: Vec<&str> =
        got[0]["columns"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Time", "node", "region", "mount", "node_disk_used_ratio"]);
    assert_eq!(
        got[0]["rows"],
        json!([[T0 + 2 * MIN, "node-a", "eu-west", "/", 0.3], [T0 + 2 * MIN, "node-a", "eu-west", "/data", 0.95]])
    );
}

#[tokio::test]
async fn pod_memory_restarts_and_readiness() {
    let router = router(platform_store().await);
    let body = query_body(T0, T0 + 2 * MIN, "pod_memory_limit_ratio", json!({}), json!({}));
    let got = query(&router, body).await;
    assert_eq!(names(&got), ["mixer.ai-mixer-1 eu-west"]);
    assert_eq!(got[0]["tags"], json!({"pod": "mixer.ai-mixer-1", "region": "eu-west"}));
    assert_eq!(points(&got[0]), vec![(Some(0.3), T0), (Some(0.5), T0 + MIN)]);
    let two = json!({"intervalMs": 120000});
    // Mean working set over mean limit: 400 / 1000; the highest sample: 0.5.
    let body = query_body(T0, T0 + 2 * MIN, "pod_memory_limit_ratio", json!({}), two.clone());
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(0.4), T0)]);
    let body = query_body(T0, T0 + 2 * MIN, "pod_memory_limit_ratio", json!({"stat": "max"}), two.clone());
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(0.5), T0)]);
    let body = query_body(T0, T0 + 2 * MIN, "pod_restarts", json!({"pod": "mixer.ai-mixer-1"}), two.clone());
    assert_eq!(points(&query(&router, body).await[0]), vec![(Some(3.0), T0)]);
    let body = query_body(T0, T0 + 3 * MIN, "pod_ready_ratio", json!({}), json!({}));
    assert_eq!(
        points(&query(&router, body).await[0]),
        vec![(Some(0.5), T0), (Some(1.0), T0 + MIN), (None, T0 + 2 * MIN)]
    );
    let body = query_body(T0, T0 + MIN, "pod_ready_ratio", json!({"pod": "mixer.other"}), json!({}));
    assert!(query(&router, body).await.is_empty(), "an unknown pod has no series");
}

#[tokio::test]
async fn bad_metrics_and_payloads_are_json_400s() {
    let router = router(platform_store().await);
    let cases = [
        (query_body(T0, T0 + MIN, "mixer_nope", json!({}), json!({})), "unknown_metric"),
        (query_body(T0, T0 + MIN, "node_cpu_ratio", json!({"stat": "p99"}), json!({})), "invalid_payload"),
        (query_body(T0, T0 + MIN, "node_cpu_ratio", json!({"node": {"a": 1}}), json!({})), "invalid_payload"),
        (query_body(T0, T0 + MIN, "pod_restarts", json!({"pod": [true]}), json!({})), "invalid_payload"),
        (query_body(T0, T0 + MIN, "mixer_genre_share", json!("{not json"), json!({})), "invalid_payload"),
        (
            query_body(
                T0,
                T0 + MIN,
                "mixer_request_rate",
                json!({}),
                json!({"filters": [{"key": "node", "operator": "=~", "value": "("}]}),
            ),
            "invalid_regex",
        ),
    ];
    for (body, code) in cases {
        let reply = post(&router, "/query", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.json);
        assert_error_body(&reply, code);
    }
}

#[tokio::test]
async fn catalog_offers_figure_metrics_nodes_and_pods() {
    let router = router(platform_store().await);
    let metrics = post(&router, "/metrics", "{}").await.json;
    let payload_names = |metric: &str| -> Vec<String> {
        let entry = metrics.as_array().unwrap().iter().find(|m| m["value"] == metric).unwrap();
        entry["payloads"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(payload_names("mixer_request_rate"), ["region", "format"]);
    assert_eq!(payload_names("mixer_genre_share"), ["region", "genre", "format"]);
    assert_eq!(payload_names("node_disk_used_ratio"), ["region", "node", "mount", "stat", "format"]);
    assert_eq!(payload_names("pod_memory_limit_ratio"), ["region", "pod", "stat", "format"]);
    assert_eq!(payload_names("latency_p95"), ["endpoint", "region", "format"]);
    for name in mixmon_query::FigureMetric::ALL.map(|m| m.name()) {
        assert!(metrics.as_array().unwrap().iter().any(|m| m["value"] == name), "{name} listed");
    }

    let options = |body: &'static str| {
        let router = router.clone();
        async move {
            let reply = post(&router, "/metric-payload-options", body).await;
            assert_eq!(reply.status, 200, "{}", reply.json);
            reply.json.as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(options(r#"{"name": "node", "metric": "node_cpu_ratio"}"#).await, ["node-a", "node-b"]);
    assert_eq!(options(r#"{"name": "pod"}"#).await, ["mixer.ai-mixer-1"]);
    assert_eq!(options(r#"{"name": "region", "metric": "mixer_request_rate"}"#).await, ["all", "eu-west"]);
    assert_eq!(options(r#"{"name": "region", "metric": "node_cpu_ratio"}"#).await, ["eu-west", "us-west"]);
    assert_eq!(options(r#"{"name": "stat"}"#).await, ["mean", "max"]);

    let variable = |payload: Value| {
        let router = router.clone();
        async move { post(&router, "/variable", &json!({"payload": payload}).to_string()).await.json }
    };
    assert_eq!(
        variable(json!({"target": "nodes"})).await,
        json!([{"__text": "node-a", "__value": "node-a"}, {"__text": "node-b", "__value": "node-b"}])
    );
    assert_eq!(
        variable(json!({"target": "nodes", "region": "us-west"})).await,
        json!([{"__text": "node-b", "__value": "node-b"}])
    );
    assert_eq!(variable(json!("pods")).await, json!([{"__text": "mixer.ai-mixer-1", "__value": "mixer.ai-mixer-1"}]));

    assert_eq!(
        variable(json!({"target": "regions"})).await,
        json!([{"__text": "eu-west", "__value": "eu-west"}, {"__text": "us-west", "__value": "us-west"}]),
        "regions of figures are offered too"
    );
    let keys = post(&router, "/tag-keys", "{}").await.json;
    assert!(keys.as_array().unwrap().iter().any(|k| k["text"] == "node"));
    assert!(keys.as_array().unwrap().iter().any(|k| k["text"] == "pod"));
    assert_eq!(
        post(&router, "/tag-values", r#"{"key": "node"}"#).await.json,
        json!([{"text": "node-a"}, {"text": "node-b"}])
    );
    let body = r#"{"key": "node", "filters": [{"key": "region", "operator": "=", "value": "us-west"}]}"#;
    assert_eq!(post(&router, "/tag-values", body).await.json, json!([{"text": "node-b"}]));
    assert_eq!(post(&router, "/tag-values", r#"{"key": "pod"}"#).await.json, json!([{"text": "mixer.ai-mixer-1"}]));
    assert_eq!(
        post(&router, "/tag-values", r#"{"key": "region"}"#).await.json,
        json!([{"text": "eu-west"}, {"text": "us-west"}])
    );
}

#[tokio::test]
async fn genre_and_mount_options_come_from_the_last_day() {
    let now = chrono::Utc::now().timestamp_millis();
    let store = store_with_figures(vec![
        (mixer("eu-west"), now, fields(&[("g:rock", 3), ("g:ambient", 1)], &[])),
        (node("eu-west", "node-a"), now, fields(&[("du:/", 1), ("dt:/", 2)], &[("dx:/var", 10)])),
        // Older than a day: not offered.
        (mixer("eu-west"), now - 3 * 24 * 60 * MIN, fields(&[("g:polka", 3)], &[])),
    ])
    .await;
    let router = router(store);
    let values = |reply: Value| -> Vec<String> {
        reply.as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        values(post(&router, "/metric-payload-options", r#"{"name": "genre"}"#).await.json),
        ["ambient", "rock"]
    );
    assert_eq!(values(post(&router, "/metric-payload-options", r#"{"name": "mount"}"#).await.json), ["/", "/var"]);
    let reply = post(&router, "/variable", r#"{"payload": {"target": "genres"}}"#).await;
    assert_eq!(reply.json, json!([{"__text": "ambient", "__value": "ambient"}, {"__text": "rock", "__value": "rock"}]));
}

#[tokio::test]
async fn mixer_status_summarises_the_last_five_minutes() {
    let store = mixer_store().await;
    // Minutes T0 - 2 .. T0 + 2 are recent; 4.5 minutes of them have passed.
    let now = T0 + 2 * MIN + 30_000;
    let rows = mixmon_query::mixer_snapshot(store.as_ref(), now).await.unwrap();
    let window_ms = 270_000.0;
    let row = |region: &str, requests: f64, errors: f64, p95: f64| MixerStatus {
        region: region.to_string(),
        request_rate_5m: Some(requests * 1000.0 / window_ms),
        error_rate_5m: Some(errors / requests),
        p95_ms_5m: Some(p95),
    };
    assert_eq!(
        rows,
        vec![
            row("all", 2_100.0, 150.0, within(0.05, 0.1, 0.95 * 720.0, 400.0, 320.0)),
            row("eu-west", 1_860.0, 90.0, within(0.05, 0.1, 0.95 * 600.0, 400.0, 200.0)),
            row("us-west", 240.0, 60.0, within(0.0, 0.1, 0.95 * 120.0, 0.0, 120.0)),
        ]
    );
    // Long ago: regions listed, nothing to report, nulls not zeros.
    let later = mixmon_query::mixer_snapshot(store.as_ref(), T0 + 60 * MIN).await.unwrap();
    assert_eq!(later.len(), 3);
    assert!(later.iter().all(|r| r.request_rate_5m.is_none() && r.error_rate_5m.is_none() && r.p95_ms_5m.is_none()));
    let reply = call(&router(store), "GET", "/api/v1/status/mixer", "", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json[0],
        json!({"region": "all", "request_rate_5m": null, "error_rate_5m": null, "p95_ms_5m": null})
    );
}
