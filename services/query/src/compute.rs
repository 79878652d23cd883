//! Reads one output series' rollups and folds them, minute by minute, into what every metric
//! needs: one merged rollup per point, one for the whole range (tables), and per-minute
//! success counts with prefix sums for the rolling 24 h uptime. Reading happens in day-sized
//! chunks so a 31-day query never holds a month of sketches at once, and each minute is read
//! exactly once (the 24 h before the range included).

use mixmon_model::{Minute, Rollup, SeriesKey};
use mixmon_store::{Store, StoreError, MAX_READ_KEYS};

use crate::metric::{Metric, UPTIME_WINDOW_MINUTES};
use crate::timeline::Timeline;

/// Minutes per store read.
const CHUNK_MINUTES: i64 = 24 * 60;

/// Prefix sums of probes and successes per minute from `base` on: `totals[i]` is the sum
/// over minutes `base .. base + i`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UptimeIndex {
    base: i64,
    totals: Vec<u64>,
    successes: Vec<u64>,
}

impl UptimeIndex {
    /// From per-minute counts starting at minute `base`.
    pub fn from_counts(base: i64, per_minute: &[(u64, u64)]) -> Self {
        let mut totals = Vec::with_capacity(per_minute.len() + 1);
        let mut successes = Vec::with_capacity(per_minute.len() + 1);
        let (mut t, mut s) = (0u64, 0u64);
        totals.push(0);
        successes.push(0);
        for (total, success) in per_minute {
            t = t.saturating_add(*total);
            s = s.saturating_add(*success);
            totals.push(t);
            successes.push(s);
        }
        Self { base, totals, successes }
    }

    fn prefix_at(&self, minute: i64) -> (u64, u64) {
        let last = self.totals.len().saturating_sub(1);
        let i = usize::try_from(minute.saturating_sub(self.base)).unwrap_or(0).min(last);
        (self.totals.get(i).copied().unwrap_or(0), self.successes.get(i).copied().unwrap_or(0))
    }

    /// Success share over the 24 h ending (exclusive) at minute `end`; `None` without probes.
    pub fn at(&self, end: i64) -> Option<f64> {
        let (t1, s1) = self.prefix_at(end);
        let (t0, s0) = self.prefix_at(end - UPTIME_WINDOW_MINUTES);
        let total = t1.saturating_sub(t0);
        (total > 0).then(|| s1.saturating_sub(s0) as f64 / total as f64)
    }
}

/// One output series, folded.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupSeries {
    pub points: Vec<Rollup>,
    pub whole_range: Rollup,
    pub uptime: UptimeIndex,
}

impl GroupSeries {
    /// `[[value|null, ts_ms], ...]` for one metric, one entry per point.
    pub fn datapoints(&self, metric: Metric, timeline: &Timeline) -> Vec<(Option<f64>, i64)> {
        let step_min = timeline.step_minutes();
        let seconds = (timeline.step_ms / 1_000) as f64;
        let empty = Rollup::default();
        timeline
            .point_starts()
            .zip(0..)
            .map(|(start_ms, i)| {
                let window = self.points.get(i).unwrap_or(&empty);
                let uptime = (metric == Metric::Uptime)
                    .then(|| self.uptime.at(timeline.first_minute() + (i as i64 + 1) * step_min))
                    .flatten();
                (metric.evaluate(window, seconds, uptime), start_ms)
            })
            .collect()
    }

    /// The metric over the whole range, for tables.
    pub fn whole_range_value(&self, metric: Metric, timeline: &Timeline) -> Option<f64> {
        let (from, to) = timeline.range_minutes();
        let uptime = (metric == Metric::Uptime).then(|| self.uptime.at(to)).flatten();
        metric.evaluate(&self.whole_range, ((to - from) * 60) as f64, uptime)
    }
}

/// Reads and folds `members` (merged into one series) over everything `timeline` needs;
/// the 24 h before it only when `with_uptime`.
pub(crate) async fn load_group(
    store: &dyn Store,
    members: &[SeriesKey],
    timeline: &Timeline,
    with_uptime: bool,
) -> Result<GroupSeries, StoreError> {
    let (range_from, range_to) = timeline.range_minutes();
    let (first, end, step) = (timeline.first_minute(), timeline.end_minute(), timeline.step_minutes().max(1));
    let lead = if with_uptime { UPTIME_WINDOW_MINUTES } else { 0 };
    let read_from = first.min(range_from) - lead;
    let read_to = end.max(range_to);
    let mut series = GroupSeries { points: vec![Rollup::default(); timeline.points], ..GroupSeries::default() };
    let span = usize::try_from(read_to - read_from).unwrap_or(0);
    let mut per_minute = vec![(0u64, 0u64); if with_uptime { span } else { 0 }];
    // Stay under the store's per-read key limit however many regions are merged.
    let chunk_minutes = CHUNK_MINUTES.min((MAX_READ_KEYS / members.len().max(1)) as i64).max(1);
    let mut chunk_from = read_from;
    while chunk_from < read_to {
        let chunk_to = (chunk_from + chunk_minutes).min(read_to);
        let read = store.read_rollups(members, Minute(chunk_from), Minute(chunk_to)).await?;
        for (minute, rollup) in read.iter().flatten() {
            let m = minute.0;
            // Trust nothing outside what was asked for, even from our own store.
            if !(chunk_from..chunk_to).contains(&m) {
                continue;
            }
            if m >= first && m < end {
                if let Some(point) = usize::try_from((m - first) / step).ok().and_then(|i| series.points.get_mut(i)) {
                    point.merge(rollup);
                }
            }
            if (range_from..range_to).contains(&m) {
                series.whole_range.merge(rollup);
            }
            if let Some(slot) = usize::try_from(m - read_from).ok().and_then(|i| per_minute.get_mut(i)) {
                slot.0 = slot.0.saturating_add(rollup.total);
                slot.1 = slot.1.saturating_add(rollup.successes);
            }
        }
        chunk_from = chunk_to;
    }
    series.uptime = UptimeIndex::from_counts(read_from, &per_minute);
    Ok(series)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uptime_prefix_sums_match_a_naive_sum() {
        let counts: Vec<(u64, u64)> = (0..3000u64).map(|i| (i % 7, (i % 7).saturating_sub(i % 3))).collect();
        let base = 1_000;
        let index = UptimeIndex::from_counts(base, &counts);
        for end in [base, base + 1, base + 700, base + 1440, base + 2999, base + 3000, base + 5000] {
            let window: Vec<&(u64, u64)> = counts
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let m = base + *i as i64;
                    m >= end - UPTIME_WINDOW_MINUTES && m < end
                })
                .map(|(_, c)| c)
                .collect();
            let total: u64 = window.iter().map(|c| c.0).sum();
            let ok: u64 = window.iter().map(|c| c.1).sum();
            let expected = (total > 0).then(|| ok as f64 / total as f64);
            assert_eq!(index.at(end), expected, "end {end}");
        }
        assert_eq!(UptimeIndex::default().at(5), None);
    }
}
