//! The state machine of one alert instance, one evaluation at a time.
//!
//! Differences from Prometheus, on purpose:
//! - `for` counts from the first bad *observation* (a probe's start time when the signal knows
//!   it), not from the evaluation that noticed it, and is not quantized by an evaluation
//!   interval: an alert fires at the first evaluation at or after `active_at + for`.
//! - No data is its own verdict. It never resolves a firing alert (a silent prober is not a
//!   recovery), and it clears a pending timer rather than counting as bad.
//! - Recovery needs the condition to stay good for `keep_firing_for` (which so doubles as the
//!   recovery confirmation for windowed rules); rules built on probe streaks add a success
//!   threshold before they ever report `Good` (see `quorum`).
//! - A resolved instance is kept for `resolved_retention` so that clients (and an
//!   Alertmanager we forward to) see the resolve; going bad again starts a new episode.

use super::labels::LabelSet;
use super::state::{AlertInstance, AlertState, AlertTransition};
use std::collections::BTreeMap;

/// What one evaluation found for one instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The condition holds. `since_ms`: when the first bad observation of this streak was
    /// made, when the signal knows it (probe streaks); otherwise the evaluation time counts.
    Bad { since_ms: Option<i64> },
    /// The condition does not hold (and, for probe streaks, recovery is confirmed).
    Good,
    /// Neither confirmed bad nor confirmed good (a recovery not yet confirmed): nothing moves.
    Unsure,
    /// Nothing to judge by.
    NoData,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub verdict: Verdict,
    pub value: Option<f64>,
}

/// A rule's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub for_ms: u64,
    pub keep_firing_for_ms: u64,
    pub resolved_retention_ms: u64,
}

/// How long resolved instances stay visible, as Prometheus re-sends resolved alerts for 15 min.
pub const RESOLVED_RETENTION_MS: u64 = 15 * 60_000;
/// How long a one-shot event stays listed among the live alerts.
pub const EVENT_RETENTION_MS: u64 = 5 * 60_000;

impl Timing {
    pub fn new(for_ms: u64, keep_firing_for_ms: u64) -> Timing {
        Timing { for_ms, keep_firing_for_ms, resolved_retention_ms: RESOLVED_RETENTION_MS }
    }
}

/// The instance after one evaluation (`None`: nothing to keep) and the transition, if the
/// state changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub instance: Option<AlertInstance>,
    pub transition: Option<AlertTransition>,
}

