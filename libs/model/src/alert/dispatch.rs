//! Which alerts each receiver is told of, and when: Alertmanager's grouping and timers
//! (`dispatch/dispatch.go`, the notification log's `needsUpdate`), with what the users of the
//! classic pipeline asked for instead (`shared/research/anchors-alerting.md` §7):
//!
//! - a critical alert joining a group that was already notified, or a notified critical alert
//!   resolving, goes out at once, not at the next `group_interval`;
//! - a resolve is owed for every firing alert a receiver was told of, and is never muted: an
//!   alert silenced or inhibited after it was sent still gets its resolve, and one that
//!   vanishes from the store (its rule removed) resolves instead of being forgotten;
//! - a one-shot event is sent once and never resolved.
//!
//! The state of each group (what was last sent, when) is plain data that the store keeps, so a
//! restarted or new leader neither repeats nor forgets a notification.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::labels::{Fingerprint, LabelSet};
use super::notice::{Notice, Notification};
use super::state::{AlertInstance, AlertState, Severity};

/// A route's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTiming {
    pub wait_ms: u64,
    pub interval_ms: u64,
    pub repeat_ms: u64,
}

/// One group as routing formed it at this evaluation: a receiver, its group key and labels, and
/// the alerts in it now (in any state; the dispatcher reads what it needs).
#[derive(Debug, Clone)]
pub struct GroupInput<'a> {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: LabelSet,
    pub timing: GroupTiming,
    /// A mute time interval is in force (or an active one is not): nothing is sent now.
    pub time_muted: bool,
    pub alerts: Vec<&'a AlertInstance>,
}

/// What was last sent to one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: LabelSet,
    pub timing: GroupTiming,
    pub created_ms: i64,
    pub last_flush_ms: Option<i64>,
    /// The firing alerts the receiver was told of: a resolve is owed for each.
    pub notified: Vec<Notice>,
    /// One-shot events already sent, by fingerprint and start: never sent twice.
    #[serde(default)]
    pub events_sent: Vec<(Fingerprint, i64)>,
}

impl GroupState {
    pub fn id(&self) -> String {
        group_id(&self.receiver, &self.group_key)
    }
}

/// A group's identity in the store: its receiver and group key.
pub fn group_id(receiver: &str, group_key: &str) -> String {
    format!("{receiver}|{group_key}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushReason {
    /// The group's first notification, after `group_wait`.
    New,
    /// Alerts joined or resolved, after `group_interval` (at once when critical).
    Changed,
    /// Nothing changed; still firing after `repeat_interval`.
    Repeat,
}

/// One notification to send now.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub reason: FlushReason,
    pub notification: Notification,
    /// The alerts that are new or resolved in this notification (what per-alert receivers,
    /// such as PagerDuty, send; a repeat has none).
    pub changed: Vec<Fingerprint>,
}

/// What one dispatch step decided: the notifications to send and the group states to keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub flushes: Vec<Flush>,
    pub changed: Vec<GroupState>,
    pub removed: Vec<String>,
    /// The earliest moment a group not yet due will be.
    pub next_due_ms: Option<i64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.flushes.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

fn is_critical(notice: &Notice) -> bool {
    Severity::parse(notice.severity()) == Some(Severity::Critical)
}

