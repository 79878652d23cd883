//! What a prober deployed as a Kubernetes DaemonSet relies on, against real sockets: its
//! health endpoints (`[health] listen`: `/healthz` for the liveness probe, `/readyz` for
//! readiness, which waits for an assignment snapshot from a fake aggregator), and its region
//! read from its node's `topology.kubernetes.io/region` label through a fake Kubernetes API
//! when the configuration names none.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mixmon_proto::pb;
use pb::control_plane_server::{ControlPlane, ControlPlaneServer};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const DEADLINE: Duration = Duration::from_secs(20);

/// A control plane that records who registered and sends its (empty) assignment snapshot
/// only once `release` turns true.
#[derive(Clone)]
struct FakeAggregator {
    registered: Arc<Mutex<Vec<pb::ProberIdentity>>>,
    release: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl ControlPlane for FakeAggregator {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        self.registered.lock().unwrap().push(request.into_inner().identity.unwrap_or_default());
        Ok(Response::new(pb::RegisterResponse { heartbeat_interval_ms: 1_000, max_batch_results: 1_000 }))
    }

    type WatchAssignmentsStream = ReceiverStream<Result<pb::AssignmentUpdate, Status>>;

    async fn watch_assignments(
        &self,
        _request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut release = self.release.clone();
        tokio::spawn(async move {
            if release.wait_for(|r| *r).await.is_err() {
                return;
            }
            let snapshot = pb::AssignmentUpdate {
                kind: pb::assignment_update::Kind::Snapshot as i32,
                version: 7,
                ..Default::default()
            };
            let _ = tx.send(Ok(snapshot)).await;
            // The stream stays open, as the real one does.
            tx.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ReportStream = ReceiverStream<Result<pb::ReportAck, Status>>;

    async fn report(
        &self,
        request: Request<Streaming<pb::ReportRequest>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            // Read (and forget) whatever comes until the prober hangs up; `tx` lives as long.
            while let Ok(Some(_)) = inbound.message().await {}
            drop(tx);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Starts the fake aggregator: its address and who registered.
async fn start_aggregator(release: watch::Receiver<bool>) -> (String, Arc<Mutex<Vec<pb::ProberIdentity>>>) {
    let registered = Arc::new(Mutex::new(Vec::new()));
    let service = FakeAggregator { registered: registered.clone(), release };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ControlPlaneServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (format!("http://{addr}"), registered)
}

/// A fake Kubernetes API: `Node`s with their labels, pods (none), and switches for failures.
#[derive(Clone, Default)]
struct KubeApi {
    /// Node name to labels.
    nodes: Arc<Mutex<HashMap<String, Value>>>,
    /// Answer this many node reads with 500 before answering.
    fail_first: Arc<Mutex<usize>>,
    /// Answer node reads with 403, as without RBAC on nodes.
    forbidden: Arc<Mutex<bool>>,
    /// Node reads seen.
    node_reads: Arc<Mutex<usize>>,
}

fn status(code: u16, reason: &str, message: &str) -> axum::response::Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

async fn read_node(State(api): State<KubeApi>, Path(name): Path<String>) -> axum::response::Response {
    *api.node_reads.lock().unwrap() += 1;
    {
        let mut fail = api.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return status(500, "InternalError", "etcdserver: request timed out");
        }
    }
    if *api.forbidden.lock().unwrap() {
        let message =
            format!("nodes \"{name}\" is forbidden: User \"system:serviceaccount:m:p\" cannot get resource \"nodes\"");
        return status(403, "Forbidden", &message);
    }
    let Some(labels) = api.nodes.lock().unwrap().get(&name).cloned() else {
        return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
    };
    Json(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1", "labels": labels,
                     "creationTimestamp": "2026-11-24T12:00:00Z"},
        "spec": {"providerID": format!("fake://{name}")},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi"}}
    }))
    .into_response()
}

async fn start_kube_api() -> (KubeApi, String) {
    let api = KubeApi::default();
    let app = Router::new()
        .route("/k8s/api/v1/nodes/{name}", get(read_node))
        .route(
            "/k8s/api/v1/pods",
            get(|| async {
                Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}))
            }),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api, format!("http://{addr}/k8s"))
}

/// A running prober (`mixmon_prober::run`) and the switch that stops it.
struct Prober {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), mixmon_prober::ProberError>>,
}

