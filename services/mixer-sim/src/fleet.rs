//! The whole simulated fleet: its pods by region, its fronts, its nodes, and fault changes
//! by name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::config::{SimConfig, GLOBAL_FRONTS};
use crate::error::SimError;
use crate::fault::{Fault, ShareAccumulator};
use crate::net_fault::EndpointFault;
use crate::node::{Node, NodeFault, PodsLoad};
use crate::pod::Pod;

#[derive(Debug)]
pub(crate) struct Fleet {
    pods: Vec<Arc<Pod>>,
    fronts: Vec<Arc<Front>>,
    nodes: Vec<Arc<Node>>,
    /// Per node (same order), the indices of its pods.
    node_pods: Vec<Vec<usize>>,
    rps_per_pod: f64,
    /// Moves on every fault change and restart: the Kubernetes API's list `resourceVersion`.
    version: AtomicU64,
}

/// An endpoint front: a pool of pods answered round-robin, and its own fault.
#[derive(Debug)]
pub(crate) struct Front {
    pub name: String,
    pods: Vec<Arc<Pod>>,
    next: AtomicUsize,
    fault: Mutex<(EndpointFault, ShareAccumulator)>,
}

/// What the front does with a `/health` request before any pod sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontVerdict {
    Hang,
    /// Wait `delay`, then answer 500 (`error`) or forward to the next pod.
    Answer {
        delay: Duration,
        error: bool,
    },
}

impl Front {
    fn new(name: String, pods: Vec<Arc<Pod>>) -> Self {
        Self { name, pods, next: AtomicUsize::new(0), fault: Mutex::new(Default::default()) }
    }

    /// The pod that answers the next request; the pool is never empty (config validation).
    pub(crate) fn next_pod(&self) -> Option<&Arc<Pod>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.pods.get(turn % self.pods.len().max(1))
    }

    /// A poisoned lock still holds a valid fault.
    fn locked(&self) -> MutexGuard<'_, (EndpointFault, ShareAccumulator)> {
        self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn fault(&self) -> EndpointFault {
        self.locked().0.clone()
    }

    /// Replaces the fault (already validated) and restarts its error share from zero.
    fn set_fault(&self, fault: EndpointFault) {
        *self.locked() = (fault, ShareAccumulator::default());
    }

    pub(crate) fn verdict(&self) -> FrontVerdict {
        let mut locked = self.locked();
        let (fault, errors) = &mut *locked;
        if fault.hang {
            return FrontVerdict::Hang;
        }
        let share_ppm = (fault.error_share.clamp(0.0, 1.0) * 1e6).round() as u32;
        FrontVerdict::Answer { delay: Duration::from_millis(fault.latency_ms), error: errors.next(share_ppm) }
    }
}

impl Fleet {
    /// Pods of a validated config; each pod's generator is seeded from the seed and its
    /// position, so adding a region does not change the figures of the ones before it. Pod
    /// `i` of a region runs on node `node-<region>-<i % nodes_per_region>`. Fronts: one per
    /// region (its pods), then `edge` and `api` (every pod).
    pub(crate) fn new(config: &SimConfig) -> Self {
        let mut pods = Vec::new();
        let mut nodes = Vec::new();
        let mut node_pods = Vec::new();
        let per_region = config.nodes_per_region.max(1);
        let seed = |salt: u64| config.seed.wrapping_mul(1_000_003).wrapping_add(salt);
        for (region, count) in &config.regions {
            let first_node = nodes.len();
            for n in 0..per_region {
                let salt = (1 << 32) + nodes.len() as u64;
                nodes.push(Arc::new(Node::new(format!("node-{region}-{n}"), region.clone(), seed(salt))));
                node_pods.push(Vec::new());
            }
            for i in 0..*count {
                let node = format!("node-{region}-{}", i % per_region);
                node_pods[first_node + i % per_region].push(pods.len());
                pods.push(Arc::new(Pod::new(
                    format!("mixer-{region}-{i}"),
                    region.clone(),
                    node,
                    seed(pods.len() as u64),
                )));
            }
        }
        let regional = config.regions.iter().map(|(region, _)| {
            let pool = pods.iter().filter(|p| &p.region == region).cloned().collect();
            (region.clone(), pool)
        });
        let global = GLOBAL_FRONTS.iter().map(|name| ((*name).to_owned(), pods.clone()));
        let fronts = regional.chain(global).map(|(name, pool)| Arc::new(Front::new(name, pool))).collect();
        Self {
            pods,
            fronts,
            nodes,
            node_pods,
            rps_per_pod: config.requests_per_second_per_pod,
            version: AtomicU64::new(1),
        }
    }

