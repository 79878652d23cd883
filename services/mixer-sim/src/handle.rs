//! Starting the simulator: bind every listener, serve, tick; and the handle that stops it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::fault::Fault;
use crate::fleet::Fleet;
use crate::health::{front_router, pod_router};
use crate::shutdown::Shutdown;
use crate::ticker;

/// How long [`SimHandle::shutdown`] lets connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where everything listens; also the JSON written by the binary's `--addr-file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAddresses {
    pub admin: SocketAddr,
    /// Front name (`us-west`, ..., `edge`, `api`) to its address.
    pub endpoints: BTreeMap<String, SocketAddr>,
    pub pods: Vec<PodAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodAddress {
    pub name: String,
    pub region: String,
    pub addr: SocketAddr,
    /// The simulated Kubernetes node the pod runs on (`node-<region>-<i>`).
    #[serde(default)]
    pub node: String,
}

/// A running simulator. Dropping it aborts everything; [`SimHandle::shutdown`] stops it
/// gracefully.
#[derive(Debug)]
pub struct SimHandle {
    addresses: SimAddresses,
    fleet: Arc<Fleet>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Binds every pod, front and the admin API, then starts serving and ticking. Nothing is
/// served unless every listener could be bound.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    config.validate()?;
    let fleet = Arc::new(Fleet::new(&config));
    let fronts = fleet.fronts(&config.regions);
    let any_port = SocketAddr::new(config.bind_ip, 0);

    let mut pods = Vec::new();
    for pod in fleet.pods() {
        let (listener, addr) = bind(any_port).await?;
        pods.push((listener, Arc::clone(pod)));
        tracing::debug!(pod = %pod.name, %addr, "pod listening");
    }
    let mut front_listeners = Vec::new();
    for front in fronts {
        let (listener, _) = bind(any_port).await?;
        front_listeners.push((listener, Arc::new(front)));
    }
    let (admin_listener, admin_addr) = bind(config.admin_addr).await?;

    let addresses = SimAddresses {
        admin: admin_addr,
        endpoints: front_listeners
            .iter()
            .filter_map(|(l, f)| l.local_addr().ok().map(|a| (f.name.clone(), a)))
            .collect(),
        pods: pods
            .iter()
            .filter_map(|(l, p)| {
                let addr = l.local_addr().ok()?;
                Some(PodAddress { name: p.name.clone(), region: p.region.clone(), addr, node: p.node.clone() })
            })
            .collect(),
    };

    let (stop, shutdown) = Shutdown::new();
    let mut tasks = JoinSet::new();
    for (listener, pod) in pods {
        tasks.spawn(serve(listener, pod_router(pod, shutdown.clone()), shutdown.clone()));
    }
    for (listener, front) in front_listeners {
        tasks.spawn(serve(listener, front_router(front, shutdown.clone()), shutdown.clone()));
    }
    let admin = admin::router(Arc::clone(&fleet), Arc::new(addresses.clone()), config.admin_token);
    tasks.spawn(serve(admin_listener, admin, shutdown.clone()));
    tasks.spawn(ticker::run(Arc::clone(&fleet), shutdown));
    tracing::info!(pods = addresses.pods.len(), admin = %addresses.admin, "mixer simulator started");

    Ok(SimHandle { addresses, fleet, stop, tasks })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), SimError> {
    let bind_error = |source| SimError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) {
    let addr = listener.local_addr().ok();
    if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown.wait()).await {
        tracing::warn!(?addr, %error, "listener stopped with an error");
    }
}

impl SimHandle {
    pub fn addresses(&self) -> &SimAddresses {
        &self.addresses
    }

    /// Sets one pod's fault, replacing the one it had.
    pub fn set_pod_fault(&self, pod: &str, fault: Fault) -> Result<(), SimError> {
        self.fleet.set_pod_fault(pod, fault).map(drop)
    }

    /// Sets the fault on every pod of the region, replacing their own.
    pub fn set_region_fault(&self, region: &str, fault: Fault) -> Result<(), SimError> {
        self.fleet.set_region_fault(region, fault).map(drop)
    }

    pub fn clear_faults(&self) {
        self.fleet.clear_faults();
    }

    /// Current faults of the pods that have one, by pod name.
    pub fn faults(&self) -> BTreeMap<String, Fault> {
        self.fleet.faults()
    }

    /// `/metrics` requests each pod has answered so far, by pod name.
    pub fn scrapes(&self) -> BTreeMap<String, u64> {
        self.fleet.scrapes()
    }

    /// Zeroes the pod's counters and moves its start time, like a restarted process.
    pub fn restart_pod(&self, pod: &str) -> Result<(), SimError> {
        self.fleet.restart_pod(pod)
    }

    /// Stops the ticker and every listener; open connections get a grace period.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained =
            tokio::time::timeout(SHUTDOWN_GRACE, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("connections still open after the grace period; aborting them");
            self.tasks.shutdown().await;
        }
    }
}
