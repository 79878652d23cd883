//! mixmon-aggregator: serves the control plane, keeps the check catalogue, and folds probe
//! results into per-minute rollups in the store, exactly once per batch.
//!
//! Layout: `config` (the file), `catalogue` (resolved, validated checks), `control_plane`
//! (the gRPC service), `ingest` (batch hygiene and rollup deltas), `registry` (prober
//! liveness), `server` (the tonic stack: auth, limits, health, graceful shutdown),
//! `assignment` (which prober runs which check), `reload` (the catalogue follows its file),
//! `alerting` (the rule evaluator) and `notifier` (notifications, in the evaluating replica).

pub mod alerting;
pub mod assignment;
pub mod catalogue;
pub mod config;
pub mod control_plane;
pub mod ingest;
pub mod notifier;
pub mod observations;
pub mod own_metrics;
pub mod registry;
pub mod reload;
pub mod server;

use std::time::{SystemTime, UNIX_EPOCH};

pub use catalogue::{Catalogue, CatalogueError};
pub use config::AggregatorConfig;
pub use server::{serve, CatalogueHandle, ServeOptions};

#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("gRPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
    #[error("{0}")]
    Config(String),
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
