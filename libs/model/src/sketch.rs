//! A mergeable latency sketch with a guaranteed relative error: the logarithmic bucket mapping
//! of DDSketch (Masson, Rim & Lee, VLDB 2019), kept as sparse integer counts per bucket.
//!
//! Why our own and not a crate: the stores keep each bucket as one integer counter (a Redis
//! hash field), so that merging two sketches, across regions, minutes or aggregator
//! replicas, is plain addition done by the store itself (`HINCRBY`). That needs the bucket
//! index to be a stable, documented function, which this module is; the well-kept crates hide
//! their buckets behind their own encodings.
//!
//! Guarantee: every quantile returned is within [`RELATIVE_ACCURACY`] of the exact quantile
//! of the values added (rank definition: the value at rank `floor(q * (n - 1))` of the sorted
//! values), whatever the distribution, and merging loses nothing.

/// Relative error bound of every quantile (0.75 %): a margin below the 1 % the operators ask.
pub const RELATIVE_ACCURACY: f64 = 0.0075;

/// Values below this (in the sketch's unit, microseconds for latency) share one zero bucket.
pub const MIN_INDEXABLE: f64 = 1.0;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bucket of a value `v >= MIN_INDEXABLE`: the `i` with `gamma^(i-1) < v <= gamma^i`.
pub fn bucket_index(v: f64) -> i32 {
    (v.ln() / gamma().ln()).ceil() as i32
}

/// The value reported for bucket `i`: the point whose relative distance to both ends of the
/// bucket is `RELATIVE_ACCURACY`.
pub fn bucket_value(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

/// Sparse bucket counts, sorted by bucket index, without zero counts (so equal sketches
/// compare equal). A sorted `Vec` rather than a map: a minute's sketch holds a few dozen
/// buckets, cloning is one copy, and merging is a linear walk, which is what the query path
/// does thousands of times per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    zero_count: u64,
    buckets: Vec<(i32, u64)>,
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes its buckets hold on the heap, for caches bounded in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(i32, u64)>()
    }

    /// Adds one value. Non-finite and negative values are the caller's bug; they are counted
    /// in the zero bucket rather than poisoning the sketch.
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    pub fn add_n(&mut self, v: f64, n: u64) {
        if n == 0 {
            return;
        }
        if v.is_finite() && v >= MIN_INDEXABLE {
            self.add_bucket(bucket_index(v), n);
        } else {
            self.zero_count += n;
        }
    }

    /// Adds raw bucket counts, as read back from a store.
    pub fn add_bucket(&mut self, index: i32, n: u64) {
        if n == 0 {
            return;
        }
        // Values usually arrive in ascending order (stores read buckets sorted): try the end.
        match self.buckets.last_mut() {
            Some((last, count)) if *last == index => *count += n,
            Some((last, _)) if *last < index => self.buckets.push((index, n)),
            None => self.buckets.push((index, n)),
            Some(_) => match self.buckets.binary_search_by_key(&index, |(i, _)| *i) {
                Ok(at) => self.buckets[at].1 += n,
                Err(at) => self.buckets.insert(at, (index, n)),
            },
        }
    }

    pub fn add_zero(&mut self, n: u64) {
        self.zero_count += n;
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        self.zero_count += other.zero_count;
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets.extend_from_slice(&other.buckets);
            return;
        }
        self.buckets = merge_runs(&self.buckets, &other.buckets);
    }

    /// The sum of `parts`, with one allocation for the common small cases (a point of one or
    /// two minutes) and a dense [`SketchSum`] for many.
    pub fn sum_of(parts: &[&LatencySketch]) -> LatencySketch {
        match parts {
            [] => LatencySketch::new(),
            [one] => (*one).clone(),
            [a, b] => {
                LatencySketch { zero_count: a.zero_count + b.zero_count, buckets: merge_runs(&a.buckets, &b.buckets) }
            }
            many => {
                let mut sum = SketchSum::new();
                many.iter().for_each(|s| sum.add(s));
                sum.finish()
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.zero_count + self.buckets.iter().map(|(_, n)| n).sum::<u64>()
    }

    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    pub fn is_empty(&self) -> bool {
        self.zero_count == 0 && self.buckets.is_empty()
    }

    /// Non-empty buckets in ascending order of index.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().copied()
    }

    /// The `q` quantile (`0.0..=1.0`), or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (count - 1) as f64).floor() as u64;
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for (index, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return Some(bucket_value(*index));
            }
        }
        // Unreachable when counts add up; answer the top bucket rather than panic.
        self.buckets.last().map(|(i, _)| bucket_value(*i))
    }
}

