//! Any body, of any shape and any values, to every admin route that reads one: never a panic,
//! never a 5xx, always a JSON answer; a body past the limit is refused with 413 before it is
//! read whole. A property test over a running simulator: `PROPTEST_CASES=N` runs it longer.

mod support;

use proptest::prelude::*;
use serde_json::{Map, Value};
use support::{request, small_fleet, Reply};

const ROUTES: &[&str] = &[
    "/faults/pods/mixer-a-0",
    "/faults/regions/b",
    "/faults/endpoints/edge",
    "/faults/nodes/node-a-0",
    "/faults/clients/127.0.0.9",
    "/faults/pods/no-such-pod",
    "/faults/clients/not-an-ip",
];

/// The names the fault bodies use, so generated bodies reach the validation.
const KEYS: &[&str] = &[
    "down",
    "hang",
    "latency_ms",
    "error_share",
    "peak_db",
    "down_schedule",
    "period_s",
    "down_s",
    "memory_pressure",
    "traffic_factor",
    "disk_used_ratio",
    "cpu_ratio",
    "memory_ratio",
    "cut",
    "mode",
    "fronts",
    "blackhole",
    "reset",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![Just(0.0), Just(1.0), Just(-1.0), Just(1e308), Just(0.5)].prop_map(Value::from),
        "[a-z_.0-9-]{0,12}".prop_map(Value::from),
        prop::sample::select(KEYS).prop_map(Value::from),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>()
            )),
        ]
    })
}

fn answer_problem(reply: &Reply) -> Option<String> {
    if reply.status >= 500 {
        return Some(format!("{} {}", reply.status, reply.body));
    }
    if serde_json::from_str::<Value>(&reply.body).is_err() {
        return Some(format!("not JSON: {} {}", reply.status, reply.body));
    }
    None
}

#[test]
fn any_body_to_any_admin_route_is_answered_without_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sim = runtime.block_on(small_fleet(None));
    let admin = sim.addresses().admin;
    let headers = [("Content-Type", "application/json")];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
    let strategy = (prop::sample::select(ROUTES), body(), any::<bool>());
    let outcome = runner.run(&strategy, |(route, body, raw)| {
        // Half the bodies are cut short: malformed JSON is a case too.
        let mut text = body.to_string();
        if raw && text.len() > 1 {
            text.truncate(text.len() / 2);
        }
        let reply = runtime.block_on(request(admin, "PUT", route, &headers, Some(&text))).expect("HTTP exchange");
        prop_assert!(answer_problem(&reply).is_none(), "PUT {route} {text}: {:?}", answer_problem(&reply));
        Ok(())
    });
    // The simulator keeps serving after all of it.
    let pods = runtime.block_on(request(admin, "GET", "/pods", &[], None)).expect("HTTP exchange");
    runtime.block_on(sim.shutdown());
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    assert_eq!(pods.status, 200);
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_with_413() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let huge = format!("{{\"down\": true, \"pad\": \"{}\"}}", "x".repeat(1 << 20));
    let headers = [("Content-Type", "application/json")];
    let reply = request(admin, "PUT", "/faults/pods/mixer-a-0", &headers, Some(&huge)).await.expect("HTTP exchange");
    assert_eq!(reply.status, 413, "{}", reply.body);
    // A small body still works.
    let reply =
        request(admin, "PUT", "/faults/pods/mixer-a-0", &headers, Some(r#"{"down": true}"#)).await.expect("exchange");
    assert_eq!(reply.status, 200, "{}", reply.body);
    sim.shutdown().await;
}
