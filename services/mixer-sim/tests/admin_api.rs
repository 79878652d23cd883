//! The admin HTTP API: listing, fault changes with validation, restart, bearer auth.

mod support;

use serde_json::json;
use support::{get, pod_addr, request, small_fleet, Reply};

async fn call(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    request(addr, method, path, &headers, body).await.expect("HTTP exchange")
}

#[tokio::test]
async fn lists_pods_and_endpoints() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let pods = call(admin, "GET", "/pods", None, None).await;
    assert_eq!(pods.status, 200);
    assert_eq!(pods.json(), serde_json::to_value(&sim.addresses().pods).expect("serializable"));
    assert_eq!(
        pods.json()[4],
        json!({
            "name": "mixer-b-2",
            "region": "b",
            "addr": pod_addr(&sim, "mixer-b-2").to_string(),
            "node": "node-b-2"
        })
    );
    let scrapes = call(admin, "GET", "/scrapes", None, None).await;
    assert_eq!(scrapes.json()["mixer-b-2"], 0);
    assert_eq!(get(pod_addr(&sim, "mixer-b-2"), "/metrics").await.status, 200);
    let scrapes = call(admin, "GET", "/scrapes", None, None).await;
    assert_eq!((scrapes.json()["mixer-b-2"].as_u64(), scrapes.json()["mixer-a-0"].as_u64()), (Some(1), Some(0)));
    assert_eq!(sim.scrapes().get("mixer-b-2"), Some(&1));
    let endpoints = call(admin, "GET", "/endpoints", None, None).await;
    assert_eq!(endpoints.json(), serde_json::to_value(&sim.addresses().endpoints).expect("serializable"));
    sim.shutdown().await;
}

