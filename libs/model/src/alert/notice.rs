//! What a notification says, as plain data: the alerts of one group as one receiver is told
//! of them. Built by the dispatcher (`dispatch`), kept in the store's outbox until sent, and
//! turned into each receiver's payload by `libs/notify`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::labels::{Fingerprint, LabelSet, ALERTNAME, SEVERITY};
use super::state::{AlertInstance, AlertState, AlertTransition};

/// One alert as a notification shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// The notice of an instance as it stands: firing, or resolved (at its resolve time).
    pub fn of_instance(instance: &AlertInstance) -> Notice {
        let firing = instance.state == AlertState::Firing;
        let at = instance.updated_at_ms;
        Notice {
            labels: instance.labels.clone(),
            annotations: instance.annotations.clone(),
            fingerprint: instance.fingerprint(),
            firing,
            starts_at_ms: instance.fired_at_ms.or(instance.active_at_ms).unwrap_or(at),
            ends_at_ms: (!firing).then(|| instance.resolved_at_ms.unwrap_or(at)),
            value: instance.value,
        }
    }

    /// This notice, resolved at `at_ms` (an alert that vanished without a resolve).
    pub fn resolved(&self, at_ms: i64) -> Notice {
        Notice { firing: false, ends_at_ms: Some(self.ends_at_ms.unwrap_or(at_ms)), ..self.clone() }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
