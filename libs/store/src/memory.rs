//! The embedded store: everything in one process's memory, for `mixmon up` and tests. Same
//! semantics as Redis, retention included; nothing survives a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use mixmon_model::{Minute, ProberId, Rollup, RollupDelta, SeriesKey};

use crate::{ApplyOutcome, BatchId, Store, StoreError, ROLLUP_RETENTION_MINUTES};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rollups: BTreeMap<SeriesKey, BTreeMap<Minute, Rollup>>,
    watermarks: HashMap<(ProberId, u64), u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (apply_batch only
        // inserts after checking), so a poisoned lock's data is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        let mut inner = self.lock();
        let space = (batch.prober.clone(), batch.epoch);
        if inner.watermarks.get(&space).is_some_and(|mark| batch.seq <= *mark) {
            return Ok(ApplyOutcome::Duplicate);
        }
        inner.watermarks.insert(space, batch.seq);
        let mut newest = None;
        for ((series, minute), rollup) in &delta.rollups {
            inner.rollups.entry(series.clone()).or_default().entry(*minute).or_default().merge(rollup);
            newest = newest.max(Some(*minute));
        }
        if let Some(newest) = newest {
            let horizon = Minute(newest.0 - ROLLUP_RETENTION_MINUTES);
            for minutes in inner.rollups.values_mut() {
                while minutes.first_key_value().is_some_and(|(m, _)| *m < horizon) {
                    minutes.pop_first();
                }
            }
        }
        Ok(ApplyOutcome::Applied)
    }

    async fn read_rollups(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        let inner = self.lock();
        Ok(series
            .iter()
            .map(|key| match inner.rollups.get(key) {
                Some(minutes) if from < to => minutes.range(from..to).map(|(m, r)| (*m, r.clone())).collect(),
                _ => Vec::new(),
            })
            .collect())
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        let inner = self.lock();
        let keys: BTreeSet<SeriesKey> =
            inner.rollups.iter().filter(|(_, m)| !m.is_empty()).map(|(k, _)| k.clone()).collect();
        Ok(keys.into_iter().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
