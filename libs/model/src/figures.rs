//! The mixer's and the platform's figures per minute: what the samples of one subject (a
//! region's mixer fleet, a node, a pod) added up to in one minute, as named integer fields.
//!
//! Like a [`crate::Rollup`], a [`Fields`] merges by addition (sums) and by maximum (maxes), so
//! minutes fold into hours and regions into the globe, and a store keeps one hash field per
//! name (`HINCRBY`, and a compare-and-set for maxima). Field names are the stored schema: only
//! add new ones, never change what an existing one means.
//!
//! Field names (all integers; gauges scaled to fixed point, see the `SCALE_` constants):
//!
//! | subject | field | kind | meaning |
//! | --- | --- | --- | --- |
//! | mixer | `rq:<status>` | sum | requests answered with that HTTP status |
//! | mixer | `hb:<le>` | sum | processing durations in the bucket with upper bound `le` seconds (`+Inf` last), not cumulative |
//! | mixer | `hc`, `hs` | sum | processing-duration count, and sum in µs |
//! | mixer | `st`, `stw` | sum | active streams × weight (ms), and the weights (ms) |
//! | mixer | `pkx` | max | audio peak, milli-dB |
//! | mixer | `pks`, `pkn` | sum | audio peak sum (milli-dB) and count |
//! | mixer | `lus`, `lun` | sum | LUFS sum (milli-LU) and count |
//! | mixer | `g:<genre>` | sum | genre classifications |
//! | mixer | `so`, `sf`, `rs` | sum | scrapes ok, scrapes failed, pod restarts seen |
//! | mixer | `cw` | sum | the time the request deltas cover (ms), summed over the pods |
//! | mixer | `pn` | sum | pods with a successful scrape in the minute (each pod once per minute) |
//! | mixer | `cm` | mark | minutes with a successful scrape: 1 in a minute, their count in an hour |
//! | node | `cpu`, `cpun` | sum | CPU busy ratio × 10⁶, and count |
//! | node | `cpux` | max | CPU busy ratio × 10⁶ |
//! | node | `mu`, `mt`, `mn` | sum | memory used, total (bytes), count |
//! | node | `rx`, `tx`, `nw` | sum | network bytes received, sent, and the weights (ms) they cover |
//! | node | `du:<mount>`, `dt:<mount>`, `dn:<mount>` | sum | disk used, total (bytes), count |
//! | node | `dx:<mount>` | max | disk used ratio × 10⁶ |
//! | pod | `rs` | sum | container restarts |
//! | pod | `rdy`, `n` | sum | samples ready, samples |
//! | pod | `mm`, `mmn` | sum | working-set memory (bytes), count |
//! | pod | `ml`, `mln` | sum | memory limit (bytes), count |
//! | pod | `mrx` | max | memory / limit × 10⁶ |

use std::collections::BTreeMap;
use std::fmt;

/// Fields that mark a minute rather than count in it: 1 however often a minute is written, and
/// in an hour (or any merge across time) the number of minutes marked. A store sets them once
/// per minute (Redis: `HSETNX` on the minute, and the hour's count moves only when it did).
pub const MINUTE_MARKS: [&str; 1] = ["cm"];

/// Whether `field` is one of the [`MINUTE_MARKS`].
pub fn is_minute_mark(field: &str) -> bool {
    MINUTE_MARKS.contains(&field)
}

use crate::ids::{EntityName, IdError, Region};
use crate::sample::{MixerSample, NodeSample, PodSample};

/// Fixed point of ratios (CPU busy, disk used, memory / limit).
pub const SCALE_RATIO: f64 = 1e6;
/// Fixed point of decibels and LUFS.
pub const SCALE_DB: f64 = 1e3;

