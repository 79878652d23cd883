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

pub fn registry(stats: &Arc<IngestStats>, probers: &Arc<Probers>) -> Registry {
    let registry = Registry::new();
    let read = |f: fn(&IngestStats) -> u64| {
        let stats = Arc::clone(stats);
        move || f(&stats)
    };
    registry
        .counter_fn(
            "mixmon_ingest_batches_applied_total",
            "Batches the store applied.",
            read(|s| s.batches_applied.load(Ordering::Relaxed)),
        )
        .counter_fn(
            "mixmon_ingest_batches_duplicate_total",
            "Resent batches recognised and acknowledged again.",
            read(|s| s.batches_duplicate.load(Ordering::Relaxed)),
        )
        .counter_fn(
            "mixmon_ingest_batches_rejected_total",
            "Batches refused whole (out of order, oversized).",
            read(|s| s.batches_rejected.load(Ordering::Relaxed)),
        )
        .counter_fn(
            "mixmon_ingest_results_stored_total",
            "Probe results stored.",
            read(|s| s.results_stored.load(Ordering::Relaxed)),
        )
        .counter_fn(
            "mixmon_ingest_samples_stored_total",
            "Mixer, node and pod samples stored.",
            read(|s| s.samples_stored.load(Ordering::Relaxed)),
        )
        .counter_fn(
            "mixmon_ingest_results_refused_total",
            "Results refused one by one, for any reason.",
            read(|s| RejectReason::ALL.iter().map(|r| s.rejected(*r)).sum()),
        )
        .counter_fn(
            "mixmon_store_errors_total",
            "Store calls that failed (each retry counts).",
            read(|s| s.store_errors.load(Ordering::Relaxed)),
        )
        .add_histogram(
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
