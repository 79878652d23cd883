//! Multi-vantage truth: is an endpoint down, or is one prober's path to it broken?
//!
//! Every region probes every endpoint. Per (endpoint, prober) the store keeps the prober's
//! latest observation with its current streak ([`LatestObservation`]). From those:
//! - a prober is **isolated** when every one of its (at least `min_checks`) fresh
//!   observations fails while the other regions see most of those endpoints healthy: its own
//!   network is the problem, and it is left out of every quorum;
//! - a region's verdict on an endpoint is the majority of its fresh, non-isolated probers;
//! - the endpoint is **down** when a quorum of regions sees it failing (default two regions,
//!   or a majority of the reporting regions when fewer than four report), and **path
//!   degraded** from a region that sees it failing when the quorum does not;
//! - recovery is confirmed per prober by `success_threshold` successes in a row, and the
//!   endpoint is good once fewer than a quorum of regions fail and no failing region is left
//!   unconfirmed.
//!
//! `for` counts from the moment the quorum was reached: the quorum-th earliest start of the
//! failing regions' streaks, so a region that has failed alone for an hour does not make a
//! fresh two-region outage page at once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::machine::Verdict;

/// One prober's latest observation of one endpoint, with its current streak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestObservation {
    pub prober: String,
    pub region: String,
    /// Start of the latest probe, unix ms.
    pub started_ms: i64,
    pub ok: bool,
    /// Results in a row with the same outcome as the latest, this one included.
    pub streak: u32,
    /// Start of the first probe of the current streak.
    pub streak_since_ms: i64,
    /// The latest failure's kind (`FailureKind::as_str`), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl LatestObservation {
    /// The observation after one more result. Results older than the latest are ignored
    /// (returned unchanged), so re-applying a batch changes nothing.
    pub fn advance(
        previous: Option<&LatestObservation>,
        prober: &str,
        region: &str,
        started_ms: i64,
        ok: bool,
        failure: Option<&str>,
    ) -> LatestObservation {
        if let Some(prev) = previous {
            if started_ms <= prev.started_ms {
                return prev.clone();
            }
        }
        let continues = previous.is_some_and(|p| p.ok == ok);
        let (streak, since) = match previous {
            Some(p) if continues => (p.streak.saturating_add(1), p.streak_since_ms),
            _ => (1, started_ms),
        };
        LatestObservation {
            prober: prober.to_string(),
            region: region.to_string(),
            started_ms,
            ok,
            streak,
            streak_since_ms: since,
            failure: if ok { None } else { failure.map(str::to_string) },
        }
    }

    fn failing(&self, spec: &QuorumSpec) -> bool {
        !self.ok && self.streak >= spec.failure_threshold.max(1)
    }

    fn healthy(&self, spec: &QuorumSpec) -> bool {
        self.ok && self.streak >= spec.success_threshold.max(1)
    }
}

/// How many regions make a quorum, and how many results in a row make a prober's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumSpec {
    /// Regions that must see the endpoint fail (when at least four report).
    pub regions: u32,
    /// Failures in a row before a prober counts as seeing the endpoint fail.
    pub failure_threshold: u32,
    /// Successes in a row before a prober counts as seeing it healthy again.
    pub success_threshold: u32,
}

impl Default for QuorumSpec {
    fn default() -> Self {
        QuorumSpec { regions: 2, failure_threshold: 1, success_threshold: 1 }
    }
}

impl QuorumSpec {
    /// The quorum among `reporting` regions: the configured count from four regions up, a
    /// majority below (never more than the configured count, never less than one).
    pub fn required(&self, reporting: usize) -> usize {
        let configured = self.regions.max(1) as usize;
        if reporting >= 4 {
            configured
        } else {
            configured.min(reporting / 2 + 1)
        }
    }
}

/// One region's view of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionView {
    /// Most of its probers see it failing; since the streak start that made the majority.
    Failing {
        since_ms: i64,
    },
    Healthy,
    /// Neither (a recovery not yet confirmed, or a split region).
    Unsure,
}

/// The verdict on one endpoint and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointView {
    pub verdict: Verdict,
    /// The regions with fresh, non-isolated probers, and what each sees.
    pub regions: BTreeMap<String, RegionView>,
    /// How many regions must see it fail.
    pub required: usize,
}

