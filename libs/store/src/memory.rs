//! The embedded store: everything in one process's memory, for `mixmon up` and tests. Same
//! semantics as Redis, retention included; nothing survives a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use mixmon_model::{
    CheckId, Fields, Hour, Minute, ProberId, RawRecord, Rollup, RollupDelta, SeriesKey, Subject, RECORDS_KEPT,
};

use crate::{ApplyOutcome, BatchId, Store, StoreError, ROLLUP_RETENTION_MINUTES};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    alerts: crate::memory_alerts::AlertTables,
}

#[derive(Default)]
struct Inner {
    rollups: BTreeMap<SeriesKey, BTreeMap<Minute, Rollup>>,
    /// Per (check, prober, epoch), as in Redis, where each endpoint keeps its own.
    watermarks: HashMap<(CheckId, ProberId, u64), u64>,
    /// Newest first, at most [`RECORDS_KEPT`] per series.
    records: HashMap<SeriesKey, VecDeque<RawRecord>>,
    figures: BTreeMap<Subject, BTreeMap<Minute, Fields>>,
    /// Per (subject, prober, epoch): each subject is its own exactly-once space, as in Redis.
    figure_watermarks: HashMap<(Subject, ProberId, u64), u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn alert_tables(&self) -> &crate::memory_alerts::AlertTables {
        &self.alerts
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
        let checks: BTreeSet<&CheckId> = delta
            .rollups
            .keys()
            .map(|(series, _)| &series.check)
            .chain(delta.records.keys().map(|s| &s.check))
            .collect();
        let fresh: BTreeSet<&CheckId> = checks
            .into_iter()
            .filter(|check| {
                let space = ((*check).clone(), batch.prober.clone(), batch.epoch);
                inner.watermarks.get(&space).is_none_or(|mark| batch.seq > *mark)
            })
            .collect();
        let subjects: BTreeSet<&Subject> = delta.figures.keys().map(|(subject, _)| subject).collect();
        let fresh_subjects: BTreeSet<&Subject> = subjects
            .into_iter()
            .filter(|subject| {
                let space = ((*subject).clone(), batch.prober.clone(), batch.epoch);
                inner.figure_watermarks.get(&space).is_none_or(|mark| batch.seq > *mark)
            })
            .collect();
        let anything = !(delta.rollups.is_empty() && delta.records.is_empty() && delta.figures.is_empty());
        if fresh.is_empty() && fresh_subjects.is_empty() && anything {
            return Ok(ApplyOutcome::Duplicate);
        }
        for check in &fresh {
            inner.watermarks.insert(((*check).clone(), batch.prober.clone(), batch.epoch), batch.seq);
        }
        for subject in &fresh_subjects {
            inner.figure_watermarks.insert(((*subject).clone(), batch.prober.clone(), batch.epoch), batch.seq);
        }
        let mut newest = None;
        for ((subject, minute), fields) in
            delta.figures.iter().filter(|((s, _), f)| fresh_subjects.contains(s) && !f.is_empty())
        {
            inner.figures.entry(subject.clone()).or_default().entry(*minute).or_default().merge_concurrent(fields);
            newest = newest.max(Some(*minute));
        }
        for (series, records) in delta.records.iter().filter(|(s, _)| fresh.contains(&s.check)) {
            let kept = inner.records.entry(series.clone()).or_default();
            for record in records {
                kept.push_front(*record);
            }
            kept.truncate(RECORDS_KEPT);
        }
        for ((series, minute), rollup) in delta.rollups.iter().filter(|((s, _), _)| fresh.contains(&s.check)) {
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
            for minutes in inner.figures.values_mut() {
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

    async fn read_hourly(
        &self,
        series: &[SeriesKey],
        from: Hour,
        to: Hour,
    ) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        let inner = self.lock();
        Ok(series
            .iter()
            .map(|key| {
                let mut hours: Vec<(Hour, Rollup)> = Vec::new();
                if let Some(minutes) = inner.rollups.get(key).filter(|_| from < to) {
                    for (minute, rollup) in minutes.range(from.first_minute()..to.first_minute()) {
                        match hours.last_mut() {
                            Some((hour, sum)) if *hour == minute.hour() => sum.merge(rollup),
                            _ => hours.push((minute.hour(), rollup.clone())),
                        }
                    }
                }
                hours
            })
            .collect())
    }

    async fn read_records(&self, series: &SeriesKey, limit: usize) -> Result<Vec<RawRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner.records.get(series).map(|r| r.iter().take(limit).copied().collect()).unwrap_or_default())
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        let inner = self.lock();
        let keys: BTreeSet<SeriesKey> = inner
            .rollups
            .iter()
            .filter(|(k, m)| !m.is_empty() && !k.is_all_regions())
            .map(|(k, _)| k.clone())
            .collect();
        Ok(keys.into_iter().collect())
    }

    async fn read_figures(
        &self,
        subjects: &[Subject],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Fields)>>, StoreError> {
        let inner = self.lock();
        Ok(subjects
            .iter()
            .map(|subject| match inner.figures.get(subject) {
                Some(minutes) if from < to => minutes.range(from..to).map(|(m, f)| (*m, f.clone())).collect(),
                _ => Vec::new(),
            })
            .collect())
    }

    async fn read_figures_hourly(
        &self,
        subjects: &[Subject],
        from: Hour,
        to: Hour,
    ) -> Result<Vec<Vec<(Hour, Fields)>>, StoreError> {
        let inner = self.lock();
        Ok(subjects
            .iter()
            .map(|subject| {
                let mut hours: Vec<(Hour, Fields)> = Vec::new();
                if let Some(minutes) = inner.figures.get(subject).filter(|_| from < to) {
                    for (minute, fields) in minutes.range(from.first_minute()..to.first_minute()) {
                        match hours.last_mut() {
                            Some((hour, sum)) if *hour == minute.hour() => sum.merge(fields),
                            _ => hours.push((minute.hour(), fields.clone())),
                        }
                    }
                }
                hours
            })
            .collect())
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>, StoreError> {
        let inner = self.lock();
        Ok(inner.figures.iter().filter(|(_, m)| !m.is_empty()).map(|(s, _)| s.clone()).collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
