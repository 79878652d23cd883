//! The whole simulated fleet: its pods by region, its fronts, and fault changes by name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{SimConfig, GLOBAL_FRONTS};
use crate::error::SimError;
use crate::fault::Fault;
use crate::pod::Pod;

#[derive(Debug)]
pub(crate) struct Fleet {
    pods: Vec<Arc<Pod>>,
    rps_per_pod: f64,
    /// Moves on every fault change and restart: the Kubernetes API's list `resourceVersion`.
    version: AtomicU64,
}

/// An endpoint front: a pool of pods answered round-robin.
#[derive(Debug)]
pub(crate) struct Front {
    pub name: String,
    pods: Vec<Arc<Pod>>,
    next: AtomicUsize,
}

impl Front {
    /// The pod that answers the next request; the pool is never empty (config validation).
    pub(crate) fn next_pod(&self) -> Option<&Arc<Pod>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.pods.get(turn % self.pods.len().max(1))
    }
}

impl Fleet {
    /// Pods of a validated config; each pod's generator is seeded from the seed and its
    /// position, so adding a region does not change the figures of the ones before it. Pod
    /// `i` of a region runs on node `node-<region>-<i % nodes_per_region>`.
    pub(crate) fn new(config: &SimConfig) -> Self {
        let mut pods = Vec::new();
        let nodes = config.nodes_per_region.max(1);
        for (region, count) in &config.regions {
            for i in 0..*count {
                let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(pods.len() as u64);
                let node = format!("node-{region}-{}", i % nodes);
                pods.push(Arc::new(Pod::new(format!("mixer-{region}-{i}"), region.clone(), node, seed)));
            }
        }
        Self { pods, rps_per_pod: config.requests_per_second_per_pod, version: AtomicU64::new(1) }
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

    /// One front per region (its pods), then `edge` and `api` (every pod).
    pub(crate) fn fronts(&self, regions: &[(String, usize)]) -> Vec<Front> {
        let regional = regions.iter().map(|(region, _)| {
            let pool = self.pods.iter().filter(|p| &p.region == region).cloned().collect();
            (region.clone(), pool)
        });
        let global = GLOBAL_FRONTS.iter().map(|name| ((*name).to_owned(), self.pods.clone()));
        regional.chain(global).map(|(name, pods)| Front { name, pods, next: AtomicUsize::new(0) }).collect()
    }

    fn pod(&self, name: &str) -> Result<&Arc<Pod>, SimError> {
        self.pods.iter().find(|p| p.name == name).ok_or_else(|| SimError::UnknownPod(name.to_owned()))
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

    pub(crate) fn clear_faults(&self) {
        tracing::info!("faults cleared");
        for pod in &self.pods {
            pod.set_fault(Fault::default());
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

    pub(crate) fn tick(&self, dt_s: f64) {
        for pod in &self.pods {
            pod.tick(self.rps_per_pod, dt_s);
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
    fn names_and_fronts() {
        let (fleet, config) = fleet();
        let names: Vec<&str> = fleet.pods().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["mixer-a-0", "mixer-a-1", "mixer-b-0", "mixer-b-1", "mixer-b-2"]);
        let nodes: Vec<&str> = fleet.pods().iter().map(|p| p.node.as_str()).collect();
        assert_eq!(nodes, ["node-a-0", "node-a-1", "node-b-0", "node-b-1", "node-b-0"]);
        let fronts = fleet.fronts(&config.regions);
        let sizes: Vec<(&str, usize)> = fronts.iter().map(|f| (f.name.as_str(), f.pods.len())).collect();
        assert_eq!(sizes, [("a", 2), ("b", 3), ("edge", 5), ("api", 5)]);
        let b = &fronts[1];
        let turns: Vec<String> = (0..4).filter_map(|_| b.next_pod().map(|p| p.name.clone())).collect();
        assert_eq!(turns, ["mixer-b-0", "mixer-b-1", "mixer-b-2", "mixer-b-0"]);
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
        fleet.clear_faults();
        assert!(fleet.faults().is_empty());
    }
}