fn start_prober(text: &str) -> Prober {
    let config: mixmon_prober::ProberConfig = mixmon_config::parse_with_env("p.toml", text, Vec::new()).unwrap();
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(mixmon_prober::run(config, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    Prober { stop, task }
}

impl Prober {
    async fn stop(self) -> Result<(), mixmon_prober::ProberError> {
        self.stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, self.task).await.unwrap().unwrap()
    }
}

/// `GET url`: status and body, or `None` when nothing listens.
async fn probe(url: &str) -> Option<(u16, String)> {
    mixmon_testkit::http::get(url).await.ok().map(|r| (r.status, r.text()))
}

async fn wait_for_status(url: &str, want: u16) -> (u16, String) {
    let last = Arc::new(Mutex::new(None));
    let waited = mixmon_testkit::eventually(DEADLINE, Duration::from_millis(25), || {
        let (url, last) = (url.to_owned(), last.clone());
        async move {
            let seen = probe(&url).await;
            let done = seen.as_ref().is_some_and(|(status, _)| *status == want);
            *last.lock().unwrap() = seen;
            done
        }
    })
    .await;
    let last = last.lock().unwrap().clone();
    assert!(waited.is_ok(), "{url} never answered {want}; last: {last:?}");
    last.unwrap()
}

#[tokio::test]
async fn liveness_holds_while_the_prober_runs_and_readiness_waits_for_an_assignment() {
    let (release_tx, release_rx) = watch::channel(false);
    let (aggregator, registered) = start_aggregator(release_rx).await;
    let port = mixmon_testkit::free_port().unwrap();
    let prober = start_prober(&format!(
        "[identity]\nid = \"p1\"\nregion = \"eu-west\"\nnode = \"node-a\"\n\
         [aggregator]\naddresses = [\"{aggregator}\"]\n[health]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let base = format!("http://127.0.0.1:{port}");

    let (_, live) = wait_for_status(&format!("{base}/healthz"), 200).await;
    assert_eq!(live, "ok\n");
    mixmon_testkit::eventually(DEADLINE, Duration::from_millis(25), || {
        let registered = registered.clone();
        async move { !registered.lock().unwrap().is_empty() }
    })
    .await
    .unwrap();
    // Connected and registered, but no snapshot yet: not ready.
    let (status, why) = probe(&format!("{base}/readyz")).await.unwrap();
    assert_eq!((status, why.as_str()), (503, "no assignment from an aggregator yet\n"));
    let (status, metrics) = probe(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(status, 200, "the prober's own metrics: {metrics}");
    assert!(metrics.contains("# TYPE mixmon_prober_buffer_records gauge"), "{metrics}");
    assert_eq!(probe(&format!("{base}/debug")).await.unwrap().0, 404, "nothing but the three endpoints");

    release_tx.send(true).unwrap();
    let (_, ready) = wait_for_status(&format!("{base}/readyz"), 200).await;
    assert_eq!(ready, "ok\n");
    assert_eq!(probe(&format!("{base}/healthz")).await.unwrap().0, 200);

    prober.stop().await.unwrap();
    // A prober that returned leaves no listener behind.
    mixmon_testkit::eventually(DEADLINE, Duration::from_millis(25), || {
        let url = format!("{base}/healthz");
        async move { probe(&url).await.is_none() }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_taken_health_port_fails_the_start_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let prober = start_prober(&format!(
        "[identity]\nregion = \"eu-west\"\nnode = \"n\"\n[aggregator]\naddresses = [\"http://127.0.0.1:1\"]\n\
         [health]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let Prober { stop: _stop, task } = prober;
    let err = tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap().unwrap_err().to_string();
    assert!(err.contains("health.listen") && err.contains(&port.to_string()), "{err}");
}

/// A prober configuration without a region, on `node`, asking `kube` for its node.
fn unregioned(node: &str, kube: &str, aggregator: &str, health_port: u16) -> String {
    format!(
        "[identity]\nnode = \"{node}\"\n[aggregator]\naddresses = [\"{aggregator}\"]\n\
         [scrape]\ninterval_ms = 60000\n[scrape.kubernetes]\napi_url = \"{kube}\"\n\
         [health]\nlisten = \"127.0.0.1:{health_port}\"\n"
    )
}

#[tokio::test]
async fn without_a_configured_region_the_prober_registers_in_its_nodes_labelled_region() {
    let (api, kube) = start_kube_api().await;
    api.nodes.lock().unwrap().insert(
        "node-e1".into(),
        json!({"kubernetes.io/hostname": "node-e1", "topology.kubernetes.io/region": "us-east"}),
    );
    // The API server is briefly unwell: the prober asks again.
    *api.fail_first.lock().unwrap() = 2;
    let (release_tx, release_rx) = watch::channel(true);
    let (aggregator, registered) = start_aggregator(release_rx).await;
    let port = mixmon_testkit::free_port().unwrap();
    let prober = start_prober(&unregioned("node-e1", &kube, &aggregator, port));
    let (_, ready) = wait_for_status(&format!("http://127.0.0.1:{port}/readyz"), 200).await;
    assert_eq!(ready, "ok\n");
    let identity = registered.lock().unwrap()[0].clone();
    assert_eq!((identity.region.as_str(), identity.node.as_str()), ("us-east", "node-e1"));
    assert_eq!(*api.node_reads.lock().unwrap(), 3, "two failures, then the answer");
    prober.stop().await.unwrap();
    drop(release_tx);
}

#[tokio::test]
async fn a_configured_region_wins_and_the_node_is_not_asked() {
    let (api, kube) = start_kube_api().await;
    api.nodes.lock().unwrap().insert("node-e1".into(), json!({"topology.kubernetes.io/region": "us-east"}));
    let (_release_tx, release_rx) = watch::channel(true);
    let (aggregator, registered) = start_aggregator(release_rx).await;
    let port = mixmon_testkit::free_port().unwrap();
    let text = unregioned("node-e1", &kube, &aggregator, port).replace("[identity]\n", "[identity]\nregion = \"ap\"\n");
    let prober = start_prober(&text);
    wait_for_status(&format!("http://127.0.0.1:{port}/readyz"), 200).await;
    assert_eq!(registered.lock().unwrap()[0].region, "ap");
    assert_eq!(*api.node_reads.lock().unwrap(), 0);
    prober.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_without_the_label_or_a_forbidden_read_fails_the_start_saying_what_to_set() {
    let (api, kube) = start_kube_api().await;
    api.nodes.lock().unwrap().insert("bare".into(), json!({"kubernetes.io/hostname": "bare"}));
    api.nodes.lock().unwrap().insert("odd".into(), json!({"topology.kubernetes.io/region": "_all"}));
    let (_release_tx, release_rx) = watch::channel(true);
    let (aggregator, registered) = start_aggregator(release_rx).await;
    let start_and_fail = |node: &str| {
        let prober = start_prober(&unregioned(node, &kube, &aggregator, mixmon_testkit::free_port().unwrap()));
        async move {
            // Kept alive: a dropped switch would stop the prober, which then returns Ok.
            let Prober { stop: _stop, task } = prober;
            tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap().unwrap_err().to_string()
        }
    };
    let err = start_and_fail("bare").await;
    assert!(
        err.contains("node bare has no topology.kubernetes.io/region label") && err.contains("identity.region"),
        "{err}"
    );
    let err = start_and_fail("odd").await;
    assert!(err.contains("reserved"), "{err}");
    let err = start_and_fail("ghost").await;
    assert!(err.contains("node ghost does not exist"), "{err}");
    *api.forbidden.lock().unwrap() = true;
    let err = start_and_fail("bare").await;
    assert!(err.contains("refused (403") && err.contains("get on nodes"), "{err}");
    assert!(registered.lock().unwrap().is_empty(), "a prober without a region never registers");
}

#[tokio::test]
async fn a_prober_stopped_while_the_api_is_down_returns_without_registering() {
    let (api, kube) = start_kube_api().await;
    *api.fail_first.lock().unwrap() = usize::MAX;
    let (_release_tx, release_rx) = watch::channel(true);
    let (aggregator, registered) = start_aggregator(release_rx).await;
    let port = mixmon_testkit::free_port().unwrap();
    let prober = start_prober(&unregioned("node-e1", &kube, &aggregator, port));
    // Alive (it keeps asking), not ready.
    wait_for_status(&format!("http://127.0.0.1:{port}/healthz"), 200).await;
    assert_eq!(probe(&format!("http://127.0.0.1:{port}/readyz")).await.unwrap().0, 503);
    mixmon_testkit::eventually(DEADLINE, Duration::from_millis(25), || {
        let api = api.clone();
        async move { *api.node_reads.lock().unwrap() >= 2 }
    })
    .await
    .unwrap();
    prober.stop().await.unwrap();
    assert!(registered.lock().unwrap().is_empty());
}
