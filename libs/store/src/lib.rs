//! All persistence: the [`Store`] trait, the embedded [`MemoryStore`] (for `mixmon up` and
//! unit tests) and the [`RedisStore`]. Only this crate knows a Redis key or the `redis` crate;
//! `keys` holds the whole key schema.
//!
//! Both stores pass one conformance suite (`tests/conformance.rs`).

mod error;
pub mod keys;
mod memory;
mod redis_store;

use async_trait::async_trait;
use mixmon_model::{Minute, ProberId, Rollup, RollupDelta, SeriesKey};

pub use error::StoreError;
pub use memory::MemoryStore;
pub use redis_store::{RedisStore, RedisStoreConfig};

/// Metrics (rollups) are kept 15 days.
pub const ROLLUP_RETENTION_MINUTES: i64 = 15 * 24 * 60;
/// Applied-batch watermarks outlive any plausible redelivery (a prober's buffer holds at most
/// days), so a resend is always recognised.
pub const WATERMARK_RETENTION_SECONDS: u64 = 7 * 24 * 3600;

/// Identifies one batch of results: sequence numbers increase within (prober, epoch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId {
    pub prober: ProberId,
    pub epoch: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The batch's increments are now durably in the store.
    Applied,
    /// This batch (or a later one of the same sequence space) was applied before; nothing
    /// changed. Batches are applied in sequence order per (prober, epoch), so a sequence
    /// number at or below the watermark is a resend.
    Duplicate,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds a batch's rollup increments exactly once, atomically: either the watermark moves
    /// and every increment lands, or nothing changes.
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError>;

    /// For each series, its rollups for minutes in `from..to`, ascending; minutes without data
    /// are absent.
    async fn read_rollups(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError>;

    /// Every series written within retention, sorted.
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError>;

    /// Cheap liveness check of the backend.
    async fn ping(&self) -> Result<(), StoreError>;
}
