//! Reads what one evaluation needs from the store: the probe signals' latest observations
//! and prober liveness (two reads), each distinct SLI query once (through `libs/sli`, the
//! code the query service answers Grafana with), and the burn-rate windows' good/total counts
//! of every endpoint's all-regions series.

use std::collections::HashMap;

use mixmon_model::alert::burn::Counts;
use mixmon_model::alert::RuleSet;
use mixmon_model::{CheckId, Minute, SeriesKey};
use mixmon_sli::{Metric, SliError, Stat};
use mixmon_store::{Store, StoreError};

use super::inputs::{count_windows, sli_queries, CheckInfo, Inputs, StatKey};
use crate::catalogue::Catalogue;

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sli(#[from] SliError),
    #[error("rule reads unknown SLI {0:?}")]
    UnknownSli(String),
}

pub async fn gather(
    store: &dyn Store,
    catalogue: &Catalogue,
    rules: &RuleSet,
    now_ms: i64,
) -> Result<Inputs, GatherError> {
    let checks: HashMap<String, CheckInfo> = catalogue
        .checks
        .iter()
        .map(|(id, spec)| {
            let labels = catalogue.labels.get(id).cloned().unwrap_or_default();
            (id.to_string(), CheckInfo { labels, interval_ms: spec.interval_ms, timeout_ms: spec.timeout_ms })
        })
        .collect();
    let ids: Vec<CheckId> = catalogue.checks.keys().cloned().collect();
    let latest = store.read_latest(&ids).await?;
    let probers = store.read_probers().await?;
    let mut inputs = Inputs {
        now_ms,
        checks: checks.into_iter().collect(),
        latest: ids.iter().map(|id| id.to_string()).zip(latest).collect(),
        probers,
        ..Inputs::default()
    };
    for query in sli_queries(rules) {
        let metric = Metric::parse(&query.metric).ok_or_else(|| GatherError::UnknownSli(query.metric.clone()))?;
        let stat = match query.stat {
            StatKey::Default => None,
            StatKey::Max => Some(Stat::Max),
            StatKey::Mean => Some(Stat::Mean),
        };
        let instances = mixmon_sli::instances(store, metric, stat, query.scope, query.window_minutes, now_ms).await?;
        inputs.slis.insert(query, instances.into_iter().map(|i| (i.labels, i.value)).collect());
    }
    let windows = count_windows(rules);
    if !windows.is_empty() {
        let end = Minute::containing(now_ms).0 + 1;
        for id in &ids {
            let series = [SeriesKey::all_regions(id.clone())];
            for minutes in &windows {
                let from = Minute(end - i64::from(*minutes));
                let window = mixmon_sli::window_rollup(store, &series, from, Minute(end)).await?;
                let excluded = maintenance_counts(store, rules, id, from, Minute(end)).await?;
                let counts = Counts {
                    total: window.total.saturating_sub(excluded.total),
                    good: window.successes.saturating_sub(excluded.good),
                };
                inputs.counts.insert((id.to_string(), *minutes), counts);
            }
        }
    }
    Ok(inputs)
}

/// The counts of `check`'s minutes in `from..to` that fall in a maintenance window for it:
/// left out of its error budget.
async fn maintenance_counts(
    store: &dyn Store,
    rules: &RuleSet,
    check: &CheckId,
    from: Minute,
    to: Minute,
) -> Result<Counts, GatherError> {
    let labels = mixmon_model::alert::LabelSet::new().with(super::signals::ENDPOINT, check.as_str());
    let mut excluded = Counts::default();
    for window in rules.maintenance.iter().filter(|w| mixmon_model::alert::matches_all(&w.matchers, &labels)) {
        let start = Minute::containing(window.start_ms).max(from);
        let end = Minute(Minute::containing(window.end_ms.saturating_sub(1)).0 + 1).min(to);
        if start >= end {
            continue;
        }
        let inside = mixmon_sli::window_rollup(store, &[SeriesKey::all_regions(check.clone())], start, end).await?;
        excluded.add(Counts { total: inside.total, good: inside.successes });
    }
    Ok(excluded)
}
