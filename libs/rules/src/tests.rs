#![allow(clippy::unwrap_used)]

use super::*;

fn problems(text: &str) -> Vec<Problem> {
    parse("rules.yaml", text).unwrap_err().problems
}

#[test]
fn the_shipped_rules_load_and_name_every_operator_alert() {
    let text = include_str!("../../../config/rules.yaml");
    let set = parse("config/rules.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    for name in [
        "HighLatency",
        "HighErrorRate",
        "ServiceDown",
        "HighDiskUsage",
        "RegionalFailure",
        "PodRestarts",
        "HighMemory",
        "LowThroughput",
        "AudioPeak",
        "CheckRecovered",
        "ProberJoined",
        "ProberDown",
        "ProberIsolated",
        "ProbePathDegraded",
        "ErrorBudgetBurnFast",
    ] {
        let rule = set.rule(name).unwrap_or_else(|| panic!("{name} missing"));
        let runbook = rule.annotations.get("runbook_url").unwrap_or_else(|| panic!("{name} has no runbook"));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(runbook.source());
        assert!(path.is_file(), "{name}'s runbook {} is not shipped", runbook.source());
    }
    let latency = set.rule("HighLatency").unwrap();
    assert_eq!(latency.timing.for_ms, 120_000);
    assert_eq!(latency.scope, Scope::Endpoint);
    assert!(matches!(
        &latency.condition,
        Condition::Threshold { metric, window_minutes: 1, op: Comparison::Greater, threshold, .. }
            if metric == "latency_p95" && *threshold == 100.0
    ));
    let regional = set.rule("RegionalFailure").unwrap();
    assert_eq!(regional.timing.for_ms, 30_000);
    assert!(regional.inhibits.contains(&"ServiceDown".to_string()));
    assert_eq!(set.rule("HighDiskUsage").unwrap().scope, Scope::Node);
}

#[test]
fn every_kind_of_mistake_is_reported_at_once_with_its_position() {
    let text = "\
groups:
  - name: g
    rules:
      - alert: A
        expr: latency_p95[1m] > 100
        scope: endpoint
        fro: 1m
        labels: { severity: critical }
      - alert: B
        expr: latncy_p95[1m] > 100
        scope: endpoint
        labels: { severity: critical }
      - alert: C
        expr: endpoint_down
        for: -1m
        labels: { severity: critical }
      - alert: D
        expr: endpoint_down
        labels: { severity: critical }
        annotations:
          summary: \"{{ $labels.endpoint \"
      - alert: E
        expr: node_cpu_ratio[1m] > 0.9
        scope: endpoint
        labels: { severity: loud }
";
    let found = problems(text);
    let lines: Vec<(usize, &str)> = found.iter().map(|p| (p.line, p.message.as_str())).collect();
    let expect = [
        (7, "unknown key \"fro\" in a rule; did you mean \"for\"?"),
        (10, "unknown SLI \"latncy_p95\"; did you mean \"latency_p95\"?"),
        (15, "for: \"-1m\" is negative"),
        (21, "annotation summary: template error"),
        (23, "node_cpu_ratio has no endpoint scope"),
        (25, "severity \"loud\" is not one of critical, warning, info"),
    ];
    for (line, text) in expect {
        assert!(
            lines.iter().any(|(l, m)| *l == line && m.contains(text)),
            "no problem {text:?} on line {line}; got {lines:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{lines:#?}");
    let shown = parse("rules.yaml", text).unwrap_err().to_string();
    assert!(shown.starts_with("rules.yaml: 6 problems\n  rules.yaml:7:9: unknown key"), "{shown}");
}

#[test]
fn structure_mistakes_are_pointed_at() {
    assert_eq!(problems("groups: [\n")[0].line, 2, "a YAML syntax error names its line");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: burn_rate(101, page)\n        labels: {severity: critical}\n");
    assert!(p[0].message.contains("burn_rate(OBJECTIVE_PERCENT, page|ticket)"), "{p:?}");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: endpoint_down\n        labels: {severity: critical}\n        inhibits: [Nope]\n");
    assert!(p[0].message.contains("inhibits \"Nope\", which no rule defines"), "{p:?}");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: latency_p95[90s] > 1\n        scope: endpoint\n        labels: {severity: critical}\n");
    assert!(p[0].message.contains("whole minutes"), "{p:?}");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: endpoint_down\n        scope: pod\n        labels: {severity: critical}\n");
    assert!(p[0].message.contains("per endpoint; scope pod does not apply"), "{p:?}");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: endpoint_down\n        labels: {severity: critical}\n  - name: g\n    rules: []\n");
    assert!(p[0].message.contains("defined twice") && p[0].line == 7, "{p:?}");
    let p = problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: max(latency_p95[1m]) > 1\n        scope: endpoint\n        labels: {severity: critical}\n");
    assert!(p[0].message.contains("has a single form"), "{p:?}");
    let p = problems("maintenance:\n  - name: m\n    start: 2026-12-24T02:00:00Z\n    end: yesterday\n");
    assert!(p.iter().any(|p| p.message.contains("end: \"yesterday\" is not an RFC 3339 time")), "{p:?}");
}

#[test]
fn every_expression_form_parses() {
    let text = "\
groups:
  - name: g
    rules:
      - { alert: A, expr: 'failures[5m] >= 3', scope: endpoint_region, labels: { severity: warning } }
      - { alert: B, expr: 'mean(node_cpu_ratio[5m]) > 0.9', scope: node, labels: { severity: warning } }
      - { alert: C, expr: 'prober_silent(45s)', labels: { severity: info } }
      - { alert: D, expr: 'prober_isolated(3)', labels: { severity: info } }
      - { alert: E, expr: 'event(recovered, A)', labels: { severity: info }, matchers: ['endpoint=~\"api|edge\"'] }
      - { alert: F, expr: 'burn_rate(99.95, ticket)', labels: { severity: warning } }
maintenance:
  - { name: upgrade, matchers: ['endpoint=\"eu-west\"'], start: '2026-12-24T02:00:00Z', end: '2026-12-24T03:00:00+00:00' }
";
    let set = parse("r", text).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        &set.rules[0].condition,
        Condition::Threshold { op: Comparison::GreaterOrEqual, window_minutes: 5, .. }
    ));
    assert!(matches!(set.rules[1].condition, Condition::Threshold { stat: WindowStat::Mean, .. }));
    assert_eq!(set.rules[2].condition, Condition::ProberSilent { after_ms: 45_000 });
    assert_eq!(set.rules[2].scope, Scope::Prober);
    assert_eq!(set.rules[3].condition, Condition::ProberIsolated { min_checks: 3 });
    assert_eq!(set.rules[4].matchers.len(), 1);
    assert!(matches!(&set.rules[5].condition, Condition::BurnRate { objective, .. } if objective.ppm == 999_500));
    assert_eq!(set.maintenance[0].end_ms - set.maintenance[0].start_ms, 3_600_000);
}
