//! Bearer-token check for everything but the liveness routes, as one middleware layer. A
//! missing or wrong token is 403, not 401: Grafana's proxy replaces a 401 with its own
//! message, and the user would never learn what is wrong. The status page (`GET /status`),
//! which people open in a browser and Grafana never proxies, is open when configured public,
//! and otherwise answers a missing or wrong token with 401 and a short HTML reason.

use axum::extract::{Request, State};
use axum::http::{header::AUTHORIZATION, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::QueryError;
use crate::{status_page, AppState};

pub(crate) async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.options.auth_token else {
        return next.run(request).await;
    };
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let path = request.uri().path();
    let status_page = read && path == status_page::PATH;
    let open_route = read && matches!(path, "/" | "/healthz") || status_page && state.options.status_page.public;
    if open_route {
        return next.run(request).await;
    }
    let presented = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    match presented {
        Some(candidate) if token.matches(candidate) => next.run(request).await,
        _ if status_page => status_page::unauthorized(),
        _ => QueryError::Forbidden.into_response(),
    }
}

/// The credentials of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
