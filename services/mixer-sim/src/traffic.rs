//! The traffic model: how one pod's figures move during one tick of simulated time.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fault::{Fault, ShareAccumulator};
use crate::metrics::{memory_at, PodMetrics, GENRES, MEMORY_LIMIT_BYTES, STATUS_500};

/// Share of requests that fail without any fault, as seen on healthy production pods.
const BASELINE_ERROR_SHARE: f64 = 0.003;
/// How baseline failures spread over 400, 429, 500, 503 (indices 1..=4 of the statuses),
/// proportional to the real scrape's counts.
const BASELINE_ERROR_WEIGHTS: [(usize, f64); 4] = [(1, 312.0), (2, 57.0), (3, 1190.0), (4, 44.0)];
/// Median processing time and the spread of its logarithm.
const MEDIAN_DURATION_S: f64 = 0.025;
const DURATION_SIGMA: f64 = 0.5;
/// The request rate wobbles by up to this share from tick to tick.
const RATE_JITTER: f64 = 0.2;
/// Share of successful requests that classify a track, and the genre mix (real scrape's counts).
const CLASSIFIED_SHARE: f64 = 0.8;
const GENRE_WEIGHTS: [f64; 7] = [402_113.0, 311_876.0, 198_004.0, 455_120.0, 41_230.0, 22_871.0, 61_002.0];
/// Bounds and step of the active-stream random walk.
const STREAMS_RANGE: (u64, u64) = (100, 200);
const STREAMS_STEP: u64 = 5;
/// Resident memory wanders within 40..60 % of the container's memory limit (bytes).
const MEMORY_RANGE: (u64, u64) = (MEMORY_LIMIT_BYTES / 5 * 2, MEMORY_LIMIT_BYTES / 5 * 3);
const MEMORY_STEP: u64 = 1_000_000;

/// Per-pod state of the model that is not a published figure.
#[derive(Debug)]
pub(crate) struct Traffic {
    rng: StdRng,
    /// Fraction of a request carried to the next tick, so low rates still add up.
    request_carry: f64,
    errors: ShareAccumulator,
    genre_carry: [f64; 7],
}

