//! A `/query` body read the way research note §5 demands: only `range`, `intervalMs`,
//! `maxDataPoints`, `targets[].{refId,target,payload|data,hide,type}` and
//! `filters`/`adhocFilters` are looked at; everything else is ignored, and every missing field
//! has a default.

use serde_json::{Map, Value};

use crate::body::{kind, object_or_json_string, opt_string, string_list, template_names, truthy};
use crate::error::QueryError;
use crate::figure_query::{parse_figure_selection, FigureSelection};
use crate::filter::{parse_filters, Filter};
use crate::metric::{parse_target, Metric};
use crate::timeline::{parse_range, Timeline, DEFAULT_MAX_POINTS, MAX_POINTS_CAP};

#[derive(Debug)]
pub(crate) struct QueryRequest {
    pub timeline: Timeline,
    pub targets: Vec<Target>,
    pub filters: Vec<Filter>,
}

#[derive(Debug)]
pub(crate) struct Target {
    /// Echoed as sent, so Grafana can tie frames to queries.
    pub ref_id: Option<Value>,
    pub metrics: Vec<Metric>,
    pub selection: Selection,
    /// Which mixer regions, nodes, pods, mounts and genres the figure metrics cover.
    pub figures: FigureSelection,
    pub table: bool,
}

/// Which series a target covers, from its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `None`: every endpoint.
    pub endpoints: Option<Vec<String>>,
    pub regions: RegionChoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionChoice {
    /// Every region as its own series.
    pub each: bool,
    /// Regions named explicitly, each its own series.
    pub named: Vec<String>,
    /// One series merged across every (matching) region, labelled `all`.
    pub merged: bool,
}

impl Default for RegionChoice {
    fn default() -> Self {
        Self { each: true, named: Vec::new(), merged: false }
    }
}

/// Region value meaning "merge every region into one series".
pub use mixmon_sli::MERGED_REGION;

/// Values that mean "every one" in Grafana's vocabulary.
pub(crate) fn is_wildcard(name: &str) -> bool {
    matches!(name, "*" | "All" | "$__all" | ".*")
}

pub(crate) fn parse_query(body: &Map<String, Value>, now_ms: i64) -> Result<QueryRequest, QueryError> {
    let (from, to) = parse_range(body, now_ms)?;
    let interval_ms = match body.get("intervalMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(positive_number(v, "intervalMs")?),
    };
    let max_points = match body.get("maxDataPoints") {
        None | Some(Value::Null) => DEFAULT_MAX_POINTS,
        Some(v) => match positive_number(v, "maxDataPoints")? {
            n if n <= 0 => DEFAULT_MAX_POINTS,
            n => (n as u64).min(MAX_POINTS_CAP),
        },
    };
    let timeline = Timeline::new(from, to, interval_ms, max_points)?;
    let filters = match body.get("filters") {
        Some(v) if !v.is_null() => parse_filters(v)?,
        _ => parse_filters(body.get("adhocFilters").unwrap_or(&Value::Null))?,
    };
    let targets = match body.get("targets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut targets = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(target) = parse_target_entry(item, i)? {
                    targets.push(target);
                }
            }
            targets
        }
        Some(other) => {
            return Err(QueryError::bad_request(
                "invalid_targets",
                format!("targets must be an array, not {}", kind(other)),
            ))
        }
    };
    Ok(QueryRequest { timeline, targets, filters })
}

/// A number (or numeric string) as a whole number; negative values are returned as-is for
/// the caller to treat as "not set".
fn positive_number(value: &Value, what: &str) -> Result<i64, QueryError> {
    let n = match value {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.ceil().clamp(-1e15, 1e15) as i64))
        }
        Value::String(s) => {
            s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f.ceil().clamp(-1e15, 1e15) as i64)
        }
        _ => None,
    };
    n.ok_or_else(|| QueryError::bad_request("invalid_field", format!("{what} must be a number, not {}", kind(value))))
}

