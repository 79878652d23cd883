//! One simulated pod: its identity, its current fault and its figures behind one lock.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fault::{Fault, ShareAccumulator};
use crate::metrics::PodMetrics;
use crate::traffic::Traffic;

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
    state: Mutex<PodState>,
}

#[derive(Debug)]
struct PodState {
    fault: Fault,
    health_errors: ShareAccumulator,
    metrics: PodMetrics,
    traffic: Traffic,
}

impl Pod {
    pub(crate) fn new(name: String, region: String, seed: u64) -> Self {
        let state = PodState {
            fault: Fault::default(),
            health_errors: ShareAccumulator::default(),
            metrics: PodMetrics::new(unix_seconds()),
            traffic: Traffic::new(seed),
        };
        Self { name, region, state: Mutex::new(state) }
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

    /// The scrape body, or `None` while the pod is down.
    pub(crate) fn scrape(&self) -> Option<String> {
        let state = self.state();
        if state.fault.is_down_at(unix_millis()) {
            return None;
        }
        Some(state.metrics.render(&self.region))
    }

    /// Moves the figures on by `dt_s` seconds of traffic.
    pub(crate) fn tick(&self, rps: f64, dt_s: f64) {
        let state = &mut *self.state();
        let down = state.fault.is_down_at(unix_millis());
        state.traffic.advance(&mut state.metrics, &state.fault, down, rps, dt_s);
    }

    /// Like a restarted process: counters and histogram from zero, a later start time.
    pub(crate) fn restart(&self) {
        let mut state = self.state();
        // Strictly later even when restarted twice within the clock's resolution.
        let start = unix_seconds().max(state.metrics.start_time_seconds + 0.001);
        state.metrics = PodMetrics::new(start);
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

fn unix_seconds() -> f64 {
    since_epoch().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_fault() {
        let pod = Pod::new("mixer-ap-0".into(), "ap".into(), 1);
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
        let pod = Pod::new("mixer-ap-0".into(), "ap".into(), 1);
        pod.tick(40.0, 1.0);
        let before = pod.start_time_seconds();
        assert!(pod.scrape().is_some_and(|t| !t.contains("status=\"200\"} 0\n")));
        pod.restart();
        pod.restart();
        assert!(pod.start_time_seconds() > before);
        assert!(pod.scrape().is_some_and(|t| t.contains("status=\"200\"} 0\n")));
    }
}
