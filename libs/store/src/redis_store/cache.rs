//! Decoded (series, hour) blocks of minute rollups, reused while the hour's `n` is unchanged.

use std::sync::{Arc, MutexGuard};

use mixmon_model::lru::BoundedLru;
use mixmon_model::{Hour, Minute, Rollup, SeriesKey};

use super::RedisStore;

/// Default number of decoded (series, hour) blocks the read cache keeps. One block is 60
/// minute rollups, a few tens of KiB with typical sketches, so the default stays under about
/// a hundred MiB while holding two days (a 24 h dashboard and its uptime lead) of 24 series.
pub const DEFAULT_READ_CACHE_HOURS: usize = 2_048;

/// Decoded minute rollups of one (series, hour), shared between the cache and readers.
pub(super) type Minutes = Arc<Vec<(Minute, Rollup)>>;

/// Default bound on the bytes the read cache's decoded blocks hold (by estimate): a 24 h
/// dashboard of 24 series with its 24 h uptime lead reads about 1 200 blocks of some 100 KiB
/// with real sketches; at 64 MiB the query benchmark's p99 rose from 8 to 11 ms, every
/// refresh re-reading what the bound had evicted.
pub const DEFAULT_READ_CACHE_BYTES: usize = 256 << 20;

/// The decoded minutes of one (series, hour), and the hourly `n` they were read at.
struct CachedHour {
    version: u64,
    minutes: Arc<Vec<(Minute, Rollup)>>,
}

pub(super) struct HourCache {
    entries: BoundedLru<(SeriesKey, Hour), CachedHour>,
}

/// About the bytes one block holds.
fn block_bytes(minutes: &[(Minute, Rollup)]) -> usize {
    minutes.iter().map(|(_, r)| std::mem::size_of::<Minute>() + r.approx_bytes()).sum()
}

impl HourCache {
    pub(super) fn new(max_hours: usize, max_bytes: usize) -> Self {
        HourCache { entries: BoundedLru::new(max_hours, max_bytes) }
    }

    pub(super) fn enabled(&self) -> bool {
        self.entries.enabled()
    }

    pub(super) fn get(&mut self, key: &(SeriesKey, Hour), version: u64) -> Option<Arc<Vec<(Minute, Rollup)>>> {
        let entry = self.entries.get(key)?;
        (entry.version == version).then(|| entry.minutes.clone())
    }

    pub(super) fn put(&mut self, key: (SeriesKey, Hour), version: u64, minutes: Arc<Vec<(Minute, Rollup)>>) {
        let bytes = block_bytes(&minutes);
        self.entries.insert(key, CachedHour { version, minutes }, bytes);
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.entries.bytes()
    }
}

impl RedisStore {
    pub(super) fn cache(&self) -> MutexGuard<'_, HourCache> {
        // The cache holds only immutable decoded copies; a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::{CheckId, Region};

    /// An hour of rollups whose sketches hold `values` distinct latencies each.
    fn block(values: u32) -> Arc<Vec<(Minute, Rollup)>> {
        let minutes = (0..60)
            .map(|m| {
                let mut rollup = Rollup::default();
                for v in 0..values {
                    rollup.latency.add(f64::from(v * 37 + 1));
                }
                (Minute(m), rollup)
            })
            .collect();
        Arc::new(minutes)
    }

    #[test]
    fn wide_blocks_are_bounded_by_bytes_not_only_by_count() {
        let bound = 2 << 20;
        let mut cache = HourCache::new(DEFAULT_READ_CACHE_HOURS, bound);
        let wide = block(500);
        assert!(block_bytes(&wide) > 100_000, "a wide block is {} bytes", block_bytes(&wide));
        for h in 0..200 {
            let key = (SeriesKey { check: CheckId::new("api").unwrap(), region: Region::new("ap").unwrap() }, Hour(h));
            cache.put(key, 1, wide.clone());
            assert!(cache.bytes() <= bound, "{} bytes cached, bound {bound}", cache.bytes());
        }
        assert!(cache.entries.len() < 20, "{} wide blocks kept", cache.entries.len());
    }
}
