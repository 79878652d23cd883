//! The live alerts and their history, as the tools operators already use read them:
//! Alertmanager's v2 read API (`GET /api/v2/alerts`, `/api/v2/alerts/groups`,
//! `/api/v2/status`; `amtool`, Grafana's Alertmanager data source and karma speak it), mixmon's
//! own `GET /api/v1/alerts` (every kept instance, pending and no-data included) and
//! `GET /api/v1/alerts/history`, and Grafana annotations (`refId: "Anno"` on `/query`).
//!
//! Everything is read from the store, which the evaluator (one aggregator replica at a time)
//! writes: any query replica answers the same.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use mixmon_model::alert::{AlertInstance, AlertState, AlertTransition, LabelSet, Matcher, ALERTNAME};
use serde_json::{json, Value};

use crate::error::{clip, QueryError};
use crate::AppState;

/// Transitions one history request answers at most.
pub const MAX_HISTORY: usize = 10_000;
const DEFAULT_HISTORY: usize = 500;
/// How long past the last evaluation a firing alert is announced to last, as Prometheus
/// announces `endsAt` (four resend intervals of a minute).
const ENDS_AFTER_MS: i64 = 4 * 60_000;
/// A group's receiver until routing names one.
const DEFAULT_RECEIVER: &str = "mixmon";

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's query flags and matchers (`filter`, repeated), as amtool sends them.
struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, QueryError> {
    match params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
        None => Ok(true),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(QueryError::bad_request(
            "invalid_parameter",
            format!("{name} must be true or false, not {:?}", clip(other, 20)),
        )),
    }
}

impl AlertFilter {
    fn parse(params: &[(String, String)]) -> Result<Self, QueryError> {
        let mut matchers = Vec::new();
        for (_, text) in params.iter().filter(|(k, _)| k == "filter") {
            let parsed = Matcher::parse_list(text)
                .map_err(|e| QueryError::bad_request("invalid_filter", clip(&e.to_string(), 200)))?;
            matchers.extend(parsed);
        }
        let receiver = match params.iter().find(|(k, _)| k == "receiver") {
            None => None,
            Some((_, pattern)) => Some(
                regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| QueryError::bad_request("invalid_parameter", clip(&format!("receiver: {e}"), 200)))?,
            ),
        };
        Ok(AlertFilter {
            active: flag(params, "active")?,
            silenced: flag(params, "silenced")?,
            inhibited: flag(params, "inhibited")?,
            matchers,
            receiver,
        })
    }

    fn accepts(&self, alert: &AlertInstance, receiver: &str) -> bool {
        let silenced = !alert.silenced_by.is_empty();
        let inhibited = !alert.inhibited_by.is_empty();
        let state_ok =
            (self.silenced || !silenced) && (self.inhibited || !inhibited) && (self.active || silenced || inhibited);
        state_ok
            && mixmon_model::alert::matches_all(&self.matchers, &alert.labels)
            && self.receiver.as_ref().is_none_or(|re| re.is_match(receiver))
    }
}

/// Alertmanager's `gettableAlert` for one firing instance.
pub(crate) fn gettable(alert: &AlertInstance, receiver: &str, now_ms: i64) -> Value {
    let state = if alert.is_muted() { "suppressed" } else { "active" };
    let starts = alert.fired_at_ms.or(alert.active_at_ms).unwrap_or(alert.updated_at_ms);
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(now_ms.max(alert.updated_at_ms) + ENDS_AFTER_MS),
        "generatorURL": "",
        "updatedAt": rfc3339(alert.updated_at_ms),
        "fingerprint": alert.fingerprint().to_string(),
        "receivers": [{ "name": receiver }],
        "status": {
            "state": state,
            "silencedBy": alert.silenced_by,
            "inhibitedBy": alert.inhibited_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
    })
}

/// What Alertmanager would list: firing alerts (resolved and pending ones are not alerts there).
async fn firing(state: &AppState) -> Result<Vec<AlertInstance>, QueryError> {
    let mut alerts: Vec<AlertInstance> =
        state.store.load_alerts().await?.into_iter().filter(|a| a.state == AlertState::Firing).collect();
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(alerts)
}

pub(crate) async fn v2_alerts(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<Value>>, QueryError> {
    let filter = AlertFilter::parse(&params)?;
    let now = Utc::now().timestamp_millis();
    let alerts = firing(&state).await?;
    Ok(Json(
        alerts
            .iter()
            .filter(|a| filter.accepts(a, DEFAULT_RECEIVER))
            .map(|a| gettable(a, DEFAULT_RECEIVER, now))
            .collect(),
    ))
}

/// Groups by `alertname`, as the shipped route groups.
pub(crate) async fn v2_groups(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<Value>>, QueryError> {
    let filter = AlertFilter::parse(&params)?;
    let now = Utc::now().timestamp_millis();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for alert in firing(&state).await?.iter().filter(|a| filter.accepts(a, DEFAULT_RECEIVER)) {
        groups.entry(alert.labels.get(ALERTNAME).to_string()).or_default().push(gettable(alert, DEFAULT_RECEIVER, now));
    }
    Ok(Json(
        groups
            .into_iter()
            .map(|(name, alerts)| {
                json!({
                    "labels": LabelSet::new().with(ALERTNAME, name),
                    "receiver": { "name": DEFAULT_RECEIVER },
                    "alerts": alerts,
                })
            })
            .collect(),
    ))
}

/// Alertmanager's `alertmanagerStatus`, so clients that check it first (amtool, Grafana's
/// "Save & test") accept mixmon.
pub(crate) async fn v2_status(State(state): State<AppState>) -> Json<Value> {
    let uptime = rfc3339(state.started_at_ms);
    Json(json!({
        "cluster": { "name": "mixmon", "peers": [], "status": "disabled" },
        "config": { "original": "# mixmon evaluates its own rules; routing is configured in the aggregator\n" },
        "uptime": uptime,
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": concat!("mixmon-", env!("CARGO_PKG_VERSION")),
        },
    }))
}

fn instance_json(alert: &AlertInstance) -> Value {
    json!({
        "fingerprint": alert.fingerprint().to_string(),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "state": alert.state.as_str(),
        "value": alert.value,
        "active_at": alert.active_at_ms.map(rfc3339),
        "fired_at": alert.fired_at_ms.map(rfc3339),
        "resolved_at": alert.resolved_at_ms.map(rfc3339),
        "updated_at": rfc3339(alert.updated_at_ms),
        "event": alert.event,
        "inhibited_by": alert.inhibited_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "silenced_by": alert.silenced_by,
    })
}

/// `GET /api/v1/alerts`: every kept instance, pending and no-data included.
pub(crate) async fn v1_alerts(State(state): State<AppState>) -> Result<Json<Vec<Value>>, QueryError> {
    let mut alerts = state.store.load_alerts().await?;
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Json(alerts.iter().map(instance_json).collect()))
}

