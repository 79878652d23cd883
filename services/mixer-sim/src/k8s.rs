//! A minimal, read-only Kubernetes API for the simulated fleet, served on the admin listener
//! under `/k8s`, so a `kube::Config::new("http://<admin>/k8s")` client lists the sim's pods as
//! it would a cluster's:
//!
//! * `GET /k8s/api/v1/pods`, `GET /k8s/api/v1/namespaces/{ns}/pods`: a `PodList`;
//!   `GET /k8s/api/v1/namespaces/{ns}/pods/{name}`: one `Pod`.
//! * `GET /k8s/apis/metrics.k8s.io/v1beta1/pods`, `.../namespaces/{ns}/pods`: a
//!   `PodMetricsList`; `.../namespaces/{ns}/pods/{name}`: one `PodMetrics`.
//! * `GET /k8s/api/v1/nodes`, `.../nodes/{name}` and the kubelet's stats summary through the
//!   API server's node proxy, `.../nodes/{name}/proxy/stats/summary` (`k8s_nodes.rs`).
//! * `GET /k8s/version`: the server version.
//!
//! Lists honour `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated) and
//! `fieldSelector` (`=`, `==`, `!=` on `metadata.name`, `metadata.namespace`, `spec.nodeName`,
//! `status.phase`, `status.podIP`). A selector the simulator does not understand is a 400
//! `Status`, as the real API server answers.
//!
//! Every pod lives in namespace [`NAMESPACE`] with labels `app=ai-mixer` and
//! `region=<region>`. Real pods are scraped at `podIP:8080`; simulated pods share a loopback
//! address on distinct ports, so each pod declares its scrape port as the container port named
//! [`METRICS_PORT_NAME`] (`spec.containers[0].ports[name=metrics].containerPort`), and also as
//! the `prometheus.io/port` annotation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fleet::Fleet;
use crate::metrics::MEMORY_LIMIT_QUANTITY;
use crate::pod::{unix_seconds, KubeStatus, Pod};

/// The namespace every simulated pod lives in.
pub const NAMESPACE: &str = "ai-mixer";
/// The `app` label every simulated pod carries.
pub const APP_LABEL: &str = "ai-mixer";
/// The name of the container port that carries a pod's `/metrics` port.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The one container of every pod.
pub(crate) const CONTAINER: &str = "mixer";
const IMAGE: &str = "ai-mixer:sim";

#[derive(Clone)]
pub(crate) struct K8sState {
    pub(crate) fleet: Arc<Fleet>,
    /// Pod name to the address its `/metrics` listens on.
    addrs: Arc<BTreeMap<String, SocketAddr>>,
}

/// The routes, to be nested under `/k8s` on the admin listener (behind its token, if any).
pub(crate) fn router<S>(fleet: Arc<Fleet>, addrs: BTreeMap<String, SocketAddr>) -> Router<S> {
    let state = K8sState { fleet, addrs: Arc::new(addrs) };
    Router::new()
        .route("/version", get(version))
        .route("/api/v1/pods", get(all_pods))
        .route("/api/v1/namespaces/{ns}/pods", get(namespace_pods))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(one_pod))
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(all_pod_metrics))
        .route("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", get(namespace_pod_metrics))
        .route("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}", get(one_pod_metrics))
        .merge(crate::k8s_nodes::routes())
        .fallback(not_found)
        .with_state(state)
}

/// The list call's query: selectors, and `watch`, which is refused; the rest (`limit`,
/// `resourceVersion`, ...) is ignored: every list is whole and current.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
}

/// A Kubernetes `Status` failure.
pub(crate) struct KubeError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let reason = match self.0 {
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            _ => "BadRequest",
        };
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.1,
            "reason": reason,
            "code": self.0.as_u16(),
        });
        (self.0, Json(body)).into_response()
    }
}

async fn not_found() -> KubeError {
    KubeError(StatusCode::NOT_FOUND, "the server could not find the requested resource".into())
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-mixer-sim",
        "platform": "linux/amd64",
    }))
}

