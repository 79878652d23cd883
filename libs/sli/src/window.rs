//! One window ending now, for every instance of a scope: what an alert rule evaluates. The
//! window starts at the beginning of the minute `window_minutes` before now and ends now, so
//! it always covers at least `window_minutes` of time; rates divide by exactly the time it
//! covers (the minute in progress counts up to now). Values come from [`Metric::evaluate`]
//! and [`FigureMetric::evaluate`], as every panel's do.

use std::collections::BTreeMap;

use mixmon_model::alert::{Counts, LabelSet, Scope};
use mixmon_model::{figures, Fields, Minute, Rollup, SeriesKey, Subject, SubjectKind};
use mixmon_store::{Store, StoreError, MAX_READ_KEYS};

use crate::figure::{FigureMetric, Stat};
use crate::metric::Metric;
use crate::SliError;

/// The longest window a rule may read: the store's retention of minutes is 15 days, and a
/// longer look belongs to a dashboard.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

// Rolling metrics read up to a week, the longest window a rule may name.
const _: () = assert!(crate::metric::SLO_PERIOD_MINUTES <= MAX_WINDOW_MINUTES as i64);

/// What `instances` refuses: a combination the catalogue does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("{metric} has no {scope} scope; it has: {known}")]
    Scope { metric: &'static str, scope: &'static str, known: String },
    #[error("{metric} has a single form; a stat (max, mean) applies to {known}")]
    Stat { metric: &'static str, known: String },
    #[error("a window of {0} minutes is outside 1..={MAX_WINDOW_MINUTES}")]
    Length(u32),
}

/// One instance of a scope and the metric's value over the window (`None`: no data).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `endpoint`, `probe_region` (where a probe series was probed from), `region` (a mixer's,
    /// a node's, a pod's own), `node`, `mount`, `pod`, `namespace`, as the scope has them.
    pub labels: LabelSet,
    pub value: Option<f64>,
}

/// The scopes a metric can be read at.
pub fn scopes_of(metric: Metric) -> &'static [Scope] {
    match metric.figure().map(FigureMetric::kind) {
        None => &[Scope::EndpointRegion, Scope::Endpoint, Scope::Region, Scope::Global],
        Some(SubjectKind::Mixer) => &[Scope::Region, Scope::Global],
        Some(SubjectKind::Node) => &[Scope::Node],
        Some(SubjectKind::Pod) => &[Scope::Pod],
    }
}

