//! A least-recently-used map bounded both in entries and in bytes (each entry's size is the
//! caller's estimate), for the read caches: a bound in entries alone lets a few large entries
//! (hours of wide sketches) hold far more memory than the operator configured.

use std::collections::HashMap;
use std::hash::Hash;

struct Slot<V> {
    value: V,
    bytes: usize,
    last_used: u64,
}

pub struct BoundedLru<K, V> {
    entries: HashMap<K, Slot<V>>,
    clock: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: Eq + Hash, V> BoundedLru<K, V> {
    /// Either bound 0 disables the cache: nothing is kept.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        BoundedLru { entries: HashMap::new(), clock: 0, bytes: 0, max_entries, max_bytes }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the entries' estimates add up to; never above the byte bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// The value under `key`, marked used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.clock += 1;
        let clock = self.clock;
        let slot = self.entries.get_mut(key)?;
        slot.last_used = clock;
        Some(&slot.value)
    }

    /// Keeps `value` (estimated at `bytes`) under `key`, replacing what was there, after
    /// evicting the least recently used entries until both bounds hold. An entry larger than
    /// the whole byte bound is not kept.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
        }
        if !self.enabled() || bytes > self.max_bytes {
            return;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes)
        {
            self.evict_quarter();
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(key, Slot { value, bytes, last_used: self.clock });
    }

    /// The least recently used quarter (at least one entry) at once, so eviction is amortised.
    fn evict_quarter(&mut self) {
        let mut stamps: Vec<u64> = self.entries.values().map(|s| s.last_used).collect();
        stamps.sort_unstable();
        let cut = stamps[(stamps.len() / 4).min(stamps.len() - 1)];
        let mut freed = 0;
        self.entries.retain(|_, slot| {
            let keep = slot.last_used > cut;
            if !keep {
                freed += slot.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_stay_within_the_bound_and_the_recently_used_stay() {
        let mut lru = BoundedLru::new(1_000, 10_000);
        for i in 0..100_u32 {
            lru.insert(i, i, 1_000);
            // Key 0 is used after every insert: it is never the least recently used.
            assert!(lru.get(&0).is_some(), "key 0 evicted after inserting {i}");
            assert!(lru.bytes() <= 10_000, "{} bytes held after inserting {i}", lru.bytes());
        }
        assert!(lru.len() <= 10);
        assert_eq!(lru.get(&99), Some(&99));
        assert_eq!(lru.get(&50), None);
    }

    #[test]
    fn entries_stay_within_the_bound() {
        let mut lru = BoundedLru::new(8, usize::MAX);
        for i in 0..100_u32 {
            lru.insert(i, (), 1);
            assert!(lru.len() <= 8);
        }
    }

    #[test]
    fn replacing_an_entry_counts_its_bytes_once_and_an_oversized_one_is_not_kept() {
        let mut lru = BoundedLru::new(10, 100);
        lru.insert("a", 1, 60);
        lru.insert("a", 2, 70);
        assert_eq!((lru.len(), lru.bytes(), lru.get(&"a")), (1, 70, Some(&2)));
        lru.insert("b", 3, 101);
        assert_eq!((lru.len(), lru.get(&"b")), (1, None));
        // Replaced by one too large: the old value goes too, never a stale one.
        lru.insert("a", 4, 200);
        assert_eq!((lru.len(), lru.bytes(), lru.get(&"a")), (0, 0, None));
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let mut lru = BoundedLru::new(0, 100);
        lru.insert(1, 1, 1);
        assert!(lru.is_empty());
        let mut lru = BoundedLru::new(10, 0);
        lru.insert(1, 1, 1);
        assert!(lru.is_empty());
    }
}
