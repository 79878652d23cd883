//! The alerting configuration files: the rules (`routes` holds the routing file, an
//! Alertmanager `alertmanager.yml`).
//!
//! The alert rules file: Prometheus' shape (`groups:` of rules with `alert`, `expr`, `for`,
//! `keep_firing_for`, `labels`, `annotations`), with expressions over mixmon's own SLIs and
//! signals, read into a validated [`RuleSet`]. Every mistake in a file is reported at once,
//! each with its line and column, so an operator fixes a file in one pass.
//!
//! Expressions (`expr`):
//! - `METRIC[WINDOW] OP NUMBER`, optionally `max(...)`/`mean(...)` around the metric for the
//!   figures kept both ways, e.g. `latency_p95[1m] > 100`, `max(node_disk_used[5m]) > 0.85`,
//!   `failures[5m] >= 3` ("N failures within M minutes": one lucky success does not reset it).
//!   Any metric the query API serves; `scope:` says per what (`endpoint_region`, `endpoint`,
//!   `region`, `global`, `node`, `pod`).
//! - Probe signals over every region's latest results: `endpoint_down`, `region_down`,
//!   `probe_path_degraded` (with an optional `quorum:`), `prober_isolated`, `prober_silent(30s)`.
//! - `burn_rate(99.9, page)` / `burn_rate(99.9, ticket)`: the multi-window, multi-burn-rate
//!   SLO alerts of the SRE workbook, from integer good/total counts.
//! - Events, one-shot info alerts: `event(prober_joined)`, `event(recovered, RULE)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Marker, Node, Span};
use mixmon_model::alert::burn::{PAGE_WINDOWS, TICKET_WINDOWS};
use mixmon_model::alert::Severity;
use mixmon_model::alert::{
    is_valid_label_name, parse_duration, Comparison, Condition, EventKind, MaintenanceWindow, Matcher, Objective,
    QuorumSpec, Rule, RuleSet, Scope, Template, Timing, WindowStat, ALERTNAME, SEVERITY,
};
use mixmon_sli::{Metric, Stat};

/// Largest rules file read: thousands of rules fit; more is a mistake (or an attack).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Most problems listed for one file; past it, the rest are summarised.
const MAX_PROBLEMS: usize = 100;

/// One mistake and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every mistake found in a file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    pub source: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{}: {n} problem{}", self.source, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {}:{}:{}: {}", self.source, p.line, p.column, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for RulesError {}

/// The shipped rules (`config/rules.yaml`), built in: what runs when no file is configured.
pub const SHIPPED: &str = include_str!("../../../config/rules.yaml");

/// The shipped rules, validated (a test keeps them valid).
pub fn shipped() -> Result<RuleSet, RulesError> {
    parse("config/rules.yaml (built in)", SHIPPED)
}

/// Reads a file bounded by [`MAX_FILE_BYTES`], every failure as one problem of `source`.
pub(crate) fn read_bounded(path: &std::path::Path) -> Result<String, RulesError> {
    let source = path.display().to_string();
    let fail = |message: String| RulesError {
        source: source.clone(),
        problems: vec![Problem { line: 0, column: 0, message }],
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(fail(format!("is {} bytes; at most {MAX_FILE_BYTES} are read", meta.len())));
    }
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// Turns the problems found into the result.
pub(crate) fn finish<T>(source: &str, mut problems: Vec<Problem>, value: T) -> Result<T, RulesError> {
    if problems.is_empty() {
        return Ok(value);
    }
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem { line: 0, column: 0, message: format!("... and {more} more") });
    }
    Err(RulesError { source: source.to_string(), problems })
}

/// Reads and validates a rules file.
pub fn load(path: &std::path::Path) -> Result<RuleSet, RulesError> {
    let text = read_bounded(path)?;
    parse(&path.display().to_string(), &text)
}

/// Validates the text of a rules file; `source` names it in messages.
pub fn parse(source: &str, text: &str) -> Result<RuleSet, RulesError> {
    let mut p = Parser { problems: Vec::new() };
    let rules = p.file(text);
    finish(source, p.problems, rules)
}

pub(crate) struct Parser {
    pub(crate) problems: Vec<Problem>,
}

fn at(span: &Span) -> (usize, usize) {
    span.start().map_or((0, 0), |m: &Marker| (m.line(), m.column()))
}

