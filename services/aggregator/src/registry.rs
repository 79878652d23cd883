//! Which probers exist and which are alive. A prober is alive while its report stream is open
//! and it spoke (a batch or a heartbeat) within three heartbeat intervals. A prober that goes
//! silent is reported as an info event; its silence is never a failure of what it probes:
//! the SLIs simply receive no results from it (no data, not down). The registry also keeps,
//! per prober, the assignment version sent and the one the prober confirmed running, and
//! reports a prober that does not confirm in time (drift).

use std::collections::BTreeMap;
use std::sync::Mutex;

use mixmon_model::{ProberId, ProberIdentity};

/// How often probers are asked to heartbeat.
pub const HEARTBEAT_INTERVAL_MS: u32 = 5_000;
/// Silent this long means gone.
pub const SILENCE_AFTER_MS: i64 = 3 * HEARTBEAT_INTERVAL_MS as i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberState {
    pub identity: ProberIdentity,
    pub last_seen_ms: i64,
    pub streams: u32,
    pub alive: bool,
    /// The assignment version last sent to the prober, and when.
    pub sent_version: u64,
    pub sent_at_ms: i64,
    /// The version the prober says it runs (0 until it says).
    pub applied_version: u64,
    drift_reported: bool,
}

/// A change in liveness worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivenessEvent {
    Joined(ProberIdentity),
    Silent(ProberIdentity),
    /// The prober did not confirm the assignment sent to it within [`DRIFT_AFTER_MS`].
    Drift {
        prober: ProberIdentity,
        expected: u64,
        running: u64,
    },
}

/// How long a prober may take to confirm a new assignment before that is reported.
pub const DRIFT_AFTER_MS: i64 = 10_000;

#[derive(Default)]
pub struct Registry {
    probers: Mutex<BTreeMap<ProberId, ProberState>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ProberId, ProberState>> {
        self.probers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registration or any message from the prober.
    pub fn seen(&self, identity: &ProberIdentity, now_ms: i64) -> Option<LivenessEvent> {
        let mut probers = self.lock();
        let state = probers.entry(identity.id.clone()).or_insert_with(|| ProberState {
            identity: identity.clone(),
            last_seen_ms: now_ms,
            streams: 0,
            alive: false,
            sent_version: 0,
            sent_at_ms: now_ms,
            applied_version: 0,
            drift_reported: false,
        });
        state.identity = identity.clone();
        state.last_seen_ms = state.last_seen_ms.max(now_ms);
        if state.alive {
            return None;
        }
        state.alive = true;
        Some(LivenessEvent::Joined(identity.clone()))
    }

    /// Whether this prober registered (or spoke) since the aggregator started.
    pub fn is_known(&self, id: &ProberId) -> bool {
        self.lock().contains_key(id)
    }

    pub fn stream_opened(&self, identity: &ProberIdentity, now_ms: i64) -> Option<LivenessEvent> {
        let event = self.seen(identity, now_ms);
        if let Some(state) = self.lock().get_mut(&identity.id) {
            state.streams += 1;
        }
        event
    }

    pub fn stream_closed(&self, id: &ProberId) {
        if let Some(state) = self.lock().get_mut(id) {
            state.streams = state.streams.saturating_sub(1);
        }
    }

    pub fn assignment_sent(&self, id: &ProberId, version: u64, now_ms: i64) {
        if let Some(state) = self.lock().get_mut(id) {
            if state.sent_version != version {
                state.sent_version = version;
                state.sent_at_ms = now_ms;
                state.drift_reported = false;
            }
        }
    }

    pub fn assignment_applied(&self, id: &ProberId, version: u64, now_ms: i64) {
        if let Some(state) = self.lock().get_mut(id) {
            state.applied_version = version;
            state.last_seen_ms = state.last_seen_ms.max(now_ms);
        }
    }

    /// Marks probers silent for too long as gone, and reports probers that have not confirmed
    /// their assignment in time; one event each.
    pub fn sweep(&self, now_ms: i64) -> Vec<LivenessEvent> {
        let mut events = Vec::new();
        for state in self.lock().values_mut() {
            // Only probers that confirm versions at all (older ones never do) can drift.
            if state.alive
                && state.applied_version != 0
                && state.applied_version != state.sent_version
                && now_ms - state.sent_at_ms > DRIFT_AFTER_MS
                && !state.drift_reported
            {
                state.drift_reported = true;
                events.push(LivenessEvent::Drift {
                    prober: state.identity.clone(),
                    expected: state.sent_version,
                    running: state.applied_version,
                });
            }
            if state.alive && now_ms - state.last_seen_ms > SILENCE_AFTER_MS {
                state.alive = false;
                events.push(LivenessEvent::Silent(state.identity.clone()));
            }
        }
        events
    }

    pub fn snapshot(&self) -> Vec<ProberState> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_model::Region;

    fn identity(id: &str) -> ProberIdentity {
        ProberIdentity {
            id: ProberId::new(id).unwrap(),
            region: Region::new("eu-west").unwrap(),
            node: id.into(),
            version: "0".into(),
        }
    }

    #[test]
    fn joins_goes_silent_and_comes_back_once_each() {
        let registry = Registry::default();
        let a = identity("a");
        assert_eq!(registry.stream_opened(&a, 0), Some(LivenessEvent::Joined(a.clone())));
        assert_eq!(registry.seen(&a, 1_000), None);
        assert!(registry.sweep(1_000 + SILENCE_AFTER_MS).is_empty());
        assert_eq!(registry.sweep(1_001 + SILENCE_AFTER_MS), vec![LivenessEvent::Silent(a.clone())]);
        assert!(registry.sweep(100_000).is_empty(), "reported once");
        assert_eq!(registry.seen(&a, 200_000), Some(LivenessEvent::Joined(a.clone())));
        registry.stream_closed(&a.id);
        assert_eq!(registry.snapshot()[0].streams, 0);
    }

    #[test]
    fn a_prober_that_does_not_confirm_its_assignment_is_reported_once() {
        let registry = Registry::default();
        let a = identity("a");
        registry.stream_opened(&a, 0);
        registry.assignment_sent(&a.id, 7, 0);
        registry.assignment_applied(&a.id, 7, 100);
        registry.assignment_sent(&a.id, 8, 1_000);
        assert!(registry.sweep(1_000 + DRIFT_AFTER_MS).is_empty(), "still in time");
        registry.seen(&a, 1_000 + DRIFT_AFTER_MS);
        let events = registry.sweep(1_001 + DRIFT_AFTER_MS);
        assert_eq!(events, vec![LivenessEvent::Drift { prober: a.clone(), expected: 8, running: 7 }]);
        assert!(registry.sweep(1_002 + DRIFT_AFTER_MS).is_empty(), "reported once");
        registry.assignment_applied(&a.id, 8, 1_003 + DRIFT_AFTER_MS);
        assert_eq!(registry.snapshot()[0].applied_version, 8);
    }
}
