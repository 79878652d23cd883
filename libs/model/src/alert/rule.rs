//! Alert rules in their validated form: what the rules file (parsed in `libs/rules`) becomes.
//! A rule is a condition over mixmon's own SLIs or probe streaks, applied to every instance
//! of a scope, with Prometheus' `for` / `keep_firing_for`, labels and annotation templates.

use std::collections::BTreeMap;

use super::burn::{BurnWindow, Objective};
use super::labels::{LabelSet, ALERTNAME, SEVERITY};
use super::machine::Timing;
use super::matcher::Matcher;
use super::quorum::QuorumSpec;
use super::state::Severity;
use super::template::Template;

/// Which instances a rule is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Each endpoint as seen from each probing region (labels `endpoint`, `probe_region`).
    EndpointRegion,
    /// Each endpoint, every region merged (label `endpoint`).
    Endpoint,
    /// Each region (label `region`).
    Region,
    /// Everything merged (no scope labels).
    Global,
    /// Each node (labels `node`, `region`; per `mount` for disks).
    Node,
    /// Each pod (labels `pod`, `namespace`, `region`).
    Pod,
    /// Each prober (labels `prober`, `probe_region`).
    Prober,
}

impl Scope {
    pub const ALL: [Scope; 7] =
        [Scope::EndpointRegion, Scope::Endpoint, Scope::Region, Scope::Global, Scope::Node, Scope::Pod, Scope::Prober];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EndpointRegion => "endpoint_region",
            Scope::Endpoint => "endpoint",
            Scope::Region => "region",
            Scope::Global => "global",
            Scope::Node => "node",
            Scope::Pod => "pod",
            Scope::Prober => "prober",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
}

impl Comparison {
    pub fn parse(text: &str) -> Option<Comparison> {
        Some(match text {
            ">" => Comparison::Greater,
            ">=" => Comparison::GreaterOrEqual,
            "<" => Comparison::Less,
            "<=" => Comparison::LessOrEqual,
            "==" => Comparison::Equal,
            "!=" => Comparison::NotEqual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
            Comparison::Equal => value == threshold,
            Comparison::NotEqual => value != threshold,
        }
    }
}

/// For figures kept as both a mean and a maximum: which one the window's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStat {
    /// The metric's own reading of the window (its mean for gauges).
    Default,
    /// `max_over_time(...)`.
    Max,
    /// `avg_over_time(...)`.
    Mean,
}

/// An event a rule turns into a one-shot info alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A prober was seen for the first time (or again after it had gone).
    ProberJoined,
    /// A firing alert of the named rule resolved.
    Recovered { rule: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `metric[window] op threshold`, e.g. `latency_p95[1m] > 100`.
    Threshold {
        metric: String,
        stat: WindowStat,
        window_minutes: u32,
        op: Comparison,
        threshold: f64,
    },
    /// The endpoint fails from a quorum of regions (scope `endpoint`).
    EndpointDown {
        quorum: QuorumSpec,
    },
    /// Every endpoint of the region (catalogue label `region`) is down by quorum (scope `region`).
    RegionDown {
        quorum: QuorumSpec,
    },
    /// The endpoint fails from this region, but not from a quorum (scope `endpoint_region`).
    ProbePathDegraded {
        quorum: QuorumSpec,
    },
    /// Every check of the prober fails while other regions see them healthy (scope `prober`).
    ProberIsolated {
        min_checks: u32,
    },
    /// The prober has not reported for `after_ms` (scope `prober`).
    ProberSilent {
        after_ms: u64,
    },
    /// The SLO burns its error budget too fast in both windows of any pair (scope `endpoint`).
    BurnRate {
        objective: Objective,
        windows: Vec<BurnWindow>,
    },
    Event(EventKind),
}

impl Condition {
    /// The scope a signal implies; thresholds take theirs from the rule.
    pub fn implied_scope(&self) -> Option<Scope> {
        match self {
            Condition::Threshold { .. } => None,
            Condition::EndpointDown { .. } | Condition::BurnRate { .. } => Some(Scope::Endpoint),
            Condition::RegionDown { .. } => Some(Scope::Region),
            Condition::ProbePathDegraded { .. } => Some(Scope::EndpointRegion),
            Condition::ProberIsolated { .. } | Condition::ProberSilent { .. } => Some(Scope::Prober),
            Condition::Event(EventKind::ProberJoined) => Some(Scope::Prober),
            Condition::Event(EventKind::Recovered { .. }) => None,
        }
    }
}

/// One validated alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's `alert` name, the `alertname` label.
    pub name: String,
    pub group: String,
    /// The expression as written, for display.
    pub expr: String,
    pub condition: Condition,
    pub scope: Scope,
    /// Only instances whose labels match all of these (e.g. `endpoint=~"api|edge"`).
    pub matchers: Vec<Matcher>,
    pub timing: Timing,
    /// Static labels; `severity` is always among them.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, Template>,
    /// Alerts this one stands above when both carry the same values of `inhibits_equal`
    /// (the relation; muting is routing's job).
    pub inhibits: Vec<String>,
    pub inhibits_equal: Vec<String>,
}

/// One SLI minute: what a per-minute signal can lag behind the probes by (the minute is
/// folded when it closes).
const SLI_MINUTE_MS: i64 = 60_000;

/// How an alert muted by a cause relates to the cause's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutingTail {
    /// The alert reads a window that still holds the outage after the cause resolved (a burn
    /// rate): muted by a cause that fired, it stays muted to the end of its own episode, and
    /// it is the cause's tail if it starts within this long of the cause's resolve.
    Episode { starts_within_ms: i64 },
    /// The alert reads the present: it is muted for this long after the cause resolved (the
    /// time it would need to fire afresh), then pages if it still holds.
    For { ms: i64 },
}

