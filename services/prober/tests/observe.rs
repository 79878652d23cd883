//! The observers against real sockets: a tiny mixer pod serving changing metrics, a target
//! that never answers, and a fake Kubernetes API (pods and the metrics API).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mixmon_model::{EntityName, MixerSample, Record};
use mixmon_prober::observe::discovery::{self, Discoverer, KubeSettings};
use mixmon_prober::observe::pods::PodSampler;
use mixmon_prober::observe::scrape::{self, PodScraper, ScrapeSettings, ScrapeTarget, ScrapeUrl};
use mixmon_prober::observe::Emit;
use serde_json::{json, Value};
use tokio::sync::watch;

fn name(s: &str) -> EntityName {
    EntityName::new(s).unwrap()
}

/// A mixer pod's exposition: `(status, count)` requests, a 3-bucket histogram of
/// `fast`/`slow` observations, and the process start time.
fn metrics(requests: &[(u16, u64)], fast: u64, slow: u64, sum_s: f64, start: f64) -> String {
    let mut text = String::from("# TYPE ai_mixer_requests_total counter\n");
    for (status, n) in requests {
        text += &format!("ai_mixer_requests_total{{region=\"eu-west\",status=\"{status}\"}} {n}\n");
    }
    text += "# TYPE ai_mixer_processing_duration_seconds histogram\n";
    text += &format!("ai_mixer_processing_duration_seconds_bucket{{region=\"eu-west\",le=\"0.05\"}} {fast}\n");
    text += &format!("ai_mixer_processing_duration_seconds_bucket{{region=\"eu-west\",le=\"0.5\"}} {}\n", fast + slow);
    text += &format!("ai_mixer_processing_duration_seconds_bucket{{region=\"eu-west\",le=\"+Inf\"}} {}\n", fast + slow);
    text += &format!("ai_mixer_processing_duration_seconds_sum{{region=\"eu-west\"}} {sum_s}\n");
    text += &format!("ai_mixer_processing_duration_seconds_count{{region=\"eu-west\"}} {}\n", fast + slow);
    text += "# TYPE ai_mixer_active_streams gauge\nai_mixer_active_streams{region=\"eu-west\"} 12\n";
    text += "# TYPE ai_mixer_genre_classifications_total counter\n";
    text += &format!("ai_mixer_genre_classifications_total{{region=\"eu-west\",genre=\"jazz\"}} {fast}\n");
    text += &format!("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n");
    text
}

#[derive(Clone, Default)]
struct Pod {
    /// What `/metrics` answers: status and body.
    answer: Arc<Mutex<(u16, String)>>,
    /// The client ports that scraped.
    peers: Arc<Mutex<Vec<u16>>>,
}

async fn serve_metrics(State(pod): State<Pod>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> impl IntoResponse {
    pod.peers.lock().unwrap().push(peer.port());
    let (status, body) = pod.answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), [("content-type", "text/plain; version=0.0.4")], body)
}

