//! The discovery endpoints Grafana's editors call: `/metrics` (metric list and the builder's
//! payload fields), `/metric-payload-options`, `/variable`, `/tag-keys`, `/tag-values` and
//! the legacy `/search`. Endpoint and region lists come from the store's series list.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use mixmon_model::SeriesKey;
use serde_json::{json, Map, Value};

use crate::body::{object_or_json_string, opt_string, unescape, JsonBody};
use crate::error::{clip, QueryError};
use crate::filter::{accepts_all, parse_filters};
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

pub(crate) async fn metrics(State(_): State<AppState>, JsonBody(_): JsonBody) -> Json<Vec<Value>> {
    let payloads = json!([
        {"name": "endpoint", "label": "Endpoint", "type": "multi-select",
         "placeholder": "every endpoint", "width": 20},
        {"name": "region", "label": "Region", "type": "multi-select",
         "placeholder": "each region ('all' merges them)", "width": 20},
        {"name": "format", "label": "Format", "type": "select", "width": 12,
         "options": [{"value": "time_series", "label": "Time series"}, {"value": "table", "label": "Table"}]}
    ]);
    Json(Metric::ALL.iter().map(|m| json!({"value": m.name(), "label": m.label(), "payloads": payloads})).collect())
}

pub(crate) async fn payload_options(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<Value>>, QueryError> {
    let name = opt_string(body.get("name"), "name")?.unwrap_or_default();
    let options = match name.as_str() {
        "endpoint" => names(&state).await?.0.into_iter().map(|e| json!({"value": e, "label": e})).collect(),
        "region" => {
            let mut options = vec![json!({"value": MERGED_REGION, "label": "all (merged)"})];
            options.extend(names(&state).await?.1.into_iter().map(|r| json!({"value": r, "label": r})));
            options
        }
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
    let values: Vec<(String, String)> = match what.as_str() {
        "endpoints" | "endpoint" => {
            names_where(&state, narrowed).await?.0.into_iter().map(|e| (e.clone(), e)).collect()
        }
        "regions" | "region" => names_where(&state, narrowed).await?.1.into_iter().map(|r| (r.clone(), r)).collect(),
        // An empty variable query (a variable still being edited) lists nothing.
        "" => Vec::new(),
        "metrics" | "metric" => Metric::ALL.iter().map(|m| (m.label().to_string(), m.name().to_string())).collect(),
        other => {
            return Err(QueryError::bad_request(
                "unknown_variable",
                format!("unknown variable query '{}'; use endpoints, regions or metrics", clip(other, 80)),
            ))
        }
    };
    Ok(Json(values.into_iter().map(|(text, value)| json!({"__text": text, "__value": value})).collect()))
}

pub(crate) async fn tag_keys(State(_): State<AppState>, JsonBody(_): JsonBody) -> Json<Value> {
    Json(json!([{"type": "string", "text": "endpoint"}, {"type": "string", "text": "region"}]))
}

pub(crate) async fn tag_values(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Vec<Value>>, QueryError> {
    let key = opt_string(body.get("key"), "key")?.unwrap_or_default();
    // `filters` holds the other active ad hoc filters: offer only values that combine with them.
    let filters = parse_filters(body.get("filters").unwrap_or(&Value::Null))?;
    let keep = |series: &SeriesKey| accepts_all(&filters, series);
    let values = match key.as_str() {
        "endpoint" => names_where(&state, keep).await?.0,
        "region" => names_where(&state, keep).await?.1,
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
        _ => Metric::ALL.iter().map(|m| m.name().to_string()).filter(|n| n.contains(typed.as_str())).collect(),
    };
    Ok(Json(list))
}