// ---------------------------------------------------------------------------------------------
// Selectors.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Requirement {
    /// Whether an object whose value for the key is `value` (`None`: no such label) matches.
    fn matches(&self, value: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equals(key, want) => value(key).as_deref() == Some(want.as_str()),
            Self::NotEquals(key, unwanted) => value(key).as_deref() != Some(unwanted.as_str()),
            Self::Exists(key) => value(key).is_some(),
            Self::Absent(key) => value(key).is_none(),
        }
    }
}

/// Parses an equality-based selector; `labels` also allows `k` and `!k` (existence).
fn parse_selector(text: &str, labels: bool) -> Result<Vec<Requirement>, String> {
    let kind = if labels { "label" } else { "field" };
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pair = |op: &str| part.split_once(op).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()));
        let requirement = if let Some((key, value)) = pair("!=") {
            Requirement::NotEquals(key, value)
        } else if let Some((key, value)) = pair("==") {
            Requirement::Equals(key, value)
        } else if let Some((key, value)) = pair("=") {
            Requirement::Equals(key, value)
        } else if part.contains(['(', ' ', '<', '>']) {
            return Err(format!("unsupported {kind} selector `{part}`: only equality-based requirements"));
        } else if !labels {
            return Err(format!("invalid field selector `{part}`: expected field=value"));
        } else if let Some(key) = part.strip_prefix('!') {
            Requirement::Absent(key.trim().to_owned())
        } else {
            Requirement::Exists(part.to_owned())
        };
        let key = match &requirement {
            Requirement::Equals(key, _)
            | Requirement::NotEquals(key, _)
            | Requirement::Exists(key)
            | Requirement::Absent(key) => key,
        };
        if key.is_empty() {
            return Err(format!("invalid {kind} selector `{part}`: empty key"));
        }
        out.push(requirement);
    }
    Ok(out)
}

/// Fields a pod can be selected by, as the API server supports them for pods.
const POD_FIELDS: [&str; 5] = ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "status.podIP"];

/// The pods of `namespace` (all when `None`) that match the query's selectors.
fn select<'a>(state: &'a K8sState, namespace: Option<&str>, query: &ListQuery) -> Result<Vec<&'a Arc<Pod>>, KubeError> {
    if query.watch.as_deref().is_some_and(|w| w == "true" || w == "1") {
        return Err(KubeError(
            StatusCode::METHOD_NOT_ALLOWED,
            "the simulator does not support watch; list instead".into(),
        ));
    }
    let bad = |message: String| KubeError(StatusCode::BAD_REQUEST, message);
    let labels = parse_selector(query.label_selector.as_deref().unwrap_or(""), true).map_err(bad)?;
    let fields = parse_selector(query.field_selector.as_deref().unwrap_or(""), false).map_err(bad)?;
    for requirement in &fields {
        if let Requirement::Equals(key, _) | Requirement::NotEquals(key, _) = requirement {
            if !POD_FIELDS.contains(&key.as_str()) {
                return Err(bad(format!("field label not supported: {key}")));
            }
        }
    }
    if namespace.is_some_and(|ns| ns != NAMESPACE) {
        return Ok(Vec::new());
    }
    let pods = state.fleet.pods().iter().filter(|pod| {
        let label = |key: &str| pod_labels(pod).remove(key);
        let field = |key: &str| state.field(pod, key);
        labels.iter().all(|r| r.matches(label)) && fields.iter().all(|r| r.matches(field))
    });
    Ok(pods.collect())
}

impl K8sState {
    fn field(&self, pod: &Pod, key: &str) -> Option<String> {
        match key {
            "metadata.name" => Some(pod.name.clone()),
            "metadata.namespace" => Some(NAMESPACE.to_owned()),
            "spec.nodeName" => Some(pod.node.clone()),
            "status.phase" => Some("Running".to_owned()),
            "status.podIP" => self.addrs.get(&pod.name).map(|a| a.ip().to_string()),
            _ => None,
        }
    }

