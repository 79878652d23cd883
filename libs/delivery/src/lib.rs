//! Sending: each integration of each receiver in the routing file (a PagerDuty routing key, a
//! Slack webhook, an email config, a webhook) as one [`Integration`] that sends one
//! [`Delivery`] and says what the receiver answered ([`Answer`]), plus forwarding to an
//! existing Alertmanager. What to send is built by `libs/notify`; when, how often and what is
//! retried is the notifier's (`services/aggregator/src/notifier`).
//!
//! Secrets are resolved at each send (a rotated file is read anew) and never appear in an
//! answer, an error or a log line.

mod email;
pub mod http;

use std::time::Duration;

use mixmon_notify::limit::{self, RateLimit};
use mixmon_notify::retry::{classify, Answer};
use mixmon_rules::routes::{EmailConfig, PagerDutyConfig, Routing, SlackConfig, WebhookConfig};
use mixmon_store::Delivery;

/// Every request to a receiver, connect to answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    PagerDuty(PagerDutyConfig),
    Slack(SlackConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
}

/// One integration of a receiver, named `<receiver>/<kind>/<index>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub name: String,
    pub receiver: String,
    pub kind: Kind,
}

impl Integration {
    /// Every integration of every receiver, in file order.
    pub fn all(routing: &Routing) -> Vec<Integration> {
        let mut all = Vec::new();
        for receiver in &routing.receivers {
            let mut add = |kind: &str, index: usize, config: Kind| {
                all.push(Integration {
                    name: format!("{}/{kind}/{index}", receiver.name),
                    receiver: receiver.name.clone(),
                    kind: config,
                })
            };
            receiver.pagerduty.iter().enumerate().for_each(|(i, c)| add("pagerduty", i, Kind::PagerDuty(c.clone())));
            receiver.slack.iter().enumerate().for_each(|(i, c)| add("slack", i, Kind::Slack(c.clone())));
            receiver.email.iter().enumerate().for_each(|(i, c)| add("email", i, Kind::Email(c.clone())));
            receiver.webhook.iter().enumerate().for_each(|(i, c)| add("webhook", i, Kind::Webhook(c.clone())));
        }
        all
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::PagerDuty(_) => "pagerduty",
            Kind::Slack(_) => "slack",
            Kind::Email(_) => "email",
            Kind::Webhook(_) => "webhook",
        }
    }

    pub fn limit(&self) -> RateLimit {
        match self.kind {
            Kind::PagerDuty(_) => limit::PAGERDUTY,
            Kind::Slack(_) => limit::SLACK,
            Kind::Email(_) => limit::EMAIL,
            Kind::Webhook(_) => limit::WEBHOOK,
        }
    }

    pub fn send_resolved(&self) -> bool {
        match &self.kind {
            Kind::PagerDuty(c) => c.send_resolved,
            Kind::Slack(c) => c.send_resolved,
            Kind::Email(c) => c.send_resolved,
            Kind::Webhook(c) => c.send_resolved,
        }
    }

    /// One delivery per alert that changed (PagerDuty: one incident per alert instance), not
    /// one per group message.
    pub fn per_alert(&self) -> bool {
        matches!(self.kind, Kind::PagerDuty(_))
    }

    /// Whether a backlog may be folded into one digest message (people read these; PagerDuty
    /// events and webhooks are read by machines that want each one).
    pub fn foldable(&self) -> bool {
        matches!(self.kind, Kind::Slack(_) | Kind::Email(_))
    }

    /// Sends `delivery` once and says how the receiver answered.
    pub async fn send(&self, delivery: &Delivery, now_ms: i64) -> Answer {
        let notification = &delivery.notification;
        match &self.kind {
            Kind::PagerDuty(config) => {
                let key = match config.routing_key.resolve() {
                    Ok(key) => key,
                    Err(reason) => return Answer::Refused { reason: format!("no routing key: {reason}") },
                };
                for event in mixmon_notify::pagerduty::events(notification, key.expose(), config.severity.as_deref()) {
                    let answer = post_json(&config.url, &[], &event, now_ms).await;
                    if answer != Answer::Accepted {
                        return answer;
                    }
                }
                Answer::Accepted
            }
            Kind::Slack(config) => match config.api_url.resolve() {
                Ok(url) => {
                    let body = mixmon_notify::slack::payload(notification, delivery.folded);
                    post_json(url.expose(), &[], &body, now_ms).await
                }
                Err(reason) => Answer::Refused { reason: format!("no webhook URL: {reason}") },
            },
            Kind::Webhook(config) => match config.url.resolve() {
                Ok(url) => {
                    let body = mixmon_notify::webhook::payload(notification, config.max_alerts as usize);
                    post_json(url.expose(), &[("idempotency-key", delivery.id.as_str())], &body, now_ms).await
                }
                Err(reason) => Answer::Refused { reason: format!("no webhook URL: {reason}") },
            },
            Kind::Email(config) => email::send(config, delivery).await,
        }
    }
}

async fn post_json(url: &str, headers: &[(&str, &str)], body: &serde_json::Value, now_ms: i64) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    match http::post(url, &all, body.to_string().into_bytes(), SEND_TIMEOUT).await {
        Ok(answer) => classify(answer.status, answer.retry_after.as_deref(), &answer.body, now_ms),
        Err(reason) => Answer::Retry { after_ms: None, reason },
    }
}

/// Posts one round of alerts to an Alertmanager's `/api/v2/alerts` (`base` is its URL).
pub async fn forward(base: &str, body: &serde_json::Value, now_ms: i64) -> Answer {
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    post_json(&url, &[], body, now_ms).await
}
