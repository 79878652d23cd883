//! `GET /api/v1/status` (the live health table) and `GET /api/v1/status/mixer`: the rows are
//! `mixmon_sli::status`'s, the same the alert rules and `mixmon up` read.

use axum::extract::State;
use axum::Json;
pub use mixmon_sli::status::{mixer_snapshot, status_snapshot, EndpointStatus, MixerStatus};

use crate::error::QueryError;
use crate::AppState;

pub(crate) async fn handler(State(state): State<AppState>) -> Result<Json<Vec<EndpointStatus>>, QueryError> {
    let now = chrono::Utc::now().timestamp_millis();
    Ok(Json(status_snapshot(state.store.as_ref(), now, &state.options.health).await?))
}

pub(crate) async fn mixer_handler(State(state): State<AppState>) -> Result<Json<Vec<MixerStatus>>, QueryError> {
    let now = chrono::Utc::now().timestamp_millis();
    Ok(Json(mixer_snapshot(state.store.as_ref(), now).await?))
}
