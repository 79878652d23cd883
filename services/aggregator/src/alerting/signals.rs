//! Per rule, what each instance of its scope shows now: its labels and an [`Observation`]
//! (a verdict and a value). Threshold rules compare an SLI; the probe signals read the
//! endpoints' latest observations through the multi-vantage quorum; the burn-rate rules
//! compare good/total counts; the prober rules read liveness.
//!
//! Label conventions: `endpoint` is a check's id and carries the check's catalogue labels
//! (so an endpoint's own `region`, when the catalogue gives it one); `probe_region` is the
//! region an observation was made from; mixer, node and pod instances carry their own
//! `region`. So "that region's alerts" (`equal: [region]`) means the same thing everywhere.

use std::collections::{BTreeMap, BTreeSet};

use mixmon_model::alert::quorum::{endpoint_view, isolated_probers, RegionView};
use mixmon_model::alert::{Condition, Counts, LabelSet, Observation, QuorumSpec, Rule, Scope, Verdict};

use super::inputs::{Inputs, SliQuery};

pub const ENDPOINT: &str = "endpoint";
pub const PROBE_REGION: &str = "probe_region";
pub const REGION: &str = "region";
pub const PROBER: &str = "prober";

/// What the probe signals share in one evaluation: who is isolated, and every endpoint's view.
pub struct ProbeViews {
    pub isolated: BTreeSet<String>,
}

impl ProbeViews {
    pub fn new(inputs: &Inputs, min_checks: usize) -> Self {
        let fresh: BTreeMap<String, i64> =
            inputs.checks.iter().map(|(id, info)| (id.clone(), info.fresh_after_ms(inputs.now_ms))).collect();
        ProbeViews { isolated: isolated_probers(&inputs.latest, &fresh, min_checks) }
    }
}

/// An endpoint's labels: its id and its catalogue labels.
fn endpoint_labels(inputs: &Inputs, endpoint: &str) -> LabelSet {
    let mut labels = LabelSet::new().with(ENDPOINT, endpoint);
    if let Some(info) = inputs.checks.get(endpoint) {
        for (name, value) in &info.labels {
            labels.insert_if_absent(name, value);
        }
    }
    labels
}

/// The instance labels a rule's alert carries for an SLI instance (as `libs/sli` labels it).
fn sli_instance_labels(inputs: &Inputs, scope: Scope, sli: &LabelSet) -> LabelSet {
    match scope {
        Scope::EndpointRegion | Scope::Endpoint => {
            let mut labels = endpoint_labels(inputs, sli.get(ENDPOINT));
            if scope == Scope::EndpointRegion {
                // The SLI's `region` of a probe series is where it was probed from.
                labels.insert(PROBE_REGION, sli.get(PROBE_REGION));
            }
            labels
        }
        _ => sli.clone(),
    }
}