    /// The current `resourceVersion` of the fleet's pods.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    pub(crate) fn fronts(&self) -> &[Arc<Front>] {
        &self.fronts
    }

    pub(crate) fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The pods running on `node` (by position in [`Fleet::nodes`]).
    pub(crate) fn pods_on(&self, node: usize) -> impl Iterator<Item = &Arc<Pod>> {
        self.node_pods.get(node).into_iter().flatten().filter_map(|i| self.pods.get(*i))
    }

    fn pod(&self, name: &str) -> Result<&Arc<Pod>, SimError> {
        self.pods.iter().find(|p| p.name == name).ok_or_else(|| SimError::UnknownPod(name.to_owned()))
    }

    pub(crate) fn front(&self, name: &str) -> Result<&Arc<Front>, SimError> {
        self.fronts.iter().find(|f| f.name == name).ok_or_else(|| SimError::UnknownEndpoint(name.to_owned()))
    }

    pub(crate) fn node(&self, name: &str) -> Result<(usize, &Arc<Node>), SimError> {
        self.nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == name)
            .ok_or_else(|| SimError::UnknownNode(name.to_owned()))
    }

    /// Sets one pod's fault; returns the pod names it applied to.
    pub(crate) fn set_pod_fault(&self, name: &str, fault: Fault) -> Result<Vec<String>, SimError> {
        fault.validate()?;
        let pod = self.pod(name)?;
        tracing::info!(pod = %pod.name, ?fault, "fault set");
        pod.set_fault(fault);
        self.changed();
        Ok(vec![pod.name.clone()])
    }

    /// Sets the fault on every pod of the region (replacing their own faults).
    pub(crate) fn set_region_fault(&self, region: &str, fault: Fault) -> Result<Vec<String>, SimError> {
        fault.validate()?;
        let pods: Vec<&Arc<Pod>> = self.pods.iter().filter(|p| p.region == region).collect();
        if pods.is_empty() {
            return Err(SimError::UnknownRegion(region.to_owned()));
        }
        tracing::info!(%region, pods = pods.len(), ?fault, "region fault set");
        for pod in &pods {
            pod.set_fault(fault.clone());
        }
        self.changed();
        Ok(pods.iter().map(|p| p.name.clone()).collect())
    }

    /// Sets a front's own fault (its `down` is the network's to apply).
    pub(crate) fn set_endpoint_fault(&self, name: &str, fault: EndpointFault) -> Result<(), SimError> {
        fault.validate()?;
        let front = self.front(name)?;
        tracing::info!(endpoint = %front.name, ?fault, "endpoint fault set");
        front.set_fault(fault);
        Ok(())
    }

    pub(crate) fn set_node_fault(&self, name: &str, fault: NodeFault) -> Result<(), SimError> {
        fault.validate()?;
        let (_, node) = self.node(name)?;
        tracing::info!(node = %node.name, ?fault, "node fault set");
        node.set_fault(fault);
        self.changed();
        Ok(())
    }

    /// Clears the faults of every pod, front and node.
    pub(crate) fn clear_faults(&self) {
        tracing::info!("faults cleared");
        for pod in &self.pods {
            pod.set_fault(Fault::default());
        }
        for front in &self.fronts {
            front.set_fault(EndpointFault::default());
        }
        for node in &self.nodes {
            node.set_fault(NodeFault::default());
        }
        self.changed();
    }

    pub(crate) fn restart_pod(&self, name: &str) -> Result<(), SimError> {
        let pod = self.pod(name)?;
        tracing::info!(pod = %pod.name, "pod restarted");
        pod.restart();
        self.changed();
        Ok(())
    }

    /// `/metrics` requests answered so far, by pod.
    pub(crate) fn scrapes(&self) -> BTreeMap<String, u64> {
        self.pods.iter().map(|p| (p.name.clone(), p.scrapes())).collect()
    }

    /// Current faults of the pods that have one.
    pub(crate) fn faults(&self) -> BTreeMap<String, Fault> {
        self.pods.iter().map(|p| (p.name.clone(), p.fault())).filter(|(_, fault)| *fault != Fault::default()).collect()
    }

    /// Current faults of the fronts that have one.
    pub(crate) fn endpoint_faults(&self) -> BTreeMap<String, EndpointFault> {
        let faults = self.fronts.iter().map(|f| (f.name.clone(), f.fault()));
        faults.filter(|(_, fault)| *fault != EndpointFault::default()).collect()
    }

    /// Current faults of the nodes that have one.
    pub(crate) fn node_faults(&self) -> BTreeMap<String, NodeFault> {
        let faults = self.nodes.iter().map(|n| (n.name.clone(), n.fault()));
        faults.filter(|(_, fault)| *fault != NodeFault::default()).collect()
    }

    /// What the pods on the node (by position) use now.
    pub(crate) fn load_of(&self, node: usize) -> PodsLoad {
        self.pods_on(node).map(|pod| pod.kube_status()).fold(PodsLoad::default(), |load, status| PodsLoad {
            cpu_nanocores: load.cpu_nanocores + status.cpu_nanocores,
            memory_bytes: load.memory_bytes + status.memory_bytes,
            active_streams: load.active_streams + status.active_streams,
        })
    }

    pub(crate) fn tick(&self, dt_s: f64) {
        for pod in &self.pods {
            pod.tick(self.rps_per_pod, dt_s);
        }
        for (i, node) in self.nodes.iter().enumerate() {
            node.tick(self.load_of(i), dt_s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> (Fleet, SimConfig) {
        let config =
            SimConfig { regions: vec![("a".into(), 2), ("b".into(), 3)], nodes_per_region: 2, ..SimConfig::default() };
        (Fleet::new(&config), config)
    }

    #[test]
    fn names_fronts_and_nodes() {
        let (fleet, _) = fleet();
        let names: Vec<&str> = fleet.pods().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["mixer-a-0", "mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]);
        let nodes: Vec<&str> = fleet.pods().iter().map(|p| p.node.as_str()).collect();
        assert_eq!(nodes, ["node-a-0", "node-a-1", "node-b-0", "node-b-1", "node-b-0"]);
        let fronts = fleet.fronts();
        let sizes: Vec<(&str, usize)> = fronts.iter().map(|f| (f.name.as_str(), f.pods.len())).collect();
        assert_eq!(sizes, [("a", 2), ("b", 3), ("edge", 5), ("api", 5)]);
        let b = &fronts[1];
        let turns: Vec<String> = (0..4).filter_map(|_| b.next_pod().map(|p| p.name.clone())).collect();
        assert_eq!(turns, ["mixer-b-0", "mixer-b-1", "mixer-b-2", "mixer-b-0"]);
        let nodes: Vec<&str> = fleet.nodes().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(nodes, ["node-a-0", "node-a-1", "node-b-0", "node-b-1"]);
        let on_b0: Vec<&str> = fleet.pods_on(2).map(|p| p.name.as_str()).collect();
        assert_eq!(on_b0, ["mixer-b-0", "mixer-b-2"]);
        let load = fleet.load_of(2);
        let statuses: Vec<_> = fleet.pods_on(2).map(|p| p.kube_status()).collect();
        assert_eq!(load.memory_bytes, statuses.iter().map(|s| s.memory_bytes).sum::<u64>());
    }

    #[test]
    fn front_faults_hang_delay_and_fail_an_exact_share() {
        let (fleet, _) = fleet();
        let front = fleet.front("a").expect("a front");
        assert_eq!(front.verdict(), FrontVerdict::Answer { delay: Duration::ZERO, error: false });
        let bad = EndpointFault { error_share: 1.5, ..EndpointFault::default() };
        assert!(matches!(fleet.set_endpoint_fault("a", bad), Err(SimError::InvalidFault(_))));
        assert!(matches!(fleet.set_endpoint_fault("z", EndpointFault::default()), Err(SimError::UnknownEndpoint(_))));
        let fault = EndpointFault { latency_ms: 30, error_share: 0.25, ..EndpointFault::default() };
        fleet.set_endpoint_fault("a", fault).expect("valid");
        let errors = (0..100).filter(|_| matches!(front.verdict(), FrontVerdict::Answer { error: true, .. })).count();
        assert_eq!(errors, 25);
        assert!(matches!(front.verdict(), FrontVerdict::Answer { delay, .. } if delay == Duration::from_millis(30)));
        fleet.set_endpoint_fault("a", EndpointFault { hang: true, ..EndpointFault::default() }).expect("valid");
        assert_eq!(front.verdict(), FrontVerdict::Hang);
        assert_eq!(fleet.endpoint_faults().keys().collect::<Vec<_>>(), ["a"]);
        fleet.clear_faults();
        assert!(fleet.endpoint_faults().is_empty());
    }

    #[test]
    fn faults_by_pod_and_region() {
        let (fleet, _) = fleet();
        let down = Fault { down: true, ..Fault::default() };
        assert!(matches!(fleet.set_pod_fault("nope", down.clone()), Err(SimError::UnknownPod(_))));
        assert!(matches!(fleet.set_region_fault("c", down.clone()), Err(SimError::UnknownRegion(_))));
        let bad = Fault { error_share: 2.0, ..Fault::default() };
        assert!(matches!(fleet.set_pod_fault("mixer-a-0", bad), Err(SimError::InvalidFault(_))));
        assert_eq!(fleet.set_region_fault("b", down.clone()).map(|p| p.len()).ok(), Some(3));
        fleet.set_pod_fault("mixer-a-1", down).ok();
        let faulty: Vec<String> = fleet.faults().into_keys().collect();
        assert_eq!(faulty, ["mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]);
        let disk = NodeFault { disk_used_ratio: Some(0.9), ..NodeFault::default() };
        assert!(matches!(fleet.set_node_fault("node-z-0", disk.clone()), Err(SimError::UnknownNode(_))));
        fleet.set_node_fault("node-b-1", disk).expect("valid");
        assert_eq!(fleet.node_faults().keys().collect::<Vec<_>>(), ["node-b-1"]);
        fleet.clear_faults();
        assert!(fleet.faults().is_empty() && fleet.node_faults().is_empty());
    }
}
