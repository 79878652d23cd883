//! Reads what one evaluation needs from the store: the probe signals' latest observations
//! and prober liveness (two reads), each distinct SLI query once (through `libs/sli`, the
//! code the query service answers Grafana with), and the burn-rate windows' good/total counts
//! of every endpoint's per-region series (from the in-memory [`CountCache`]).

use std::collections::HashMap;

use mixmon_model::alert::{matches_all, LabelSet, MaintenanceWindow, RuleSet};
use mixmon_model::{CheckId, Minute, SeriesKey};
use mixmon_sli::{Metric, SliError, Stat};
use mixmon_store::{Store, StoreError};

use super::counts::CountCache;
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
    counts: &mut CountCache,
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
    let silences = store.read_silences(now_ms).await?;
    let mut inputs = Inputs {
        now_ms,
        checks: checks.into_iter().collect(),
        latest: ids.iter().map(|id| id.to_string()).zip(latest).collect(),
        probers,
        silences,
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
    if let Some(longest) = windows.iter().max() {
        // Per region, so the evaluation can leave out a region whose probers are cut off.
        let series: Vec<SeriesKey> = store
            .list_series()
            .await?
            .into_iter()
            .filter(|key| !key.is_all_regions() && catalogue.checks.contains_key(&key.check))
            .collect();
        counts.refresh(store, &series, i64::from(*longest) + 1, now_ms).await?;
        for key in &series {
            let labels = LabelSet::new().with(super::signals::ENDPOINT, key.check.as_str());
            let maintenance: Vec<&MaintenanceWindow> =
                rules.maintenance.iter().filter(|w| matches_all(&w.matchers, &labels)).collect();
            let excluded = |minute: i64| {
                let start = Minute(minute).start_ms();
                maintenance.iter().any(|w| start < w.end_ms && start + 60_000 > w.start_ms)
            };
            for minutes in &windows {
                let window = counts.window(key, now_ms, *minutes, excluded);
                inputs.counts.insert((key.check.to_string(), key.region.to_string(), *minutes), window);
            }
        }
    }
    Ok(inputs)
}
