//! One evaluation of every rule: each instance's observation through the state machine
//! (`mixmon_model::alert::machine`), events raised from what changed, inhibition marked, and
//! what must be written: the changed instances, the removed ones and the transitions.
//!
//! No I/O and no clock: [`Inputs`] holds the time and everything read, so a scenario is a
//! table of inputs and the alerts it must (and must not) raise.

use std::collections::{BTreeMap, BTreeSet};

use mixmon_model::alert::machine::{self, event, expire_event};
use mixmon_model::alert::{
    AlertInstance, AlertState, AlertTransition, Condition, EventKind, Fingerprint, InhibitRule, LabelSet, MatchOp,
    Matcher, MutingTail, Notify, Observation, Rule, RuleSet, Verdict, ALERTNAME, SEVERITY,
};

use super::inputs::Inputs;
use super::signals::{observe, ProbeViews, PROBER, PROBE_REGION};

/// A prober first seen this recently raises ProberJoined (an evaluator that starts later
/// does not announce probers that joined long before).
const JOINED_WITHIN_MS: i64 = 60_000;
/// An instance with no data for this long, and not firing, is forgotten.
const NO_DATA_FORGET_MS: i64 = 3_600_000;
/// Default for `prober_isolated` when no rule says: fewer checks than this cannot tell.
const DEFAULT_MIN_CHECKS: usize = 2;

/// What one evaluation decided.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Evaluation {
    pub changed: Vec<AlertInstance>,
    pub removed: Vec<Fingerprint>,
    pub transitions: Vec<AlertTransition>,
    /// Probing regions all of whose probers were cut off in this evaluation.
    pub isolated_regions: Vec<String>,
}

impl Evaluation {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty() && self.transitions.is_empty()
    }
}

/// The alert instances and how they move.
#[derive(Debug, Default, Clone)]
pub struct Engine {
    instances: BTreeMap<Fingerprint, AlertInstance>,
}

impl Engine {
    /// Continues from instances as stored (after a restart or a leader change).
    pub fn new(loaded: Vec<AlertInstance>) -> Self {
        Engine { instances: loaded.into_iter().map(|i| (i.fingerprint(), i)).collect() }
    }

    pub fn instances(&self) -> impl Iterator<Item = &AlertInstance> {
        self.instances.values()
    }

    /// The earliest time a pending alert can fire, so the evaluator wakes then.
    pub fn next_deadline(&self, rules: &RuleSet) -> Option<i64> {
        self.instances
            .values()
            .filter(|i| i.state == AlertState::Pending)
            .filter_map(|i| {
                let rule = rules.rule(i.alertname())?;
                Some(i.active_at_ms? + i64::try_from(rule.timing.for_ms).unwrap_or(i64::MAX))
            })
            .min()
    }

