//! The simulated nodes in the Kubernetes API: `Node` objects the real `kube` client reads, the
//! kubelet's stats summary through the node proxy with moving figures, and node faults that
//! pin disk, CPU and memory.

mod support;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use mixmon_mixer_sim::{NodeFault, SimHandle};
use serde_json::Value;
use support::{eventually, get, request, small_fleet};

fn client(sim: &SimHandle) -> kube::Client {
    let url: http::Uri = format!("http://{}/k8s", sim.addresses().admin).parse().expect("a valid URL");
    kube::Client::try_from(kube::Config::new(url)).expect("a client")
}

async fn summary(sim: &SimHandle, node: &str) -> Value {
    let reply = get(sim.addresses().admin, &format!("/k8s/api/v1/nodes/{node}/proxy/stats/summary")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn ratio(stats: &Value, used: &str, total: &str) -> f64 {
    stats[used].as_f64().expect("a number") / stats[total].as_f64().expect("a number")
}

fn condition(node: &Node, kind: &str) -> Option<String> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

#[tokio::test]
async fn nodes_read_as_a_cluster_s_with_capacity_and_region() {
    let sim = small_fleet(None).await;
    let nodes: Api<Node> = Api::all(client(&sim));
    let list = nodes.list(&ListParams::default()).await.expect("nodes listed");
    let names: Vec<String> = list.items.iter().filter_map(|n| n.metadata.name.clone()).collect();
    // Regions a and b, three nodes each (the default), whether or not a pod runs there.
    assert_eq!(names, ["node-a-0", "node-a-1", "node-a-2", "node-b-0", "node-b-1", "node-b-2"]);
    let node = nodes.get("node-b-1").await.expect("a node");
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("topology.kubernetes.io/region").map(String::as_str), Some("b"));
    let capacity = node.status.as_ref().and_then(|s| s.capacity.clone()).unwrap_or_default();
    assert_eq!(capacity.get("cpu").map(|q| q.0.as_str()), Some("8"));
    assert_eq!(capacity.get("memory").map(|q| q.0.as_str()), Some("32Gi"));
    assert_eq!(condition(&node, "Ready").as_deref(), Some("True"));
    assert_eq!(condition(&node, "DiskPressure").as_deref(), Some("False"));
    let missing = nodes.get("node-z-0").await.expect_err("no such node");
    assert!(matches!(missing, kube::Error::Api(ref status) if status.code == 404), "{missing:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_kubelet_summary_moves_with_the_node_and_lists_its_pods() {
    let sim = small_fleet(None).await;
    let first = summary(&sim, "node-b-0").await;
    let node = &first["node"];
    assert_eq!(node["nodeName"], "node-b-0");
    let disk = ratio(&node["fs"], "usedBytes", "capacityBytes");
    assert!((0.4..=0.6).contains(&disk), "root file system at {disk}");
    assert_eq!(node["fs"], node["runtime"]["imageFs"], "images live on the root file system");
    assert!(node["cpu"]["usageNanoCores"].as_u64().is_some_and(|n| n > 0 && n <= 8_000_000_000));
    let memory = &node["memory"];
    let working_set = memory["workingSetBytes"].as_u64().expect("working set");
    let available = memory["availableBytes"].as_u64().expect("available");
    assert_eq!(working_set + available, 32 << 30, "available is the capacity less the working set");
    assert!(memory["usageBytes"].as_u64().is_some_and(|u| u >= working_set));
    let pods: Vec<&str> =
        first["pods"].as_array().into_iter().flatten().filter_map(|p| p["podRef"]["name"].as_str()).collect();
    assert_eq!(pods, ["mixer-b-0"], "pod i of 3 runs on node i % 3");
    assert!(first["pods"][0]["memory"]["workingSetBytes"].as_u64().is_some_and(|m| m > 0));

    // Network counters are cumulative and grow as the pods stream.
    let rx = |summary: &Value| summary["node"]["network"]["interfaces"][0]["rxBytes"].as_u64();
    let before = rx(&first).expect("rx bytes");
    assert_eq!(first["node"]["network"]["interfaces"][0]["name"], "eth0");
    eventually("the node to receive more bytes", || async {
        let now = summary(&sim, "node-b-0").await;
        rx(&now).filter(|after| *after > before).map(drop)
    })
    .await;

    let missing = get(sim.addresses().admin, "/k8s/api/v1/nodes/node-z-0/proxy/stats/summary").await;
    assert_eq!((missing.status, missing.json()["kind"].as_str()), (404, Some("Status")));
    sim.shutdown().await;
}

#[tokio::test]
async fn node_faults_pin_disk_cpu_and_memory() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let headers = [("Content-Type", "application/json")];
    let body = r#"{"disk_used_ratio": 0.95, "cpu_ratio": 0.5, "memory_ratio": 0.25}"#;
    let set = request(admin, "PUT", "/faults/nodes/node-a-1", &headers, Some(body)).await.expect("HTTP exchange");
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["node"], "node-a-1");
    let node = &summary(&sim, "node-a-1").await["node"];
    assert!((ratio(&node["fs"], "usedBytes", "capacityBytes") - 0.95).abs() < 1e-9);
    assert_eq!(node["cpu"]["usageNanoCores"], 4_000_000_000_u64);
    assert_eq!(node["memory"]["workingSetBytes"], 8_u64 << 30);
    // Past the kubelet's 10 % threshold: the node reports disk pressure.
    let nodes: Api<Node> = Api::all(client(&sim));
    assert_eq!(condition(&nodes.get("node-a-1").await.expect("a node"), "DiskPressure").as_deref(), Some("True"));
    let listed = get(admin, "/faults").await.json();
    assert_eq!(listed["nodes"]["node-a-1"]["disk_used_ratio"], 0.95);
    // The other nodes move freely.
    let other = ratio(&summary(&sim, "node-a-0").await["node"]["fs"], "usedBytes", "capacityBytes");
    assert!((0.4..=0.6).contains(&other));

    for (path, body, status) in [
        ("/faults/nodes/node-a-1", r#"{"disk_used_ratio": 1.5}"#, 400),
        ("/faults/nodes/node-a-1", r#"{"disk": 0.9}"#, 400),
        ("/faults/nodes/node-z-9", r#"{"disk_used_ratio": 0.9}"#, 404),
    ] {
        let reply = request(admin, "PUT", path, &headers, Some(body)).await.expect("HTTP exchange");
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
        assert!(reply.json()["message"].is_string());
    }
    assert_eq!(sim.all_faults().nodes.get("node-a-1").and_then(|f| f.disk_used_ratio), Some(0.95), "unchanged");
    sim.set_node_fault("node-a-1", NodeFault { disk_used_ratio: Some(0.9), ..NodeFault::default() }).expect("valid");
    let pinned = ratio(&summary(&sim, "node-a-1").await["node"]["fs"], "usedBytes", "capacityBytes");
    assert!((pinned - 0.9).abs() < 1e-9);
    assert_eq!(request(admin, "DELETE", "/faults", &[], None).await.expect("HTTP exchange").status, 204);
    let freed = ratio(&summary(&sim, "node-a-1").await["node"]["fs"], "usedBytes", "capacityBytes");
    assert!((0.4..=0.6).contains(&freed), "{freed}");
    sim.shutdown().await;
}
