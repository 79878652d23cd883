//! The one error type the library returns.

use std::net::SocketAddr;

use crate::fault::FaultError;
use crate::net_fault::CutError;

/// What can go wrong starting the simulator or changing its faults.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration was refused before anything was started.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No pod has this name.
    #[error("unknown pod `{0}`")]
    UnknownPod(String),
    /// No region has this name.
    #[error("unknown region `{0}`")]
    UnknownRegion(String),
    /// No endpoint front has this name.
    #[error("unknown endpoint `{0}`")]
    UnknownEndpoint(String),
    /// No simulated node has this name.
    #[error("unknown node `{0}`")]
    UnknownNode(String),
    /// The fault's values are out of range.
    #[error(transparent)]
    InvalidFault(#[from] FaultError),
    /// The client cut was refused.
    #[error(transparent)]
    InvalidCut(#[from] CutError),
    /// A killed endpoint could not listen again; it stays down (its port is still held).
    #[error("endpoint `{endpoint}` could not listen again on {addr}: {source}; it stays down, try again")]
    Reopen {
        endpoint: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