/// The metrics a window stat applies to: the figures with a mean and a max form.
fn stat_metrics() -> String {
    FigureMetric::ALL.iter().filter(|m| m.default_stat().is_some()).map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// Whether `metric` can be read at `scope` with `stat` over `window_minutes`.
pub fn check(metric: Metric, stat: Option<Stat>, scope: Scope, window_minutes: u32) -> Result<(), WindowError> {
    if !scopes_of(metric).contains(&scope) {
        let known = scopes_of(metric).iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        return Err(WindowError::Scope { metric: metric.name(), scope: scope.as_str(), known });
    }
    if stat.is_some() && metric.figure().and_then(FigureMetric::default_stat).is_none() {
        return Err(WindowError::Stat { metric: metric.name(), known: stat_metrics() });
    }
    if window_minutes == 0 || window_minutes > MAX_WINDOW_MINUTES {
        return Err(WindowError::Length(window_minutes));
    }
    Ok(())
}

/// The minutes `from..to` of a window of `window_minutes` ending at `now_ms`, and its length.
fn bounds(now_ms: i64, window_minutes: u32) -> (Minute, Minute, i64) {
    let from = Minute::containing(now_ms - i64::from(window_minutes) * 60_000);
    let to = Minute(Minute::containing(now_ms).0 + 1);
    (from, to, (now_ms - from.start_ms()).max(1))
}

/// Every instance of `scope` and `metric`'s value over the window of `window_minutes`
/// ending at `now_ms` (`uptime` is always its rolling 24 h).
pub async fn instances(
    store: &dyn Store,
    metric: Metric,
    stat: Option<Stat>,
    scope: Scope,
    window_minutes: u32,
    now_ms: i64,
) -> Result<Vec<Instance>, SliError> {
    check(metric, stat, scope, window_minutes)?;
    match metric.figure() {
        Some(figure) => figure_instances(store, figure, stat, scope, window_minutes, now_ms).await,
        None => probe_instances(store, metric, scope, window_minutes, now_ms).await,
    }
}

async fn probe_instances(
    store: &dyn Store,
    metric: Metric,
    scope: Scope,
    window_minutes: u32,
    now_ms: i64,
) -> Result<Vec<Instance>, SliError> {
    // A rolling metric (uptime, burn rates, budget) reads its own window, whatever the rule says.
    let window_minutes = metric.rolling_minutes().map_or(window_minutes, |m| u32::try_from(m).unwrap_or(u32::MAX));
    let (from, to, window_ms) = bounds(now_ms, window_minutes);
    let listed = store.list_series().await?;
    // Which series each instance merges: an all-regions series where the store keeps one.
    let mut groups: BTreeMap<LabelSet, Vec<SeriesKey>> = BTreeMap::new();
    for key in listed {
        let endpoint = key.check.to_string();
        let region = key.region.to_string();
        match scope {
            Scope::EndpointRegion => {
                let labels = LabelSet::new().with("endpoint", endpoint).with("probe_region", region);
                groups.entry(labels).or_default().push(key);
            }
            Scope::Region => groups.entry(LabelSet::new().with("probe_region", region)).or_default().push(key),
            Scope::Endpoint | Scope::Global => {
                let labels =
                    if scope == Scope::Endpoint { LabelSet::new().with("endpoint", endpoint) } else { LabelSet::new() };
                let all = SeriesKey::all_regions(key.check.clone());
                let members = groups.entry(labels).or_default();
                if !members.contains(&all) {
                    members.push(all);
                }
            }
            Scope::Node | Scope::Pod | Scope::Prober => {}
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let window = window_rollup(store, &members, from, to).await?;
        let rolling = match metric.rolling_minutes() {
            None => None,
            Some(_) => {
                let hour = window_rollup(store, &members, Minute(to.0 - 60), to).await?;
                let counts = |r: &Rollup| Counts { total: r.total, good: r.successes };
                metric.rolling_value(counts(&window), counts(&hour))
            }
        };
        out.push(Instance { labels, value: metric.evaluate(&window, window_ms as f64 / 1_000.0, rolling) });
    }
    Ok(out)
}

/// `series` merged over minutes `from..to`, read in chunks the store accepts.
pub async fn window_rollup(
    store: &dyn Store,
    series: &[SeriesKey],
    from: Minute,
    to: Minute,
) -> Result<Rollup, StoreError> {
    let minutes = usize::try_from((to.0 - from.0).max(1)).unwrap_or(usize::MAX);
    let per_read = (MAX_READ_KEYS / minutes).max(1);
    let mut merged = Rollup::default();
    for chunk in series.chunks(per_read) {
        for minutes in store.read_rollups(chunk, from, to).await? {
            for (_, rollup) in minutes.iter().filter(|(m, _)| (from.0..to.0).contains(&m.0)) {
                merged.merge(rollup);
            }
        }
    }
    Ok(merged)
}

async fn figure_instances(
    store: &dyn Store,
    metric: FigureMetric,
    stat: Option<Stat>,
    scope: Scope,
    window_minutes: u32,
    now_ms: i64,
) -> Result<Vec<Instance>, SliError> {
    let (from, to, window_ms) = bounds(now_ms, window_minutes);
    let subjects: Vec<Subject> =
        store.list_subjects().await?.into_iter().filter(|s| s.kind == metric.kind() && !s.region.is_all()).collect();
    let minutes = usize::try_from(to.0 - from.0).unwrap_or(usize::MAX).max(1);
    let mut per_subject = Vec::with_capacity(subjects.len());
    for chunk in subjects.chunks((MAX_READ_KEYS / minutes).max(1)) {
        for (subject, mut read) in chunk.iter().zip(store.read_figures(chunk, from, to).await?) {
            figures::count_pods_not_yet_heard(&mut read, Minute::containing(now_ms));
            let mut fields = Fields::default();
            for (_, f) in read.iter().filter(|(m, _)| (from.0..to.0).contains(&m.0)) {
                fields.merge(f);
            }
            per_subject.push((subject, fields));
        }
    }
    let mut groups: BTreeMap<LabelSet, Fields> = BTreeMap::new();
    for (subject, fields) in per_subject {
        let region = subject.region.to_string();
        let name = subject.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        let labels = match scope {
            Scope::Global => LabelSet::new(),
            Scope::Region => LabelSet::new().with("region", region),
            Scope::Node => LabelSet::new().with("node", name).with("region", region),
            Scope::Pod => {
                let (namespace, pod) = name.split_once('.').unwrap_or(("", name.as_str()));
                LabelSet::new().with("pod", pod).with("namespace", namespace).with("region", region)
            }
            Scope::EndpointRegion | Scope::Endpoint | Scope::Prober => continue,
        };
        groups.entry(labels).or_default().merge_concurrent(&fields);
    }
    let mut out = Vec::new();
    for (labels, fields) in groups {
        if metric.part().is_some() {
            for part in metric.parts_in(&fields) {
                let value = metric.evaluate(&fields, window_ms, Some(&part), stat);
                let tag = metric.part().map_or("part", |p| p.tag());
                out.push(Instance { labels: labels.clone().with(tag, part), value });
            }
        } else {
            out.push(Instance { value: metric.evaluate(&fields, window_ms, None, stat), labels });
        }
    }
    Ok(out)
}