async fn start_pod() -> (Pod, SocketAddr) {
    let pod = Pod::default();
    let app = Router::new().route("/metrics", get(serve_metrics)).with_state(pod.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (pod, addr)
}

fn settings(timeout_ms: u64) -> ScrapeSettings {
    ScrapeSettings {
        interval: Duration::from_millis(15_000),
        timeout: Duration::from_millis(timeout_ms),
        max_body_bytes: scrape::MAX_BODY_BYTES,
    }
}

fn target(pod: &str, addr: SocketAddr) -> ScrapeTarget {
    ScrapeTarget { pod: name(pod), url: ScrapeUrl::parse(&format!("http://{addr}/metrics")).unwrap() }
}

#[tokio::test]
async fn three_scrapes_give_a_baseline_then_exact_deltas_on_one_connection() {
    let (pod, addr) = start_pod().await;
    let mut scraper = PodScraper::new(target("mixer-0", addr));
    let node = name("node-a");
    let set = |text: String| *pod.answer.lock().unwrap() = (200, text);

    set(metrics(&[(200, 1_000_000), (500, 40)], 900_000, 100_040, 30_000.0, 1.7e9));
    let first = scraper.scrape(&node, &settings(5_000)).await;
    assert!(first.scrape_ok && !first.restarted, "{first:?}");
    assert!(first.requests.is_empty() && first.duration_buckets.is_empty(), "a baseline: {first:?}");
    assert_eq!(first.active_streams, Some(12.0));
    assert_eq!((first.pod.as_str(), first.node.as_str(), first.weight_ms), ("mixer-0", "node-a", 15_000));

    set(metrics(&[(200, 1_000_100), (500, 40)], 900_090, 100_050, 30_002.5, 1.7e9));
    let second = scraper.scrape(&node, &settings(5_000)).await;
    assert!(second.scrape_ok && !second.restarted);
    assert_eq!(second.requests, [(200, 100)]);
    assert_eq!(second.duration_buckets, [(0.05, 90), (0.5, 10), (f64::INFINITY, 0)]);
    assert_eq!((second.duration_count, second.duration_sum_us), (100, 2_500_000));
    assert_eq!(second.genres, [(name("jazz"), 90)]);

    set(metrics(&[(200, 1_000_150), (500, 42), (503, 1)], 900_140, 100_053, 30_003.0, 1.7e9));
    let third = scraper.scrape(&node, &settings(5_000)).await;
    assert_eq!(third.requests, [(200, 50), (500, 2), (503, 1)]);
    assert_eq!(third.duration_buckets, [(0.05, 50), (0.5, 3), (f64::INFINITY, 0)]);
    assert_eq!((third.duration_count, third.duration_sum_us), (53, 500_000));

    let peers = pod.peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| *p == peers[0]), "one kept-alive connection: {peers:?}");
}

#[tokio::test]
async fn a_restarted_pod_gives_what_it_counted_since_never_negative() {
    let (pod, addr) = start_pod().await;
    let mut scraper = PodScraper::new(target("mixer-1", addr));
    let node = name("node-a");
    let set = |text: String| *pod.answer.lock().unwrap() = (200, text);
    set(metrics(&[(200, 1_843_211), (500, 1190)], 1_800_000, 44_814, 61_877.0, 1.7e9));
    scraper.scrape(&node, &settings(5_000)).await;
    set(metrics(&[(200, 1_843_311), (500, 1190)], 1_800_100, 44_814, 61_880.0, 1.7e9));
    assert_eq!(scraper.scrape(&node, &settings(5_000)).await.requests, [(200, 100)]);

    // The pod restarts: a new start time, counters back to a handful.
    set(metrics(&[(200, 7)], 6, 1, 0.4, 1.7e9 + 75.0));
    let restarted = scraper.scrape(&node, &settings(5_000)).await;
    assert!(restarted.scrape_ok && restarted.restarted);
    assert_eq!(restarted.requests, [(200, 7)]);
    assert_eq!(restarted.duration_buckets, [(0.05, 6), (0.5, 1), (f64::INFINITY, 0)]);
    assert_eq!((restarted.duration_count, restarted.duration_sum_us), (7, 400_000));

    set(metrics(&[(200, 17)], 16, 1, 0.9, 1.7e9 + 75.0));
    let after = scraper.scrape(&node, &settings(5_000)).await;
    assert!(!after.restarted);
    assert_eq!(after.requests, [(200, 10)]);
}

