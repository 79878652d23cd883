//! What alerting keeps besides the metrics: each endpoint's latest observation per prober,
//! prober liveness, the evaluator's lease, alert instances, and the stream of alert
//! transitions (history and the notifier's feed), and probe requests across replicas.
//!
//! All of it is shared through the store so that any aggregator replica gives the same
//! answer and a new evaluator continues where the last one stopped: timers (`active_at`)
//! and firing states survive a restart, so a restart neither re-pages nor resets a timer.
//!
//! The lease carries a fencing token: every write of alert state names the lease it was
//! decided under, and the store refuses it unless that lease is still the current one, so a
//! paused old leader cannot write after a new one took over.

use async_trait::async_trait;
use mixmon_model::alert::{AlertInstance, AlertTransition, Fingerprint, LatestObservation, Silence};
use mixmon_model::CheckId;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::StoreError;

/// Alert history (the transitions stream) is kept 30 days.
pub const HISTORY_RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// A prober as last seen by any aggregator replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProberSeen {
    pub prober: String,
    pub region: String,
    pub node: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// The evaluator role, held until `expires_at_ms` unless renewed. `token` increases with every
/// new holding (a fencing token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub token: u64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The lease named is no longer the current one: nothing was written; stop leading.
    Fenced,
}

/// One entry of the transitions stream: its position (opaque, increasing) and the transition.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: String,
    pub transition: AlertTransition,
}

/// Ask the probers of other regions to probe `check` now (a second opinion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub check: String,
    /// The region whose prober saw the change; its probers are not asked.
    pub except_region: String,
    pub requested_at_ms: i64,
}

/// Alerting's part of a store. Every method has a default that fails, so that test doubles
/// (a store that is always down) need not spell them out; `MemoryStore` and `RedisStore`
/// implement all of them, and the conformance suite runs on both.
#[async_trait]
#[allow(unused_variables)] // the failing defaults ignore their arguments
pub trait AlertStore: Send + Sync + 'static {
    /// Each endpoint's latest observations, one per prober that probed it.
    async fn read_latest(&self, checks: &[CheckId]) -> Result<Vec<Vec<LatestObservation>>, StoreError> {
        Err(no_alerts())
    }

    /// Records observations; one older than the stored one of the same (check, prober) is
    /// ignored, so re-applying is harmless.
    async fn write_latest(&self, updates: &[(CheckId, LatestObservation)]) -> Result<(), StoreError> {
        Err(no_alerts())
    }

    /// Records that probers were seen; `last_seen_ms` only moves forward, `first_seen_ms`
    /// keeps the first value written.
    async fn record_probers(&self, seen: &[ProberSeen]) -> Result<(), StoreError> {
        Err(no_alerts())
    }

    async fn read_probers(&self) -> Result<Vec<ProberSeen>, StoreError> {
        Err(no_alerts())
    }

    /// Takes the evaluator lease for `holder` if it is free (or expired), or renews it if
    /// `holder` already has it; `None` while another holder has it.
    async fn acquire_lease(&self, holder: &str, ttl_ms: u64, now_ms: i64) -> Result<Option<Lease>, StoreError> {
        Err(no_alerts())
    }

    /// Extends `lease`; `false` when it is no longer the current one (lost).
    async fn renew_lease(&self, lease: &Lease, ttl_ms: u64, now_ms: i64) -> Result<bool, StoreError> {
        Err(no_alerts())
    }

    /// Gives the lease up (at shutdown), so another replica takes over at once.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        Err(no_alerts())
    }

    /// Every kept alert instance (pending, firing, resolved, no data).
    async fn load_alerts(&self) -> Result<Vec<AlertInstance>, StoreError> {
        Err(no_alerts())
    }

    /// Atomically, and only while `lease` is current: upserts `changed`, deletes `removed`,
    /// appends `transitions` to the stream (trimmed to [`HISTORY_RETENTION_MS`]).
    async fn commit_alerts(
        &self,
        lease: &Lease,
        changed: &[AlertInstance],
        removed: &[Fingerprint],
        transitions: &[AlertTransition],
        now_ms: i64,
    ) -> Result<CommitOutcome, StoreError> {
        Err(no_alerts())
    }

    /// Stream entries after position `after` (from the start when `None`), oldest first.
    async fn read_transitions(&self, after: Option<&str>, limit: usize) -> Result<Vec<StreamEntry>, StoreError> {
        Err(no_alerts())
    }

    /// Transitions decided in `[from_ms, to_ms)`, newest first, at most `limit`.
    async fn read_history(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<AlertTransition>, StoreError> {
        Err(no_alerts())
    }

    /// Tells every replica (this one included) that `request` was made.
    async fn publish_probe_request(&self, request: &ProbeRequest) -> Result<(), StoreError> {
        Err(no_alerts())
    }

    /// Probe requests published from now on, by any replica. A lagging receiver loses the
    /// oldest (a second opinion that comes late is worth nothing anyway).
    async fn subscribe_probe_requests(&self) -> Result<broadcast::Receiver<ProbeRequest>, StoreError> {
        Err(no_alerts())
    }

    /// Creates or replaces a silence (by id); refused past [`MAX_SILENCES`](mixmon_model::alert::silence::MAX_SILENCES) kept.
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        Err(no_alerts())
    }

    /// Every silence kept, by id; those that ended more than [`SILENCE_RETENTION_MS`](mixmon_model::alert::silence::SILENCE_RETENTION_MS) before
    /// `now_ms` are dropped.
    async fn read_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        Err(no_alerts())
    }
}

fn no_alerts() -> StoreError {
    StoreError::Invalid("this store keeps no alert state".into())
}