impl EndpointView {
    pub fn failing_regions(&self) -> Vec<&str> {
        self.regions.iter().filter(|(_, v)| matches!(v, RegionView::Failing { .. })).map(|(r, _)| r.as_str()).collect()
    }
}

/// Fresh observations of one endpoint: the latest probe started at or after `fresh_after_ms`.
fn fresh(observations: &[LatestObservation], fresh_after_ms: i64) -> impl Iterator<Item = &LatestObservation> {
    observations.iter().filter(move |o| o.started_ms >= fresh_after_ms)
}

/// What one region sees, from its probers' observations (all of one region).
fn region_view(probers: &[&LatestObservation], spec: &QuorumSpec) -> RegionView {
    let majority = probers.len() / 2 + 1;
    let mut failing_since: Vec<i64> = probers.iter().filter(|o| o.failing(spec)).map(|o| o.streak_since_ms).collect();
    if failing_since.len() >= majority {
        failing_since.sort_unstable();
        let since = failing_since.get(majority - 1).copied().unwrap_or_default();
        return RegionView::Failing { since_ms: since };
    }
    let healthy = probers.iter().filter(|o| o.healthy(spec)).count();
    if healthy >= majority {
        RegionView::Healthy
    } else {
        RegionView::Unsure
    }
}

/// The verdict on one endpoint from every prober's latest observation of it.
pub fn endpoint_view(
    observations: &[LatestObservation],
    fresh_after_ms: i64,
    isolated: &BTreeSet<String>,
    spec: &QuorumSpec,
) -> EndpointView {
    let mut by_region: BTreeMap<&str, Vec<&LatestObservation>> = BTreeMap::new();
    for o in fresh(observations, fresh_after_ms).filter(|o| !isolated.contains(&o.prober)) {
        by_region.entry(o.region.as_str()).or_default().push(o);
    }
    let regions: BTreeMap<String, RegionView> =
        by_region.iter().map(|(region, probers)| (region.to_string(), region_view(probers, spec))).collect();
    let required = spec.required(regions.len());
    let verdict = if regions.is_empty() {
        Verdict::NoData
    } else {
        let mut since: Vec<i64> = regions
            .values()
            .filter_map(|v| match v {
                RegionView::Failing { since_ms } => Some(*since_ms),
                _ => None,
            })
            .collect();
        since.sort_unstable();
        let unsure = regions.values().filter(|v| matches!(v, RegionView::Unsure)).count();
        if since.len() >= required {
            Verdict::Bad { since_ms: since.get(required - 1).copied() }
        } else if since.len() + unsure >= required {
            // Could still be a quorum once the unconfirmed regions settle.
            Verdict::Unsure
        } else {
            Verdict::Good
        }
    };
    EndpointView { verdict, regions, required }
}

