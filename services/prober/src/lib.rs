//! mixmon-prober: the per-node agent. It registers with an aggregator, receives its check
//! assignments over a gRPC stream, runs each check at its fixed phase, buffers every result
//! and streams the buffer in sequence-numbered batches, dropping a batch only once the
//! aggregator acknowledged it (and so had it durably stored).
//!
//! Layout: `config` (the file), `checks` (what a probe does), `scheduler` (when it runs),
//! `buffer` (what is not yet acknowledged), `wal` (its
//! on-disk write-ahead log), `uplink` (the control-plane client),
//! `ground_truth` (an optional log of every result, for tests and audits), `observe` (mixer
//! scrapes, node and pod samples, buffered beside the probe results; the region from the
//! node's label), `health` (`GET /healthz` and `GET /readyz` for Kubernetes' probes).

pub mod buffer;
pub mod checks;
pub mod config;
pub mod ground_truth;
pub mod health;
pub mod observe;
mod own_metrics;
pub mod scheduler;
pub mod uplink;
pub mod wal;

use std::future::Future;
use std::sync::Arc;

pub use config::ProberConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProberError {
    #[error("invalid prober configuration: {0}")]
    Config(String),
    #[error("cannot start the HTTP check engine: {0}")]
    Checks(String),
    #[error("cannot open the ground-truth file {path}: {source}")]
    GroundTruth { path: String, source: std::io::Error },
    #[error("cannot open the result buffer: {0}")]
    Buffer(#[from] wal::WalError),
}

/// Runs the prober until `shutdown` completes, then flushes what it can and returns.
pub async fn run(config: ProberConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ProberError> {
    let config::Prepared {
        identity,
        aggregators,
        token,
        buffer: mut options,
        source_ip: _,
        observe: observe_settings,
        health: health_listen,
    } = config.prepare()?;
    let source_ip = config.probe_source_ip()?;
    if let Some(ip) = source_ip {
        tracing::info!(%ip, "probes are sent from probe.source_ip");
    }
    let health = health::Health::new();
    health.beat();
    let registry = mixmon_telemetry::metrics::Registry::new();
    let _health_server = match health_listen {
        Some(addr) => {
            let listener = health::bind(addr).await?;
            tracing::info!(%addr, "health endpoints: GET /healthz, GET /readyz, GET /metrics");
            Some(health::serve(listener, health.clone(), registry.clone()))
        }
        None => None,
    };
    // The observers (scrapes, node and pod samples) stop with the checks, before the uplink
    // flushes its last batches.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = {
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }
    };
    let identity = match identity.region.clone() {
        config::RegionSource::Configured(region) => identity.with_region(region),
        config::RegionSource::NodeLabel => {
            // `prepare` leaves the region to the node only where there is an API to ask.
            let Some(kube) = &observe_settings.kubernetes else {
                return Err(ProberError::Config("identity.region is required (or MIXMON_IDENTITY__REGION)".into()));
            };
            let client = observe::discovery::client(kube)?;
            let beat = {
                let health = health.clone();
                move || health.beat()
            };
            match observe::region::resolve(&client, &identity.node, beat, stop_rx.clone()).await? {
                Some(region) => identity.with_region(region),
                // Stopped before the API answered: nothing ran, nothing to flush.
                None => return Ok(()),
            }
        }
    };
    let http = checks::HttpProber::new().map_err(|e| ProberError::Checks(e.to_string()))?.with_source_ip(source_ip);
    if let Some(wal) = options.wal.as_mut() {
        // One log per prober id: probers sharing a node (or a default directory) never read
        // each other's sequence space.
        wal.dir = wal.dir.join(identity.id.as_str());
    }
    if options.wal.is_none() {
        tracing::info!("buffer.dir is not set: results wait in memory only and a restart loses them");
    }
    let fsync_interval = options.wal.as_ref().map(|w| w.fsync_interval);
    let buffer = Arc::new(buffer::ResultBuffer::open(options)?);
    if let Some(interval) = fsync_interval.filter(|i| !i.is_zero()) {
        // Appends sync when the interval has passed; this covers quiet periods, so nothing
        // waits longer than the interval to become durable.
        let buffer = Arc::downgrade(&buffer);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(buffer) = buffer.upgrade() else { return };
                buffer.sync();
            }
        });
    }
    let ground_truth = match &config.debug.ground_truth_file {
        Some(path) => Some(
            ground_truth::GroundTruth::open(path, identity.region.clone())
                .map_err(|source| ProberError::GroundTruth { path: path.display().to_string(), source })?,
        ),
        None => None,
    };
    own_metrics::declare_buffer(&registry, &buffer);
    let records = own_metrics::RecordCounter::declare(&registry);
    let observations = {
        // Observations skip the ground-truth log: it holds probe results only.
        let sink = scheduler::ResultSink::new(buffer.clone(), None).counted(records.clone());
        let emit: observe::Emit = Arc::new(move |record| sink.record(record));
        observe::spawn(observe_settings, &identity.node, emit, stop_rx)?
    };
    let sink = scheduler::ResultSink::new(buffer.clone(), ground_truth).counted(records);
    let scheduler = scheduler::Scheduler::new(http, sink);
    let uplink = uplink::Uplink::new(uplink::UplinkSettings {
        identity,
        aggregators,
        token,
        batch_max_results: config.batch.max_results,
        flush_interval: std::time::Duration::from_millis(config.batch.flush_interval_ms),
        health,
    });
    uplink.run(buffer, scheduler, shutdown).await;
    for task in observations {
        task.abort();
    }
    Ok(())
}
