//! The control-plane client: one session at a time with one aggregator replica. A session
//! registers, follows the assignment stream into the scheduler, and streams the buffer as
//! numbered batches, forgetting a batch only when its acknowledgement arrives. Any failure
//! ends the session; the next one starts after an exponential, jittered backoff, on the next
//! replica in the list, and first resends every unacknowledged batch. Registering and opening
//! each stream have a deadline; after applying an assignment the prober tells the aggregator
//! which version it runs. Checks keep running while disconnected: their results wait in the
//! buffer (on disk, when it has a directory). On shutdown the checks stop first, then the last
//! results are sealed, sent and their acknowledgements awaited, and the log is synced.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixmon_config::Secret;
use mixmon_model::{CheckId, CheckSpec, ProberIdentity};
use mixmon_proto::pb;
use pb::control_plane_client::ControlPlaneClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Endpoint;

use crate::buffer::{Batch, ResultBuffer};
use crate::scheduler::{unix_ms, Scheduler};

/// Batches sent but not yet acknowledged before the prober stops sealing new ones; bounds
/// what a stalled aggregator makes the prober hold in flight.
const MAX_UNACKED_BATCHES: usize = 64;
/// Largest gRPC message either side of the control plane accepts.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// A session that lasted this long was healthy: the next failure starts backing off afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// How long a stopping prober waits for the acknowledgements of its last batches.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running session tells the health endpoints that it turns.
const BEAT_INTERVAL: Duration = Duration::from_secs(5);

pub struct UplinkSettings {
    pub identity: ProberIdentity,
    pub aggregators: Vec<Endpoint>,
    pub token: Option<Secret>,
    pub batch_max_results: usize,
    pub flush_interval: Duration,
    /// Told that the loop turns and when an assignment is held (`GET /healthz`, `/readyz`).
    pub health: Arc<crate::health::Health>,
}

pub struct Uplink {
    settings: UplinkSettings,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("{0} stream closed by the aggregator")]
    Closed(&'static str),
    #[error("report stream send failed")]
    Send,
    #[error("{0} got no answer within {OPEN_DEADLINE:?}")]
    Deadline(&'static str),
}

/// Deadline for registering and for opening each stream: an aggregator that accepts the
/// connection but does not answer is as good as down, and the next replica is tried.
const OPEN_DEADLINE: Duration = Duration::from_secs(10);

async fn within<T>(
    what: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(OPEN_DEADLINE, call).await {
        Ok(result) => Ok(result?.into_inner()),
        Err(_) => Err(SessionError::Deadline(what)),
    }
}

#[derive(Clone)]
struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Client = ControlPlaneClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>>;

impl Uplink {
    pub fn new(settings: UplinkSettings) -> Self {
        Self { settings }
    }

    pub async fn run(
        self,
        buffer: Arc<ResultBuffer>,
        mut scheduler: Scheduler,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let auth = match self.settings.token.as_ref().map(|t| format!("Bearer {}", t.expose()).parse()) {
            Some(Ok(value)) => Auth(Some(value)),
            Some(Err(_)) => {
                tracing::error!("the aggregator token contains characters not allowed in a header; sending none");
                Auth(None)
            }
            None => Auth(None),
        };
        let mut attempt: u32 = 0;
        let mut index = 0usize;
        let health = self.settings.health.clone();
        loop {
            health.beat();
            if *stop_rx.borrow() {
                break;
            }
            let Some(endpoint) = self.settings.aggregators.get(index % self.settings.aggregators.len().max(1)) else {
                tracing::error!("no aggregator address configured");
                break;
            };
            let started = Instant::now();
            match self.session(endpoint, auth.clone(), &buffer, &mut scheduler, &mut stop_rx).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(aggregator = %endpoint.uri(), error = %err, "control-plane session ended");
                }
            }
            if started.elapsed() >= HEALTHY_SESSION {
                attempt = 0;
            }
            index += 1;
            let delay = backoff(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop_rx.changed() => break,
            }
        }
        health.stopped();
        scheduler.stop_all();
        buffer.sync();
        let stats = buffer.stats();
        if stats.held > 0 {
            tracing::warn!(held = stats.held, "stopping with results the aggregator has not acknowledged");
        }
    }

    async fn session(
        &self,
        endpoint: &Endpoint,
        auth: Auth,
        buffer: &ResultBuffer,
        scheduler: &mut Scheduler,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let channel = endpoint
            .clone()
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(15))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        let mut client: Client = ControlPlaneClient::with_interceptor(channel, auth)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let identity = pb::ProberIdentity::from(&self.settings.identity);
        let registered =
            within("register", client.register(pb::RegisterRequest { identity: Some(identity.clone()) })).await?;
        let max_batch = match registered.max_batch_results as usize {
            0 => self.settings.batch_max_results,
            server_max => self.settings.batch_max_results.min(server_max),
        };
        let heartbeat_every = Duration::from_millis(u64::from(registered.heartbeat_interval_ms).clamp(1_000, 60_000));
        let watch = client.watch_assignments(pb::WatchAssignmentsRequest {
            identity: Some(identity.clone()),
            known_version: scheduler.version(),
        });
        let mut assignments = within("watch_assignments", watch).await?;

        let (tx, rx) = mpsc::channel::<pb::ReportRequest>(256);
        let hello = pb::report_request::Msg::Hello(pb::ReportHello { identity: Some(identity), epoch: buffer.epoch() });
        tx.send(pb::ReportRequest { msg: Some(hello) }).await.map_err(|_| SessionError::Send)?;
        let mut acks = within("report", client.report(ReceiverStream::new(rx))).await?;
        tracing::info!(aggregator = %endpoint.uri(), "connected to the control plane");
        // Resent after the stream is open, so a long backlog (recovered from the log) flows
        // instead of filling the channel before anyone reads it.
        for batch in buffer.unacked() {
            send_batch(&tx, &batch).await?;
            self.settings.health.beat();
        }

        let mut flush = tokio::time::interval(self.settings.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = beat.tick() => self.settings.health.beat(),
                _ = stop.changed() => {
                    // No new results from here on, so the last batch holds everything measured.
                    scheduler.stop_all_and_wait().await;
                    for batch in buffer.seal(max_batch) {
                        send_batch(&tx, &batch).await?;
                    }
                    drain(buffer, &mut acks).await;
                    return Ok(());
                }
                update = assignments.message() => match update? {
                    Some(update) => {
                        let snapshot = update.kind == pb::assignment_update::Kind::Snapshot as i32;
                        if apply_assignment(scheduler, update) {
                            if snapshot {
                                self.settings.health.assignment_held();
                            }
                            // Tell the aggregator which version runs now, so it sees drift.
                            let applied = pb::report_request::Msg::Applied(pb::AssignmentApplied {
                                version: scheduler.version(),
                                checks: u32::try_from(scheduler.check_count()).unwrap_or(u32::MAX),
                            });
                            let _ = tx.try_send(pb::ReportRequest { msg: Some(applied) });
                        }
                    }
                    None => return Err(SessionError::Closed("assignment")),
                },
                ack = acks.message() => match ack? {
                    Some(ack) => handle_ack(buffer, ack),
                    None => return Err(SessionError::Closed("report")),
                },
                _ = flush.tick() => {
                    if buffer.stats().sealed_batches < MAX_UNACKED_BATCHES {
                        for batch in buffer.seal(max_batch) {
                            send_batch(&tx, &batch).await?;
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let beat = pb::report_request::Msg::Heartbeat(pb::Heartbeat { sent_at_ms: unix_ms().max(0) as u64 });
                    // Skipped when the stream is backed up: the batches queued there say the
                    // prober is alive just as well.
                    let _ = tx.try_send(pb::ReportRequest { msg: Some(beat) });
                }
            }
        }
    }
}

