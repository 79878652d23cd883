//! Reads one output series' rollups and folds them into what every metric needs: one merged
//! rollup per point, one for the whole range (tables only), and success counts with prefix
//! sums for the rolling 24 h uptime.
//!
//! Resolution follows the step: a step of whole hours reads hourly rollups (a 15-day panel
//! reads 360 hashes per series, not 21 600); any other step reads minutes, in day-sized chunks
//! so a 31-day query never holds a month of sketches at once. A table's whole-range value is
//! exact either way: whole hours from hourly rollups, the ragged ends from minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use mixmon_model::alert::Counts;
use mixmon_model::lru::BoundedLru;
use mixmon_model::time::MINUTES_PER_HOUR;
use mixmon_model::{Hour, LatencySketch, Minute, Rollup, SeriesKey, SketchSum};
use mixmon_store::{RollupBlock, Store, StoreError, MAX_READ_KEYS};

use crate::metric::Metric;
use crate::timeline::Timeline;

/// At most this many minutes per store read, so a 31-day query never holds a month of
/// sketches at once.
const MAX_CHUNK_MINUTES: i64 = 2 * 24 * 60;

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
    #[cfg(test)]
    pub fn at(&self, end: i64) -> Option<f64> {
        Metric::Uptime.rolling_value(self.counts(end, mixmon_sli::UPTIME_WINDOW_MINUTES), Counts::default())
    }

    /// Probes and successes over the `minutes` ending (exclusive) at minute `end`.
    pub fn counts(&self, end: i64, minutes: i64) -> Counts {
        let (t1, s1) = self.prefix_at(end);
        let (t0, s0) = self.prefix_at(end - minutes);
        Counts { total: t1.saturating_sub(t0), good: s1.saturating_sub(s0) }
    }

    /// A rolling metric's value over its window ending at minute `end`.
    pub fn rolling(&self, metric: Metric, end: i64) -> Option<f64> {
        let minutes = metric.rolling_minutes()?;
        metric.rolling_value(self.counts(end, minutes), self.counts(end, 60))
    }
}

/// One output series, folded.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupSeries {
    pub points: Vec<Arc<Rollup>>,
    pub whole_range: Rollup,
    /// Prefix sums of probes and successes from the longest rolling window before the range
    /// on: the rolling metrics (uptime, burn rates, budget) at any point, and for tables.
    pub uptime: UptimeIndex,
    /// Per point, the folded hour (and index in it) it came from, when it did: its metric
    /// values are then memoised there.
    pub sources: Vec<Option<(Arc<FoldedHour>, usize)>>,
}

impl GroupSeries {
    /// `[[value|null, ts_ms], ...]` for one metric, one entry per point.
    pub fn datapoints(&self, metric: Metric, timeline: &Timeline) -> Vec<(Option<f64>, i64)> {
        let step_min = timeline.step_minutes();
        let seconds = (timeline.step_ms / 1_000) as f64;
        let empty = Rollup::default();
        // The memoised values of the hour the previous point came from.
        let mut memo: Option<(*const FoldedHour, Arc<[Option<f64>]>)> = None;
        timeline
            .point_starts()
            .zip(0..)
            .map(|(start_ms, i)| {
                if metric.rolling_minutes().is_none() {
                    if let Some(Some((hour, j))) = self.sources.get(i) {
                        let same = memo.as_ref().is_some_and(|(ptr, _)| std::ptr::eq(*ptr, Arc::as_ptr(hour)));
                        if !same {
                            memo = Some((Arc::as_ptr(hour), hour.values(metric, seconds)));
                        }
                        if let Some(value) = memo.as_ref().and_then(|(_, values)| values.get(*j)) {
                            return (*value, start_ms);
                        }
                    }
                }
                let window = self.points.get(i).map_or(&empty, |p| &**p);
                let rolling = self.uptime.rolling(metric, timeline.first_minute() + (i as i64 + 1) * step_min);
                (metric.evaluate(window, seconds, rolling), start_ms)
            })
            .collect()
    }

    /// The metric over the whole range, for tables.
    pub fn whole_range_value(&self, metric: Metric, timeline: &Timeline) -> Option<f64> {
        let (from, to) = timeline.range_minutes();
        let rolling = self.uptime.rolling(metric, to);
        metric.evaluate(&self.whole_range, ((to - from) * 60) as f64, rolling)
    }
}