impl MutingTail {
    pub fn ms(self) -> i64 {
        match self {
            MutingTail::Episode { starts_within_ms } => starts_within_ms,
            MutingTail::For { ms } => ms,
        }
    }
}

impl Rule {
    pub fn severity(&self) -> Option<Severity> {
        self.labels.get(SEVERITY).and_then(|s| Severity::parse(s))
    }

    /// How long this rule's alerts remain a cause's symptoms after the cause resolved: what
    /// its condition looks back over, plus its `for`, plus one SLI minute of fold lag.
    pub fn muting_tail(&self) -> MutingTail {
        let for_ms = i64::try_from(self.timing.for_ms).unwrap_or(i64::MAX);
        let minutes = |m: u32| i64::from(m) * 60_000;
        let lag = |looked_back: i64| looked_back.saturating_add(for_ms).saturating_add(SLI_MINUTE_MS);
        match &self.condition {
            Condition::BurnRate { windows, .. } => {
                let short = windows.iter().map(|w| minutes(w.short_minutes)).max().unwrap_or(0);
                MutingTail::Episode { starts_within_ms: lag(short) }
            }
            Condition::Threshold { window_minutes, .. } => MutingTail::For { ms: lag(minutes(*window_minutes)) },
            _ => MutingTail::For { ms: lag(0) },
        }
    }

    /// The labels of the rule's alert for one instance: the instance's labels, then the
    /// rule's (which win), then `alertname`.
    pub fn alert_labels(&self, instance: &LabelSet) -> LabelSet {
        let mut labels = instance.clone();
        for (name, value) in &self.labels {
            labels.insert(name.clone(), value.clone());
        }
        labels.insert(ALERTNAME, self.name.clone());
        labels
    }

    pub fn render_annotations(&self, labels: &LabelSet, value: Option<f64>) -> BTreeMap<String, String> {
        self.annotations.iter().map(|(name, template)| (name.clone(), template.render(labels, value))).collect()
    }
}

/// A configured maintenance window: matching endpoints' minutes inside it are left out of
/// SLO budgets, and their alerts are not raised.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl MaintenanceWindow {
    pub fn covers(&self, labels: &LabelSet, at_ms: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&at_ms) && super::matcher::matches_all(&self.matchers, labels)
    }
}

/// A whole rules file, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub maintenance: Vec<MaintenanceWindow>,
}

impl RuleSet {
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_and_scopes() {
        assert!(Comparison::parse(">").unwrap().holds(2.0, 1.0));
        assert!(!Comparison::parse("<").unwrap().holds(2.0, 1.0));
        assert!(Comparison::parse(">=").unwrap().holds(1.0, 1.0));
        assert!(Comparison::parse("!=").unwrap().holds(1.0, 2.0));
        assert_eq!(Comparison::parse("=>"), None);
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
    }

    #[test]
    fn alert_labels_put_the_rule_above_the_instance() {
        let rule = Rule {
            name: "ServiceDown".into(),
            group: "availability".into(),
            expr: "endpoint_down".into(),
            condition: Condition::EndpointDown { quorum: QuorumSpec::default() },
            scope: Scope::Endpoint,
            matchers: vec![],
            timing: Timing::new(60_000, 0),
            labels: BTreeMap::from([("severity".into(), "critical".into())]),
            annotations: BTreeMap::from([(
                "summary".into(),
                Template::parse("{{ $labels.endpoint }} down from {{ $value }} regions").unwrap(),
            )]),
            inhibits: vec![],
            inhibits_equal: vec![],
        };
        let instance = LabelSet::new().with("endpoint", "eu-west").with("severity", "bogus");
        let labels = rule.alert_labels(&instance);
        assert_eq!(labels.get("severity"), "critical");
        assert_eq!(labels.get(ALERTNAME), "ServiceDown");
        assert_eq!(rule.render_annotations(&labels, Some(3.0))["summary"], "eu-west down from 3 regions");
        assert_eq!(rule.severity(), Some(Severity::Critical));
    }

    #[test]
    fn a_symptom_reading_a_window_is_the_tail_of_its_cause_for_that_window() {
        let rule = |condition: Condition, for_ms: u64| Rule {
            name: "R".into(),
            group: "g".into(),
            expr: String::new(),
            condition,
            scope: Scope::Endpoint,
            matchers: vec![],
            timing: Timing::new(for_ms, 0),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            inhibits: vec![],
            inhibits_equal: vec![],
        };
        let down = rule(Condition::EndpointDown { quorum: QuorumSpec::default() }, 60_000);
        assert_eq!(down.muting_tail(), MutingTail::For { ms: 120_000 }, "its `for` and one SLI minute");
        let latency = Condition::Threshold {
            metric: "latency_p95".into(),
            stat: WindowStat::Default,
            window_minutes: 1,
            op: Comparison::Greater,
            threshold: 100.0,
        };
        assert_eq!(rule(latency, 120_000).muting_tail(), MutingTail::For { ms: 240_000 });
        let burn = Condition::BurnRate {
            objective: Objective { ppm: 999_000 },
            windows: crate::alert::burn::PAGE_WINDOWS.to_vec(),
        };
        // The 6x-over-30-minutes pair still sees a five-minute outage half an hour later.
        assert_eq!(rule(burn, 0).muting_tail(), MutingTail::Episode { starts_within_ms: 31 * 60_000 });
    }
}
