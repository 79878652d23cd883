//! The simulated nodes in the Kubernetes API, as a cluster's API server and kubelets show
//! them:
//!
//! * `GET /k8s/api/v1/nodes`: a `NodeList`; `GET /k8s/api/v1/nodes/{node}`: one `Node`, with
//!   `status.capacity` / `allocatable` (`cpu`, `memory`, `ephemeral-storage`, `pods`), the
//!   region label, and `Ready`, `MemoryPressure` and `DiskPressure` conditions (disk pressure
//!   below 10 % available, the kubelet's default eviction threshold).
//! * `GET /k8s/api/v1/nodes/{node}/proxy/stats/summary`: the kubelet's stats summary (what
//!   metrics-server reads) through the API server's node proxy: `node.cpu.usageNanoCores`,
//!   `node.memory.workingSetBytes` / `availableBytes` / `usageBytes`, the root file system in
//!   `node.fs` (also as `runtime.imageFs`: images live on it), cumulative
//!   `node.network.interfaces[].rxBytes` / `txBytes`, and one entry per pod on the node.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::k8s::{pod_labels, rfc3339, uid, K8sState, KubeError, CONTAINER, NAMESPACE};
use crate::node::{
    Node, NodeStats, CPU_CORES, CPU_QUANTITY, FS_BYTES, FS_QUANTITY, INTERFACE, MEMORY_BYTES, MEMORY_QUANTITY,
};
use crate::pod::unix_seconds;

/// What the kubelet reserves for the system: the rest is allocatable to pods.
const ALLOCATABLE_CPU: &str = "7910m";
const ALLOCATABLE_MEMORY: &str = "31Gi";
const MAX_PODS: &str = "110";
/// The kubelet's default eviction thresholds: `nodefs.available<10%`, `memory.available<100Mi`.
const DISK_PRESSURE_AVAILABLE: f64 = 0.10;
const MEMORY_PRESSURE_AVAILABLE_BYTES: u64 = 100 << 20;
/// File system inodes: one per 16 KiB, as `mkfs.ext4` makes them.
const INODES: u64 = FS_BYTES / 16384;

pub(crate) fn routes() -> Router<K8sState> {
    Router::new()
        .route("/api/v1/nodes", get(node_list))
        .route("/api/v1/nodes/{node}", get(one_node))
        .route("/api/v1/nodes/{node}/proxy/stats/summary", get(summary))
}

fn find<'a>(state: &'a K8sState, name: &str) -> Result<(usize, &'a Node), KubeError> {
    state
        .fleet
        .node(name)
        .map(|(index, node)| (index, node.as_ref()))
        .map_err(|_| KubeError(StatusCode::NOT_FOUND, format!("nodes \"{name}\" not found")))
}

async fn node_list(State(state): State<K8sState>) -> Json<Value> {
    let items: Vec<Value> = state.fleet.nodes().iter().map(|node| node_object(&state, node)).collect();
    Json(json!({
        "apiVersion": "v1",
        "kind": "NodeList",
        "metadata": {"resourceVersion": state.fleet.version().to_string()},
        "items": items,
    }))
}

async fn one_node(State(state): State<K8sState>, Path(name): Path<String>) -> Result<Json<Value>, KubeError> {
    let (_, node) = find(&state, &name)?;
    let mut object = node_object(&state, node);
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("Node");
    Ok(Json(object))
}