async fn send_batch(tx: &mpsc::Sender<pb::ReportRequest>, batch: &Batch) -> Result<(), SessionError> {
    let msg = pb::report_request::Msg::Batch(mixmon_proto::samples::batch_to_pb(batch.seq, &batch.results));
    tx.send(pb::ReportRequest { msg: Some(msg) }).await.map_err(|_| SessionError::Send)
}

fn handle_ack(buffer: &ResultBuffer, ack: pb::ReportAck) {
    match ack.msg {
        Some(pb::report_ack::Msg::AckedSeq(seq)) => buffer.ack(seq),
        Some(pb::report_ack::Msg::Rejected(rejection)) => {
            tracing::warn!(seq = rejection.seq, reason = %rejection.reason, "aggregator refused a batch");
            buffer.reject(rejection.seq);
        }
        None => {}
    }
}

async fn drain(buffer: &ResultBuffer, acks: &mut tonic::Streaming<pb::ReportAck>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while buffer.stats().sealed_batches > 0 {
        match tokio::time::timeout_at(deadline, acks.message()).await {
            Ok(Ok(Some(ack))) => handle_ack(buffer, ack),
            _ => break,
        }
    }
}

/// Applies one update; false when it was not understood (and so not applied).
fn apply_assignment(scheduler: &mut Scheduler, update: pb::AssignmentUpdate) -> bool {
    let mut checks = Vec::with_capacity(update.checks.len());
    for check in update.checks {
        let id = check.id.clone();
        match CheckSpec::try_from(check) {
            Ok(spec) => checks.push(spec),
            Err(err) => tracing::warn!(check = %id, error = %err, "ignoring an invalid check from the aggregator"),
        }
    }
    match pb::assignment_update::Kind::try_from(update.kind) {
        Ok(pb::assignment_update::Kind::ProbeNow) => {
            for id in update.probe_now_check_ids.iter().filter_map(|id| CheckId::new(id.as_str()).ok()) {
                if scheduler.run_now(&id, unix_ms()) {
                    tracing::debug!(check = %id, "probing now: a second opinion was asked for");
                }
            }
            // Not a new assignment: nothing to confirm.
            return false;
        }
        Ok(pb::assignment_update::Kind::Snapshot) => scheduler.apply_snapshot(update.version, checks),
        Ok(pb::assignment_update::Kind::Delta) => {
            let removed = update.removed_check_ids.into_iter().filter_map(|id| CheckId::new(id).ok()).collect();
            scheduler.apply_delta(update.version, checks, removed);
        }
        _ => {
            tracing::warn!(kind = update.kind, "ignoring an assignment update of unknown kind");
            return false;
        }
    }
    tracing::info!(version = update.version, checks = scheduler.check_count(), "assignment applied");
    true
}

/// Exponential backoff with jitter: up to `base * 2^attempt`, capped, never below half of it,
/// so a fleet that lost its aggregator does not come back in lockstep.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
    ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jitters_and_caps() {
        for attempt in 0..40 {
            let delay = backoff(attempt);
            let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{attempt}: {delay:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }
}
