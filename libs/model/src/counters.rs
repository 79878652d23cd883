//! Per-interval deltas between two scrapes of the same pod, safe against counter resets.
//!
//! A mixer pod's counters (`ai_mixer_requests_total`, the processing-duration histogram, genre
//! counts) only go up until the process restarts, when they go back to zero. A naive
//! `current - previous` then gives a large negative delta (a dip below zero in the request rate)
//! and, if clamped carelessly, a spike on the next interval. The rules here:
//!
//! - A counter is **reset** when its value goes down, when its `_created` timestamp changes, or
//!   when the pod's `process_start_time_seconds` changes. The delta of a reset interval is the
//!   new value: what was counted since the restart. It is never negative, and never more than
//!   what the new process counted.
//! - A pod's **first** scrape is a baseline: no delta at all, since its counters hold the pod's
//!   whole history, not one interval's.
//! - A series that **appears** in a pod already scraped (a first `503`) started at zero since
//!   the last scrape: its delta is its value. A series that **disappears** gives no delta; its
//!   last value is kept for a while ([`SeriesTracker::new`]) so that if it comes back the delta
//!   is taken against it rather than counting its whole history again.
//! - A **histogram** is reset when any bucket, the count or the sum decreases, its buckets'
//!   bounds change, or the interval's bucket deltas are not cumulative; otherwise it is
//!   subtracted bucket by bucket.
//! - **NaN, infinities and negative counts** never enter a delta: such an observation is counted
//!   as invalid, gives no delta, and does not replace the last good value. A gauge is its last
//!   finite value.
//!
//! Pure: no I/O, no clock. Series keys are the caller's (any `Ord` type).

use std::collections::BTreeMap;

/// How far apart two `process_start_time_seconds` must be to mean a restart: the value is a
/// float that may be re-rendered, so exact equality would be too strict.
const START_TIME_TOLERANCE_S: f64 = 0.5;

/// One counter series at one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterObs {
    pub value: f64,
    /// OpenMetrics `_created` (seconds since the epoch), when exposed.
    pub created: Option<f64>,
}

impl CounterObs {
    /// A counter with no `_created`.
    pub fn new(value: f64) -> Self {
        CounterObs { value, created: None }
    }
}

/// Whether the process behind a scrape is the one behind the previous scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// No previous scrape of this pod.
    FirstScrape,
    /// Same process (or no way to tell otherwise).
    Same,
    /// `process_start_time_seconds` changed.
    Restarted,
}

impl Continuity {
    /// From the previous and current `process_start_time_seconds`. Only two finite values
    /// that differ mean a restart; a missing one says nothing.
    pub fn from_start_times(previous_scrape: bool, prev: Option<f64>, cur: Option<f64>) -> Continuity {
        if !previous_scrape {
            return Continuity::FirstScrape;
        }
        match (prev, cur) {
            (Some(p), Some(c)) if p.is_finite() && c.is_finite() && (p - c).abs() > START_TIME_TOLERANCE_S => {
                Continuity::Restarted
            }
            _ => Continuity::Same,
        }
    }
}

/// What one counter did over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterDelta {
    /// First scrape of the pod: the value is the starting point, not an interval's worth.
    Baseline,
    /// The counter went from the previous value up by this much (possibly 0).
    Increase(f64),
    /// The series is new in a pod already scraped: it started at 0 since the last scrape.
    Appeared(f64),
    /// The counter was reset; this much was counted since.
    Reset(f64),
    /// NaN, infinite or negative: no delta, and the previous value stays the reference.
    Invalid,
}

impl CounterDelta {
    /// The delta to add for the interval: finite and never negative.
    pub fn amount(self) -> f64 {
        match self {
            CounterDelta::Increase(d) | CounterDelta::Appeared(d) | CounterDelta::Reset(d) => d,
            CounterDelta::Baseline | CounterDelta::Invalid => 0.0,
        }
    }
}

