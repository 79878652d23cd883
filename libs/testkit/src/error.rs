//! Harness errors. Their messages are what a failing test prints, so each one says what to do
//! or carries the log lines that explain it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("redis-server not found on PATH: run scripts/test.sh, which installs it")]
    RedisNotFound,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("redis-server did not start: {reason}\n--- log tail ---\n{log}")]
    RedisStart { reason: String, log: String },
    #[error("binary {name:?} not found (looked at {searched:?}); build it first: cargo build --workspace --bins")]
    BinaryMissing { name: String, searched: Vec<PathBuf> },
    #[error("{what} did not happen within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("http: {0}")]
    Http(String),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// A condition polled by [`crate::eventually`] never became true.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition not met within {after:?}")]
pub struct TimedOut {
    pub after: Duration,
}