/// One target, or `None` when it is hidden or names no metric.
fn parse_target_entry(item: &Value, index: usize) -> Result<Option<Target>, QueryError> {
    let Value::Object(target) = item else {
        return Err(QueryError::bad_request(
            "invalid_targets",
            format!("targets[{index}] must be an object, not {}", kind(item)),
        ));
    };
    if truthy(target.get("hide")) {
        return Ok(None);
    }
    let name = opt_string(target.get("target"), &format!("targets[{index}].target"))?;
    let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
        return Ok(None);
    };
    let metrics = parse_target(&name)?;
    let payload_value = target.get("payload").filter(|v| !v.is_null()).or_else(|| target.get("data"));
    let payload = object_or_json_string(payload_value, &format!("targets[{index}].payload"))?;
    let selection = parse_selection(&payload)?;
    let figures = if metrics.iter().any(|m| m.figure().is_some()) {
        parse_figure_selection(&payload)?
    } else {
        FigureSelection::default()
    };
    let format_table =
        opt_string(payload.get("format"), "payload.format")?.is_some_and(|f| f.trim().eq_ignore_ascii_case("table"));
    let legacy_table = matches!(target.get("type"), Some(Value::String(t)) if t.eq_ignore_ascii_case("table"));
    Ok(Some(Target {
        ref_id: target.get("refId").cloned(),
        metrics,
        selection,
        figures,
        table: format_table || legacy_table,
    }))
}

/// Endpoint and region choice from a payload (`endpoint`/`endpoints`, `region`/`regions`).
pub(crate) fn parse_selection(payload: &Map<String, Value>) -> Result<Selection, QueryError> {
    let endpoints = names(payload.get("endpoint").or_else(|| payload.get("endpoints")), "payload.endpoint")?;
    let endpoints = endpoints.filter(|list| !list.iter().any(|n| is_wildcard(n)));
    let regions = names(payload.get("region").or_else(|| payload.get("regions")), "payload.region")?
        .map(region_choice)
        .unwrap_or_default();
    Ok(Selection { endpoints, regions })
}

/// A region list as a choice: `all` merges, a wildcard means each region, other names pick.
pub(crate) fn region_choice(list: Vec<String>) -> RegionChoice {
    let mut choice = RegionChoice { each: false, named: Vec::new(), merged: false };
    for name in list {
        if name == MERGED_REGION {
            choice.merged = true;
        } else if is_wildcard(&name) {
            choice.each = true;
        } else if !choice.named.contains(&name) {
            choice.named.push(name);
        }
    }
    choice
}

/// A string-or-array payload value expanded into names; an empty list counts as absent.
pub(crate) fn names(value: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, QueryError> {
    let Some(list) = string_list(value, what)? else {
        return Ok(None);
    };
    let expanded: Vec<String> = list.iter().flat_map(|v| template_names(v)).filter(|n| !n.is_empty()).collect();
    Ok((!expanded.is_empty()).then_some(expanded))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn selection_from_payload() {
        let s = parse_selection(&object(json!({}))).unwrap();
        assert_eq!(s, Selection::default());
        let s = parse_selection(&object(json!({"endpoint": "All", "region": ["all", r"us\-west"]}))).unwrap();
        assert_eq!(s.endpoints, None);
        assert_eq!(s.regions, RegionChoice { each: false, named: vec!["us-west".into()], merged: true });
        let s = parse_selection(&object(json!({"endpoint": r"(api|edge)", "region": "$__all"}))).unwrap();
        assert_eq!(s.endpoints, Some(vec!["api".into(), "edge".into()]));
        assert!(s.regions.each && !s.regions.merged);
        assert!(parse_selection(&object(json!({"endpoint": {"x": 1}}))).is_err());
    }

    #[test]
    fn hidden_and_empty_targets_are_skipped() {
        let body = object(json!({
            "targets": [
                {"refId": "A", "target": "uptime", "hide": true},
                {"refId": "B", "target": ""},
                {"refId": "C"},
                {"refId": "D", "target": "probes", "payload": "", "type": "table"},
                {"refId": "E", "target": "probes", "data": "{\"format\": \"table\"}"},
                {"refId": "F", "target": "probes", "payload": {"format": "time_series"}}
            ]
        }));
        let request = parse_query(&body, 1_729_231_200_000).unwrap();
        let seen: Vec<(Option<Value>, bool)> = request.targets.iter().map(|t| (t.ref_id.clone(), t.table)).collect();
        assert_eq!(seen, vec![(Some(json!("D")), true), (Some(json!("E")), true), (Some(json!("F")), false)]);
    }

    #[test]
    fn wrong_types_are_refused_with_a_message() {
        for body in [
            json!({"targets": "x"}),
            json!({"targets": [5]}),
            json!({"targets": [{"target": 5.5, "refId": "A"}]}),
            json!({"maxDataPoints": "many"}),
            json!({"range": "today"}),
            json!({"targets": [{"target": "probes", "payload": "{not json"}]}),
        ] {
            let err = parse_query(&object(body.clone()), 1_729_231_200_000);
            assert!(err.is_err(), "{body}");
        }
    }
}
