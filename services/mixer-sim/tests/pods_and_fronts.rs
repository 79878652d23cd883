//! Pods and fronts answer `/health`; fronts spread requests round-robin over their pool.

mod support;

use std::collections::BTreeSet;

use support::{endpoint, get, pod_addr, small_fleet};

#[tokio::test]
async fn every_pod_answers_health_with_its_identity() {
    let sim = small_fleet(None).await;
    assert_eq!(sim.addresses().pods.len(), 5);
    for pod in &sim.addresses().pods {
        let reply = get(pod.addr, "/health").await;
        assert_eq!(reply.status, 200, "{}", pod.name);
        let body = reply.json();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["pod"], pod.name.as_str());
        assert_eq!(body["region"], pod.region.as_str());
    }
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/nope").await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn fronts_visit_every_pod_of_their_pool() {
    let sim = small_fleet(None).await;
    let names: BTreeSet<&str> = sim.addresses().endpoints.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["a", "b", "edge", "api"]));
    for (front, pool) in [
        ("a", vec!["mixer-a-0", "mixer-a-1"]),
        ("b", vec!["mixer-b-0", "mixer-b-1", "mixer-b-2"]),
        ("edge", vec!["mixer-a-0", "mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]),
        ("api", vec!["mixer-a-0", "mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]),
    ] {
        let addr = endpoint(&sim, front);
        let mut seen = Vec::new();
        for _ in 0..pool.len() {
            let reply = get(addr, "/health").await;
            assert_eq!(reply.status, 200);
            let pod = reply.header("x-mixer-pod").expect("front names the pod").to_owned();
            assert_eq!(reply.json()["pod"], pod.as_str(), "body and header agree");
            seen.push(pod);
        }
        seen.sort();
        assert_eq!(seen, pool, "one round of {front} visits each pod once");
    }
    sim.shutdown().await;
}
