//! The hand-over between alert rules and notifications: the state of one alert instance and
//! the [`AlertTransition`]s the evaluator emits, one typed stream that the notifier, the
//! history and the Alertmanager-compatible API all read. Everything here is plain data with
//! serde, so the store can keep it and every replica reads the same thing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::labels::{Fingerprint, LabelSet, ALERTNAME, SEVERITY};

/// Where an alert instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold (an instance in this state is not kept).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    Firing,
    /// Was firing and has recovered; kept a while so clients see the resolve.
    Resolved,
    /// The rule's inputs have no data for this instance: neither down nor healthy.
    NoData,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::NoData => "no_data",
        }
    }
}

/// Routing class of an alert, from its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "critical" => Some(Severity::Critical),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One alert instance: a rule applied to one scope instance (an endpoint, a region, a pod).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInstance {
    /// `alertname`, `severity`, the rule's labels and the instance's scope labels.
    pub labels: LabelSet,
    /// Rendered at the last evaluation that changed the value or the state.
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The rule's value at the last evaluation; `None` without data.
    pub value: Option<f64>,
    /// The first bad observation of the current episode (what `for` counts from).
    pub active_at_ms: Option<i64>,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    /// The last evaluation at which the condition held (what `keep_firing_for` counts from).
    pub last_bad_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// A one-shot event (a prober joined, a check recovered): it fires once and its end is
    /// never notified.
    #[serde(default)]
    pub event: bool,
    /// The firing alerts that mute this one (inhibition), as the evaluator last found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibited_by: Vec<Fingerprint>,
    /// The silences that mute it, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silenced_by: Vec<String>,
}

impl AlertInstance {
    /// An instance that fired at `fired_at_ms` (active since then), not muted: a starting
    /// point for tests, fixtures and events.
    pub fn firing(labels: LabelSet, fired_at_ms: i64) -> AlertInstance {
        AlertInstance {
            labels,
            annotations: BTreeMap::new(),
            state: AlertState::Firing,
            value: None,
            active_at_ms: Some(fired_at_ms),
            fired_at_ms: Some(fired_at_ms),
            resolved_at_ms: None,
            last_bad_ms: Some(fired_at_ms),
            updated_at_ms: fired_at_ms,
            event: false,
            inhibited_by: Vec::new(),
            silenced_by: Vec::new(),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.labels.fingerprint()
    }

    pub fn alertname(&self) -> &str {
        self.labels.get(ALERTNAME)
    }

    pub fn severity(&self) -> Option<Severity> {
        Severity::parse(self.labels.get(SEVERITY))
    }

    /// Muted by an inhibition or a silence: shown, not notified.
    pub fn is_muted(&self) -> bool {
        !self.inhibited_by.is_empty() || !self.silenced_by.is_empty()
    }
}

/// What a notifier does with a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Page / message: the alert started firing (or an event happened).
    Fire,
    /// The firing alert recovered: resolve it wherever it was sent.
    Resolve,
}

/// One change of one alert instance's state, as recorded in the history and handed to the
/// notifier. `at_ms` is the evaluation time that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTransition {
    pub fingerprint: Fingerprint,
    pub labels: LabelSet,
    pub annotations: BTreeMap<String, String>,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub at_ms: i64,
    pub active_at_ms: Option<i64>,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    #[serde(default)]
    pub event: bool,
}

impl AlertTransition {
    pub fn of(instance: &AlertInstance, from: AlertState, at_ms: i64) -> AlertTransition {
        AlertTransition {
            fingerprint: instance.fingerprint(),
            labels: instance.labels.clone(),
            annotations: instance.annotations.clone(),
            from,
            to: instance.state,
            value: instance.value,
            at_ms,
            active_at_ms: instance.active_at_ms,
            fired_at_ms: instance.fired_at_ms,
            resolved_at_ms: instance.resolved_at_ms,
            event: instance.event,
        }
    }

    pub fn alertname(&self) -> &str {
        self.labels.get(ALERTNAME)
    }

    pub fn severity(&self) -> Option<Severity> {
        Severity::parse(self.labels.get(SEVERITY))
    }

    /// Whether, and how, receivers hear of this transition: every start of firing, and the
    /// end of every firing that is not a one-shot event.
    pub fn notify(&self) -> Option<Notify> {
        match (self.from, self.to) {
            (from, AlertState::Firing) if from != AlertState::Firing => Some(Notify::Fire),
            (AlertState::Firing, AlertState::Resolved) if !self.event => Some(Notify::Resolve),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn transition(from: AlertState, to: AlertState, event: bool) -> AlertTransition {
        AlertTransition {
            fingerprint: Fingerprint(1),
            labels: LabelSet::new().with(ALERTNAME, "X").with(SEVERITY, "critical"),
            annotations: BTreeMap::new(),
            from,
            to,
            value: Some(1.0),
            at_ms: 10,
            active_at_ms: Some(5),
            fired_at_ms: None,
            resolved_at_ms: None,
            event,
        }
    }

    #[test]
    fn what_reaches_receivers() {
        use AlertState::*;
        let cases = [
            (Inactive, Pending, false, None),
            (Pending, Firing, false, Some(Notify::Fire)),
            (Inactive, Firing, false, Some(Notify::Fire)),
            (NoData, Firing, false, Some(Notify::Fire)),
            (Firing, Resolved, false, Some(Notify::Resolve)),
            (Firing, Resolved, true, None),
            (Inactive, Firing, true, Some(Notify::Fire)),
            (Pending, Inactive, false, None),
            (Pending, NoData, false, None),
            (Firing, Firing, false, None),
        ];
        for (from, to, event, expected) in cases {
            assert_eq!(transition(from, to, event).notify(), expected, "{from:?} -> {to:?} event={event}");
        }
        let t = transition(Pending, Firing, false);
        assert_eq!(t.alertname(), "X");
        assert_eq!(t.severity(), Some(Severity::Critical));
    }

    #[test]
    fn transitions_survive_json() {
        let t = transition(AlertState::Pending, AlertState::NoData, false);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""to":"no_data""#), "{json}");
        assert_eq!(serde_json::from_str::<AlertTransition>(&json).unwrap(), t);
    }
}
