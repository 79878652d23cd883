//! Inhibition with Alertmanager's meaning (`inhibit/inhibit.go`): a firing alert matching a
//! rule's `source_matchers` mutes every alert matching its `target_matchers` whose `equal`
//! labels have the same values (a missing label equals an empty one). An alert that matches
//! both sides cannot be muted by another alert that also matches both sides, so two such
//! alerts never silence each other.

use super::labels::{Fingerprint, LabelSet};
use super::matcher::{matches_all, Matcher};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// The first of `firing` that mutes `target`, if any.
    pub fn muted_by<'a>(&self, target: &LabelSet, firing: &'a [LabelSet]) -> Option<&'a LabelSet> {
        if !matches_all(&self.target_matchers, target) {
            return None;
        }
        let two_sided = matches_all(&self.source_matchers, target);
        let target_fp = target.fingerprint();
        firing.iter().find(|source| {
            source.fingerprint() != target_fp
                && matches_all(&self.source_matchers, source)
                && !(two_sided && matches_all(&self.target_matchers, source))
                && self.equal.iter().all(|name| source.get(name) == target.get(name))
        })
    }
}

/// For each of `targets`, the fingerprints of the firing alerts that mute it (empty: not
/// inhibited).
pub fn inhibited_by(rules: &[InhibitRule], targets: &[LabelSet], firing: &[LabelSet]) -> Vec<Vec<Fingerprint>> {
    targets
        .iter()
        .map(|target| {
            let mut sources: Vec<Fingerprint> =
                rules.iter().filter_map(|rule| rule.muted_by(target, firing)).map(LabelSet::fingerprint).collect();
            sources.sort_unstable();
            sources.dedup();
            sources
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().copied().collect()
    }

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source_matchers: Matcher::parse_list(source).unwrap(),
            target_matchers: Matcher::parse_list(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_regional_failure_mutes_that_regions_alerts_only() {
        let regional = rule(
            r#"alertname="RegionalFailure""#,
            r#"alertname=~"ServiceDown|HighLatency|HighErrorRate""#,
            &["region"],
        );
        let failure = set(&[("alertname", "RegionalFailure"), ("region", "us-west"), ("severity", "critical")]);
        let targets = [
            set(&[("alertname", "ServiceDown"), ("region", "us-west"), ("endpoint", "us-west")]),
            set(&[("alertname", "ServiceDown"), ("region", "eu-west"), ("endpoint", "eu-west")]),
            set(&[("alertname", "ServiceDown"), ("endpoint", "api")]),
            set(&[("alertname", "HighErrorRate"), ("region", "us-west")]),
            set(&[("alertname", "PodRestarts"), ("region", "us-west")]),
        ];
        let muted = inhibited_by(&[regional], &targets, std::slice::from_ref(&failure));
        let muted: Vec<bool> = muted.iter().map(|m| !m.is_empty()).collect();
        assert_eq!(muted, [true, false, false, true, false]);
    }

    #[test]
    fn critical_mutes_warning_on_the_same_endpoint_and_missing_labels_are_equal() {
        let by_severity = rule(r#"severity="critical""#, r#"severity="warning""#, &["endpoint"]);
        let critical = set(&[("alertname", "ServiceDown"), ("severity", "critical"), ("endpoint", "api")]);
        let warning_same = set(&[("alertname", "ProbePathDegraded"), ("severity", "warning"), ("endpoint", "api")]);
        let warning_other = set(&[("alertname", "ProbePathDegraded"), ("severity", "warning"), ("endpoint", "edge")]);
        let warning_none = set(&[("alertname", "HighMemory"), ("severity", "warning")]);
        let critical_none = set(&[("alertname", "HighDiskUsage"), ("severity", "critical")]);
        let muted = inhibited_by(
            &[by_severity],
            &[warning_same, warning_other, warning_none.clone()],
            std::slice::from_ref(&critical),
        );
        assert_eq!(muted[0], vec![critical.fingerprint()]);
        assert!(muted[1].is_empty());
        assert!(muted[2].is_empty(), "endpoint api != missing");
        let muted = inhibited_by(
            &[rule(r#"severity="critical""#, r#"severity="warning""#, &["endpoint"])],
            &[warning_none],
            std::slice::from_ref(&critical_none),
        );
        assert_eq!(muted[0], vec![critical_none.fingerprint()], "both lack endpoint: equal");
    }

    #[test]
    fn two_sided_matches_do_not_mute_each_other() {
        let both = rule(r#"alertname="A""#, r#"alertname="A""#, &[]);
        let a1 = set(&[("alertname", "A"), ("i", "1")]);
        let a2 = set(&[("alertname", "A"), ("i", "2")]);
        let muted = inhibited_by(&[both], &[a1.clone(), a2.clone()], &[a1.clone(), a2]);
        assert!(muted.iter().all(Vec::is_empty));
        // Nor does an alert mute itself.
        let any = rule(r#"alertname="A""#, r#"i="1""#, &[]);
        let itself = std::slice::from_ref(&a1);
        assert!(inhibited_by(&[any], itself, itself).iter().all(Vec::is_empty));
    }
}
