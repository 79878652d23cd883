//! The simulator's read-only Kubernetes API under `/k8s`: listed with the real `kube` client
//! (shapes a real client accepts), selectors filter, a restart counts and flips readiness,
//! memory pressure shows in metrics.k8s.io, and the admin token guards it.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use mixmon_mixer_sim::{Fault, SimConfig, SimHandle, METRICS_PORT_NAME, NAMESPACE};
use serde_json::Value;
use support::{eventually, get, pod_addr, request, small_fleet};

/// 512Mi in KiB: the simulated pods' memory limit.
const LIMIT_KI: f64 = 512.0 * 1024.0;

fn client(sim: &SimHandle) -> kube::Client {
    let url: http::Uri = format!("http://{}/k8s", sim.addresses().admin).parse().expect("a valid URL");
    kube::Client::try_from(kube::Config::new(url)).expect("a client")
}

fn ready(pod: &Pod) -> Option<bool> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
}

fn restarts(pod: &Pod) -> Option<i32> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first().map(|s| s.restart_count)
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

#[tokio::test]
async fn kube_client_lists_pods_by_node_and_label() {
    let sim = small_fleet(None).await;
    let client = client(&sim);
    let all: Api<Pod> = Api::all(client.clone());
    let list = all.list(&ListParams::default().labels("app=ai-mixer")).await.expect("pods listed");
    assert_eq!(names(&list.items), ["mixer-a-0", "mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]);
    assert!(list.metadata.resource_version.is_some_and(|v| !v.is_empty()));

    // Region b's 3 pods over 3 nodes; region a's 2 over 2 (default 3 nodes per region).
    let on_node = ListParams::default().labels("app=ai-mixer").fields("spec.nodeName=node-b-1");
    let namespaced: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mine = namespaced.list(&on_node).await.expect("pods listed");
    assert_eq!(names(&mine.items), ["mixer-b-1"]);
    let pod = &mine.items[0];
    assert_eq!(pod.metadata.namespace.as_deref(), Some(NAMESPACE));
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("region").map(String::as_str), Some("b"));
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name.as_deref(), Some("node-b-1"));
    let container = &spec.containers[0];
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))
        .map(|p| p.container_port)
        .expect("a container port named metrics");
    let addr = pod_addr(&sim, "mixer-b-1");
    assert_eq!(port, i32::from(addr.port()));
    let limits = container.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("512Mi"));
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some(addr.ip().to_string().as_str()));
    assert_eq!(ready(pod), Some(true));
    assert_eq!(restarts(pod), Some(0));
    // podIP and the metrics port are where the pod's /metrics answers.
    let scrape = get(format!("{}:{port}", addr.ip()).parse().expect("an address"), "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(scrape.body.contains("ai_mixer_requests_total{region=\"b\""));

    // Selectors that match nothing, other namespaces, and single pods.
    let none = all.list(&ListParams::default().labels("app=other")).await.expect("pods listed");
    assert!(none.items.is_empty());
    let not_b = all.list(&ListParams::default().labels("region!=b")).await.expect("pods listed");
    assert_eq!(names(&not_b.items), ["mixer-a-0", "mixer-a-1"]);
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(elsewhere.list(&ListParams::default()).await.expect("pods listed").items.is_empty());
    let one = namespaced.get("mixer-a-1").await.expect("one pod");
    assert_eq!(one.spec.and_then(|s| s.node_name).as_deref(), Some("node-a-1"));
    match namespaced.get("mixer-z-9").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404 Status, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn unsupported_selectors_are_refused_with_a_status() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    for path in [
        "/k8s/api/v1/pods?fieldSelector=spec.schedulerName%3Dx",
        "/k8s/api/v1/pods?labelSelector=region%20in%20(a,b)",
        "/k8s/api/v1/pods?watch=true",
    ] {
        let reply = get(admin, path).await;
        assert!(reply.status == 400 || reply.status == 405, "{path}: {}", reply.status);
        assert_eq!(reply.json()["kind"], "Status", "{path}: {}", reply.body);
    }
    assert_eq!(get(admin, "/k8s/api/v1/services").await.status, 404);
    // Plain, unencoded selectors work too, comma-separated.
    let reply =
        get(admin, "/k8s/api/v1/pods?labelSelector=app=ai-mixer,region=a&fieldSelector=spec.nodeName==node-a-0").await;
    let body = reply.json();
    let items: Vec<&str> =
        body["items"].as_array().into_iter().flatten().filter_map(|p| p["metadata"]["name"].as_str()).collect();
    assert_eq!(items, ["mixer-a-0"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restart_counts_and_is_unready_for_a_moment() {
    let sim = small_fleet(None).await;
    let pods: Api<Pod> = Api::namespaced(client(&sim), NAMESPACE);
    let before = pods.get("mixer-a-0").await.expect("pod");
    assert_eq!((restarts(&before), ready(&before)), (Some(0), Some(true)));

    let admin = sim.addresses().admin;
    let reply = request(admin, "POST", "/pods/mixer-a-0/restart", &[], None).await.expect("HTTP exchange");
    assert_eq!(reply.status, 204);
    let after = pods.get("mixer-a-0").await.expect("pod");
    assert_eq!((restarts(&after), ready(&after)), (Some(1), Some(false)));
    let status = after.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|s| s.first().cloned());
    let last = status.and_then(|s| s.last_state).and_then(|s| s.terminated);
    assert_eq!(last.map(|t| t.exit_code), Some(137));
    // The other pods are untouched.
    assert_eq!(restarts(&pods.get("mixer-a-1").await.expect("pod")), Some(0));

    eventually("the restarted pod to be ready again", || async {
        let pod = pods.get("mixer-a-0").await.ok()?;
        (ready(&pod) == Some(true)).then_some(())
    })
    .await;
    sim.restart_pod("mixer-a-0").expect("known pod");
    assert_eq!(restarts(&pods.get("mixer-a-0").await.expect("pod")), Some(2));

    // A down pod is not ready either.
    sim.set_pod_fault("mixer-b-0", Fault { down: true, ..Fault::default() }).expect("known pod");
    assert_eq!(ready(&pods.get("mixer-b-0").await.expect("pod")), Some(false));
    sim.shutdown().await;
}

/// The usage of each pod's one container in a `PodMetricsList`, as a fraction of its limit.
fn memory_shares(list: &Value) -> Vec<(String, f64)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let memory = item["containers"][0]["usage"]["memory"].as_str().expect("memory usage");
            let ki: f64 = memory.strip_suffix("Ki").expect("in Ki").parse().expect("a number");
            (item["metadata"]["name"].as_str().unwrap_or_default().to_owned(), ki / LIMIT_KI)
        })
        .collect()
}

