//! The figure metrics over Redis answer exactly what they answer over the in-memory store:
//! minute and hourly reads, every metric, tables, and the subject lists.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use mixmon_model::{Minute, ProberId, RollupDelta};
use mixmon_query::{app, FigureMetric, QueryOptions};
use mixmon_store::{BatchId, MemoryStore, RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::RedisServer;
use serde_json::{json, Value};

fn delta_for(minutes: std::ops::Range<i64>) -> RollupDelta {
    let mut delta = RollupDelta::default();
    for m in minutes {
        let v = |k: i64| (m * 31 + k * 17) % 97 + 1;
        for (i, region) in ["eu-west", "us-west"].into_iter().enumerate() {
            let i = i as i64;
            delta.figures.insert(
                (mixer(region), Minute(m)),
                fields(
                    &[
                        ("rq:200", 100 * v(i)),
                        ("rq:503", v(i + 1) % 7),
                        ("hb:0.01", v(i + 2)),
                        ("hb:0.05", v(i + 3)),
                        ("hb:0.25", v(i + 4)),
                        ("hb:+Inf", v(i + 5) % 3),
                        ("hc", v(i + 2) + v(i + 3) + v(i + 4)),
                        ("hs", 1_000 * v(i + 6)),
                        ("st", 60_000 * v(i + 7)),
                        ("stw", 60_000),
                        ("pks", -3_000 * v(i)),
                        ("pkn", v(i)),
                        ("lus", -14_000),
                        ("lun", 1),
                        ("g:rock", v(i + 8)),
                        ("g:jazz", v(i + 9) % 5),
                        ("so", 4),
                        ("sf", v(i) % 2),
                    ],
                    &[("pkx", -100 * v(i + 10))],
                ),
            );
        }
        if m % 3 != 0 {
            delta.figures.insert(
                (node("eu-west", "node-a"), Minute(m)),
                fields(
                    &[
                        ("cpu", 10_000 * v(1)),
                        ("cpun", 1),
                        ("mu", v(2)),
                        ("mt", 100),
                        ("mn", 1),
                        ("rx", 1_000 * v(3)),
                        ("tx", 500 * v(4)),
                        ("nw", 60_000),
                        ("du:/", v(5)),
                        ("dt:/", 100),
                        ("dn:/", 1),
                        ("du:/data", v(6)),
                        ("dt:/data", 100),
                        ("dn:/data", 1),
                    ],
                    &[("cpux", 10_000 * v(7)), ("dx:/", 10_000 * v(5)), ("dx:/data", 10_000 * v(6))],
                ),
            );
        }
        delta.figures.insert(
            (pod("us-west", "mixer", "ai-mixer-1"), Minute(m)),
            fields(
                &[("rs", v(1) % 2), ("rdy", 1), ("n", 2), ("mm", v(2)), ("mmn", 1), ("ml", 100), ("mln", 1)],
                &[("mrx", 10_000 * v(2))],
            ),
        );
    }
    delta
}

#[tokio::test]
async fn redis_answers_equal_memory_answers_for_figures() {
    let server = RedisServer::start().unwrap();
    let redis: Arc<dyn Store> = Arc::new(RedisStore::connect(RedisStoreConfig::new(server.url())).await.unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let now = Minute::containing(now_ms).0;
    let start = now - 150;
    let id = BatchId { prober: ProberId::new("p").unwrap(), epoch: 1, seq: 1 };
    let delta = delta_for(start..now);
    redis.apply_batch(&id, &delta).await.unwrap();
    memory.apply_batch(&id, &delta).await.unwrap();
    let (via_redis, via_memory) =
        (app(redis.clone(), QueryOptions::default()), app(memory.clone(), QueryOptions::default()));
    for metric in FigureMetric::ALL {
        for (interval, format) in
            [(60_000, "time_series"), (300_000, "time_series"), (3_600_000, "time_series"), (60_000, "table")]
        {
            let body = json!({
                "range": {"from": iso(start * MIN + 17_000), "to": iso((now + 1) * MIN)},
                "intervalMs": interval,
                "targets": [{"refId": "A", "target": metric.name(), "payload": {"format": format}}]
            })
            .to_string();
            let (a, b) = (post(&via_redis, "/query", &body).await, post(&via_memory, "/query", &body).await);
            assert_eq!(a.status, 200, "{}", a.json);
            assert_eq!(a.json, b.json, "{} {interval} {format}", metric.name());
            let elements = a.json.as_array().unwrap();
            assert!(!elements.is_empty(), "{} has series", metric.name());
            let values: Vec<&Value> = elements
                .iter()
                .flat_map(|e| match e["datapoints"].as_array() {
                    Some(points) => points.iter().map(|p| &p[0]).collect::<Vec<_>>(),
                    None => e["rows"].as_array().unwrap().iter().filter_map(|r| r.as_array()?.last()).collect(),
                })
                .collect();
            assert!(values.iter().any(|v| v.is_number()), "{} {interval} {format} has values", metric.name());
        }
    }
    for variable in ["nodes", "pods", "genres", "mounts"] {
        let body = json!({"payload": {"target": variable}}).to_string();
        let (a, b) = (post(&via_redis, "/variable", &body).await, post(&via_memory, "/variable", &body).await);
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(a.json, b.json, "{variable}");
        assert!(!a.json.as_array().unwrap().is_empty(), "{variable}");
    }
    let (a, b) = (
        mixmon_query::mixer_snapshot(redis.as_ref(), now_ms).await.unwrap(),
        mixmon_query::mixer_snapshot(memory.as_ref(), now_ms).await.unwrap(),
    );
    assert_eq!(a, b);
    assert!(a.iter().all(|row| row.request_rate_5m.is_some()));
}
