//! Per-minute rollups: what one (check, region) did in one minute, in a form that adds up.
//! Everything in a [`Rollup`] is a count or a sum, so rollups merge by addition across
//! regions, minutes, batches and aggregator replicas.

use std::collections::BTreeMap;

use crate::figures::{self, Fields, Subject};
use crate::ids::{CheckId, IdError, Region};
use crate::record::RawRecord;
use crate::result::{FailureKind, PhaseTimings, ProbeResult};
use crate::sample::{MixerSample, NodeSample, PodSample, Record};
use crate::sketch::LatencySketch;
use crate::time::Minute;

/// One time series of rollups: a check as seen from one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub check: CheckId,
    pub region: Region,
}

impl SeriesKey {
    /// The all-regions series of a check ([`Region::all`]): the sum of its regions, stored at
    /// ingest, so a global figure is one read instead of a merge of every region.
    pub fn all_regions(check: CheckId) -> SeriesKey {
        SeriesKey { check, region: Region::all() }
    }

    pub fn is_all_regions(&self) -> bool {
        self.region.is_all()
    }
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
    /// About how many bytes it occupies, itself and what it holds on the heap (a B-tree node
    /// per few failure kinds), for caches bounded in bytes.
    pub fn approx_bytes(&self) -> usize {
        const FAILURE_ENTRY_BYTES: usize = 64;
        std::mem::size_of::<Rollup>() + self.latency.heap_bytes() + self.failures.len() * FAILURE_ENTRY_BYTES
    }

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
    /// Per (check, region) and, through [`RollupDelta::add`], per (check, [`Region::all`]).
    pub rollups: BTreeMap<(SeriesKey, Minute), Rollup>,
    /// The results themselves, compactly, in arrival order: the raw health records (real
    /// regions only).
    pub records: BTreeMap<SeriesKey, Vec<RawRecord>>,
    /// The mixer's and the platform's figures, per subject and minute.
    pub figures: BTreeMap<(Subject, Minute), Fields>,
}

impl RollupDelta {
    /// Adds a result to its (check, region) series and to its check's all-regions series.
    pub fn add(&mut self, region: &Region, result: &ProbeResult) {
        let key = SeriesKey { check: result.check_id.clone(), region: region.clone() };
        let minute = Minute::containing(result.started_at_ms);
        match self.records.get_mut(&key) {
            Some(records) => records.push(RawRecord::of(result)),
            None => {
                self.records.insert(key.clone(), vec![RawRecord::of(result)]);
            }
        }
        if !region.is_all() {
            let all = SeriesKey::all_regions(result.check_id.clone());
            self.rollups.entry((all, minute)).or_default().add(result);
        }
        self.rollups.entry((key, minute)).or_default().add(result);
    }

    /// Adds a whole minute's rollup to `key` and to its check's all-regions series, as
    /// [`RollupDelta::add`] does result by result (for fixtures and generated data).
    pub fn add_rollup(&mut self, key: SeriesKey, minute: Minute, rollup: &Rollup) {
        if !key.is_all_regions() {
            let all = SeriesKey::all_regions(key.check.clone());
            self.rollups.entry((all, minute)).or_default().merge(rollup);
        }
        self.rollups.entry((key, minute)).or_default().merge(rollup);
    }

    /// Folds a mixer scrape into its region's mixer subject.
    pub fn add_mixer(&mut self, region: &Region, sample: &MixerSample) {
        let key = (Subject::mixer(region.clone()), Minute::containing(sample.at_ms));
        figures::fold_mixer(self.figures.entry(key).or_default(), sample);
    }

    /// Folds a node sample into its node's subject.
    pub fn add_node(&mut self, region: &Region, sample: &NodeSample) {
        let key = (Subject::node(region.clone(), sample.node.clone()), Minute::containing(sample.at_ms));
        figures::fold_node(self.figures.entry(key).or_default(), sample);
    }

    /// Folds a pod sample into its pod's subject; refused when `<namespace>.<pod>` is too long
    /// for a name.
    pub fn add_pod(&mut self, region: &Region, sample: &PodSample) -> Result<(), IdError> {
        let key = (Subject::pod(region.clone(), &sample.namespace, &sample.pod)?, Minute::containing(sample.at_ms));
        figures::fold_pod(self.figures.entry(key).or_default(), sample);
        Ok(())
    }