fn valid_count(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// The delta of one counter series between its previous observation (if any) and now.
pub fn counter_delta(prev: Option<&CounterObs>, cur: &CounterObs, continuity: Continuity) -> CounterDelta {
    if !valid_count(cur.value) {
        return CounterDelta::Invalid;
    }
    match (continuity, prev) {
        (Continuity::FirstScrape, _) => CounterDelta::Baseline,
        (Continuity::Restarted, _) => CounterDelta::Reset(cur.value),
        (Continuity::Same, None) => CounterDelta::Appeared(cur.value),
        (Continuity::Same, Some(prev)) if !valid_count(prev.value) => CounterDelta::Appeared(cur.value),
        (Continuity::Same, Some(prev)) => {
            let recreated = matches!((prev.created, cur.created), (Some(a), Some(b)) if a != b);
            if recreated || cur.value < prev.value {
                CounterDelta::Reset(cur.value)
            } else {
                CounterDelta::Increase(cur.value - prev.value)
            }
        }
    }
}

/// One histogram series at one scrape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramObs {
    /// `(le, cumulative count)`, sorted by `le`.
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
    pub created: Option<f64>,
}

impl HistogramObs {
    /// Finite non-negative counts, a finite sum, bounds strictly increasing (no NaN), counts
    /// cumulative.
    fn is_valid(&self) -> bool {
        valid_count(self.count)
            && self.sum.is_finite()
            && self.buckets.iter().all(|(le, c)| !le.is_nan() && valid_count(*c))
            && self.buckets.windows(2).all(|w| matches!(w, [(l1, c1), (l2, c2)] if l1 < l2 && c1 <= c2))
    }
}

/// A histogram's increase over one interval, in the same shape as an observation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramDelta {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
    /// The histogram was reset; the delta is everything observed since.
    pub reset: bool,
}

/// What one histogram did over one interval.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramOutcome {
    Baseline,
    Delta(HistogramDelta),
    Invalid,
}

/// The delta of one histogram series between its previous observation (if any) and now.
pub fn histogram_delta(prev: Option<&HistogramObs>, cur: &HistogramObs, continuity: Continuity) -> HistogramOutcome {
    if !cur.is_valid() {
        return HistogramOutcome::Invalid;
    }
    let whole = |reset| {
        HistogramOutcome::Delta(HistogramDelta { buckets: cur.buckets.clone(), count: cur.count, sum: cur.sum, reset })
    };
    let prev = match (continuity, prev) {
        (Continuity::FirstScrape, _) => return HistogramOutcome::Baseline,
        (Continuity::Restarted, _) => return whole(true),
        (Continuity::Same, None) => return whole(false),
        (Continuity::Same, Some(prev)) if !prev.is_valid() => return whole(false),
        (Continuity::Same, Some(prev)) => prev,
    };
    let same_layout =
        prev.buckets.len() == cur.buckets.len() && prev.buckets.iter().zip(&cur.buckets).all(|(p, c)| p.0 == c.0);
    let recreated = matches!((prev.created, cur.created), (Some(a), Some(b)) if a != b);
    let went_down =
        cur.count < prev.count || cur.sum < prev.sum || prev.buckets.iter().zip(&cur.buckets).any(|(p, c)| c.1 < p.1);
    if !same_layout || recreated || went_down {
        return whole(true);
    }
    let buckets: Vec<(f64, f64)> = prev.buckets.iter().zip(&cur.buckets).map(|(p, c)| (c.0, c.1 - p.1)).collect();
    // Real counters cannot produce non-cumulative deltas (a bucket's increase includes every
    // narrower bucket's); if they do, the two scrapes are not of one continuous process.
    if buckets.windows(2).any(|w| matches!(w, [(_, a), (_, b)] if a > b)) {
        return whole(true);
    }
    HistogramOutcome::Delta(HistogramDelta {
        buckets,
        count: cur.count - prev.count,
        sum: cur.sum - prev.sum,
        reset: false,
    })
}

/// A gauge's value for the interval: its last value if finite. `NaN` never propagates; an
/// infinity (a peak of `-Inf` dBFS for silence) is not averageable either, so it is dropped too.
pub fn gauge_value(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Everything one scrape of one pod gave, keyed by the caller's series keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<K> {
    /// `process_start_time_seconds`, when exposed.
    pub start_time_s: Option<f64>,
    pub counters: Vec<(K, CounterObs)>,
    pub histograms: Vec<(K, HistogramObs)>,
    pub gauges: Vec<(K, f64)>,
}

impl<K> Default for Observation<K> {
    fn default() -> Self {
        Observation { start_time_s: None, counters: Vec::new(), histograms: Vec::new(), gauges: Vec::new() }
    }
}