#[tokio::test]
async fn failures_give_scrape_ok_false_and_the_next_good_scrape_recovers() {
    // A target that accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_addr = hanging.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let node = name("node-a");
    let mut scraper = PodScraper::new(target("mixer-2", hanging_addr));
    let started = Instant::now();
    let sample = scraper.scrape(&node, &settings(300)).await;
    assert!(!sample.scrape_ok && sample.requests.is_empty() && sample.active_streams.is_none());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    // Refused connection.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    assert!(!PodScraper::new(target("mixer-3", closed_addr)).scrape(&node, &settings(1_000)).await.scrape_ok);

    let (pod, addr) = start_pod().await;
    let mut scraper = PodScraper::new(target("mixer-4", addr));
    let good = metrics(&[(200, 10)], 10, 0, 0.1, 1.7e9);
    *pod.answer.lock().unwrap() = (503, good.clone());
    assert!(!scraper.scrape(&node, &settings(1_000)).await.scrape_ok, "HTTP 503");
    *pod.answer.lock().unwrap() = (200, "ai_mixer_requests_total{status=\"200\" 5\n".into());
    assert!(!scraper.scrape(&node, &settings(1_000)).await.scrape_ok, "garbage");
    *pod.answer.lock().unwrap() = (200, format!("{good}# {}\n", "x".repeat(2048)));
    let small = ScrapeSettings { max_body_bytes: 1024, ..settings(1_000) };
    assert!(!scraper.scrape(&node, &small).await.scrape_ok, "over the size limit");

    *pod.answer.lock().unwrap() = (200, good);
    let back = scraper.scrape(&node, &settings(1_000)).await;
    assert!(back.scrape_ok && back.requests.is_empty(), "the first good scrape is the baseline: {back:?}");
    *pod.answer.lock().unwrap() = (200, metrics(&[(200, 15)], 15, 0, 0.2, 1.7e9));
    assert_eq!(scraper.scrape(&node, &settings(1_000)).await.requests, [(200, 5)]);
}

