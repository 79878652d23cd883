//! What the notifier keeps: each group's dispatch state (what was last sent, when), the outbox
//! of notifications decided but not yet delivered, and each integration's delivery record.
//!
//! The outbox is what makes delivery crash-safe. A notification is written here (the intent)
//! in the same atomic, fenced step that records its group as notified; it leaves the outbox
//! only once its receiver accepted it (or refused it for good). An aggregator killed at any
//! point leaves either nothing decided or a pending delivery that the next leader sends: never
//! a notification lost, and a repeat only when the kill fell between a receiver's answer and
//! the write that records it. Every write names the evaluator's lease, as alert commits do.

use async_trait::async_trait;
use mixmon_model::alert::dispatch::{FlushReason, GroupState};
use mixmon_model::alert::Notification;
use serde::{Deserialize, Serialize};

use crate::alerts::{CommitOutcome, Lease};
use crate::StoreError;

/// Deliveries one integration may have waiting; past it new ones are refused (and counted as
/// dropped in its record), so a receiver that is down for days cannot fill the store.
pub const MAX_PENDING_PER_INTEGRATION: usize = 10_000;

/// One notification for one integration of a receiver (a PagerDuty key, a Slack webhook, a
/// mail config, a webhook), from decision to delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Stable across retries and replicas: the idempotency key sent where a receiver takes one.
    pub id: String,
    /// `<receiver>/<kind>/<index>`, e.g. `critical/slack/0`.
    pub integration: String,
    pub created_ms: i64,
    pub notification: Notification,
    /// Why its group was notified (a group's first message starts an email thread).
    #[serde(default)]
    pub reason: Option<FlushReason>,
    /// How many notifications this one stands for (more than one: a digest).
    #[serde(default = "one")]
    pub folded: u32,
    #[serde(default)]
    pub attempts: u32,
    /// Not before this (backoff, `Retry-After`).
    #[serde(default)]
    pub next_attempt_ms: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}

fn one() -> u32 {
    1
}

/// How one integration's deliveries have gone, for `GET /api/v1/receivers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationStatus {
    pub integration: String,
    pub sent: u64,
    /// Refused for good (a 4xx other than 429, a missing secret).
    pub failed: u64,
    /// Notifications folded into digests.
    #[serde(default)]
    pub folded: u64,
    /// Refused because the integration's outbox was full.
    #[serde(default)]
    pub dropped: u64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// The notifier's part of a store; the failing defaults serve test doubles.
#[async_trait]
#[allow(unused_variables)] // the failing defaults ignore their arguments
pub trait OutboxStore: Send + Sync + 'static {
    async fn load_groups(&self) -> Result<Vec<GroupState>, StoreError> {
        Err(no_outbox())
    }

    /// Atomically, and only while `lease` is current: upserts `changed` groups, removes the
    /// groups `removed` (by id), and enqueues `enqueue`.
    async fn commit_dispatch(
        &self,
        lease: &Lease,
        changed: &[GroupState],
        removed: &[String],
        enqueue: &[Delivery],
    ) -> Result<CommitOutcome, StoreError> {
        Err(no_outbox())
    }

    /// Every pending delivery, oldest first.
    async fn read_outbox(&self) -> Result<Vec<Delivery>, StoreError> {
        Err(no_outbox())
    }

    /// Atomically, and only while `lease` is current: removes the deliveries `done` (by id),
    /// upserts `put` (rescheduled ones, digests) and records `statuses`.
    async fn settle_deliveries(
        &self,
        lease: &Lease,
        done: &[String],
        put: &[Delivery],
        statuses: &[IntegrationStatus],
    ) -> Result<CommitOutcome, StoreError> {
        Err(no_outbox())
    }

    async fn read_integrations(&self) -> Result<Vec<IntegrationStatus>, StoreError> {
        Err(no_outbox())
    }
}

fn no_outbox() -> StoreError {
    StoreError::Invalid("this store keeps no notification state".into())
}
