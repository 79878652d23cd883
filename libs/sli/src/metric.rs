//! The metrics a query can ask for (the Grafana `target`), their units, and how each is
//! computed from a window of merged rollups. Every value is finite or absent, never NaN,
//! because one NaN makes the browser reject the whole response (research note rule 7).

use mixmon_model::alert::{Counts, Objective};
use mixmon_model::{sli, FailureKind, Phase, Rollup};

use crate::figure::FigureMetric;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    SuccessRate,
    ErrorRate,
    Uptime,
    LatencyP50,
    LatencyP90,
    LatencyP95,
    LatencyP99,
    LatencyMean,
    Throughput,
    Probes,
    /// Share of probes that succeeded: the operators' availability SLI (same value as
    /// `success_rate`, under the SLI's name).
    Availability,
    /// Failed probes per step: all of them, or those of one kind.
    Failures(Option<FailureKind>),
    /// Mean duration of one request phase in milliseconds, over the probes where it happened.
    PhaseMean(Phase),
    /// A figure of the mixer, a node or a pod (read from stored `Fields`, not probe rollups).
    Figure(FigureMetric),
    /// How fast the 99.9 % availability objective's error budget burns over a rolling window
    /// of this many minutes (1.0 spends exactly the budget over the SLO period).
    BurnRate(u32),
    /// Share of the rolling SLO period's error budget left (negative once overspent).
    BudgetRemaining,
    /// Seconds until the budget left is spent at the last hour's burn rate; no value while
    /// nothing burns (the budget lasts forever) or without probes.
    TimeToExhaustion,
}

/// The availability objective the SLO metrics measure against (the operators' 99.9 %).
pub const SLO_OBJECTIVE: Objective = Objective { ppm: 999_000 };
/// The rolling SLO period of the budget metrics: a week, within the 15 days of retention.
pub const SLO_PERIOD_MINUTES: i64 = 7 * 24 * 60;
/// The windows of the burn-rate metrics: those of the multi-window alerts.
pub const BURN_WINDOWS_MINUTES: [u32; 4] = [60, 360, 1_440, 4_320];

/// Minutes in the rolling uptime window.
pub const UPTIME_WINDOW_MINUTES: i64 = 24 * 60;

