//! Which prober runs which check. By default every prober in every region probes every
//! endpoint (that is what tells a regional outage from a prober's own network trouble);
//! assignment rules can narrow that:
//!
//! ```toml
//! [[assignments]]
//! checks = ["eu-internal"]   # the checks this rule is about, by id
//! regions = ["eu-west"]      # only probers in these regions run them
//!
//! [[assignments]]
//! labels = { tier = "internal" }  # ... or by labels (every pair must match)
//! probers = ["node-7"]            # only these probers run them
//! ```
//!
//! A check selected by no rule runs everywhere; a check selected by rules runs on the probers
//! that any of those rules selects (by region, or by prober id with `probers`). Rules are
//! checked against the catalogue when it loads, so a rule naming an unknown check, or whose
//! labels match no check, is refused with the rest of a bad file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mixmon_model::{CheckId, CheckSpec, ProberIdentity};
use serde::Deserialize;

use crate::catalogue::Catalogue;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRule {
    /// Check ids this rule restricts.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Checks whose labels include every one of these pairs are restricted too.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Regions whose probers run them.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Prober ids that run them (in addition to `regions`).
    #[serde(default)]
    pub probers: Vec<String>,
}

/// The rules, resolved against one catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignments {
    /// For each restricted check, who runs it.
    restricted: BTreeMap<CheckId, Selector>,
    /// The regions probers run in, in order: the `i`-th of `n` runs every check `i / n` of an
    /// interval after the first, so together they look at an endpoint every interval / n.
    regions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Selector {
    regions: BTreeSet<String>,
    probers: BTreeSet<String>,
}

impl Assignments {
    /// Resolves `rules` against `catalogue`, whose checks carry `labels` (by check id);
    /// every problem is listed.
    pub fn resolve(
        rules: &[AssignmentRule],
        catalogue: &Catalogue,
        labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut restricted: BTreeMap<CheckId, Selector> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.checks.is_empty() && rule.labels.is_empty() {
                problems.push(format!("assignments[{index}]: checks or labels must select at least one check"));
            }
            let mut selected: Vec<String> = rule.checks.clone();
            if !rule.labels.is_empty() {
                let matching: Vec<String> = labels
                    .iter()
                    .filter(|(_, have)| rule.labels.iter().all(|(k, v)| have.get(k) == Some(v)))
                    .map(|(id, _)| id.clone())
                    .collect();
                if matching.is_empty() {
                    problems.push(format!("assignments[{index}]: labels {:?} match no check", rule.labels));
                }
                selected.extend(matching);
            }
            if rule.regions.is_empty() && rule.probers.is_empty() {
                problems.push(format!(
                    "assignments[{index}]: regions or probers must select someone (a check nobody runs is not monitored)"
                ));
            }
            for check in &selected {
                let known = CheckId::new(check.clone()).ok().filter(|id| catalogue.checks.contains_key(id));
                let Some(id) = known else {
                    problems.push(format!("assignments[{index}]: unknown check {check:?}"));
                    continue;
                };
                let selector = restricted.entry(id).or_default();
                selector.regions.extend(rule.regions.iter().cloned());
                selector.probers.extend(rule.probers.iter().cloned());
            }
        }
        if problems.is_empty() {
            Ok(Self { restricted, regions: Vec::new() })
        } else {
            Err(problems)
        }
    }

    /// The same rules, with the region order that spreads probes over each interval.
    pub fn with_regions(mut self, regions: Vec<String>) -> Self {
        self.regions = regions;
        self
    }

    /// How far into each interval a prober of `region` is shifted: its slot in the region
    /// order, or (for a region not listed) a fixed slot derived from its name.
    pub fn phase_shift_ms(&self, region: &str, interval_ms: u32) -> u32 {
        match self.regions.iter().position(|r| r == region) {
            Some(index) => CheckSpec::region_shift_ms(interval_ms, index, self.regions.len()),
            None => {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in region.bytes() {
                    hash ^= u64::from(byte);
                    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                }
                u32::try_from(hash % u64::from(interval_ms.max(1))).unwrap_or(0)
            }
        }
    }

    pub fn runs(&self, prober: &ProberIdentity, check: &CheckId) -> bool {
        match self.restricted.get(check) {
            None => true,
            Some(selector) => {
                selector.regions.contains(prober.region.as_str()) || selector.probers.contains(prober.id.as_str())
            }
        }
    }

    /// The part of `catalogue` that `prober` runs, and its version: the catalogue's version
    /// mixed with the assigned ids, so it changes exactly when this prober's work changes.
    pub fn view(&self, catalogue: &Catalogue, prober: &ProberIdentity) -> (u64, BTreeMap<CheckId, CheckSpec>) {
        let checks: BTreeMap<CheckId, CheckSpec> = catalogue
            .checks
            .iter()
            .filter(|(id, _)| self.runs(prober, id))
            .map(|(id, spec)| {
                let phase_shift_ms = self.phase_shift_ms(prober.region.as_str(), spec.interval_ms);
                (id.clone(), CheckSpec { phase_shift_ms, ..spec.clone() })
            })
            .collect();
        if self.restricted.is_empty() {
            return (catalogue.version, checks);
        }
        let mut hash = catalogue.version ^ 0xcbf2_9ce4_8422_2325;
        for id in checks.keys() {
            for byte in id.as_str().bytes().chain(std::iter::once(0xff)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        (hash.max(1), checks)
    }
}

/// What the control plane serves: the catalogue and who runs what, swapped together.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub catalogue: Arc<Catalogue>,
    pub assignments: Assignments,
}

