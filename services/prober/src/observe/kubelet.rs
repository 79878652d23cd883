//! Sampling the prober's node from its kubelet instead of `/proc` (`[node] source =
//! "kubelet"`): the stats summary through the API server's node proxy
//! (`/api/v1/nodes/{node}/proxy/stats/summary`, what metrics-server reads) and the `Node`
//! object for its capacity, with the same `kube` client as pod discovery. So a prober that
//! cannot see the node's `/proc` (or a test against a simulated cluster) still samples it.
//!
//! The result is the same [`NodeSample`] as from `/proc`: CPU busy as `usageNanoCores` over
//! the node's CPU capacity, memory as the working set against the memory capacity, the root
//! file system (`node.fs`) as mount `/`, and network bytes as deltas of the cumulative
//! interface counters since the previous sample (none on the first). Needs `get` on `nodes`
//! and `nodes/proxy`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};
use mixmon_hostinfo::counter_increase;
use mixmon_model::{DiskSample, EntityName, NodeSample, Record};
use serde::Deserialize;
use tokio::sync::watch;

use super::quantity::{parse_bytes, parse_nanocores};
use super::{unix_ms, Emit, RateLimitedWarn};

/// The kubelet's `Summary` (`stats/v1alpha1`): only what is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub node: NodeStats,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    #[serde(default)]
    pub node_name: String,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
    pub fs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub usage_nano_cores: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub available_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub working_set_bytes: Option<u64>,
}

/// The default interface inline, and every interface in `interfaces`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(default)]
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    #[serde(default)]
    pub name: String,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
}

/// The node's capacity from its `Node` object (`status.capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub cpu_nanocores: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl Capacity {
    pub fn of(node: &Node) -> Self {
        let capacity = node.status.as_ref().and_then(|s| s.capacity.as_ref());
        let quantity = |name: &str| capacity.and_then(|c| c.get(name)).map(|q| q.0.as_str());
        Self {
            cpu_nanocores: quantity("cpu").and_then(parse_nanocores).filter(|n| *n > 0),
            memory_bytes: quantity("memory").and_then(parse_bytes).filter(|n| *n > 0),
        }
    }
}

/// The cumulative counters of every interface but loopback, by name.
fn interfaces(stats: &NodeStats) -> BTreeMap<String, (u64, u64)> {
    let Some(network) = &stats.network else { return BTreeMap::new() };
    // Older kubelets report only the default interface, inline.
    let listed =
        if network.interfaces.is_empty() { std::slice::from_ref(&network.default) } else { &network.interfaces };
    listed
        .iter()
        .filter(|i| !i.name.is_empty() && i.name != "lo")
        .map(|i| (i.name.clone(), (i.rx_bytes.unwrap_or(0), i.tx_bytes.unwrap_or(0))))
        .collect()
}

/// The node sample for `cur`, with network deltas against `prev` (the previous summary, if
/// any); what the kubelet did not report is unknown (`None`) or zero, never invented.
pub fn kubelet_sample(
    prev: Option<&NodeStats>,
    cur: &NodeStats,
    capacity: Capacity,
    node: EntityName,
    at_ms: i64,
    weight_ms: u32,
) -> NodeSample {
    let cpu_busy_ratio = cur
        .cpu
        .as_ref()
        .and_then(|c| c.usage_nano_cores)
        .zip(capacity.cpu_nanocores)
        .map(|(used, total)| (used as f64 / total as f64).clamp(0.0, 1.0));
    let memory = cur.memory.clone().unwrap_or_default();
    let used = memory.working_set_bytes.or(memory.usage_bytes).unwrap_or(0);
    let total = capacity.memory_bytes.or_else(|| memory.available_bytes.map(|a| a.saturating_add(used))).unwrap_or(0);
    let (mut rx, mut tx) = (0u64, 0u64);
    if let Some(prev) = prev {
        let before = interfaces(prev);
        for (name, (rx_now, tx_now)) in interfaces(cur) {
            if let Some((rx_before, tx_before)) = before.get(&name) {
                rx = rx.saturating_add(counter_increase(*rx_before, rx_now));
                tx = tx.saturating_add(counter_increase(*tx_before, tx_now));
            }
        }
    }
    let disks = cur
        .fs
        .as_ref()
        .and_then(|fs| Some((fs.used_bytes?, fs.capacity_bytes.filter(|c| *c > 0)?)))
        .map(|(used_bytes, total_bytes)| DiskSample { mount: "/".into(), used_bytes, total_bytes })
        .into_iter()
        .collect();
    NodeSample {
        node,
        at_ms,
        weight_ms,
        cpu_busy_ratio,
        memory_used_bytes: used,
        memory_total_bytes: total,
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        disks,
    }
}

/// Why a kubelet sample failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("reading node {node}: {source}")]
    Node { node: String, source: kube::Error },
    #[error("reading the stats summary of node {node}: {source}")]
    Summary { node: String, source: kube::Error },
    #[error("node {node} makes no request path: {reason}")]
    Request { node: String, reason: String },
    #[error("the stats summary is of node {found:?}, not {node}")]
    WrongNode { node: String, found: String },
}

/// Samples one node through the API server.
pub struct KubeletSampler {
    client: Client,
    node: EntityName,
    prev: Option<NodeStats>,
}

impl KubeletSampler {
    pub fn new(client: Client, node: EntityName) -> Self {
        Self { client, node, prev: None }
    }

