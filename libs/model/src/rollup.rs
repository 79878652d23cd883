//! Per-minute rollups: what one (check, region) did in one minute, in a form that adds up.
//! Everything in a [`Rollup`] is a count or a sum, so rollups merge by addition across
//! regions, minutes, batches and aggregator replicas.

use std::collections::BTreeMap;

use crate::ids::{CheckId, Region};
use crate::record::RawRecord;
use crate::result::{FailureKind, PhaseTimings, ProbeResult};
use crate::sketch::LatencySketch;
use crate::time::Minute;

/// One time series of rollups: a check as seen from one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub check: CheckId,
    pub region: Region,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    pub total: u64,
    pub successes: u64,
    pub failures: BTreeMap<FailureKind, u64>,
    /// Sum of the durations of successful probes, for the mean.
    pub latency_sum_us: u64,
    /// Durations of successful probes, in microseconds. A failed probe's duration says how
    /// long it took to fail, not how fast the endpoint is, so it is kept out.
    pub latency: LatencySketch,
    /// Phase timings of successful probes: sums and counts per phase, for the means.
    pub phases: PhaseStats,
}

/// The request phases whose timings are kept per rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    FirstByte,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Dns, Phase::Connect, Phase::Tls, Phase::FirstByte];

    /// A short stable name, used in stored field names and query metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first_byte",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn of(self, timings: &PhaseTimings) -> u64 {
        match self {
            Phase::Dns => timings.dns_us,
            Phase::Connect => timings.connect_us,
            Phase::Tls => timings.tls_us,
            Phase::FirstByte => timings.first_byte_us,
        }
    }
}

/// Per-phase sum (µs) and count of the probes in which the phase happened. A phase that did not
/// happen (no TLS on `http://`, a cached DNS answer) reports 0 and is left out of the count, so
/// the mean is the mean of the phase when it happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseStats {
    pub sum_us: [u64; 4],
    pub count: [u64; 4],
}