    /// Evaluates every rule of `rules` on `inputs`. `routing_inhibits` are inhibition rules
    /// from the routing file, applied with the rules' own `inhibits` relations.
    pub fn evaluate(&mut self, rules: &RuleSet, routing_inhibits: &[InhibitRule], inputs: &Inputs) -> Evaluation {
        let now = inputs.now_ms;
        let before = self.instances.clone();
        let mut next: BTreeMap<Fingerprint, AlertInstance> = BTreeMap::new();
        let mut transitions = Vec::new();
        let min_checks = rules
            .rules
            .iter()
            .find_map(|r| match r.condition {
                Condition::ProberIsolated { min_checks } => Some(min_checks as usize),
                _ => None,
            })
            .unwrap_or(DEFAULT_MIN_CHECKS);
        let views = ProbeViews::new(inputs, min_checks);

        for rule in rules.rules.iter().filter(|r| !matches!(r.condition, Condition::Event(_))) {
            let mut seen = BTreeSet::new();
            for (instance_labels, mut observation) in observe(rule, inputs, &views) {
                if !mixmon_model::alert::matches_all(&rule.matchers, &instance_labels) {
                    continue;
                }
                if rules.maintenance.iter().any(|w| w.covers(&instance_labels, now)) {
                    observation.verdict = Verdict::NoData;
                }
                let labels = rule.alert_labels(&instance_labels);
                let fingerprint = labels.fingerprint();
                seen.insert(fingerprint);
                self.step_into(rule, &labels, observation, now, &mut next, &mut transitions);
            }
            // Instances the rule no longer produced: no data, which never resolves a firing alert.
            let missing: Vec<AlertInstance> = self
                .instances
                .values()
                .filter(|i| i.alertname() == rule.name && !i.event && !seen.contains(&i.fingerprint()))
                .cloned()
                .collect();
            for old in missing {
                let forget = old.state == AlertState::NoData && now - old.updated_at_ms >= NO_DATA_FORGET_MS;
                if forget {
                    continue;
                }
                let observation = Observation { verdict: Verdict::NoData, value: None };
                self.step_into(rule, &old.labels.clone(), observation, now, &mut next, &mut transitions);
            }
        }

        // Alerts of rules that are gone: a firing one is resolved, so receivers hear its end.
        for old in self.instances.values().filter(|i| rules.rule(i.alertname()).is_none()) {
            if old.state == AlertState::Firing && !old.event {
                let mut resolved = old.clone();
                resolved.state = AlertState::Resolved;
                resolved.resolved_at_ms = Some(now);
                resolved.updated_at_ms = now;
                transitions.push(AlertTransition::of(&resolved, AlertState::Firing, now));
            }
        }

        self.raise_events(rules, inputs, &mut next, &mut transitions);
        self.remember_causes(&mut next);
        mark_inhibited(rules, routing_inhibits, &mut next, now);
        for instance in next.values_mut() {
            instance.silenced_by = if instance.state == AlertState::Firing {
                mixmon_model::alert::silenced_by(&inputs.silences, &instance.labels, now)
            } else {
                Vec::new()
            };
        }

        let changed = next.iter().filter(|(fp, i)| before.get(fp) != Some(i)).map(|(_, i)| i.clone()).collect();
        let removed = before.keys().filter(|fp| !next.contains_key(fp)).copied().collect();
        self.instances = next;
        let isolated_regions =
            super::signals::isolated_regions(inputs, &views).into_iter().map(str::to_string).collect();
        Evaluation { changed, removed, transitions, isolated_regions }
    }

    fn step_into(
        &self,
        rule: &Rule,
        labels: &LabelSet,
        observation: Observation,
        now: i64,
        next: &mut BTreeMap<Fingerprint, AlertInstance>,
        transitions: &mut Vec<AlertTransition>,
    ) {
        let previous = self.instances.get(&labels.fingerprint());
        let step = machine::step(
            previous,
            labels,
            |value| rule.render_annotations(labels, value),
            observation,
            &rule.timing,
            now,
        );
        if let Some(transition) = step.transition {
            transitions.push(transition);
        }
        if let Some(instance) = step.instance {
            next.insert(instance.fingerprint(), instance);
        }
    }

    /// A resolved cause past its retention is kept while an alert it muted still fires with
    /// it: a burn rate's episode can outlast the retention by hours, and must stay muted.
    fn remember_causes(&self, next: &mut BTreeMap<Fingerprint, AlertInstance>) {
        let still_muting: BTreeSet<Fingerprint> = self
            .instances
            .values()
            .filter(|i| next.get(&i.fingerprint()).is_some_and(|now| now.state == AlertState::Firing))
            .flat_map(|i| i.inhibited_by.iter().copied())
            .collect();
        for cause in still_muting {
            if let (Some(old), false) = (self.instances.get(&cause), next.contains_key(&cause)) {
                if old.state == AlertState::Resolved {
                    next.insert(cause, old.clone());
                }
            }
        }
    }