#[tokio::test]
async fn sets_lists_and_clears_faults() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let set = call(admin, "PUT", "/faults/pods/mixer-a-0", None, Some(r#"{"down": true}"#)).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/health").await.status, 503);
    let region = call(admin, "PUT", "/faults/regions/b", None, Some(r#"{"latency_ms": 5, "peak_db": -1.5}"#)).await;
    assert_eq!(region.status, 200, "{}", region.body);
    assert_eq!(region.json()["pods"], json!(["mixer-b-0", "mixer-b-1", "mixer-b-2"]));
    let faults = call(admin, "GET", "/faults", None, None).await.json();
    assert_eq!(faults["pods"]["mixer-a-0"]["down"], true);
    assert_eq!(faults["pods"]["mixer-b-1"]["latency_ms"], 5);
    assert!(faults["pods"].get("mixer-a-1").is_none());
    let scrape = get(pod_addr(&sim, "mixer-b-1"), "/metrics").await.body;
    assert!(scrape.contains("ai_mixer_audio_peak_db{region=\"b\"} -1.50\n"), "{scrape}");
    assert_eq!(call(admin, "DELETE", "/faults", None, None).await.status, 204);
    let none = json!({"pods": {}, "endpoints": {}, "nodes": {}, "clients": {}});
    assert_eq!(call(admin, "GET", "/faults", None, None).await.json(), none);
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/health").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn refuses_bad_faults_and_unknown_names() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    for (body, hint) in [
        (r#"{"error_share": 1.5}"#, "error_share"),
        (r#"{"error_share": -0.5}"#, "error_share"),
        (r#"{"down_schedule": {"period_s": 0, "down_s": 0}}"#, "period_s"),
        (r#"{"down_schedule": {"period_s": 60, "down_s": 61}}"#, "down_s"),
        (r#"{"error_share": NaN}"#, "invalid fault body"),
        (r#"{"down": "yes"}"#, "invalid fault body"),
        (r#"{"dwon": true}"#, "unknown field"),
        (r#"{"down": tr"#, "invalid fault body"),
        ("", "invalid fault body"),
        ("\u{0}\u{1}garbage", "invalid fault body"),
    ] {
        let reply = call(admin, "PUT", "/faults/pods/mixer-a-0", None, Some(body)).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(hint), "{body}: {message}");
    }
    assert!(sim.faults().is_empty(), "nothing invalid was stored");
    let unknown_pod = call(admin, "PUT", "/faults/pods/mixer-z-9", None, Some("{}")).await;
    assert_eq!(unknown_pod.status, 404);
    assert!(unknown_pod.json()["message"].is_string());
    assert_eq!(call(admin, "PUT", "/faults/regions/zz", None, Some("{}")).await.status, 404);
    assert_eq!(call(admin, "POST", "/pods/mixer-z-9/restart", None, None).await.status, 404);
    assert_eq!(call(admin, "POST", "/pods/mixer-a-0/restart", None, None).await.status, 204);
    sim.shutdown().await;
}

#[tokio::test]
async fn endpoint_node_and_client_faults_are_set_listed_validated_and_cleared() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let set =
        call(admin, "PUT", "/faults/endpoints/edge", None, Some(r#"{"latency_ms": 20, "error_share": 0.5}"#)).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        set.json(),
        json!({"endpoint": "edge", "fault": {"down": false, "hang": false, "latency_ms": 20, "error_share": 0.5}})
    );
    let cut = call(admin, "PUT", "/faults/clients/127.0.0.3", None, Some(r#"{"cut": true}"#)).await;
    assert_eq!(cut.json(), json!({"client": "127.0.0.3", "cut": {"cut": true, "mode": "blackhole"}}));
    let mapped =
        call(admin, "PUT", "/faults/clients/::ffff:127.0.0.4", None, Some(r#"{"cut": true, "mode": "reset"}"#)).await;
    assert_eq!(mapped.json()["client"], "127.0.0.4", "an IPv4-mapped address is its IPv4 address");
    let node = call(admin, "PUT", "/faults/nodes/node-b-2", None, Some(r#"{"cpu_ratio": 0.9}"#)).await;
    assert_eq!(node.status, 200, "{}", node.body);
    let pod = call(admin, "PUT", "/faults/regions/a", None, Some(r#"{"traffic_factor": 0.01}"#)).await;
    assert_eq!(pod.status, 200, "{}", pod.body);

    let faults = call(admin, "GET", "/faults", None, None).await.json();
    assert_eq!(
        faults["endpoints"],
        json!({"edge": {"down": false, "hang": false, "latency_ms": 20, "error_share": 0.5}})
    );
    assert_eq!(faults["nodes"], json!({"node-b-2": {"cpu_ratio": 0.9}}));
    assert_eq!(
        faults["clients"],
        json!({"127.0.0.3": {"cut": true, "mode": "blackhole"}, "127.0.0.4": {"cut": true, "mode": "reset"}})
    );
    assert_eq!(faults["pods"]["mixer-a-1"]["traffic_factor"], 0.01);
    let uncut = call(admin, "PUT", "/faults/clients/127.0.0.4", None, Some(r#"{"cut": false}"#)).await;
    assert_eq!(uncut.status, 200);
    assert!(call(admin, "GET", "/faults", None, None).await.json()["clients"].get("127.0.0.4").is_none());

    for (path, body, status, hint) in [
        ("/faults/endpoints/edge", r#"{"error_share": 2}"#, 400, "error_share"),
        ("/faults/endpoints/edge", r#"{"latency_ms": 99999999}"#, 400, "latency_ms"),
        ("/faults/endpoints/edge", r#"{"traffic_factor": 1}"#, 400, "unknown field"),
        ("/faults/endpoints/nope", "{}", 404, "unknown endpoint"),
        ("/faults/clients/127.0.0", r#"{"cut": true}"#, 400, "not an IP address"),
        ("/faults/clients/127.0.0.5", r#"{"mode": "reset"}"#, 400, "cut"),
        ("/faults/clients/127.0.0.5", r#"{"cut": true, "mode": "drop"}"#, 400, "invalid fault body"),
        ("/faults/regions/b", r#"{"traffic_factor": 11}"#, 400, "traffic_factor"),
        ("/faults/nodes/node-b-2", r#"{"memory_ratio": -1}"#, 400, "memory_ratio"),
    ] {
        let reply = call(admin, "PUT", path, None, Some(body)).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
        let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(hint), "{path} {body}: {message}");
    }
    assert_eq!(call(admin, "DELETE", "/faults", None, None).await.status, 204);
    let none = json!({"pods": {}, "endpoints": {}, "nodes": {}, "clients": {}});
    assert_eq!(call(admin, "GET", "/faults", None, None).await.json(), none);
    sim.shutdown().await;
}

#[tokio::test]
async fn token_guards_every_admin_route() {
    let sim = small_fleet(Some("s3cret")).await;
    let admin = sim.addresses().admin;
    for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
        for (method, path, body) in [
            ("GET", "/pods", None),
            ("GET", "/faults", None),
            ("PUT", "/faults/pods/mixer-a-0", Some(r#"{"down": true}"#)),
            ("PUT", "/faults/endpoints/a", Some(r#"{"down": true}"#)),
            ("PUT", "/faults/nodes/node-a-0", Some(r#"{"disk_used_ratio": 0.9}"#)),
            ("PUT", "/faults/clients/127.0.0.3", Some(r#"{"cut": true}"#)),
            ("GET", "/k8s/api/v1/nodes/node-a-0/proxy/stats/summary", None),
            ("DELETE", "/faults", None),
            ("POST", "/pods/mixer-a-0/restart", None),
        ] {
            let reply = call(admin, method, path, token, body).await;
            assert_eq!(reply.status, 403, "{method} {path} with {token:?}");
        }
    }
    assert_eq!(sim.all_faults(), mixmon_mixer_sim::FaultList::default(), "refused calls changed nothing");
    assert_eq!(call(admin, "GET", "/pods", Some("s3cret"), None).await.status, 200);
    let set = call(admin, "PUT", "/faults/pods/mixer-a-0", Some("s3cret"), Some(r#"{"down": true}"#)).await;
    assert_eq!(set.status, 200);
    // Pods and fronts stay open: only the admin API is guarded.
    assert_eq!(get(pod_addr(&sim, "mixer-a-1"), "/health").await.status, 200);
    sim.shutdown().await;
}
