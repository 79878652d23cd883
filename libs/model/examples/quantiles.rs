//! Quantile accuracy of the latency sketch: 100 000 samples of each of four latency
//! distributions, spread over 4 regions x 60 minutes, each (region, minute) its own sketch,
//! all merged as the query service merges them, against the exact quantile of the samples.
//! Run by `scripts/bench.sh quantiles`; prints `name: value` lines.

use mixmon_model::LatencySketch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SAMPLES: usize = 100_000;
const PARTS: usize = 4 * 60;

fn standard_normal(rng: &mut StdRng) -> f64 {
    // Box-Muller: two uniforms give one standard normal.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn sample(name: &str, rng: &mut StdRng) -> f64 {
    // Latencies in microseconds, as probes record them.
    let ms = match name {
        "lognormal_sigma_0_5" => 40.0 * (0.5 * standard_normal(rng)).exp(),
        "lognormal_sigma_1_0" => 40.0 * (1.0 * standard_normal(rng)).exp(),
        "bimodal" => {
            if rng.random::<f64>() < 0.9 {
                20.0 * (0.1 * standard_normal(rng)).exp()
            } else {
                300.0 * (0.1 * standard_normal(rng)).exp()
            }
        }
        _ => (120.0 + 10.0 * standard_normal(rng)).max(0.001),
    };
    ms * 1_000.0
}

fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn main() {
    let mut rng = StdRng::seed_from_u64(20261124);
    let mut worst = [0.0f64; 2];
    for name in ["lognormal_sigma_0_5", "lognormal_sigma_1_0", "bimodal", "normal_120_sd_10"] {
        let mut parts = vec![LatencySketch::new(); PARTS];
        let mut values = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let v = sample(name, &mut rng);
            parts[i % PARTS].add(v);
            values.push(v);
        }
        let mut merged = LatencySketch::new();
        parts.iter().for_each(|p| merged.merge(p));
        values.sort_by(f64::total_cmp);
        for (slot, q) in [(0, 0.95), (1, 0.99)] {
            let truth = exact(&values, q);
            let estimate = merged.quantile(q).unwrap_or(f64::NAN);
            let error_pct = (estimate - truth).abs() / truth * 100.0;
            worst[slot] = worst[slot].max(error_pct);
            println!("{name}_p{}_rel_error_pct: {error_pct:.4}", (q * 100.0) as u32);
        }
    }
    println!("p95_max_rel_error_pct: {:.4}", worst[0]);
    println!("p99_max_rel_error_pct: {:.4}", worst[1]);
}