/// What a [`Subject`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKind {
    /// The mixer fleet of one region (every pod scraped there, summed).
    Mixer,
    /// One node.
    Node,
    /// One pod (name unique within its region's cluster: `<namespace>.<pod>`).
    Pod,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 3] = [SubjectKind::Mixer, SubjectKind::Node, SubjectKind::Pod];

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Mixer => "mixer",
            SubjectKind::Node => "node",
            SubjectKind::Pod => "pod",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One series of [`Fields`]: the mixer of a region, or a node or pod (with the region it is in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject {
    pub kind: SubjectKind,
    pub region: Region,
    /// `None` for [`SubjectKind::Mixer`]; the node or `<namespace>.<pod>` otherwise.
    pub name: Option<EntityName>,
}

impl Subject {
    pub fn mixer(region: Region) -> Self {
        Subject { kind: SubjectKind::Mixer, region, name: None }
    }

    pub fn node(region: Region, node: EntityName) -> Self {
        Subject { kind: SubjectKind::Node, region, name: Some(node) }
    }

    /// A pod, named `<namespace>.<pod>` (both RFC 1123 names, so the dot is unambiguous).
    pub fn pod(region: Region, namespace: &EntityName, pod: &EntityName) -> Result<Self, IdError> {
        let name = EntityName::new(format!("{namespace}.{pod}"))?;
        Ok(Subject { kind: SubjectKind::Pod, region, name: Some(name) })
    }
}

impl Subject {
    /// Reads back what [`Subject`]'s `Display` wrote (`mixer:<region>`, `node:<region>:<node>`,
    /// `pod:<region>:<namespace>.<pod>`); `None` for anything else. Ids never contain `:`.
    pub fn parse(text: &str) -> Option<Subject> {
        let mut parts = text.split(':');
        let kind = SubjectKind::parse(parts.next()?)?;
        let region = Region::new(parts.next()?).ok()?;
        let name = parts.next().map(EntityName::new).transpose().ok()?;
        if parts.next().is_some() || (kind == SubjectKind::Mixer) != name.is_none() {
            return None;
        }
        Some(Subject { kind, region, name })
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{}:{}", self.kind.as_str(), self.region, name),
            None => write!(f, "{}:{}", self.kind.as_str(), self.region),
        }
    }
}

/// Named integer fields that merge: `sums` by addition, `maxes` by maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub sums: BTreeMap<String, i64>,
    pub maxes: BTreeMap<String, i64>,
}

impl Fields {
    pub fn add(&mut self, field: impl Into<String>, value: i64) {
        let slot = self.sums.entry(field.into()).or_insert(0);
        *slot = slot.saturating_add(value);
    }

    pub fn max(&mut self, field: impl Into<String>, value: i64) {
        let slot = self.maxes.entry(field.into()).or_insert(value);
        *slot = (*slot).max(value);
    }

    /// Marks `field` (one of the [`MINUTE_MARKS`]) in this minute: set, not added.
    pub fn mark(&mut self, field: impl Into<String>) {
        self.sums.insert(field.into(), 1);
    }

    /// Merges Fields of another stretch of time (minutes into an hour, hours into a window):
    /// sums add, marks too (so they count the minutes marked), maxima take the larger.
    pub fn merge(&mut self, other: &Fields) {
        for (field, value) in &other.sums {
            self.add(field.clone(), *value);
        }
        for (field, value) in &other.maxes {
            self.max(field.clone(), *value);
        }
    }

    /// Merges Fields of the same stretch of time (two writes into one minute, or two regions'
    /// windows into the globe's): as [`Fields::merge`], except that a mark takes the larger
    /// count, since the minutes it counts are the same minutes.
    pub fn merge_concurrent(&mut self, other: &Fields) {
        for (field, value) in &other.sums {
            if is_minute_mark(field) {
                let slot = self.sums.entry(field.clone()).or_insert(*value);
                *slot = (*slot).max(*value);
            } else {
                self.add(field.clone(), *value);
            }
        }
        for (field, value) in &other.maxes {
            self.max(field.clone(), *value);
        }
    }

    pub fn sum(&self, field: &str) -> i64 {
        self.sums.get(field).copied().unwrap_or(0)
    }