/// Annotations are rendered by the caller for the new value; the machine only carries them.
pub fn step(
    previous: Option<&AlertInstance>,
    labels: &LabelSet,
    annotations: impl FnOnce(Option<f64>) -> BTreeMap<String, String>,
    observation: Observation,
    timing: &Timing,
    now_ms: i64,
) -> Step {
    let from = previous.map_or(AlertState::Inactive, |p| p.state);
    let mut next = previous.cloned().unwrap_or_else(|| AlertInstance {
        labels: labels.clone(),
        annotations: BTreeMap::new(),
        state: AlertState::Inactive,
        value: None,
        active_at_ms: None,
        fired_at_ms: None,
        resolved_at_ms: None,
        last_bad_ms: None,
        updated_at_ms: now_ms,
        event: false,
        inhibited_by: Vec::new(),
        silenced_by: Vec::new(),
    });
    let for_ms = i64::try_from(timing.for_ms).unwrap_or(i64::MAX);
    let keep_ms = i64::try_from(timing.keep_firing_for_ms).unwrap_or(i64::MAX);
    let value_changed = next.value != observation.value;
    next.value = observation.value;
    match (from, observation.verdict) {
        // A new episode, or one continuing.
        (AlertState::Inactive | AlertState::Resolved | AlertState::NoData, Verdict::Bad { since_ms }) => {
            // After a gap without data nothing says how long it has been bad: `for` counts
            // from now, never from evidence that was not looked at (a cut-off prober's streak).
            let since_ms = if from == AlertState::NoData { None } else { since_ms };
            let active_at = since_ms.unwrap_or(now_ms).min(now_ms);
            next.active_at_ms = Some(active_at);
            next.fired_at_ms = None;
            next.resolved_at_ms = None;
            next.last_bad_ms = Some(now_ms);
            next.state = if now_ms.saturating_sub(active_at) >= for_ms {
                next.fired_at_ms = Some(now_ms);
                AlertState::Firing
            } else {
                AlertState::Pending
            };
        }
        (AlertState::Pending, Verdict::Bad { .. }) => {
            next.last_bad_ms = Some(now_ms);
            let active_at = next.active_at_ms.unwrap_or(now_ms);
            if now_ms.saturating_sub(active_at) >= for_ms {
                next.state = AlertState::Firing;
                next.fired_at_ms = Some(now_ms);
            }
        }
        (AlertState::Pending, Verdict::Good) => next.state = AlertState::Inactive,
        (AlertState::Pending, Verdict::NoData) => {
            next.state = AlertState::NoData;
            next.active_at_ms = None;
        }
        (AlertState::Firing, Verdict::Bad { .. }) => next.last_bad_ms = Some(now_ms),
        (AlertState::Firing, Verdict::Good) => {
            let last_bad = next.last_bad_ms.unwrap_or(now_ms);
            if now_ms.saturating_sub(last_bad) >= keep_ms {
                next.state = AlertState::Resolved;
                next.resolved_at_ms = Some(now_ms);
            }
        }
        // No data never resolves a firing alert, and an unconfirmed recovery neither.
        (AlertState::Firing, Verdict::NoData | Verdict::Unsure) => {}
        (AlertState::Pending, Verdict::Unsure) => {}
        (AlertState::NoData, Verdict::Good) => next.state = AlertState::Inactive,
        (AlertState::NoData, Verdict::NoData | Verdict::Unsure) => {}
        (AlertState::Inactive, Verdict::Good | Verdict::Unsure | Verdict::NoData) => {
            // Nothing to keep: an instance is only created by a bad observation.
            return Step { instance: None, transition: None };
        }
        (AlertState::Resolved, Verdict::Good | Verdict::Unsure | Verdict::NoData) => {
            let resolved_at = next.resolved_at_ms.unwrap_or(now_ms);
            let retention = i64::try_from(timing.resolved_retention_ms).unwrap_or(i64::MAX);
            if now_ms.saturating_sub(resolved_at) >= retention {
                return Step { instance: None, transition: None };
            }
        }
    }
    let changed = next.state != from;
    if changed || value_changed || previous.is_none() {
        next.annotations = annotations(next.value);
    }
    if changed {
        next.updated_at_ms = now_ms;
    }
    let transition = changed.then(|| AlertTransition::of(&next, from, now_ms));
    let instance = (next.state != AlertState::Inactive).then_some(next);
    Step { instance, transition }
}

/// A one-shot event (a prober joined, a check recovered): fires once at `at_ms`.
pub fn event(labels: &LabelSet, annotations: BTreeMap<String, String>, value: Option<f64>, at_ms: i64) -> Step {
    let instance = AlertInstance {
        labels: labels.clone(),
        annotations,
        state: AlertState::Firing,
        value,
        active_at_ms: Some(at_ms),
        fired_at_ms: Some(at_ms),
        resolved_at_ms: None,
        last_bad_ms: Some(at_ms),
        updated_at_ms: at_ms,
        event: true,
        inhibited_by: Vec::new(),
        silenced_by: Vec::new(),
    };
    let transition = AlertTransition::of(&instance, AlertState::Inactive, at_ms);
    Step { instance: Some(instance), transition: Some(transition) }
}