/// What a group's targets need besides the points.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    /// The longest rolling window the targets read behind each point (0: none).
    pub lead_minutes: i64,
    pub whole_range: bool,
}

/// Reads and folds each group (its members merged into one series) over everything
/// `timeline` needs. All groups are read together: one store read per chunk of time.
pub(crate) async fn load_groups(
    store: &dyn Store,
    groups: &[Vec<SeriesKey>],
    timeline: &Timeline,
    needs: Needs,
    cache: &PointCache,
) -> Result<Vec<GroupSeries>, StoreError> {
    let mut members: Vec<SeriesKey> = groups.iter().flatten().cloned().collect();
    members.sort();
    members.dedup();
    // Positions in `members` of each group's members.
    let positions: Vec<Vec<usize>> =
        groups.iter().map(|g| g.iter().filter_map(|key| members.binary_search(key).ok()).collect()).collect();
    let mut series = if timeline.step_minutes() % MINUTES_PER_HOUR == 0 {
        load_points_hourly(store, &members, &positions, timeline, needs.lead_minutes).await?
    } else {
        load_points_by_minute(store, &members, groups, &positions, timeline, needs.lead_minutes, cache).await?
    };
    if needs.whole_range {
        let (from, to) = timeline.range_minutes();
        for (group, folded) in groups.iter().zip(series.iter_mut()) {
            folded.whole_range = read_window(store, group, from, to).await?;
        }
    }
    Ok(series)
}

/// Points from minute rollups; uptime from per-minute counts.
async fn load_points_by_minute(
    store: &dyn Store,
    members: &[SeriesKey],
    groups: &[Vec<SeriesKey>],
    positions: &[Vec<usize>],
    timeline: &Timeline,
    lead: i64,
    cache: &PointCache,
) -> Result<Vec<GroupSeries>, StoreError> {
    let (first, end, step) = (timeline.first_minute(), timeline.end_minute(), timeline.step_minutes().max(1));
    let with_uptime = lead > 0;
    let (read_from, read_to) = (first - lead, end);
    let span = usize::try_from(read_to - read_from).unwrap_or(0);
    let mut out: Vec<Folding> = positions
        .iter()
        .map(|_| Folding {
            points: vec![None; timeline.points],
            sources: vec![None; timeline.points],
            per_minute: vec![(0u64, 0u64); if with_uptime { span } else { 0 }],
        })
        .collect();
    let axis = Axis { first, end, step, read_from };
    // Stay under the store's per-read key limit however many series are read; chunks end on
    // hour boundaries so a store's hour blocks never straddle two chunks.
    let chunk_minutes = ((MAX_READ_KEYS / members.len().max(1)) as i64).clamp(60, MAX_CHUNK_MINUTES);
    let mut chunk_from = read_from;
    while chunk_from < read_to {
        let chunk_to = Hour::ceil(Minute(chunk_from + chunk_minutes)).first_minute().0.min(read_to);
        let read = store.read_rollup_blocks(members, Minute(chunk_from), Minute(chunk_to)).await?;
        let hour_blocks = MINUTES_PER_HOUR % step == 0 && exact_hours(&read);
        for ((group, position), folding) in groups.iter().zip(positions).zip(out.iter_mut()) {
            if hour_blocks {
                let hours = position.first().and_then(|p| read.get(*p)).map_or(0, Vec::len);
                for k in 0..hours {
                    let blocks: Vec<&RollupBlock> = position.iter().filter_map(|p| read.get(*p)?.get(k)).collect();
                    let Some(hour) = blocks.first().map(|b| Hour::floor(b.from)) else { continue };
                    let folded = cache.get_or_fold(group, hour, step, &blocks, || fold_hour(hour, step, &blocks));
                    folding.place(&axis, hour, &folded, (chunk_from, chunk_to));
                }
            } else {
                folding.fold_minutes(
                    &axis,
                    position.iter().filter_map(|p| read.get(*p)).flatten(),
                    (chunk_from, chunk_to),
                );
            }
        }
        chunk_from = chunk_to;
    }
    Ok(out
        .into_iter()
        .map(|folding| GroupSeries {
            points: folding.points.into_iter().map(|p| p.unwrap_or_default()).collect(),
            sources: folding.sources,
            uptime: UptimeIndex::from_counts(read_from, &folding.per_minute),
            ..GroupSeries::default()
        })
        .collect())
}