impl Metric {
    pub const ALL: [Metric; 48] = [
        Metric::SuccessRate,
        Metric::ErrorRate,
        Metric::Uptime,
        Metric::LatencyP50,
        Metric::LatencyP90,
        Metric::LatencyP95,
        Metric::LatencyP99,
        Metric::LatencyMean,
        Metric::Throughput,
        Metric::Probes,
        Metric::Availability,
        Metric::Failures(None),
        Metric::Failures(Some(FailureKind::Timeout)),
        Metric::Failures(Some(FailureKind::ConnectionRefused)),
        Metric::Failures(Some(FailureKind::Dns)),
        Metric::Failures(Some(FailureKind::Tls)),
        Metric::Failures(Some(FailureKind::BadStatus)),
        Metric::Failures(Some(FailureKind::AssertionFailed)),
        Metric::Failures(Some(FailureKind::Connection)),
        Metric::PhaseMean(Phase::Dns),
        Metric::PhaseMean(Phase::Connect),
        Metric::PhaseMean(Phase::Tls),
        Metric::PhaseMean(Phase::FirstByte),
        Metric::Figure(FigureMetric::MixerRequestRate),
        Metric::Figure(FigureMetric::MixerErrorRate),
        Metric::Figure(FigureMetric::MixerProcessingP50),
        Metric::Figure(FigureMetric::MixerProcessingP95),
        Metric::Figure(FigureMetric::MixerProcessingP99),
        Metric::Figure(FigureMetric::MixerProcessingMean),
        Metric::Figure(FigureMetric::MixerActiveStreams),
        Metric::Figure(FigureMetric::MixerAudioPeak),
        Metric::Figure(FigureMetric::MixerAudioLufs),
        Metric::Figure(FigureMetric::MixerGenreShare),
        Metric::Figure(FigureMetric::MixerScrapeSuccess),
        Metric::Figure(FigureMetric::NodeCpu),
        Metric::Figure(FigureMetric::NodeMemory),
        Metric::Figure(FigureMetric::NodeDiskUsed),
        Metric::Figure(FigureMetric::NodeNetRx),
        Metric::Figure(FigureMetric::NodeNetTx),
        Metric::Figure(FigureMetric::PodRestarts),
        Metric::Figure(FigureMetric::PodReady),
        Metric::Figure(FigureMetric::PodMemoryLimit),
        Metric::BurnRate(60),
        Metric::BurnRate(360),
        Metric::BurnRate(1_440),
        Metric::BurnRate(4_320),
        Metric::BudgetRemaining,
        Metric::TimeToExhaustion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::SuccessRate => "success_rate",
            Metric::ErrorRate => "error_rate",
            Metric::Uptime => "uptime",
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP90 => "latency_p90",
            Metric::LatencyP95 => "latency_p95",
            Metric::LatencyP99 => "latency_p99",
            Metric::LatencyMean => "latency_mean",
            Metric::Throughput => "throughput",
            Metric::Probes => "probes",
            Metric::Availability => "availability",
            Metric::Failures(None) => "failures",
            Metric::Failures(Some(kind)) => match kind {
                FailureKind::Timeout => "failures_timeout",
                FailureKind::ConnectionRefused => "failures_connection_refused",
                FailureKind::Dns => "failures_dns",
                FailureKind::Tls => "failures_tls",
                FailureKind::BadStatus => "failures_bad_status",
                FailureKind::AssertionFailed => "failures_assertion_failed",
                FailureKind::Connection => "failures_connection",
            },
            Metric::PhaseMean(phase) => match phase {
                Phase::Dns => "phase_dns_ms",
                Phase::Connect => "phase_connect_ms",
                Phase::Tls => "phase_tls_ms",
                Phase::FirstByte => "phase_first_byte_ms",
            },
            Metric::Figure(figure) => figure.name(),
            Metric::BurnRate(60) => "slo_burn_rate_1h",
            Metric::BurnRate(360) => "slo_burn_rate_6h",
            Metric::BurnRate(1_440) => "slo_burn_rate_1d",
            Metric::BurnRate(_) => "slo_burn_rate_3d",
            Metric::BudgetRemaining => "slo_budget_remaining",
            Metric::TimeToExhaustion => "slo_time_to_exhaustion_s",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::SuccessRate => "Success rate",
            Metric::ErrorRate => "Error rate",
            Metric::Uptime => "Uptime (rolling 24 h)",
            Metric::LatencyP50 => "Latency p50",
            Metric::LatencyP90 => "Latency p90",
            Metric::LatencyP95 => "Latency p95",
            Metric::LatencyP99 => "Latency p99",
            Metric::LatencyMean => "Latency mean",
            Metric::Throughput => "Throughput (probes/s)",
            Metric::Probes => "Probes per step",
            Metric::Availability => "Availability",
            Metric::Failures(None) => "Failures per step",
            Metric::Failures(Some(_)) => "Failures of one kind per step",
            Metric::PhaseMean(Phase::Dns) => "DNS time (mean)",
            Metric::PhaseMean(Phase::Connect) => "Connect time (mean)",
            Metric::PhaseMean(Phase::Tls) => "TLS time (mean)",
            Metric::PhaseMean(Phase::FirstByte) => "Time to first byte (mean)",
            Metric::Figure(figure) => figure.label(),
            Metric::BurnRate(_) => "Error budget burn rate (99.9 %)",
            Metric::BudgetRemaining => "Error budget remaining (99.9 %, rolling 7 d)",
            Metric::TimeToExhaustion => "Time to budget exhaustion at the last hour's burn",
        }
    }

    /// A Grafana unit id, so panels format values without per-panel overrides.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::SuccessRate | Metric::ErrorRate | Metric::Uptime | Metric::Availability => "percentunit",
            Metric::LatencyP50
            | Metric::LatencyP90
            | Metric::LatencyP95
            | Metric::LatencyP99
            | Metric::LatencyMean
            | Metric::PhaseMean(_) => "ms",
            Metric::Throughput => "reqps",
            Metric::Probes | Metric::Failures(_) => "none",
            Metric::Figure(figure) => figure.unit(),
            Metric::BurnRate(_) => "none",
            Metric::BudgetRemaining => "percentunit",
            Metric::TimeToExhaustion => "s",
        }
    }

    /// The rolling window a metric reads behind each point (minutes), for those that have one.
    pub fn rolling_minutes(self) -> Option<i64> {
        match self {
            Metric::Uptime => Some(UPTIME_WINDOW_MINUTES),
            Metric::BurnRate(minutes) => Some(i64::from(minutes)),
            Metric::BudgetRemaining | Metric::TimeToExhaustion => Some(SLO_PERIOD_MINUTES),
            _ => None,
        }
    }

    /// A rolling metric's value from the counts of its window and of the last hour (integer
    /// counts, no extrapolation); `None` for the others and without probes.
    pub fn rolling_value(self, window: Counts, last_hour: Counts) -> Option<f64> {
        let value = match self {
            Metric::Uptime => (window.total > 0).then(|| window.good as f64 / window.total as f64),
            Metric::BurnRate(_) => SLO_OBJECTIVE.burn_rate(window),
            Metric::BudgetRemaining => SLO_OBJECTIVE.budget_remaining(window),
            Metric::TimeToExhaustion => {
                SLO_OBJECTIVE.seconds_to_exhaustion(window, (SLO_PERIOD_MINUTES * 60) as f64, last_hour, 3_600.0)
            }
            _ => None,
        };
        value.filter(|v| v.is_finite())
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The figure metric this is, if it is one.
    pub fn figure(self) -> Option<FigureMetric> {
        match self {
            Metric::Figure(figure) => Some(figure),
            _ => None,
        }
    }

    /// The value over `window` (the merged rollups of `seconds` of time); `rolling` is the
    /// value of a rolling metric ([`Metric::rolling_value`]) computed separately, used only by
    /// those. A window with no probes has no value: no data must never read as zero or as down.
    pub fn evaluate(self, window: &Rollup, seconds: f64, rolling: Option<f64>) -> Option<f64> {
        let value = match self {
            Metric::Uptime | Metric::BurnRate(_) | Metric::BudgetRemaining | Metric::TimeToExhaustion => rolling,
            // Figures are not in probe rollups; `crate::window` reads them from `Fields`.
            Metric::Figure(_) => None,
            _ if window.total == 0 => None,
            Metric::SuccessRate => sli::success_rate(window),
            Metric::Availability => sli::availability(window),
            Metric::ErrorRate => sli::error_rate(window),
            Metric::LatencyP50 => sli::latency_ms(window, 0.50),
            Metric::LatencyP90 => sli::latency_ms(window, 0.90),
            Metric::LatencyP95 => sli::latency_ms(window, 0.95),
            Metric::LatencyP99 => sli::latency_ms(window, 0.99),
            Metric::LatencyMean => sli::mean_latency_ms(window),
            Metric::Throughput => sli::throughput_per_s(window, seconds),
            Metric::Probes => Some(window.total as f64),
            Metric::Failures(None) => Some(window.total.saturating_sub(window.successes) as f64),
            Metric::Failures(Some(kind)) => Some(window.failures.get(&kind).copied().unwrap_or(0) as f64),
            Metric::PhaseMean(phase) => sli::phase_mean_ms(window, phase),
        };
        value.filter(|v| v.is_finite())
    }
}

