//! The HTTP face of pods (`/health`, `/metrics`) and of endpoint fronts (`/health`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::fleet::{Front, FrontVerdict};
use crate::metrics::CONTENT_TYPE;
use crate::pod::{HealthVerdict, Pod};
use crate::shutdown::Shutdown;

/// The header a front adds to say which pod answered.
pub(crate) const POD_HEADER: &str = "x-mixer-pod";

#[derive(Clone)]
struct PodState {
    pod: Arc<Pod>,
    shutdown: Shutdown,
}

#[derive(Clone)]
struct FrontState {
    front: Arc<Front>,
    shutdown: Shutdown,
}

pub(crate) fn pod_router(pod: Arc<Pod>, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/health", get(pod_health))
        .route("/metrics", get(pod_metrics))
        .with_state(PodState { pod, shutdown })
}

pub(crate) fn front_router(front: Arc<Front>, shutdown: Shutdown) -> Router {
    Router::new().route("/health", get(front_health)).with_state(FrontState { front, shutdown })
}

async fn pod_health(State(state): State<PodState>) -> Response {
    answer_health(&state.pod, state.shutdown).await
}

async fn pod_metrics(State(state): State<PodState>) -> Response {
    match state.pod.scrape() {
        Some(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "pod is down\n").into_response(),
    }
}

/// The front's own fault first (hang, delay, its share of 500s), then the next pod answers.
async fn front_health(State(state): State<FrontState>) -> Response {
    let front = &state.front;
    let body = |status: &str| Json(json!({"status": status, "endpoint": front.name}));
    match front.verdict() {
        FrontVerdict::Hang => {
            state.shutdown.wait().await;
            return (StatusCode::SERVICE_UNAVAILABLE, body("stopping")).into_response();
        }
        FrontVerdict::Answer { delay, error } => {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = state.shutdown.clone().wait() => {
                        return (StatusCode::SERVICE_UNAVAILABLE, body("stopping")).into_response();
                    }
                }
            }
            if error {
                return (StatusCode::INTERNAL_SERVER_ERROR, body("error")).into_response();
            }
        }
    }
    let Some(pod) = state.front.next_pod() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no pods behind this front\n").into_response();
    };
    let mut response = answer_health(pod, state.shutdown).await;
    // Pod names are validated to header-safe characters; the fallback is never expected.
    if let Ok(value) = HeaderValue::from_str(&pod.name) {
        response.headers_mut().insert(POD_HEADER, value);
    }
    response
}

/// Answers as the pod would under its current fault. Waits (hang, latency) end early at
/// shutdown so that stopping the simulator never waits on a deliberately stuck request.
async fn answer_health(pod: &Pod, shutdown: Shutdown) -> Response {
    let body = |status: &str| Json(json!({"status": status, "pod": pod.name, "region": pod.region}));
    match pod.health_verdict() {
        HealthVerdict::Down => (StatusCode::SERVICE_UNAVAILABLE, body("down")).into_response(),
        HealthVerdict::Hang => {
            shutdown.wait().await;
            (StatusCode::SERVICE_UNAVAILABLE, body("stopping")).into_response()
        }
        HealthVerdict::Answer { delay, error } => {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => {
                        return (StatusCode::SERVICE_UNAVAILABLE, body("stopping")).into_response();
                    }
                }
            }
            if error {
                (StatusCode::INTERNAL_SERVER_ERROR, body("error")).into_response()
            } else {
                (StatusCode::OK, body("ok")).into_response()
            }
        }
    }
}