/// The sum of two sorted bucket runs, in one allocation.
fn merge_runs(a: &[(i32, u64)], b: &[(i32, u64)]) -> Vec<(i32, u64)> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ia, na) = a[i];
        let (ib, nb) = b[j];
        if ia == ib {
            merged.push((ia, na + nb));
            i += 1;
            j += 1;
        } else if ia < ib {
            merged.push((ia, na));
            i += 1;
        } else {
            merged.push((ib, nb));
            j += 1;
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

/// Sums many sketches into one in time linear in their total size: a dense array of counts
/// over the bucket range seen so far. Merging thousands of minute sketches into one window
/// pairwise would re-copy the growing result every time.
#[derive(Debug, Clone, Default)]
pub struct SketchSum {
    zero_count: u64,
    offset: i32,
    counts: Vec<u64>,
}

impl SketchSum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, sketch: &LatencySketch) {
        self.zero_count += sketch.zero_count;
        let (Some(first), Some(last)) = (sketch.buckets.first(), sketch.buckets.last()) else { return };
        self.cover(first.0, last.0);
        for (index, n) in &sketch.buckets {
            // In range after `cover`; indices are i32, so the difference fits i64.
            let at = (i64::from(*index) - i64::from(self.offset)) as usize;
            self.counts[at] += n;
        }
    }

    /// Grows the dense range to include `lo..=hi`.
    fn cover(&mut self, lo: i32, hi: i32) {
        if self.counts.is_empty() {
            self.offset = lo;
            self.counts = vec![0; (i64::from(hi) - i64::from(lo) + 1) as usize];
            return;
        }
        if lo < self.offset {
            let grow = (i64::from(self.offset) - i64::from(lo)) as usize;
            let mut counts = vec![0; grow];
            counts.extend_from_slice(&self.counts);
            self.counts = counts;
            self.offset = lo;
        }
        let end = i64::from(self.offset) + self.counts.len() as i64;
        if i64::from(hi) >= end {
            self.counts.resize(self.counts.len() + (i64::from(hi) - end + 1) as usize, 0);
        }
    }

    pub fn finish(self) -> LatencySketch {
        let offset = self.offset;
        let buckets = self
            .counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| ((i64::from(offset) + i as i64) as i32, n))
            .collect();
        LatencySketch { zero_count: self.zero_count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        assert_eq!(LatencySketch::new().quantile(0.5), None);
    }

    #[test]
    fn bucket_value_is_within_accuracy_of_everything_in_the_bucket() {
        for v in [1.0, 1.5, 7.0, 999.9, 50_000.0, 123_456_789.0] {
            let estimate = bucket_value(bucket_index(v));
            assert!(((estimate - v) / v).abs() <= RELATIVE_ACCURACY + 1e-12, "{v} -> {estimate}");
        }
    }

    proptest! {
        #[test]
        fn quantiles_are_within_relative_accuracy(
            values in prop::collection::vec(1.0f64..1e8, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut sketch = LatencySketch::new();
            values.iter().for_each(|v| sketch.add(*v));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let exact = exact_quantile(&sorted, q);
            let estimate = sketch.quantile(q).unwrap();
            prop_assert!(((estimate - exact) / exact).abs() <= RELATIVE_ACCURACY + 1e-9);
        }

        #[test]
        fn summing_equals_merging(parts in prop::collection::vec(prop::collection::vec(0.0f64..1e7, 0..50), 0..20)) {
            let sketches: Vec<LatencySketch> = parts
                .iter()
                .map(|values| {
                    let mut s = LatencySketch::new();
                    values.iter().for_each(|v| s.add(*v));
                    s
                })
                .collect();
            let mut merged = LatencySketch::new();
            let mut sum = SketchSum::new();
            for s in &sketches {
                merged.merge(s);
                sum.add(s);
            }
            prop_assert_eq!(sum.finish(), merged.clone());
            let refs: Vec<&LatencySketch> = sketches.iter().collect();
            prop_assert_eq!(LatencySketch::sum_of(&refs), merged);
        }

        #[test]
        fn bucket_order_does_not_matter(indices in prop::collection::vec((-50i32..50, 1u64..5), 0..100)) {
            let mut shuffled = LatencySketch::new();
            indices.iter().for_each(|(i, n)| shuffled.add_bucket(*i, *n));
            let mut sorted_input = indices.clone();
            sorted_input.sort();
            let mut sorted = LatencySketch::new();
            sorted_input.iter().for_each(|(i, n)| sorted.add_bucket(*i, *n));
            prop_assert_eq!(&shuffled, &sorted);
            prop_assert!(shuffled.buckets.windows(2).all(|w| w[0].0 < w[1].0));
        }

        #[test]
        fn merging_equals_adding_everything_to_one(
            a in prop::collection::vec(0.0f64..1e7, 0..200),
            b in prop::collection::vec(0.0f64..1e7, 0..200),
        ) {
            let (mut left, mut right, mut all) = (LatencySketch::new(), LatencySketch::new(), LatencySketch::new());
            a.iter().for_each(|v| { left.add(*v); all.add(*v); });
            b.iter().for_each(|v| { right.add(*v); all.add(*v); });
            let mut merged = left.clone();
            merged.merge(&right);
            prop_assert_eq!(&merged, &all);
            let mut other_order = right.clone();
            other_order.merge(&left);
            prop_assert_eq!(&other_order, &all);
        }
    }
}
