//! Sampling the pods on the prober's node: readiness, restarts since the previous sample,
//! memory against its limit. Pods come from the Kubernetes API (`spec.nodeName=<node>`),
//! memory use from the metrics API (`metrics.k8s.io/v1beta1`, when the cluster has one).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Client;
use mixmon_model::{EntityName, PodSample, Record};
use serde::Deserialize;
use tokio::sync::watch;

use super::discovery::pods_api;
use super::quantity::parse_bytes;
use super::{unix_ms, Emit, RateLimitedWarn};

/// `PodMetricsList` of `metrics.k8s.io/v1beta1`: only what is read.
#[derive(Debug, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[derive(Debug, Deserialize)]
struct PodMetrics {
    metadata: MetricsMeta,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct MetricsMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// What one pod looked like at one sample, before restarts are turned into an increase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub pod: EntityName,
    pub namespace: EntityName,
    /// Tells a re-created pod of the same name from the old one.
    pub uid: String,
    pub ready: bool,
    /// Sum of the containers' restart counts.
    pub restart_count: u64,
    pub memory_limit_bytes: Option<u64>,
}

/// The state of `pod`, or `None` for a pod without a usable name or namespace, or one that has
/// finished (Succeeded, Failed).
pub fn pod_state(pod: &Pod) -> Option<PodState> {
    let name = EntityName::new(pod.metadata.name.as_deref()?).ok()?;
    let namespace = EntityName::new(pod.metadata.namespace.as_deref().unwrap_or("default")).ok()?;
    let status = pod.status.as_ref();
    if matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restart_count = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| u64::try_from(c.restart_count).unwrap_or(0)).sum());
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let memory_limit_bytes = if containers.is_empty() {
        None
    } else {
        containers.iter().try_fold(0u64, |sum, c| {
            let limit = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
            sum.checked_add(parse_bytes(&limit.0)?)
        })
    };
    Some(PodState {
        pod: name,
        namespace,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        ready,
        restart_count,
        memory_limit_bytes,
    })
}

/// Samples the pods on one node.
pub struct PodSampler {
    client: Client,
    node: EntityName,
    namespace: Option<String>,
    /// `(namespace, pod)` → (uid, restart count) at the previous sample.
    restarts: HashMap<(EntityName, EntityName), (String, u64)>,
    warn: RateLimitedWarn,
    metrics_warn: RateLimitedWarn,
}

impl PodSampler {
    pub fn new(client: Client, node: EntityName, namespace: Option<String>) -> Self {
        PodSampler {
            client,
            node,
            namespace,
            restarts: HashMap::new(),
            warn: RateLimitedWarn::new(Duration::from_secs(300)),
            metrics_warn: RateLimitedWarn::new(Duration::from_secs(3600)),
        }
    }

