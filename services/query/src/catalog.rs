//! The discovery endpoints Grafana's editors call: `/metrics` (metric list and the builder's
//! payload fields), `/metric-payload-options`, `/variable`, `/tag-keys`, `/tag-values` and
//! the legacy `/search`. Endpoint and region lists come from the store's series list; node,
//! pod and mixer-region lists from its subject list, genres and mounts from the last day's
//! figures.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use mixmon_model::{SeriesKey, Subject, SubjectKind};
use serde_json::{json, Map, Value};

use crate::body::{object_or_json_string, opt_string, unescape, JsonBody};
use crate::error::{clip, QueryError};
use crate::figure::{FigureMetric, Part};
use crate::figure_query::recent_parts;
use crate::filter::{accepts_all, accepts_subject, parse_filters};
use crate::metric::Metric;
use crate::request::{parse_selection, MERGED_REGION};
use crate::AppState;

/// Sorted endpoint and region names present in the store.
async fn names(state: &AppState) -> Result<(Vec<String>, Vec<String>), QueryError> {
    names_where(state, |_| true).await
}

/// Sorted endpoint and region names of the stored series `keep` accepts.
async fn names_where(
    state: &AppState,
    keep: impl Fn(&SeriesKey) -> bool,
) -> Result<(Vec<String>, Vec<String>), QueryError> {
    let mut series = state.store.list_series().await?;
    series.retain(|k| keep(k));
    let endpoints: BTreeSet<String> = series.iter().map(|k| k.check.to_string()).collect();
    let regions: BTreeSet<String> = series.iter().map(|k| k.region.to_string()).collect();
    Ok((endpoints.into_iter().collect(), regions.into_iter().collect()))
}

/// Sorted names of the stored subjects of `kind` that `keep` accepts (all-regions
/// pseudo-subjects left out), and their sorted regions.
async fn subject_names_where(
    state: &AppState,
    kind: SubjectKind,
    keep: impl Fn(&Subject) -> bool,
) -> Result<(Vec<String>, Vec<String>), QueryError> {
    let subjects: Vec<Subject> = state
        .store
        .list_subjects()
        .await?
        .into_iter()
        .filter(|s| s.kind == kind && !s.region.is_all() && keep(s))
        .collect();
    let names: BTreeSet<String> = subjects.iter().filter_map(|s| s.name.as_ref().map(|n| n.to_string())).collect();
    let regions: BTreeSet<String> = subjects.iter().map(|s| s.region.to_string()).collect();
    Ok((names.into_iter().collect(), regions.into_iter().collect()))
}

fn format_payload() -> Value {
    json!({"name": "format", "label": "Format", "type": "select", "width": 12,
           "options": [{"value": "time_series", "label": "Time series"}, {"value": "table", "label": "Table"}]})
}

/// The builder's payload fields of one metric.
fn payloads_of(metric: Metric) -> Value {
    let Some(figure) = metric.figure() else {
        return json!([
            {"name": "endpoint", "label": "Endpoint", "type": "multi-select",
             "placeholder": "every endpoint", "width": 20},
            {"name": "region", "label": "Region", "type": "multi-select",
             "placeholder": "each region ('all' merges them)", "width": 20},
            format_payload()
        ]);
    };
    let mut payloads = Vec::new();
    match figure.kind() {
        SubjectKind::Mixer => payloads.push(json!({"name": "region", "label": "Region", "type": "multi-select",
            "placeholder": "each region and all merged", "width": 20})),
        kind => {
            payloads.push(json!({"name": "region", "label": "Region", "type": "multi-select",
                "placeholder": "every region", "width": 20}));
            let (name, label) = if kind == SubjectKind::Node { ("node", "Node") } else { ("pod", "Pod") };
            payloads.push(json!({"name": name, "label": label, "type": "multi-select",
                "placeholder": format!("every {name}"), "width": 24}));
        }
    }
    match figure.part() {
        Some(Part::Genre) => payloads.push(json!({"name": "genre", "label": "Genre", "type": "multi-select",
            "placeholder": "every genre", "width": 20})),
        Some(Part::Mount) => payloads.push(json!({"name": "mount", "label": "Mount", "type": "multi-select",
            "placeholder": "every mount", "width": 20})),
        None => {}
    }
    if let Some(default) = figure.default_stat() {
        let default = if default == crate::figure::Stat::Max { "max" } else { "mean" };
        payloads.push(json!({"name": "stat", "label": "Statistic", "type": "select", "width": 12,
            "placeholder": default,
            "options": [{"value": "mean", "label": "Mean"}, {"value": "max", "label": "Max"}]}));
    }
    payloads.push(format_payload());
    Value::Array(payloads)
}

