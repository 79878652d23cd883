//! Starting the simulator: bind every listener, serve, tick; and the handle that stops it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin;
use crate::config::SimConfig;
use crate::controls::{Controls, FaultList};
use crate::error::SimError;
use crate::fault::Fault;
use crate::fleet::Fleet;
use crate::health::{front_router, pod_router};
use crate::net_fault::{ClientCut, EndpointFault};
use crate::network::Network;
use crate::node::NodeFault;
use crate::port::Port;
use crate::serve::serve_port;
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
    controls: Controls,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Binds every pod, front and the admin API, then starts serving and ticking. Nothing is
/// served unless every listener could be bound.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    config.validate()?;
    let fleet = Arc::new(Fleet::new(&config));
    let any_port = SocketAddr::new(config.bind_ip, 0);

    let mut pod_ports = Vec::new();
    for pod in fleet.pods() {
        let port = Arc::new(Port::bind(pod.name.clone(), any_port)?);
        tracing::debug!(pod = %pod.name, addr = %port.addr, "pod listening");
        pod_ports.push(port);
    }
    let mut front_ports = BTreeMap::new();
    for front in fleet.fronts() {
        front_ports.insert(front.name.clone(), Arc::new(Port::bind(front.name.clone(), any_port)?));
    }
    let (admin_listener, admin_addr) = bind(config.admin_addr).await?;

    let addresses = SimAddresses {
        admin: admin_addr,
        endpoints: front_ports.iter().map(|(name, port)| (name.clone(), port.addr)).collect(),
        pods: fleet
            .pods()
            .iter()
            .zip(&pod_ports)
            .map(|(p, port)| PodAddress {
                name: p.name.clone(),
                region: p.region.clone(),
                addr: port.addr,
                node: p.node.clone(),
            })
            .collect(),
    };
    let network = Arc::new(Network::new(pod_ports.clone(), front_ports.clone()));
    let controls = Controls { fleet: Arc::clone(&fleet), network: Arc::clone(&network) };

    let (stop, shutdown) = Shutdown::new();
    let mut tasks = JoinSet::new();
    for (pod, port) in fleet.pods().iter().zip(pod_ports) {
        let router = pod_router(Arc::clone(pod), shutdown.clone());
        tasks.spawn(serve_port(port, router, Arc::clone(&network), shutdown.clone()));
    }
    for front in fleet.fronts() {
        if let Some(port) = front_ports.remove(&front.name) {
            let router = front_router(Arc::clone(front), shutdown.clone());
            tasks.spawn(serve_port(port, router, Arc::clone(&network), shutdown.clone()));
        }
    }
    let admin = admin::router(controls.clone(), Arc::new(addresses.clone()), config.admin_token);
    tasks.spawn(serve(admin_listener, admin, shutdown.clone()));
    tasks.spawn(ticker::run(Arc::clone(&fleet), shutdown));
    tracing::info!(pods = addresses.pods.len(), admin = %addresses.admin, "mixer simulator started");

    Ok(SimHandle { addresses, controls, stop, tasks })
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
        self.controls.fleet.set_pod_fault(pod, fault).map(drop)
    }

    /// Sets the fault on every pod of the region, replacing their own.
    pub fn set_region_fault(&self, region: &str, fault: Fault) -> Result<(), SimError> {
        self.controls.fleet.set_region_fault(region, fault).map(drop)
    }

    /// Sets an endpoint front's own fault, replacing the one it had: `down` closes its
    /// listener (connections refused) and clearing it listens again on the same port.
    pub fn set_endpoint_fault(&self, endpoint: &str, fault: EndpointFault) -> Result<(), SimError> {
        self.controls.set_endpoint_fault(endpoint, fault)
    }

    /// Cuts a client (by source address) off every pod and front, or lets it through again.
    pub fn set_client_cut(&self, client: IpAddr, cut: ClientCut) -> Result<(), SimError> {
        self.controls.set_client_cut(client, cut)
    }

    /// Pins a node's disk, CPU and memory figures (absent fields move freely).
    pub fn set_node_fault(&self, node: &str, fault: NodeFault) -> Result<(), SimError> {
        self.controls.fleet.set_node_fault(node, fault)
    }

    /// Clears every fault: pods, endpoints (killed ones listen again), nodes, client cuts.
    pub fn clear_faults(&self) -> Result<(), SimError> {
        self.controls.clear_faults()
    }

    /// Current faults of the pods that have one, by pod name.
    pub fn faults(&self) -> BTreeMap<String, Fault> {
        self.controls.fleet.faults()
    }

    /// Every fault in force, by kind.
    pub fn all_faults(&self) -> FaultList {
        self.controls.faults()
    }

    /// `/metrics` requests each pod has answered so far, by pod name.
    pub fn scrapes(&self) -> BTreeMap<String, u64> {
        self.controls.fleet.scrapes()
    }

    /// Zeroes the pod's counters and moves its start time, like a restarted process.
    pub fn restart_pod(&self, pod: &str) -> Result<(), SimError> {
        self.controls.fleet.restart_pod(pod)
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
        self.controls.network.release();
    }
}
