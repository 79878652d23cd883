//! All persistence: the [`Store`] trait, the embedded [`MemoryStore`] (for `mixmon up` and
//! unit tests) and the [`RedisStore`]. Only this crate knows a Redis key or the `redis` crate;
//! `keys` holds the whole key schema.
//!
//! Both stores pass one conformance suite (`tests/conformance.rs`).

pub mod alerts;
mod error;
pub mod keys;
mod memory;
mod memory_alerts;
pub mod outbox;
mod redis_store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mixmon_config::Secret;
use mixmon_model::{Fields, Hour, Minute, ProberId, RawRecord, Rollup, RollupDelta, SeriesKey, Subject};

pub use alerts::{AlertStore, CommitOutcome, Lease, ProbeRequest, ProberSeen, StreamEntry};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use outbox::{Delivery, IntegrationStatus, OutboxStore};
pub use redis_store::{
    redact_url, RedisStore, RedisStoreConfig, DEFAULT_READ_CACHE_BYTES, DEFAULT_READ_CACHE_HOURS, MAX_READ_KEYS,
    MAX_READ_MINUTES,
};

/// Metrics (rollups) are kept 15 days.
pub const ROLLUP_RETENTION_MINUTES: i64 = 15 * 24 * 60;
/// Applied-batch watermarks outlive any plausible redelivery (a prober's buffer holds at most
/// days), so a resend is always recognised.
pub const WATERMARK_RETENTION_SECONDS: u64 = 7 * 24 * 3600;

/// Minute rollups of one series over `from..to`, shared (see [`Store::read_rollup_blocks`]).
/// A store that caches hands out the same `minutes` allocation while the block is unchanged,
/// so callers may cache what they derive from it, keyed by [`Arc::ptr_eq`] (holding the `Arc`).
#[derive(Debug, Clone)]
pub struct RollupBlock {
    pub from: Minute,
    pub to: Minute,
    pub minutes: Arc<Vec<(Minute, Rollup)>>,
}

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

/// Metrics and figures; alert state and the notifier's outbox through the [`AlertStore`] and
/// [`OutboxStore`] supertraits.
#[async_trait]
pub trait Store: AlertStore + OutboxStore + Send + Sync + 'static {
    /// Adds a batch's rollup and figure increments exactly once. Atomic per endpoint (check)
    /// and per subject: for each either its watermark moves and all its increments land, or
    /// nothing of it changes. After an error some endpoints or subjects may be applied; the
    /// resend of the same batch applies the rest and counts nothing twice. `Applied` when
    /// anything was applied, `Duplicate` when every endpoint and subject had seen the batch.
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError>;

    /// For each series, its rollups for minutes in `from..to`, ascending; minutes without data
    /// are absent.
    async fn read_rollups(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError>;

    /// Like [`Store::read_rollups`], but as shared blocks, so a store with a read cache can
    /// answer without copying: for each series, blocks in ascending order whose minutes
    /// ascend; a block may hold minutes outside `from..to`, which the caller skips.
    async fn read_rollup_blocks(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<RollupBlock>>, StoreError> {
        let read = self.read_rollups(series, from, to).await?;
        Ok(read.into_iter().map(|minutes| vec![RollupBlock { from, to, minutes: Arc::new(minutes) }]).collect())
    }

    /// For each series, its hourly rollups (each the sum of the hour's minutes) for hours in
    /// `from..to`, ascending; hours without data are absent. Long windows (24 h uptime, 7 d,
    /// 15 d) read these instead of minutes.
    async fn read_hourly(
        &self,
        series: &[SeriesKey],
        from: Hour,
        to: Hour,
    ) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError>;

    /// The latest raw records of a series, newest first, at most `limit` (and at most the
    /// [`RECORDS_KEPT`](mixmon_model::RECORDS_KEPT) the store keeps).
    async fn read_records(&self, series: &SeriesKey, limit: usize) -> Result<Vec<RawRecord>, StoreError>;

    /// Every series written within retention, sorted. All-regions series
    /// ([`SeriesKey::all_regions`]) are not listed: read them by their key.
    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError>;

    // The figure methods have defaults only so that test doubles (a store that is always
    // down) need not spell them out; `MemoryStore` and `RedisStore` implement all three.

    /// For each subject, its minute Fields in from..to, ascending; minutes without data absent.
    async fn read_figures(
        &self,
        _subjects: &[Subject],
        _from: Minute,
        _to: Minute,
    ) -> Result<Vec<Vec<(Minute, Fields)>>, StoreError> {
        Err(StoreError::Invalid("this store keeps no figures".into()))
    }

    /// Hourly sums (each the merge of the hour's minutes) for hours in from..to.
    async fn read_figures_hourly(
        &self,
        _subjects: &[Subject],
        _from: Hour,
        _to: Hour,
    ) -> Result<Vec<Vec<(Hour, Fields)>>, StoreError> {
        Err(StoreError::Invalid("this store keeps no figures".into()))
    }

    /// Every subject written within retention, sorted.
    async fn list_subjects(&self) -> Result<Vec<Subject>, StoreError> {
        Err(StoreError::Invalid("this store keeps no figures".into()))
    }

    /// Cheap liveness check of the backend.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Which store a service uses, as written in its config file:
/// `[store] kind = "memory"` or `[store] kind = "redis"`, `url = "redis://..."`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// Everything in process memory; nothing survives a restart.
    #[default]
    Memory,
    Redis {
        url: Secret,
        /// Upper bound on each store call; 5 s when absent.
        #[serde(default)]
        response_timeout_ms: Option<u64>,
    },
}

/// Opens the configured store; a Redis store is connected (and so checked) before this returns.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreConfig::Redis { url, response_timeout_ms } => {
            let mut redis = RedisStoreConfig::new(url.expose());
            if let Some(ms) = response_timeout_ms {
                if *ms == 0 {
                    return Err(StoreError::Invalid("store response_timeout_ms must be above 0".into()));
                }
                redis.response_timeout = Duration::from_millis(*ms);
            }
            Ok(Arc::new(RedisStore::connect(redis).await?))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn store_config_reads_both_kinds_and_refuses_unknown_keys() {
        assert_eq!(StoreConfig::default(), StoreConfig::Memory);
        let memory: StoreConfig = serde_json::from_str(r#"{"kind": "memory"}"#).unwrap();
        assert_eq!(memory, StoreConfig::Memory);
        let redis: StoreConfig =
            serde_json::from_str(r#"{"kind": "redis", "url": "redis://:pw@h:1", "response_timeout_ms": 250}"#).unwrap();
        assert_eq!(redis, StoreConfig::Redis { url: Secret::new("redis://:pw@h:1"), response_timeout_ms: Some(250) });
        let redis: StoreConfig = serde_json::from_str(r#"{"kind": "redis", "url": "redis://h"}"#).unwrap();
        assert!(matches!(redis, StoreConfig::Redis { response_timeout_ms: None, .. }));
        assert!(!format!("{redis:?}").contains("redis://h"), "the URL is a secret");
        for bad in [r#"{"kind": "redis"}"#, r#"{"kind": "redis", "url": "u", "extra": 1}"#, r#"{"kind": "etcd"}"#] {
            assert!(serde_json::from_str::<StoreConfig>(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn open_memory_gives_a_working_store() {
        let store = open(&StoreConfig::Memory).await.unwrap();
        store.ping().await.unwrap();
        assert!(store.list_series().await.unwrap().is_empty());
    }
}