pub(crate) fn transition_json(t: &AlertTransition) -> Value {
    json!({
        "at": rfc3339(t.at_ms),
        "at_ms": t.at_ms,
        "fingerprint": t.fingerprint.to_string(),
        "alertname": t.alertname(),
        "labels": t.labels,
        "annotations": t.annotations,
        "from": t.from.as_str(),
        "to": t.to.as_str(),
        "value": t.value,
        "active_at": t.active_at_ms.map(rfc3339),
        "fired_at": t.fired_at_ms.map(rfc3339),
        "resolved_at": t.resolved_at_ms.map(rfc3339),
        "event": t.event,
    })
}

fn time_param(params: &[(String, String)], name: &str, default: i64) -> Result<i64, QueryError> {
    let Some((_, raw)) = params.iter().find(|(k, _)| k == name) else { return Ok(default) };
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(raw).map(|t| t.timestamp_millis()).map_err(|_| {
        QueryError::bad_request(
            "invalid_parameter",
            format!("{name} must be epoch ms or RFC 3339, not {:?}", clip(raw, 40)),
        )
    })
}

/// `GET /api/v1/alerts/history?from=&to=&limit=&filter=`: transitions newest first (30 days kept).
pub(crate) async fn history(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<Value>>, QueryError> {
    let now = Utc::now().timestamp_millis();
    let to = time_param(&params, "to", now + 1)?;
    let from = time_param(&params, "from", now - mixmon_store::alerts::HISTORY_RETENTION_MS)?;
    if from >= to {
        return Err(QueryError::bad_request("invalid_range", "from must be before to"));
    }
    let limit = match params.iter().find(|(k, _)| k == "limit") {
        None => DEFAULT_HISTORY,
        Some((_, raw)) => raw.parse::<usize>().ok().filter(|n| (1..=MAX_HISTORY).contains(n)).ok_or_else(|| {
            QueryError::bad_request("invalid_parameter", format!("limit must be a whole number in 1..={MAX_HISTORY}"))
        })?,
    };
    let filter = AlertFilter::parse(&params)?;
    // The limit counts what matches: with matchers, read up to the bound and filter first.
    let read = if filter.matchers.is_empty() { limit } else { MAX_HISTORY };
    let transitions = state.store.read_history(from, to, read).await?;
    Ok(Json(
        transitions
            .iter()
            .filter(|t| mixmon_model::alert::matches_all(&filter.matchers, &t.labels))
            .take(limit)
            .map(transition_json)
            .collect(),
    ))
}

/// Grafana annotations over `from..to`: one region per firing episode (fired to resolved, or
/// open while it still fires), titled with the alert and tagged with its labels.
pub(crate) async fn annotations(
    state: &AppState,
    ref_id: Option<&Value>,
    from_ms: i64,
    to_ms: i64,
    matchers: &[Matcher],
) -> Result<Value, QueryError> {
    let transitions = state.store.read_history(from_ms, to_ms, MAX_HISTORY).await?;
    let mut rows = Vec::new();
    // History is newest first: a resolve is seen before its firing.
    let mut resolved: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for t in transitions.iter().filter(|t| mixmon_model::alert::matches_all(matchers, &t.labels)) {
        let key = (t.fingerprint.to_string(), t.fired_at_ms.unwrap_or_default());
        match (t.from, t.to) {
            (AlertState::Firing, AlertState::Resolved) => {
                resolved.insert(key, t.at_ms);
            }
            (_, AlertState::Firing) => {
                let end = resolved.remove(&key);
                let title = format!("{} {}", t.alertname(), t.severity().map_or("", |s| s.as_str()));
                let text = t.annotations.get("summary").cloned().unwrap_or_else(|| t.labels.to_string());
                let tags: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                rows.push(json!([t.at_ms, end, title.trim_end(), text, tags.join(",")]));
            }
            _ => {}
        }
    }
    let mut table = serde_json::Map::new();
    table.insert("type".into(), json!("table"));
    if let Some(id) = ref_id {
        table.insert("refId".into(), id.clone());
    }
    table.insert(
        "columns".into(),
        json!([
            {"text": "time", "type": "time"}, {"text": "timeEnd", "type": "time"},
            {"text": "title", "type": "string"}, {"text": "text", "type": "string"}, {"text": "tags", "type": "string"}
        ]),
    );
    table.insert("rows".into(), Value::Array(rows));
    Ok(Value::Object(table))
}
