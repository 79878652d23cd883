//! Alertmanager's webhook payload, `"version": "4"`, as Alertmanager 0.25 sends it: a firing
//! alert's `endsAt` is zero, `truncatedAlerts` counts what `max_alerts` left out.

use serde_json::{json, Value};

use crate::{rfc3339, Notification};

/// Go's zero time, which Alertmanager sends as a firing alert's `endsAt`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn payload(notification: &Notification, max_alerts: usize) -> Value {
    let shown = if max_alerts == 0 { notification.alerts.len() } else { max_alerts.min(notification.alerts.len()) };
    let alerts: Vec<Value> = notification.alerts[..shown]
        .iter()
        .map(|a| {
            json!({
                "status": if a.firing { "firing" } else { "resolved" },
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at_ms),
                "endsAt": a.ends_at_ms.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
                "generatorURL": format!("{}/api/v1/alerts", notification.external_url),
                "fingerprint": a.fingerprint.to_string(),
            })
        })
        .collect();
    json!({
        "receiver": notification.receiver,
        "status": notification.status(),
        "alerts": alerts,
        "groupLabels": notification.group_labels,
        "commonLabels": notification.common_labels(),
        "commonAnnotations": notification.common_annotations(),
        "externalURL": notification.external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": notification.alerts.len() - shown,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn the_version_4_payload() {
        let firing = notice("eu-west", true);
        let body = payload(&group(vec![firing.clone(), notice("ap", false)]), 0);
        let expected = json!({
            "receiver": "critical",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "ServiceDown", "endpoint": "eu-west", "region": "eu-west", "severity": "critical"},
                    "annotations": {"summary": "eu-west is unreachable from 4 regions", "runbook_url": "docs/runbooks/service-down.md"},
                    "startsAt": "2026-05-28T20:26:40.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://mixmon-query:8090/api/v1/alerts",
                    "fingerprint": firing.fingerprint.to_string(),
                },
                {
                    "status": "resolved",
                    "labels": {"alertname": "ServiceDown", "endpoint": "ap", "region": "ap", "severity": "critical"},
                    "annotations": {"summary": "ap is unreachable from 4 regions", "runbook_url": "docs/runbooks/service-down.md"},
                    "startsAt": "2026-05-28T20:26:40.000Z",
                    "endsAt": "2026-05-28T20:28:40.000Z",
                    "generatorURL": "http://mixmon-query:8090/api/v1/alerts",
                    "fingerprint": notice("ap", false).fingerprint.to_string(),
                },
            ],
            "groupLabels": {"alertname": "ServiceDown"},
            "commonLabels": {"alertname": "ServiceDown", "severity": "critical"},
            "commonAnnotations": {"runbook_url": "docs/runbooks/service-down.md"},
            "externalURL": "http://mixmon-query:8090",
            "version": "4",
            "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ServiceDown\"}",
            "truncatedAlerts": 0,
        });
        assert_eq!(body, expected);
        let truncated = payload(&group(vec![notice("a", true), notice("b", true), notice("c", true)]), 2);
        assert_eq!(
            (truncated["alerts"].as_array().unwrap().len(), truncated["truncatedAlerts"].as_u64()),
            (2, Some(1))
        );
    }
}
