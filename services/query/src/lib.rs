//! The query API: a Grafana JSON data source (`simpod-json-datasource`, contract in
//! `shared/research/grafana-json-datasource.md` §5) plus a small REST API, read-only over a
//! [`Store`]. SLIs are computed from merged per-minute rollups, so every quantile is a true
//! quantile of the probes in its window, also across regions.
//!
//! Routes: `GET /` and `GET /healthz` (liveness, never authenticated); `POST /metrics`,
//! `/metric-payload-options`, `/query`, `/variable`, `/tag-keys`, `/tag-values` and legacy
//! `/search` (Grafana); `GET /api/v1/status` (the health table, [`status_snapshot`]) and
//! `GET /api/v1/status/mixer` (the mixer per region, [`mixer_snapshot`]); the alerts, their
//! history and silences in Alertmanager's API (`alerts`, `silences`); `GET /api/v1/receivers`
//! (how notifications are being delivered); `GET /status`, the HTML status page
//! (`status_page`).

mod alerts;
mod auth;
mod body;
mod catalog;
mod compute;
pub mod config;
mod error;
mod figure_query;
mod filter;
mod limits;
mod metric;
mod own_metrics;
mod query;
mod receivers;
mod records;
mod request;
mod selection;
mod silences;
mod status;
mod status_page;
mod timeline;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use mixmon_config::Secret;
use mixmon_model::sli::HealthThresholds;
use mixmon_store::Store;
use serde_json::{json, Value};

// The figure catalogue lives in `libs/sli`, shared with the alert rules.
use mixmon_sli::figure;

pub use error::QueryError;
pub use figure::FigureMetric;
pub use limits::{DEFAULT_MAX_CONCURRENT, DEFAULT_REQUEST_TIMEOUT};
pub use metric::Metric;
pub use status::{mixer_snapshot, status_snapshot, EndpointStatus, MixerStatus};
pub use status_page::StatusPageOptions;

/// Largest request body accepted; Grafana's requests are a few kilobytes.
pub const BODY_LIMIT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// When set, every route but `GET /` and `GET /healthz` needs `Authorization: Bearer`.
    pub auth_token: Option<Secret>,
    pub health: HealthThresholds,
    /// Most datapoints one `/query` may answer (series x points, tables counting one per row),
    /// checked before any data is read.
    pub max_datapoints: usize,
    /// Requests served at once; past it a request is shed with 503 and `Retry-After`.
    pub max_concurrent: usize,
    /// Longest a request may run before it is stopped with 503.
    pub request_timeout: std::time::Duration,
    /// `GET /status`: whether it is public, how often it refreshes.
    pub status_page: StatusPageOptions,
    /// Metrics of other parts served with this service's on `GET /metrics` (`mixmon up`).
    pub metrics_from: Vec<mixmon_telemetry::metrics::Registry>,
}

/// Far above a real dashboard panel (50 series x 1 700 points is 85 000), far below what
/// takes the service's memory (a 500 000-point answer is about 15 MB of JSON).
pub const DEFAULT_MAX_DATAPOINTS: usize = 500_000;

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            auth_token: None,
            health: HealthThresholds::default(),
            max_datapoints: DEFAULT_MAX_DATAPOINTS,
            max_concurrent: limits::DEFAULT_MAX_CONCURRENT,
            request_timeout: limits::DEFAULT_REQUEST_TIMEOUT,
            status_page: StatusPageOptions::default(),
            metrics_from: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Arc<dyn Store>,
    pub options: Arc<QueryOptions>,
    pub points: Arc<compute::PointCache>,
    /// The datapoints all `/query` requests may compute at once.
    pub point_budget: Arc<query::PointBudget>,
    /// When this service started (Alertmanager's status reports an uptime).
    pub started_at_ms: i64,
    /// The status page's last render, reused for a few seconds.
    pub status_page: Arc<status_page::Renders>,
    pub metrics: own_metrics::QueryMetrics,
}

/// Folded (group, hour, step) blocks the query service keeps; a 24 h panel of 24 series at
/// one step needs 600.
const POINT_CACHE_HOURS: usize = 4_096;
/// Bytes the folded hours may hold (by estimate), whatever their width: a 24 h panel of 24
/// series with its uptime lead folds about 1 200 hours of some 100 KiB at a minute's step.
const POINT_CACHE_BYTES: usize = 256 << 20;

/// The whole HTTP API. No route redirects, and every answer, errors and unknown routes
/// included, is JSON, but the status page's (HTML).
pub fn app(store: Arc<dyn Store>, options: QueryOptions) -> Router {
    let limits = limits::Limits {
        in_flight: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent.max(1))),
        max_concurrent: options.max_concurrent.max(1),
        timeout: options.request_timeout,
    };
    let state = AppState {
        store,
        point_budget: Arc::new(query::PointBudget::new(options.max_datapoints)),
        options: Arc::new(options),
        points: Arc::new(compute::PointCache::new(POINT_CACHE_HOURS, POINT_CACHE_BYTES)),
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        status_page: Arc::default(),
        metrics: own_metrics::QueryMetrics::new(),
    };
    Router::new()
        .route("/", get(alive))
        .route("/healthz", get(alive))
        .route("/metrics", post(catalog::metrics).get(own_metrics::handler))
        .route("/metric-payload-options", post(catalog::payload_options))
        .route("/query", post(query::handler))
        .route("/variable", post(catalog::variable))
        .route("/tag-keys", post(catalog::tag_keys))
        .route("/tag-values", post(catalog::tag_values))
        .route("/search", post(catalog::search))
        .route("/api/v1/status", get(status::handler))
        .route("/api/v1/status/mixer", get(status::mixer_handler))
        .route("/api/v1/records", get(records::handler))
        .route("/api/v1/alerts", get(alerts::v1_alerts))
        .route("/api/v1/alerts/history", get(alerts::history))
        .route("/api/v2/alerts", get(alerts::v2_alerts))
        .route("/api/v2/alerts/groups", get(alerts::v2_groups))
        .route("/api/v2/status", get(alerts::v2_status))
        .route("/api/v1/receivers", get(receivers::handler))
        .route(status_page::PATH, get(status_page::handler))
        .route("/api/v2/silences", get(silences::list).post(silences::create))
        .route("/api/v2/silence/{id}", get(silences::get_one).delete(silences::expire))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        // Outermost: a shed request costs nothing, not even its authentication.
        .layer(middleware::from_fn_with_state(limits, limits::enforce))
        // Outside even that, so shed requests are counted too.
        .layer(middleware::from_fn_with_state(state.clone(), own_metrics::count))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    connections: mixmon_listener::ConnectionLimits,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = mixmon_listener::GuardedListener::new(listener, connections);
    mixmon_listener::serve_http(listener, router, shutdown).await
}

async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found(method: Method, uri: Uri) -> QueryError {
    QueryError::NotFound { method: method.to_string(), path: error::clip(uri.path(), 200) }
}

async fn method_not_allowed(method: Method, uri: Uri) -> QueryError {
    QueryError::MethodNotAllowed { method: method.to_string(), path: error::clip(uri.path(), 200) }
}
