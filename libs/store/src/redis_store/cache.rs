//! Decoded (series, hour) blocks of minute rollups, reused while the hour's `n` is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use mixmon_model::{Hour, Minute, Rollup, SeriesKey};

use super::RedisStore;

/// Default number of decoded (series, hour) blocks the read cache keeps. One block is 60
/// minute rollups, a few tens of KiB with typical sketches, so the default stays under about
/// a hundred MiB while holding two days (a 24 h dashboard and its uptime lead) of 24 series.
pub const DEFAULT_READ_CACHE_HOURS: usize = 2_048;

/// Decoded minute rollups of one (series, hour), shared between the cache and readers.
pub(super) type Minutes = Arc<Vec<(Minute, Rollup)>>;

/// The decoded minutes of one (series, hour), and the hourly `n` they were read at.
struct CachedHour {
    version: u64,
    minutes: Arc<Vec<(Minute, Rollup)>>,
    last_used: u64,
}

#[derive(Default)]
pub(super) struct HourCache {
    entries: HashMap<(SeriesKey, Hour), CachedHour>,
    clock: u64,
}

impl HourCache {
    pub(super) fn get(&mut self, key: &(SeriesKey, Hour), version: u64) -> Option<Arc<Vec<(Minute, Rollup)>>> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(key)?;
        if entry.version != version {
            return None;
        }
        entry.last_used = clock;
        Some(entry.minutes.clone())
    }

    pub(super) fn put(
        &mut self,
        key: (SeriesKey, Hour),
        version: u64,
        minutes: Arc<Vec<(Minute, Rollup)>>,
        capacity: usize,
    ) {
        if capacity == 0 {
            return;
        }
        self.clock += 1;
        if self.entries.len() >= capacity && !self.entries.contains_key(&key) {
            // Evict the least recently used quarter at once, so eviction is amortised.
            let mut stamps: Vec<u64> = self.entries.values().map(|e| e.last_used).collect();
            stamps.sort_unstable();
            let cut = stamps[(stamps.len() / 4).min(stamps.len() - 1)];
            self.entries.retain(|_, e| e.last_used > cut);
        }
        self.entries.insert(key, CachedHour { version, minutes, last_used: self.clock });
    }
}

impl RedisStore {
    pub(super) fn cache(&self) -> MutexGuard<'_, HourCache> {
        // The cache holds only immutable decoded copies; a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