/// One step: given the groups as stored and as routing forms them now, what to send and keep.
pub fn plan(states: &BTreeMap<String, GroupState>, inputs: &[GroupInput<'_>], now_ms: i64) -> Plan {
    let mut plan = Plan::default();
    let mut seen = std::collections::BTreeSet::new();
    for input in inputs {
        let id = group_id(&input.receiver, &input.group_key);
        seen.insert(id.clone());
        step(states.get(&id), input, now_ms, &mut plan);
    }
    // Groups no alert routes to any more (the alerts vanished, or routing changed): their owed
    // resolves still go out.
    for (id, state) in states {
        if !seen.contains(id) {
            let input = GroupInput {
                receiver: state.receiver.clone(),
                group_key: state.group_key.clone(),
                group_labels: state.group_labels.clone(),
                timing: state.timing,
                time_muted: false,
                alerts: Vec::new(),
            };
            step(Some(state), &input, now_ms, &mut plan);
        }
    }
    plan
}

fn step(state: Option<&GroupState>, input: &GroupInput<'_>, now_ms: i64, plan: &mut Plan) {
    let notified: &[Notice] = state.map_or(&[], |s| &s.notified);
    let events_sent: &[(Fingerprint, i64)] = state.map_or(&[], |s| &s.events_sent);
    let episode = |a: &AlertInstance| Notice::of_instance(a);
    // What fires now and may be sent, what fires but is muted, and events not yet sent.
    let mut firing = Vec::new();
    let mut muted_firing = Vec::new();
    let mut events = Vec::new();
    let mut present_events = Vec::new();
    for alert in &input.alerts {
        if alert.state != AlertState::Firing {
            continue;
        }
        let notice = episode(alert);
        if alert.event {
            present_events.push((notice.fingerprint, notice.starts_at_ms));
            if !alert.is_muted() && !events_sent.contains(&(notice.fingerprint, notice.starts_at_ms)) {
                events.push(notice);
            }
        } else if alert.is_muted() {
            muted_firing.push(notice);
        } else {
            firing.push(notice);
        }
    }
    let same_episode = |a: &Notice, b: &Notice| a.fingerprint == b.fingerprint && a.starts_at_ms == b.starts_at_ms;
    // Resolves owed: each notified alert that no longer fires in the same episode.
    let mut resolves = Vec::new();
    let mut still_owed = Vec::new();
    for sent in notified {
        if firing.iter().chain(&muted_firing).any(|f| same_episode(f, sent)) {
            still_owed.push(sent.clone());
            continue;
        }
        let resolved = input
            .alerts
            .iter()
            .find(|a| a.state == AlertState::Resolved && a.fingerprint() == sent.fingerprint)
            .map(|a| episode(a))
            .filter(|r| r.starts_at_ms == sent.starts_at_ms)
            .unwrap_or_else(|| sent.resolved(now_ms));
        resolves.push(resolved);
    }
    let new_firing: Vec<&Notice> =
        firing.iter().filter(|f| !notified.iter().any(|n| same_episode(n, f))).chain(events.iter()).collect();
    let changed: Vec<Fingerprint> =
        new_firing.iter().map(|n| n.fingerprint).chain(resolves.iter().map(|r| r.fingerprint)).collect();

    let Some(state) = state else {
        // A new group: only once there is something to send.
        if new_firing.is_empty() {
            return;
        }
        let fresh = GroupState {
            receiver: input.receiver.clone(),
            group_key: input.group_key.clone(),
            group_labels: input.group_labels.clone(),
            timing: input.timing,
            created_ms: now_ms,
            last_flush_ms: None,
            notified: Vec::new(),
            events_sent: Vec::new(),
        };
        let due = now_ms.saturating_add(ms(input.timing.wait_ms));
        if due <= now_ms && !input.time_muted {
            flush(&fresh, input, FlushReason::New, firing, events, resolves, changed, present_events, now_ms, plan);
        } else {
            if !input.time_muted {
                note_due(plan, due);
            }
            plan.changed.push(fresh);
        }
        return;
    };

    let (reason, due) = match state.last_flush_ms {
        None => (FlushReason::New, state.created_ms.saturating_add(ms(state.timing.wait_ms))),
        Some(last) if !changed.is_empty() => {
            let urgent = new_firing.iter().copied().chain(&resolves).any(is_critical);
            (FlushReason::Changed, if urgent { now_ms } else { last.saturating_add(ms(input.timing.interval_ms)) })
        }
        Some(last) if !firing.is_empty() => (FlushReason::Repeat, last.saturating_add(ms(input.timing.repeat_ms))),
        Some(_) => {
            // Nothing to send, nothing owed: the group ends once no alert of it is left.
            let events_kept: Vec<_> = events_sent.iter().filter(|e| present_events.contains(e)).copied().collect();
            if still_owed.is_empty() && events_kept.is_empty() && muted_firing.is_empty() {
                plan.removed.push(state.id());
            } else if events_kept.len() != events_sent.len() || still_owed.len() != notified.len() {
                plan.changed.push(GroupState { notified: still_owed, events_sent: events_kept, ..state.clone() });
            }
            return;
        }
    };
    if reason == FlushReason::New && firing.is_empty() && events.is_empty() {
        // Everything that was waiting out group_wait went away before it was due: never sent.
        plan.removed.push(state.id());
        return;
    }
    if due > now_ms || input.time_muted {
        if !input.time_muted {
            note_due(plan, due);
        }
        return;
    }
    let mut state = state.clone();
    state.notified = still_owed.into_iter().filter(|n| muted_firing.iter().any(|m| same_episode(m, n))).collect();
    flush(&state, input, reason, firing, events, resolves, changed, present_events, now_ms, plan);
}

#[allow(clippy::too_many_arguments)] // the parts of one step, assembled once
fn flush(
    state: &GroupState,
    input: &GroupInput<'_>,
    reason: FlushReason,
    firing: Vec<Notice>,
    events: Vec<Notice>,
    resolves: Vec<Notice>,
    changed: Vec<Fingerprint>,
    present_events: Vec<(Fingerprint, i64)>,
    now_ms: i64,
    plan: &mut Plan,
) {
    let mut next = state.clone();
    // Muted alerts that were sent are still owed their resolve (kept by the caller); the
    // firing ones sent now join them.
    next.notified.extend(firing.iter().cloned());
    next.events_sent.retain(|e| present_events.contains(e));
    next.events_sent.extend(events.iter().map(|e| (e.fingerprint, e.starts_at_ms)));
    next.last_flush_ms = Some(now_ms);
    next.timing = input.timing;
    next.group_labels = input.group_labels.clone();
    let alerts: Vec<Notice> = firing.into_iter().chain(events).chain(resolves).collect();
    plan.flushes.push(Flush {
        reason,
        notification: Notification {
            receiver: input.receiver.clone(),
            group_key: input.group_key.clone(),
            group_labels: input.group_labels.clone(),
            alerts,
            external_url: String::new(),
            dashboard_url: None,
        },
        changed,
    });
    if next.notified.is_empty() && next.events_sent.is_empty() {
        // Everything sent is resolved: the group ends, as Alertmanager's does.
        plan.removed.push(next.id());
    } else {
        plan.changed.push(next);
    }
}

fn note_due(plan: &mut Plan, due: i64) {
    plan.next_due_ms = Some(plan.next_due_ms.map_or(due, |d| d.min(due)));
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Applies a plan's group changes to the states it was computed from (what the store will
/// hold once the plan is committed).
pub fn apply(states: &mut BTreeMap<String, GroupState>, plan: &Plan) {
    for removed in &plan.removed {
        states.remove(removed);
    }
    for changed in &plan.changed {
        states.insert(changed.id(), changed.clone());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alert::labels::{ALERTNAME, SEVERITY};

    const T0: i64 = 1_000_000;
    const CRITICAL: GroupTiming = GroupTiming { wait_ms: 0, interval_ms: 30_000, repeat_ms: 3_600_000 };
    const WARNING: GroupTiming = GroupTiming { wait_ms: 10_000, interval_ms: 60_000, repeat_ms: 4 * 3_600_000 };

    fn alert(endpoint: &str, severity: &str, state: AlertState, fired_at: i64) -> AlertInstance {
        let labels = LabelSet::new().with(ALERTNAME, "ServiceDown").with("endpoint", endpoint).with(SEVERITY, severity);
        AlertInstance {
            state,
            active_at_ms: Some(fired_at - 60_000),
            resolved_at_ms: (state == AlertState::Resolved).then_some(fired_at + 5_000),
            ..AlertInstance::firing(labels, fired_at)
        }
    }

    fn input<'a>(timing: GroupTiming, alerts: &'a [AlertInstance]) -> GroupInput<'a> {
        GroupInput {
            receiver: "critical".into(),
            group_key: r#"{}/{severity="critical"}:{alertname="ServiceDown"}"#.into(),
            group_labels: LabelSet::new().with(ALERTNAME, "ServiceDown"),
            timing,
            time_muted: false,
            alerts: alerts.iter().collect(),
        }
    }

    /// Runs `plan` and applies it, as the notifier does after committing it.
    fn run(states: &mut BTreeMap<String, GroupState>, alerts: &[AlertInstance], timing: GroupTiming, now: i64) -> Plan {
        let inputs = if alerts.is_empty() { Vec::new() } else { vec![input(timing, alerts)] };
        let plan = plan(states, &inputs, now);
        apply(states, &plan);
        plan
    }

    fn sent(plan: &Plan) -> Vec<(String, bool)> {
        plan.flushes
            .iter()
            .flat_map(|f| f.notification.alerts.iter().map(|a| (a.labels.get("endpoint").to_string(), a.firing)))
            .collect()
    }

    #[test]
    fn a_critical_group_goes_at_once_and_a_warning_one_waits_group_wait() {
        let mut states = BTreeMap::new();
        let page = [alert("edge", "critical", AlertState::Firing, T0)];
        let plan = run(&mut states, &page, CRITICAL, T0);
        assert_eq!(sent(&plan), [("edge".to_string(), true)]);
        assert_eq!(plan.flushes[0].reason, FlushReason::New);
        assert_eq!(plan.flushes[0].changed, [page[0].fingerprint()]);
        // Nothing more while nothing changes, until repeat_interval.
        assert!(run(&mut states, &page, CRITICAL, T0 + 1_000).flushes.is_empty());
        let repeat = run(&mut states, &page, CRITICAL, T0 + 3_600_000);
        assert_eq!((repeat.flushes[0].reason, repeat.flushes[0].changed.len()), (FlushReason::Repeat, 0));

        let mut states = BTreeMap::new();
        let warn = [alert("edge", "warning", AlertState::Firing, T0)];
        let waiting = run(&mut states, &warn, WARNING, T0);
        assert!(waiting.flushes.is_empty());
        assert_eq!(waiting.next_due_ms, Some(T0 + 10_000));
        assert!(run(&mut states, &warn, WARNING, T0 + 9_999).flushes.is_empty());
        assert_eq!(sent(&run(&mut states, &warn, WARNING, T0 + 10_000)), [("edge".to_string(), true)]);
    }

    #[test]
    fn a_critical_alert_joining_a_group_is_sent_at_once_a_warning_one_after_group_interval() {
        let mut states = BTreeMap::new();
        let one = [alert("edge", "critical", AlertState::Firing, T0)];
        run(&mut states, &one, CRITICAL, T0);
        let two = [one[0].clone(), alert("ap", "critical", AlertState::Firing, T0 + 2_000)];
        let plan = run(&mut states, &two, CRITICAL, T0 + 2_000);
        assert_eq!(sent(&plan), [("edge".to_string(), true), ("ap".to_string(), true)], "the whole group, as AM");
        assert_eq!(plan.flushes[0].changed, [two[1].fingerprint()], "only the new one is new");

        let mut states = BTreeMap::new();
        let one = [alert("edge", "warning", AlertState::Firing, T0)];
        run(&mut states, &one, WARNING, T0);
        run(&mut states, &one, WARNING, T0 + 10_000);
        let two = [one[0].clone(), alert("ap", "warning", AlertState::Firing, T0 + 20_000)];
        let plan = run(&mut states, &two, WARNING, T0 + 20_000);
        assert!(plan.flushes.is_empty());
        assert_eq!(plan.next_due_ms, Some(T0 + 70_000));
        assert_eq!(run(&mut states, &two, WARNING, T0 + 70_000).flushes.len(), 1);
    }

    #[test]
    fn every_sent_alert_gets_its_resolve_even_when_muted_or_gone() {
        let mut states = BTreeMap::new();
        let firing =
            [alert("edge", "critical", AlertState::Firing, T0), alert("ap", "critical", AlertState::Firing, T0)];
        run(&mut states, &firing, CRITICAL, T0);
        // `edge` is silenced: not in messages, still owed its resolve; `ap` resolves.
        let mut silenced = firing[0].clone();
        silenced.silenced_by = vec!["s1".into()];
        let step = [silenced.clone(), alert("ap", "critical", AlertState::Resolved, T0)];
        let plan = run(&mut states, &step, CRITICAL, T0 + 10_000);
        assert_eq!(sent(&plan), [("ap".to_string(), false)]);
        assert_eq!(plan.flushes[0].notification.alerts[0].ends_at_ms, Some(T0 + 5_000), "its own resolve time");
        // The silenced alert's rule is deleted: it vanishes, and resolves.
        let plan = run(&mut states, &[], CRITICAL, T0 + 20_000);
        assert_eq!(sent(&plan), [("edge".to_string(), false)]);
        assert_eq!(plan.flushes[0].notification.alerts[0].ends_at_ms, Some(T0 + 20_000));
        assert!(run(&mut states, &[], CRITICAL, T0 + 30_000).is_empty());
        assert!(states.is_empty(), "nothing owed: the group is gone");
    }

    #[test]
    fn what_was_never_sent_is_never_resolved_and_a_new_episode_is_new() {
        let mut states = BTreeMap::new();
        let warn = [alert("edge", "warning", AlertState::Firing, T0)];
        run(&mut states, &warn, WARNING, T0);
        // It resolves inside group_wait: no message at all.
        let plan = run(&mut states, &[alert("edge", "warning", AlertState::Resolved, T0)], WARNING, T0 + 5_000);
        assert!(plan.flushes.is_empty());
        assert!(states.is_empty());

        let mut states = BTreeMap::new();
        run(&mut states, &[alert("edge", "critical", AlertState::Firing, T0)], CRITICAL, T0);
        // Resolved and firing again between two steps: the old episode resolves, the new fires.
        let again = [alert("edge", "critical", AlertState::Firing, T0 + 50_000)];
        let plan = run(&mut states, &again, CRITICAL, T0 + 50_000);
        assert_eq!(sent(&plan), [("edge".to_string(), true), ("edge".to_string(), false)]);
    }

    #[test]
    fn events_go_once_and_time_mutes_hold_notifications_back() {
        let mut states = BTreeMap::new();
        let mut joined = alert("edge", "info", AlertState::Firing, T0);
        joined.event = true;
        let events = [joined];
        assert_eq!(run(&mut states, &events, CRITICAL, T0).flushes.len(), 1);
        assert!(run(&mut states, &events, CRITICAL, T0 + 1_000).flushes.is_empty(), "not twice");
        assert!(run(&mut states, &events, CRITICAL, T0 + 3_600_000).flushes.is_empty(), "not repeated");
        assert!(run(&mut states, &[], CRITICAL, T0 + 3_700_000).flushes.is_empty(), "never resolved");
        assert!(states.is_empty());

        let mut states = BTreeMap::new();
        let page = [alert("edge", "critical", AlertState::Firing, T0)];
        let mut muted = input(CRITICAL, &page);
        muted.time_muted = true;
        let plan = plan(&states, &[muted], T0);
        assert!(plan.flushes.is_empty());
        apply(&mut states, &plan);
        assert_eq!(run(&mut states, &page, CRITICAL, T0 + 1_000).flushes.len(), 1, "sent once the mute ends");
    }
}