    /// One-shot events: probers that joined, alerts that recovered; and events that expire.
    fn raise_events(
        &self,
        rules: &RuleSet,
        inputs: &Inputs,
        next: &mut BTreeMap<Fingerprint, AlertInstance>,
        transitions: &mut Vec<AlertTransition>,
    ) {
        let now = inputs.now_ms;
        for old in self.instances.values().filter(|i| i.event) {
            match expire_event(old, now) {
                Some(step) => transitions.extend(step.transition),
                None if rules.rule(old.alertname()).is_some() => {
                    next.insert(old.fingerprint(), old.clone());
                }
                None => {}
            }
        }
        let resolved: Vec<AlertTransition> =
            transitions.iter().filter(|t| t.notify() == Some(Notify::Resolve)).cloned().collect();
        for rule in &rules.rules {
            let Condition::Event(kind) = &rule.condition else { continue };
            let raised: Vec<(LabelSet, Option<f64>)> = match kind {
                EventKind::ProberJoined => inputs
                    .probers
                    .iter()
                    .filter(|p| now - p.first_seen_ms < JOINED_WITHIN_MS && p.first_seen_ms <= now)
                    .map(|p| {
                        let labels =
                            LabelSet::new().with(PROBER, p.prober.clone()).with(PROBE_REGION, p.region.clone());
                        (labels, None)
                    })
                    .collect(),
                EventKind::Recovered { rule: of } => resolved
                    .iter()
                    .filter(|t| t.alertname() == of)
                    .map(|t| {
                        let mut labels = t.labels.clone();
                        labels.insert(ALERTNAME, "");
                        labels.insert(SEVERITY, "");
                        let down_for = t.fired_at_ms.zip(t.resolved_at_ms).map(|(f, r)| (r - f) as f64 / 1_000.0);
                        (labels, down_for)
                    })
                    .collect(),
            };
            for (instance_labels, value) in raised {
                let labels = rule.alert_labels(&instance_labels);
                let fingerprint = labels.fingerprint();
                // Kept while listed, so an evaluator restart does not raise it again.
                if next.contains_key(&fingerprint) || self.instances.contains_key(&fingerprint) {
                    continue;
                }
                let step = event(&labels, rule.render_annotations(&labels, value), value, now);
                transitions.extend(step.transition);
                if let Some(instance) = step.instance {
                    next.insert(fingerprint, instance);
                }
            }
        }
    }
}

/// The inhibition rules of the rules file: each `inhibits` relation, as Alertmanager would
/// write it (`source alertname=R`, `target alertname=~"A|B"`, `equal`).
pub fn relation_inhibits(rules: &RuleSet) -> Vec<InhibitRule> {
    rules
        .rules
        .iter()
        .filter(|r| !r.inhibits.is_empty())
        .filter_map(|r| {
            let source = Matcher::new(ALERTNAME, MatchOp::Equal, r.name.clone()).ok()?;
            let pattern = r.inhibits.iter().map(|name| regex_escape(name)).collect::<Vec<_>>().join("|");
            let target = Matcher::new(ALERTNAME, MatchOp::Regex, pattern).ok()?;
            Some(InhibitRule {
                source_matchers: vec![source],
                target_matchers: vec![target],
                equal: r.inhibits_equal.clone(),
            })
        })
        .collect()
}

fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_ascii_alphanumeric() || c == '_' { vec![c] } else { vec!['\\', c] }).collect()
}