pub(crate) async fn metrics(State(_): State<AppState>, JsonBody(_): JsonBody) -> Json<Vec<Value>> {
    Json(
        Metric::ALL
            .iter()
            .map(|m| json!({"value": m.name(), "label": m.label(), "payloads": payloads_of(*m)}))
            .collect(),
    )
}

pub(crate) async fn payload_options(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<Value>>, QueryError> {
    let name = opt_string(body.get("name"), "name")?.unwrap_or_default();
    let metric = opt_string(body.get("metric"), "metric")?;
    let figure = metric.as_deref().and_then(|m| Metric::parse(unescape(m.trim()).as_str())).and_then(Metric::figure);
    let pairs =
        |list: Vec<String>| -> Vec<Value> { list.into_iter().map(|v| json!({"value": v, "label": v})).collect() };
    let options = match name.as_str() {
        "endpoint" => names(&state).await?.0.into_iter().map(|e| json!({"value": e, "label": e})).collect(),
        "region" => match figure.map(FigureMetric::kind) {
            Some(SubjectKind::Mixer) => {
                let mut options = vec![json!({"value": MERGED_REGION, "label": "all (merged)"})];
                options.extend(pairs(subject_names_where(&state, SubjectKind::Mixer, |_| true).await?.1));
                options
            }
            Some(kind) => pairs(subject_names_where(&state, kind, |_| true).await?.1),
            None => {
                let mut options = vec![json!({"value": MERGED_REGION, "label": "all (merged)"})];
                options.extend(names(&state).await?.1.into_iter().map(|r| json!({"value": r, "label": r})));
                options
            }
        },
        "node" => pairs(subject_names_where(&state, SubjectKind::Node, |_| true).await?.0),
        "pod" => pairs(subject_names_where(&state, SubjectKind::Pod, |_| true).await?.0),
        "genre" => pairs(recent_parts(state.store.as_ref(), SubjectKind::Mixer, now_ms()).await?),
        "mount" => pairs(recent_parts(state.store.as_ref(), SubjectKind::Node, now_ms()).await?),
        "stat" => vec![json!({"value": "mean", "label": "Mean"}), json!({"value": "max", "label": "Max"})],
        "format" => {
            vec![json!({"value": "time_series", "label": "Time series"}), json!({"value": "table", "label": "Table"})]
        }
        _ => Vec::new(),
    };
    Ok(Json(options))
}

pub(crate) async fn variable(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<Value>>, QueryError> {
    // The payload is an object, or with the raw-JSON switch on possibly a string: either JSON
    // text holding an object or the bare name of what to list.
    let payload = match body.get("payload") {
        Some(Value::String(text)) if !text.trim_start().starts_with('{') => {
            let mut map = Map::new();
            map.insert("target".into(), Value::String(text.clone()));
            map
        }
        other => object_or_json_string(other, "payload")?,
    };
    let what = opt_string(payload.get("target"), "payload.target")?.map(|t| unescape(t.trim())).unwrap_or_default();
    // Other payload keys narrow the list, for chained variables: regions of one endpoint
    // (`{"target": "regions", "endpoint": "$endpoint"}`) or endpoints seen from some regions.
    let selection = parse_selection(&payload)?;
    let narrowed = |key: &SeriesKey| {
        let endpoint_ok = selection.endpoints.as_ref().is_none_or(|list| list.iter().any(|e| e == key.check.as_str()));
        let regions = &selection.regions;
        let region_ok =
            regions.each || regions.named.is_empty() || regions.named.iter().any(|r| r == key.region.as_str());
        endpoint_ok && region_ok
    };
    // Nodes and pods narrowed by `region`/`regions` the same way.
    let subject_ok = |subject: &Subject| {
        let regions = &selection.regions;
        regions.each || regions.named.is_empty() || regions.named.iter().any(|r| r == subject.region.as_str())
    };
    let values: Vec<(String, String)> = match what.as_str() {
        "nodes" | "node" => subject_names_where(&state, SubjectKind::Node, subject_ok)
            .await?
            .0
            .into_iter()
            .map(|n| (n.clone(), n))
            .collect(),
        "pods" | "pod" => subject_names_where(&state, SubjectKind::Pod, subject_ok)
            .await?
            .0
            .into_iter()
            .map(|n| (n.clone(), n))
            .collect(),
        "genres" | "genre" => recent_parts(state.store.as_ref(), SubjectKind::Mixer, now_ms())
            .await?
            .into_iter()
            .map(|g| (g.clone(), g))
            .collect(),
        "mounts" | "mount" => recent_parts(state.store.as_ref(), SubjectKind::Node, now_ms())
            .await?
            .into_iter()
            .map(|m| (m.clone(), m))
            .collect(),
        "endpoints" | "endpoint" => {
            names_where(&state, narrowed).await?.0.into_iter().map(|e| (e.clone(), e)).collect()
        }
        "regions" | "region" => {
            let mut regions: BTreeSet<String> = names_where(&state, narrowed).await?.1.into_iter().collect();
            // Without an endpoint to narrow by, the regions of the mixer, nodes and pods too.
            if selection.endpoints.is_none() {
                for kind in SubjectKind::ALL {
                    regions.extend(subject_names_where(&state, kind, subject_ok).await?.1);
                }
            }
            regions.into_iter().map(|r| (r.clone(), r)).collect()
        }
        // An empty variable query (a variable still being edited) lists nothing.
        "" => Vec::new(),
        "metrics" | "metric" => Metric::ALL.iter().map(|m| (m.label().to_string(), m.name().to_string())).collect(),
        other => {
            return Err(QueryError::bad_request(
                "unknown_variable",
                format!(
                    "unknown variable query '{}'; use endpoints, regions, nodes, pods, genres, mounts or metrics",
                    clip(other, 80)
                ),
            ))
        }
    };
    Ok(Json(values.into_iter().map(|(text, value)| json!({"__text": text, "__value": value})).collect()))
}

pub(crate) async fn tag_keys(State(_): State<AppState>, JsonBody(_): JsonBody) -> Json<Value> {
    Json(json!([
        {"type": "string", "text": "endpoint"},
        {"type": "string", "text": "region"},
        {"type": "string", "text": "node"},
        {"type": "string", "text": "pod"}
    ]))
}

pub(crate) async fn tag_values(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<Value>>, QueryError> {
    let key = opt_string(body.get("key"), "key")?.unwrap_or_default();
    // `filters` holds the other active ad hoc filters: offer only values that combine with them.
    let filters = parse_filters(body.get("filters").unwrap_or(&Value::Null))?;
    let keep = |series: &SeriesKey| accepts_all(&filters, series);
    let keep_subject = |subject: &Subject| accepts_subject(&filters, subject);
    let values = match key.as_str() {
        "endpoint" => names_where(&state, keep).await?.0,
        "region" => {
            // Regions of probe series and of the mixer's, nodes' and pods' figures.
            let mut regions: BTreeSet<String> = names_where(&state, keep).await?.1.into_iter().collect();
            for kind in SubjectKind::ALL {
                regions.extend(subject_names_where(&state, kind, keep_subject).await?.1);
            }
            regions.into_iter().collect()
        }
        "node" => subject_names_where(&state, SubjectKind::Node, keep_subject).await?.0,
        "pod" => subject_names_where(&state, SubjectKind::Pod, keep_subject).await?.0,
        _ => Vec::new(),
    };
    Ok(Json(values.into_iter().map(|v| json!({"text": v})).collect()))
}

/// Legacy `/search` (SimpleJson, plugin ≤0.5): metric names containing the typed text, or the
/// endpoint/region lists when asked for them, as variables used to.
pub(crate) async fn search(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<String>>, QueryError> {
    let typed = opt_string(body.get("target"), "target")?.map(|t| unescape(t.trim())).unwrap_or_default();
    let list = match typed.as_str() {
        "endpoints" => names(&state).await?.0,
        "regions" => names(&state).await?.1,
        "nodes" => subject_names_where(&state, SubjectKind::Node, |_| true).await?.0,
        "pods" => subject_names_where(&state, SubjectKind::Pod, |_| true).await?.0,
        _ => Metric::ALL.iter().map(|m| m.name().to_string()).filter(|n| n.contains(typed.as_str())).collect(),
    };
    Ok(Json(list))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
