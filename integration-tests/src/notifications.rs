//! What the notification test and `scripts/bench.sh notify` share: a routing file pointing
//! every receiver at local stand-ins and a real SMTP server, the shipped rules scaled in time,
//! a real Alertmanager (Debian `prometheus-alertmanager`) that routes what mixmon forwards to
//! a local webhook, and readers of what each receiver got.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mixmon_testkit::{free_port, http, ChildProcess};
use serde_json::Value;

use crate::receivers::Receivers;

/// The 32-character routing key the PagerDuty stand-in accepts.
pub const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

/// The shipped rules with every `for` divided by `divisor` and 5-minute windows cut to 1
/// minute: the same rules and their relative timing (RegionalFailure before ServiceDown).
pub fn scaled_rules(divisor: u64) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let line = match trimmed.strip_prefix("for: ") {
            Some(value) => {
                let ms = mixmon_model::alert::parse_duration(value.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}for: {}ms", (ms / divisor).max(1_000))
            }
            None => line.replace("[5m]", "[1m]"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// A routing file in the shipped shape (critical to PagerDuty, Slack, email and a webhook at
/// once; warning and info grouped for a second; the shipped inhibit rules, verbatim), every
/// integration pointed at `receivers` and
/// the SMTP server on `smtp_port`. `extra_webhooks` are more webhooks of the info receiver,
/// `extra_info` more of its configs (YAML lines at its indentation).
pub fn routing(receivers: &str, smtp_port: u16, extra_webhooks: &[String], extra_info: &str) -> String {
    let webhooks: String = extra_webhooks.iter().map(|url| format!("      - url: {url}\n")).collect();
    format!(
        r#"route:
  receiver: info
  group_by: [alertname, region, endpoint]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: critical
      group_wait: 0s
      group_interval: 30s
      repeat_interval: 1h
receivers:
  - name: critical
    pagerduty_configs:
      - routing_key: {ROUTING_KEY}
        url: {receivers}/pagerduty
    slack_configs:
      - api_url: {receivers}/slack/critical
        channel: '#alerts-critical'
        send_resolved: true
    webhook_configs:
      - url: {receivers}/webhook/critical
    email_configs:
      - to: devops@aimixer.com, monitoring@aimixer.com
        from: mixmon@aimixer.com
        smarthost: localhost:{smtp_port}
        auth_username: {user}
        send_resolved: true
  - name: info
    slack_configs:
      - api_url: {receivers}/slack/info
        channel: '#alerts-info'
        send_resolved: true
    webhook_configs:
      - url: {receivers}/webhook/info
{webhooks}{extra_info}
{inhibit_rules}"#,
        user = crate::smtp::USER,
        inhibit_rules = shipped_inhibit_rules(),
    )
}

/// The `inhibit_rules:` section of the shipped `config/alertmanager.yml`.
fn shipped_inhibit_rules() -> &'static str {
    let shipped = mixmon_rules::routes::SHIPPED;
    shipped.find("\ninhibit_rules:").map_or("", |i| &shipped[i + 1..])
}

/// A real Alertmanager routing everything it gets to `webhook`, grouped per alert, at once.
pub struct Alertmanager {
    pub process: ChildProcess,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub async fn start(webhook: &str) -> anyhow::Result<Alertmanager> {
        let dir = tempfile::tempdir()?;
        let config = crate::write(
            dir.path(),
            "alertmanager.yml",
            &format!(
                "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
            ),
        )?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ];
        let process = ChildProcess::spawn(Path::new("prometheus-alertmanager"), args, &[])
            .context("prometheus-alertmanager (the test command installs it)")?;
        let ready = format!("{url}/-/ready");
        mixmon_testkit::eventually(Duration::from_secs(30), Duration::from_millis(200), || async {
            http::get(&ready).await.is_ok_and(|r| r.status == 200)
        })
        .await
        .context("Alertmanager never became ready")?;
        Ok(Alertmanager { process, url, _dir: dir })
    }
}

/// A PagerDuty event as the stand-in accepted it: (dedup_key, action, class, arrival).
pub fn pagerduty_events(receivers: &Receivers) -> Vec<(String, String, String, i64)> {
    receivers
        .accepted("/pagerduty")
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&r.body["dedup_key"]), text(&r.body["event_action"]), text(&r.body["payload"]["class"]), r.at_ms)
        })
        .collect()
}

/// Per dedup_key: (accepted triggers, accepted resolves).
pub fn pagerduty_tally(receivers: &Receivers) -> BTreeMap<String, (u32, u32)> {
    let mut tally: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for (key, action, _, _) in pagerduty_events(receivers) {
        let entry = tally.entry(key).or_default();
        match action.as_str() {
            "trigger" => entry.0 += 1,
            _ => entry.1 += 1,
        }
    }
    tally
}
