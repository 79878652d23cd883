//! One way to start logging for every binary: `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info`); and [`metrics`], the services' own Prometheus metrics. OpenTelemetry
//! export joins here later.

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Starts the global subscriber; a second call (tests composing services) is a no-op.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
