//! One pod's figures and their Prometheus text exposition (format 0.0.4), in exactly the
//! shape of a real mixer pod's scrape.

/// The `Content-Type` of a Prometheus 0.0.4 text scrape.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Statuses the request counter is split by, in exposition order.
pub(crate) const STATUSES: [&str; 5] = ["200", "400", "429", "500", "503"];
/// Index of "500" in [`STATUSES`].
pub(crate) const STATUS_500: usize = 3;

/// Histogram upper bounds (seconds) with their label spelling; `+Inf` is implied.
pub(crate) const BUCKETS: [(f64, &str); 11] = [
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
];

/// Every simulated pod's container memory limit, in bytes and as its manifest spells it.
pub(crate) const MEMORY_LIMIT_BYTES: u64 = 512 * 1024 * 1024;
pub(crate) const MEMORY_LIMIT_QUANTITY: &str = "512Mi";

/// The memory usage (bytes) that is `fraction` (validated to 0..=1) of the limit.
pub(crate) fn memory_at(fraction: f64) -> u64 {
    (fraction.clamp(0.0, 1.0) * MEMORY_LIMIT_BYTES as f64).round() as u64
}

/// Genres in exposition order.
pub(crate) const GENRES: [&str; 7] = ["electronic", "hip_hop", "rock", "pop", "jazz", "classical", "ambient"];

/// A pod's counters and gauges since its (simulated) process started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodMetrics {
    /// Per entry of [`STATUSES`].
    pub requests: [u64; 5],
    /// Non-cumulative: one slot per entry of [`BUCKETS`] and a last one for `+Inf`.
    pub bucket_counts: [u64; 12],
    pub duration_sum_seconds: f64,
    pub active_streams: u64,
    pub peak_db: f64,
    pub lufs: f64,
    /// Per entry of [`GENRES`].
    pub genres: [u64; 7],
    pub resident_memory_bytes: u64,
    pub start_time_seconds: f64,
}

impl PodMetrics {
    /// A freshly started process: zero counters, gauges at their resting values.
    pub(crate) fn new(start_time_seconds: f64) -> Self {
        Self {
            requests: [0; 5],
            bucket_counts: [0; 12],
            duration_sum_seconds: 0.0,
            active_streams: 150,
            peak_db: -6.0,
            lufs: -14.0,
            genres: [0; 7],
            // Half the limit: the middle of the band healthy pods wander in.
            resident_memory_bytes: MEMORY_LIMIT_BYTES / 2,
            start_time_seconds,
        }
    }

    /// Counts one handled request with its status index and processing time.
    pub(crate) fn observe_request(&mut self, status: usize, duration_seconds: f64) {
        if let Some(count) = self.requests.get_mut(status) {
            *count += 1;
        }
        let slot = BUCKETS.iter().position(|(bound, _)| duration_seconds <= *bound).unwrap_or(BUCKETS.len());
        self.bucket_counts[slot] += 1;
        self.duration_sum_seconds += duration_seconds;
    }

    /// The scrape body, every `ai_mixer_*` series labelled with `region`.
    pub(crate) fn render(&self, region: &str) -> String {
        let mut out = String::with_capacity(4096);

        let name = "ai_mixer_requests_total";
        header(&mut out, name, "counter", "Mix requests handled, by HTTP status.");
        for (status, count) in STATUSES.iter().zip(self.requests) {
            out.push_str(&format!("{name}{{region=\"{region}\",status=\"{status}\"}} {count}\n"));
        }

        let name = "ai_mixer_processing_duration_seconds";
        header(&mut out, name, "histogram", "Time spent mixing one request.");
        let mut cumulative = 0;
        let bounds = BUCKETS.iter().map(|(_, label)| *label).chain(["+Inf"]);
        for (le, count) in bounds.zip(self.bucket_counts) {
            cumulative += count;
            out.push_str(&format!("{name}_bucket{{region=\"{region}\",le=\"{le}\"}} {cumulative}\n"));
        }
        let sum = self.duration_sum_seconds;
        out.push_str(&format!("{name}_sum{{region=\"{region}\"}} {sum:.6}\n"));
        out.push_str(&format!("{name}_count{{region=\"{region}\"}} {cumulative}\n"));

        let gauges = [
            ("ai_mixer_active_streams", "Audio streams being mixed right now.", self.active_streams.to_string()),
            (
                "ai_mixer_audio_peak_db",
                "Peak level of the output over the last second, dBFS.",
                format!("{:.2}", self.peak_db),
            ),
            ("ai_mixer_audio_lufs", "Integrated loudness of the output, LUFS.", format!("{:.2}", self.lufs)),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            out.push_str(&format!("{name}{{region=\"{region}\"}} {value}\n"));
        }

        let name = "ai_mixer_genre_classifications_total";
        header(&mut out, name, "counter", "Tracks classified, by genre.");
        for (genre, count) in GENRES.iter().zip(self.genres) {
            out.push_str(&format!("{name}{{region=\"{region}\",genre=\"{genre}\"}} {count}\n"));
        }

        let name = "process_resident_memory_bytes";
        header(&mut out, name, "gauge", "Resident memory size in bytes.");
        out.push_str(&format!("{name} {}\n", self.resident_memory_bytes));
        let name = "process_start_time_seconds";
        header(&mut out, name, "gauge", "Start time of the process since unix epoch in seconds.");
        out.push_str(&format!("{name} {:.3}\n", self.start_time_seconds));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/ai_mixer_metrics.prom");

    /// A sample line without its value: the metric name and every label, values included.
    fn series(line: &str) -> &str {
        line.rsplit_once(' ').map_or(line, |(series, _value)| series)
    }

    #[test]
    fn same_shape_as_the_real_scrape() {
        let mut metrics = PodMetrics::new(1_763_900_000.0);
        metrics.observe_request(0, 0.02);
        let ours = metrics.render("us-west");
        let comments =
            |text: &str| -> Vec<String> { text.lines().filter(|l| l.starts_with('#')).map(str::to_owned).collect() };
        assert_eq!(comments(&ours), comments(FIXTURE));
        let shapes = |text: &str| -> Vec<String> {
            text.lines().filter(|l| !l.starts_with('#')).map(|l| series(l).to_owned()).collect()
        };
        assert_eq!(shapes(&ours), shapes(FIXTURE));
        assert!(ours.contains("ai_mixer_requests_total{region=\"us-west\",status=\"200\"} 1\n"));
    }

    #[test]
    fn buckets_are_cumulative_and_count_matches_inf() {
        let mut metrics = PodMetrics::new(0.0);
        for duration in [0.001, 0.005, 0.02, 0.3, 7.0, 30.0] {
            metrics.observe_request(0, duration);
        }
        let text = metrics.render("ap");
        let value = |series: &str| -> String {
            text.lines().find_map(|l| l.strip_prefix(series).map(|v| v.trim().to_owned())).unwrap_or_default()
        };
        let bucket =
            |le: &str| value(&format!("ai_mixer_processing_duration_seconds_bucket{{region=\"ap\",le=\"{le}\"}}"));
        assert_eq!(bucket("0.005"), "2");
        assert_eq!(bucket("0.025"), "3");
        assert_eq!(bucket("0.5"), "4");
        assert_eq!(bucket("10"), "5");
        assert_eq!(bucket("+Inf"), "6");
        assert_eq!(value("ai_mixer_processing_duration_seconds_count{region=\"ap\"}"), "6");
        assert_eq!(value("ai_mixer_processing_duration_seconds_sum{region=\"ap\"}"), "37.326000");
    }
}
