//! The routing file's parser against Alertmanager's meaning, mistake by mistake.
#![allow(clippy::unwrap_used)]

use super::*;
use mixmon_model::alert::LabelSet;

fn alert(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().copied().collect()
}

#[test]
fn the_shipped_file_routes_as_the_operators_asked() {
    let routing = shipped().unwrap_or_else(|e| panic!("{e}"));
    let receivers = |labels: &[(&str, &str)]| -> Vec<String> {
        routing.route.matching(&alert(labels)).iter().map(|r| r.receiver.clone()).collect()
    };
    assert_eq!(receivers(&[("alertname", "ServiceDown"), ("severity", "critical")]), ["critical"]);
    assert_eq!(receivers(&[("alertname", "HighMemory"), ("severity", "warning")]), ["warning"]);
    assert_eq!(receivers(&[("alertname", "ProberJoined"), ("severity", "info")]), ["info"]);
    let critical = routing.receiver("critical").unwrap();
    assert_eq!((critical.pagerduty.len(), critical.email.len(), critical.slack.len()), (1, 1, 1));
    assert_eq!(critical.email[0].to, ["devops@aimixer.com", "monitoring@aimixer.com"]);
    assert_eq!(critical.slack[0].channel.as_deref(), Some("#alerts-critical"));
    let file = |path: &str, env: &[&str]| SecretRef::File {
        path: PathBuf::from(path),
        env: env.iter().map(|e| e.to_string()).collect(),
    };
    assert_eq!(
        critical.slack[0].api_url,
        file("/run/secrets/mixmon/slack-webhook-url-critical", &["SLACK_WEBHOOK_URL_CRITICAL", "SLACK_WEBHOOK_URL"])
    );
    assert_eq!(
        critical.pagerduty[0].routing_key,
        file("/run/secrets/mixmon/pagerduty-routing-key", &["PAGERDUTY_ROUTING_KEY"])
    );
    assert_eq!(critical.email[0].auth_password, file("/run/secrets/mixmon/smtp-password", &["SMTP_PASSWORD"]));
    let warning = routing.receiver("warning").unwrap();
    assert!(warning.pagerduty.is_empty() && warning.email.len() == 1 && warning.slack.len() == 1);
    let info = routing.receiver("info").unwrap();
    assert!(info.pagerduty.is_empty() && info.email.is_empty() && info.slack.len() == 1);
    // No group_wait in front of a page.
    let page = routing.route.matching(&alert(&[("severity", "critical")]))[0];
    assert_eq!(page.group_wait_ms, 0);
    // RegionalFailure mutes that region's ServiceDown; critical mutes warning on an endpoint.
    let firing = [alert(&[("alertname", "RegionalFailure"), ("severity", "critical"), ("region", "eu-west")])];
    let down = alert(&[
        ("alertname", "ServiceDown"),
        ("severity", "critical"),
        ("region", "eu-west"),
        ("endpoint", "eu-west"),
    ]);
    assert!(routing.inhibit_rules.iter().any(|r| r.muted_by(&down, &firing).is_some()));
    let other = alert(&[("alertname", "ServiceDown"), ("severity", "critical"), ("endpoint", "api")]);
    assert!(routing.inhibit_rules.iter().all(|r| r.muted_by(&other, &firing).is_none()));
    let page = [alert(&[("alertname", "ServiceDown"), ("severity", "critical"), ("endpoint", "api")])];
    let warn = alert(&[("alertname", "ProbePathDegraded"), ("severity", "warning"), ("endpoint", "api")]);
    assert!(routing.inhibit_rules.iter().any(|r| r.muted_by(&warn, &page).is_some()));
}

#[test]
fn every_mistake_is_pointed_at() {
    let text = "\
route:
  receiver: nobody
  group_wiat: 10s
  routes:
    - matchers: ['severity=~\"(\"']
      receiver: ops
      mute_time_intervals: [weekends]
receivers:
  - name: ops
    email_configs:
      - to: ''
        smarthost: mail.example
time_intervals:
  - name: nights
    time_intervals:
      - times: [{ start_time: '25:00', end_time: '06:00' }]
        location: Europe/Berlin
inhibit_rules:
  - source_matchers: ['severity=\"critical\"']
";
    let problems = parse("am.yml", text).unwrap_err().problems;
    let found: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.message.as_str())).collect();
    for (line, needle) in [
        (3, "unknown key \"group_wiat\" in a route; did you mean \"group_wait\"?"),
        (5, "bad regular expression"),
        (11, "an email config needs `to`"),
        (11, "smarthost \"mail.example\" must be host:port"),
        (11, "needs `from`"),
        (16, "start_time \"25:00\" must be HH:MM"),
        (17, "only UTC is supported"),
        (19, "without target matchers"),
        (2, "receiver \"nobody\", which `receivers` does not define"),
        (2, "time interval \"weekends\", which `time_intervals` does not define"),
    ] {
        assert!(
            found.iter().any(|(l, m)| *l == line && m.contains(needle)),
            "no {needle:?} on line {line}: {found:#?}"
        );
    }
}

#[test]
fn inheritance_defaults_and_legacy_matchers() {
    let text = "\
route:
  receiver: a
  group_by: [alertname]
  routes:
    - match: { team: audio }
      group_wait: 1s
      routes:
        - match_re: { severity: 'crit.*' }
          receiver: b
receivers: [{ name: a }, { name: b }]
";
    let routing = parse("am.yml", text).unwrap_or_else(|e| panic!("{e}"));
    let route = &routing.route;
    assert_eq!((route.group_wait_ms, route.group_interval_ms, route.repeat_interval_ms), (30_000, 300_000, 14_400_000));
    let leaf = &route.routes[0].routes[0];
    assert_eq!(leaf.receiver, "b");
    assert_eq!(leaf.group_wait_ms, 1_000, "inherited from its parent");
    assert_eq!(leaf.group_by, GroupBy::Labels(vec!["alertname".into()]));
    let matched = route.matching(&alert(&[("team", "audio"), ("severity", "critical")]));
    assert_eq!(matched[0].receiver, "b");
    assert_eq!(route.matching(&alert(&[("team", "audio")]))[0].receiver, "a", "inherited receiver");
    let secret = format!("{:?}", SecretRef::Inline(Secret::new("hunter2")));
    assert!(!secret.contains("hunter2"), "{secret}");
    // A missing file falls back to the variable; neither says the value.
    let missing =
        SecretRef::File { path: PathBuf::from("/nonexistent/key"), env: vec!["ROUTES_TEST_UNSET_VARIABLE".into()] };
    let error = missing.resolve().unwrap_err();
    assert!(
        error.contains("/nonexistent/key does not exist") && error.contains("ROUTES_TEST_UNSET_VARIABLE"),
        "{error}"
    );
}
