//! Everything one evaluation reads, as plain data: the catalogue's checks, each endpoint's
//! latest observations, prober liveness, the SLI values the threshold rules ask for and the
//! good/total counts the burn-rate rules ask for. Gathering it is I/O (`gather.rs`); judging
//! it is not (`engine.rs`), so the engine is tested with tables of inputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mixmon_model::alert::{Condition, Counts, LabelSet, LatestObservation, RuleSet, Scope, Silence, WindowStat};
use mixmon_store::ProberSeen;

/// What the engine needs to know of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    pub labels: BTreeMap<String, String>,
    pub interval_ms: u32,
    pub timeout_ms: u32,
}

impl CheckInfo {
    /// A prober's latest observation is current when it started within two intervals plus
    /// a timeout (one missed run is tolerated; a second opinion comes sooner anyway).
    pub fn fresh_after_ms(&self, now_ms: i64) -> i64 {
        now_ms - 2 * i64::from(self.interval_ms) - i64::from(self.timeout_ms) - 1_000
    }
}

/// One SLI read: a metric over a window for every instance of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliQuery {
    pub metric: String,
    pub stat: StatKey,
    pub scope: Scope,
    pub window_minutes: u32,
}

/// [`WindowStat`] as a hashable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatKey {
    Default,
    Max,
    Mean,
}

impl From<WindowStat> for StatKey {
    fn from(stat: WindowStat) -> Self {
        match stat {
            WindowStat::Default => StatKey::Default,
            WindowStat::Max => StatKey::Max,
            WindowStat::Mean => StatKey::Mean,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub now_ms: i64,
    pub checks: BTreeMap<String, CheckInfo>,
    /// Per check, every prober's latest observation of it.
    pub latest: BTreeMap<String, Vec<LatestObservation>>,
    pub probers: Vec<ProberSeen>,
    /// Per query, each instance's labels (as `libs/sli` names them) and value.
    pub slis: HashMap<SliQuery, Vec<(LabelSet, Option<f64>)>>,
    /// Per (endpoint, probing region, window minutes), the good/total counts over the window
    /// ending now (the minute in progress included), maintenance left out.
    pub counts: HashMap<(String, String, u32), Counts>,
    /// Every silence kept (the query service writes them; expired ones mute nothing).
    pub silences: Vec<Silence>,
}

/// The SLI reads `rules` need.
pub fn sli_queries(rules: &RuleSet) -> BTreeSet<SliQuery> {
    rules
        .rules
        .iter()
        .filter_map(|rule| match &rule.condition {
            Condition::Threshold { metric, stat, window_minutes, .. } => Some(SliQuery {
                metric: metric.clone(),
                stat: (*stat).into(),
                scope: rule.scope,
                window_minutes: *window_minutes,
            }),
            _ => None,
        })
        .collect()
}

/// The count windows (minutes) the burn-rate rules need.
pub fn count_windows(rules: &RuleSet) -> BTreeSet<u32> {
    rules
        .rules
        .iter()
        .filter_map(|rule| match &rule.condition {
            Condition::BurnRate { windows, .. } => Some(windows.iter().flat_map(|w| [w.long_minutes, w.short_minutes])),
            _ => None,
        })
        .flatten()
        .collect()
}
