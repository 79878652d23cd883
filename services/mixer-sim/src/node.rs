//! One simulated Kubernetes node: its capacity, and the figures its kubelet reports (CPU,
//! memory, root file system, network), moving plausibly with the pods on it, or pinned by a
//! [`NodeFault`].

use std::sync::{Mutex, MutexGuard, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::fault::FaultError;
use crate::pod::unix_seconds;

/// Every simulated node's capacity, as numbers and as its manifest spells them.
pub(crate) const CPU_CORES: u64 = 8;
pub(crate) const CPU_QUANTITY: &str = "8";
pub(crate) const MEMORY_BYTES: u64 = 32 * 1024 * 1024 * 1024;
pub(crate) const MEMORY_QUANTITY: &str = "32Gi";
pub(crate) const FS_BYTES: u64 = 100 * 1024 * 1024 * 1024;
pub(crate) const FS_QUANTITY: &str = "100Gi";
/// What the node itself (kubelet, runtime, system daemons) uses besides its pods.
const SYSTEM_CPU_RANGE: (u64, u64) = (150_000_000, 450_000_000);
const SYSTEM_CPU_STEP: u64 = 10_000_000;
const SYSTEM_MEMORY_RANGE: (u64, u64) = (2 << 30, 3 << 30);
const SYSTEM_MEMORY_STEP: u64 = 8 << 20;
/// Page cache counted in `usageBytes` but not in the working set.
const PAGE_CACHE_BYTES: u64 = 1536 << 20;
/// The root file system wanders in this share of its capacity, a step at most per tick.
const DISK_RANGE: (f64, f64) = (0.40, 0.60);
const DISK_STEP: f64 = 0.0005;
/// Bytes per second on the wire besides the audio: control traffic, probes, logs.
const BASE_NET_BYTES_PER_S: f64 = 50_000.0;
/// One audio stream in and one mix out: 128 kbit/s each way.
const STREAM_BYTES_PER_S: f64 = 16_000.0;
/// The node's one network interface.
pub(crate) const INTERFACE: &str = "eth0";

/// Pins a node's figures, each a fraction (0..=1) of its capacity; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeFault {
    /// Root file system used (`usedBytes / capacityBytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_used_ratio: Option<f64>,
    /// CPU in use (`usageNanoCores / capacity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ratio: Option<f64>,
    /// Working-set memory (`workingSetBytes / capacity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_ratio: Option<f64>,
}

impl NodeFault {
    pub fn validate(&self) -> Result<(), FaultError> {
        for (name, value) in [
            ("disk_used_ratio", self.disk_used_ratio),
            ("cpu_ratio", self.cpu_ratio),
            ("memory_ratio", self.memory_ratio),
        ] {
            if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(FaultError::NodeRatio { name, value });
            }
        }
        Ok(())
    }
}

/// What the node's pods use at one instant (summed by the fleet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PodsLoad {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
    pub active_streams: u64,
}

/// The node's figures at one instant, as its kubelet reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NodeStats {
    pub cpu_nanocores: u64,
    /// Cumulative CPU time of the node since it started, ns.
    pub cpu_core_nanoseconds: u64,
    pub memory_working_set_bytes: u64,
    pub memory_usage_bytes: u64,
    pub fs_used_bytes: u64,
    /// Cumulative bytes on [`INTERFACE`] since the node started.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub started_unix_s: f64,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub region: String,
    started_unix_s: f64,
    state: Mutex<NodeState>,
}

#[derive(Debug)]
struct NodeState {
    fault: NodeFault,
    rng: StdRng,
    system_cpu_nanocores: u64,
    system_memory_bytes: u64,
    disk_used_ratio: f64,
    /// The pods' use at the last tick.
    pods: PodsLoad,
    cpu_core_nanoseconds: f64,
    rx_bytes: f64,
    tx_bytes: f64,
}

/// `fraction` (validated to 0..=1) of `capacity`, in whole units.
fn share_of(fraction: f64, capacity: u64) -> u64 {
    (fraction.clamp(0.0, 1.0) * capacity as f64).round() as u64
}

impl Node {
    pub(crate) fn new(name: String, region: String, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk_used_ratio = rng.random_range(DISK_RANGE.0..=DISK_RANGE.1);
        let state = NodeState {
            fault: NodeFault::default(),
            system_cpu_nanocores: rng.random_range(SYSTEM_CPU_RANGE.0..=SYSTEM_CPU_RANGE.1),
            system_memory_bytes: rng.random_range(SYSTEM_MEMORY_RANGE.0..=SYSTEM_MEMORY_RANGE.1),
            rng,
            disk_used_ratio,
            pods: PodsLoad::default(),
            cpu_core_nanoseconds: 0.0,
            rx_bytes: 0.0,
            tx_bytes: 0.0,
        };
        Self { name, region, started_unix_s: unix_seconds(), state: Mutex::new(state) }
    }

    /// Short, non-async critical sections only; the figures stay valid numbers after a panic.
    fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn fault(&self) -> NodeFault {
        self.state().fault.clone()
    }

    /// Replaces the fault (already validated).
    pub(crate) fn set_fault(&self, fault: NodeFault) {
        self.state().fault = fault;
    }

