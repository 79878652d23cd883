//! `GET /api/v1/receivers`: how delivery to each integration of each receiver is going, as the
//! notifier (in the evaluating aggregator) records it: sent, refused for good, folded into
//! digests, dropped, the last success and the last error, and what waits in the outbox (how
//! many, the oldest's age, and how many are retrying). Secrets are never part of it: the
//! integration is named by receiver, kind and index.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::alerts::rfc3339;
use crate::error::QueryError;
use crate::AppState;

pub(crate) async fn handler(State(state): State<AppState>) -> Result<Json<Value>, QueryError> {
    let statuses = state.store.read_integrations().await?;
    let outbox = state.store.read_outbox().await?;
    let now = chrono::Utc::now().timestamp_millis();
    // (waiting, retrying, oldest created)
    let mut queues: BTreeMap<&str, (usize, usize, i64)> = BTreeMap::new();
    for delivery in &outbox {
        let queue = queues.entry(delivery.integration.as_str()).or_insert((0, 0, i64::MAX));
        queue.0 += 1;
        queue.1 += usize::from(delivery.attempts > 0);
        queue.2 = queue.2.min(delivery.created_ms);
    }
    let mut receivers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for status in &statuses {
        let mut parts = status.integration.splitn(3, '/');
        let receiver = parts.next().unwrap_or_default().to_string();
        let kind = parts.next().unwrap_or_default();
        let (waiting, retrying, oldest) = queues.get(status.integration.as_str()).copied().unwrap_or((0, 0, i64::MAX));
        receivers.entry(receiver).or_default().push(json!({
            "integration": status.integration,
            "kind": kind,
            "sent": status.sent,
            "failed": status.failed,
            "folded": status.folded,
            "dropped": status.dropped,
            "last_success": status.last_success_ms.map(rfc3339),
            "last_error": status.last_error,
            "last_error_at": status.last_error_ms.map(rfc3339),
            "queue_depth": waiting,
            "retrying": retrying,
            "oldest_waiting_s": (waiting > 0).then(|| (now - oldest).max(0) as f64 / 1_000.0),
        }));
    }
    let body: Vec<Value> =
        receivers.into_iter().map(|(name, integrations)| json!({"name": name, "integrations": integrations})).collect();
    Ok(Json(Value::Array(body)))
}
