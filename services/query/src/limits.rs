//! What one request may cost in time, and how many run at once: past `max_concurrent`
//! requests in flight a new one is shed at once with 503 and `Retry-After` (queueing it would
//! only make every answer late), and one that runs past `request_timeout` is stopped and
//! answered 503 naming the limit and how to narrow the query. Liveness (`/`, `/healthz`) is
//! never limited, so an overloaded service is not also restarted.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::Semaphore;

/// Far above what one Grafana instance sends at once (a dashboard refresh is one request per
/// panel, and Grafana caps concurrent datasource requests per browser).
pub const DEFAULT_MAX_CONCURRENT: usize = 64;
/// A real query over 31 days answers in well under a second; this is for the pathological.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct Limits {
    pub in_flight: Arc<Semaphore>,
    pub max_concurrent: usize,
    pub timeout: Duration,
}

fn refuse(code: &str, message: String, retry_after_s: u32) -> Response {
    let body = json!({"message": message, "error": {"code": code, "message": message}});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

pub(crate) async fn enforce(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/" | "/healthz") {
        return next.run(request).await;
    }
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        let message = format!(
            "the query service is answering {} requests already (limits.max_concurrent_requests); retry in a second",
            limits.max_concurrent
        );
        return refuse("overloaded", message, 1);
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refuse(
            "deadline",
            format!(
                "the request took longer than {} s (limits.request_timeout_ms); narrow its range, targets or maxDataPoints",
                limits.timeout.as_secs_f64()
            ),
            5,
        ),
    }
}