fn collector() -> (Emit, Arc<Mutex<Vec<Record>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (Arc::new(move |r| sink.lock().unwrap().push(r)), seen)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_scrape_task_emits_mixer_records_until_stopped() {
    let (pod, addr) = start_pod().await;
    *pod.answer.lock().unwrap() = (200, metrics(&[(200, 10)], 10, 0, 0.1, 1.7e9));
    let (emit, seen) = collector();
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = ScrapeSettings { interval: Duration::from_millis(50), ..settings(1_000) };
    let task = tokio::spawn(scrape::run(settings, name("node-a"), vec![target("mixer-0", addr)], None, emit, stop_rx));
    wait_for("three scrapes", || seen.lock().unwrap().len() >= 3).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    let seen = seen.lock().unwrap();
    let mixers: Vec<&MixerSample> = seen
        .iter()
        .map(|r| match r {
            Record::Mixer(m) => m,
            other => panic!("not a mixer sample: {other:?}"),
        })
        .collect();
    assert!(mixers.iter().all(|m| m.scrape_ok && m.pod.as_str() == "mixer-0" && m.weight_ms == 50));
}

/// `(namespace, pod)` → every container's memory use.
type Usage = HashMap<(String, String), Vec<&'static str>>;

/// A fake API server's state: the pods (as JSON) and their memory use.
#[derive(Clone, Default)]
struct Api {
    pods: Arc<Mutex<Vec<Value>>>,
    usage: Arc<Mutex<Usage>>,
    fail: Arc<Mutex<bool>>,
    /// The cluster has no metrics API (404).
    no_metrics: Arc<Mutex<bool>>,
    /// Every pods query seen.
    queries: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

fn selector_matches(pod: &Value, field: Option<&String>, label: Option<&String>) -> bool {
    let field_ok = field.is_none_or(|f| {
        f.split(',').all(|term| match term.split_once('=') {
            Some(("spec.nodeName", node)) => pod["spec"]["nodeName"] == node,
            _ => false,
        })
    });
    let label_ok = label.is_none_or(|l| {
        l.split(',').all(|term| match term.split_once('=') {
            Some((k, v)) => pod["metadata"]["labels"][k] == v,
            None => false,
        })
    });
    field_ok && label_ok
}

async fn list_pods(api: &Api, namespace: Option<&str>, query: HashMap<String, String>) -> axum::response::Response {
    if *api.fail.lock().unwrap() {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd is down", "reason": "InternalError", "code": 500}))).into_response();
    }
    let items: Vec<Value> = api
        .pods
        .lock()
        .unwrap()
        .iter()
        .filter(|p| namespace.is_none_or(|ns| p["metadata"]["namespace"] == ns))
        .filter(|p| selector_matches(p, query.get("fieldSelector"), query.get("labelSelector")))
        .cloned()
        .collect();
    api.queries.lock().unwrap().push(query);
    Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": items}))
        .into_response()
}

async fn start_api() -> (Api, String) {
    let api = Api::default();
    let app = Router::new()
        .route(
            "/k8s/api/v1/pods",
            get(|State(api): State<Api>, Query(q): Query<HashMap<String, String>>| async move {
                list_pods(&api, None, q).await
            }),
        )
        .route(
            "/k8s/api/v1/namespaces/{ns}/pods",
            get(
                |State(api): State<Api>, Path(ns): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
                    list_pods(&api, Some(&ns), q).await
                },
            ),
        )
        .route(
            "/k8s/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            get(|State(api): State<Api>, Path(ns): Path<String>| async move {
                if *api.no_metrics.lock().unwrap() {
                    return (StatusCode::NOT_FOUND, Json(json!({"kind": "Status", "code": 404}))).into_response();
                }
                let usage = api.usage.lock().unwrap();
                let items: Vec<Value> = usage
                    .iter()
                    .filter(|((pod_ns, _), _)| *pod_ns == ns)
                    .map(|((pod_ns, pod), containers)| {
                        json!({
                            "metadata": {"name": pod, "namespace": pod_ns, "creationTimestamp": "2026-11-24T13:00:00Z"},
                            "timestamp": "2026-11-24T13:00:00Z",
                            "window": "10.5s",
                            "containers": containers.iter().enumerate().map(|(i, m)| json!({
                                "name": format!("c{i}"), "usage": {"cpu": "12m", "memory": m}
                            })).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let list = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": items});
                Json(list).into_response()
            }),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api, format!("http://{addr}/k8s"))
}

/// A real-shaped pod: Running with `ip`, or Pending without one.
fn pod(ns: &str, name: &str, node: &str, app: &str, ip: Option<&str>, ready: bool, restarts: &[i32]) -> Value {
    // With an IP it is Running, without one still Pending.
    let phase = if ip.is_some() { "Running" } else { "Pending" };
    let containers: Vec<Value> = restarts
        .iter()
        .enumerate()
        .map(|(i, _)| {
            // mixer-a3 declares its metrics on a named port, the Prometheus convention.
            let ports = if name == "mixer-a3" {
                json!([{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9102}])
            } else {
                json!([{"containerPort": 8080, "protocol": "TCP"}])
            };
            json!({"name": format!("c{i}"), "image": "mixer:1.4", "ports": ports,
                   "resources": {"limits": {"memory": if i == 0 { "512Mi" } else { "64Mi" }, "cpu": "2"},
                                 "requests": {"memory": "256Mi", "cpu": "500m"}}})
        })
        .collect();
    let statuses: Vec<Value> = restarts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"name": format!("c{i}"), "ready": ready, "restartCount": n, "image": "mixer:1.4",
                   "imageID": "sha256:abc", "containerID": "containerd://x", "started": true,
                   "state": {"running": {"startedAt": "2026-11-24T12:00:00Z"}}})
        })
        .collect();
    let mut status = json!({
        "phase": phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-24T12:00:00Z"},
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-11-24T12:00:00Z"}
        ],
        "hostIP": "192.168.1.10",
        "containerStatuses": statuses,
        "qosClass": "Burstable",
        "startTime": "2026-11-24T12:00:00Z"
    });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "resourceVersion": "1",
                     "labels": {"app": app, "pod-template-hash": "7d9f"}, "creationTimestamp": "2026-11-24T12:00:00Z"},
        "spec": {"nodeName": node, "containers": containers, "restartPolicy": "Always", "serviceAccountName": "default"},
        "status": status
    })
}

