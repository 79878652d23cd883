//! `scripts/bench.sh faults`: the zero-loss fault scenarios at full length, with real
//! processes (`redis-server`, the debug builds of `mixmon-aggregator` and `mixmon-prober`),
//! printing what each lost and counted twice against the probers' ground truth, how fast
//! probers fail over, how fast a catalogue edit reaches a running prober, and how fast the
//! prober's write-ahead log grows while nobody acknowledges (100 checks every 10 s).
//!
//! Usage: `faults [OUTAGE_SECONDS]` (default 60).

use std::time::Duration;

use mixmon_integration_tests::faults;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let outage_s: u64 = match std::env::args().nth(1) {
        Some(raw) => raw.parse().map_err(|_| anyhow::anyhow!("OUTAGE_SECONDS must be a whole number, not {raw:?}"))?,
        None => 60,
    };

    let outage = faults::aggregator_outage(Duration::from_secs(outage_s)).await?;
    println!("aggregator_outage_s: {outage_s}");
    println!("aggregator_outage_measured: {}", outage.measured);
    println!("aggregator_outage_lost: {}", outage.lost);
    println!("aggregator_outage_duplicated: {}", outage.duplicated);

    let kill = faults::prober_kill(Duration::from_secs(5)).await?;
    println!("prober_kill_measured: {}", kill.measured);
    println!("prober_kill_lost: {}", kill.lost);
    println!("prober_kill_duplicated: {}", kill.duplicated);

    let redis = faults::redis_restart(Duration::from_secs(10)).await?;
    println!("redis_restart_measured: {}", redis.measured);
    println!("redis_restart_lost: {}", redis.lost);
    println!("redis_restart_duplicated: {}", redis.duplicated);

    let (failover, failover_s) = faults::failover().await?;
    println!("failover_s: {failover_s:.2}");
    println!("failover_lost: {}", failover.lost);
    println!("failover_duplicated: {}", failover.duplicated);

    let propagation_s = faults::catalogue_propagation().await?;
    println!("catalogue_propagation_s: {propagation_s:.2}");

    let (per_hour, per_result) = faults::buffer_bytes_per_hour(100, 10, Duration::from_secs(60)).await?;
    println!("buffer_bytes_per_result: {per_result}");
    println!("buffer_bytes_per_hour: {per_hour}");
    Ok(())
}