/// Whether every block the store answered is exactly one hour.
fn exact_hours(read: &[Vec<RollupBlock>]) -> bool {
    let count = read.first().map_or(0, Vec::len);
    read.iter().all(|blocks| {
        blocks.len() == count
            && blocks.iter().all(|b| b.to.0 - b.from.0 == MINUTES_PER_HOUR && b.from.0 % MINUTES_PER_HOUR == 0)
    })
}

/// The time axis of a minute-resolution fold.
struct Axis {
    first: i64,
    end: i64,
    step: i64,
    read_from: i64,
}

/// One group's points and per-minute counts, being folded.
struct Folding {
    points: Vec<Option<Arc<Rollup>>>,
    sources: Vec<Option<(Arc<FoldedHour>, usize)>>,
    per_minute: Vec<(u64, u64)>,
}

impl Folding {
    /// Adds a folded hour: its points (which lie wholly inside the hour, as the step divides
    /// it) and its per-minute counts, within the chunk.
    fn place(&mut self, axis: &Axis, hour: Hour, folded: &Arc<FoldedHour>, (from, to): (i64, i64)) {
        for (j, point) in folded.points.iter().enumerate() {
            let start = hour.first_minute().0 + j as i64 * axis.step;
            if start >= axis.first && start < axis.end && (from..to).contains(&start) {
                let Ok(i) = usize::try_from((start - axis.first) / axis.step) else { continue };
                if let (Some(slot), Some(source)) = (self.points.get_mut(i), self.sources.get_mut(i)) {
                    *slot = Some(point.clone());
                    *source = Some((folded.clone(), j));
                }
            }
        }
        for (offset, counts) in folded.per_minute.iter().enumerate() {
            let m = hour.first_minute().0 + offset as i64;
            if !(from..to).contains(&m) {
                continue;
            }
            if let Some(slot) = usize::try_from(m - axis.read_from).ok().and_then(|i| self.per_minute.get_mut(i)) {
                slot.0 = slot.0.saturating_add(counts.0);
                slot.1 = slot.1.saturating_add(counts.1);
            }
        }
    }

    /// Adds minutes from blocks of any shape (a store without hour blocks).
    fn fold_minutes<'a>(&mut self, axis: &Axis, blocks: impl Iterator<Item = &'a RollupBlock>, (from, to): (i64, i64)) {
        // (point, rollup) pairs, sorted by point: each point's sketch is then summed in one go,
        // with one allocation, however many minutes and regions it merges.
        let mut in_points: Vec<(usize, &Rollup)> = Vec::new();
        for (minute, rollup) in blocks.flat_map(|block| block.minutes.iter()) {
            let m = minute.0;
            // Blocks may hold minutes outside the chunk; trust nothing else either.
            if !(from..to).contains(&m) {
                continue;
            }
            if m >= axis.first && m < axis.end {
                if let Ok(i) = usize::try_from((m - axis.first) / axis.step) {
                    in_points.push((i, rollup));
                }
            }
            if let Some(slot) = usize::try_from(m - axis.read_from).ok().and_then(|i| self.per_minute.get_mut(i)) {
                slot.0 = slot.0.saturating_add(rollup.total);
                slot.1 = slot.1.saturating_add(rollup.successes);
            }
        }
        in_points.sort_by_key(|(i, _)| *i);
        for run in in_points.chunk_by(|a, b| a.0 == b.0) {
            let Some(slot) = self.points.get_mut(run[0].0) else { continue };
            if let Some(source) = self.sources.get_mut(run[0].0) {
                *source = None;
            }
            // A point spanning two chunks already holds the first chunk's part.
            let earlier = slot.take();
            let mut point = Rollup::default();
            let mut sketches: Vec<&LatencySketch> = Vec::with_capacity(run.len() + 1);
            if let Some(earlier) = &earlier {
                point.merge_counts(earlier);
                sketches.push(&earlier.latency);
            }
            sketches.extend(run.iter().map(|(_, r)| &r.latency));
            for (_, rollup) in run {
                point.merge_counts(rollup);
            }
            point.latency = LatencySketch::sum_of(&sketches);
            *slot = Some(Arc::new(point));
        }
    }
}