/// An event's instance once it has been listed long enough: resolved quietly (its transition
/// says `event`, so no receiver hears of it).
pub fn expire_event(instance: &AlertInstance, now_ms: i64) -> Option<Step> {
    let fired = instance.fired_at_ms.unwrap_or(instance.updated_at_ms);
    let retention = i64::try_from(EVENT_RETENTION_MS).unwrap_or(i64::MAX);
    if !instance.event || instance.state != AlertState::Firing || now_ms.saturating_sub(fired) < retention {
        return None;
    }
    let mut resolved = instance.clone();
    resolved.state = AlertState::Resolved;
    resolved.resolved_at_ms = Some(now_ms);
    resolved.updated_at_ms = now_ms;
    let transition = AlertTransition::of(&resolved, AlertState::Firing, now_ms);
    Some(Step { instance: None, transition: Some(transition) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alert::state::Notify;

    const BAD: Verdict = Verdict::Bad { since_ms: None };

    fn labels() -> LabelSet {
        LabelSet::new().with("alertname", "ServiceDown").with("endpoint", "eu-west")
    }

    fn annotations(value: Option<f64>) -> BTreeMap<String, String> {
        BTreeMap::from([("summary".to_string(), format!("value {value:?}"))])
    }

    /// Runs `verdicts` at the given times and returns the states after each.
    fn run(timing: Timing, steps: &[(i64, Verdict)]) -> Vec<(AlertState, Option<AlertTransition>)> {
        let mut current: Option<AlertInstance> = None;
        steps
            .iter()
            .map(|(at, verdict)| {
                let obs = Observation { verdict: *verdict, value: Some(1.0) };
                let step = step(current.as_ref(), &labels(), annotations, obs, &timing, *at);
                current = step.instance.clone();
                (current.as_ref().map_or(AlertState::Inactive, |i| i.state), step.transition)
            })
            .collect()
    }

    fn states(timing: Timing, steps: &[(i64, Verdict)]) -> Vec<AlertState> {
        run(timing, steps).into_iter().map(|(s, _)| s).collect()
    }

    use AlertState::*;

    #[test]
    fn for_counts_from_the_first_bad_observation() {
        let timing = Timing::new(60_000, 0);
        // The first failing probe started at 1 000; the evaluator noticed at 1 500.
        let since = Verdict::Bad { since_ms: Some(1_000) };
        let got = states(timing, &[(1_500, since), (60_999, since), (61_000, since), (62_000, since)]);
        assert_eq!(got, [Pending, Pending, Firing, Firing]);
        let fired = run(timing, &[(1_500, since), (61_000, since)]);
        let transition = fired[1].1.clone().unwrap();
        assert_eq!((transition.from, transition.to, transition.fired_at_ms), (Pending, Firing, Some(61_000)));
        assert_eq!(transition.active_at_ms, Some(1_000));
        assert_eq!(transition.notify(), Some(Notify::Fire));
    }

    #[test]
    fn zero_for_fires_at_once_and_an_old_streak_fires_at_once() {
        assert_eq!(states(Timing::new(0, 0), &[(5, BAD)]), [Firing]);
        let old = Verdict::Bad { since_ms: Some(0) };
        assert_eq!(states(Timing::new(60_000, 0), &[(90_000, old)]), [Firing]);
        // A since in the future (clock skew) counts from now.
        let future = Verdict::Bad { since_ms: Some(10_000) };
        assert_eq!(
            states(Timing::new(60_000, 0), &[(5_000, future), (64_999, future), (65_000, future)]),
            [Pending, Pending, Firing]
        );
    }

    #[test]
    fn one_good_evaluation_resets_pending() {
        let got = states(Timing::new(60_000, 0), &[(0, BAD), (30_000, Verdict::Good), (40_000, BAD), (99_000, BAD)]);
        assert_eq!(got, [Pending, Inactive, Pending, Pending], "the timer restarted at 40 000");
    }

    #[test]
    fn keep_firing_for_damps_flapping_and_confirms_recovery() {
        let timing = Timing::new(0, 30_000);
        let got = states(
            timing,
            &[
                (0, BAD),
                (10_000, Verdict::Good),
                (20_000, BAD),
                (40_000, Verdict::Good),
                (49_999, Verdict::Good),
                (50_000, Verdict::Good),
            ],
        );
        assert_eq!(got, [Firing, Firing, Firing, Firing, Firing, Resolved]);
        let transitions: Vec<_> =
            run(timing, &[(0, BAD), (30_000, Verdict::Good)]).into_iter().filter_map(|(_, t)| t).collect();
        assert_eq!(transitions.len(), 2);
        assert_eq!(transitions[1].notify(), Some(Notify::Resolve));
        assert_eq!(transitions[1].resolved_at_ms, Some(30_000));
    }

    #[test]
    fn no_data_is_neither_down_nor_healthy() {
        let timing = Timing::new(60_000, 0);
        // Firing stays firing through no data; an unconfirmed recovery neither resolves.
        let got =
            states(Timing::new(0, 0), &[(0, BAD), (1, Verdict::NoData), (2, Verdict::Unsure), (3, Verdict::Good)]);
        assert_eq!(got, [Firing, Firing, Firing, Resolved]);
        // Pending through no data: the timer is cleared, not counted as bad.
        let got = states(timing, &[(0, BAD), (30_000, Verdict::NoData), (70_000, BAD), (129_999, BAD), (130_000, BAD)]);
        assert_eq!(got, [Pending, NoData, Pending, Pending, Firing]);
        // Back from no data with an old streak (a prober that was cut off): `for` starts now.
        let old = Verdict::Bad { since_ms: Some(0) };
        let got = states(timing, &[(0, BAD), (30_000, Verdict::NoData), (90_000, old), (149_999, old), (150_000, old)]);
        assert_eq!(got, [Pending, NoData, Pending, Pending, Firing]);
        // Nothing bad seen: no instance at all.
        assert_eq!(states(timing, &[(0, Verdict::NoData), (1, Verdict::Good)]), [Inactive, Inactive]);
        assert!(run(timing, &[(0, Verdict::NoData)])[0].1.is_none());
    }

    #[test]
    fn resolved_is_kept_then_dropped_and_a_new_episode_starts_over() {
        let timing = Timing::new(0, 0);
        let keep = RESOLVED_RETENTION_MS as i64;
        let got = states(
            timing,
            &[(0, BAD), (1_000, Verdict::Good), (1_000 + keep - 1, Verdict::Good), (1_000 + keep, Verdict::Good)],
        );
        assert_eq!(got, [Firing, Resolved, Resolved, Inactive]);
        let again = run(Timing::new(10_000, 0), &[(0, BAD), (10_000, BAD), (11_000, Verdict::Good), (12_000, BAD)]);
        assert_eq!(again[3].0, Pending);
        let t = again[3].1.clone().unwrap();
        assert_eq!((t.from, t.active_at_ms, t.fired_at_ms, t.resolved_at_ms), (Resolved, Some(12_000), None, None));
    }

    #[test]
    fn annotations_follow_the_value() {
        let timing = Timing::new(0, 0);
        let first = step(None, &labels(), annotations, Observation { verdict: BAD, value: Some(2.0) }, &timing, 0);
        let instance = first.instance.unwrap();
        assert_eq!(instance.annotations["summary"], "value Some(2.0)");
        let second =
            step(Some(&instance), &labels(), annotations, Observation { verdict: BAD, value: Some(3.0) }, &timing, 1);
        assert!(second.transition.is_none());
        assert_eq!(second.instance.unwrap().annotations["summary"], "value Some(3.0)");
    }

    #[test]
    fn events_fire_once_and_expire_quietly() {
        let fired = event(&labels(), BTreeMap::new(), None, 1_000);
        let instance = fired.instance.unwrap();
        assert_eq!(fired.transition.unwrap().notify(), Some(Notify::Fire));
        assert!(expire_event(&instance, 1_000 + EVENT_RETENTION_MS as i64 - 1).is_none());
        let gone = expire_event(&instance, 1_000 + EVENT_RETENTION_MS as i64).unwrap();
        assert!(gone.instance.is_none());
        let t = gone.transition.unwrap();
        assert_eq!((t.from, t.to), (Firing, Resolved));
        assert_eq!(t.notify(), None, "an event's end is never notified");
    }
}
