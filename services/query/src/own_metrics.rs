//! `GET /metrics`: the query service's own metrics in Prometheus text format (requests by
//! route and status, their latency, store errors), the SLIs as gauges for teams that keep
//! Prometheus (read from the store when scraped, by the same functions as
//! `GET /api/v1/status`, so the two always agree), and the metrics of any other part composed
//! in the same process (`mixmon up`). `POST /metrics` stays the datasource's metric list.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mixmon_sli::status::{mixer_snapshot, status_snapshot};
use mixmon_telemetry::metrics::{self, CounterVec, Histogram, Registry, LATENCY_BUCKETS_S};

use crate::error::QueryError;
use crate::AppState;

/// The query service's metrics, declared once.
#[derive(Debug, Clone)]
pub(crate) struct QueryMetrics {
    pub registry: Registry,
    requests: CounterVec,
    duration: Histogram,
    errors: CounterVec,
}

impl QueryMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        QueryMetrics {
            requests: registry.counter_vec(
                "mixmon_query_requests_total",
                "HTTP requests answered, by route and status code.",
                &["route", "code"],
            ),
            duration: registry.histogram(
                "mixmon_query_request_duration_seconds",
                "Time from a request's arrival to its answer's head.",
                &LATENCY_BUCKETS_S,
            ),
            errors: registry.counter_vec(
                "mixmon_query_errors_total",
                "Requests answered with an error, by its kind (store_unavailable, bad_request, ...).",
                &["kind"],
            ),
            registry,
        }
    }
}

/// Counts every request by the route it matched (never the raw path, whose values are
/// unbounded) and times it.
pub(crate) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status();
    state.metrics.requests.inc(&[&route, code.as_str()]);
    state.metrics.duration.observe_since(started);
    if code.is_client_error() || code.is_server_error() {
        let kind = response.extensions().get::<crate::error::ErrorKind>().map_or("other", |k| k.0);
        state.metrics.errors.inc(&[kind]);
    }
    response
}

pub(crate) async fn handler(State(state): State<AppState>) -> Result<Response, QueryError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut families = state.metrics.registry.families();
    for other in &state.options.metrics_from {
        families.extend(other.families());
    }
    let rows = status_snapshot(state.store.as_ref(), now, &state.options.health).await?;
    let labels =
        |endpoint: &str, region: &str| vec![("endpoint".into(), endpoint.into()), ("region".into(), region.into())];
    let gauge = |name: &str, help: &str, value: &dyn Fn(&mixmon_sli::status::EndpointStatus) -> Option<f64>| {
        let samples = rows.iter().filter_map(|r| value(r).map(|v| (labels(&r.endpoint, &r.region), v))).collect();
        metrics::gauge_family(name, help, samples)
    };
    families.push(gauge(
        "mixmon_sli_success_5m_ratio",
        "Share of probes that succeeded over the last 5 minutes, per endpoint and region (region=\"all\": merged).",
        &|r| r.success_rate_5m,
    ));
    families.push(gauge("mixmon_sli_uptime_24h_ratio", "Rolling 24 h uptime: successful probes over probes.", &|r| {
        r.uptime_24h
    }));
    families.push(gauge(
        "mixmon_sli_latency_p95_5m_seconds",
        "95th percentile of successful probes' latency over the last 5 minutes.",
        &|r| r.p95_ms_5m.map(|ms| ms / 1_000.0),
    ));
    families.push(gauge("mixmon_sli_probes_5m", "Probes over the last 5 minutes.", &|r| Some(r.probes_5m as f64)));
    let mixer = mixer_snapshot(state.store.as_ref(), now).await?;
    families.push(metrics::gauge_family(
        "mixmon_sli_mixer_requests_per_second",
        "The mixer's request rate over the last 5 minutes, per region (region=\"all\": every region).",
        mixer
            .iter()
            .filter_map(|m| m.request_rate_5m.map(|v| (vec![("region".into(), m.region.clone())], v)))
            .collect(),
    ));
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(families)).into_response())
}