fn node_object(state: &K8sState, node: &Node) -> Value {
    let stats = node.stats();
    let created = rfc3339(stats.started_unix_s);
    let now = rfc3339(unix_seconds());
    let disk_available = 1.0 - stats.fs_used_bytes as f64 / FS_BYTES as f64;
    let memory_available = MEMORY_BYTES.saturating_sub(stats.memory_working_set_bytes);
    let condition = |kind: &str, pressed: bool, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": if pressed { "True" } else { "False" },
            "lastHeartbeatTime": now,
            "lastTransitionTime": created,
            "reason": reason,
            "message": message,
        })
    };
    let disk_pressure = disk_available < DISK_PRESSURE_AVAILABLE;
    let memory_pressure = memory_available < MEMORY_PRESSURE_AVAILABLE_BYTES;
    let capacity =
        json!({"cpu": CPU_QUANTITY, "memory": MEMORY_QUANTITY, "ephemeral-storage": FS_QUANTITY, "pods": MAX_PODS});
    json!({
        "metadata": {
            "name": node.name,
            "uid": uid(&node.name),
            "resourceVersion": state.fleet.version().to_string(),
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": node.region,
            },
        },
        "spec": {"providerID": format!("sim://{}", node.name)},
        "status": {
            "capacity": capacity,
            "allocatable": {
                "cpu": ALLOCATABLE_CPU,
                "memory": ALLOCATABLE_MEMORY,
                "ephemeral-storage": FS_QUANTITY,
                "pods": MAX_PODS,
            },
            "conditions": [
                condition("MemoryPressure", memory_pressure,
                    if memory_pressure { "KubeletHasInsufficientMemory" } else { "KubeletHasSufficientMemory" },
                    "kubelet has sufficient memory available"),
                condition("DiskPressure", disk_pressure,
                    if disk_pressure { "KubeletHasDiskPressure" } else { "KubeletHasNoDiskPressure" },
                    "kubelet has no disk pressure"),
                condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", true, "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uid(&format!("machine-{}", node.name)).replace('-', ""),
                "systemUUID": uid(&format!("system-{}", node.name)),
                "bootID": uid(&format!("boot-{}", node.name)),
                "kernelVersion": "6.8.0-sim",
                "osImage": "mixer-sim node",
                "containerRuntimeVersion": "containerd://2.0.0",
                "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

async fn summary(State(state): State<K8sState>, Path(name): Path<String>) -> Result<Json<Value>, KubeError> {
    let (index, node) = find(&state, &name)?;
    let stats = node.stats();
    let now = rfc3339(unix_seconds());
    let pods: Vec<Value> = state
        .fleet
        .pods_on(index)
        .map(|pod| {
            let status = pod.kube_status();
            let started = rfc3339(status.started_unix_s);
            let uptime_s = (unix_seconds() - status.started_unix_s).max(0.0);
            let cpu = json!({
                "time": now,
                "usageNanoCores": status.cpu_nanocores,
                "usageCoreNanoSeconds": (status.cpu_nanocores as f64 * uptime_s) as u64,
            });
            let memory = json!({
                "time": now,
                "usageBytes": status.memory_bytes,
                "workingSetBytes": status.memory_bytes,
                "rssBytes": status.memory_bytes / 10 * 9,
                "pageFaults": 0,
                "majorPageFaults": 0,
            });
            json!({
                "podRef": {"name": pod.name, "namespace": NAMESPACE, "uid": uid(&pod.name)},
                "startTime": rfc3339(status.created_unix_s),
                "containers": [{"name": CONTAINER, "startTime": started, "cpu": cpu, "memory": memory}],
                "cpu": cpu,
                "memory": memory,
                "labels": pod_labels(pod),
            })
        })
        .collect();
    Ok(Json(json!({"node": node_stats(&node.name, &stats, &now), "pods": pods})))
}

fn node_stats(name: &str, stats: &NodeStats, now: &str) -> Value {
    let interface = json!({
        "name": INTERFACE,
        "rxBytes": stats.rx_bytes,
        "rxErrors": 0,
        "txBytes": stats.tx_bytes,
        "txErrors": 0,
    });
    let used_share = stats.fs_used_bytes as f64 / FS_BYTES as f64;
    let inodes_used = (INODES as f64 * used_share / 4.0) as u64;
    let fs = json!({
        "time": now,
        "availableBytes": FS_BYTES - stats.fs_used_bytes.min(FS_BYTES),
        "capacityBytes": FS_BYTES,
        "usedBytes": stats.fs_used_bytes,
        "inodesFree": INODES - inodes_used,
        "inodes": INODES,
        "inodesUsed": inodes_used,
    });
    let mut network = interface.clone();
    network["time"] = json!(now);
    network["interfaces"] = json!([interface]);
    json!({
        "nodeName": name,
        "startTime": rfc3339(stats.started_unix_s),
        "cpu": {
            "time": now,
            "usageNanoCores": stats.cpu_nanocores,
            "usageCoreNanoSeconds": stats.cpu_core_nanoseconds,
        },
        "memory": {
            "time": now,
            "availableBytes": MEMORY_BYTES.saturating_sub(stats.memory_working_set_bytes),
            "usageBytes": stats.memory_usage_bytes,
            "workingSetBytes": stats.memory_working_set_bytes,
            "rssBytes": stats.memory_working_set_bytes / 10 * 8,
            "pageFaults": 0,
            "majorPageFaults": 0,
        },
        "network": network,
        "fs": fs,
        "runtime": {"imageFs": fs},
        "rlimit": {"time": now, "maxpid": 4_194_304, "curproc": 400 + CPU_CORES * 20},
    })
}
