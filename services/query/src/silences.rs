//! Silences in Alertmanager's v2 API (`POST /api/v2/silences`, `GET /api/v2/silences`,
//! `GET /api/v2/silence/{id}`, `DELETE /api/v2/silence/{id}`), so `amtool silence add`,
//! `query` and `expire` work against mixmon as against Alertmanager. The one thing the query
//! service writes; kept in the store (30 days after they end) and obeyed by the evaluator, so
//! every replica of either sees the same silences. Behind the service's token like every route.

use std::hash::{BuildHasher, Hasher};

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use mixmon_model::alert::{matches_all, LabelSet, Matcher, Silence, SilenceMatcher};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::rfc3339;
use crate::body::JsonBody;
use crate::error::{clip, QueryError};
use crate::AppState;

/// Matchers one silence may have.
const MAX_MATCHERS: usize = 64;
/// Characters of `createdBy` and `comment` kept.
const MAX_TEXT: usize = 2_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError::bad_request("invalid_silence", message)
}

fn time(text: &str, what: &str) -> Result<i64, QueryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| bad(format!("{what} must be an RFC 3339 time, not {:?}", clip(text, 40))))
}

/// A fresh id in the UUID shape Alertmanager uses.
fn new_id() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_i64(Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let mut b = state.build_hasher();
    b.write_u64(a.finish());
    let (x, y) = (a.finish(), b.finish());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        (y >> 48) | 0x8000,
        y & 0xffff_ffff_ffff
    )
}

fn gettable(silence: &Silence, now_ms: i64) -> Value {
    json!({
        "id": silence.id,
        "status": { "state": silence.state(now_ms).as_str() },
        "updatedAt": rfc3339(silence.updated_at_ms),
        "matchers": silence.matchers,
        "startsAt": rfc3339(silence.starts_at_ms),
        "endsAt": rfc3339(silence.ends_at_ms),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    })
}

pub(crate) async fn create(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Json<Value>, QueryError> {
    let now = Utc::now().timestamp_millis();
    let posted: PostableSilence =
        serde_json::from_value(Value::Object(body)).map_err(|e| bad(clip(&format!("not a silence: {e}"), 300)))?;
    if posted.matchers.is_empty() || posted.matchers.len() > MAX_MATCHERS {
        return Err(bad(format!("a silence needs 1 to {MAX_MATCHERS} matchers")));
    }
    let mut compiled = Vec::new();
    for matcher in &posted.matchers {
        compiled.push(matcher.compile().map_err(|e| bad(clip(&e.to_string(), 300)))?);
    }
    // As Alertmanager: a silence whose matchers all match the empty label set mutes everything.
    if matches_all(&compiled, &LabelSet::new()) {
        return Err(bad("at least one matcher must not match the empty string, or the silence mutes every alert"));
    }
    let (starts, ends) = (time(&posted.starts_at, "startsAt")?, time(&posted.ends_at, "endsAt")?);
    if ends <= starts {
        return Err(bad("endsAt must be after startsAt"));
    }
    if ends <= now {
        return Err(bad("endsAt is in the past"));
    }
    if posted.created_by.trim().is_empty() || posted.comment.trim().is_empty() {
        return Err(bad("createdBy and comment are required"));
    }
    let kept = state.store.read_silences(now).await?;
    let id = match posted.id.filter(|id| !id.is_empty()) {
        Some(id) if kept.iter().any(|s| s.id == id) => id,
        Some(id) => {
            return Err(QueryError::NotFound { method: "POST".into(), path: format!("silence {}", clip(&id, 60)) })
        }
        None => new_id(),
    };
    let silence = Silence {
        id: id.clone(),
        matchers: posted.matchers,
        // As Alertmanager: a start in the past is now.
        starts_at_ms: starts.max(now),
        ends_at_ms: ends,
        created_by: posted.created_by.chars().take(MAX_TEXT).collect(),
        comment: posted.comment.chars().take(MAX_TEXT).collect(),
        updated_at_ms: now,
    };
    state.store.put_silence(&silence).await?;
    tracing::info!(silence = %id, by = %silence.created_by, "silence set");
    Ok(Json(json!({ "silenceID": id })))
}

/// Whether the silence's equality matchers form a label set the filter matchers all match
/// (Alertmanager's `silenceMatchesFilterLabels`).
fn matches_filter(silence: &Silence, filter: &[Matcher]) -> bool {
    let labels: LabelSet = silence
        .matchers
        .iter()
        .filter(|m| !m.is_regex && m.is_equal)
        .map(|m| (m.name.as_str(), m.value.as_str()))
        .collect();
    matches_all(filter, &labels)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<Value>>, QueryError> {
    let now = Utc::now().timestamp_millis();
    let mut filter = Vec::new();
    for (_, text) in params.iter().filter(|(k, _)| k == "filter") {
        filter.extend(
            Matcher::parse_list(text)
                .map_err(|e| QueryError::bad_request("invalid_filter", clip(&e.to_string(), 200)))?,
        );
    }
    let mut silences = state.store.read_silences(now).await?;
    // Active first, then pending, then expired, as Alertmanager sorts them.
    silences.sort_by_key(|s| (s.state(now) as u8 != 1, s.state(now) as u8, s.ends_at_ms));
    Ok(Json(silences.iter().filter(|s| matches_filter(s, &filter)).map(|s| gettable(s, now)).collect()))
}

async fn find(state: &AppState, id: &str, now: i64) -> Result<Silence, QueryError> {
    state
        .store
        .read_silences(now)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| QueryError::NotFound { method: "GET".into(), path: format!("silence {}", clip(id, 60)) })
}

pub(crate) async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, QueryError> {
    let now = Utc::now().timestamp_millis();
    Ok(Json(gettable(&find(&state, &id, now).await?, now)))
}

pub(crate) async fn expire(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, QueryError> {
    let now = Utc::now().timestamp_millis();
    let mut silence = find(&state, &id, now).await?;
    if silence.ends_at_ms > now {
        // A pending silence ends before it began: it never mutes anything.
        silence.starts_at_ms = silence.starts_at_ms.min(now);
        silence.ends_at_ms = now;
        silence.updated_at_ms = now;
        state.store.put_silence(&silence).await?;
        tracing::info!(silence = %id, "silence expired");
    }
    // Alertmanager answers an empty 200; an empty object keeps every answer here JSON.
    Ok(Json(json!({})))
}
