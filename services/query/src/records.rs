//! `GET /api/v1/records?endpoint=<check>&region=<region>[&limit=<n>]`: the latest raw
//! health-check records of one endpoint as seen from one region, newest first (the store
//! keeps the latest 1000 per endpoint and region).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use mixmon_model::{CheckId, Region, SeriesKey, RECORDS_KEPT};
use serde_json::{json, Value};

use crate::error::{clip, QueryError};
use crate::AppState;

/// Records answered when the request names no limit.
const DEFAULT_LIMIT: usize = 100;

pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Value>>, QueryError> {
    let param = |name: &'static str| {
        params.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or_else(|| {
            QueryError::bad_request("missing_parameter", format!("the query parameter '{name}' is required"))
        })
    };
    let check = CheckId::new(param("endpoint")?).map_err(|e| {
        QueryError::bad_request("invalid_parameter", format!("endpoint: {}", clip(&e.to_string(), 120)))
    })?;
    let region = Region::new(param("region")?)
        .map_err(|e| QueryError::bad_request("invalid_parameter", format!("region: {}", clip(&e.to_string(), 120))))?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=RECORDS_KEPT).contains(n)).ok_or_else(|| {
            QueryError::bad_request("invalid_parameter", format!("limit must be a whole number in 1..={RECORDS_KEPT}"))
        })?,
    };
    let records = state.store.read_records(&SeriesKey { check, region }, limit).await?;
    Ok(Json(
        records
            .iter()
            .map(|r| {
                json!({
                    "started_at_ms": r.started_at_ms,
                    "duration_ms": r.duration_us as f64 / 1_000.0,
                    "status_code": r.status_code,
                    "success": r.failure.is_none(),
                    "failure": r.failure.map(|k| k.as_str()),
                    "address": r.address.map(|a| a.to_string()),
                })
            })
            .collect(),
    ))
}
