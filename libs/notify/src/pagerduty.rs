//! PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`): one event per
//! alert instance, not per group, so a page resolves exactly when its own alert does. The
//! `dedup_key` names the instance and its episode (fingerprint and start): a new episode of
//! the same alert opens a new incident, as PagerDuty drops events for a resolved key.

use serde_json::{json, Map, Value};

use crate::{clip, rfc3339, Notice, Notification};

/// PagerDuty's limit on one event.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
const MAX_SUMMARY_CHARS: usize = 1_024;
const MAX_DEDUP_KEY_CHARS: usize = 255;

/// The instance-and-episode key a trigger and its resolve share.
pub fn dedup_key(notice: &Notice) -> String {
    clip(&format!("mixmon/{}/{}/{}", notice.alertname(), notice.fingerprint, notice.starts_at_ms), MAX_DEDUP_KEY_CHARS)
}

/// PagerDuty's severity for the alert's, unless the receiver names one.
pub fn severity(notice: &Notice, configured: Option<&str>) -> String {
    if let Some(s) = configured {
        return s.to_string();
    }
    match notice.severity() {
        "critical" => "critical",
        "warning" => "warning",
        "info" => "info",
        _ => "error",
    }
    .to_string()
}

/// One event per alert of `notification`: a trigger for each firing one, a resolve for each
/// resolved one. `routing_key` is the secret, put only into the body.
pub fn events(notification: &Notification, routing_key: &str, configured_severity: Option<&str>) -> Vec<Value> {
    notification.alerts.iter().map(|n| event(notification, n, routing_key, configured_severity)).collect()
}

fn event(notification: &Notification, notice: &Notice, routing_key: &str, configured_severity: Option<&str>) -> Value {
    if !notice.firing {
        return json!({ "routing_key": routing_key, "dedup_key": dedup_key(notice), "event_action": "resolve" });
    }
    let summary = notice.annotations.get("summary").cloned().unwrap_or_else(|| notice.labels.to_string());
    let summary = clip(&format!("{}: {}", notice.alertname(), summary), MAX_SUMMARY_CHARS);
    let endpoint = notice.labels.get("endpoint");
    let source = [endpoint, notice.labels.get("node"), notice.labels.get("pod"), notice.labels.get("prober")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("mixmon");
    let mut details = Map::new();
    details.insert("labels".into(), json!(notice.labels));
    details.insert("annotations".into(), json!(notice.annotations));
    if let Some(value) = notice.value {
        details.insert("value".into(), json!(value));
    }
    let mut payload = json!({
        "summary": summary,
        "source": source,
        "severity": severity(notice, configured_severity),
        "timestamp": rfc3339(notice.starts_at_ms),
        "class": notice.alertname(),
        "custom_details": details,
    });
    if !endpoint.is_empty() {
        payload["component"] = json!(endpoint);
    }
    let region = notice.labels.get("region");
    if !region.is_empty() {
        payload["group"] = json!(region);
    }
    let mut links = Vec::new();
    if let Some(runbook) = notice.annotations.get("runbook_url") {
        links.push(json!({ "href": runbook, "text": "Runbook" }));
    }
    if let Some(dashboard) = &notification.dashboard_url {
        links.push(json!({ "href": dashboard, "text": "Dashboard" }));
    }
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(notice),
        "payload": payload,
        "client": "mixmon",
        "client_url": notification.external_url,
        "links": links,
    });
    // Past PagerDuty's limit the details go (everything else is bounded).
    if body.to_string().len() > MAX_EVENT_BYTES {
        body["payload"]["custom_details"] = json!({ "truncated": true });
    }
    body
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn a_trigger_carries_what_the_events_api_documents() {
        let n = notice("eu-west", true);
        let key = dedup_key(&n);
        let events = events(&group(vec![n.clone()]), "e93facc04764012d7bfb002500d5d1a6", None);
        let expected = json!({
            "routing_key": "e93facc04764012d7bfb002500d5d1a6",
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": "ServiceDown: eu-west is unreachable from 4 regions",
                "source": "eu-west",
                "severity": "critical",
                "timestamp": "2026-05-28T20:26:40.000Z",
                "component": "eu-west",
                "group": "eu-west",
                "class": "ServiceDown",
                "custom_details": {
                    "labels": {"alertname": "ServiceDown", "endpoint": "eu-west", "region": "eu-west", "severity": "critical"},
                    "annotations": {"summary": "eu-west is unreachable from 4 regions", "runbook_url": "docs/runbooks/service-down.md"},
                    "value": 4.0,
                },
            },
            "client": "mixmon",
            "client_url": "http://mixmon-query:8090",
            "links": [
                {"href": "docs/runbooks/service-down.md", "text": "Runbook"},
                {"href": "https://grafana.aimixer.com/d/mixmon-overview", "text": "Dashboard"},
            ],
        });
        assert_eq!(events, [expected]);
        assert!(key.len() <= MAX_DEDUP_KEY_CHARS && key.starts_with("mixmon/ServiceDown/"));
    }

    #[test]
    fn each_instance_resolves_with_its_own_key_and_a_new_episode_gets_a_new_one() {
        let firing = notice("eu-west", true);
        let resolved = notice("eu-west", false);
        let events = events(&group(vec![notice("ap", true), resolved.clone()]), "k", None);
        assert_eq!(events[1], json!({"routing_key": "k", "dedup_key": dedup_key(&firing), "event_action": "resolve"}));
        assert_ne!(events[0]["dedup_key"], events[1]["dedup_key"], "per instance, not per group");
        let next = Notice { starts_at_ms: T0 + 3_600_000, ..firing.clone() };
        assert_ne!(dedup_key(&next), dedup_key(&firing));
    }

    #[test]
    fn severities_map_to_the_apis_enum_and_huge_details_are_dropped() {
        let mut n = notice("edge", true);
        assert_eq!(severity(&n, None), "critical");
        assert_eq!(severity(&n, Some("warning")), "warning");
        n.labels.insert("severity", "page");
        assert_eq!(severity(&n, None), "error");
        n.annotations.insert("description".into(), "x".repeat(MAX_EVENT_BYTES));
        let event = &events(&group(vec![n]), "k", None)[0];
        assert!(event.to_string().len() <= MAX_EVENT_BYTES);
        assert_eq!(event["payload"]["custom_details"], json!({"truncated": true}));
        assert_eq!(
            event["payload"]["summary"].as_str().unwrap().chars().count(),
            "ServiceDown: edge is unreachable from 4 regions".len()
        );
    }
}