/// One pod's interval: deltas of counters and histograms, last values of gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalDeltas<K> {
    pub continuity: Continuity,
    /// Every counter series with a delta (zero included); none on a first scrape.
    pub counters: Vec<(K, f64)>,
    pub histograms: Vec<(K, HistogramDelta)>,
    /// Finite gauges only.
    pub gauges: Vec<(K, f64)>,
    /// Counter and histogram series found reset this interval.
    pub resets: usize,
    /// Observations refused (NaN, infinite, negative, not cumulative), gauges included.
    pub invalid: usize,
    /// Series seen before and missing from this scrape.
    pub vanished: Vec<K>,
}

#[derive(Debug, Clone)]
struct Retained<T> {
    obs: T,
    /// Scrapes in a row that lacked the series.
    missed: u32,
}

/// The last good observation of every series of one pod, turned into [`IntervalDeltas`] scrape
/// after scrape.
#[derive(Debug, Clone)]
pub struct SeriesTracker<K: Ord + Clone> {
    scraped: bool,
    start_time_s: Option<f64>,
    counters: BTreeMap<K, Retained<CounterObs>>,
    histograms: BTreeMap<K, Retained<HistogramObs>>,
    retain_missing: u32,
}

impl<K: Ord + Clone> SeriesTracker<K> {
    /// A tracker that remembers a vanished series for `retain_missing` scrapes (so a series
    /// that flaps is not counted from zero again when it returns).
    pub fn new(retain_missing: u32) -> Self {
        SeriesTracker {
            scraped: false,
            start_time_s: None,
            counters: BTreeMap::new(),
            histograms: BTreeMap::new(),
            retain_missing,
        }
    }

    /// Folds in one scrape; returns the interval since the previous one.
    pub fn observe(&mut self, obs: Observation<K>) -> IntervalDeltas<K> {
        let continuity = Continuity::from_start_times(self.scraped, self.start_time_s, obs.start_time_s);
        self.scraped = true;
        if obs.start_time_s.is_some_and(f64::is_finite) {
            self.start_time_s = obs.start_time_s;
        }
        if continuity == Continuity::Restarted {
            // Nothing from the old process is a reference for the new one.
            self.counters.clear();
            self.histograms.clear();
        }
        let mut out = IntervalDeltas {
            continuity,
            counters: Vec::new(),
            histograms: Vec::new(),
            gauges: Vec::new(),
            resets: 0,
            invalid: 0,
            vanished: Vec::new(),
        };

        let mut seen_counters = BTreeMap::new();
        for (key, cur) in obs.counters {
            let prev = self.counters.get(&key).map(|r| &r.obs);
            let delta = counter_delta(prev, &cur, continuity);
            match delta {
                CounterDelta::Invalid => out.invalid += 1,
                CounterDelta::Baseline => {}
                CounterDelta::Reset(d) => {
                    out.resets += 1;
                    out.counters.push((key.clone(), d));
                }
                CounterDelta::Increase(d) | CounterDelta::Appeared(d) => out.counters.push((key.clone(), d)),
            }
            if delta != CounterDelta::Invalid {
                self.counters.insert(key.clone(), Retained { obs: cur, missed: 0 });
            }
            seen_counters.insert(key, ());
        }
        out.vanished.extend(age_missing(&mut self.counters, &seen_counters, self.retain_missing));

        let mut seen_histograms = BTreeMap::new();
        for (key, cur) in obs.histograms {
            let prev = self.histograms.get(&key).map(|r| &r.obs);
            match histogram_delta(prev, &cur, continuity) {
                HistogramOutcome::Invalid => out.invalid += 1,
                HistogramOutcome::Baseline => {
                    self.histograms.insert(key.clone(), Retained { obs: cur, missed: 0 });
                }
                HistogramOutcome::Delta(delta) => {
                    out.resets += usize::from(delta.reset);
                    out.histograms.push((key.clone(), delta));
                    self.histograms.insert(key.clone(), Retained { obs: cur, missed: 0 });
                }
            }
            seen_histograms.insert(key, ());
        }
        out.vanished.extend(age_missing(&mut self.histograms, &seen_histograms, self.retain_missing));

        for (key, value) in obs.gauges {
            match gauge_value(value) {
                Some(v) => out.gauges.push((key, v)),
                None => out.invalid += 1,
            }
        }
        out
    }
}

