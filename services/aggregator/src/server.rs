//! The gRPC server stack, in one place: bearer-token auth on the control plane (not on
//! `grpc.health.v1`, which Kubernetes probes call bare), message size limits, a concurrency
//! limit per connection, load shedding past a global concurrency limit, request deadlines,
//! a cap on open report streams, HTTP/2 keepalive, and a graceful shutdown that first ends every
//! stream (so no batch is half-handled) and then waits for connections to drain.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mixmon_config::Secret;
use mixmon_listener::{ConnectionLimits, GuardedListener, HTTP2_PREFACE_BYTES};
use mixmon_proto::pb::control_plane_server::ControlPlaneServer;
use mixmon_store::{ProbeRequest, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;

use crate::assignment::{Assignments, Published};
use crate::catalogue::Catalogue;
use crate::control_plane::{log_liveness, ControlPlaneService, ControlPlaneState};
use crate::ingest::IngestStats;
use crate::observations::{Observations, LIVENESS_FLUSH};
use crate::registry::Registry;
use crate::{unix_ms, AggregatorError};

/// Largest gRPC message accepted; a batch of the maximum size is far below it.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Concurrent requests (streams) on one connection; a prober needs three.
const CONCURRENCY_PER_CONNECTION: usize = 64;
/// Calls in flight across all connections; past it calls are shed at once with
/// `RESOURCE_EXHAUSTED` rather than queued, so an overloaded aggregator answers fast and
/// probers back off (and try the next replica).
const MAX_UNARY_IN_FLIGHT: usize = 256;
/// Deadline of a unary call and of opening a stream (streams themselves are long-lived).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Report streams open at once: one per prober, with room for reconnect overlap.
const MAX_REPORT_STREAMS: usize = 10_000;
/// Longest a shutdown waits for connections to close after every stream was ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Swaps the catalogue (and the assignment rules) of a running aggregator; every prober
/// receives the change on its assignment stream at once.
#[derive(Clone)]
pub struct CatalogueHandle {
    sender: Arc<watch::Sender<Arc<Published>>>,
}

impl CatalogueHandle {
    /// Every prober runs every check.
    pub fn new(catalogue: Catalogue) -> Self {
        Self::with_assignments(catalogue, Assignments::default())
    }

    pub fn with_assignments(catalogue: Catalogue, assignments: Assignments) -> Self {
        let published = Published { catalogue: Arc::new(catalogue), assignments };
        Self { sender: Arc::new(watch::channel(Arc::new(published)).0) }
    }

    /// Replaces the catalogue, keeping the assignment rules.
    pub fn replace(&self, catalogue: Catalogue) {
        let assignments = self.sender.borrow().assignments.clone();
        self.publish(catalogue, assignments);
    }

    pub fn publish(&self, catalogue: Catalogue, assignments: Assignments) {
        self.sender.send_replace(Arc::new(Published { catalogue: Arc::new(catalogue), assignments }));
    }

    pub fn current(&self) -> Arc<Catalogue> {
        self.sender.borrow().catalogue.clone()
    }

    pub fn published(&self) -> Arc<Published> {
        self.sender.borrow().clone()
    }
}

pub struct ServeOptions {
    pub catalogue: CatalogueHandle,
    pub store: Arc<dyn Store>,
    pub auth_token: Option<Secret>,
    pub registry: Arc<Registry>,
    pub stats: Arc<IngestStats>,
    pub connections: ConnectionLimits,
}

#[derive(Clone)]
struct BearerAuth(Option<Secret>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(token) = &self.0 else { return Ok(request) };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(candidate) if token.matches(candidate) => Ok(request),
            _ => Err(tonic::Status::unauthenticated("missing or invalid bearer token")),
        }
    }
}

/// Serves the control plane on `listener` until `shutdown` completes.
pub async fn serve(
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AggregatorError> {
    let connections = options.connections;
    let (stop_tx, stop_rx) = watch::channel(false);
    let observations = Arc::new(Observations::default());
    let (probe_requests, _) = tokio::sync::broadcast::channel(PROBE_REQUEST_BACKLOG);
    let relay = tokio::spawn(relay_probe_requests(options.store.clone(), probe_requests.clone()));
    let liveness = tokio::spawn(flush_liveness(options.store.clone(), observations.clone()));
    let state = ControlPlaneState {
        catalogue: options.catalogue.sender.subscribe(),
        store: options.store,
        registry: options.registry.clone(),
        stats: options.stats,
        stopping: stop_rx,
        report_streams: Arc::new(tokio::sync::Semaphore::new(MAX_REPORT_STREAMS)),
        observations,
        probe_requests,
    };
    let control_plane = ControlPlaneServer::new(ControlPlaneService::new(state))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let control_plane = InterceptedService::new(control_plane, BearerAuth(options.auth_token));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("mixmon.v1.ControlPlane", tonic_health::ServingStatus::Serving).await;
    health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;

    let registry = options.registry;
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for event in registry.sweep(unix_ms()) {
                log_liveness(Some(event));
            }
        }
    });

    let mut server_stop = stop_tx.subscribe();
    let mut hard_stop = stop_tx.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, then draining connections");
        health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        let _ = stop_tx.send(true);
    });
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        // Shed before queueing: the limit counts handler futures, which for a stream end once
        // its response starts, so long-lived streams do not hold a slot.
        .layer(tower::ServiceBuilder::new().load_shed().concurrency_limit(MAX_UNARY_IN_FLIGHT).into_inner())
        .add_service(health_service)
        .add_service(control_plane)
        .serve_with_incoming_shutdown(
            GuardedListener::new(listener, connections).greeting_bytes(HTTP2_PREFACE_BYTES).into_stream(),
            async move {
                let _ = server_stop.wait_for(|stopping| *stopping).await;
            },
        );
    let result = tokio::select! {
        result = server => result.map_err(AggregatorError::from),
        _ = async {
            let _ = hard_stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        } => {
            tracing::warn!("connections did not drain within {DRAIN_LIMIT:?}; stopping anyway");
            Ok(())
        }
    };
    sweeper.abort();
    relay.abort();
    liveness.abort();
    result
}

/// Probe requests a replica's assignment streams may fall behind by.
const PROBE_REQUEST_BACKLOG: usize = 256;

/// Relays probe requests published by any replica to this replica's assignment streams,
/// subscribing again (with backoff) whenever the store's subscription breaks.
async fn relay_probe_requests(store: Arc<dyn Store>, local: tokio::sync::broadcast::Sender<ProbeRequest>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match store.subscribe_probe_requests().await {
            Ok(mut rx) => {
                delay = Duration::from_millis(200);
                loop {
                    match rx.recv().await {
                        Ok(request) => {
                            let _ = local.send(request);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "probe requests came faster than they were relayed");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "no probe-request subscription; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Writes prober liveness to the store every [`LIVENESS_FLUSH`], for the evaluator.
async fn flush_liveness(store: Arc<dyn Store>, observations: Arc<Observations>) {
    let mut tick = tokio::time::interval(LIVENESS_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Err(err) = observations.flush_liveness(store.as_ref()).await {
            tracing::debug!(error = %err, "prober liveness not written; kept for the next flush");
        }
    }
}