/// One hour of a group, folded at one step: its points (`60 / step` of them) and per-minute
/// (total, successes) counts.
#[derive(Debug)]
pub(crate) struct FoldedHour {
    pub points: Vec<Arc<Rollup>>,
    pub per_minute: Vec<(u64, u64)>,
    /// Each metric's value at each point, computed once per folded hour: a dashboard refresh
    /// then evaluates (quantiles from sketches, mostly) only the hours that changed.
    values: Mutex<HashMap<Metric, Arc<[Option<f64>]>>>,
}

impl FoldedHour {
    /// `metric` at every point of the hour (`seconds` per point, fixed by the step).
    fn values(&self, metric: Metric, seconds: f64) -> Arc<[Option<f64>]> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values
            .entry(metric)
            .or_insert_with(|| self.points.iter().map(|p| metric.evaluate(p, seconds, None)).collect())
            .clone()
    }
}

fn fold_hour(hour: Hour, step: i64, blocks: &[&RollupBlock]) -> FoldedHour {
    let start = hour.first_minute().0;
    let count = (MINUTES_PER_HOUR / step) as usize;
    let mut per_minute = vec![(0u64, 0u64); MINUTES_PER_HOUR as usize];
    let mut in_points: Vec<(usize, &Rollup)> = Vec::new();
    for (minute, rollup) in blocks.iter().flat_map(|b| b.minutes.iter()) {
        let Some(offset) = usize::try_from(minute.0 - start).ok().filter(|o| *o < MINUTES_PER_HOUR as usize) else {
            continue;
        };
        per_minute[offset].0 = per_minute[offset].0.saturating_add(rollup.total);
        per_minute[offset].1 = per_minute[offset].1.saturating_add(rollup.successes);
        in_points.push((offset / step as usize, rollup));
    }
    in_points.sort_by_key(|(i, _)| *i);
    let mut points: Vec<Arc<Rollup>> = Vec::with_capacity(count);
    let mut runs = in_points.chunk_by(|a, b| a.0 == b.0).peekable();
    for j in 0..count {
        let run = runs.next_if(|run| run[0].0 == j);
        let mut point = Rollup::default();
        if let Some(run) = run {
            let sketches: Vec<&LatencySketch> = run.iter().map(|(_, r)| &r.latency).collect();
            for (_, rollup) in run {
                point.merge_counts(rollup);
            }
            point.latency = LatencySketch::sum_of(&sketches);
        }
        points.push(Arc::new(point));
    }
    FoldedHour { points, per_minute, values: Mutex::default() }
}

/// Folded hours of groups, reused while the store hands out the same hour blocks: a
/// dashboard refresh then folds only the hours that changed (usually the current one).
/// Bounded in entries and in bytes.
pub(crate) struct PointCache {
    inner: Mutex<BoundedLru<PointKey, CachedFold>>,
}

type PointKey = (Vec<SeriesKey>, Hour, i64);

struct CachedFold {
    /// The blocks folded. Weak references keep each block's allocation (the identity
    /// compared) from being reused while the entry lives, without keeping the minutes alive.
    blocks: Vec<Weak<Vec<(Minute, Rollup)>>>,
    folded: Arc<FoldedHour>,
}

/// Metric values a folded hour ends up holding, for its size estimate: a dashboard asks a
/// handful of metrics of each group.
const VALUES_PER_POINT_ESTIMATE: usize = 8;

impl FoldedHour {
    /// About the bytes it holds, the metric values it will compute included.
    fn approx_bytes(&self) -> usize {
        let points: usize = self.points.iter().map(|p| 2 * std::mem::size_of::<usize>() + p.approx_bytes()).sum();
        let values = self.points.len() * VALUES_PER_POINT_ESTIMATE * std::mem::size_of::<Option<f64>>();
        points + values + self.per_minute.len() * std::mem::size_of::<(u64, u64)>()
    }
}

impl PointCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { inner: Mutex::new(BoundedLru::new(max_entries, max_bytes)) }
    }

    fn get_or_fold(
        &self,
        group: &[SeriesKey],
        hour: Hour,
        step: i64,
        blocks: &[&RollupBlock],
        fold: impl FnOnce() -> FoldedHour,
    ) -> Arc<FoldedHour> {
        let key: PointKey = (group.to_vec(), hour, step);
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = inner.get(&key) {
                let same = entry.blocks.len() == blocks.len()
                    && entry.blocks.iter().zip(blocks).all(|(a, b)| std::ptr::eq(a.as_ptr(), Arc::as_ptr(&b.minutes)));
                if same {
                    return entry.folded.clone();
                }
            }
        }
        let folded = Arc::new(fold());
        let bytes = folded.approx_bytes();
        let blocks = blocks.iter().map(|b| Arc::downgrade(&b.minutes)).collect();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.insert(key, CachedFold { blocks, folded: folded.clone() }, bytes);
        folded
    }
}

