//! The admin HTTP API: list the fleet, set and clear faults (pods, regions, endpoints, nodes,
//! clients), restart pods, and the read-only Kubernetes API under `/k8s` (see `k8s.rs`);
//! optionally behind a bearer token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::fault::Fault;
use crate::net_fault::{ClientCut, EndpointFault};
use crate::node::NodeFault;

use crate::controls::Controls;
use crate::error::SimError;
use crate::handle::SimAddresses;
use crate::k8s;
use crate::net_fault::parse_client;

#[derive(Clone)]
struct AdminState {
    controls: Controls,
    addresses: Arc<SimAddresses>,
    token: Option<Arc<str>>,
}

pub(crate) fn router(controls: Controls, addresses: Arc<SimAddresses>, token: Option<String>) -> Router {
    let pod_addrs = addresses.pods.iter().map(|p| (p.name.clone(), p.addr)).collect();
    let kube = k8s::router(Arc::clone(&controls.fleet), pod_addrs);
    let state = AdminState { controls, addresses, token: token.map(Arc::from) };
    Router::new()
        .route("/pods", get(pods))
        .route("/endpoints", get(endpoints))
        .route("/scrapes", get(scrapes))
        .route("/faults", get(faults).delete(clear_faults))
        .route("/faults/pods/{pod}", put(set_pod_fault))
        .route("/faults/regions/{region}", put(set_region_fault))
        .route("/faults/endpoints/{endpoint}", put(set_endpoint_fault))
        .route("/faults/nodes/{node}", put(set_node_fault))
        .route("/faults/clients/{client}", put(set_client_cut))
        .route("/pods/{pod}/restart", post(restart_pod))
        .nest("/k8s", kube)
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A fault is a few fields; a body past this is a mistake or an attack, refused with 413
/// before it is read whole.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// An admin error: a status and a JSON `{"message": ...}` body.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"message": self.1}))).into_response()
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        let status = match error {
            SimError::UnknownPod(_)
            | SimError::UnknownRegion(_)
            | SimError::UnknownEndpoint(_)
            | SimError::UnknownNode(_) => StatusCode::NOT_FOUND,
            SimError::InvalidFault(_) | SimError::InvalidCut(_) | SimError::Config(_) => StatusCode::BAD_REQUEST,
            SimError::Bind { .. } | SimError::Reopen { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, error.to_string())
    }
}

async fn authorize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
            return ApiError(StatusCode::FORBIDDEN, "a valid admin bearer token is required".into()).into_response();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0_u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

async fn pods(State(state): State<AdminState>) -> Response {
    Json(&state.addresses.pods).into_response()
}

async fn endpoints(State(state): State<AdminState>) -> Response {
    Json(&state.addresses.endpoints).into_response()
}

async fn scrapes(State(state): State<AdminState>) -> Response {
    Json(state.controls.fleet.scrapes()).into_response()
}

async fn faults(State(state): State<AdminState>) -> Response {
    Json(state.controls.faults()).into_response()
}

async fn clear_faults(State(state): State<AdminState>) -> Result<StatusCode, ApiError> {
    state.controls.clear_faults()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_pod_fault(
    State(state): State<AdminState>,
    Path(pod): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fault: Fault = parse_body(&body)?;
    let pods = state.controls.fleet.set_pod_fault(&pod, fault.clone())?;
    Ok(Json(json!({"pods": pods, "fault": fault})).into_response())
}

async fn set_region_fault(
    State(state): State<AdminState>,
    Path(region): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fault: Fault = parse_body(&body)?;
    let pods = state.controls.fleet.set_region_fault(&region, fault.clone())?;
    Ok(Json(json!({"pods": pods, "fault": fault})).into_response())
}

async fn set_endpoint_fault(
    State(state): State<AdminState>,
    Path(endpoint): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fault: EndpointFault = parse_body(&body)?;
    state.controls.set_endpoint_fault(&endpoint, fault.clone())?;
    Ok(Json(json!({"endpoint": endpoint, "fault": fault})).into_response())
}

async fn set_node_fault(
    State(state): State<AdminState>,
    Path(node): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fault: NodeFault = parse_body(&body)?;
    state.controls.fleet.set_node_fault(&node, fault.clone())?;
    Ok(Json(json!({"node": node, "fault": fault})).into_response())
}

async fn set_client_cut(
    State(state): State<AdminState>,
    Path(client): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cut: ClientCut = parse_body(&body)?;
    let ip = parse_client(&client).map_err(SimError::from)?;
    state.controls.set_client_cut(ip, cut.clone())?;
    Ok(Json(json!({"client": ip, "cut": cut})).into_response())
}

async fn restart_pod(State(state): State<AdminState>, Path(pod): Path<String>) -> Result<StatusCode, ApiError> {
    state.controls.fleet.restart_pod(&pod)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses the body ourselves (not `Json<T>`) so that every malformed body, whatever its
/// content type, is a 400 with the same `{"message"}` shape.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, format!("invalid fault body: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3cres"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