    /// One sample: the node's capacity, then its summary.
    pub async fn sample(&mut self, weight_ms: u32) -> Result<NodeSample, KubeletError> {
        let name = self.node.as_str().to_owned();
        let node = Api::<Node>::all(self.client.clone())
            .get(&name)
            .await
            .map_err(|source| KubeletError::Node { node: name.clone(), source })?;
        let capacity = Capacity::of(&node);
        let path = format!("/api/v1/nodes/{name}/proxy/stats/summary");
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| KubeletError::Request { node: name.clone(), reason: e.to_string() })?;
        let summary: Summary = self
            .client
            .request(request)
            .await
            .map_err(|source| KubeletError::Summary { node: name.clone(), source })?;
        if !summary.node.node_name.is_empty() && summary.node.node_name != name {
            return Err(KubeletError::WrongNode { node: name, found: summary.node.node_name });
        }
        let sample =
            kubelet_sample(self.prev.as_ref(), &summary.node, capacity, self.node.clone(), unix_ms(), weight_ms);
        self.prev = Some(summary.node);
        Ok(sample)
    }

    /// Samples every `interval` until `stop` turns true.
    pub async fn run(mut self, interval: Duration, emit: Emit, mut stop: watch::Receiver<bool>) {
        let weight_ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
        let mut warn = RateLimitedWarn::new(Duration::from_secs(300));
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
                Ok(sample) => emit(Record::Node(sample)),
                Err(error) => {
                    tracing::debug!(%error, "node sample from the kubelet failed");
                    if warn.allow() {
                        tracing::warn!(%error, "node sample from the kubelet failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(json: serde_json::Value) -> NodeStats {
        serde_json::from_value::<Summary>(json).expect("a summary").node
    }

    fn summary(rx: u64, tx: u64) -> NodeStats {
        stats(serde_json::json!({"node": {
            "nodeName": "node-a",
            "cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 2_000_000_000u64, "usageCoreNanoSeconds": 5},
            "memory": {"availableBytes": 24u64 << 30, "usageBytes": 10u64 << 30, "workingSetBytes": 8u64 << 30},
            "network": {"name": "eth0", "rxBytes": rx, "txBytes": tx, "interfaces": [
                {"name": "eth0", "rxBytes": rx, "txBytes": tx},
                {"name": "lo", "rxBytes": rx * 10, "txBytes": tx * 10}
            ]},
            "fs": {"capacityBytes": 1000u64, "usedBytes": 900u64, "availableBytes": 100u64},
            "runtime": {"imageFs": {"capacityBytes": 5u64}}
        }, "pods": []}))
    }

    #[test]
    fn a_summary_becomes_a_node_sample() {
        let node = EntityName::new("node-a").expect("valid");
        let capacity = Capacity { cpu_nanocores: Some(8_000_000_000), memory_bytes: Some(32 << 30) };
        let first = kubelet_sample(None, &summary(1_000, 2_000), capacity, node.clone(), 7, 15_000);
        assert_eq!(first.cpu_busy_ratio, Some(0.25), "2 of 8 cores, known from the first sample");
        assert_eq!((first.memory_used_bytes, first.memory_total_bytes), (8 << 30, 32 << 30));
        assert_eq!(first.disks, [DiskSample { mount: "/".into(), used_bytes: 900, total_bytes: 1000 }]);
        assert_eq!((first.net_rx_bytes, first.net_tx_bytes), (0, 0), "no deltas without a previous sample");
        assert_eq!((first.node.as_str(), first.at_ms, first.weight_ms), ("node-a", 7, 15_000));

        let second =
            kubelet_sample(Some(&summary(1_000, 2_000)), &summary(1_500, 2_700), capacity, node.clone(), 8, 15_000);
        assert_eq!((second.net_rx_bytes, second.net_tx_bytes), (500, 700), "loopback left out");
        // Counters that went back (the interface was re-created) count what they have since.
        let reset = kubelet_sample(Some(&summary(1_500, 2_700)), &summary(100, 200), capacity, node, 9, 15_000);
        assert_eq!((reset.net_rx_bytes, reset.net_tx_bytes), (100, 200));
    }

    #[test]
    fn what_the_kubelet_leaves_out_is_unknown_not_invented() {
        let node = EntityName::new("node-a").expect("valid");
        let bare = stats(serde_json::json!({"node": {"nodeName": "node-a"}}));
        let sample = kubelet_sample(None, &bare, Capacity::default(), node.clone(), 1, 1);
        assert_eq!(sample.cpu_busy_ratio, None);
        assert_eq!((sample.memory_used_bytes, sample.memory_total_bytes), (0, 0));
        assert!(sample.disks.is_empty());
        // Without the Node's capacity, memory's total is the working set plus what is available.
        let partial = summary(0, 0);
        let sample = kubelet_sample(None, &partial, Capacity::default(), node.clone(), 1, 1);
        assert_eq!((sample.cpu_busy_ratio, sample.memory_total_bytes), (None, 32 << 30));
        // An old kubelet with only the inline default interface.
        let inline =
            |rx: u64| stats(serde_json::json!({"node": {"network": {"name": "eth0", "rxBytes": rx, "txBytes": 1}}}));
        let sample = kubelet_sample(Some(&inline(10)), &inline(25), Capacity::default(), node, 1, 1);
        assert_eq!(sample.net_rx_bytes, 15);
    }

    #[test]
    fn capacity_comes_from_the_node_object() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-a"},
            "status": {"capacity": {"cpu": "7910m", "memory": "32Gi", "pods": "110"}}
        }))
        .expect("a node");
        assert_eq!(Capacity::of(&node), Capacity { cpu_nanocores: Some(7_910_000_000), memory_bytes: Some(32 << 30) });
        let bare: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).expect("a node");
        assert_eq!(Capacity::of(&bare), Capacity::default());
    }
}