/// Every metric's name, for error messages that list what is known.
pub fn known_list() -> String {
    Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.name()), Some(metric));
        }
        assert_eq!(Metric::parse("cpu.usage"), None);
    }

    #[test]
    fn slo_metrics_from_integer_counts() {
        let week = Counts { total: 1_000_000, good: 999_500 };
        let hour = Counts { total: 6_000, good: 5_940 };
        assert_eq!(Metric::BurnRate(60).rolling_value(hour, hour), Some(10.0), "1 % failed of a 0.1 % budget");
        assert_eq!(Metric::BudgetRemaining.rolling_value(week, hour), Some(0.5));
        let left = Metric::TimeToExhaustion.rolling_value(week, hour).unwrap();
        // 500 of the week's 1 000 allowed failures left, failing 60 an hour: 8 h 20 min.
        assert!((left - 30_000.0).abs() < 1e-6, "{left}");
        let calm = Counts { total: 6_000, good: 6_000 };
        assert_eq!(Metric::TimeToExhaustion.rolling_value(week, calm), None, "nothing burns");
        assert_eq!(Metric::BurnRate(60).rolling_value(Counts::default(), Counts::default()), None);
        assert_eq!(Metric::Uptime.rolling_value(Counts { total: 4, good: 3 }, calm), Some(0.75));
    }

    #[test]
    fn empty_windows_have_no_value() {
        let empty = Rollup::default();
        for metric in Metric::ALL {
            assert_eq!(metric.evaluate(&empty, 60.0, None), None, "{metric:?}");
        }
        assert_eq!(Metric::Uptime.evaluate(&empty, 60.0, Some(0.5)), Some(0.5));
        let window = Rollup { total: 120, successes: 90, ..Default::default() };
        assert_eq!(Metric::SuccessRate.evaluate(&window, 60.0, None), Some(0.75));
        assert_eq!(Metric::ErrorRate.evaluate(&window, 60.0, None), Some(0.25));
        assert_eq!(Metric::Throughput.evaluate(&window, 60.0, None), Some(2.0));
        assert_eq!(Metric::Probes.evaluate(&window, 60.0, None), Some(120.0));
        assert_eq!(Metric::LatencyP95.evaluate(&window, 60.0, None), None, "no latency recorded");
        assert_eq!(Metric::Availability.evaluate(&window, 60.0, None), Some(0.75));
        assert_eq!(Metric::Failures(None).evaluate(&window, 60.0, None), Some(30.0));
        let mut window = window;
        window.failures.insert(FailureKind::Dns, 30);
        window.phases.sum_us[Phase::Tls as usize] = 9_000;
        window.phases.count[Phase::Tls as usize] = 3;
        assert_eq!(Metric::Failures(Some(FailureKind::Dns)).evaluate(&window, 60.0, None), Some(30.0));
        assert_eq!(Metric::Failures(Some(FailureKind::Tls)).evaluate(&window, 60.0, None), Some(0.0));
        assert_eq!(Metric::PhaseMean(Phase::Tls).evaluate(&window, 60.0, None), Some(3.0));
        assert_eq!(Metric::PhaseMean(Phase::Dns).evaluate(&window, 60.0, None), None, "no DNS phase seen");
    }
}