/// The probers whose own network is the likely problem: at least `min_checks` fresh
/// observations, every one failing, while the other regions see a majority of those
/// endpoints healthy. `observations` holds, per endpoint, every prober's latest observation;
/// `fresh_after_ms` per endpoint.
pub fn isolated_probers(
    observations: &BTreeMap<String, Vec<LatestObservation>>,
    fresh_after_ms: &BTreeMap<String, i64>,
    min_checks: usize,
) -> BTreeSet<String> {
    // Per prober: (its region, the endpoints it sees failing, how many it sees at all).
    let mut per_prober: BTreeMap<&str, (&str, Vec<&str>, usize)> = BTreeMap::new();
    for (endpoint, list) in observations {
        let after = fresh_after_ms.get(endpoint).copied().unwrap_or(i64::MIN);
        for o in fresh(list, after) {
            let entry = per_prober.entry(o.prober.as_str()).or_insert((o.region.as_str(), Vec::new(), 0));
            entry.2 += 1;
            if !o.ok {
                entry.1.push(endpoint.as_str());
            }
        }
    }
    let mut isolated = BTreeSet::new();
    for (prober, (region, failing, seen)) in per_prober {
        if seen < min_checks.max(1) || failing.len() != seen {
            continue;
        }
        let healthy_elsewhere = failing
            .iter()
            .filter(|endpoint| {
                let after = fresh_after_ms.get(**endpoint).copied().unwrap_or(i64::MIN);
                let others: Vec<&LatestObservation> = observations
                    .get(**endpoint)
                    .map(|list| fresh(list, after).filter(|o| o.region != region).collect())
                    .unwrap_or_default();
                let ok = others.iter().filter(|o| o.ok).count();
                !others.is_empty() && ok * 2 > others.len()
            })
            .count();
        if healthy_elsewhere * 2 > failing.len() {
            isolated.insert(prober.to_string());
        }
    }
    isolated
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn obs(prober: &str, region: &str, ok: bool, streak: u32, since: i64) -> LatestObservation {
        LatestObservation {
            prober: prober.into(),
            region: region.into(),
            started_ms: 100_000,
            ok,
            streak,
            streak_since_ms: since,
            failure: (!ok).then(|| "connection_refused".to_string()),
        }
    }

    fn four(states: [(bool, i64); 4]) -> Vec<LatestObservation> {
        ["us-west", "us-east", "eu-west", "ap"]
            .iter()
            .zip(states)
            .map(|(region, (ok, since))| obs(&format!("p-{region}"), region, ok, 1, since))
            .collect()
    }

    fn verdict(list: &[LatestObservation]) -> Verdict {
        endpoint_view(list, 0, &BTreeSet::new(), &QuorumSpec::default()).verdict
    }

    #[test]
    fn quorum_sizes() {
        let spec = QuorumSpec::default();
        assert_eq!([1, 2, 3, 4, 5, 8].map(|n| spec.required(n)), [1, 2, 2, 2, 2, 2]);
        let three = QuorumSpec { regions: 3, ..spec };
        assert_eq!([1, 2, 3, 4, 6].map(|n| three.required(n)), [1, 2, 2, 3, 3]);
    }

    #[test]
    fn down_needs_a_quorum_and_counts_from_when_it_was_reached() {
        assert_eq!(verdict(&four([(true, 0); 4])), Verdict::Good);
        let one = four([(false, 10), (true, 0), (true, 0), (true, 0)]);
        assert_eq!(verdict(&one), Verdict::Good, "one region alone is a path problem");
        let view = endpoint_view(&one, 0, &BTreeSet::new(), &QuorumSpec::default());
        assert_eq!(view.failing_regions(), ["us-west"]);
        // us-west failing since 10 (an hour of its own trouble), eu-west since 3 600 010.
        let two = four([(false, 10), (true, 0), (false, 3_600_010), (true, 0)]);
        assert_eq!(verdict(&two), Verdict::Bad { since_ms: Some(3_600_010) });
        let all = four([(false, 40), (false, 10), (false, 30), (false, 20)]);
        assert_eq!(verdict(&all), Verdict::Bad { since_ms: Some(20) });
    }

    #[test]
    fn stale_and_isolated_probers_do_not_vote() {
        let mut list = four([(false, 10), (false, 10), (true, 0), (true, 0)]);
        list[1].started_ms = 5; // us-east has not probed recently
        let view = endpoint_view(&list, 50, &BTreeSet::new(), &QuorumSpec::default());
        assert_eq!(view.regions.len(), 3);
        assert_eq!(view.verdict, Verdict::Good);
        let isolated = BTreeSet::from(["p-us-west".to_string()]);
        let list = four([(false, 10), (false, 10), (true, 0), (true, 0)]);
        assert_eq!(endpoint_view(&list, 0, &isolated, &QuorumSpec::default()).verdict, Verdict::Good);
        assert_eq!(endpoint_view(&[], 0, &BTreeSet::new(), &QuorumSpec::default()).verdict, Verdict::NoData);
    }

    #[test]
    fn recovery_needs_the_success_threshold() {
        let spec = QuorumSpec { success_threshold: 2, ..QuorumSpec::default() };
        // Two regions just saw one success each after failing; two are healthy for long.
        let mut list = four([(true, 0), (true, 0), (true, 0), (true, 0)]);
        list[2].streak = 9;
        list[3].streak = 9;
        let view = endpoint_view(&list, 0, &BTreeSet::new(), &spec);
        assert_eq!(view.verdict, Verdict::Unsure, "two unconfirmed regions could still be a quorum");
        list[0].streak = 2;
        assert_eq!(endpoint_view(&list, 0, &BTreeSet::new(), &spec).verdict, Verdict::Good);
        // A failure threshold of 3: two failures in a row are not yet failing.
        let slow = QuorumSpec { failure_threshold: 3, ..QuorumSpec::default() };
        let mut list = four([(false, 10), (false, 10), (true, 0), (true, 0)]);
        list[0].streak = 2;
        list[1].streak = 2;
        assert_eq!(endpoint_view(&list, 0, &BTreeSet::new(), &slow).verdict, Verdict::Unsure, "not yet failing");
        list[0].streak = 3;
        list[1].streak = 3;
        assert_eq!(endpoint_view(&list, 0, &BTreeSet::new(), &slow).verdict, Verdict::Bad { since_ms: Some(10) });
    }

    #[test]
    fn a_region_is_the_majority_of_its_probers() {
        let list = vec![
            obs("a1", "us-west", false, 1, 30),
            obs("a2", "us-west", false, 1, 10),
            obs("a3", "us-west", true, 5, 0),
            obs("b1", "eu-west", false, 1, 50),
        ];
        let view = endpoint_view(&list, 0, &BTreeSet::new(), &QuorumSpec::default());
        assert_eq!(view.regions["us-west"], RegionView::Failing { since_ms: 30 });
        assert_eq!(view.verdict, Verdict::Bad { since_ms: Some(50) });
        let split = vec![obs("a1", "us-west", false, 1, 30), obs("a2", "us-west", true, 1, 0)];
        let view = endpoint_view(&split, 0, &BTreeSet::new(), &QuorumSpec::default());
        assert_eq!(view.regions["us-west"], RegionView::Unsure);
    }

    #[test]
    fn streaks_advance_and_ignore_old_results() {
        let first = LatestObservation::advance(None, "p", "eu-west", 1_000, false, Some("timeout"));
        assert_eq!((first.streak, first.streak_since_ms, first.failure.as_deref()), (1, 1_000, Some("timeout")));
        let second = LatestObservation::advance(Some(&first), "p", "eu-west", 2_000, false, Some("timeout"));
        assert_eq!((second.streak, second.streak_since_ms), (2, 1_000));
        assert_eq!(LatestObservation::advance(Some(&second), "p", "eu-west", 1_500, true, None), second);
        let ok = LatestObservation::advance(Some(&second), "p", "eu-west", 3_000, true, None);
        assert_eq!((ok.ok, ok.streak, ok.streak_since_ms, ok.failure), (true, 1, 3_000, None));
    }

    #[test]
    fn a_prober_that_fails_everything_others_see_healthy_is_isolated() {
        let endpoints = ["us-west", "eu-west", "api"];
        let mut observations = BTreeMap::new();
        for endpoint in endpoints {
            observations.insert(endpoint.to_string(), four([(false, 10), (true, 0), (true, 0), (true, 0)]));
        }
        let fresh: BTreeMap<String, i64> = endpoints.iter().map(|e| (e.to_string(), 0)).collect();
        assert_eq!(isolated_probers(&observations, &fresh, 2), BTreeSet::from(["p-us-west".to_string()]));
        // Everything down everywhere is an outage, not isolation.
        for endpoint in endpoints {
            observations.insert(endpoint.to_string(), four([(false, 10); 4]));
        }
        assert!(isolated_probers(&observations, &fresh, 2).is_empty());
        // One endpoint failing from one prober is not isolation either.
        let mut observations = BTreeMap::new();
        observations.insert("us-west".to_string(), four([(false, 10), (true, 0), (true, 0), (true, 0)]));
        observations.insert("eu-west".to_string(), four([(true, 0); 4]));
        assert!(isolated_probers(&observations, &fresh, 2).is_empty());
        // Too few observations to tell.
        let single = BTreeMap::from([("api".to_string(), four([(false, 10), (true, 0), (true, 0), (true, 0)]))]);
        assert!(isolated_probers(&single, &fresh, 2).is_empty());
    }
}
