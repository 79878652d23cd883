//! What each receiver is sent, built from alerts as the evaluator's transitions describe them:
//! PagerDuty Events API v2 (one incident per alert instance and episode), Slack (blocks with
//! a fallback `text`), and Alertmanager's webhook payload (version 4, as Alertmanager 0.25
//! sends it). Pure functions of their input; sending, retries and the outbox come next
//! (`shared/research/anchors-alerting.md` §4 has the documented shapes these follow).

pub mod alertmanager;
pub mod email;
pub mod limit;
pub mod pagerduty;
pub mod retry;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
pub use mixmon_model::alert::{Notice, Notification};

/// Notifications to one receiver folded into one digest: every alert they name, once per
/// episode, in the latest state they give it (a storm's fire and resolve of one alert reads as
/// resolved). What a rate limit would otherwise hold back or drop.
pub fn fold<'a>(notifications: impl IntoIterator<Item = &'a Notification>) -> Option<Notification> {
    let mut notifications = notifications.into_iter().peekable();
    let first = (*notifications.peek()?).clone();
    let mut alerts: BTreeMap<(mixmon_model::alert::Fingerprint, i64), Notice> = BTreeMap::new();
    let mut order = Vec::new();
    for notification in notifications {
        for alert in &notification.alerts {
            let key = (alert.fingerprint, alert.starts_at_ms);
            if alerts.insert(key, alert.clone()).is_none() {
                order.push(key);
            }
        }
    }
    let alerts = order.into_iter().filter_map(|k| alerts.remove(&k)).collect();
    Some(Notification {
        group_key: format!("{{}}/digest:{{receiver=\"{}\"}}", first.receiver),
        group_labels: mixmon_model::alert::LabelSet::new(),
        alerts,
        ..first
    })
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
    use mixmon_model::alert::{LabelSet, ALERTNAME, SEVERITY};

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
    use mixmon_model::alert::{AlertState, AlertTransition};

    #[test]
    fn a_digest_names_every_alert_once_in_its_latest_state() {
        let first = group(vec![notice("eu-west", true), notice("ap", true)]);
        let second = group(vec![notice("eu-west", false), notice("edge", true)]);
        let digest = fold([&first, &second]).unwrap();
        let states: Vec<(&str, bool)> = digest.alerts.iter().map(|a| (a.labels.get("endpoint"), a.firing)).collect();
        assert_eq!(states, [("eu-west", false), ("ap", true), ("edge", true)]);
        assert_eq!(digest.title(), "[FIRING:2]");
        assert!(fold(std::iter::empty()).is_none());
    }

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
