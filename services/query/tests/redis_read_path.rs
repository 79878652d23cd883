//! The Redis read path (hour blocks, the store's block cache and the query service's folded
//! hour cache) must answer exactly what the plain in-memory path answers, also after new data
//! lands in an hour that was already read and cached.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use mixmon_model::{Minute, ProberId, RollupDelta};
use mixmon_query::{app, QueryOptions};
use mixmon_store::{BatchId, MemoryStore, RedisStore, RedisStoreConfig, Store};
use mixmon_testkit::RedisServer;
use serde_json::{json, Value};

async fn answer(router: &axum::Router, body: &str) -> Vec<Value> {
    let reply = post(router, "/query", body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json.as_array().unwrap().clone()
}

fn delta_for(minutes: std::ops::Range<i64>, salt: i64) -> RollupDelta {
    let mut delta = RollupDelta::default();
    for m in minutes {
        for (check, region) in [("api", "eu-west"), ("api", "us-west"), ("edge", "eu-west")] {
            let latencies: Vec<f64> = (0..3).map(|i| 5.0 + ((m * 31 + i * 17 + salt) % 211) as f64).collect();
            let mut r = rollup(&latencies, u64::from((m + salt) % 13 == 0));
            r.phases
                .add(&mixmon_model::PhaseTimings { first_byte_us: (m % 50) as u64 * 100 + 1, ..Default::default() });
            delta.add_rollup(key(check, region), Minute(m), &r);
        }
    }
    delta
}

#[tokio::test]
async fn redis_answers_equal_memory_answers_before_and_after_new_data() {
    let server = RedisServer::start().unwrap();
    let redis: Arc<dyn Store> = Arc::new(RedisStore::connect(RedisStoreConfig::new(server.url())).await.unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let now = Minute::containing(now_ms).0;
    let start = now - 30 * 60;
    let prober = ProberId::new("p").unwrap();
    let apply = |seq: u64, delta: RollupDelta| {
        let (redis, memory, prober) = (redis.clone(), memory.clone(), prober.clone());
        async move {
            let id = BatchId { prober, epoch: 1, seq };
            redis.apply_batch(&id, &delta).await.unwrap();
            memory.apply_batch(&id, &delta).await.unwrap();
        }
    };
    apply(1, delta_for(start..now - 5, 0)).await;
    let (via_redis, via_memory) =
        (app(redis.clone(), QueryOptions::default()), app(memory.clone(), QueryOptions::default()));
    let range = json!({"range": {"from": iso(start * MIN), "to": iso((now + 1) * MIN)}});
    let mut bodies = Vec::new();
    for (target, payload, interval) in [
        ("latency_p95", json!({}), 60_000),
        ("latency_p99", json!({"region": "all"}), 120_000),
        ("success_rate", json!({}), 300_000),
        ("uptime", json!({"region": ["all", "eu-west"]}), 60_000),
        ("phase_first_byte_ms", json!({}), 180_000),
        ("failures", json!({"format": "table"}), 60_000),
    ] {
        let mut body = range.clone();
        body["intervalMs"] = json!(interval);
        body["targets"] = json!([{"refId": "A", "target": target, "payload": payload}]);
        bodies.push(body.to_string());
    }
    for round in 0..3 {
        for body in &bodies {
            let got = answer(&via_redis, body).await;
            assert!(!got.is_empty(), "{body}");
            let has_values = got.iter().all(|element| match element.get("datapoints") {
                Some(points) => points.as_array().unwrap().iter().any(|p| p[0].is_number()),
                None => element["rows"].as_array().unwrap().iter().all(|row| row[3].is_number()),
            });
            assert!(has_values, "{body}");
            assert_eq!(got, answer(&via_memory, body).await, "round {round}: {body}");
        }
        // New data in hours already read and cached, then read again.
        apply(2 + round, delta_for(now - 40..now + 1, round as i64 + 1)).await;
    }
}