    fn pod(&self, namespace: &str, name: &str) -> Result<&Arc<Pod>, KubeError> {
        self.fleet
            .pods()
            .iter()
            .find(|p| p.name == name && namespace == NAMESPACE)
            .ok_or_else(|| KubeError(StatusCode::NOT_FOUND, format!("pods \"{name}\" not found")))
    }
}

pub(crate) fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), APP_LABEL.to_owned()), ("region".to_owned(), pod.region.clone())])
}

fn query_or_400(query: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, KubeError> {
    query.map(|Query(q)| q).map_err(|rejection| KubeError(StatusCode::BAD_REQUEST, rejection.body_text()))
}

// ---------------------------------------------------------------------------------------------
// core/v1 pods.

async fn all_pods(
    State(state): State<K8sState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, KubeError> {
    pod_list(&state, None, &query_or_400(query)?)
}

async fn namespace_pods(
    State(state): State<K8sState>,
    Path(ns): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, KubeError> {
    pod_list(&state, Some(&ns), &query_or_400(query)?)
}

async fn one_pod(
    State(state): State<K8sState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, KubeError> {
    let pod = state.pod(&ns, &name)?;
    let mut object = pod_object(&state, pod);
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("Pod");
    Ok(Json(object))
}

fn pod_list(state: &K8sState, namespace: Option<&str>, query: &ListQuery) -> Result<Json<Value>, KubeError> {
    let items: Vec<Value> = select(state, namespace, query)?.into_iter().map(|pod| pod_object(state, pod)).collect();
    Ok(Json(json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": state.fleet.version().to_string()},
        "items": items,
    })))
}

/// One pod in the shape of a core/v1 `Pod` (without `apiVersion`/`kind`, as list items).
fn pod_object(state: &K8sState, pod: &Pod) -> Value {
    let status = pod.kube_status();
    let addr = state.addrs.get(&pod.name);
    let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
    let port = addr.map_or(0, SocketAddr::port);
    let created = rfc3339(status.created_unix_s);
    let started = rfc3339(status.started_unix_s);
    let ready = if status.ready { "True" } else { "False" };
    let condition = |kind: &str, value: &str, since: &str| json!({"type": kind, "status": value, "lastProbeTime": null, "lastTransitionTime": since});
    let mut container_status = json!({
        "name": CONTAINER,
        "image": IMAGE,
        "imageID": format!("sim://{IMAGE}"),
        "containerID": format!("sim://{}-{}", pod.name, status.restart_count),
        "ready": status.ready,
        "started": true,
        "restartCount": status.restart_count,
        "state": {"running": {"startedAt": started}},
    });
    if status.restart_count > 0 {
        container_status["lastState"] = json!({"terminated": {
            "exitCode": 137,
            "reason": "Error",
            "finishedAt": started,
        }});
    }
    json!({
        "metadata": {
            "name": pod.name,
            "namespace": NAMESPACE,
            "uid": uid(&pod.name),
            "resourceVersion": state.fleet.version().to_string(),
            "creationTimestamp": created,
            "labels": pod_labels(pod),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": port.to_string(),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "nodeName": pod.node,
            "restartPolicy": "Always",
            "containers": [{
                "name": CONTAINER,
                "image": IMAGE,
                "ports": [{"name": METRICS_PORT_NAME, "containerPort": port, "protocol": "TCP"}],
                "resources": {
                    "limits": {"memory": MEMORY_LIMIT_QUANTITY, "cpu": "2"},
                    "requests": {"memory": MEMORY_LIMIT_QUANTITY, "cpu": "500m"},
                },
            }],
        },
        "status": {
            "phase": "Running",
            "hostIP": ip,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": created,
            "qosClass": "Burstable",
            "conditions": [
                condition("PodScheduled", "True", &created),
                condition("Initialized", "True", &created),
                condition("ContainersReady", ready, &started),
                condition("Ready", ready, &started),
            ],
            "containerStatuses": [container_status],
        },
    })
}

// ---------------------------------------------------------------------------------------------
// metrics.k8s.io/v1beta1 pod metrics.

async fn all_pod_metrics(
    State(state): State<K8sState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, KubeError> {
    metrics_list(&state, None, &query_or_400(query)?)
}

async fn namespace_pod_metrics(
    State(state): State<K8sState>,
    Path(ns): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, KubeError> {
    metrics_list(&state, Some(&ns), &query_or_400(query)?)
}

async fn one_pod_metrics(
    State(state): State<K8sState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, KubeError> {
    let pod = state.pod(&ns, &name)?;
    let mut object = metrics_object(pod, &rfc3339(unix_seconds()));
    object["apiVersion"] = json!("metrics.k8s.io/v1beta1");
    object["kind"] = json!("PodMetrics");
    Ok(Json(object))
}

fn metrics_list(state: &K8sState, namespace: Option<&str>, query: &ListQuery) -> Result<Json<Value>, KubeError> {
    let now = rfc3339(unix_seconds());
    let items: Vec<Value> = select(state, namespace, query)?.into_iter().map(|pod| metrics_object(pod, &now)).collect();
    Ok(Json(json!({
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetricsList",
        "metadata": {"resourceVersion": ""},
        "items": items,
    })))
}

fn metrics_object(pod: &Pod, now: &str) -> Value {
    let status: KubeStatus = pod.kube_status();
    json!({
        "metadata": {
            "name": pod.name,
            "namespace": NAMESPACE,
            "creationTimestamp": now,
            "labels": pod_labels(pod),
        },
        "timestamp": now,
        "window": "10s",
        "containers": [{
            "name": CONTAINER,
            "usage": {
                "cpu": format!("{}n", status.cpu_nanocores),
                // metrics-server reports memory in whole KiB.
                "memory": format!("{}Ki", status.memory_bytes / 1024),
            },
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A stable, UID-shaped identifier derived from the pod's name (FNV-1a, twice).
pub(crate) fn uid(name: &str) -> String {
    let fnv = |seed: u64| name.bytes().fold(seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Unix seconds as RFC 3339 UTC with whole seconds (`2026-11-24T13:09:52Z`), as Kubernetes
/// writes timestamps.
pub(crate) fn rfc3339(unix_s: f64) -> String {
    let secs = if unix_s.is_finite() && unix_s > 0.0 { unix_s.floor() as i64 } else { 0 };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_957_792.0), "2026-11-29T13:09:52Z");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn selectors_parse() {
        use Requirement::*;
        let parsed = parse_selector("app=ai-mixer, region==us-west,tier!=db,canary,!legacy", true);
        assert_eq!(
            parsed,
            Ok(vec![
                Equals("app".into(), "ai-mixer".into()),
                Equals("region".into(), "us-west".into()),
                NotEquals("tier".into(), "db".into()),
                Exists("canary".into()),
                Absent("legacy".into()),
            ])
        );
        assert_eq!(parse_selector("", true), Ok(vec![]));
        assert!(parse_selector("env in (a,b)", true).is_err());
        assert!(parse_selector("=x", true).is_err());
        assert!(parse_selector("spec.nodeName", false).is_err());
        assert_eq!(parse_selector("spec.nodeName=n", false), Ok(vec![Equals("spec.nodeName".into(), "n".into())]));
    }

    #[test]
    fn requirements_match() {
        let labels = BTreeMap::from([("app".to_owned(), "ai-mixer".to_owned())]);
        let value = |k: &str| labels.get(k).cloned();
        assert!(Requirement::Equals("app".into(), "ai-mixer".into()).matches(value));
        assert!(!Requirement::Equals("app".into(), "other".into()).matches(value));
        assert!(Requirement::NotEquals("region".into(), "x".into()).matches(value));
        assert!(Requirement::Exists("app".into()).matches(value));
        assert!(!Requirement::Absent("app".into()).matches(value));
    }

    #[test]
    fn uids_are_stable_and_distinct() {
        assert_eq!(uid("mixer-a-0"), uid("mixer-a-0"));
        assert_ne!(uid("mixer-a-0"), uid("mixer-a-1"));
        assert_eq!(uid("mixer-a-0").len(), 36);
    }
}
