//! Per-minute rollups: what one (check, region) did in one minute, in a form that adds up.
//! Everything in a [`Rollup`] is a count or a sum, so rollups merge by addition across
//! regions, minutes, batches and aggregator replicas.

use std::collections::BTreeMap;

use crate::ids::{CheckId, Region};
use crate::result::{FailureKind, ProbeResult};
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
}

impl Rollup {
    pub fn add(&mut self, result: &ProbeResult) {
        self.total += 1;
        match result.failure {
            None => {
                self.successes += 1;
                self.latency_sum_us = self.latency_sum_us.saturating_add(result.duration_us);
                self.latency.add(result.duration_us as f64);
            }
            Some(kind) => *self.failures.entry(kind).or_insert(0) += 1,
        }
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.total += other.total;
        self.successes += other.successes;
        for (kind, n) in &other.failures {
            *self.failures.entry(*kind).or_insert(0) += n;
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.latency.merge(&other.latency);
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
}

impl RollupDelta {
    pub fn add(&mut self, region: &Region, result: &ProbeResult) {
        let key = SeriesKey { check: result.check_id.clone(), region: region.clone() };
        let minute = Minute::containing(result.started_at_ms);
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
    use crate::result::PhaseTimings;

    fn result(check: &str, at_ms: i64, failure: Option<FailureKind>, duration_us: u64) -> ProbeResult {
        ProbeResult {
            check_id: CheckId::new(check).unwrap(),
            started_at_ms: at_ms,
            failure,
            duration_us,
            status_code: if failure.is_none() { 200 } else { 0 },
            error: String::new(),
            phases: PhaseTimings::default(),
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
}