/// Marks every firing alert with the alerts that mute it, by the rules file's `inhibits`
/// relations and the routing file's inhibit rules. Unlike Alertmanager:
/// - a pending source mutes too, so the alert that explains an outage pages instead of a
///   symptom that happens to fire first (a total outage burns the budget 14.4x before
///   ServiceDown's `for` is up);
/// - a source that fired keeps muting for its symptoms' tail after it resolved
///   ([`MutingTail`]): a burn rate, which reads a window that still holds the outage, stays
///   muted to the end of its episode and is muted if it starts within its window of the
///   recovery, so a recovery never pages; an alert that reads the present (ServiceDown of an
///   endpoint still down after its region came back) is muted only for its own `for` after
///   the cause resolved, then pages.
fn mark_inhibited(
    rules: &RuleSet,
    routing: &[InhibitRule],
    instances: &mut BTreeMap<Fingerprint, AlertInstance>,
    now: i64,
) {
    let inhibits: Vec<InhibitRule> = relation_inhibits(rules).into_iter().chain(routing.iter().cloned()).collect();
    let fired: BTreeSet<Fingerprint> = instances
        .iter()
        .filter(|(_, i)| matches!(i.state, AlertState::Firing | AlertState::Resolved))
        .map(|(fp, _)| *fp)
        .collect();
    let tail_of = |instance: &AlertInstance| {
        rules.rule(instance.alertname()).map(Rule::muting_tail).unwrap_or(MutingTail::For { ms: 0 })
    };
    // The sources a symptom with this tail can still be muted by: pending, firing, or
    // resolved within the tail. Few rules means few distinct tails.
    let sources_within: BTreeMap<i64, Vec<LabelSet>> = instances
        .values()
        .filter(|i| i.state == AlertState::Firing)
        .map(|i| tail_of(i).ms())
        .collect::<BTreeSet<i64>>()
        .into_iter()
        .map(|tail_ms| {
            let sources = instances
                .values()
                .filter(|i| !i.event)
                .filter(|i| match i.state {
                    AlertState::Pending | AlertState::Firing => true,
                    AlertState::Resolved => i.resolved_at_ms.is_some_and(|at| now - at <= tail_ms),
                    AlertState::Inactive | AlertState::NoData => false,
                })
                .map(|i| i.labels.clone())
                .collect();
            (tail_ms, sources)
        })
        .collect();
    let mut marks: Vec<(Fingerprint, Vec<Fingerprint>)> = Vec::new();
    for (fingerprint, instance) in instances.iter() {
        let mut by = Vec::new();
        if instance.state == AlertState::Firing {
            let tail = tail_of(instance);
            let sources = sources_within.get(&tail.ms()).map_or(&[][..], Vec::as_slice);
            by = mixmon_model::alert::inhibited_by(&inhibits, std::slice::from_ref(&instance.labels), sources)
                .pop()
                .unwrap_or_default();
            if let MutingTail::Episode { .. } = tail {
                by.extend(instance.inhibited_by.iter().filter(|source| fired.contains(source)));
            }
            by.sort();
            by.dedup();
        }
        marks.push((*fingerprint, by));
    }
    for (fingerprint, by) in marks {
        if let Some(instance) = instances.get_mut(&fingerprint) {
            instance.inhibited_by = by;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn instance(name: &str, state: AlertState) -> AlertInstance {
        let labels = LabelSet::new().with(ALERTNAME, name).with("endpoint", "edge");
        AlertInstance { state, ..AlertInstance::firing(labels, 0) }
    }

    fn muted(instances: &BTreeMap<Fingerprint, AlertInstance>, name: &str) -> bool {
        instances.values().any(|i| i.alertname() == name && !i.inhibited_by.is_empty())
    }

    #[test]
    fn a_pending_cause_mutes_its_symptom_and_a_fired_one_keeps_it_muted_to_the_end() {
        let rules = mixmon_rules::shipped().unwrap();
        let mut instances: BTreeMap<Fingerprint, AlertInstance> =
            [instance("ServiceDown", AlertState::Pending), instance("ErrorBudgetBurnFast", AlertState::Firing)]
                .into_iter()
                .map(|i| (i.fingerprint(), i))
                .collect();
        let service_down = instance("ServiceDown", AlertState::Pending).fingerprint();
        mark_inhibited(&rules, &[], &mut instances, 0);
        assert!(muted(&instances, "ErrorBudgetBurnFast"), "ServiceDown is pending: it will page, not the burn");

        // ServiceDown fires, then resolves: the burn still fires, and stays muted.
        instances.get_mut(&service_down).unwrap().state = AlertState::Firing;
        mark_inhibited(&rules, &[], &mut instances, 0);
        instances.get_mut(&service_down).unwrap().state = AlertState::Resolved;
        mark_inhibited(&rules, &[], &mut instances, 0);
        assert!(muted(&instances, "ErrorBudgetBurnFast"), "a recovery does not page");

        // A cause that never fired (pending, then gone) explains nothing any more.
        let mut instances: BTreeMap<Fingerprint, AlertInstance> =
            [instance("ServiceDown", AlertState::Pending), instance("ErrorBudgetBurnFast", AlertState::Firing)]
                .into_iter()
                .map(|i| (i.fingerprint(), i))
                .collect();
        mark_inhibited(&rules, &[], &mut instances, 0);
        instances.remove(&service_down);
        mark_inhibited(&rules, &[], &mut instances, 0);
        assert!(!muted(&instances, "ErrorBudgetBurnFast"));

        // The shipped routing file's rules hold while their source is pending too: a region
        // going down mutes the global fronts' burn rates before RegionalFailure's `for` is up.
        let routing = mixmon_rules::routes::shipped().unwrap().inhibit_rules;
        let mut region = instance("RegionalFailure", AlertState::Pending);
        region.labels = LabelSet::new().with(ALERTNAME, "RegionalFailure").with("region", "eu-west");
        let mut api = instance("ErrorBudgetBurnFast", AlertState::Firing);
        api.labels = LabelSet::new().with(ALERTNAME, "ErrorBudgetBurnFast").with("endpoint", "api");
        let mut instances: BTreeMap<Fingerprint, AlertInstance> =
            [region, api].into_iter().map(|i| (i.fingerprint(), i)).collect();
        mark_inhibited(&rules, &routing, &mut instances, 0);
        assert!(muted(&instances, "ErrorBudgetBurnFast"));
    }

    #[test]
    fn a_resolved_cause_mutes_its_symptoms_for_their_tail_only() {
        let rules = mixmon_rules::shipped().unwrap();
        let routing = mixmon_rules::routes::shipped().unwrap().inhibit_rules;
        let resolved_at = 1_000_000;
        let mut region = instance("RegionalFailure", AlertState::Resolved);
        region.labels = LabelSet::new().with(ALERTNAME, "RegionalFailure").with("region", "eu-west");
        region.resolved_at_ms = Some(resolved_at);
        let mut down = instance("ServiceDown", AlertState::Firing);
        down.labels = LabelSet::new().with(ALERTNAME, "ServiceDown").with("region", "eu-west").with("endpoint", "eu");
        let mut burn = instance("ErrorBudgetBurnFast", AlertState::Firing);
        burn.labels = LabelSet::new().with(ALERTNAME, "ErrorBudgetBurnFast").with("endpoint", "api");
        let mut instances: BTreeMap<Fingerprint, AlertInstance> =
            [region, down, burn].into_iter().map(|i| (i.fingerprint(), i)).collect();

        // A global front's burn that starts after the region came back is the outage's tail.
        mark_inhibited(&rules, &routing, &mut instances, resolved_at + 60_000);
        assert!(muted(&instances, "ErrorBudgetBurnFast"));
        assert!(muted(&instances, "ServiceDown"), "within ServiceDown's own `for` of the recovery");

        // Two minutes on, an endpoint of the region still down is news: it pages. The burn
        // stays muted to the end of its episode.
        mark_inhibited(&rules, &routing, &mut instances, resolved_at + 121_000);
        assert!(!muted(&instances, "ServiceDown"));
        assert!(muted(&instances, "ErrorBudgetBurnFast"));
    }

    #[test]
    fn a_cause_past_its_retention_is_kept_while_a_burn_it_muted_fires() {
        let cause = instance("ServiceDown", AlertState::Resolved);
        let mut burn = instance("ErrorBudgetBurnFast", AlertState::Firing);
        burn.inhibited_by = vec![cause.fingerprint()];
        let engine = Engine::new(vec![cause.clone(), burn.clone()]);
        let mut next = BTreeMap::from([(burn.fingerprint(), burn.clone())]);
        engine.remember_causes(&mut next);
        assert_eq!(next.get(&cause.fingerprint()), Some(&cause));

        // Once the burn is over, the cause goes.
        let mut next = BTreeMap::new();
        engine.remember_causes(&mut next);
        assert!(next.is_empty());
    }
}
