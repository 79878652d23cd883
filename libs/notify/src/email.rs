//! What an email says: Alertmanager's subject (`[FIRING:2] ServiceDown ...`), a plain-text body
//! that lists every alert with its summary, runbook and times, and the thread it belongs to.
//! Every message of one group on one day shares a thread root, sent as `In-Reply-To` and
//! `References` (and as the `Message-ID` of the group's first message), so a resolve lands
//! under its page in every mail client.

use mixmon_model::alert::LabelSet;

use crate::{rfc3339, Notification};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    /// `<...@mixmon>`, this message's own.
    pub message_id: String,
    /// The thread's root; equal to `message_id` for the group's first message.
    pub thread_root: String,
}

/// The group's thread on the day its earliest alert started.
pub fn thread_root(notification: &Notification) -> String {
    let group = LabelSet::new()
        .with("receiver", notification.receiver.as_str())
        .with("group", notification.group_key.as_str())
        .fingerprint();
    let started = notification.alerts.iter().map(|a| a.starts_at_ms).min().unwrap_or_default();
    let day = rfc3339(started).get(..10).unwrap_or_default().replace('-', "");
    format!("<alert-{group}-{day}@mixmon>")
}

/// The email for `notification`; `first` for a group's first message, `token` unique to this
/// message (the delivery's id) for the others' `Message-ID`.
pub fn content(notification: &Notification, first: bool, token: &str) -> EmailContent {
    let root = thread_root(notification);
    let message_id = if first {
        root.clone()
    } else {
        format!("<{}.{}@mixmon>", LabelSet::new().with("delivery", token).fingerprint(), root.trim_matches(['<', '>']))
    };
    let mut text = String::new();
    for (heading, firing) in [("Firing", true), ("Resolved", false)] {
        let alerts: Vec<_> = notification.alerts.iter().filter(|a| a.firing == firing).collect();
        if alerts.is_empty() {
            continue;
        }
        text.push_str(&format!("{heading} ({}):\n\n", alerts.len()));
        for alert in alerts {
            let summary = alert.annotations.get("summary").cloned().unwrap_or_else(|| alert.labels.to_string());
            text.push_str(&format!("- {} {}: {summary}\n", alert.alertname(), alert.instance_text()));
            text.push_str(&format!("  since {}", rfc3339(alert.starts_at_ms)));
            if let Some(end) = alert.ends_at_ms {
                text.push_str(&format!(", resolved {}", rfc3339(end)));
            }
            text.push('\n');
            if let Some(description) = alert.annotations.get("description") {
                text.push_str(&format!("  {description}\n"));
            }
            if let Some(runbook) = alert.annotations.get("runbook_url") {
                text.push_str(&format!("  runbook: {runbook}\n"));
            }
            text.push_str(&format!("  labels: {}\n\n", alert.labels));
        }
    }
    text.push_str(&format!("Alerts: {}/api/v1/alerts\n", notification.external_url));
    if let Some(dashboard) = &notification.dashboard_url {
        text.push_str(&format!("Dashboard: {dashboard}\n"));
    }
    EmailContent { subject: notification.title(), text, message_id, thread_root: root }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn a_page_and_its_resolve_share_a_thread() {
        let page = content(&group(vec![notice("eu-west", true)]), true, "critical/email/0/1");
        assert_eq!(page.subject, "[FIRING:1] ServiceDown");
        assert_eq!(page.message_id, page.thread_root);
        assert!(page.thread_root.starts_with("<alert-") && page.thread_root.ends_with("-20260528@mixmon>"));
        assert!(page.text.starts_with("Firing (1):\n\n- ServiceDown eu-west: eu-west is unreachable from 4 regions\n"));
        assert!(page.text.contains("  runbook: docs/runbooks/service-down.md\n"));
        assert!(page.text.ends_with("Dashboard: https://grafana.aimixer.com/d/mixmon-overview\n"));
        let resolve = content(&group(vec![notice("eu-west", false)]), false, "critical/email/0/2");
        assert_eq!(resolve.thread_root, page.thread_root);
        assert_ne!(resolve.message_id, page.message_id);
        assert_eq!(resolve.subject, "[RESOLVED] ServiceDown");
        assert!(resolve.text.contains("resolved 2026-05-28T20:28:40.000Z"));
    }
}