    pub fn max_of(&self, field: &str) -> Option<i64> {
        self.maxes.get(field).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.sums.is_empty() && self.maxes.is_empty()
    }
}

/// The field name of a histogram bucket: `hb:<le>`, with `le` as [`bucket_le`] writes it.
pub fn bucket_field(le: f64) -> String {
    format!("hb:{}", bucket_le(le))
}

/// A bucket's upper bound as text: `+Inf` for infinity, else the shortest decimal that reads
/// back as the same `f64` (`0.005`, `1`, `2.5`), never an exponent.
pub fn bucket_le(le: f64) -> String {
    if le == f64::INFINITY {
        "+Inf".to_string()
    } else if le == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if le == 0.0 {
        // -0 and 0 are one bound.
        "0".to_string()
    } else {
        // Rust's `Display` of an f64 is the shortest round-trip form, without an exponent.
        format!("{le}")
    }
}

/// `value × scale`, rounded, when the value is a number; NaN and infinities give `None`.
/// Values beyond the `i64` range saturate.
fn fixed(value: f64, scale: f64) -> Option<i64> {
    let scaled = (value * scale).round();
    // `as` saturates at the i64 bounds; a finite input times a finite scale may still overflow
    // to infinity, which is refused like any infinity.
    scaled.is_finite().then_some(scaled as i64)
}

/// An unsigned count as a field increment (saturating: no count reaches 2^63).
fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Adds `value` unless it is zero: an absent field reads as 0, so zeros are not stored.
fn add_nonzero(fields: &mut Fields, field: impl Into<String>, value: i64) {
    if value != 0 {
        fields.add(field, value);
    }
}

/// Counts, in a region's minute in progress, the pods that have not reported in it yet.
///
/// A minute's `pn` counts the pods scraped in it, and a rate divides the requests by the
/// coverage of one pod on average (`cw / pn`). A minute just begun has heard from only some
/// pods (with 15 s scrapes, for its first 15 s): the coverage of those is right, but the
/// region's rate is the rate of all its pods, so the count must be theirs. Until the minute
/// ends, the previous minute's count stands for it when it is larger; a complete minute keeps
/// its own, so a pod that went away is no longer counted once its last minute is over.
///
/// `minutes` ascending, of one mixer subject; `now` the minute in progress.
pub fn count_pods_not_yet_heard(minutes: &mut [(crate::Minute, Fields)], now: crate::Minute) {
    let [.., (previous_minute, previous), (last_minute, last)] = minutes else {
        return;
    };
    if last_minute.0 == now.0 && previous_minute.0 + 1 == now.0 {
        let heard_before = previous.sum("pn");
        if heard_before > last.sum("pn") && last.sum("cm") > 0 {
            last.sums.insert("pn".to_string(), heard_before);
        }
    }
}

/// Folds one mixer scrape into its region's minute (the fields of the `mixer` rows above).
pub fn fold_mixer(fields: &mut Fields, sample: &MixerSample) {
    if sample.scrape_ok {
        fields.add("so", 1);
        fields.mark("cm");
        if sample.first_in_minute {
            fields.add("pn", 1);
        }
        add_nonzero(fields, "cw", i64::from(sample.covered_ms));
    } else {
        fields.add("sf", 1);
    }
    if sample.restarted {
        fields.add("rs", 1);
    }
    for (status, n) in &sample.requests {
        add_nonzero(fields, format!("rq:{status}"), count(*n));
    }
    for (le, n) in &sample.duration_buckets {
        if !le.is_nan() {
            add_nonzero(fields, bucket_field(*le), count(*n));
        }
    }
    add_nonzero(fields, "hc", count(sample.duration_count));
    add_nonzero(fields, "hs", count(sample.duration_sum_us));
    let weight = i64::from(sample.weight_ms);
    if let Some(streams) = sample.active_streams.and_then(|v| fixed(v, f64::from(sample.weight_ms))) {
        add_nonzero(fields, "st", streams);
        add_nonzero(fields, "stw", weight);
    }
    if let Some(peak) = sample.audio_peak_db.and_then(|v| fixed(v, SCALE_DB)) {
        fields.max("pkx", peak);
        add_nonzero(fields, "pks", peak);
        fields.add("pkn", 1);
    }
    if let Some(lufs) = sample.audio_lufs.and_then(|v| fixed(v, SCALE_DB)) {
        add_nonzero(fields, "lus", lufs);
        fields.add("lun", 1);
    }
    for (genre, n) in &sample.genres {
        add_nonzero(fields, format!("g:{genre}"), count(*n));
    }
}