/// What a prober running `old` must change to run `new`: upserts and removals.
pub fn diff(old: &BTreeMap<CheckId, CheckSpec>, new: &BTreeMap<CheckId, CheckSpec>) -> (Vec<CheckSpec>, Vec<CheckId>) {
    let upserts = new.values().filter(|spec| old.get(&spec.id) != Some(*spec)).cloned().collect();
    let removed = old.keys().filter(|id| !new.contains_key(*id)).cloned().collect();
    (upserts, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_model::{ProberId, Region};

    /// Built through the config, so these tests do not depend on the shape of check kinds.
    fn catalogue(ids: &[&str], interval_s: u32) -> Catalogue {
        let mut text = format!("[defaults]\ninterval_s = {interval_s}\n");
        for id in ids {
            text.push_str(&format!("[[checks]]\nid = \"{id}\"\nurl = \"http://{id}.example/health\"\n"));
        }
        let config: crate::AggregatorConfig = mixmon_config::parse_with_env("a.toml", &text, Vec::new()).unwrap();
        Catalogue::from_config(&config, None).unwrap()
    }

    fn no_labels() -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::new()
    }

    fn prober(id: &str, region: &str) -> ProberIdentity {
        ProberIdentity {
            id: ProberId::new(id).unwrap(),
            region: Region::new(region).unwrap(),
            node: id.into(),
            version: "0".into(),
        }
    }

    #[test]
    fn regions_are_spread_evenly_over_each_interval() {
        let catalogue = catalogue(&["api", "edge"], 5);
        let regions: Vec<String> = ["us-west", "us-east", "eu-west", "ap"].map(String::from).to_vec();
        let assignments = Assignments::default().with_regions(regions.clone());
        let api = CheckId::new("api").unwrap();
        // Where each region's run of `api` falls in the interval.
        let mut phases: Vec<u64> = regions
            .iter()
            .map(|region| assignments.view(&catalogue, &prober(&format!("p-{region}"), region)).1[&api].phase_ms())
            .collect();
        phases.sort_unstable();
        let gaps: Vec<u64> = phases.windows(2).map(|w| w[1] - w[0]).chain([phases[0] + 5_000 - phases[3]]).collect();
        assert_eq!(gaps, [1_250; 4], "four regions look at the endpoint every 1.25 s: {phases:?}");
        // Fixed: the same prober gets the same phase every time; an unlisted region a stable one.
        let again = assignments.view(&catalogue, &prober("p-ap", "ap")).1[&api].phase_ms();
        assert!(phases.contains(&again));
        let other = assignments.phase_shift_ms("sa-east", 5_000);
        assert_eq!(other, assignments.phase_shift_ms("sa-east", 5_000));
        assert!(other < 5_000);
    }

    fn rule(checks: &[&str], regions: &[&str], probers: &[&str]) -> AssignmentRule {
        AssignmentRule {
            checks: checks.iter().map(ToString::to_string).collect(),
            labels: BTreeMap::new(),
            regions: regions.iter().map(ToString::to_string).collect(),
            probers: probers.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn everyone_runs_everything_unless_a_rule_narrows_it() {
        let catalogue = catalogue(&["api", "eu-only", "pinned"], 10);
        let none = Assignments::resolve(&[], &catalogue, &no_labels()).unwrap();
        let (version, checks) = none.view(&catalogue, &prober("a", "us-west"));
        assert_eq!((version, checks.len()), (catalogue.version, 3));

        let rules = [rule(&["eu-only"], &["eu-west"], &[]), rule(&["pinned"], &[], &["b"])];
        let narrowed = Assignments::resolve(&rules, &catalogue, &no_labels()).unwrap();
        let ids = |p: &ProberIdentity| narrowed.view(&catalogue, p).1.keys().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&prober("a", "us-west")), ["api"]);
        assert_eq!(ids(&prober("a", "eu-west")), ["api", "eu-only"]);
        assert_eq!(ids(&prober("b", "us-west")), ["api", "pinned"]);
        assert_ne!(
            narrowed.view(&catalogue, &prober("a", "us-west")).0,
            narrowed.view(&catalogue, &prober("a", "eu-west")).0,
            "different work, different versions"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_every_problem() {
        let catalogue = catalogue(&["api"], 10);
        let problems =
            Assignments::resolve(&[rule(&["nope"], &["eu-west"], &[]), rule(&[], &[], &[])], &catalogue, &no_labels())
                .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("unknown check \"nope\""));
    }

    #[test]
    fn labels_select_checks_too() {
        let catalogue = catalogue(&["api", "db", "cache"], 10);
        let pair = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let labels = BTreeMap::from([
            ("db".to_string(), BTreeMap::from([("tier".into(), "internal".into()), ("team".into(), "data".into())])),
            ("cache".to_string(), pair("tier", "internal")),
            ("api".to_string(), pair("tier", "edge")),
        ]);
        let mut internal = rule(&[], &["eu-west"], &[]);
        internal.labels = pair("tier", "internal");
        let assignments = Assignments::resolve(&[internal.clone()], &catalogue, &labels).unwrap();
        let ids =
            |p: &ProberIdentity| assignments.view(&catalogue, p).1.keys().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&prober("a", "us-west")), ["api"]);
        assert_eq!(ids(&prober("a", "eu-west")), ["api", "cache", "db"]);

        internal.labels = pair("tier", "nowhere");
        let problems = Assignments::resolve(&[internal], &catalogue, &labels).unwrap_err();
        assert!(problems[0].contains("match no check"), "{problems:?}");
    }

    #[test]
    fn diff_lists_upserts_and_removals() {
        let old = catalogue(&["a", "b"], 10).checks;
        let new = catalogue(&["b"], 5).checks;
        let (upserts, removed) = diff(&old, &new);
        assert_eq!(upserts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(removed.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["a"]);
    }
}
