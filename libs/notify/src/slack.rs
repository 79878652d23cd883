//! Slack incoming webhooks: Block Kit `blocks` with a top-level `text`, which is what
//! notifications and clients without blocks show, so it is always sent and says it all. One
//! webhook posts to one channel (a `channel` field is ignored by Slack), so none is sent.

use serde_json::{json, Value};

use crate::{clip, rfc3339, Notice, Notification};

/// Slack's limits: a header's text, a section's text, blocks in a message.
const MAX_HEADER_CHARS: usize = 150;
const MAX_SECTION_CHARS: usize = 3_000;
/// Alerts listed one by one; the rest are counted.
const MAX_LISTED: usize = 10;

fn line(notice: &Notice) -> String {
    let summary = notice.annotations.get("summary").cloned().unwrap_or_else(|| notice.labels.to_string());
    let state = if notice.firing { "firing" } else { "resolved" };
    let mut text = format!(
        "*{}* {} ({state}, since {}): {summary}",
        notice.alertname(),
        notice.instance_text(),
        rfc3339(notice.starts_at_ms)
    );
    if let Some(runbook) = notice.annotations.get("runbook_url") {
        text.push_str(&format!(" <{runbook}|runbook>"));
    }
    text
}

/// The fallback text: `[FIRING:1] ServiceDown eu-west (critical)`, and the first summary.
pub fn text(notification: &Notification) -> String {
    let first = notification.alerts.first();
    let title = notification.title();
    // Grouped by endpoint, the title names it already: say it once.
    let instance = first.map(Notice::instance_text).filter(|i| !title.ends_with(i.as_str())).unwrap_or_default();
    let severity = first.map(Notice::severity).filter(|s| !s.is_empty()).map(|s| format!(" ({s})")).unwrap_or_default();
    let summary = first.and_then(|n| n.annotations.get("summary")).map(|s| format!(": {s}")).unwrap_or_default();
    let more = notification.alerts.len().saturating_sub(1);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    clip(&format!("{title} {instance}{severity}{summary}{more}").replace("  ", " "), MAX_SECTION_CHARS)
}

/// The message; `folded` above one says it is a digest of that many notifications.
pub fn payload(notification: &Notification, folded: u32) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": clip(&notification.title(), MAX_HEADER_CHARS) },
    })];
    let listed: Vec<String> = notification.alerts.iter().take(MAX_LISTED).map(line).collect();
    blocks.push(json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": clip(&listed.join("\n"), MAX_SECTION_CHARS) },
    }));
    let hidden = notification.alerts.len().saturating_sub(MAX_LISTED);
    let mut context = Vec::new();
    if folded > 1 {
        let resolved = notification.resolved().count();
        let firing = notification.alerts.len() - resolved;
        context.push(format!("digest of {folded} notifications: {firing} firing, {resolved} resolved"));
    }
    if hidden > 0 {
        context.push(format!("and {hidden} more"));
    }
    context.push(format!("<{}/api/v1/alerts|alerts>", notification.external_url));
    if let Some(dashboard) = &notification.dashboard_url {
        context.push(format!("<{dashboard}|dashboard>"));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context.join(" | ") }],
    }));
    json!({ "text": text(notification), "blocks": blocks })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn blocks_with_a_fallback_text_that_says_it_all() {
        let body = payload(&group(vec![notice("eu-west", true)]), 1);
        let expected = json!({
            "text": "[FIRING:1] ServiceDown eu-west (critical): eu-west is unreachable from 4 regions",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "[FIRING:1] ServiceDown"}},
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    "*ServiceDown* eu-west (firing, since 2026-05-28T20:26:40.000Z): eu-west is unreachable from 4 regions <docs/runbooks/service-down.md|runbook>"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text":
                    "<http://mixmon-query:8090/api/v1/alerts|alerts> | <https://grafana.aimixer.com/d/mixmon-overview|dashboard>"}]},
            ],
        });
        assert_eq!(body, expected);
        assert!(body.get("channel").is_none(), "an incoming webhook ignores it");
    }

    #[test]
    fn a_storm_stays_within_slacks_limits() {
        let alerts: Vec<_> = (0..500).map(|i| notice(&format!("endpoint-{i}"), true)).collect();
        let body = payload(&group(alerts), 40);
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert!(blocks[1]["text"]["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
        let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
        assert!(context.starts_with("digest of 40 notifications: 500 firing, 0 resolved | and 490 more"), "{context}");
        assert!(body["text"].as_str().unwrap().ends_with("and 499 more"));
        let resolved = payload(&group(vec![notice("edge", false)]), 1);
        assert!(resolved["text"].as_str().unwrap().starts_with("[RESOLVED] ServiceDown edge"));
    }
}