/// Folds one node sample into the node's minute (the `node` rows above).
pub fn fold_node(fields: &mut Fields, sample: &NodeSample) {
    if let Some(busy) = sample.cpu_busy_ratio.and_then(|v| fixed(v, SCALE_RATIO)) {
        add_nonzero(fields, "cpu", busy);
        fields.add("cpun", 1);
        fields.max("cpux", busy);
    }
    add_nonzero(fields, "mu", count(sample.memory_used_bytes));
    add_nonzero(fields, "mt", count(sample.memory_total_bytes));
    fields.add("mn", 1);
    add_nonzero(fields, "rx", count(sample.net_rx_bytes));
    add_nonzero(fields, "tx", count(sample.net_tx_bytes));
    add_nonzero(fields, "nw", i64::from(sample.weight_ms));
    for disk in &sample.disks {
        add_nonzero(fields, format!("du:{}", disk.mount), count(disk.used_bytes));
        add_nonzero(fields, format!("dt:{}", disk.mount), count(disk.total_bytes));
        fields.add(format!("dn:{}", disk.mount), 1);
        if disk.total_bytes > 0 {
            if let Some(ratio) = fixed(disk.used_bytes as f64 / disk.total_bytes as f64, SCALE_RATIO) {
                fields.max(format!("dx:{}", disk.mount), ratio);
            }
        }
    }
}

