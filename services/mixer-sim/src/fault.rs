//! Faults a pod can be told to have, their validation, and the deterministic error share.

use serde::{Deserialize, Serialize};

/// Longest added latency; beyond it a "latency" fault is really a hang and should say so.
pub(crate) const MAX_LATENCY_MS: u64 = 3_600_000;
/// The largest traffic factor: ten times the configured rate is a surge, more is a typo.
const MAX_TRAFFIC_FACTOR: f64 = 10.0;
/// Peak levels outside this range are not something a mixer can report.
const PEAK_DB_RANGE: std::ops::RangeInclusive<f64> = -200.0..=20.0;
/// Error shares are applied in parts per million so that shares like 0.1 stay exact.
const PPM: u32 = 1_000_000;

/// A pod's injected misbehaviour; every field is optional in JSON and off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// `/health` and `/metrics` answer 503, and the pod handles no simulated traffic.
    pub down: bool,
    /// `/health` never answers; the connection is held until the client gives up.
    pub hang: bool,
    /// Added to every `/health` answer and every simulated processing duration.
    pub latency_ms: u64,
    /// Share (0..=1) of `/health` answers that are 500 and of simulated requests that fail.
    pub error_share: f64,
    /// Pins the `ai_mixer_audio_peak_db` gauge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_db: Option<f64>,
    /// Down for a fixed slice of every wall-clock period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_schedule: Option<DownSchedule>,
    /// Pins the pod's memory usage at this fraction (0..=1) of its memory limit, in
    /// `process_resident_memory_bytes` and in `metrics.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_pressure: Option<f64>,
    /// Scales the pod's simulated request rate (0..=10; absent: 1): 0.01 leaves a region's
    /// pods up and scrapeable while it serves a trickle of requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_factor: Option<f64>,
}

/// Down whenever `unix_time_ms % (period_s * 1000) < down_s * 1000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownSchedule {
    pub period_s: u64,
    pub down_s: u64,
}

/// Why a fault was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("error_share must be a number in 0..=1, got {0}")]
    ErrorShare(f64),
    #[error("latency_ms must be at most {MAX_LATENCY_MS}, got {0}; use hang for longer")]
    Latency(u64),
    #[error("peak_db must be a number in -200..=20, got {0}")]
    PeakDb(f64),
    #[error("memory_pressure must be a fraction in 0..=1 of the memory limit, got {0}")]
    MemoryPressure(f64),
    #[error("{name} must be a fraction in 0..=1 of the node's capacity, got {value}")]
    NodeRatio { name: &'static str, value: f64 },
    #[error("traffic_factor must be a number in 0..=10, got {0}")]
    TrafficFactor(f64),
    #[error("down_schedule.period_s must be at least 1")]
    ZeroPeriod,
    #[error("down_schedule.down_s ({down_s}) must not exceed period_s ({period_s})")]
    DownLongerThanPeriod { down_s: u64, period_s: u64 },
}

impl Fault {
    /// Checks every field; a fault is only ever stored after this passed.
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.error_share) {
            // NaN fails `contains`, so it lands here too.
            return Err(FaultError::ErrorShare(self.error_share));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(FaultError::Latency(self.latency_ms));
        }
        if let Some(peak) = self.peak_db {
            if !PEAK_DB_RANGE.contains(&peak) {
                return Err(FaultError::PeakDb(peak));
            }
        }
        if let Some(pressure) = self.memory_pressure {
            if !(0.0..=1.0).contains(&pressure) {
                return Err(FaultError::MemoryPressure(pressure));
            }
        }
        if let Some(factor) = self.traffic_factor {
            if !(0.0..=MAX_TRAFFIC_FACTOR).contains(&factor) {
                return Err(FaultError::TrafficFactor(factor));
            }
        }
        if let Some(DownSchedule { period_s, down_s }) = self.down_schedule {
            if period_s == 0 {
                return Err(FaultError::ZeroPeriod);
            }
            if down_s > period_s {
                return Err(FaultError::DownLongerThanPeriod { down_s, period_s });
            }
        }
        Ok(())
    }

    /// Whether the pod is down at this wall-clock instant (ms since the Unix epoch).
    pub fn is_down_at(&self, unix_ms: u128) -> bool {
        self.down
            || self.down_schedule.is_some_and(|s| {
                // u128 so that no period can overflow the multiplication.
                let period_ms = u128::from(s.period_s) * 1000;
                period_ms > 0 && unix_ms % period_ms < u128::from(s.down_s) * 1000
            })
    }

    /// What the pod's request rate is multiplied by.
    pub(crate) fn traffic_factor(&self) -> f64 {
        self.traffic_factor.unwrap_or(1.0)
    }

    /// The error share in parts per million, for [`ShareAccumulator`].
    pub(crate) fn error_share_ppm(&self) -> u32 {
        // Validated to 0..=1, so the product fits and is not negative.
        (self.error_share.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32
    }
}

