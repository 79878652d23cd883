//! What each receiver is sent, built from alerts as the evaluator's transitions describe them:
//! PagerDuty Events API v2 (one incident per alert instance and episode), Slack (blocks with
//! a fallback `text`), and Alertmanager's webhook payload (version 4, as Alertmanager 0.25
//! sends it). Pure functions of their input; sending, retries and the outbox come next
//! (`shared/research/anchors-alerting.md` §4 has the documented shapes these follow).

pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use mixmon_model::alert::{AlertState, AlertTransition, Fingerprint, LabelSet, ALERTNAME, SEVERITY};

/// One alert as a notification shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub labels: LabelSet,
    pub annotations: BTreeMap<String, String>,
    pub fingerprint: Fingerprint,
    pub firing: bool,
    /// When it started firing (its episode's identity, with the fingerprint).
    pub starts_at_ms: i64,
    /// When it resolved, for resolved ones.
    pub ends_at_ms: Option<i64>,
    pub value: Option<f64>,
}

impl Notice {
    /// The notice of a transition to firing or to resolved; `None` for the others.
    pub fn of(transition: &AlertTransition) -> Option<Notice> {
        let firing = match transition.to {
            AlertState::Firing => true,
            AlertState::Resolved => false,
            _ => return None,
        };
        Some(Notice {
            labels: transition.labels.clone(),
            annotations: transition.annotations.clone(),
            fingerprint: transition.fingerprint,
            firing,
            starts_at_ms: transition.fired_at_ms.or(transition.active_at_ms).unwrap_or(transition.at_ms),
            ends_at_ms: (!firing).then(|| transition.resolved_at_ms.unwrap_or(transition.at_ms)),
            value: transition.value,
        })
    }

    pub fn alertname(&self) -> &str {
        self.labels.get(ALERTNAME)
    }

    pub fn severity(&self) -> &str {
        self.labels.get(SEVERITY)
    }

    /// The labels that tell this alert apart from others of its rule, for titles.
    pub fn instance_text(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for key in ["endpoint", "probe_region", "region", "node", "mount", "pod", "prober"] {
            let value = self.labels.get(key);
            // A regional endpoint is named after its region: say it once.
            if !value.is_empty() && !parts.contains(&value) {
                parts.push(value);
            }
        }
        parts.join(" ")
    }
}

/// A notification to one receiver: the alerts of one group, as routing grouped them.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// Alertmanager's group key (`{}/{route matchers}:{group labels}`).
    pub group_key: String,
    pub group_labels: LabelSet,
    pub alerts: Vec<Notice>,
    /// Where people open mixmon (the query service's status page, the alerts API).
    pub external_url: String,
    /// The Grafana dashboard linked from pages.
    pub dashboard_url: Option<String>,
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &Notice> {
        self.alerts.iter().filter(|a| a.firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Notice> {
        self.alerts.iter().filter(|a| !a.firing)
    }

    /// `firing` while any alert of the group fires.
    pub fn status(&self) -> &'static str {
        if self.firing().next().is_some() {
            "firing"
        } else {
            "resolved"
        }
    }

    /// The labels every alert of the group shares.
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| a.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
            .into_iter()
            .collect()
    }

    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| a.annotations.clone()))
    }

    /// Alertmanager's title: `[FIRING:2] ServiceDown (eu-west critical)`.
    pub fn title(&self) -> String {
        let firing = self.firing().count();
        let head = if firing > 0 { format!("[FIRING:{firing}]") } else { "[RESOLVED]".to_string() };
        let group: Vec<&str> = self.group_labels.iter().map(|(_, v)| v).filter(|v| !v.is_empty()).collect();
        if group.is_empty() {
            head
        } else {
            format!("{head} {}", group.join(" "))
        }
    }
}

fn common(maps: impl Iterator<Item = BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut maps = maps;
    let Some(mut shared) = maps.next() else { return BTreeMap::new() };
    for map in maps {
        shared.retain(|k, v| map.get(k) == Some(v));
    }
    shared
}

pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Text clipped to `max` characters, with an ellipsis when clipped.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub const T0: i64 = 1_780_000_000_000;

    pub fn notice(endpoint: &str, firing: bool) -> Notice {
        let labels = LabelSet::new()
            .with(ALERTNAME, "ServiceDown")
            .with("endpoint", endpoint)
            .with("region", endpoint)
            .with(SEVERITY, "critical");
        Notice {
            fingerprint: labels.fingerprint(),
            labels,
            annotations: BTreeMap::from([
                ("summary".to_string(), format!("{endpoint} is unreachable from 4 regions")),
                ("runbook_url".to_string(), "docs/runbooks/service-down.md".to_string()),
            ]),
            firing,
            starts_at_ms: T0,
            ends_at_ms: (!firing).then_some(T0 + 120_000),
            value: Some(4.0),
        }
    }

    pub fn group(alerts: Vec<Notice>) -> Notification {
        Notification {
            receiver: "critical".into(),
            group_key: r#"{}/{severity="critical"}:{alertname="ServiceDown"}"#.into(),
            group_labels: LabelSet::new().with(ALERTNAME, "ServiceDown"),
            alerts,
            external_url: "http://mixmon-query:8090".into(),
            dashboard_url: Some("https://grafana.aimixer.com/d/mixmon-overview".into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn titles_common_labels_and_status() {
        let g = group(vec![notice("eu-west", true), notice("ap", true), notice("edge", false)]);
        assert_eq!(g.title(), "[FIRING:2] ServiceDown");
        assert_eq!(g.status(), "firing");
        assert_eq!(g.common_labels().to_string(), r#"{alertname="ServiceDown", severity="critical"}"#);
        assert_eq!(g.common_annotations().len(), 1, "the runbook is common, the summary is not");
        let done = group(vec![notice("edge", false)]);
        assert_eq!((done.title().as_str(), done.status()), ("[RESOLVED] ServiceDown", "resolved"));
        assert_eq!(clip("abcdef", 4), "abc…");
    }

    #[test]
    fn notices_come_from_firing_and_resolved_transitions_only() {
        let n = notice("edge", true);
        let instance = mixmon_model::alert::AlertInstance {
            labels: n.labels.clone(),
            annotations: n.annotations.clone(),
            state: AlertState::Firing,
            value: Some(4.0),
            active_at_ms: Some(T0 - 60_000),
            fired_at_ms: Some(T0),
            resolved_at_ms: None,
            last_bad_ms: Some(T0),
            updated_at_ms: T0,
            event: false,
            inhibited_by: Vec::new(),
            silenced_by: Vec::new(),
        };
        let fired = AlertTransition::of(&instance, AlertState::Pending, T0);
        assert_eq!(Notice::of(&fired), Some(n));
        let mut pending = instance.clone();
        pending.state = AlertState::Pending;
        assert_eq!(Notice::of(&AlertTransition::of(&pending, AlertState::Inactive, T0)), None);
    }
}
