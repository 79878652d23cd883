//! Alerts forwarded to an existing Alertmanager (`POST /api/v2/alerts`, a JSON array), as a
//! Prometheus client does it: every firing alert re-sent on each round with `endsAt` four
//! rounds ahead (so a stopped forwarder's alerts end by themselves, not at once), a resolved
//! one with its own end time, re-sent while it is kept. Alertmanager is stateless about its
//! clients, so nothing about forwarding needs an outbox: the next round says it all again.

use mixmon_model::alert::{AlertInstance, AlertState};
use serde_json::{json, Value};

use crate::rfc3339;

/// `endsAt` of a firing alert is this many rounds ahead.
const ROUNDS_AHEAD: i64 = 4;

/// The body for one round every `round_ms`. A muted alert (silenced or inhibited here) is sent
/// as ended: mixmon has decided nobody is to hear of it.
pub fn alerts(instances: &[AlertInstance], external_url: &str, now_ms: i64, round_ms: i64) -> Value {
    let alerts: Vec<Value> = instances
        .iter()
        .filter(|a| matches!(a.state, AlertState::Firing | AlertState::Resolved))
        .map(|a| {
            let starts = a.fired_at_ms.or(a.active_at_ms).unwrap_or(a.updated_at_ms);
            let ends = match a.state {
                AlertState::Firing if !a.is_muted() => now_ms + ROUNDS_AHEAD * round_ms,
                AlertState::Firing => now_ms,
                _ => a.resolved_at_ms.unwrap_or(a.updated_at_ms),
            };
            let labels: serde_json::Map<String, Value> =
                a.labels.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), json!(v))).collect();
            json!({
                "labels": labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(starts),
                "endsAt": rfc3339(ends.max(starts)),
                "generatorURL": format!("{external_url}/api/v1/alerts"),
            })
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::alert::{LabelSet, ALERTNAME};
    use std::collections::BTreeMap;

    fn instance(state: AlertState) -> AlertInstance {
        let labels = LabelSet::new().with(ALERTNAME, "ServiceDown").with("endpoint", "edge");
        AlertInstance {
            annotations: BTreeMap::from([("summary".to_string(), "edge down".to_string())]),
            state,
            active_at_ms: Some(0),
            resolved_at_ms: (state == AlertState::Resolved).then_some(120_000),
            updated_at_ms: 120_000,
            ..AlertInstance::firing(labels, 60_000)
        }
    }

    #[test]
    fn firing_ends_four_rounds_ahead_resolved_at_its_end_pending_not_at_all() {
        let mut muted = instance(AlertState::Firing);
        muted.silenced_by = vec!["s".into()];
        let body = alerts(
            &[instance(AlertState::Firing), instance(AlertState::Resolved), instance(AlertState::Pending), muted],
            "http://q",
            180_000,
            30_000,
        );
        let ends: Vec<&str> = body.as_array().unwrap().iter().map(|a| a["endsAt"].as_str().unwrap()).collect();
        assert_eq!(ends, ["1970-01-01T00:05:00.000Z", "1970-01-01T00:02:00.000Z", "1970-01-01T00:03:00.000Z"]);
        assert_eq!(
            body[0],
            json!({
                "labels": {"alertname": "ServiceDown", "endpoint": "edge"},
                "annotations": {"summary": "edge down"},
                "startsAt": "1970-01-01T00:01:00.000Z",
                "endsAt": "1970-01-01T00:05:00.000Z",
                "generatorURL": "http://q/api/v1/alerts",
            })
        );
    }
}
