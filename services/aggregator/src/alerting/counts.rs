//! Per-minute good/total counts of every endpoint's per-region series, kept in memory for the
//! burn-rate windows (up to three days): read in full once (and again every hour, to take in
//! results that arrived late), then only the last minutes at each evaluation. So a 3-day
//! window costs one read of ten minutes per series per tick, not 4 320.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mixmon_model::alert::Counts;
use mixmon_model::{Minute, SeriesKey};
use mixmon_store::{Store, StoreError, MAX_READ_KEYS};

/// Minutes re-read at every refresh: results of the minutes before are final but for a
/// prober's replay after a long outage, which the hourly full read takes in.
const FRESH_MINUTES: i64 = 10;
const FULL_READ_EVERY_MS: i64 = 3_600_000;

#[derive(Debug, Default)]
pub struct CountCache {
    minutes: HashMap<SeriesKey, BTreeMap<i64, Counts>>,
    span_minutes: i64,
    full_read_at_ms: Option<i64>,
    /// Per probing region, the minutes in which all its probers were cut off: their results
    /// of those minutes stay out of every window, also after the cut ends. Kept by the
    /// leader in memory; a new leader starts without them.
    isolated: HashMap<String, BTreeSet<i64>>,
}

impl CountCache {
    /// Brings the counts of `series` up to `now_ms`, over the last `span_minutes`.
    pub async fn refresh(
        &mut self,
        store: &dyn Store,
        series: &[SeriesKey],
        span_minutes: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let end = Minute::containing(now_ms).0 + 1;
        let known = series.iter().all(|s| self.minutes.contains_key(s)) && series.len() == self.minutes.len();
        let stale = self.full_read_at_ms.is_none_or(|at| now_ms - at >= FULL_READ_EVERY_MS);
        let full = !known || stale || span_minutes > self.span_minutes;
        let from = if full { end - span_minutes } else { end - FRESH_MINUTES };
        let per_read = (MAX_READ_KEYS / usize::try_from(end - from).unwrap_or(1).max(1)).max(1);
        let mut fresh: HashMap<SeriesKey, BTreeMap<i64, Counts>> = HashMap::new();
        for chunk in series.chunks(per_read) {
            let read = store.read_rollups(chunk, Minute(from), Minute(end)).await?;
            for (key, minutes) in chunk.iter().zip(read) {
                let counts = minutes
                    .into_iter()
                    .filter(|(m, _)| (from..end).contains(&m.0))
                    .map(|(m, r)| (m.0, Counts { total: r.total, good: r.successes }))
                    .collect();
                fresh.insert(key.clone(), counts);
            }
        }
        if full {
            self.minutes = fresh;
            self.span_minutes = span_minutes;
            self.full_read_at_ms = Some(now_ms);
        } else {
            for (key, counts) in fresh {
                let kept = self.minutes.entry(key).or_default();
                kept.retain(|m, _| *m < from);
                kept.extend(counts);
                let oldest = end - self.span_minutes;
                kept.retain(|m, _| *m >= oldest);
            }
        }
        Ok(())
    }

    /// The sum over the `minutes` ending with the minute of `now_ms`, leaving out the minutes
    /// `excluded` says are excluded (maintenance) and those its region was cut off in.
    pub fn window(&self, key: &SeriesKey, now_ms: i64, minutes: u32, excluded: impl Fn(i64) -> bool) -> Counts {
        let end = Minute::containing(now_ms).0 + 1;
        let cut_off = self.isolated.get(key.region.as_str());
        let mut sum = Counts::default();
        if let Some(per_minute) = self.minutes.get(key) {
            for (minute, counts) in per_minute.range(end - i64::from(minutes)..end) {
                if !excluded(*minute) && !cut_off.is_some_and(|m| m.contains(minute)) {
                    sum.add(*counts);
                }
            }
        }
        sum
    }

    /// Records that `regions` are cut off in the minute of `now_ms` (and the one before, whose
    /// last results may have failed for the same reason before the cut was recognised).
    pub fn mark_isolated(&mut self, regions: &[String], now_ms: i64) {
        let minute = Minute::containing(now_ms).0;
        for region in regions {
            let minutes = self.isolated.entry(region.clone()).or_default();
            minutes.insert(minute);
            minutes.insert(minute - 1);
        }
        let oldest = minute - self.span_minutes.max(1);
        for minutes in self.isolated.values_mut() {
            minutes.retain(|m| *m >= oldest);
        }
        self.isolated.retain(|_, m| !m.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::{CheckId, ProberId, Region, Rollup, RollupDelta};
    use mixmon_store::{BatchId, MemoryStore};

    #[tokio::test]
    async fn windows_sum_what_the_store_holds_and_follow_new_minutes() {
        let store = MemoryStore::new();
        let key = SeriesKey { check: CheckId::new("api").unwrap(), region: Region::new("eu-west").unwrap() };
        let t0 = 1_800_000_000_000i64; // a whole minute
        let apply = |minute: i64, ok: bool, n: u64| {
            let mut delta = RollupDelta::default();
            let rollup = Rollup { total: n, successes: if ok { n } else { 0 }, ..Rollup::default() };
            delta.add_rollup(key.clone(), Minute::containing(t0 + minute * 60_000), &rollup);
            delta
        };
        let batch = |seq: u64| BatchId { prober: ProberId::new("p").unwrap(), epoch: 1, seq };
        for (seq, minute, ok, n) in [(1, 0, true, 10), (2, 1, false, 2), (3, 2, true, 5)] {
            store.apply_batch(&batch(seq), &apply(minute, ok, n)).await.unwrap();
        }
        let mut cache = CountCache::default();
        let now = t0 + 2 * 60_000 + 30_000;
        cache.refresh(&store, std::slice::from_ref(&key), 60, now).await.unwrap();
        assert_eq!(cache.window(&key, now, 60, |_| false), Counts { total: 17, good: 15 });
        assert_eq!(cache.window(&key, now, 2, |_| false), Counts { total: 7, good: 5 });
        let minute1 = Minute::containing(t0).0 + 1;
        assert_eq!(cache.window(&key, now, 60, |m| m == minute1), Counts { total: 15, good: 15 }, "excluded");
        // A new minute is picked up by the next (partial) refresh.
        store.apply_batch(&batch(4), &apply(3, false, 3)).await.unwrap();
        let later = now + 60_000;
        cache.refresh(&store, std::slice::from_ref(&key), 60, later).await.unwrap();
        assert_eq!(cache.window(&key, later, 60, |_| false), Counts { total: 20, good: 15 });
        assert_eq!(cache.window(&key, later, 1, |_| false), Counts { total: 3, good: 0 });
        // The region cut off in that minute (and the one before): its results of both stay
        // out, also once the cut ends.
        cache.mark_isolated(&["eu-west".to_string()], later);
        assert_eq!(cache.window(&key, later, 60, |_| false), Counts { total: 12, good: 10 });
        assert_eq!(cache.window(&key, later + 120_000, 60, |_| false), Counts { total: 12, good: 10 });
    }
}
