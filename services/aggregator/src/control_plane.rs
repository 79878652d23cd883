//! The gRPC control plane: registration, the assignment stream, and the report stream whose
//! acknowledgements promise durability. A batch is acknowledged only after the store applied
//! it (or recognised it as already applied); while the store is down the stream holds and
//! retries, and the prober keeps the batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mixmon_model::ProberIdentity;
use mixmon_proto::pb;
use mixmon_store::{ApplyOutcome, BatchId, ProbeRequest, Store, StoreError};
use pb::control_plane_server::ControlPlane;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::assignment::{self, Published};
use crate::ingest::{self, IngestStats, MAX_BATCH_RESULTS};
use crate::observations::Observations;
use crate::registry::{LivenessEvent, Registry, HEARTBEAT_INTERVAL_MS};
use crate::unix_ms;

/// A report stream must say hello this soon after opening.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

pub struct ControlPlaneState {
    pub catalogue: watch::Receiver<Arc<Published>>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub stats: Arc<IngestStats>,
    /// Turns true when the aggregator shuts down: streams end so the server can drain.
    pub stopping: watch::Receiver<bool>,
    /// One permit per open report stream; when none is left a new stream is refused with
    /// `RESOURCE_EXHAUSTED` and the prober backs off.
    pub report_streams: Arc<tokio::sync::Semaphore>,
    /// Latest observations and liveness for the rule evaluator, kept at ingest.
    pub observations: Arc<Observations>,
    /// Probe requests from any replica, relayed to this replica's assignment streams.
    pub probe_requests: broadcast::Sender<ProbeRequest>,
}

#[derive(Clone)]
pub struct ControlPlaneService {
    state: Arc<ControlPlaneState>,
}

impl ControlPlaneService {
    pub fn new(state: ControlPlaneState) -> Self {
        Self { state: Arc::new(state) }
    }
}

fn identity(raw: Option<pb::ProberIdentity>) -> Result<ProberIdentity, Status> {
    let raw = raw.ok_or_else(|| Status::invalid_argument("identity is missing"))?;
    let identity = ProberIdentity::try_from(raw)?;
    if identity.region.is_reserved() {
        // `_all` names the all-regions series; a prober claiming it would corrupt the sums.
        return Err(Status::invalid_argument(format!(
            "identity.region: {} is reserved (region names must not start with '_')",
            identity.region
        )));
    }
    Ok(identity)
}

pub fn log_liveness(event: Option<LivenessEvent>) {
    match event {
        Some(LivenessEvent::Joined(p)) => {
            tracing::info!(event = "prober_joined", prober = %p.id, region = %p.region, node = %p.node, version = %p.version, "prober joined");
        }
        Some(LivenessEvent::Silent(p)) => {
            tracing::info!(event = "prober_silent", prober = %p.id, region = %p.region, node = %p.node, "prober went silent; its checks get no data from it, which is not a failure");
        }
        Some(LivenessEvent::Drift { prober, expected, running }) => {
            tracing::warn!(event = "assignment_drift", prober = %prober.id, region = %prober.region, expected, running, "prober has not confirmed its current assignment");
        }
        None => {}
    }
}

