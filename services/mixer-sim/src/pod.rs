//! One simulated pod: its identity, its current fault and its figures behind one lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::fault::{Fault, ShareAccumulator};
use crate::metrics::{memory_at, PodMetrics};
use crate::traffic::Traffic;

/// How long a restarted pod reports `Ready` false, like a real container between its start
/// and its first passing readiness probe.
pub(crate) const RESTART_UNREADY: Duration = Duration::from_secs(3);

/// What the Kubernetes API says about a pod at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KubeStatus {
    pub restart_count: u32,
    /// False while down, hanging, or within [`RESTART_UNREADY`] of a restart.
    pub ready: bool,
    /// The container's working-set memory, bytes.
    pub memory_bytes: u64,
    /// The container's CPU use, nanocores: moves with its active streams, none while down.
    pub cpu_nanocores: u64,
    /// Streams it is mixing (none while down): what its node's network carries.
    pub active_streams: u64,
    /// When the pod object was created (the simulator's start), Unix seconds.
    pub created_unix_s: f64,
    /// When the running container started (creation, or the last restart), Unix seconds.
    pub started_unix_s: f64,
}

/// What a `/health` request to this pod gets, decided when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthVerdict {
    Down,
    Hang,
    Answer { delay: Duration, error: bool },
}

#[derive(Debug)]
pub(crate) struct Pod {
    pub name: String,
    pub region: String,
    /// The (simulated) Kubernetes node the pod is scheduled on.
    pub node: String,
    created_unix_s: f64,
    /// `/metrics` requests answered so far (down or not): how often the pod was scraped.
    scrapes: AtomicU64,
    state: Mutex<PodState>,
}

#[derive(Debug)]
struct PodState {
    fault: Fault,
    health_errors: ShareAccumulator,
    metrics: PodMetrics,
    traffic: Traffic,
    restart_count: u32,
    /// Not ready until then (set by a restart).
    unready_until: Option<Instant>,
}

impl Pod {
    pub(crate) fn new(name: String, region: String, node: String, seed: u64) -> Self {
        let created_unix_s = unix_seconds();
        let state = PodState {
            fault: Fault::default(),
            health_errors: ShareAccumulator::default(),
            metrics: PodMetrics::new(created_unix_s),
            traffic: Traffic::new(seed),
            restart_count: 0,
            unready_until: None,
        };
        Self { name, region, node, created_unix_s, scrapes: AtomicU64::new(0), state: Mutex::new(state) }
    }

    /// The lock is only held for short, non-async work; a panic while holding it leaves
    /// figures that are still valid numbers, so a poisoned lock is used as is.
    fn state(&self) -> MutexGuard<'_, PodState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn fault(&self) -> Fault {
        self.state().fault.clone()
    }

    /// Replaces the fault (already validated) and restarts its error share from zero.
    pub(crate) fn set_fault(&self, fault: Fault) {
        let mut state = self.state();
        // A pinned peak shows at the very next scrape, not only after the next tick.
        if let Some(peak) = fault.peak_db {
            state.metrics.peak_db = peak;
        }
        if let Some(pressure) = fault.memory_pressure {
            state.metrics.resident_memory_bytes = memory_at(pressure);
        }
        state.fault = fault;
        state.health_errors = ShareAccumulator::default();
        state.traffic.reset_errors();
    }

    pub(crate) fn health_verdict(&self) -> HealthVerdict {
        let mut state = self.state();
        if state.fault.is_down_at(unix_millis()) {
            return HealthVerdict::Down;
        }
        if state.fault.hang {
            return HealthVerdict::Hang;
        }
        let share = state.fault.error_share_ppm();
        let error = state.health_errors.next(share);
        HealthVerdict::Answer { delay: Duration::from_millis(state.fault.latency_ms), error }
    }

    /// The scrape body, or `None` while the pod is down; counted in [`Pod::scrapes`] either way.
    pub(crate) fn scrape(&self) -> Option<String> {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let state = self.state();
        if state.fault.is_down_at(unix_millis()) {
            return None;
        }
        Some(state.metrics.render(&self.region))
    }

    /// How many `/metrics` requests the pod has answered.
    pub(crate) fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Moves the figures on by `dt_s` seconds of traffic.
    pub(crate) fn tick(&self, rps: f64, dt_s: f64) {
        let state = &mut *self.state();
        let down = state.fault.is_down_at(unix_millis());
        state.traffic.advance(&mut state.metrics, &state.fault, down, rps, dt_s);
    }

    /// Like a restarted container: counters and histogram from zero, a later start time, one
    /// more restart in its status and not ready for [`RESTART_UNREADY`].
    pub(crate) fn restart(&self) {
        let mut state = self.state();
        // Strictly later even when restarted twice within the clock's resolution.
        let start = unix_seconds().max(state.metrics.start_time_seconds + 0.001);
        state.metrics = PodMetrics::new(start);
        if let Some(pressure) = state.fault.memory_pressure {
            state.metrics.resident_memory_bytes = memory_at(pressure);
        }
        state.restart_count = state.restart_count.saturating_add(1);
        state.unready_until = Some(Instant::now() + RESTART_UNREADY);
    }

    /// The pod's status as the Kubernetes API and metrics.k8s.io report it now.
    pub(crate) fn kube_status(&self) -> KubeStatus {
        let state = self.state();
        let restarting = state.unready_until.is_some_and(|until| Instant::now() < until);
        let down = state.fault.is_down_at(unix_millis());
        let ready = !restarting && !state.fault.hang && !down;
        // About 2 millicores per active stream: 0.2..0.4 of a core.
        let active_streams = if down { 0 } else { state.metrics.active_streams };
        let cpu_nanocores = active_streams * 2_000_000;
        KubeStatus {
            restart_count: state.restart_count,
            ready,
            memory_bytes: state.metrics.resident_memory_bytes,
            cpu_nanocores,
            active_streams,
            created_unix_s: self.created_unix_s,
            started_unix_s: state.metrics.start_time_seconds,
        }
    }

    #[cfg(test)]
    pub(crate) fn start_time_seconds(&self) -> f64 {
        self.state().metrics.start_time_seconds
    }
}