/// Every instance of `rule` and what it shows now. `views` is shared by all probe signals.
pub fn observe(rule: &Rule, inputs: &Inputs, views: &ProbeViews) -> Vec<(LabelSet, Observation)> {
    match &rule.condition {
        Condition::Threshold { metric, stat, window_minutes, op, threshold } => {
            let query = SliQuery {
                metric: metric.clone(),
                stat: (*stat).into(),
                scope: rule.scope,
                window_minutes: *window_minutes,
            };
            inputs
                .slis
                .get(&query)
                .map(|instances| {
                    instances
                        .iter()
                        .map(|(labels, value)| {
                            let verdict = match value {
                                None => Verdict::NoData,
                                Some(v) if op.holds(*v, *threshold) => Verdict::Bad { since_ms: None },
                                Some(_) => Verdict::Good,
                            };
                            (sli_instance_labels(inputs, rule.scope, labels), Observation { verdict, value: *value })
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        Condition::EndpointDown { quorum } => endpoints_down(inputs, views, quorum),
        Condition::RegionDown { quorum } => regions_down(inputs, views, quorum),
        Condition::ProbePathDegraded { quorum } => paths_degraded(inputs, views, quorum),
        Condition::ProberIsolated { .. } => probers(inputs, |prober| {
            let bad = views.isolated.contains(prober);
            Observation {
                verdict: if bad { Verdict::Bad { since_ms: None } } else { Verdict::Good },
                value: Some(f64::from(u8::from(bad))),
            }
        }),
        Condition::ProberSilent { after_ms } => {
            let after = i64::try_from(*after_ms).unwrap_or(i64::MAX);
            let last_seen: BTreeMap<&str, i64> =
                inputs.probers.iter().map(|p| (p.prober.as_str(), p.last_seen_ms)).collect();
            probers(inputs, |prober| {
                let silent_ms = inputs.now_ms - last_seen.get(prober).copied().unwrap_or(inputs.now_ms);
                let verdict = if silent_ms > after { Verdict::Bad { since_ms: None } } else { Verdict::Good };
                Observation { verdict, value: Some(silent_ms as f64 / 1_000.0) }
            })
        }
        Condition::BurnRate { objective, windows } => {
            // A region whose probers are all cut off says nothing about the endpoint: its
            // failures stay out of the budget, as its results stay out of the quorum.
            let cut_off = isolated_regions(inputs, views);
            inputs
                .checks
                .keys()
                .map(|endpoint| {
                    let counts = |minutes: u32| {
                        let mut sum = Counts::default();
                        for ((e, region, m), c) in &inputs.counts {
                            if e == endpoint && *m == minutes && !cut_off.contains(region.as_str()) {
                                sum.add(*c);
                            }
                        }
                        sum
                    };
                    let longest = windows.iter().map(|w| w.long_minutes).max().unwrap_or(60);
                    let seen = counts(longest).total > 0;
                    let firing =
                        windows.iter().any(|w| w.fires(objective, counts(w.long_minutes), counts(w.short_minutes)));
                    // The value shown is the burn rate over the shortest pair's long window.
                    let value = windows
                        .iter()
                        .min_by_key(|w| w.long_minutes)
                        .and_then(|w| objective.burn_rate(counts(w.long_minutes)));
                    let verdict = match (seen, firing) {
                        (false, _) => Verdict::NoData,
                        (true, true) => Verdict::Bad { since_ms: None },
                        (true, false) => Verdict::Good,
                    };
                    (endpoint_labels(inputs, endpoint), Observation { verdict, value })
                })
                .collect()
        }
        // Events are raised by the engine from what changed, not observed.
        Condition::Event(_) => Vec::new(),
    }
}

/// Regions every one of whose probers is isolated.
pub fn isolated_regions<'a>(inputs: &'a Inputs, views: &ProbeViews) -> BTreeSet<&'a str> {
    let mut by_region: BTreeMap<&str, bool> = BTreeMap::new();
    for prober in &inputs.probers {
        let isolated = views.isolated.contains(&prober.prober);
        let all = by_region.entry(prober.region.as_str()).or_insert(true);
        *all &= isolated;
    }
    by_region.into_iter().filter(|(_, all)| *all).map(|(region, _)| region).collect()
}

/// One instance per prober seen, with its region.
fn probers(inputs: &Inputs, judge: impl Fn(&str) -> Observation) -> Vec<(LabelSet, Observation)> {
    inputs
        .probers
        .iter()
        .map(|p| {
            let labels = LabelSet::new().with(PROBER, p.prober.clone()).with(PROBE_REGION, p.region.clone());
            (labels, judge(&p.prober))
        })
        .collect()
}

fn endpoints_down(inputs: &Inputs, views: &ProbeViews, quorum: &QuorumSpec) -> Vec<(LabelSet, Observation)> {
    inputs
        .checks
        .iter()
        .map(|(endpoint, info)| {
            let observations = inputs.latest.get(endpoint).map(Vec::as_slice).unwrap_or_default();
            let view = endpoint_view(observations, info.fresh_after_ms(inputs.now_ms), &views.isolated, quorum);
            let value = (!observations.is_empty()).then(|| view.failing_regions().len() as f64);
            (endpoint_labels(inputs, endpoint), Observation { verdict: view.verdict, value })
        })
        .collect()
}

/// Each region with endpoints (catalogue label `region`): down when every one is down.
fn regions_down(inputs: &Inputs, views: &ProbeViews, quorum: &QuorumSpec) -> Vec<(LabelSet, Observation)> {
    let mut by_region: BTreeMap<&str, Vec<Verdict>> = BTreeMap::new();
    for (endpoint, info) in &inputs.checks {
        let Some(region) = info.labels.get(REGION) else { continue };
        let observations = inputs.latest.get(endpoint).map(Vec::as_slice).unwrap_or_default();
        let view = endpoint_view(observations, info.fresh_after_ms(inputs.now_ms), &views.isolated, quorum);
        by_region.entry(region.as_str()).or_default().push(view.verdict);
    }
    by_region
        .into_iter()
        .map(|(region, verdicts)| {
            let down = verdicts.iter().filter(|v| matches!(v, Verdict::Bad { .. })).count();
            let verdict = if down == verdicts.len() {
                // Down since the last of its endpoints went down.
                let since = verdicts.iter().filter_map(|v| match v {
                    Verdict::Bad { since_ms } => *since_ms,
                    _ => None,
                });
                Verdict::Bad { since_ms: since.max() }
            } else if verdicts.contains(&Verdict::Good) {
                Verdict::Good
            } else if verdicts.contains(&Verdict::Unsure) {
                Verdict::Unsure
            } else {
                Verdict::NoData
            };
            (LabelSet::new().with(REGION, region), Observation { verdict, value: Some(down as f64) })
        })
        .collect()
}

/// Each (endpoint, probing region): failing from there while the quorum says it is not down.
fn paths_degraded(inputs: &Inputs, views: &ProbeViews, quorum: &QuorumSpec) -> Vec<(LabelSet, Observation)> {
    let mut out = Vec::new();
    for (endpoint, info) in &inputs.checks {
        let observations = inputs.latest.get(endpoint).map(Vec::as_slice).unwrap_or_default();
        let view = endpoint_view(observations, info.fresh_after_ms(inputs.now_ms), &views.isolated, quorum);
        let down = matches!(view.verdict, Verdict::Bad { .. });
        for (region, region_view) in &view.regions {
            let verdict = match (region_view, down) {
                (RegionView::Failing { since_ms }, false) => Verdict::Bad { since_ms: Some(*since_ms) },
                // The endpoint is down for everyone: that is ServiceDown, not a path problem.
                (RegionView::Failing { .. }, true) => Verdict::Good,
                (RegionView::Healthy, _) => Verdict::Good,
                (RegionView::Unsure, _) => Verdict::Unsure,
            };
            let mut labels = endpoint_labels(inputs, endpoint);
            labels.insert(PROBE_REGION, region.clone());
            let value = Some(f64::from(u8::from(matches!(region_view, RegionView::Failing { .. }))));
            out.push((labels, Observation { verdict, value }));
        }
    }
    out
}