fn kube_settings(api_url: &str, namespace: Option<&str>) -> KubeSettings {
    KubeSettings {
        api_url: Some(api_url.parse().unwrap()),
        token_file: None,
        ca_file: None,
        label_selector: "app=ai-mixer".into(),
        namespace: namespace.map(str::to_owned),
        port: 8080,
        path: "/metrics".into(),
        discovery_interval: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn discovery_finds_the_running_mixer_pods_on_this_node_and_keeps_them_through_api_failures() {
    let (api, url) = start_api().await;
    *api.pods.lock().unwrap() = vec![
        pod("audio", "mixer-a0", "node-a", "ai-mixer", Some("10.1.0.5"), true, &[0]),
        pod("audio", "mixer-a1", "node-a", "ai-mixer", None, false, &[0]),
        pod("audio", "mixer-a2", "node-a", "ai-mixer", Some("fd00::9"), false, &[3]),
        pod("audio", "mixer-b0", "node-b", "ai-mixer", Some("10.2.0.5"), true, &[0]),
        pod("kube-system", "dns-a", "node-a", "kube-dns", Some("10.1.0.2"), true, &[0]),
        pod("other", "mixer-a3", "node-a", "ai-mixer", Some("10.1.0.7"), true, &[0]),
    ];
    let settings = kube_settings(&url, None);
    let client = discovery::client(&settings).unwrap();
    let found = Discoverer::new(client.clone(), settings.clone(), name("node-a")).list().await.unwrap();
    let urls: Vec<(&str, &str)> = found.iter().map(|t| (t.pod.as_str(), t.url.as_str())).collect();
    assert_eq!(
        urls,
        [
            ("mixer-a0", "http://10.1.0.5:8080/metrics"),
            ("mixer-a2", "http://[fd00::9]:8080/metrics"),
            ("mixer-a3", "http://10.1.0.7:9102/metrics"),
        ]
    );
    let query = api.queries.lock().unwrap().last().cloned().unwrap();
    assert_eq!(query.get("fieldSelector").map(String::as_str), Some("spec.nodeName=node-a"));
    assert_eq!(query.get("labelSelector").map(String::as_str), Some("app=ai-mixer"));

    // One namespace only.
    let in_audio = kube_settings(&url, Some("audio"));
    let found = Discoverer::new(client.clone(), in_audio, name("node-a")).list().await.unwrap();
    assert_eq!(found.iter().map(|t| t.pod.as_str()).collect::<Vec<_>>(), ["mixer-a0", "mixer-a2"]);

    // The running task publishes the list, and keeps it while the API fails.
    let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Discoverer::new(client, settings, name("node-a")).run(tx, stop_rx));
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|t| t.len() == 3)).await.unwrap().unwrap();
    *api.fail.lock().unwrap() = true;
    let queries = api.queries.lock().unwrap().len();
    // Several discovery intervals: a failing API must yield no successful list in them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.queries.lock().unwrap().len(), queries, "no successful list while failing");
    assert_eq!(rx.borrow().len(), 3, "the previous list stays");
    *api.fail.lock().unwrap() = false;
    api.pods.lock().unwrap().retain(|p| p["metadata"]["name"] != "mixer-a3");
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|t| t.len() == 2)).await.unwrap().unwrap();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
}