#[tonic::async_trait]
impl ControlPlane for ControlPlaneService {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let identity = identity(request.into_inner().identity)?;
        log_liveness(self.state.registry.seen(&identity, unix_ms()));
        Ok(Response::new(pb::RegisterResponse {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            max_batch_results: MAX_BATCH_RESULTS as u32,
        }))
    }

    type WatchAssignmentsStream = ReceiverStream<Result<pb::AssignmentUpdate, Status>>;

    async fn watch_assignments(
        &self,
        request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let identity = identity(request.into_inner().identity)?;
        let (tx, rx) = mpsc::channel(16);
        let mut catalogue = self.state.catalogue.clone();
        let mut stopping = self.state.stopping.clone();
        let registry = self.state.registry.clone();
        let mut probe_requests = self.state.probe_requests.subscribe();
        tokio::spawn(async move {
            let published = catalogue.borrow_and_update().clone();
            let (version, mut current) = published.assignments.view(&published.catalogue, &identity);
            let snapshot = pb::AssignmentUpdate {
                kind: pb::assignment_update::Kind::Snapshot as i32,
                version,
                checks: current.values().map(pb::CheckSpec::from).collect(),
                removed_check_ids: Vec::new(),
                probe_now_check_ids: Vec::new(),
            };
            if tx.send(Ok(snapshot)).await.is_err() {
                return;
            }
            registry.assignment_sent(&identity.id, version, crate::unix_ms());
            loop {
                tokio::select! {
                    changed = catalogue.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let published = catalogue.borrow_and_update().clone();
                        let (version, next) = published.assignments.view(&published.catalogue, &identity);
                        let (upserts, removed) = assignment::diff(&current, &next);
                        if upserts.is_empty() && removed.is_empty() {
                            // Another prober's work changed, not this one's.
                            continue;
                        }
                        let delta = pb::AssignmentUpdate {
                            kind: pb::assignment_update::Kind::Delta as i32,
                            version,
                            checks: upserts.iter().map(pb::CheckSpec::from).collect(),
                            removed_check_ids: removed.iter().map(ToString::to_string).collect(),
                            probe_now_check_ids: Vec::new(),
                        };
                        if tx.send(Ok(delta)).await.is_err() {
                            return;
                        }
                        registry.assignment_sent(&identity.id, version, crate::unix_ms());
                        tracing::debug!(prober = %identity.id, version, "assignment change sent");
                        current = next;
                    }
                    request = probe_requests.recv() => {
                        let request = match request {
                            Ok(request) => request,
                            // Missed requests are stale by now; the schedule covers them.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        };
                        let asked = request.except_region != identity.region.as_str()
                            && current.keys().any(|id| id.as_str() == request.check);
                        if !asked {
                            continue;
                        }
                        let version = catalogue.borrow().assignments.view(&catalogue.borrow().catalogue, &identity).0;
                        let probe_now = pb::AssignmentUpdate {
                            kind: pb::assignment_update::Kind::ProbeNow as i32,
                            version,
                            checks: Vec::new(),
                            removed_check_ids: Vec::new(),
                            probe_now_check_ids: vec![request.check],
                        };
                        if tx.send(Ok(probe_now)).await.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                    _ = stopping.changed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ReportStream = ReceiverStream<Result<pb::ReportAck, Status>>;

    async fn report(
        &self,
        request: Request<Streaming<pb::ReportRequest>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let permit = self.state.report_streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many report streams open on this aggregator; retry later or elsewhere")
        })?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(status) = report_stream(state, inbound, &tx).await {
                tracing::warn!(error = %status.message(), "report stream refused");
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

type AckSender = mpsc::Sender<Result<pb::ReportAck, Status>>;

async fn report_stream(
    state: Arc<ControlPlaneState>,
    mut inbound: Streaming<pb::ReportRequest>,
    tx: &AckSender,
) -> Result<(), Status> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no hello within 10 s of opening the report stream"))??;
    let Some(pb::ReportRequest { msg: Some(pb::report_request::Msg::Hello(hello)) }) = first else {
        return Err(Status::invalid_argument("the first message of a report stream must be hello"));
    };
    let identity = identity(hello.identity)?;
    // A prober registers at the start of every session, with whichever replica it reaches;
    // a report from an id this replica never saw register is a misbehaving client.
    if !state.registry.is_known(&identity.id) {
        return Err(Status::failed_precondition(format!(
            "unknown prober id {}: call Register before opening a report stream",
            identity.id
        )));
    }
    log_liveness(state.registry.stream_opened(&identity, unix_ms()));
    let result = serve_batches(&state, &identity, hello.epoch, &mut inbound, tx).await;
    state.registry.stream_closed(&identity.id);
    result
}

async fn serve_batches(
    state: &ControlPlaneState,
    identity: &ProberIdentity,
    epoch: u64,
    inbound: &mut Streaming<pb::ReportRequest>,
    tx: &AckSender,
) -> Result<(), Status> {
    let mut stopping = state.stopping.clone();
    let mut last_seq: Option<u64> = None;
    loop {
        let message = tokio::select! {
            message = inbound.message() => message?,
            _ = stopping.changed() => return Ok(()),
        };
        let Some(message) = message else { return Ok(()) };
        log_liveness(state.registry.seen(identity, unix_ms()));
        state.observations.seen(identity, unix_ms());
        let batch = match message.msg {
            Some(pb::report_request::Msg::Batch(batch)) => batch,
            Some(pb::report_request::Msg::Heartbeat(_)) => continue,
            Some(pb::report_request::Msg::Applied(applied)) => {
                state.registry.assignment_applied(&identity.id, applied.version, unix_ms());
                tracing::info!(prober = %identity.id, version = applied.version, checks = applied.checks, "prober runs assignment version");
                continue;
            }
            Some(pb::report_request::Msg::Hello(_)) => {
                return Err(Status::invalid_argument("hello may only be the first message of a report stream"))
            }
            None => return Err(Status::invalid_argument("empty report message")),
        };
        let seq = batch.seq;
        if let Some(reason) = refuse_batch(last_seq, &batch) {
            state.stats.batches_rejected.fetch_add(1, Ordering::Relaxed);
            let size = ingest::batch_size(&batch);
            if size > MAX_BATCH_RESULTS {
                state.stats.count_rejected(ingest::RejectReason::OversizedBatch, size as u64);
            }
            tracing::warn!(prober = %identity.id, seq, %reason, "batch refused");
            let rejection = pb::report_ack::Msg::Rejected(pb::Rejection { seq, reason });
            send_ack(tx, rejection).await?;
            continue;
        }
        last_seq = Some(seq);
        let catalogue = state.catalogue.borrow().catalogue.clone();
        let sorted = ingest::sort_report(&identity.region, &catalogue, batch, unix_ms());
        for (reason, n) in &sorted.rejected {
            state.stats.count_rejected(*reason, *n);
            tracing::debug!(prober = %identity.id, seq, reason = reason.as_str(), n, "results refused");
        }
        let id = BatchId { prober: identity.id.clone(), epoch, seq };
        let Some(outcome) = apply_with_retry(state, &id, &sorted.delta, &mut stopping).await else {
            // Stopping before the store took it: no ack, so the prober sends it again.
            return Ok(());
        };
        match outcome {
            ApplyOutcome::Applied => {
                state.stats.batches_applied.fetch_add(1, Ordering::Relaxed);
                state.stats.results_stored.fetch_add(sorted.delta.result_count(), Ordering::Relaxed);
                state.stats.samples_stored.fetch_add(sorted.samples, Ordering::Relaxed);
            }
            ApplyOutcome::Duplicate => {
                state.stats.batches_duplicate.fetch_add(1, Ordering::Relaxed);
            }
        }
        // After the store took the batch, before the ack: the evaluator's view of each
        // endpoint moves with what was stored. A failure here loses no data (the rollups are
        // in), only freshness, which the next batch restores.
        if let Err(err) = state.observations.record(state.store.as_ref(), identity, &sorted.outcomes, unix_ms()).await {
            tracing::warn!(prober = %identity.id, seq, error = %err, "latest observations not recorded");
        }
        send_ack(tx, pb::report_ack::Msg::AckedSeq(seq)).await?;
    }
}

fn refuse_batch(last_seq: Option<u64>, batch: &pb::ResultBatch) -> Option<String> {
    if let Some(last) = last_seq.filter(|last| batch.seq <= *last) {
        return Some(format!("sequence number {} is not above {last}, the previous one on this stream", batch.seq));
    }
    let size = ingest::batch_size(batch);
    if size > MAX_BATCH_RESULTS {
        return Some(format!("{size} results and samples exceed the maximum of {MAX_BATCH_RESULTS} per batch"));
    }
    None
}

async fn send_ack(tx: &AckSender, msg: pb::report_ack::Msg) -> Result<(), Status> {
    tx.send(Ok(pb::ReportAck { msg: Some(msg) })).await.map_err(|_| Status::cancelled("the prober went away"))
}

/// Applies a batch, holding and retrying while the store is unavailable. `None` when the
/// aggregator stops first.
async fn apply_with_retry(
    state: &ControlPlaneState,
    id: &BatchId,
    delta: &mixmon_model::RollupDelta,
    stopping: &mut watch::Receiver<bool>,
) -> Option<ApplyOutcome> {
    let mut delay = Duration::from_millis(50);
    let mut warned = false;
    loop {
        let started = std::time::Instant::now();
        let applied = state.store.apply_batch(id, delta).await;
        state.stats.apply_seconds.observe_since(started);
        match applied {
            Ok(outcome) => {
                if warned {
                    tracing::info!(prober = %id.prober, seq = id.seq, "store is back; batch stored");
                }
                return Some(outcome);
            }
            Err(err) => {
                state.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                if !warned {
                    let kind = if matches!(err, StoreError::Unavailable(_)) { "unavailable" } else { "failing" };
                    tracing::warn!(prober = %id.prober, seq = id.seq, error = %err, "store {kind}; holding the batch and retrying");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.changed() => return None,
        }
        delay = (delay * 2).min(STORE_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(region: &str) -> Option<pb::ProberIdentity> {
        Some(pb::ProberIdentity {
            prober_id: "p1".into(),
            region: region.into(),
            node: "n1".into(),
            version: "test".into(),
        })
    }

    #[test]
    fn a_prober_may_not_claim_a_reserved_region() {
        assert!(identity(raw("eu-west")).is_ok());
        for reserved in ["_all", "_x"] {
            let status = identity(raw(reserved)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains("reserved"), "{}", status.message());
        }
        assert_eq!(identity(None).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn batches_above_the_limit_in_results_and_samples_are_refused() {
        let node = pb::NodeSample { node: "n1".into(), ..Default::default() };
        let batch = pb::ResultBatch { seq: 2, nodes: vec![node; MAX_BATCH_RESULTS + 1], ..Default::default() };
        assert!(refuse_batch(None, &batch).is_some_and(|reason| reason.contains("samples")));
        let batch = pb::ResultBatch { seq: 2, ..Default::default() };
        assert!(refuse_batch(Some(1), &batch).is_none());
        assert!(refuse_batch(Some(2), &batch).is_some());
    }
}
