//! The aggregator's own metrics (`[metrics] listen`, `GET /metrics`): ingestion (batches by
//! outcome, results and samples stored, results refused, how long the store took to apply a
//! batch, failed store calls) and the probers connected, read from the counters ingestion keeps
//! anyway when scraped. Counts only, no names: like the prober's, the route takes no token.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use mixmon_telemetry::metrics::{self, Registry};

use crate::ingest::{IngestStats, RejectReason};
use crate::registry::Registry as Probers;

/// The ingestion counters as (name, help, read): one table, so a counter added to
/// `IngestStats` is one line here.
type ReadCount = fn(&IngestStats) -> u64;

const INGEST_COUNTERS: [(&str, &str, ReadCount); 7] = [
    ("mixmon_ingest_batches_applied_total", "Batches the store applied.", |s| {
        s.batches_applied.load(Ordering::Relaxed)
    }),
    ("mixmon_ingest_batches_duplicate_total", "Resent batches recognised and acknowledged again.", |s| {
        s.batches_duplicate.load(Ordering::Relaxed)
    }),
    ("mixmon_ingest_batches_rejected_total", "Batches refused whole (out of order, oversized).", |s| {
        s.batches_rejected.load(Ordering::Relaxed)
    }),
    ("mixmon_ingest_results_stored_total", "Probe results stored.", |s| s.results_stored.load(Ordering::Relaxed)),
    ("mixmon_ingest_samples_stored_total", "Mixer, node and pod samples stored.", |s| {
        s.samples_stored.load(Ordering::Relaxed)
    }),
    ("mixmon_ingest_results_refused_total", "Results refused one by one, for any reason.", |s| {
        RejectReason::ALL.iter().map(|r| s.rejected(*r)).sum()
    }),
    ("mixmon_store_errors_total", "Store calls that failed (each retry counts).", |s| {
        s.store_errors.load(Ordering::Relaxed)
    }),
];

pub fn registry(stats: &Arc<IngestStats>, probers: &Arc<Probers>) -> Registry {
    let registry = Registry::new();
    for (name, help, read) in INGEST_COUNTERS {
        let stats = Arc::clone(stats);
        registry.counter_fn(name, help, move || read(&stats));
    }
    registry.add_histogram(
        "mixmon_ingest_apply_duration_seconds",
        "How long the store took to apply one batch.",
        &stats.apply_seconds,
    );
    let probers = Arc::clone(probers);
    registry.gauge_fn("mixmon_control_probers_known", "Probers this replica has heard from.", move || {
        probers.snapshot().len() as f64
    });
    registry
}

/// `GET /metrics` over `registry`.
pub fn router(registry: Registry) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(registry.families())) }
        }),
    )
}