    /// Moves the figures on by `dt_s` seconds with `pods` using what they use now.
    pub(crate) fn tick(&self, pods: PodsLoad, dt_s: f64) {
        let state = &mut *self.state();
        state.pods = pods;
        state.system_cpu_nanocores =
            walk(&mut state.rng, state.system_cpu_nanocores, SYSTEM_CPU_RANGE, SYSTEM_CPU_STEP);
        state.system_memory_bytes =
            walk(&mut state.rng, state.system_memory_bytes, SYSTEM_MEMORY_RANGE, SYSTEM_MEMORY_STEP);
        let step = state.rng.random_range(-DISK_STEP..=DISK_STEP);
        state.disk_used_ratio = (state.disk_used_ratio + step).clamp(DISK_RANGE.0, DISK_RANGE.1);
        state.cpu_core_nanoseconds += cpu_nanocores(state) as f64 * dt_s;
        let bytes_per_s = BASE_NET_BYTES_PER_S + STREAM_BYTES_PER_S * pods.active_streams as f64;
        let jitter = state.rng.random_range(0.9..=1.1);
        state.rx_bytes += bytes_per_s * dt_s * jitter;
        state.tx_bytes += bytes_per_s * dt_s * jitter * 1.02;
    }

    pub(crate) fn stats(&self) -> NodeStats {
        let state = self.state();
        let working_set = match state.fault.memory_ratio {
            Some(ratio) => share_of(ratio, MEMORY_BYTES),
            None => (state.system_memory_bytes + state.pods.memory_bytes).min(MEMORY_BYTES),
        };
        let disk = state.fault.disk_used_ratio.unwrap_or(state.disk_used_ratio);
        NodeStats {
            cpu_nanocores: cpu_nanocores(&state),
            cpu_core_nanoseconds: state.cpu_core_nanoseconds as u64,
            memory_working_set_bytes: working_set,
            memory_usage_bytes: (working_set + PAGE_CACHE_BYTES).min(MEMORY_BYTES),
            fs_used_bytes: share_of(disk, FS_BYTES),
            rx_bytes: state.rx_bytes as u64,
            tx_bytes: state.tx_bytes as u64,
            started_unix_s: self.started_unix_s,
        }
    }
}

fn cpu_nanocores(state: &NodeState) -> u64 {
    let capacity = CPU_CORES * 1_000_000_000;
    match state.fault.cpu_ratio {
        Some(ratio) => share_of(ratio, capacity),
        None => (state.system_cpu_nanocores + state.pods.cpu_nanocores).min(capacity),
    }
}

/// One bounded random-walk step.
fn walk(rng: &mut StdRng, value: u64, (low, high): (u64, u64), step: u64) -> u64 {
    let up = rng.random_range(0..=2 * step);
    (value + up).saturating_sub(step).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> PodsLoad {
        PodsLoad { cpu_nanocores: 1_200_000_000, memory_bytes: 1 << 30, active_streams: 600 }
    }

    #[test]
    fn figures_move_plausibly_with_the_pods() {
        let node = Node::new("node-a-0".into(), "a".into(), 7);
        let before = node.stats();
        for _ in 0..600 {
            node.tick(load(), 0.1);
        }
        let after = node.stats();
        let disk = after.fs_used_bytes as f64 / FS_BYTES as f64;
        assert!((DISK_RANGE.0..=DISK_RANGE.1).contains(&disk), "disk at {disk}");
        let cpu = after.cpu_nanocores as f64 / (CPU_CORES as f64 * 1e9);
        assert!(cpu > 1.2 / 8.0 && cpu < 0.3, "cpu at {cpu}: the pods' 1.2 cores and the system's");
        assert!(after.memory_working_set_bytes >= 3 << 30 && after.memory_working_set_bytes <= 4 << 30);
        assert!(after.memory_usage_bytes > after.memory_working_set_bytes);
        // 60 simulated seconds of 600 streams at 16 kB/s (and the base), within the jitter.
        let expected = 60.0 * (BASE_NET_BYTES_PER_S + 600.0 * STREAM_BYTES_PER_S);
        let rx = (after.rx_bytes - before.rx_bytes) as f64;
        assert!(rx > expected * 0.85 && rx < expected * 1.15, "{rx} received, about {expected} expected");
        assert!(after.tx_bytes > before.tx_bytes && after.cpu_core_nanoseconds > before.cpu_core_nanoseconds);
    }

    #[test]
    fn a_fault_pins_and_clearing_it_releases() {
        let node = Node::new("node-a-0".into(), "a".into(), 7);
        node.set_fault(NodeFault { disk_used_ratio: Some(0.9), cpu_ratio: Some(0.5), memory_ratio: Some(0.25) });
        for _ in 0..50 {
            node.tick(load(), 0.1);
        }
        let stats = node.stats();
        assert_eq!(stats.fs_used_bytes, share_of(0.9, FS_BYTES));
        assert_eq!(stats.cpu_nanocores, 4_000_000_000);
        assert_eq!(stats.memory_working_set_bytes, MEMORY_BYTES / 4);
        node.set_fault(NodeFault::default());
        let disk = node.stats().fs_used_bytes as f64 / FS_BYTES as f64;
        assert!((DISK_RANGE.0..=DISK_RANGE.1).contains(&disk));
    }

    #[test]
    fn node_faults_are_fractions() {
        assert!(NodeFault::default().validate().is_ok());
        assert!(NodeFault { disk_used_ratio: Some(1.0), cpu_ratio: Some(0.0), memory_ratio: None }.validate().is_ok());
        for (fault, name) in [
            (NodeFault { disk_used_ratio: Some(1.5), ..NodeFault::default() }, "disk_used_ratio"),
            (NodeFault { cpu_ratio: Some(-0.1), ..NodeFault::default() }, "cpu_ratio"),
            (NodeFault { memory_ratio: Some(f64::NAN), ..NodeFault::default() }, "memory_ratio"),
        ] {
            let error = fault.validate().expect_err("refused").to_string();
            assert!(error.contains(name), "{error}");
        }
        assert!(serde_json::from_str::<NodeFault>(r#"{"disk": 0.9}"#).is_err());
    }
}