#[tokio::test]
async fn pod_samples_carry_readiness_restart_increases_and_memory_against_the_limit() {
    let (api, url) = start_api().await;
    let pods = |a0_restarts: &[i32]| {
        vec![
            pod("audio", "mixer-a0", "node-a", "ai-mixer", Some("10.1.0.5"), true, a0_restarts),
            pod("audio", "mixer-a1", "node-a", "ai-mixer", None, false, &[0]),
            pod("audio", "mixer-b0", "node-b", "ai-mixer", Some("10.2.0.5"), true, &[9]),
            pod("kube-system", "dns-a", "node-a", "kube-dns", Some("10.1.0.2"), true, &[4]),
        ]
    };
    *api.pods.lock().unwrap() = pods(&[1, 2]);
    api.usage.lock().unwrap().insert(("audio".into(), "mixer-a0".into()), vec!["300Mi", "20Mi"]);
    api.usage.lock().unwrap().insert(("kube-system".into(), "dns-a".into()), vec!["50000Ki"]);
    let client = discovery::client(&kube_settings(&url, None)).unwrap();
    let mut sampler = PodSampler::new(client, name("node-a"), None);

    let first = sampler.sample(15_000).await.unwrap();
    let by_name = |samples: &[mixmon_model::PodSample], pod: &str| {
        samples.iter().find(|s| s.pod.as_str() == pod).cloned().unwrap_or_else(|| panic!("no sample of {pod}"))
    };
    assert_eq!(first.len(), 3, "node-b's pod is not ours: {first:?}");
    let a0 = by_name(&first, "mixer-a0");
    assert!(a0.ready);
    assert_eq!((a0.restarts, a0.namespace.as_str(), a0.node.as_str(), a0.weight_ms), (0, "audio", "node-a", 15_000));
    assert_eq!(a0.memory_bytes, Some(320 << 20));
    assert_eq!(a0.memory_limit_bytes, Some((512 + 64) << 20));
    let a1 = by_name(&first, "mixer-a1");
    assert!(!a1.ready);
    assert_eq!((a1.memory_bytes, a1.memory_limit_bytes), (None, Some(512 << 20)));
    let dns = by_name(&first, "dns-a");
    assert_eq!((dns.restarts, dns.memory_bytes), (0, Some(50_000 * 1024)), "a first sample has no restarts");

    // mixer-a0's second container restarted three times.
    *api.pods.lock().unwrap() = pods(&[1, 5]);
    let second = sampler.sample(15_000).await.unwrap();
    assert_eq!(by_name(&second, "mixer-a0").restarts, 3);
    assert_eq!(by_name(&second, "dns-a").restarts, 0);

    // Counts that go down under the same uid: no increase, never negative.
    *api.pods.lock().unwrap() = pods(&[0, 1]);
    assert_eq!(by_name(&sampler.sample(15_000).await.unwrap(), "mixer-a0").restarts, 0);
    *api.pods.lock().unwrap() = pods(&[0, 2]);
    assert_eq!(by_name(&sampler.sample(15_000).await.unwrap(), "mixer-a0").restarts, 1);

    // Re-created under the same name (a new uid): a first sample again.
    let mut recreated = pods(&[4, 0]);
    recreated[0]["metadata"]["uid"] = json!("uid-new");
    *api.pods.lock().unwrap() = recreated;
    assert_eq!(by_name(&sampler.sample(15_000).await.unwrap(), "mixer-a0").restarts, 0);

    // No metrics API: memory unknown, the rest still sampled.
    api.usage.lock().unwrap().clear();
    let without = sampler.sample(15_000).await.unwrap();
    assert_eq!(by_name(&without, "mixer-a0").memory_bytes, None);
    assert_eq!(by_name(&without, "mixer-a0").memory_limit_bytes, Some((512 + 64) << 20));
    *api.no_metrics.lock().unwrap() = true;
    api.usage.lock().unwrap().insert(("audio".into(), "mixer-a0".into()), vec!["300Mi"]);
    let without = sampler.sample(15_000).await.unwrap();
    assert_eq!((without.len(), by_name(&without, "mixer-a0").memory_bytes), (3, None));
}