impl PhaseStats {
    pub fn add(&mut self, timings: &PhaseTimings) {
        for phase in Phase::ALL {
            let v = phase.of(timings);
            if v > 0 {
                self.sum_us[phase as usize] = self.sum_us[phase as usize].saturating_add(v);
                self.count[phase as usize] += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &PhaseStats) {
        for i in 0..4 {
            self.sum_us[i] = self.sum_us[i].saturating_add(other.sum_us[i]);
            self.count[i] += other.count[i];
        }
    }

    /// Mean of the phase in microseconds, `None` when it never happened.
    pub fn mean_us(&self, phase: Phase) -> Option<f64> {
        let n = self.count[phase as usize];
        (n > 0).then(|| self.sum_us[phase as usize] as f64 / n as f64)
    }
}

impl Rollup {
    pub fn add(&mut self, result: &ProbeResult) {
        self.total += 1;
        match result.failure {
            None => {
                self.successes += 1;
                self.latency_sum_us = self.latency_sum_us.saturating_add(result.duration_us);
                self.latency.add(result.duration_us as f64);
                self.phases.add(&result.phases);
            }
            Some(kind) => *self.failures.entry(kind).or_insert(0) += 1,
        }
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.merge_counts(other);
        self.latency.merge(&other.latency);
    }

    /// Merges everything but the latency sketch, for callers that sum many sketches at once
    /// with [`crate::SketchSum`].
    pub fn merge_counts(&mut self, other: &Rollup) {
        self.total += other.total;
        self.successes += other.successes;
        for (kind, n) in &other.failures {
            *self.failures.entry(*kind).or_insert(0) += n;
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.phases.merge(&other.phases);
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The rollup increments one batch of results brings, grouped by series and minute. The
/// aggregator builds one per batch and the store applies it atomically, once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupDelta {
    pub rollups: BTreeMap<(SeriesKey, Minute), Rollup>,
    /// The results themselves, compactly, in arrival order: the raw health records.
    pub records: BTreeMap<SeriesKey, Vec<RawRecord>>,
}

impl RollupDelta {
    pub fn add(&mut self, region: &Region, result: &ProbeResult) {
        let key = SeriesKey { check: result.check_id.clone(), region: region.clone() };
        let minute = Minute::containing(result.started_at_ms);
        match self.records.get_mut(&key) {
            Some(records) => records.push(RawRecord::of(result)),
            None => {
                self.records.insert(key.clone(), vec![RawRecord::of(result)]);
            }
        }
        self.rollups.entry((key, minute)).or_default().add(result);
    }

    pub fn is_empty(&self) -> bool {
        self.rollups.is_empty()
    }

    pub fn result_count(&self) -> u64 {
        self.rollups.values().map(|r| r.total).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn result(check: &str, at_ms: i64, failure: Option<FailureKind>, duration_us: u64) -> ProbeResult {
        ProbeResult {
            check_id: CheckId::new(check).unwrap(),
            started_at_ms: at_ms,
            failure,
            duration_us,
            status_code: if failure.is_none() { 200 } else { 0 },
            error: String::new(),
            phases: PhaseTimings {
                dns_us: 10,
                connect_us: 20,
                tls_us: 0,
                first_byte_us: duration_us / 2,
                transfer_us: 1,
            },
            details: Default::default(),
        }
    }

    #[test]
    fn delta_groups_by_series_and_minute() {
        let region = Region::new("eu-west").unwrap();
        let mut delta = RollupDelta::default();
        delta.add(&region, &result("api", 0, None, 1_000));
        delta.add(&region, &result("api", 59_999, Some(FailureKind::Timeout), 5_000_000));
        delta.add(&region, &result("api", 60_000, None, 3_000));
        delta.add(&region, &result("edge", 0, Some(FailureKind::Dns), 10));
        assert_eq!(delta.rollups.len(), 3);
        assert_eq!(delta.result_count(), 4);
        assert_eq!(delta.records.values().map(Vec::len).sum::<usize>(), 4, "every result is a raw record");
        let api0 = &delta.rollups[&(SeriesKey { check: CheckId::new("api").unwrap(), region }, Minute(0))];
        assert_eq!((api0.total, api0.successes, api0.latency_sum_us), (2, 1, 1_000));
        assert_eq!(api0.failures[&FailureKind::Timeout], 1);
        assert_eq!(api0.latency.count(), 1, "failed probes stay out of the latency sketch");
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Rollup::default();
        a.add(&result("x", 0, None, 100));
        let mut b = Rollup::default();
        b.add(&result("x", 0, Some(FailureKind::BadStatus), 5));
        b.add(&result("x", 0, None, 300));
        a.merge(&b);
        assert_eq!((a.total, a.successes, a.latency_sum_us, a.latency.count()), (3, 2, 400, 2));
        assert_eq!(a.failures[&FailureKind::BadStatus], 1);
    }

    #[test]
    fn phases_count_only_where_they_happened() {
        let mut r = Rollup::default();
        r.add(&result("x", 0, None, 1_000));
        r.add(&result("x", 0, None, 3_000));
        r.add(&result("x", 0, Some(FailureKind::Tls), 3_000));
        assert_eq!(r.phases.mean_us(Phase::Dns), Some(10.0));
        assert_eq!(r.phases.mean_us(Phase::FirstByte), Some(1_000.0));
        assert_eq!(r.phases.mean_us(Phase::Tls), None, "no TLS on http://");
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
    }

    proptest! {
        /// Rollups add up: folding results one by one, in any split, equals merging the parts.
        #[test]
        fn rollups_of_parts_merge_to_the_rollup_of_the_whole(
            results in prop::collection::vec((0i64..180_000, any::<bool>(), 1u64..10_000_000), 0..200),
            split in 0usize..200,
        ) {
            let all: Vec<ProbeResult> = results
                .iter()
                .map(|(at, ok, us)| result("x", *at, (!ok).then_some(FailureKind::Timeout), *us))
                .collect();
            let split = split.min(all.len());
            let (mut whole, mut left, mut right) = (Rollup::default(), Rollup::default(), Rollup::default());
            all.iter().for_each(|r| whole.add(r));
            all[..split].iter().for_each(|r| left.add(r));
            all[split..].iter().for_each(|r| right.add(r));
            left.merge(&right);
            prop_assert_eq!(&left, &whole);
            prop_assert_eq!(whole.total, whole.successes + whole.failures.values().sum::<u64>());
            prop_assert_eq!(whole.latency.count(), whole.successes);
        }
    }
}
