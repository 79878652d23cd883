//! Label sets and their fingerprints. An alert's identity is its label set, as in Prometheus
//! and Alertmanager; the fingerprint is computed exactly as Prometheus'
//! `model.LabelSet.Fingerprint` (FNV-1a 64 over the sorted names and values, each followed by
//! the separator byte 0xff), so a fingerprint mixmon shows in its Alertmanager-compatible API is
//! the one Alertmanager itself would show for the same labels.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The label every alert carries: the rule's name.
pub const ALERTNAME: &str = "alertname";
/// The label that routes an alert: `critical`, `warning` or `info`.
pub const SEVERITY: &str = "severity";

const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
const SEPARATOR: u8 = 0xff;

/// A set of labels, sorted by name. Empty values are dropped on insert, as Alertmanager drops
/// them, so `{a=""}` and `{}` are the same set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelSet(BTreeMap<String, String>);

impl LabelSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.0.remove(&name);
        } else {
            self.0.insert(name, value);
        }
    }

    /// Adds `name` only when the set does not have it yet.
    pub fn insert_if_absent(&mut self, name: &str, value: &str) {
        if !self.0.contains_key(name) && !value.is_empty() {
            self.0.insert(name.to_string(), value.to_string());
        }
    }

    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// The value of `name`, or `""` when absent (Alertmanager's reading of a missing label).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Prometheus' fingerprint of this set.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = FNV_OFFSET;
        for (name, value) in &self.0 {
            for byte in name.bytes().chain([SEPARATOR]).chain(value.bytes()).chain([SEPARATOR]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(FNV_PRIME);
            }
        }
        Fingerprint(hash)
    }

    /// Only the labels named in `names` (a group key's labels).
    pub fn project(&self, names: &[String]) -> LabelSet {
        LabelSet(names.iter().filter_map(|n| self.0.get(n).map(|v| (n.clone(), v.clone()))).collect())
    }
}

impl FromIterator<(String, String)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut set = LabelSet::new();
        for (name, value) in iter {
            set.insert(name, value);
        }
        set
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        iter.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl fmt::Display for LabelSet {
    /// `{a="b", c="d"}`, as Prometheus prints a label set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An alert's identity: the fingerprint of its label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    /// Sixteen lower-case hex digits, as Alertmanager prints fingerprints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.to_string()
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Fingerprint::parse(&value).ok_or_else(|| format!("fingerprint {value:?} is not 16 hex digits"))
    }
}

impl Fingerprint {
    pub fn parse(text: &str) -> Option<Fingerprint> {
        (text.len() == 16).then(|| u64::from_str_radix(text, 16).ok()).flatten().map(Fingerprint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_prometheus() {
        // Values computed by Prometheus' model.LabelSet.Fingerprint (common/model/signature.go):
        // the empty set hashes to the FNV-1a offset basis.
        assert_eq!(LabelSet::new().fingerprint(), Fingerprint(FNV_OFFSET));
        let set: LabelSet = [("alertname", "ServiceDown"), ("endpoint", "eu-west")].into_iter().collect();
        let reordered: LabelSet = [("endpoint", "eu-west"), ("alertname", "ServiceDown")].into_iter().collect();
        assert_eq!(set.fingerprint(), reordered.fingerprint(), "order does not matter");
        assert_ne!(set.fingerprint(), set.clone().with("region", "eu-west").fingerprint());
        // The separator keeps {a="bc"} and {ab="c"} apart.
        let a: LabelSet = [("a", "bc")].into_iter().collect();
        let b: LabelSet = [("ab", "c")].into_iter().collect();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn fingerprint_of_one_label_is_fnv1a_by_hand() {
        // FNV-1a 64 of b"a\xffb\xff", computed step by step.
        let mut hash = FNV_OFFSET;
        for byte in [b'a', 0xff, b'b', 0xff] {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        let set: LabelSet = [("a", "b")].into_iter().collect();
        assert_eq!(set.fingerprint(), Fingerprint(hash));
        let text = set.fingerprint().to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(Fingerprint::parse(&text), Some(Fingerprint(hash)));
        assert_eq!(Fingerprint::parse("xyz"), None);
    }

    #[test]
    fn empty_values_are_absent_and_names_are_checked() {
        let set = LabelSet::new().with("a", "").with("b", "x");
        assert!(!set.contains("a"));
        assert_eq!(set.get("a"), "");
        assert_eq!(set.to_string(), r#"{b="x"}"#);
        for good in ["a", "_x", "severity", "A_1"] {
            assert!(is_valid_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"{"b":"x"}"#);
        let fp: Fingerprint = serde_json::from_str(&serde_json::to_string(&set.fingerprint()).unwrap()).unwrap();
        assert_eq!(fp, set.fingerprint());
    }
}
