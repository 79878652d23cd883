//! The mixer's and the platform's metrics (the Grafana `target`s `mixer_*`, `node_*`, `pod_*`)
//! and how each is read from a window of merged [`Fields`] (`mixmon_model::figure_sli`). Like
//! the probe metrics, every value is finite or absent, never NaN.

use mixmon_model::figure_sli as sli;
use mixmon_model::{Fields, SubjectKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FigureMetric {
    MixerRequestRate,
    MixerErrorRate,
    MixerProcessingP50,
    MixerProcessingP95,
    MixerProcessingP99,
    MixerProcessingMean,
    MixerActiveStreams,
    MixerAudioPeak,
    MixerAudioLufs,
    MixerGenreShare,
    MixerScrapeSuccess,
    NodeCpu,
    NodeMemory,
    NodeDiskUsed,
    NodeNetRx,
    NodeNetTx,
    PodRestarts,
    PodReady,
    PodMemoryLimit,
}

/// What one metric fans out into: one series per genre or per mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Genre,
    Mount,
}

impl Part {
    pub fn tag(self) -> &'static str {
        match self {
            Part::Genre => "genre",
            Part::Mount => "mount",
        }
    }
}

/// For the metrics that have both, whether the window's mean or its highest sample is shown
/// (payload `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Mean,
    Max,
}

impl Stat {
    pub fn parse(text: &str) -> Option<Stat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mean" | "avg" | "average" => Some(Stat::Mean),
            "max" | "maximum" => Some(Stat::Max),
            _ => None,
        }
    }
}