    /// One sample of every pod on the node.
    pub async fn sample(&mut self, weight_ms: u32) -> Result<Vec<PodSample>, kube::Error> {
        let at_ms = unix_ms();
        let api = pods_api(self.client.clone(), self.namespace.as_deref());
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let listed = api.list(&params).await?;
        let states: Vec<PodState> = listed
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(self.node.as_str()))
            .filter_map(pod_state)
            .collect();
        let memory = self.memory(&states).await;
        let mut seen = HashMap::with_capacity(states.len());
        let mut samples = Vec::with_capacity(states.len());
        for state in states {
            let key = (state.namespace.clone(), state.pod.clone());
            let restarts = match self.restarts.get(&key) {
                Some((uid, before)) if *uid == state.uid => state.restart_count.saturating_sub(*before),
                // First sample of this pod (or a new pod under an old name).
                _ => 0,
            };
            seen.insert(key.clone(), (state.uid.clone(), state.restart_count));
            samples.push(PodSample {
                memory_bytes: memory
                    .get(&(state.namespace.as_str().to_owned(), state.pod.as_str().to_owned()))
                    .copied(),
                pod: state.pod,
                namespace: state.namespace,
                node: self.node.clone(),
                at_ms,
                weight_ms,
                ready: state.ready,
                restarts,
                memory_limit_bytes: state.memory_limit_bytes,
            });
        }
        self.restarts = seen;
        Ok(samples)
    }

    /// Working-set memory per `(namespace, pod)`, from the metrics API of each namespace the
    /// pods are in. A namespace whose metrics cannot be read gives nothing (unknown).
    async fn memory(&mut self, states: &[PodState]) -> HashMap<(String, String), u64> {
        let mut namespaces: Vec<&str> = states.iter().map(|s| s.namespace.as_str()).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let mut out = HashMap::new();
        for ns in namespaces {
            let request = match http::Request::get(format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"))
                .body(Vec::new())
            {
                Ok(r) => r,
                Err(_) => continue,
            };
            let list: PodMetricsList = match self.client.request(request).await {
                Ok(list) => list,
                Err(error) => {
                    tracing::debug!(namespace = ns, %error, "pod metrics unavailable");
                    if self.metrics_warn.allow() {
                        tracing::warn!(namespace = ns, %error, "pod metrics (metrics.k8s.io) unavailable");
                    }
                    continue;
                }
            };
            for item in list.items {
                let used = item.containers.iter().try_fold(0u64, |sum, c| {
                    let memory = c.usage.get("memory")?;
                    sum.checked_add(parse_bytes(memory)?)
                });
                if let Some(used) = used.filter(|_| !item.containers.is_empty()) {
                    let namespace =
                        if item.metadata.namespace.is_empty() { ns.to_owned() } else { item.metadata.namespace };
                    out.insert((namespace, item.metadata.name), used);
                }
            }
        }
        out
    }

    /// Samples every `interval` until `stop` turns true.
    pub async fn run(mut self, interval: Duration, emit: Emit, mut stop: watch::Receiver<bool>) {
        let weight_ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let sampled = tokio::select! {
                sampled = self.sample(weight_ms) => sampled,
                _ = stop.wait_for(|s| *s) => return,
            };
            match sampled {
                Ok(samples) => {
                    for sample in samples {
                        emit(Record::Pod(sample));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "listing the pods on this node failed");
                    if self.warn.allow() {
                        tracing::warn!(%error, "listing the pods on this node failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a pod")
    }

    #[test]
    fn readiness_restarts_and_limits() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "mixer-0", "namespace": "audio", "uid": "u1"},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "mixer", "resources": {"limits": {"memory": "512Mi", "cpu": "1"}}},
                {"name": "sidecar", "resources": {"limits": {"memory": "64Mi"}}}
            ]},
            "status": {"phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "mixer", "restartCount": 2, "ready": true, "image": "x", "imageID": "", "containerID": ""},
                    {"name": "sidecar", "restartCount": 1, "ready": true, "image": "x", "imageID": ""}
                ]}
        }));
        let state = pod_state(&p).expect("a state");
        assert!(state.ready);
        assert_eq!(state.restart_count, 3);
        assert_eq!(state.memory_limit_bytes, Some(576 << 20));
        assert_eq!((state.pod.as_str(), state.namespace.as_str(), state.uid.as_str()), ("mixer-0", "audio", "u1"));

        let no_limit = pod(serde_json::json!({
            "metadata": {"name": "mixer-1", "namespace": "audio"},
            "spec": {"containers": [
                {"name": "mixer", "resources": {"limits": {"memory": "1Gi"}}},
                {"name": "sidecar"}
            ]},
            "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
        }));
        let state = pod_state(&no_limit).expect("a state");
        assert!(!state.ready);
        assert_eq!((state.restart_count, state.memory_limit_bytes), (0, None));

        let done = pod(serde_json::json!({
            "metadata": {"name": "job-1", "namespace": "audio"},
            "spec": {"containers": [{"name": "job"}]},
            "status": {"phase": "Succeeded"}
        }));
        assert_eq!(pod_state(&done), None);
        let bad_name = pod(serde_json::json!({"metadata": {"name": "a b"}, "spec": {"containers": []}}));
        assert_eq!(pod_state(&bad_name), None);
    }
}
