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

use crate::ids::{EntityName, IdError, Region};

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

    pub fn merge(&mut self, other: &Fields) {
        for (field, value) in &other.sums {
            self.add(field.clone(), *value);
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

    #[test]
    fn subjects_name_themselves() {
        let region = Region::new("eu-west").unwrap();
        let ns = EntityName::new("mixer").unwrap();
        let pod = EntityName::new("ai-mixer-7d9f-x2").unwrap();
        assert_eq!(Subject::mixer(region.clone()).to_string(), "mixer:eu-west");
        assert_eq!(Subject::pod(region, &ns, &pod).unwrap().to_string(), "pod:eu-west:mixer.ai-mixer-7d9f-x2");
    }
}
