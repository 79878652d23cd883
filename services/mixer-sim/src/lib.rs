//! A simulated AI Mixer fleet for demos and end-to-end tests.
//!
//! Every simulated pod listens on its own loopback port and serves `GET /health` and
//! `GET /metrics` in the shape of a real mixer pod (see `tests/fixtures/ai_mixer_metrics.prom`).
//! Endpoint fronts (`us-west`, ..., `edge`, `api`) spread `/health` over their pods
//! round-robin. Faults are set through the admin HTTP API or [`SimHandle`] in process: per pod
//! or region (down, hang, latency, error share, peak level, memory pressure, traffic factor,
//! down schedule), per endpoint front (killed, hang, latency, error share), per node (disk,
//! CPU, memory pinned) and per client address (cut off every front and pod: a black hole or
//! resets). The admin listener also serves a read-only Kubernetes API for the fleet under
//! `/k8s` (pods with node, readiness, restarts and memory limit; `metrics.k8s.io` usage; nodes
//! and their kubelet's stats summary), so discovery and sampling can be tested without a
//! cluster.
//!
//! Start with [`start`]; stop with [`SimHandle::shutdown`].

mod admin;
mod bpf;
mod config;
mod controls;
mod error;
mod fault;
mod fleet;
mod handle;
mod health;
mod k8s;
mod k8s_nodes;
mod metrics;
mod net_fault;
mod network;
mod node;
mod pod;
mod port;
mod serve;
mod shutdown;
mod ticker;
mod traffic;

pub use config::{parse_regions, valid_name, SimConfig};
pub use controls::FaultList;
pub use error::SimError;
pub use fault::{DownSchedule, Fault, FaultError};
pub use handle::{start, PodAddress, SimAddresses, SimHandle};
pub use k8s::{APP_LABEL, METRICS_PORT_NAME, NAMESPACE};
pub use net_fault::{ClientCut, CutError, CutMode, EndpointFault};
pub use node::NodeFault;