impl FigureMetric {
    pub const ALL: [FigureMetric; 19] = [
        FigureMetric::MixerRequestRate,
        FigureMetric::MixerErrorRate,
        FigureMetric::MixerProcessingP50,
        FigureMetric::MixerProcessingP95,
        FigureMetric::MixerProcessingP99,
        FigureMetric::MixerProcessingMean,
        FigureMetric::MixerActiveStreams,
        FigureMetric::MixerAudioPeak,
        FigureMetric::MixerAudioLufs,
        FigureMetric::MixerGenreShare,
        FigureMetric::MixerScrapeSuccess,
        FigureMetric::NodeCpu,
        FigureMetric::NodeMemory,
        FigureMetric::NodeDiskUsed,
        FigureMetric::NodeNetRx,
        FigureMetric::NodeNetTx,
        FigureMetric::PodRestarts,
        FigureMetric::PodReady,
        FigureMetric::PodMemoryLimit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FigureMetric::MixerRequestRate => "mixer_request_rate",
            FigureMetric::MixerErrorRate => "mixer_error_rate",
            FigureMetric::MixerProcessingP50 => "mixer_processing_p50_ms",
            FigureMetric::MixerProcessingP95 => "mixer_processing_p95_ms",
            FigureMetric::MixerProcessingP99 => "mixer_processing_p99_ms",
            FigureMetric::MixerProcessingMean => "mixer_processing_mean_ms",
            FigureMetric::MixerActiveStreams => "mixer_active_streams",
            FigureMetric::MixerAudioPeak => "mixer_audio_peak_db",
            FigureMetric::MixerAudioLufs => "mixer_audio_lufs",
            FigureMetric::MixerGenreShare => "mixer_genre_share",
            FigureMetric::MixerScrapeSuccess => "mixer_scrape_success",
            FigureMetric::NodeCpu => "node_cpu_ratio",
            FigureMetric::NodeMemory => "node_memory_ratio",
            FigureMetric::NodeDiskUsed => "node_disk_used_ratio",
            FigureMetric::NodeNetRx => "node_net_rx_bytes_per_s",
            FigureMetric::NodeNetTx => "node_net_tx_bytes_per_s",
            FigureMetric::PodRestarts => "pod_restarts",
            FigureMetric::PodReady => "pod_ready_ratio",
            FigureMetric::PodMemoryLimit => "pod_memory_limit_ratio",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FigureMetric::MixerRequestRate => "Mixer request rate",
            FigureMetric::MixerErrorRate => "Mixer error rate (non-200 share)",
            FigureMetric::MixerProcessingP50 => "Mixer processing p50",
            FigureMetric::MixerProcessingP95 => "Mixer processing p95",
            FigureMetric::MixerProcessingP99 => "Mixer processing p99",
            FigureMetric::MixerProcessingMean => "Mixer processing mean",
            FigureMetric::MixerActiveStreams => "Mixer active streams",
            FigureMetric::MixerAudioPeak => "Mixer audio peak",
            FigureMetric::MixerAudioLufs => "Mixer loudness (LUFS)",
            FigureMetric::MixerGenreShare => "Mixer genre share",
            FigureMetric::MixerScrapeSuccess => "Mixer scrape success",
            FigureMetric::NodeCpu => "Node CPU busy",
            FigureMetric::NodeMemory => "Node memory used",
            FigureMetric::NodeDiskUsed => "Node disk used",
            FigureMetric::NodeNetRx => "Node network received",
            FigureMetric::NodeNetTx => "Node network sent",
            FigureMetric::PodRestarts => "Pod restarts per step",
            FigureMetric::PodReady => "Pod ready share",
            FigureMetric::PodMemoryLimit => "Pod memory / limit",
        }
    }

    /// A Grafana unit id.
    pub fn unit(self) -> &'static str {
        match self {
            FigureMetric::MixerRequestRate => "reqps",
            FigureMetric::MixerProcessingP50
            | FigureMetric::MixerProcessingP95
            | FigureMetric::MixerProcessingP99
            | FigureMetric::MixerProcessingMean => "ms",
            FigureMetric::MixerAudioPeak => "dB",
            FigureMetric::MixerAudioLufs => "suffix: LUFS",
            FigureMetric::MixerActiveStreams | FigureMetric::PodRestarts => "none",
            FigureMetric::NodeNetRx | FigureMetric::NodeNetTx => "Bps",
            FigureMetric::MixerErrorRate
            | FigureMetric::MixerGenreShare
            | FigureMetric::MixerScrapeSuccess
            | FigureMetric::NodeCpu
            | FigureMetric::NodeMemory
            | FigureMetric::NodeDiskUsed
            | FigureMetric::PodReady
            | FigureMetric::PodMemoryLimit => "percentunit",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whose figures it reads.
    pub fn kind(self) -> SubjectKind {
        match self {
            FigureMetric::MixerRequestRate
            | FigureMetric::MixerErrorRate
            | FigureMetric::MixerProcessingP50
            | FigureMetric::MixerProcessingP95
            | FigureMetric::MixerProcessingP99
            | FigureMetric::MixerProcessingMean
            | FigureMetric::MixerActiveStreams
            | FigureMetric::MixerAudioPeak
            | FigureMetric::MixerAudioLufs
            | FigureMetric::MixerGenreShare
            | FigureMetric::MixerScrapeSuccess => SubjectKind::Mixer,
            FigureMetric::NodeCpu
            | FigureMetric::NodeMemory
            | FigureMetric::NodeDiskUsed
            | FigureMetric::NodeNetRx
            | FigureMetric::NodeNetTx => SubjectKind::Node,
            FigureMetric::PodRestarts | FigureMetric::PodReady | FigureMetric::PodMemoryLimit => SubjectKind::Pod,
        }
    }

    /// The dimension it fans out into, if any.
    pub fn part(self) -> Option<Part> {
        match self {
            FigureMetric::MixerGenreShare => Some(Part::Genre),
            FigureMetric::NodeDiskUsed => Some(Part::Mount),
            _ => None,
        }
    }

    /// The statistic shown when the payload names none; `None` for metrics with one form.
    pub fn default_stat(self) -> Option<Stat> {
        match self {
            FigureMetric::MixerAudioPeak | FigureMetric::NodeDiskUsed => Some(Stat::Max),
            FigureMetric::NodeCpu | FigureMetric::PodMemoryLimit => Some(Stat::Mean),
            _ => None,
        }
    }

    /// The value over one window of `window_ms` whose fields are `fields`; `part` is the genre
    /// or mount for the metrics that fan out. `None` when the window holds no such data.
    pub fn evaluate(self, fields: &Fields, window_ms: i64, part: Option<&str>, stat: Option<Stat>) -> Option<f64> {
        let stat = stat.or(self.default_stat());
        let value = match self {
            FigureMetric::MixerRequestRate => sli::request_rate(fields, window_ms),
            FigureMetric::MixerErrorRate => sli::error_rate(fields),
            FigureMetric::MixerProcessingP50 => sli::processing_quantile_ms(fields, 0.50),
            FigureMetric::MixerProcessingP95 => sli::processing_quantile_ms(fields, 0.95),
            FigureMetric::MixerProcessingP99 => sli::processing_quantile_ms(fields, 0.99),
            FigureMetric::MixerProcessingMean => sli::processing_mean_ms(fields),
            FigureMetric::MixerActiveStreams => sli::active_streams(fields, window_ms),
            FigureMetric::MixerAudioPeak => match stat {
                Some(Stat::Mean) => sli::audio_peak_mean_db(fields),
                _ => sli::audio_peak_max_db(fields),
            },
            FigureMetric::MixerAudioLufs => sli::lufs_mean(fields),
            FigureMetric::MixerGenreShare => part.and_then(|genre| sli::genre_share(fields, genre)),
            FigureMetric::MixerScrapeSuccess => sli::scrape_success(fields),
            FigureMetric::NodeCpu => match stat {
                Some(Stat::Max) => sli::cpu_max(fields),
                _ => sli::cpu_mean(fields),
            },
            FigureMetric::NodeMemory => sli::memory_ratio(fields),
            FigureMetric::NodeDiskUsed => part.and_then(|mount| match stat {
                Some(Stat::Mean) => sli::disk_used_mean(fields, mount),
                _ => sli::disk_used_max(fields, mount),
            }),
            FigureMetric::NodeNetRx => sli::net_rx_per_s(fields),
            FigureMetric::NodeNetTx => sli::net_tx_per_s(fields),
            FigureMetric::PodRestarts => sli::pod_restarts(fields),
            FigureMetric::PodReady => sli::pod_ready_share(fields),
            FigureMetric::PodMemoryLimit => match stat {
                Some(Stat::Max) => sli::pod_memory_limit_max(fields),
                _ => sli::pod_memory_limit_mean(fields),
            },
        };
        value.filter(|v| v.is_finite())
    }

    /// The genres or mounts `fields` name, for the metrics that fan out.
    pub fn parts_in(self, fields: &Fields) -> Vec<String> {
        match self.part() {
            Some(Part::Genre) => sli::genres(fields),
            Some(Part::Mount) => sli::mounts(fields),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_empty_windows_have_no_value() {
        for metric in FigureMetric::ALL {
            assert_eq!(FigureMetric::parse(metric.name()), Some(metric));
            for stat in [None, Some(Stat::Mean), Some(Stat::Max)] {
                assert_eq!(metric.evaluate(&Fields::default(), 60_000, Some("x"), stat), None, "{metric:?}");
            }
        }
        assert_eq!(Stat::parse(" MAX"), Some(Stat::Max));
        assert_eq!(Stat::parse("p99"), None);
    }

    #[test]
    fn stats_pick_mean_or_max() {
        let mut f = Fields::default();
        f.add("cpu", 500_000);
        f.add("cpun", 2);
        f.max("cpux", 400_000);
        f.add("du:/", 1);
        f.add("dt:/", 4);
        f.max("dx:/", 300_000);
        assert_eq!(FigureMetric::NodeCpu.evaluate(&f, 60_000, None, None), Some(0.25));
        assert_eq!(FigureMetric::NodeCpu.evaluate(&f, 60_000, None, Some(Stat::Max)), Some(0.4));
        assert_eq!(FigureMetric::NodeDiskUsed.evaluate(&f, 60_000, Some("/"), None), Some(0.3));
        assert_eq!(FigureMetric::NodeDiskUsed.evaluate(&f, 60_000, Some("/"), Some(Stat::Mean)), Some(0.25));
        assert_eq!(FigureMetric::NodeDiskUsed.evaluate(&f, 60_000, None, None), None);
        assert_eq!(FigureMetric::NodeDiskUsed.parts_in(&f), ["/"]);
    }
}