    /// Adds any record: a probe result or a sample.
    pub fn add_record(&mut self, region: &Region, record: &Record) -> Result<(), IdError> {
        match record {
            Record::Probe(result) => self.add(region, result),
            Record::Mixer(sample) => self.add_mixer(region, sample),
            Record::Node(sample) => self.add_node(region, sample),
            Record::Pod(sample) => self.add_pod(region, sample)?,
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rollups.is_empty() && self.figures.is_empty()
    }

    /// Probe results in the delta, each counted once (not again in its all-regions series).
    pub fn result_count(&self) -> u64 {
        self.rollups.iter().filter(|((s, _), _)| !s.is_all_regions()).map(|(_, r)| r.total).sum()
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
        assert_eq!(delta.rollups.len(), 6, "3 per region, 3 all-regions");
        assert_eq!(delta.result_count(), 4, "all-regions rollups are not counted again");
        assert_eq!(delta.records.values().map(Vec::len).sum::<usize>(), 4, "every result is a raw record");
        let api0 = &delta.rollups[&(SeriesKey { check: CheckId::new("api").unwrap(), region }, Minute(0))];
        assert_eq!((api0.total, api0.successes, api0.latency_sum_us), (2, 1, 1_000));
        assert_eq!(api0.failures[&FailureKind::Timeout], 1);
        assert_eq!(api0.latency.count(), 1, "failed probes stay out of the latency sketch");
    }

    #[test]
    fn the_all_regions_series_is_the_sum_of_the_regions() {
        let (eu, us) = (Region::new("eu-west").unwrap(), Region::new("us-west").unwrap());
        let mut delta = RollupDelta::default();
        delta.add(&eu, &result("api", 0, None, 1_000));
        delta.add(&us, &result("api", 5, Some(FailureKind::Dns), 10));
        delta.add(&us, &result("api", 6, None, 3_000));
        let all = SeriesKey::all_regions(CheckId::new("api").unwrap());
        assert!(all.is_all_regions() && all.region.is_reserved() && all.region.as_str() == Region::ALL_NAME);
        let mut expected = delta.rollups[&(SeriesKey { check: all.check.clone(), region: eu }, Minute(0))].clone();
        expected.merge(&delta.rollups[&(SeriesKey { check: all.check.clone(), region: us }, Minute(0))]);
        assert_eq!(delta.rollups[&(all.clone(), Minute(0))], expected);
        assert!(!delta.records.contains_key(&all), "no raw records for the all-regions series");
        assert_eq!(delta.result_count(), 3);
        assert!(!Region::new("eu-west").unwrap().is_reserved());
    }

    #[test]
    fn samples_fold_into_their_subjects_minutes() {
        use crate::figures::SubjectKind;
        use crate::ids::EntityName;
        let region = Region::new("eu-west").unwrap();
        let name = |s: &str| EntityName::new(s).unwrap();
        let mut delta = RollupDelta::default();
        assert!(delta.is_empty());
        let mixer = MixerSample {
            pod: name("ai-1"),
            node: name("n1"),
            at_ms: 61_000,
            weight_ms: 15_000,
            scrape_ok: true,
            restarted: false,
            requests: vec![(200, 7)],
            duration_buckets: vec![],
            duration_count: 0,
            duration_sum_us: 0,
            active_streams: None,
            audio_peak_db: None,
            audio_lufs: None,
            genres: vec![],
            covered_ms: 0,
            first_in_minute: false,
        };
        delta.add_record(&region, &Record::Mixer(mixer.clone())).unwrap();
        delta.add_mixer(&region, &MixerSample { at_ms: 119_999, pod: name("ai-2"), ..mixer });
        let node = NodeSample {
            node: name("n1"),
            at_ms: 0,
            weight_ms: 15_000,
            cpu_busy_ratio: Some(0.5),
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            net_rx_bytes: 0,
            net_tx_bytes: 0,
            disks: vec![],
        };
        delta.add_record(&region, &Record::Node(node)).unwrap();
        let pod = PodSample {
            pod: name("ai-1"),
            namespace: name("mixer"),
            node: name("n1"),
            at_ms: 0,
            weight_ms: 15_000,
            ready: true,
            restarts: 0,
            memory_bytes: None,
            memory_limit_bytes: None,
        };
        delta.add_record(&region, &Record::Pod(pod.clone())).unwrap();
        let long = PodSample { pod: name(&"p".repeat(100)), namespace: name(&"n".repeat(100)), ..pod };
        assert!(delta.add_pod(&region, &long).is_err(), "the pod's name would be too long");
        assert!(!delta.is_empty());
        assert_eq!(delta.result_count(), 0);
        let keys: Vec<(SubjectKind, Minute)> = delta.figures.keys().map(|(s, m)| (s.kind, *m)).collect();
        assert_eq!(
            keys,
            [(SubjectKind::Mixer, Minute(1)), (SubjectKind::Node, Minute(0)), (SubjectKind::Pod, Minute(0))]
        );
        let mixer_minute = &delta.figures[&(Subject::mixer(region.clone()), Minute(1))];
        assert_eq!((mixer_minute.sum("rq:200"), mixer_minute.sum("so")), (14, 2));
        let pod_subject = Subject::pod(region, &name("mixer"), &name("ai-1")).unwrap();
        assert_eq!(delta.figures[&(pod_subject, Minute(0))].sum("rdy"), 1);
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