impl Traffic {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            request_carry: 0.0,
            errors: ShareAccumulator::default(),
            genre_carry: [0.0; 7],
        }
    }

    /// Starts the fault's error share afresh so its hits are evenly spread from now on.
    pub(crate) fn reset_errors(&mut self) {
        self.errors = ShareAccumulator::default();
    }

    /// Advances `metrics` by `dt_s` seconds at `rps` requests per second under `fault`.
    pub(crate) fn advance(&mut self, metrics: &mut PodMetrics, fault: &Fault, down: bool, rps: f64, dt_s: f64) {
        if !down {
            let jitter = 1.0 + self.rng.random_range(-RATE_JITTER..=RATE_JITTER);
            let expected = rps * fault.traffic_factor() * dt_s * jitter + self.request_carry;
            let requests = expected.floor().max(0.0);
            self.request_carry = expected - requests;
            let added_s = fault.latency_ms as f64 / 1000.0;
            let share_ppm = fault.error_share_ppm();
            let mut ok = 0_u64;
            for _ in 0..requests as u64 {
                let status = self.status(share_ppm);
                ok += u64::from(status == 0);
                let duration = self.lognormal(MEDIAN_DURATION_S, DURATION_SIGMA) + added_s;
                metrics.observe_request(status, duration);
            }
            self.classify(metrics, ok);
        }
        metrics.active_streams = self.walk(metrics.active_streams, STREAMS_RANGE, STREAMS_STEP);
        metrics.resident_memory_bytes = match fault.memory_pressure {
            Some(fraction) => memory_at(fraction),
            None => self.walk(metrics.resident_memory_bytes, MEMORY_RANGE, MEMORY_STEP),
        };
        metrics.peak_db = fault.peak_db.unwrap_or_else(|| self.rng.random_range(-7.0..=-5.0));
        metrics.lufs = self.rng.random_range(-14.5..=-13.5);
    }

    /// Index into the statuses: the fault's share first (exact), then the baseline (random).
    fn status(&mut self, share_ppm: u32) -> usize {
        if self.errors.next(share_ppm) {
            return STATUS_500;
        }
        if self.rng.random::<f64>() >= BASELINE_ERROR_SHARE {
            return 0;
        }
        let total: f64 = BASELINE_ERROR_WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random::<f64>() * total;
        for (status, weight) in BASELINE_ERROR_WEIGHTS {
            if pick < weight {
                return status;
            }
            pick -= weight;
        }
        STATUS_500
    }

    /// Spreads the tracks classified this tick over the genres in the fixed mix.
    fn classify(&mut self, metrics: &mut PodMetrics, ok_requests: u64) {
        let total: f64 = GENRE_WEIGHTS.iter().sum();
        let classified = ok_requests as f64 * CLASSIFIED_SHARE;
        for (i, weight) in GENRE_WEIGHTS.iter().enumerate().take(GENRES.len()) {
            let due = classified * weight / total + self.genre_carry[i];
            let whole = due.floor();
            self.genre_carry[i] = due - whole;
            metrics.genres[i] += whole as u64;
        }
    }

    /// A lognormal draw with the given median, by Box-Muller (no extra crate for one formula).
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * z).exp()
    }

    /// One bounded random-walk step.
    fn walk(&mut self, value: u64, (low, high): (u64, u64), step: u64) -> u64 {
        let up = self.rng.random_range(0..=2 * step);
        (value + up).saturating_sub(step).clamp(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, fault: &Fault, ticks: usize) -> PodMetrics {
        let mut traffic = Traffic::new(seed);
        let mut metrics = PodMetrics::new(0.0);
        for _ in 0..ticks {
            traffic.advance(&mut metrics, fault, false, 40.0, 0.1);
        }
        metrics
    }

    #[test]
    fn same_seed_same_figures() {
        assert_eq!(run(7, &Fault::default(), 50), run(7, &Fault::default(), 50));
        assert_ne!(run(7, &Fault::default(), 50), run(8, &Fault::default(), 50));
    }

    #[test]
    fn rate_latency_and_gauges_look_like_production() {
        let metrics = run(1, &Fault::default(), 600); // one simulated minute
        let total: u64 = metrics.requests.iter().sum();
        assert!((2100..=2700).contains(&total), "{total} requests in 60 s at 40/s");
        let mean = metrics.duration_sum_seconds / total as f64;
        assert!((0.02..0.04).contains(&mean), "mean duration {mean}");
        assert!((100..=200).contains(&metrics.active_streams));
        let memory_share = metrics.resident_memory_bytes as f64 / MEMORY_LIMIT_BYTES as f64;
        assert!((0.4..=0.6).contains(&memory_share), "memory at {memory_share} of the limit");
        assert!((-7.0..=-5.0).contains(&metrics.peak_db));
        assert!((-14.5..=-13.5).contains(&metrics.lufs));
        let classified: u64 = metrics.genres.iter().sum();
        assert!(classified > total / 2 && classified < total);
        assert!(metrics.genres[3] > metrics.genres[4], "pop outnumbers jazz");
    }

    #[test]
    fn faults_shift_errors_latency_and_peak() {
        let fault = Fault {
            error_share: 0.5,
            latency_ms: 200,
            peak_db: Some(-1.5),
            memory_pressure: Some(0.9),
            ..Fault::default()
        };
        let metrics = run(1, &fault, 100);
        let total: u64 = metrics.requests.iter().sum();
        let failed = total - metrics.requests[0];
        assert!(failed >= total / 2, "{failed} of {total} failed");
        assert_eq!(metrics.bucket_counts[..5].iter().sum::<u64>(), 0, "nothing under 100 ms");
        assert_eq!(metrics.peak_db, -1.5);
        assert_eq!(metrics.resident_memory_bytes, memory_at(0.9));
    }

    #[test]
    fn the_traffic_factor_scales_the_request_rate() {
        let total = |factor: Option<f64>| -> u64 {
            let fault = Fault { traffic_factor: factor, ..Fault::default() };
            run(1, &fault, 600).requests.iter().sum()
        };
        let normal = total(None);
        let trickle = total(Some(0.01));
        let surge = total(Some(3.0));
        // 40/s for a simulated minute: ~2400, at 0.01 ~24 (0.4/s), at 3 ~7200, within the jitter.
        assert!((15..=35).contains(&trickle), "{trickle} requests at 0.01 (normal {normal})");
        assert!(surge > normal * 5 / 2 && surge < normal * 7 / 2, "{surge} at 3x vs {normal}");
        assert_eq!(total(Some(0.0)), 0);
    }

    #[test]
    fn down_pods_handle_nothing() {
        let mut traffic = Traffic::new(1);
        let mut metrics = PodMetrics::new(0.0);
        traffic.advance(&mut metrics, &Fault::default(), true, 40.0, 10.0);
        assert_eq!(metrics.requests.iter().sum::<u64>(), 0);
    }
}