impl Parser {
    pub(crate) fn problem(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = at(span);
        self.problems.push(Problem { line, column, message: message.into() });
    }

    /// The mapping's keys must be among `known`; each unknown one is a problem.
    pub(crate) fn keys(&mut self, map: &MarkedMappingNode, what: &str, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = closest(key.as_str(), known).map(|k| format!("; did you mean {k:?}?")).unwrap_or_default();
                self.problem(
                    key.span(),
                    format!("unknown key {:?} in {what}{hint} (known: {})", key.as_str(), known.join(", ")),
                );
            }
        }
    }

    pub(crate) fn mapping<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a MarkedMappingNode> {
        let m = node.as_mapping();
        if m.is_none() {
            self.problem(node.span(), format!("{what} must be a mapping"));
        }
        m
    }

    pub(crate) fn scalar<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a MarkedScalarNode> {
        let s = node.as_scalar();
        if s.is_none() {
            self.problem(node.span(), format!("{what} must be a single value"));
        }
        s
    }

    /// The YAML document, duplicate keys refused; `None` (with the problem) when it is not YAML.
    pub(crate) fn yaml(&mut self, text: &str) -> Option<Node> {
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(root) => Some(root),
            Err(err) => {
                let (marker, message) = load_error(&err);
                self.problems.push(Problem { line: marker.line(), column: marker.column(), message });
                None
            }
        }
    }

    fn file(&mut self, text: &str) -> RuleSet {
        let Some(root) = self.yaml(text) else { return RuleSet::default() };
        let Some(root) = self.mapping(&root, "the rules file") else { return RuleSet::default() };
        self.keys(root, "the rules file", &["groups", "maintenance"]);
        let mut set = RuleSet::default();
        match root.get_node("groups") {
            None => self.problem(root.span(), "no `groups:`; a rules file is `groups:` of `name:` and `rules:`"),
            Some(groups) => match groups.as_sequence() {
                None => self.problem(groups.span(), "`groups` must be a list"),
                Some(groups) => {
                    let mut names = BTreeSet::new();
                    for group in groups.iter() {
                        self.group(group, &mut names, &mut set.rules);
                    }
                }
            },
        }
        if let Some(windows) = root.get_node("maintenance") {
            match windows.as_sequence() {
                None => self.problem(windows.span(), "`maintenance` must be a list"),
                Some(windows) => set.maintenance = windows.iter().filter_map(|w| self.maintenance(w)).collect(),
            }
        }
        self.cross_check(&set, root);
        set
    }

    fn group(&mut self, node: &Node, names: &mut BTreeSet<String>, out: &mut Vec<Rule>) {
        let Some(group) = self.mapping(node, "a group") else { return };
        self.keys(group, "a group", &["name", "rules", "interval"]);
        let name = match group.get_scalar("name") {
            Some(name) if !name.as_str().trim().is_empty() => {
                if !names.insert(name.as_str().to_string()) {
                    self.problem(name.span(), format!("group {:?} is defined twice", name.as_str()));
                }
                name.as_str().to_string()
            }
            _ => {
                self.problem(group.span(), "a group needs a `name`");
                String::new()
            }
        };
        if let Some(interval) = group.get_scalar("interval") {
            // Rules are evaluated every second whatever the group says; accept the key so a
            // Prometheus file reads, but say so.
            if let Err(e) = parse_duration(interval.as_str()) {
                self.problem(interval.span(), format!("interval: {e}"));
            }
        }
        match group.get_node("rules") {
            None => self.problem(group.span(), format!("group {name:?} has no `rules:`")),
            Some(rules) => match rules.as_sequence() {
                None => self.problem(rules.span(), "`rules` must be a list"),
                Some(rules) => {
                    for rule in rules.iter() {
                        if let Some(rule) = self.rule(rule, &name) {
                            out.push(rule);
                        }
                    }
                }
            },
        }
    }

    pub(crate) fn duration(&mut self, map: &MarkedMappingNode, key: &str) -> Option<u64> {
        let node = map.get_node(key)?;
        let scalar = self.scalar(node, key)?;
        match parse_duration(scalar.as_str()) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.problem(scalar.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    pub(crate) fn string_map(
        &mut self,
        map: &MarkedMappingNode,
        key: &str,
    ) -> Vec<(MarkedScalarNode, MarkedScalarNode)> {
        let Some(node) = map.get_node(key) else { return Vec::new() };
        let Some(inner) = self.mapping(node, key) else { return Vec::new() };
        let mut out = Vec::new();
        for (name, value) in inner.iter() {
            if let Some(value) = self.scalar(value, &format!("{key}.{}", name.as_str())) {
                out.push((name.clone(), value.clone()));
            }
        }
        out
    }

    pub(crate) fn string_list(&mut self, map: &MarkedMappingNode, key: &str) -> Vec<MarkedScalarNode> {
        let Some(node) = map.get_node(key) else { return Vec::new() };
        match node.as_sequence() {
            None => {
                self.problem(node.span(), format!("`{key}` must be a list"));
                Vec::new()
            }
            Some(items) => items.iter().filter_map(|item| self.scalar(item, key).cloned()).collect(),
        }
    }

    fn rule(&mut self, node: &Node, group: &str) -> Option<Rule> {
        let map = self.mapping(node, "a rule")?;
        self.keys(
            map,
            "a rule",
            &[
                "alert",
                "expr",
                "scope",
                "for",
                "keep_firing_for",
                "labels",
                "annotations",
                "matchers",
                "quorum",
                "inhibits",
                "inhibits_equal",
                "record",
            ],
        );
        let problems_before = self.problems.len();
        if let Some(record) = map.get_scalar("record") {
            self.problem(record.span(), "recording rules are not needed: every SLI is already stored and served");
        }
        let name = match map.get_scalar("alert") {
            Some(n) if is_valid_label_name(n.as_str()) => n.as_str().to_string(),
            Some(n) => {
                self.problem(
                    n.span(),
                    format!(
                        "alert name {:?} must be a label value like HighLatency ([a-zA-Z_][a-zA-Z0-9_]*)",
                        n.as_str()
                    ),
                );
                String::new()
            }
            None => {
                self.problem(map.span(), "a rule needs an `alert` name");
                String::new()
            }
        };
        let for_ms = self.duration(map, "for").unwrap_or(0);
        let keep_ms = self.duration(map, "keep_firing_for").unwrap_or(0);
        let quorum = self.quorum(map);
        let explicit_scope = map.get_scalar("scope").and_then(|s| match Scope::parse(s.as_str()) {
            Some(scope) => Some((scope, *s.span())),
            None => {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                self.problem(s.span(), format!("unknown scope {:?} (known: {})", s.as_str(), known.join(", ")));
                None
            }
        });
        let (condition, expr) = match map.get_scalar("expr") {
            Some(expr) => (self.expr(expr, quorum), expr.as_str().to_string()),
            None => {
                self.problem(map.span(), format!("rule {name:?} needs an `expr`"));
                (None, String::new())
            }
        };
        let scope = match (&condition, &explicit_scope) {
            (Some(c), Some((scope, span))) => match c.implied_scope() {
                Some(implied) if implied != *scope => {
                    self.problem(
                        span,
                        format!("this expression is per {}; scope {} does not apply", implied.as_str(), scope.as_str()),
                    );
                    implied
                }
                _ => *scope,
            },
            (Some(c), None) => match c.implied_scope() {
                Some(implied) => implied,
                None if matches!(c, Condition::Event(_)) => Scope::Global,
                None => {
                    self.problem(
                        map.span(),
                        format!("rule {name:?} needs a `scope` (endpoint_region, endpoint, region, global, node, pod)"),
                    );
                    Scope::Global
                }
            },
            (None, _) => Scope::Global,
        };
        if let (Some(Condition::Threshold { metric, stat, window_minutes, .. }), Some(expr)) =
            (&condition, map.get_scalar("expr"))
        {
            if let Some(metric) = Metric::parse(metric) {
                let stat = match stat {
                    WindowStat::Default => None,
                    WindowStat::Max => Some(Stat::Max),
                    WindowStat::Mean => Some(Stat::Mean),
                };
                if let Err(e) = mixmon_sli::window::check(metric, stat, scope, *window_minutes) {
                    self.problem(expr.span(), e.to_string());
                }
            }
        }
        let mut labels = BTreeMap::new();
        for (key, value) in self.string_map(map, "labels") {
            if !is_valid_label_name(key.as_str()) || key.as_str().starts_with("__") {
                self.problem(key.span(), format!("bad label name {:?}", key.as_str()));
            } else if key.as_str() == ALERTNAME {
                self.problem(key.span(), "`alertname` is the rule's `alert`; it cannot be set as a label");
            } else {
                labels.insert(key.as_str().to_string(), value.as_str().to_string());
            }
        }
        match labels.get(SEVERITY) {
            None => self.problem(
                map.span(),
                format!("rule {name:?} needs labels.severity (critical, warning or info): routing reads it"),
            ),
            Some(s) if Severity::parse(s).is_none() => {
                let span = map.get_node("labels").map_or(*map.span(), |n| *n.span());
                self.problem(&span, format!("severity {s:?} is not one of critical, warning, info"));
            }
            Some(_) => {}
        }
        let mut annotations = BTreeMap::new();
        for (key, value) in self.string_map(map, "annotations") {
            match Template::parse(value.as_str()) {
                Ok(template) => {
                    annotations.insert(key.as_str().to_string(), template);
                }
                Err(e) => self.problem(value.span(), format!("annotation {}: {e}", key.as_str())),
            }
        }
        let mut matchers = Vec::new();
        for text in self.string_list(map, "matchers") {
            match Matcher::parse(text.as_str()) {
                Ok(m) => matchers.push(m),
                Err(e) => self.problem(text.span(), e.to_string()),
            }
        }
        let inhibits = self.string_list(map, "inhibits").iter().map(|s| s.as_str().to_string()).collect();
        let mut inhibits_equal = Vec::new();
        for label in self.string_list(map, "inhibits_equal") {
            if is_valid_label_name(label.as_str()) {
                inhibits_equal.push(label.as_str().to_string());
            } else {
                self.problem(label.span(), format!("bad label name {:?}", label.as_str()));
            }
        }
        if self.problems.len() > problems_before {
            return None;
        }
        Some(Rule {
            name,
            group: group.to_string(),
            expr,
            condition: condition?,
            scope,
            matchers,
            timing: Timing::new(for_ms, keep_ms),
            labels,
            annotations,
            inhibits,
            inhibits_equal,
        })
    }

    fn quorum(&mut self, map: &MarkedMappingNode) -> Option<QuorumSpec> {
        let node = map.get_node("quorum")?;
        let q = self.mapping(node, "quorum")?;
        self.keys(q, "quorum", &["regions", "failure_threshold", "success_threshold"]);
        let mut spec = QuorumSpec::default();
        for (key, slot) in [
            ("regions", &mut spec.regions),
            ("failure_threshold", &mut spec.failure_threshold),
            ("success_threshold", &mut spec.success_threshold),
        ] {
            if let Some(value) = q.get_scalar(key) {
                match value.as_str().parse::<u32>() {
                    Ok(n) if (1..=100).contains(&n) => *slot = n,
                    _ => self.problem(
                        value.span(),
                        format!("quorum.{key} must be a whole number in 1..=100, got {:?}", value.as_str()),
                    ),
                }
            }
        }
        Some(spec)
    }

    fn expr(&mut self, expr: &MarkedScalarNode, quorum: Option<QuorumSpec>) -> Option<Condition> {
        let text = expr.as_str().trim();
        let quorum_default = quorum.unwrap_or_default();
        let fail = |p: &mut Parser, message: String| {
            p.problem(expr.span(), message);
            None
        };
        let (head, args) = match text.split_once('(') {
            Some((head, rest)) if rest.ends_with(')') && !head.contains('[') => {
                (head.trim(), Some(rest.trim_end_matches(')').trim()))
            }
            _ => (text, None),
        };
        let no_args = |p: &mut Parser, c: Condition| match args {
            Some(_) => fail(p, format!("{head} takes no arguments")),
            None => Some(c),
        };
        if quorum.is_some() && !matches!(head, "endpoint_down" | "region_down" | "probe_path_degraded") {
            fail(self, "`quorum` applies only to endpoint_down, region_down and probe_path_degraded".into());
        }
        match head {
            "endpoint_down" => no_args(self, Condition::EndpointDown { quorum: quorum_default }),
            "region_down" => no_args(self, Condition::RegionDown { quorum: quorum_default }),
            "probe_path_degraded" => no_args(self, Condition::ProbePathDegraded { quorum: quorum_default }),
            "prober_isolated" => match args {
                None => Some(Condition::ProberIsolated { min_checks: 2 }),
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if n >= 1 => Some(Condition::ProberIsolated { min_checks: n }),
                    _ => fail(
                        self,
                        format!("prober_isolated(N): N is the fewest checks a prober must run to be judged, got {n:?}"),
                    ),
                },
            },
            "prober_silent" => match args.map(parse_duration) {
                Some(Ok(ms)) if ms >= 1_000 => Some(Condition::ProberSilent { after_ms: ms }),
                Some(Ok(_)) => fail(self, "prober_silent(D): D must be at least 1s".into()),
                Some(Err(e)) => fail(self, format!("prober_silent: {e}")),
                None => fail(self, "prober_silent needs how long, e.g. prober_silent(30s)".into()),
            },
            "burn_rate" => {
                let parts: Vec<&str> = args.unwrap_or("").split(',').map(str::trim).collect();
                let objective = parts
                    .first()
                    .and_then(|p| p.trim_end_matches('%').parse::<f64>().ok())
                    .and_then(Objective::from_percent);
                let windows = match parts.get(1).copied() {
                    Some("page") => Some(PAGE_WINDOWS.to_vec()),
                    Some("ticket") => Some(TICKET_WINDOWS.to_vec()),
                    _ => None,
                };
                match (objective, windows, parts.len()) {
                    (Some(objective), Some(windows), 2) => Some(Condition::BurnRate { objective, windows }),
                    _ => fail(self, format!("expected burn_rate(OBJECTIVE_PERCENT, page|ticket), e.g. burn_rate(99.9, page); got {text:?}")),
                }
            }
            "event" => {
                let parts: Vec<&str> = args.unwrap_or("").split(',').map(str::trim).collect();
                match parts.as_slice() {
                    ["prober_joined"] => Some(Condition::Event(EventKind::ProberJoined)),
                    ["recovered", rule] if is_valid_label_name(rule) => {
                        Some(Condition::Event(EventKind::Recovered { rule: rule.to_string() }))
                    }
                    _ => fail(self, format!("expected event(prober_joined) or event(recovered, RULE); got {text:?}")),
                }
            }
            _ => self.threshold(expr, text),
        }
    }

    /// `[max|mean](METRIC[WINDOW]) OP NUMBER` or `METRIC[WINDOW] OP NUMBER`.
    fn threshold(&mut self, expr: &MarkedScalarNode, text: &str) -> Option<Condition> {
        let syntax = "expected METRIC[WINDOW] OP NUMBER (e.g. latency_p95[1m] > 100), a signal (endpoint_down, region_down, probe_path_degraded, prober_isolated, prober_silent(30s)), burn_rate(99.9, page) or event(...)";
        let op_at = text.find(['<', '>', '=', '!']);
        let Some(op_at) = op_at else {
            self.problem(expr.span(), format!("{syntax}; got {text:?}"));
            return None;
        };
        let (lhs, rest) = text.split_at(op_at);
        let op_len = if rest.len() > 1 && rest.as_bytes()[1] == b'=' { 2 } else { 1 };
        let (op_text, number) = rest.split_at(op_len);
        let Some(op) = Comparison::parse(op_text) else {
            self.problem(expr.span(), format!("unknown comparison {op_text:?} (use >, >=, <, <=, ==, !=)"));
            return None;
        };
        let threshold = match number.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.problem(expr.span(), format!("the threshold {:?} is not a number", number.trim()));
                return None;
            }
        };
        let lhs = lhs.trim();
        let (stat, inner) = if let Some(inner) = lhs.strip_prefix("max(").and_then(|r| r.strip_suffix(')')) {
            (WindowStat::Max, inner)
        } else if let Some(inner) = lhs.strip_prefix("mean(").and_then(|r| r.strip_suffix(')')) {
            (WindowStat::Mean, inner)
        } else {
            (WindowStat::Default, lhs)
        };
        let Some((metric, window)) = inner.trim().strip_suffix(']').and_then(|r| r.split_once('[')) else {
            self.problem(expr.span(), format!("{syntax}; the metric needs a window, e.g. {}[1m]", inner.trim()));
            return None;
        };
        let metric = metric.trim();
        if Metric::parse(metric).is_none() {
            let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            let hint = closest(metric, &known).map(|k| format!("; did you mean {k:?}?")).unwrap_or_default();
            self.problem(expr.span(), format!("unknown SLI {metric:?}{hint} (known: {})", known.join(", ")));
            return None;
        }
        let window_minutes = match parse_duration(window) {
            Ok(ms) if ms % 60_000 == 0 && ms > 0 => u32::try_from(ms / 60_000).unwrap_or(u32::MAX),
            Ok(_) => {
                self.problem(
                    expr.span(),
                    format!("window {window:?} must be whole minutes (SLIs are kept per minute)"),
                );
                return None;
            }
            Err(e) => {
                self.problem(expr.span(), format!("window: {e}"));
                return None;
            }
        };
        Some(Condition::Threshold { metric: metric.to_string(), stat, window_minutes, op, threshold })
    }

    fn maintenance(&mut self, node: &Node) -> Option<MaintenanceWindow> {
        let map = self.mapping(node, "a maintenance window")?;
        self.keys(map, "a maintenance window", &["name", "matchers", "start", "end"]);
        let before = self.problems.len();
        let name = map.get_scalar("name").map(|n| n.as_str().to_string()).unwrap_or_default();
        let mut matchers = Vec::new();
        for text in self.string_list(map, "matchers") {
            match Matcher::parse(text.as_str()) {
                Ok(m) => matchers.push(m),
                Err(e) => self.problem(text.span(), e.to_string()),
            }
        }
        let time = |p: &mut Parser, key: &str| -> Option<i64> {
            match map.get_scalar(key) {
                None => {
                    p.problem(
                        map.span(),
                        format!("a maintenance window needs `{key}` (RFC 3339, e.g. 2026-12-24T02:00:00Z)"),
                    );
                    None
                }
                Some(s) => match chrono::DateTime::parse_from_rfc3339(s.as_str()) {
                    Ok(t) => Some(t.timestamp_millis()),
                    Err(e) => {
                        p.problem(s.span(), format!("{key}: {:?} is not an RFC 3339 time: {e}", s.as_str()));
                        None
                    }
                },
            }
        };
        let start = time(self, "start");
        let end = time(self, "end");
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                self.problem(map.span(), "a maintenance window must end after it starts");
            }
        }
        (self.problems.len() == before).then(|| MaintenanceWindow {
            name,
            matchers,
            start_ms: start.unwrap_or(0),
            end_ms: end.unwrap_or(0),
        })
    }

    /// What only the whole file can tell: duplicate names, references to unknown rules.
    fn cross_check(&mut self, set: &RuleSet, root: &MarkedMappingNode) {
        let mut seen = BTreeSet::new();
        let names: BTreeSet<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        for rule in &set.rules {
            if !seen.insert(rule.name.as_str()) {
                self.problem(root.span(), format!("alert {:?} is defined twice; names must be unique", rule.name));
            }
            for target in &rule.inhibits {
                if !names.contains(target.as_str()) {
                    self.problem(
                        root.span(),
                        format!("alert {:?} inhibits {target:?}, which no rule defines", rule.name),
                    );
                }
            }
            if let Condition::Event(EventKind::Recovered { rule: watched }) = &rule.condition {
                if !names.contains(watched.as_str()) {
                    self.problem(
                        root.span(),
                        format!("alert {:?} watches {watched:?} recover, which no rule defines", rule.name),
                    );
                }
            }
        }
    }
}

fn load_error(err: &marked_yaml::LoadError) -> (Marker, String) {
    use marked_yaml::LoadError as E;
    match err {
        E::TopLevelMustBeMapping(m) => (*m, "the rules file must be a mapping with `groups:`".into()),
        E::TopLevelMustBeSequence(m) => (*m, "expected a list".into()),
        E::UnexpectedAnchor(m) => (*m, "YAML anchors are not supported in rules files".into()),
        E::MappingKeyMustBeScalar(m) => (*m, "a key must be a plain value".into()),
        E::UnexpectedTag(m) => (*m, "YAML tags are not supported in rules files".into()),
        E::ScanError(m, e) => (*m, format!("not valid YAML: {}", e.info())),
        E::DuplicateKey(inner) => {
            let marker = inner.key.span().start().copied().unwrap_or_else(|| Marker::new(0, 0, 0, 0));
            (marker, format!("key {:?} appears twice", inner.key.as_str()))
        }
    }
}

/// The known word nearest to a typo, when it is near enough to be what was meant.
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(word, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + usize::from(ca != *cb));
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

pub mod routes;

#[cfg(test)]
mod tests;