fn since_epoch() -> Duration {
    // A clock before 1970 is a broken host; zero keeps the simulator running.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn unix_millis() -> u128 {
    since_epoch().as_millis()
}

pub(crate) fn unix_seconds() -> f64 {
    since_epoch().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_fault() {
        let pod = Pod::new("mixer-ap-0".into(), "ap".into(), "node-ap-0".into(), 1);
        let ok = HealthVerdict::Answer { delay: Duration::ZERO, error: false };
        assert_eq!(pod.health_verdict(), ok);
        pod.set_fault(Fault { hang: true, down: true, ..Fault::default() });
        assert_eq!(pod.health_verdict(), HealthVerdict::Down, "down wins over hang");
        assert!(pod.scrape().is_none());
        pod.set_fault(Fault { hang: true, ..Fault::default() });
        assert_eq!(pod.health_verdict(), HealthVerdict::Hang);
        pod.set_fault(Fault { latency_ms: 50, error_share: 1.0, ..Fault::default() });
        let slow_error = HealthVerdict::Answer { delay: Duration::from_millis(50), error: true };
        assert_eq!(pod.health_verdict(), slow_error);
    }

    #[test]
    fn restart_zeroes_counters_and_moves_start_time() {
        let pod = Pod::new("mixer-ap-0".into(), "ap".into(), "node-ap-0".into(), 1);
        pod.tick(40.0, 1.0);
        let before = pod.start_time_seconds();
        assert!(pod.scrape().is_some_and(|t| !t.contains("status=\"200\"} 0\n")));
        pod.restart();
        pod.restart();
        assert!(pod.start_time_seconds() > before);
        assert!(pod.scrape().is_some_and(|t| t.contains("status=\"200\"} 0\n")));
        let status = pod.kube_status();
        assert_eq!(status.restart_count, 2);
        assert!(!status.ready, "not ready right after a restart");
        assert!(status.started_unix_s > status.created_unix_s);
    }

    #[test]
    fn readiness_and_memory_follow_the_fault() {
        let pod = Pod::new("mixer-ap-0".into(), "ap".into(), "node-ap-0".into(), 1);
        let status = pod.kube_status();
        assert!(status.ready);
        assert_eq!(status.restart_count, 0);
        pod.set_fault(Fault { down: true, ..Fault::default() });
        assert!(!pod.kube_status().ready);
        pod.set_fault(Fault { memory_pressure: Some(0.9), ..Fault::default() });
        assert!(pod.kube_status().ready);
        assert_eq!(pod.kube_status().memory_bytes, memory_at(0.9));
        pod.tick(40.0, 0.1);
        assert_eq!(pod.kube_status().memory_bytes, memory_at(0.9), "pinned across ticks");
        pod.restart();
        assert_eq!(pod.kube_status().memory_bytes, memory_at(0.9), "and across a restart");
    }
}
