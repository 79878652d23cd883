//! What the prober observes besides probes: the mixer pods' own metrics (`scrape`), found in a
//! static list or through the Kubernetes API (`discovery`), its node (`node` from `/proc`, or
//! `kubelet` from the kubelet's stats summary) and the pods on its node (`pods`). Each task turns what it sees into a [`Record`] and hands it to an
//! [`Emit`] callback (the prober's result sink), and stops when the stop signal turns true.

pub mod discovery;
pub mod kubelet;
pub mod node;
pub mod pods;
pub mod quantity;
pub mod region;
pub mod scrape;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mixmon_model::{EntityName, Record};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ObserveSettings;
use crate::ProberError;

/// Where records go: the prober's write-ahead buffer, or a test's vector.
pub type Emit = Arc<dyn Fn(Record) + Send + Sync>;

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A warning at most once per period (the debug line says it every time).
#[derive(Debug)]
pub(crate) struct RateLimitedWarn {
    period: Duration,
    last: Option<Instant>,
}

impl RateLimitedWarn {
    pub(crate) fn new(period: Duration) -> Self {
        RateLimitedWarn { period, last: None }
    }

    /// Whether to warn now; if so, the next one waits a period.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < self.period) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Starts every observer `settings` enables; each stops when `stop` turns true. Fails only
/// when the Kubernetes client cannot be built (no in-cluster configuration, unreadable files).
pub fn spawn(
    settings: ObserveSettings,
    node: &str,
    emit: Emit,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, ProberError> {
    let mut tasks = Vec::new();
    if settings.scrape.is_none() && settings.node.is_none() && settings.pods.is_none() {
        return Ok(tasks);
    }
    let node = EntityName::new(node).map_err(|e| ProberError::Config(format!("identity.node: {e}")))?;
    let kube = match &settings.kubernetes {
        Some(k) => Some(discovery::client(k)?),
        None => None,
    };
    if let Some(scrape) = settings.scrape {
        let discovered = match (&settings.kubernetes, &kube) {
            (Some(k), Some(client)) => {
                let (tx, rx) = watch::channel(Arc::new(Vec::new()));
                let discoverer = discovery::Discoverer::new(client.clone(), k.clone(), node.clone());
                tasks.push(tokio::spawn(discoverer.run(tx, stop.clone())));
                Some(rx)
            }
            _ => None,
        };
        tasks.push(tokio::spawn(scrape::run(
            scrape.settings,
            node.clone(),
            scrape.targets,
            discovered,
            emit.clone(),
            stop.clone(),
        )));
    }
    match (settings.node, &kube) {
        (Some(node_settings), Some(client)) if node_settings.source == node::NodeSource::Kubelet => {
            let sampler = kubelet::KubeletSampler::new(client.clone(), node.clone());
            tasks.push(tokio::spawn(sampler.run(node_settings.interval, emit.clone(), stop.clone())));
        }
        (Some(node_settings), _) if node_settings.source == node::NodeSource::Kubelet => {
            return Err(ProberError::Config(
                "node.source = \"kubelet\" needs the Kubernetes API; configure [scrape.kubernetes]".into(),
            ));
        }
        (Some(node_settings), _) => {
            tasks.push(tokio::spawn(node::run(node_settings, node.clone(), emit.clone(), stop.clone())));
        }
        (None, _) => {}
    }
    if let (Some(pods), Some(client)) = (settings.pods, kube) {
        let sampler = pods::PodSampler::new(client, node, pods.namespace);
        tasks.push(tokio::spawn(sampler.run(pods.interval, emit, stop)));
    }
    Ok(tasks)
}
