//! `scripts/soak.sh [MINUTES]`: the soak of `mixmon_integration_tests::soak` (the whole system
//! at the operators' scale through a chaos schedule, compared with the probers' ground truth),
//! printing its figures one a line; exits 1 when something was lost, duplicated, answered 5xx
//! outside Redis's downtime, or a figure was off the truth.
//!
//! Usage: `soak [MINUTES] [CLIENTS]` (defaults 4 and 50).

use std::process::ExitCode;

use mixmon_integration_tests::soak::{self, SoakOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let minutes: f64 = match args.next() {
        Some(raw) => raw.parse().map_err(|_| anyhow::anyhow!("MINUTES must be a number, not {raw:?}"))?,
        None => 4.0,
    };
    anyhow::ensure!((1.0..=1_440.0).contains(&minutes), "MINUTES must be between 1 and 1440, not {minutes}");
    let clients: usize = match args.next() {
        Some(raw) => raw.parse().map_err(|_| anyhow::anyhow!("CLIENTS must be a whole number, not {raw:?}"))?,
        None => 50,
    };
    let report = soak::run(SoakOptions { minutes, clients }).await?;
    for event in &report.events {
        eprintln!("event: {event}");
    }
    for sample in &report.samples {
        eprintln!("sample: {sample}");
    }
    println!("soak_minutes: {minutes}");
    println!("soak_results_measured: {}", report.measured);
    println!("soak_results_lost: {}", report.lost);
    println!("soak_results_duplicated: {}", report.duplicated);
    println!("soak_query_requests: {}", report.query_requests);
    println!("soak_query_5xx: {}", report.query_5xx);
    println!("soak_query_503_while_redis_down: {}", report.query_503_redis_down);
    println!("soak_query_unreachable: {}", report.query_unreachable);
    println!("soak_figures_checked: {}", report.figures_checked);
    println!("soak_figures_wrong: {}", report.figures_wrong);
    println!("soak_disk_filled: {}", u8::from(report.disk_filled));
    for (name, growth) in &report.rss_growth_mb {
        println!("soak_rss_growth_mb_{}: {growth:.1}", name.replace([' ', '-'], "_"));
    }
    let problems = report.problems();
    for problem in &problems {
        eprintln!("FAILED: {problem}");
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
