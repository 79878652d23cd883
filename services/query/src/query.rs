//! `POST /query`: every visible target becomes time series (one per endpoint and region, or
//! per mixer region, node or pod for the figure metrics, see [`crate::figure_query`]) or one
//! table per metric, always inside a JSON array, `refId` echoed, timestamps in epoch
//! milliseconds.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::JsonBody;
use crate::compute::{load_groups, GroupSeries, Needs, PointCache};
use crate::error::QueryError;
use crate::figure_query;
use crate::metric::Metric;
use crate::request::{parse_query, QueryRequest, Target};
use crate::selection::select;
use crate::timeline::Timeline;
use crate::AppState;
use mixmon_model::alert::Matcher;

pub(crate) async fn handler(
    State(state): State<AppState>,
    JsonBody(mut body): JsonBody,
) -> Result<Response, QueryError> {
    let now = chrono::Utc::now().timestamp_millis();
    let annotations = take_annotation_targets(&mut body)?;
    let request = parse_query(&body, now)?;
    let (mut out, admitted) = run(state.store.as_ref(), &request, &state.points, &state.point_budget).await?;
    if !annotations.is_empty() {
        let (from, to) = crate::timeline::parse_range(&body, now)?;
        for (ref_id, matchers) in &annotations {
            out.push(crate::alerts::annotations(&state, ref_id.as_ref(), from, to, matchers).await?);
        }
    }
    // Serialized while the admission is held, and the tree freed before the bytes are sent.
    // A Value tree always serializes (its map keys are strings).
    let body = serde_json::to_vec(&out).unwrap_or_else(|_| b"[]".to_vec());
    drop((out, admitted));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// How many datapoints all `/query` requests may be computing at once, in permits of
/// [`POINTS_PER_PERMIT`]: twice what one request may answer. A burst of heavy but allowed
/// queries then waits its turn (each still under the request timeout) instead of multiplying
/// the memory they take.
pub(crate) struct PointBudget {
    pub cap: usize,
    in_flight: Arc<Semaphore>,
    permits: u32,
}

const POINTS_PER_PERMIT: usize = 1_000;

impl PointBudget {
    pub fn new(cap: usize) -> Self {
        let permits = u32::try_from((2 * cap).div_ceil(POINTS_PER_PERMIT))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        PointBudget { cap, in_flight: Arc::new(Semaphore::new(permits as usize)), permits }
    }

    async fn admit(&self, datapoints: usize) -> Option<OwnedSemaphorePermit> {
        let wanted = u32::try_from(datapoints.div_ceil(POINTS_PER_PERMIT)).unwrap_or(u32::MAX).clamp(1, self.permits);
        // Never closed; a closed semaphore would only mean no admission control.
        self.in_flight.clone().acquire_many_owned(wanted).await.ok()
    }
}

/// One annotation query: its `refId` and the matchers that narrow it.
type AnnotationTarget = (Option<Value>, Vec<Matcher>);

/// Annotation queries (`refId: "Anno"`, Grafana's standard annotation support; target
/// `alerts`, optionally narrowed by `payload.filter`, Alertmanager matchers) are taken out of
/// the body: they read alert history, not metrics.
fn take_annotation_targets(body: &mut Map<String, Value>) -> Result<Vec<AnnotationTarget>, QueryError> {
    let Some(Value::Array(targets)) = body.get_mut("targets") else { return Ok(Vec::new()) };
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(targets.len());
    for target in targets.drain(..) {
        let is_annotation = target.get("refId").and_then(Value::as_str) == Some("Anno");
        if !is_annotation {
            kept.push(target);
            continue;
        }
        let name = target.get("target").and_then(Value::as_str).unwrap_or("alerts").trim();
        if !name.is_empty() && name != "alerts" {
            return Err(QueryError::bad_request(
                "unknown_annotation",
                format!("annotation target '{}' is unknown; known: alerts", crate::error::clip(name, 60)),
            ));
        }
        let filter = target.get("payload").and_then(|p| p.get("filter")).and_then(Value::as_str).unwrap_or("");
        let matchers = Matcher::parse_list(filter)
            .map_err(|e| QueryError::bad_request("invalid_filter", crate::error::clip(&e.to_string(), 200)))?;
        taken.push((target.get("refId").cloned(), matchers));
    }
    *targets = kept;
    Ok(taken)
}

pub(crate) async fn run(
    store: &dyn mixmon_store::Store,
    request: &QueryRequest,
    cache: &PointCache,
    budget: &PointBudget,
) -> Result<(Vec<Value>, Option<OwnedSemaphorePermit>), QueryError> {
    if request.targets.is_empty() {
        return Ok((Vec::new(), None));
    }
    let probes = |target: &Target| target.metrics.iter().any(|m| m.figure().is_none());
    let figures = |target: &Target| target.metrics.iter().any(|m| m.figure().is_some());
    let all = if request.targets.iter().any(probes) { store.list_series().await? } else { Vec::new() };
    let subjects = if request.targets.iter().any(figures) { store.list_subjects().await? } else { Vec::new() };
    let needs = Needs {
        lead_minutes: request
            .targets
            .iter()
            .flat_map(|t| t.metrics.iter().filter_map(|m| m.rolling_minutes()))
            .max()
            .unwrap_or(0),
        whole_range: request.targets.iter().any(|t| t.table),
    };
    // Several targets often show the same series (success rate and p95 of one endpoint):
    // each is read once per request, and all of them in one store read per chunk of time, so
    // a 24-series panel costs a couple of round trips, not a couple per series.
    let mut unique: HashMap<(String, String), usize> = HashMap::new();
    let mut members: Vec<Vec<mixmon_model::SeriesKey>> = Vec::new();
    let mut selected = Vec::with_capacity(request.targets.len());
    for target in &request.targets {
        let groups = if probes(target) { select(&all, &target.selection, &request.filters) } else { Vec::new() };
        for group in &groups {
            if let Entry::Vacant(slot) = unique.entry(group.id()) {
                slot.insert(members.len());
                members.push(group.members.clone());
            }
        }
        selected.push(groups);
    }
    let datapoints = check_budget(request, &selected, &subjects, budget.cap)?;
    let admitted = budget.admit(datapoints).await;
    let series = load_groups(store, &members, &request.timeline, needs, cache).await?;
    let loaded: HashMap<(String, String), &GroupSeries> =
        unique.into_iter().filter_map(|(id, i)| series.get(i).map(|s| (id, s))).collect();
    let mut out = Vec::new();
    for (target, groups) in request.targets.iter().zip(&selected) {
        let folded: Vec<(&str, &str, &GroupSeries)> = groups
            .iter()
            .filter_map(|g| loaded.get(&g.id()).map(|s| (g.endpoint.as_str(), g.region.as_str(), *s)))
            .collect();
        for metric in target.metrics.iter().filter(|m| m.figure().is_none()) {
            if target.table {
                out.push(table(target, *metric, &folded, &request.timeline));
            } else {
                for (endpoint, region, series) in &folded {
                    let name = if target.metrics.len() > 1 {
                        format!("{endpoint} {region} {}", metric.name())
                    } else {
                        format!("{endpoint} {region}")
                    };
                    let datapoints: Vec<Value> = series
                        .datapoints(*metric, &request.timeline)
                        .into_iter()
                        .map(|(value, ts)| json!([value, ts]))
                        .collect();
                    let mut element = Map::new();
                    element.insert("target".into(), json!(name));
                    insert_ref_id(&mut element, target);
                    element.insert("datapoints".into(), Value::Array(datapoints));
                    element.insert("tags".into(), json!({ "endpoint": endpoint, "region": region }));
                    element.insert("unit".into(), json!(metric.unit()));
                    out.push(Value::Object(element));
                }
            }
        }
        if figures(target) {
            out.extend(figure_query::run_target(store, &subjects, target, &request.filters, &request.timeline).await?);
        }
    }
    Ok((out, admitted))
}

/// Refuses, before reading anything, a query that would answer more than `cap` datapoints:
/// per target, its probe metrics times its series, and its figure metrics times the subjects
/// of their kind (an upper bound), each times the points (a table row counts one).
fn check_budget(
    request: &QueryRequest,
    selected: &[Vec<crate::selection::SeriesGroup>],
    subjects: &[mixmon_model::Subject],
    cap: usize,
) -> Result<usize, QueryError> {
    let points = request.timeline.points.max(1);
    let mut series = 0usize;
    let mut datapoints = 0usize;
    for (target, groups) in request.targets.iter().zip(selected) {
        let per_series = if target.table { 1 } else { points };
        let probe_metrics = target.metrics.iter().filter(|m| m.figure().is_none()).count();
        let figure_series: usize = target
            .metrics
            .iter()
            .filter_map(|m| m.figure())
            .map(|f| subjects.iter().filter(|s| s.kind == f.kind()).count().max(1))
            .sum();
        let target_series = probe_metrics.saturating_mul(groups.len()).saturating_add(figure_series);
        series = series.saturating_add(target_series);
        datapoints = datapoints.saturating_add(target_series.saturating_mul(per_series));
    }
    if datapoints > cap {
        return Err(QueryError::bad_request(
            "too_many_datapoints",
            format!(
                "this query would answer {datapoints} datapoints ({series} series of up to {points} points); at most {cap} \
                 are answered: ask for fewer metrics, endpoints or regions, or fewer points (maxDataPoints)"
            ),
        ));
    }
    Ok(datapoints)
}

fn insert_ref_id(element: &mut Map<String, Value>, target: &Target) {
    if let Some(ref_id) = &target.ref_id {
        element.insert("refId".into(), ref_id.clone());
    }
}

/// One table per (target, metric): a row per series with the metric over the whole range.
fn table(target: &Target, metric: Metric, folded: &[(&str, &str, &GroupSeries)], timeline: &Timeline) -> Value {
    let rows: Vec<Value> = folded
        .iter()
        .map(|(endpoint, region, series)| {
            json!([timeline.to_ms, endpoint, region, series.whole_range_value(metric, timeline)])
        })
        .collect();
    let mut element = Map::new();
    element.insert("type".into(), json!("table"));
    insert_ref_id(&mut element, target);
    element.insert(
        "columns".into(),
        json!([
            {"text": "Time", "type": "time"},
            {"text": "endpoint", "type": "string"},
            {"text": "region", "type": "string"},
            {"text": metric.name(), "type": "number", "unit": metric.unit()}
        ]),
    );
    element.insert("rows".into(), Value::Array(rows));
    Value::Object(element)
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn heavy_queries_beyond_the_budget_wait_their_turn_and_light_ones_fit_beside() {
        let budget = PointBudget::new(100_000); // 200 000 datapoints at once
        let first = budget.admit(150_000).await;
        assert!(first.is_some());
        // A light one fits beside it.
        let light = tokio::time::timeout(Duration::from_secs(5), budget.admit(1_000)).await;
        assert!(matches!(light, Ok(Some(_))));
        drop(light);
        // A second heavy one waits until the first is done.
        let waiting = tokio::time::timeout(Duration::from_millis(200), budget.admit(150_000)).await;
        assert!(waiting.is_err(), "two heavy queries computed at once");
        drop(first);
        let admitted = tokio::time::timeout(Duration::from_secs(5), budget.admit(150_000)).await;
        assert!(matches!(admitted, Ok(Some(_))));
        // More than the whole budget is admitted alone, not refused or stuck.
        drop(admitted);
        let huge = tokio::time::timeout(Duration::from_secs(5), budget.admit(10_000_000)).await;
        assert!(matches!(huge, Ok(Some(_))));
    }
}
