//! SLIs computed from rollups over any window, and the health classification the operators
//! defined (`shared/alert-rules.md`). Windows are merged rollups, so quantiles over a window
//! are true quantiles of every probe in it, not averages of per-minute quantiles.

use crate::rollup::{Phase, Rollup};

/// Share of probes that succeeded, `0.0..=1.0`; `None` when nothing was probed.
pub fn success_rate(window: &Rollup) -> Option<f64> {
    (window.total > 0).then(|| window.successes as f64 / window.total as f64)
}

/// The availability SLI: the share of probes that succeeded over the window.
pub fn availability(window: &Rollup) -> Option<f64> {
    success_rate(window)
}

/// Mean duration of one request phase in milliseconds, over the successful probes in which it
/// happened; `None` when it never did (no TLS on `http://`).
pub fn phase_mean_ms(window: &Rollup, phase: Phase) -> Option<f64> {
    window.phases.mean_us(phase).map(|us| us / 1_000.0)
}

/// Share of probes that failed, `0.0..=1.0`; `None` when nothing was probed.
pub fn error_rate(window: &Rollup) -> Option<f64> {
    success_rate(window).map(|rate| 1.0 - rate)
}

/// Latency quantile of successful probes in milliseconds.
pub fn latency_ms(window: &Rollup, q: f64) -> Option<f64> {
    window.latency.quantile(q).map(|us| us / 1_000.0)
}

/// Mean latency of successful probes in milliseconds.
pub fn mean_latency_ms(window: &Rollup) -> Option<f64> {
    (window.successes > 0).then(|| window.latency_sum_us as f64 / window.successes as f64 / 1_000.0)
}

/// Probes per second over a window of `seconds`.
pub fn throughput_per_s(window: &Rollup, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| window.total as f64 / seconds)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    /// Nothing was probed in the window: never to be read as down.
    NoData,
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::NoData => "no_data",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The operators' thresholds: response time 100 ms / 500 ms, rolling 24 h uptime below 95 % /
/// 90 %, error rate 0.5 % / 1 % (warning / critical).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    pub latency_warning_ms: f64,
    pub latency_critical_ms: f64,
    pub uptime_warning: f64,
    pub uptime_critical: f64,
    pub error_rate_warning: f64,
    pub error_rate_critical: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            latency_warning_ms: 100.0,
            latency_critical_ms: 500.0,
            uptime_warning: 0.95,
            uptime_critical: 0.90,
            error_rate_warning: 0.005,
            error_rate_critical: 0.01,
        }
    }
}

/// Classifies a recent window (its error rate and p95 latency) together with the rolling 24 h
/// uptime. The worst signal wins; a window with no probes is `NoData`.
pub fn classify(recent: &Rollup, uptime_24h: Option<f64>, t: &HealthThresholds) -> HealthStatus {
    let Some(error_rate) = error_rate(recent) else { return HealthStatus::NoData };
    let p95 = latency_ms(recent, 0.95);
    let critical = error_rate >= t.error_rate_critical
        || p95.is_some_and(|ms| ms > t.latency_critical_ms)
        || uptime_24h.is_some_and(|u| u < t.uptime_critical);
    if critical {
        return HealthStatus::Unhealthy;
    }
    let warning = error_rate >= t.error_rate_warning
        || p95.is_some_and(|ms| ms > t.latency_warning_ms)
        || uptime_24h.is_some_and(|u| u < t.uptime_warning);
    if warning {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(total: u64, successes: u64, latency_ms: f64) -> Rollup {
        let mut r = Rollup { total, successes, ..Default::default() };
        r.latency.add_n(latency_ms * 1_000.0, successes);
        r.latency_sum_us = (latency_ms * 1_000.0) as u64 * successes;
        r
    }

    #[test]
    fn classification_table() {
        let t = HealthThresholds::default();
        let cases = [
            (window(0, 0, 0.0), None, HealthStatus::NoData),
            (window(1000, 1000, 20.0), Some(1.0), HealthStatus::Healthy),
            (window(1000, 994, 20.0), Some(1.0), HealthStatus::Degraded),
            (window(1000, 990, 20.0), Some(1.0), HealthStatus::Unhealthy),
            (window(1000, 1000, 150.0), Some(1.0), HealthStatus::Degraded),
            (window(1000, 1000, 600.0), Some(1.0), HealthStatus::Unhealthy),
            (window(1000, 1000, 20.0), Some(0.94), HealthStatus::Degraded),
            (window(1000, 1000, 20.0), Some(0.89), HealthStatus::Unhealthy),
            (window(10, 0, 0.0), None, HealthStatus::Unhealthy),
        ];
        for (i, (w, uptime, expected)) in cases.iter().enumerate() {
            assert_eq!(classify(w, *uptime, &t), *expected, "case {i}");
        }
    }

    #[test]
    fn rates_and_latency() {
        let w = window(4, 3, 40.0);
        assert_eq!(success_rate(&w), Some(0.75));
        assert_eq!(error_rate(&w), Some(0.25));
        assert_eq!(mean_latency_ms(&w), Some(40.0));
        let p95 = latency_ms(&w, 0.95).unwrap();
        assert!((p95 - 40.0).abs() / 40.0 <= crate::sketch::RELATIVE_ACCURACY);
        assert_eq!(throughput_per_s(&w, 2.0), Some(2.0));
        assert_eq!(success_rate(&Rollup::default()), None);
    }
}
