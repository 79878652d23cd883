//! The prober's own metrics (`GET /metrics` on its health listener): what it observed, by
//! kind and outcome, and its buffer (depth, drops, acknowledged and refused results, the
//! write-ahead log's size and failed appends), read from the buffer's counters when scraped.

use std::sync::Arc;

use mixmon_model::Record;
use mixmon_telemetry::metrics::{CounterVec, Registry};

use crate::buffer::ResultBuffer;

/// Counts records as the prober hands them to its buffer.
#[derive(Debug, Clone)]
pub(crate) struct RecordCounter {
    records: CounterVec,
}

impl RecordCounter {
    pub fn declare(registry: &Registry) -> Self {
        RecordCounter {
            records: registry.counter_vec(
                "mixmon_prober_records_total",
                "Records observed, by kind (probe, mixer, node, pod) and outcome (ok, failed).",
                &["kind", "outcome"],
            ),
        }
    }

    pub fn count(&self, record: &Record) {
        let (kind, ok) = match record {
            Record::Probe(result) => ("probe", result.success()),
            Record::Mixer(sample) => ("mixer", sample.scrape_ok),
            Record::Node(_) => ("node", true),
            Record::Pod(_) => ("pod", true),
        };
        self.records.inc(&[kind, if ok { "ok" } else { "failed" }]);
    }
}

/// The buffer's figures, read when scraped.
pub(crate) fn declare_buffer(registry: &Registry, buffer: &Arc<ResultBuffer>) {
    let read = |f: fn(&crate::buffer::BufferStats) -> u64| {
        let buffer = Arc::downgrade(buffer);
        move || buffer.upgrade().map_or(0, |b| f(&b.stats()))
    };
    let depth = read(|s| (s.pending + s.held) as u64);
    registry
        .gauge_fn("mixmon_prober_buffer_records", "Records waiting to be sent or acknowledged.", move || depth() as f64)
        .counter_fn(
            "mixmon_prober_buffer_dropped_total",
            "Records dropped because the buffer was full (oldest first).",
            read(|s| s.dropped),
        )
        .counter_fn(
            "mixmon_prober_results_acked_total",
            "Records acknowledged by an aggregator.",
            read(|s| s.acked_results),
        )
        .counter_fn(
            "mixmon_prober_results_rejected_total",
            "Records an aggregator refused.",
            read(|s| s.rejected_results),
        )
        .counter_fn(
            "mixmon_prober_wal_errors_total",
            "Appends to the write-ahead log that failed.",
            read(|s| s.wal_errors),
        );
    let wal_bytes = read(|s| s.wal_bytes);
    registry.gauge_fn("mixmon_prober_wal_bytes", "Bytes of the write-ahead log on disk.", move || wal_bytes() as f64);
}