/// Counts a missed scrape for every retained series not in `seen`, forgets those missed for
/// longer than `retain`, and returns the keys missing this time.
fn age_missing<K: Ord + Clone, T>(
    retained: &mut BTreeMap<K, Retained<T>>,
    seen: &BTreeMap<K, ()>,
    retain: u32,
) -> Vec<K> {
    let mut missing = Vec::new();
    retained.retain(|key, r| {
        if seen.contains_key(key) {
            return true;
        }
        missing.push(key.clone());
        r.missed = r.missed.saturating_add(1);
        r.missed <= retain
    });
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME: Continuity = Continuity::Same;

    #[test]
    fn counter_delta_table() {
        use CounterDelta::*;
        let c = CounterObs::new;
        let created = |value, created| CounterObs { value, created: Some(created) };
        let cases: Vec<(&str, Option<CounterObs>, CounterObs, Continuity, CounterDelta)> = vec![
            ("normal increase", Some(c(100.0)), c(150.0), SAME, Increase(50.0)),
            ("no change", Some(c(100.0)), c(100.0), SAME, Increase(0.0)),
            ("reset to zero", Some(c(100.0)), c(0.0), SAME, Reset(0.0)),
            ("reset to a small value", Some(c(100.0)), c(7.0), SAME, Reset(7.0)),
            ("pod restart 1.8M to 12", Some(c(1_843_211.0)), c(12.0), SAME, Reset(12.0)),
            ("restart seen by start time", Some(c(10.0)), c(50.0), Continuity::Restarted, Reset(50.0)),
            ("_created changed", Some(created(10.0, 1.0)), created(50.0, 2.0), SAME, Reset(50.0)),
            ("_created same", Some(created(10.0, 1.0)), created(50.0, 1.0), SAME, Increase(40.0)),
            ("_created appears", Some(c(10.0)), created(50.0, 1.0), SAME, Increase(40.0)),
            ("first scrape", None, c(1_843_211.0), Continuity::FirstScrape, Baseline),
            ("series appears", None, c(3.0), SAME, Appeared(3.0)),
            ("NaN now", Some(c(10.0)), c(f64::NAN), SAME, Invalid),
            ("+Inf now", Some(c(10.0)), c(f64::INFINITY), SAME, Invalid),
            ("negative now", Some(c(10.0)), c(-1.0), SAME, Invalid),
            ("NaN before", Some(c(f64::NAN)), c(5.0), SAME, Appeared(5.0)),
            ("Inf before", Some(c(f64::INFINITY)), c(5.0), SAME, Appeared(5.0)),
        ];
        for (what, prev, cur, continuity, want) in cases {
            let got = counter_delta(prev.as_ref(), &cur, continuity);
            assert_eq!(got, want, "{what}");
            assert!(got.amount().is_finite() && got.amount() >= 0.0, "{what}");
        }
    }

    #[test]
    fn continuity_table() {
        use Continuity::*;
        let cases = [
            (false, None, Some(1.0), FirstScrape),
            (true, Some(1.7639e9), Some(1.7639e9), Same),
            (true, Some(1.7639e9), Some(1.7639e9 + 0.1), Same),
            (true, Some(1.7639e9), Some(1.7639e9 + 60.0), Restarted),
            (true, Some(1.7639e9), None, Same),
            (true, None, Some(1.7639e9), Same),
            (true, Some(f64::NAN), Some(1.0), Same),
        ];
        for (scraped, prev, cur, want) in cases {
            assert_eq!(Continuity::from_start_times(scraped, prev, cur), want, "{prev:?} → {cur:?}");
        }
    }

    fn hist(buckets: &[(f64, f64)], sum: f64) -> HistogramObs {
        let count = buckets.last().map_or(0.0, |b| b.1);
        HistogramObs { buckets: buckets.to_vec(), count, sum, created: None }
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn histogram_delta_table() {
        let base = hist(&[(0.1, 10.0), (1.0, 15.0), (INF, 16.0)], 5.0);
        let delta = |buckets: &[(f64, f64)], count, sum, reset| {
            HistogramOutcome::Delta(HistogramDelta { buckets: buckets.to_vec(), count, sum, reset })
        };
        let cases: Vec<(&str, Option<HistogramObs>, HistogramObs, Continuity, HistogramOutcome)> = vec![
            (
                "normal increase",
                Some(base.clone()),
                hist(&[(0.1, 12.0), (1.0, 18.0), (INF, 20.0)], 6.5),
                SAME,
                delta(&[(0.1, 2.0), (1.0, 3.0), (INF, 4.0)], 4.0, 1.5, false),
            ),
            (
                "reset to zero",
                Some(base.clone()),
                hist(&[(0.1, 0.0), (1.0, 0.0), (INF, 0.0)], 0.0),
                SAME,
                delta(&[(0.1, 0.0), (1.0, 0.0), (INF, 0.0)], 0.0, 0.0, true),
            ),
            (
                "one bucket went down",
                Some(base.clone()),
                hist(&[(0.1, 9.0), (1.0, 20.0), (INF, 30.0)], 9.0),
                SAME,
                delta(&[(0.1, 9.0), (1.0, 20.0), (INF, 30.0)], 30.0, 9.0, true),
            ),
            (
                "bounds changed",
                Some(base.clone()),
                hist(&[(0.5, 11.0), (INF, 17.0)], 6.0),
                SAME,
                delta(&[(0.5, 11.0), (INF, 17.0)], 17.0, 6.0, true),
            ),
            (
                "deltas not cumulative",
                Some(base.clone()),
                hist(&[(0.1, 14.0), (1.0, 15.0), (INF, 16.0)], 6.0),
                SAME,
                delta(&[(0.1, 14.0), (1.0, 15.0), (INF, 16.0)], 16.0, 6.0, true),
            ),
            ("first scrape", None, base.clone(), Continuity::FirstScrape, HistogramOutcome::Baseline),
            (
                "NaN bucket",
                Some(base.clone()),
                hist(&[(0.1, f64::NAN), (INF, 16.0)], 5.0),
                SAME,
                HistogramOutcome::Invalid,
            ),
            ("NaN sum", Some(base.clone()), hist(&[(INF, 16.0)], f64::NAN), SAME, HistogramOutcome::Invalid),
            ("not cumulative", None, hist(&[(0.1, 5.0), (INF, 4.0)], 1.0), SAME, HistogramOutcome::Invalid),
            (
                "restart",
                Some(base.clone()),
                hist(&[(0.1, 12.0), (1.0, 18.0), (INF, 20.0)], 6.5),
                Continuity::Restarted,
                delta(&[(0.1, 12.0), (1.0, 18.0), (INF, 20.0)], 20.0, 6.5, true),
            ),
        ];
        for (what, prev, cur, continuity, want) in cases {
            assert_eq!(histogram_delta(prev.as_ref(), &cur, continuity), want, "{what}");
        }
    }

    #[test]
    fn gauges_never_carry_nan() {
        let cases = [(143.0, Some(143.0)), (-4.7, Some(-4.7)), (f64::NAN, None), (f64::NEG_INFINITY, None)];
        for (v, want) in cases {
            assert_eq!(gauge_value(v), want, "{v}");
        }
    }

    fn scrape(start: f64, requests: f64, extra: Option<f64>) -> Observation<&'static str> {
        let mut counters = vec![("requests", CounterObs::new(requests))];
        if let Some(v) = extra {
            counters.push(("503", CounterObs::new(v)));
        }
        Observation {
            start_time_s: Some(start),
            counters,
            histograms: vec![("latency", hist(&[(0.1, requests), (INF, requests)], requests / 10.0))],
            gauges: vec![("streams", 143.0), ("peak_db", f64::NEG_INFINITY)],
        }
    }

    #[test]
    fn pod_restart_gives_no_dip_and_no_spike() {
        let mut t = SeriesTracker::new(5);
        let first = t.observe(scrape(1000.0, 1_800_000.0, None));
        assert_eq!(first.continuity, Continuity::FirstScrape);
        assert!(first.counters.is_empty() && first.histograms.is_empty(), "a first scrape is a baseline");
        assert_eq!(first.gauges, [("streams", 143.0)]);
        assert_eq!(first.invalid, 1, "-Inf peak is dropped");

        let normal = t.observe(scrape(1000.0, 1_800_600.0, None));
        assert_eq!(normal.counters, [("requests", 600.0)]);
        assert_eq!(normal.histograms[0].1.count, 600.0);

        // The pod restarts: start time moves, counters drop from 1.8M to 12.
        let restarted = t.observe(scrape(1060.0, 12.0, None));
        assert_eq!(restarted.continuity, Continuity::Restarted);
        assert_eq!(restarted.counters, [("requests", 12.0)]);
        assert_eq!(restarted.histograms[0].1.count, 12.0);
        assert!(restarted.histograms[0].1.reset);
        assert_eq!(restarted.resets, 2);

        let after = t.observe(scrape(1060.0, 612.0, None));
        assert_eq!(after.counters, [("requests", 600.0)]);
        assert_eq!(after.resets, 0);
    }

    #[test]
    fn restart_without_start_time_is_caught_by_the_drop() {
        let mut t = SeriesTracker::new(5);
        let obs = |v| Observation { counters: vec![("requests", CounterObs::new(v))], ..Observation::default() };
        t.observe(obs(1_843_211.0));
        let restarted = t.observe(obs(12.0));
        assert_eq!(restarted.continuity, Continuity::Same);
        assert_eq!(restarted.counters, [("requests", 12.0)]);
        assert_eq!(restarted.resets, 1);
    }

    #[test]
    fn series_appearing_and_disappearing() {
        let mut t = SeriesTracker::new(2);
        t.observe(scrape(1000.0, 100.0, None));
        // A first 503 after the pod was already scraped: counted from zero.
        let appeared = t.observe(scrape(1000.0, 110.0, Some(2.0)));
        assert_eq!(appeared.counters, [("requests", 10.0), ("503", 2.0)]);
        // It vanishes for a scrape: no delta, reported vanished.
        let gone = t.observe(scrape(1000.0, 120.0, None));
        assert_eq!(gone.counters, [("requests", 10.0)]);
        assert_eq!(gone.vanished, ["503"]);
        // It comes back with its old total plus one: delta 1, not 3.
        let back = t.observe(scrape(1000.0, 130.0, Some(3.0)));
        assert_eq!(back.counters, [("requests", 10.0), ("503", 1.0)]);
        // Gone for longer than the retention: forgotten.
        for _ in 0..3 {
            t.observe(scrape(1000.0, 130.0, None));
        }
        assert!(!t.counters.contains_key("503"));
    }

    /// One step of a simulated pod: `(restart, counted)`: the process restarts (counter back to
    /// zero) or not, then counts `counted` more.
    fn steps() -> impl proptest::strategy::Strategy<Value = Vec<(bool, u32)>> {
        proptest::collection::vec((proptest::bool::weighted(0.2), 0u32..5000), 1..40)
    }

    proptest::proptest! {
        /// With the start time exposed, the deltas add up to exactly what was counted after
        /// the first scrape, restarts included; each delta is finite, non-negative, and never
        /// more than what was counted in its own interval.
        #[test]
        fn deltas_sum_to_what_was_counted(steps in steps(), expose_start in proptest::bool::ANY) {
            let mut t = SeriesTracker::new(5);
            let (mut value, mut start) = (1_800_000.0, 1000.0);
            t.observe(Observation {
                start_time_s: Some(start),
                counters: vec![("c", CounterObs::new(value))],
                ..Observation::default()
            });
            let (mut counted_total, mut delta_total) = (0.0, 0.0);
            for (restart, counted) in steps {
                if restart {
                    value = 0.0;
                    start += 60.0;
                }
                value += f64::from(counted);
                counted_total += f64::from(counted);
                let out = t.observe(Observation {
                    start_time_s: expose_start.then_some(start),
                    counters: vec![("c", CounterObs::new(value))],
                    ..Observation::default()
                });
                let delta = out.counters.first().map_or(0.0, |c| c.1);
                proptest::prop_assert!(delta.is_finite() && delta >= 0.0);
                proptest::prop_assert!(delta <= f64::from(counted), "delta {} > counted {}", delta, counted);
                delta_total += delta;
            }
            if expose_start {
                proptest::prop_assert_eq!(delta_total, counted_total);
            } else {
                proptest::prop_assert!(delta_total <= counted_total);
            }
        }
    }

    #[test]
    fn invalid_values_keep_the_last_good_reference() {
        let mut t = SeriesTracker::new(5);
        let obs = |v| Observation { counters: vec![("c", CounterObs::new(v))], ..Observation::default() };
        t.observe(obs(100.0));
        let nan = t.observe(obs(f64::NAN));
        assert!(nan.counters.is_empty());
        assert_eq!(nan.invalid, 1);
        let next = t.observe(obs(130.0));
        assert_eq!(next.counters, [("c", 30.0)]);
    }
}