/// The whole prober with `[scrape]` and `[node]`: their records land in the write-ahead
/// buffer beside the probe results (no aggregator here, so they stay there), and the
/// observers stop with the prober.
#[tokio::test]
async fn the_prober_buffers_mixer_and_node_records() {
    let (pod, addr) = start_pod().await;
    *pod.answer.lock().unwrap() = (200, metrics(&[(200, 10)], 10, 0, 0.1, 1.7e9));
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir_all(proc.join("net")).unwrap();
    std::fs::create_dir_all(proc.join("self")).unwrap();
    std::fs::write(proc.join("stat"), "cpu  1 0 0 9 0 0 0 0 0 0\n").unwrap();
    std::fs::write(proc.join("meminfo"), "MemTotal: 2000 kB\nMemFree: 1000 kB\nMemAvailable: 1500 kB\n").unwrap();
    std::fs::write(proc.join("net/dev"), "h1\nh2\n  eth0: 1 1 0 0 0 0 0 0 2 2 0 0 0 0 0 0\n").unwrap();
    std::fs::write(proc.join("self/mounts"), "").unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let wal = dir.path().join("wal");
    let text = format!(
        r#"
        [identity]
        id = "p1"
        region = "eu-west"
        node = "node-a"
        [aggregator]
        addresses = ["http://{closed}"]
        [buffer]
        dir = "{wal}"
        [scrape]
        interval_ms = 50
        timeout_ms = 1000
        targets = [ {{ pod = "mixer-0", url = "http://{addr}/metrics" }} ]
        [node]
        interval_ms = 50
        proc_root = "{proc}"
        "#,
        wal = wal.display(),
        proc = proc.display(),
    );
    let config: mixmon_prober::ProberConfig = mixmon_config::parse_with_env("p.toml", &text, Vec::new()).unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let prober = tokio::spawn(mixmon_prober::run(config, async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    wait_for("three scrapes", || pod.peers.lock().unwrap().len() >= 3).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), prober).await.unwrap().unwrap().unwrap();
    let scrapes = pod.peers.lock().unwrap().len();
    // Longer than a scrape interval: a scraper still running would have scraped again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pod.peers.lock().unwrap().len(), scrapes, "no scrape after shutdown");

    let buffer = mixmon_prober::buffer::ResultBuffer::open(mixmon_prober::buffer::BufferOptions {
        max_results: 1000,
        max_age: Duration::from_secs(3600),
        max_bytes: 64 << 20,
        wal: Some(mixmon_prober::wal::WalOptions {
            dir: wal.join("p1"),
            segment_bytes: 1 << 20,
            fsync_interval: Duration::ZERO,
        }),
    })
    .unwrap();
    buffer.seal(1000);
    let records: Vec<Record> = buffer.unacked().into_iter().flat_map(|b| b.results).collect();
    let mixers = records.iter().filter(|r| matches!(r, Record::Mixer(m) if m.scrape_ok && m.pod.as_str() == "mixer-0"));
    assert!(mixers.count() >= 2, "{records:?}");
    assert!(records.iter().any(|r| matches!(r, Record::Node(n) if n.node.as_str() == "node-a")), "{records:?}");
}

/// Discovery and scraping together, as `observe::spawn` starts them from the config: the pod
/// on this node is scraped at its pod IP, the one on another node is not; the pods section
/// samples the node's pods through the same API.
#[tokio::test]
async fn discovered_pods_are_scraped_and_sampled() {
    let (api, url) = start_api().await;
    let (ours, ours_addr) = start_pod().await;
    let (theirs, _) = start_pod().await;
    *ours.answer.lock().unwrap() = (200, metrics(&[(200, 10)], 10, 0, 0.1, 1.7e9));
    *theirs.answer.lock().unwrap() = (200, metrics(&[(200, 10)], 10, 0, 0.1, 1.7e9));
    *api.pods.lock().unwrap() = vec![
        pod("audio", "mixer-a0", "node-a", "ai-mixer", Some("127.0.0.1"), true, &[0]),
        pod("audio", "mixer-b0", "node-b", "ai-mixer", Some("127.0.0.2"), true, &[0]),
    ];
    let text = format!(
        r#"
        [scrape]
        interval_ms = 50
        timeout_ms = 1000
        [scrape.kubernetes]
        api_url = "{url}"
        port = {port}
        discovery_interval_ms = 50
        [pods]
        interval_ms = 50
        "#,
        port = ours_addr.port(),
    );
    let config: mixmon_prober::ProberConfig = mixmon_config::parse_with_env("p.toml", &text, Vec::new()).unwrap();
    let (emit, seen) = collector();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = mixmon_prober::observe::spawn(config.observe().unwrap(), "node-a", emit, stop_rx).unwrap();
    wait_for("scrapes of the discovered pod", || ours.peers.lock().unwrap().len() >= 3).await;
    wait_for("pod samples", || seen.lock().unwrap().iter().any(|r| matches!(r, Record::Pod(_)))).await;
    stop_tx.send(true).unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }
    assert!(theirs.peers.lock().unwrap().is_empty(), "another node's pod was scraped");
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|r| match r {
        Record::Mixer(m) => m.pod.as_str() == "mixer-a0" && m.node.as_str() == "node-a",
        Record::Pod(p) => p.pod.as_str() == "mixer-a0",
        _ => false,
    }));
}