/// Turns a share into an exact, evenly spread sequence of hits: with 0.25, every fourth call
/// hits, so a test sees exactly 25 of 100 rather than "about" 25.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShareAccumulator {
    acc: u32,
}

impl ShareAccumulator {
    /// Advances by one event at `share_ppm`; true when this event is a hit.
    pub(crate) fn next(&mut self, share_ppm: u32) -> bool {
        self.acc += share_ppm.min(PPM);
        if self.acc >= PPM {
            self.acc -= PPM;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(period_s: u64, down_s: u64) -> Fault {
        Fault { down_schedule: Some(DownSchedule { period_s, down_s }), ..Fault::default() }
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(Fault, Option<FaultError>)> = vec![
            (Fault::default(), None),
            (Fault { error_share: 1.0, ..Fault::default() }, None),
            (Fault { error_share: 1.5, ..Fault::default() }, Some(FaultError::ErrorShare(1.5))),
            (Fault { error_share: -0.1, ..Fault::default() }, Some(FaultError::ErrorShare(-0.1))),
            (Fault { latency_ms: 4_000_000, ..Fault::default() }, Some(FaultError::Latency(4_000_000))),
            (Fault { peak_db: Some(-1.0), ..Fault::default() }, None),
            (Fault { peak_db: Some(90.0), ..Fault::default() }, Some(FaultError::PeakDb(90.0))),
            (Fault { memory_pressure: Some(0.9), ..Fault::default() }, None),
            (Fault { memory_pressure: Some(1.2), ..Fault::default() }, Some(FaultError::MemoryPressure(1.2))),
            (Fault { traffic_factor: Some(0.01), ..Fault::default() }, None),
            (Fault { traffic_factor: Some(0.0), ..Fault::default() }, None),
            (Fault { traffic_factor: Some(10.0), ..Fault::default() }, None),
            (Fault { traffic_factor: Some(10.5), ..Fault::default() }, Some(FaultError::TrafficFactor(10.5))),
            (Fault { traffic_factor: Some(-0.1), ..Fault::default() }, Some(FaultError::TrafficFactor(-0.1))),
            (schedule(60, 15), None),
            (schedule(60, 60), None),
            (schedule(0, 0), Some(FaultError::ZeroPeriod)),
            (schedule(60, 61), Some(FaultError::DownLongerThanPeriod { down_s: 61, period_s: 60 })),
        ];
        for (fault, expected) in cases {
            assert_eq!(fault.validate().err(), expected, "{fault:?}");
        }
        let nan = Fault { error_share: f64::NAN, ..Fault::default() };
        assert!(matches!(nan.validate(), Err(FaultError::ErrorShare(_))));
        let nan_peak = Fault { peak_db: Some(f64::NAN), ..Fault::default() };
        assert!(matches!(nan_peak.validate(), Err(FaultError::PeakDb(_))));
        let nan_memory = Fault { memory_pressure: Some(f64::NAN), ..Fault::default() };
        assert!(matches!(nan_memory.validate(), Err(FaultError::MemoryPressure(_))));
        let nan_traffic = Fault { traffic_factor: Some(f64::NAN), ..Fault::default() };
        assert!(matches!(nan_traffic.validate(), Err(FaultError::TrafficFactor(_))));
    }

    #[test]
    fn schedule_is_down_for_its_slice_of_each_period() {
        let fault = schedule(60, 15);
        let minute = 1_763_900_040_000_u128; // a whole minute
        assert!(fault.is_down_at(minute));
        assert!(fault.is_down_at(minute + 14_999));
        assert!(!fault.is_down_at(minute + 15_000));
        assert!(!fault.is_down_at(minute + 59_999));
        assert!(fault.is_down_at(minute + 60_000));
        let down_share = (0..60_000).filter(|ms| fault.is_down_at(minute + ms)).count();
        assert_eq!(down_share, 15_000);
        assert!(!schedule(60, 0).is_down_at(minute));
        assert!(Fault { down: true, ..Fault::default() }.is_down_at(minute + 30_000));
    }

    #[test]
    fn accumulator_is_exact() {
        for (share, per_100) in [(0.0, 0), (0.25, 25), (0.1, 10), (0.333, 33), (1.0, 100)] {
            let ppm = Fault { error_share: share, ..Fault::default() }.error_share_ppm();
            let mut acc = ShareAccumulator::default();
            let hits = (0..100).filter(|_| acc.next(ppm)).count();
            assert_eq!(hits, per_100, "share {share}");
        }
    }

    #[test]
    fn json_fields_are_optional_and_unknown_ones_refused() {
        let fault: Fault = serde_json::from_str(r#"{"latency_ms": 50}"#).expect("valid fault");
        assert_eq!(fault, Fault { latency_ms: 50, ..Fault::default() });
        assert!(serde_json::from_str::<Fault>(r#"{"latency": 50}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"down_schedule": {"period_s": 60}}"#).is_err());
    }
}
