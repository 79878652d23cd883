//! The prober's own health endpoints, for Kubernetes' probes (`[health] listen`, off unless
//! set): `GET /healthz` answers 200 while the process runs and its control loop (the uplink,
//! which owns the scheduler and applies assignments) keeps turning, and 503 once that loop
//! stopped or has not turned for [`STALL_AFTER`]; `GET /readyz` answers 200 once the prober
//! holds an assignment snapshot from an aggregator (from then on it probes, connected or not,
//! buffering what it cannot send), and 503 before. They say nothing else, so they need no
//! token. `GET /metrics` serves the prober's own metrics; anything else is a 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use mixmon_telemetry::metrics::{self, Registry};

/// A control loop silent this long is stuck: every wait inside it is bounded well below this
/// (connect 3 s, each stream's opening 10 s, backoff at most 10 s, a beat every 5 s while a
/// session runs), so only a hang gets here.
pub const STALL_AFTER: Duration = Duration::from_secs(90);

/// Few clients ever ask (the kubelet, an operator's curl); a flood gets the rest closed.
fn limits() -> mixmon_listener::ConnectionLimits {
    mixmon_listener::ConnectionLimits {
        max_connections: 64,
        idle_timeout_ms: 10_000,
        ..mixmon_listener::ConnectionLimits::default()
    }
}

/// What the endpoints answer from, shared with the control loop.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds after `started` of the control loop's last beat.
    last_beat_ms: AtomicU64,
    stopped: AtomicBool,
    assigned: AtomicBool,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Health::since(Instant::now()))
    }

    fn since(started: Instant) -> Self {
        Health {
            started,
            last_beat_ms: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The control loop turned.
    pub fn beat(&self) {
        self.last_beat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// An assignment snapshot was applied: the prober has its checks.
    pub fn assignment_held(&self) {
        self.assigned.store(true, Ordering::Relaxed);
    }

    /// The control loop ended (shutdown, or no aggregator to talk to).
    pub fn stopped(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// `Ok` while alive, else why not.
    pub fn live(&self) -> Result<(), String> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err("the control loop has stopped".into());
        }
        let silent = Duration::from_millis(self.now_ms().saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)));
        if silent > STALL_AFTER {
            return Err(format!("the control loop has not turned for {} s", silent.as_secs()));
        }
        Ok(())
    }

    /// `Ok` once an assignment is held, else why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.assigned.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("no assignment from an aggregator yet".into())
        }
    }
}

fn answer(outcome: Result<(), String>) -> (StatusCode, String) {
    match outcome {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// `GET /healthz` and `GET /readyz` over `health`, and `GET /metrics`: the prober's own
/// metrics in Prometheus text format (counts of its buffer, scrapes and records; no names, no
/// targets, so like the health answers they need no token).
pub fn router(health: Arc<Health>, registry: Registry) -> Router {
    let own_metrics = Router::new()
        .route(
            "/metrics",
            get(|State(registry): State<Registry>| async move {
                ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(registry.families()))
            }),
        )
        .with_state(registry);
    Router::new()
        .route("/healthz", get(|State(h): State<Arc<Health>>| async move { answer(h.live()) }))
        .route("/readyz", get(|State(h): State<Arc<Health>>| async move { answer(h.ready()) }))
        .with_state(health)
        .merge(own_metrics)
}

/// Binds `addr` now, so a taken port fails the prober's start, naming the setting.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, crate::ProberError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::ProberError::Config(format!("health.listen: cannot listen on {addr}: {e}")))
}

/// The endpoints served on `listener` until the returned [`Server`] is dropped.
pub fn serve(listener: tokio::net::TcpListener, health: Arc<Health>, registry: Registry) -> Server {
    let listener = mixmon_listener::GuardedListener::new(listener, limits());
    Server(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(health, registry)).await {
            tracing::warn!(%error, "the health endpoints stopped");
        }
    }))
}

/// The serving task; dropping it stops the endpoints (so a prober that returns, however it
/// returns, leaves no listener behind).
#[derive(Debug)]
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_until_stopped_ready_once_assigned() {
        let health = Health::new();
        assert!(health.live().is_ok());
        assert!(health.ready().unwrap_err().contains("no assignment"));
        health.beat();
        health.assignment_held();
        assert!(health.ready().is_ok());
        health.stopped();
        assert!(health.live().unwrap_err().contains("stopped"));
    }

    #[test]
    fn a_silent_control_loop_is_not_alive() {
        // Started, and last beat, long ago (unless this host booted only just now).
        let Some(long_ago) = Instant::now().checked_sub(STALL_AFTER * 2) else { return };
        let health = Health::since(long_ago);
        assert!(health.live().unwrap_err().contains("has not turned"));
        health.beat();
        assert!(health.live().is_ok());
    }
}