#[tokio::test]
async fn memory_pressure_shows_in_metrics_k8s_io() {
    let sim = small_fleet(None).await;
    let admin = sim.addresses().admin;
    let base = "/k8s/apis/metrics.k8s.io/v1beta1";
    let list = get(admin, &format!("{base}/pods?labelSelector=app%3Dai-mixer")).await;
    assert_eq!(list.status, 200);
    let body = list.json();
    assert_eq!(
        (body["kind"].as_str(), body["apiVersion"].as_str()),
        (Some("PodMetricsList"), Some("metrics.k8s.io/v1beta1"))
    );
    let shares = memory_shares(&body);
    assert_eq!(shares.len(), 5);
    for (pod, share) in &shares {
        assert!((0.4..=0.6).contains(share), "{pod} at {share} of its limit");
    }

    let reply = request(
        admin,
        "PUT",
        "/faults/pods/mixer-a-1",
        &[("Content-Type", "application/json")],
        Some(r#"{"memory_pressure": 0.9}"#),
    )
    .await
    .expect("HTTP exchange");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let path = format!("{base}/namespaces/{NAMESPACE}/pods?fieldSelector=metadata.name%3Dmixer-a-1");
    let shares = memory_shares(&get(admin, &path).await.json());
    assert_eq!(shares.len(), 1);
    assert!((shares[0].1 - 0.9).abs() < 0.001, "{shares:?}");
    // It stays there while time passes, and shows in the pod's own scrape.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let one = get(admin, &format!("{base}/namespaces/{NAMESPACE}/pods/mixer-a-1")).await.json();
    assert_eq!(one["kind"], "PodMetrics");
    let ki: f64 = one["containers"][0]["usage"]["memory"]
        .as_str()
        .and_then(|m| m.strip_suffix("Ki"))
        .and_then(|m| m.parse().ok())
        .expect("memory in Ki");
    assert!((ki / LIMIT_KI - 0.9).abs() < 0.001);
    let scrape = support::samples(&get(pod_addr(&sim, "mixer-a-1"), "/metrics").await.body);
    let rss = scrape["process_resident_memory_bytes"];
    assert!((rss / (LIMIT_KI * 1024.0) - 0.9).abs() < 0.001, "rss {rss}");

    let bad = request(admin, "PUT", "/faults/pods/mixer-a-1", &[], Some(r#"{"memory_pressure": 1.5}"#))
        .await
        .expect("HTTP exchange");
    assert_eq!(bad.status, 400);
    sim.clear_faults().expect("every fault cleared");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_token_guards_the_kubernetes_api() {
    let sim = small_fleet(Some("s3cret")).await;
    let admin = sim.addresses().admin;
    assert_eq!(get(admin, "/k8s/api/v1/pods").await.status, 403);
    let reply = request(admin, "GET", "/k8s/api/v1/pods", &[("Authorization", "Bearer s3cret")], None)
        .await
        .expect("HTTP exchange");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["kind"], "PodList");
    sim.shutdown().await;
}

#[tokio::test]
async fn nodes_per_region_is_configurable() {
    let config = SimConfig { regions: vec![("r".into(), 5)], nodes_per_region: 1, ..SimConfig::default() };
    let sim = mixmon_mixer_sim::start(config).await.expect("simulator starts");
    assert!(sim.addresses().pods.iter().all(|p| p.node == "node-r-0"));
    let reply = get(sim.addresses().admin, "/k8s/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-r-0").await;
    assert_eq!(reply.json()["items"].as_array().map(Vec::len), Some(5));
    sim.shutdown().await;
}