/// Points of whole hours from hourly rollups. Uptime windows then end on hour boundaries, so
/// each hour's counts can stand at its first minute in the per-minute index.
async fn load_points_hourly(
    store: &dyn Store,
    members: &[SeriesKey],
    positions: &[Vec<usize>],
    timeline: &Timeline,
    lead: i64,
) -> Result<Vec<GroupSeries>, StoreError> {
    let (first, end) = (timeline.first_minute(), timeline.end_minute());
    let step_hours = (timeline.step_minutes() / MINUTES_PER_HOUR).max(1);
    let with_uptime = lead > 0;
    let (read_from, read_to) = (Hour::floor(Minute(first - lead)), Hour::ceil(Minute(end)));
    let base = read_from.first_minute().0;
    let first_hour = Hour::floor(Minute(first)).0;
    let read = store.read_hourly(members, read_from, read_to).await?;
    let span = usize::try_from(read_to.first_minute().0 - base).unwrap_or(0);
    let mut out = Vec::with_capacity(positions.len());
    for group in positions {
        let mut points = vec![Rollup::default(); timeline.points];
        let mut per_minute = vec![(0u64, 0u64); if with_uptime { span } else { 0 }];
        let mut sums: Vec<SketchSum> = vec![SketchSum::new(); timeline.points];
        for (hour, rollup) in group.iter().filter_map(|p| read.get(*p)).flatten() {
            if !(read_from..read_to).contains(hour) {
                continue;
            }
            let m = hour.first_minute().0;
            if m >= first && m < end {
                if let Ok(i) = usize::try_from((hour.0 - first_hour) / step_hours) {
                    if let (Some(point), Some(sum)) = (points.get_mut(i), sums.get_mut(i)) {
                        point.merge_counts(rollup);
                        sum.add(&rollup.latency);
                    }
                }
            }
            if let Some(slot) = usize::try_from(m - base).ok().and_then(|i| per_minute.get_mut(i)) {
                slot.0 = slot.0.saturating_add(rollup.total);
                slot.1 = slot.1.saturating_add(rollup.successes);
            }
        }
        for (point, sum) in points.iter_mut().zip(sums) {
            point.latency = sum.finish();
        }
        out.push(GroupSeries {
            points: points.into_iter().map(Arc::new).collect(),
            uptime: UptimeIndex::from_counts(base, &per_minute),
            ..GroupSeries::default()
        });
    }
    Ok(out)
}

/// The exact rollup of minutes `from..to`: whole hours from hourly rollups, the ragged ends
/// from minute rollups.
pub(crate) async fn read_window(
    store: &dyn Store,
    members: &[SeriesKey],
    from: i64,
    to: i64,
) -> Result<Rollup, StoreError> {
    let mut window = Rollup::default();
    if from >= to {
        return Ok(window);
    }
    let mut sum = SketchSum::new();
    let (hours_from, hours_to) = (Hour::ceil(Minute(from)), Hour::floor(Minute(to)));
    let mut edges = Vec::new();
    if hours_from < hours_to {
        for (hour, rollup) in store.read_hourly(members, hours_from, hours_to).await?.iter().flatten() {
            if (hours_from..hours_to).contains(hour) {
                window.merge_counts(rollup);
                sum.add(&rollup.latency);
            }
        }
        edges.push((from, hours_from.first_minute().0));
        edges.push((hours_to.first_minute().0, to));
    } else {
        edges.push((from, to));
    }
    for (edge_from, edge_to) in edges.into_iter().filter(|(a, b)| a < b) {
        for (minute, rollup) in store.read_rollups(members, Minute(edge_from), Minute(edge_to)).await?.iter().flatten()
        {
            if (edge_from..edge_to).contains(&minute.0) {
                window.merge_counts(rollup);
                sum.add(&rollup.latency);
            }
        }
    }
    window.latency = sum.finish();
    Ok(window)
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
                    m >= end - mixmon_sli::UPTIME_WINDOW_MINUTES && m < end
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
