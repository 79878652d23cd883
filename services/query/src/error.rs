//! The one error type of the query API and how it reaches Grafana: every failure is a non-2xx
//! JSON body `{"message", "error": {"code", "message"}}`, the shape both Grafana's panels and
//! its "Save & test" button read (research note §4).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mixmon_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request cannot be served as sent; `code` is a stable machine-readable name.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 403, not 401: Grafana's data-source proxy rewrites a 401 and hides our message.
    #[error("missing or wrong bearer token")]
    Forbidden,
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The store failed; the details go to the log only, since they may name hosts.
    #[error("the metrics store is unavailable; see the query service's log")]
    Store(#[from] StoreError),
}

impl From<mixmon_sli::SliError> for QueryError {
    fn from(error: mixmon_sli::SliError) -> Self {
        match error {
            mixmon_sli::SliError::Store(store) => QueryError::Store(store),
            mixmon_sli::SliError::Window(window) => QueryError::bad_request("bad_window", window.to_string()),
        }
    }
}

impl QueryError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        QueryError::BadRequest { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            QueryError::Forbidden => StatusCode::FORBIDDEN,
            QueryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::NotFound { .. } => StatusCode::NOT_FOUND,
            QueryError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            // The store refusing a read as too large is the request's fault, not an outage.
            QueryError::Store(StoreError::Invalid(_)) => StatusCode::BAD_REQUEST,
            QueryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            QueryError::BadRequest { code, .. } => code,
            QueryError::Forbidden => "forbidden",
            QueryError::TooLarge { .. } => "body_too_large",
            QueryError::NotFound { .. } => "not_found",
            QueryError::MethodNotAllowed { .. } => "method_not_allowed",
            QueryError::Store(StoreError::Invalid(_)) => "too_much_data",
            QueryError::Store(_) => "store_unavailable",
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        if let QueryError::Store(source) = &self {
            tracing::error!(error = %source, "store request failed");
        }
        let message = match &self {
            // Our own size limits name no hosts, and say what to change.
            QueryError::Store(StoreError::Invalid(reason)) => {
                format!("the query reads too much data: {reason}")
            }
            other => other.to_string(),
        };
        let body = json!({ "message": message, "error": { "code": self.code(), "message": message } });
        let mut response = (self.status(), Json(body)).into_response();
        response.extensions_mut().insert(ErrorKind(self.code()));
        response
    }
}

/// The code of the error an answer carries, for the request counters (a bounded set of names).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorKind(pub &'static str);

/// Clips text taken from a request before it is echoed in an error message.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut clipped: String = text.chars().take(max_chars).collect();
        clipped.push('…');
        clipped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (QueryError::bad_request("unknown_metric", "x"), 400, "unknown_metric"),
            (QueryError::Forbidden, 403, "forbidden"),
            (QueryError::TooLarge { limit: 1 }, 413, "body_too_large"),
            (QueryError::Store(StoreError::Unavailable("redis://:pw@h".into())), 503, "store_unavailable"),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status().as_u16(), error.code()), (status, code));
        }
        let store = QueryError::Store(StoreError::Unavailable("redis://:pw@h".into())).to_string();
        assert!(!store.contains("pw"), "store details must not reach clients: {store}");
    }

    #[test]
    fn clip_limits_echoed_text() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