/// Folds one pod sample into the pod's minute (the `pod` rows above).
pub fn fold_pod(fields: &mut Fields, sample: &PodSample) {
    add_nonzero(fields, "rs", count(sample.restarts));
    if sample.ready {
        fields.add("rdy", 1);
    }
    fields.add("n", 1);
    if let Some(memory) = sample.memory_bytes {
        add_nonzero(fields, "mm", count(memory));
        fields.add("mmn", 1);
    }
    if let Some(limit) = sample.memory_limit_bytes {
        add_nonzero(fields, "ml", count(limit));
        fields.add("mln", 1);
    }
    if let (Some(memory), Some(limit)) = (sample.memory_bytes, sample.memory_limit_bytes) {
        if limit > 0 {
            if let Some(ratio) = fixed(memory as f64 / limit as f64, SCALE_RATIO) {
                fields.max("mrx", ratio);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_merge_by_sum_and_max() {
        let mut a = Fields::default();
        a.add("rq:200", 10);
        a.max("pkx", -6_000);
        let mut b = Fields::default();
        b.add("rq:200", 5);
        b.add("rq:503", 1);
        b.max("pkx", -2_500);
        a.merge(&b);
        assert_eq!((a.sum("rq:200"), a.sum("rq:503"), a.sum("absent")), (15, 1, 0));
        assert_eq!(a.max_of("pkx"), Some(-2_500), "a negative maximum is kept, not clamped to 0");
    }

    use crate::sample::DiskSample;

    fn name(s: &str) -> EntityName {
        EntityName::new(s).unwrap()
    }

    fn mixer_sample() -> MixerSample {
        MixerSample {
            pod: name("ai-1"),
            node: name("n1"),
            at_ms: 0,
            weight_ms: 15_000,
            scrape_ok: true,
            restarted: true,
            requests: vec![(200, 90), (503, 3), (504, 0)],
            duration_buckets: vec![(0.005, 10), (0.1, 0), (2.5, 4), (f64::NAN, 9), (f64::INFINITY, 1)],
            duration_count: 15,
            duration_sum_us: 1_234_567,
            active_streams: Some(12.4),
            audio_peak_db: Some(-3.2104),
            audio_lufs: Some(-14.0),
            genres: vec![(name("jazz"), 5), (name("rock"), 2)],
            covered_ms: 15_000,
            first_in_minute: true,
        }
    }

    fn sorted(fields: &BTreeMap<String, i64>) -> Vec<(&str, i64)> {
        fields.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn bucket_bounds_are_shortest_decimals_and_inf() {
        let cases = [
            (f64::INFINITY, "hb:+Inf"),
            (0.005, "hb:0.005"),
            (1.0, "hb:1"),
            (2.5, "hb:2.5"),
            (0.1 + 0.2, "hb:0.30000000000000004"),
            (1e-7, "hb:0.0000001"),
            (-0.0, "hb:0"),
            (10.0, "hb:10"),
        ];
        for (le, field) in cases {
            assert_eq!(bucket_field(le), field, "{le}");
            if le.is_finite() {
                assert_eq!(bucket_le(le).parse::<f64>().unwrap(), le, "round trip");
            }
        }
    }

    #[test]
    fn a_mixer_scrape_folds_into_the_documented_fields() {
        let mut fields = Fields::default();
        fold_mixer(&mut fields, &mixer_sample());
        assert_eq!(
            sorted(&fields.sums),
            [
                ("cm", 1),
                ("cw", 15_000),
                ("g:jazz", 5),
                ("g:rock", 2),
                ("hb:+Inf", 1),
                ("hb:0.005", 10),
                ("hb:2.5", 4),
                ("hc", 15),
                ("hs", 1_234_567),
                ("lun", 1),
                ("lus", -14_000),
                ("pkn", 1),
                ("pks", -3_210),
                ("pn", 1),
                ("rq:200", 90),
                ("rq:503", 3),
                ("rs", 1),
                ("so", 1),
                ("st", 186_000),
                ("stw", 15_000),
            ]
        );
        assert_eq!(sorted(&fields.maxes), [("pkx", -3_210)]);
        // A second pod of the region adds up; a failed scrape carries only its failure.
        let failed = MixerSample {
            scrape_ok: false,
            restarted: false,
            requests: vec![],
            duration_buckets: vec![],
            duration_count: 0,
            duration_sum_us: 0,
            active_streams: None,
            audio_peak_db: None,
            audio_lufs: None,
            genres: vec![],
            ..mixer_sample()
        };
        let mut only_failed = Fields::default();
        fold_mixer(&mut only_failed, &failed);
        assert_eq!(sorted(&only_failed.sums), [("sf", 1)]);
        assert!(only_failed.maxes.is_empty());
        fold_mixer(&mut fields, &MixerSample { audio_peak_db: Some(-1.0), ..mixer_sample() });
        assert_eq!((fields.sum("rq:200"), fields.sum("stw"), fields.max_of("pkx")), (180, 30_000, Some(-1_000)));
    }

    #[test]
    fn nan_and_infinite_gauges_never_enter() {
        let mut fields = Fields::default();
        let bad = MixerSample {
            active_streams: Some(f64::NAN),
            audio_peak_db: Some(f64::NEG_INFINITY),
            audio_lufs: Some(f64::INFINITY),
            duration_buckets: vec![(f64::NAN, 3)],
            ..mixer_sample()
        };
        fold_mixer(&mut fields, &bad);
        for absent in ["st", "stw", "pks", "pkn", "lus", "lun", "hb:NaN"] {
            assert!(!fields.sums.contains_key(absent), "{absent}");
        }
        assert!(fields.maxes.is_empty());
        let mut node = Fields::default();
        fold_node(&mut node, &NodeSample { cpu_busy_ratio: Some(f64::NAN), ..node_sample() });
        assert!(!node.sums.contains_key("cpun") && node.max_of("cpux").is_none());
    }

    fn node_sample() -> NodeSample {
        NodeSample {
            node: name("n1"),
            at_ms: 0,
            weight_ms: 10_000,
            cpu_busy_ratio: Some(0.4250004),
            memory_used_bytes: 3_000,
            memory_total_bytes: 8_000,
            net_rx_bytes: 500,
            net_tx_bytes: 0,
            disks: vec![
                DiskSample { mount: "/".into(), used_bytes: 1, total_bytes: 3 },
                DiskSample { mount: "/var/lib/kubelet".into(), used_bytes: 0, total_bytes: 0 },
            ],
        }
    }

    #[test]
    fn a_node_sample_folds_into_the_documented_fields() {
        let mut fields = Fields::default();
        fold_node(&mut fields, &node_sample());
        assert_eq!(
            sorted(&fields.sums),
            [
                ("cpu", 425_000),
                ("cpun", 1),
                ("dn:/", 1),
                ("dn:/var/lib/kubelet", 1),
                ("dt:/", 3),
                ("du:/", 1),
                ("mn", 1),
                ("mt", 8_000),
                ("mu", 3_000),
                ("nw", 10_000),
                ("rx", 500),
            ]
        );
        assert_eq!(sorted(&fields.maxes), [("cpux", 425_000), ("dx:/", 333_333)]);
        fold_node(&mut fields, &NodeSample { cpu_busy_ratio: None, ..node_sample() });
        assert_eq!((fields.sum("cpun"), fields.sum("mn"), fields.sum("nw")), (1, 2, 20_000));
    }

    #[test]
    fn a_pod_sample_folds_into_the_documented_fields() {
        let sample = PodSample {
            pod: name("ai-1"),
            namespace: name("mixer"),
            node: name("n1"),
            at_ms: 0,
            weight_ms: 10_000,
            ready: true,
            restarts: 2,
            memory_bytes: Some(750),
            memory_limit_bytes: Some(1_000),
        };
        let mut fields = Fields::default();
        fold_pod(&mut fields, &sample);
        assert_eq!(
            sorted(&fields.sums),
            [("ml", 1_000), ("mln", 1), ("mm", 750), ("mmn", 1), ("n", 1), ("rdy", 1), ("rs", 2)]
        );
        assert_eq!(sorted(&fields.maxes), [("mrx", 750_000)]);
        let unlimited = PodSample { ready: false, restarts: 0, memory_limit_bytes: None, ..sample };
        let mut fields = Fields::default();
        fold_pod(&mut fields, &unlimited);
        assert_eq!(sorted(&fields.sums), [("mm", 750), ("mmn", 1), ("n", 1)]);
        assert!(fields.maxes.is_empty(), "no ratio without a limit");
        let huge = PodSample { memory_bytes: Some(u64::MAX), memory_limit_bytes: Some(1), ..unlimited };
        fold_pod(&mut fields, &huge);
        assert_eq!(fields.sum("mm"), i64::MAX, "saturates, never wraps");
    }

    #[test]
    fn subjects_parse_back_from_their_names() {
        let region = Region::new("eu-west").unwrap();
        for subject in [
            Subject::mixer(region.clone()),
            Subject::node(region.clone(), name("n-1")),
            Subject::pod(region, &name("mixer"), &name("ai-1")).unwrap(),
        ] {
            assert_eq!(Subject::parse(&subject.to_string()), Some(subject));
        }
        for bad in ["", "mixer", "mixer:eu:x", "node:eu", "pod:eu:a:b", "vm:eu:x", "mixer:a b"] {
            assert_eq!(Subject::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn subjects_name_themselves() {
        let region = Region::new("eu-west").unwrap();
        let ns = EntityName::new("mixer").unwrap();
        let pod = EntityName::new("ai-mixer-7d9f-x2").unwrap();
        assert_eq!(Subject::mixer(region.clone()).to_string(), "mixer:eu-west");
        assert_eq!(Subject::pod(region, &ns, &pod).unwrap().to_string(), "pod:eu-west:mixer.ai-mixer-7d9f-x2");
    }
}
