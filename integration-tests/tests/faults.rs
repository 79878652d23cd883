//! Zero-loss delivery under faults, with real processes: the aggregator killed for a while,
//! a prober killed with SIGKILL and restarted, `redis-server` restarted under load, one of two
//! aggregator replicas killed. Each compares the store, per check, region and minute, with
//! the probers' own ground-truth logs: nothing lost, nothing counted twice.
//!
//! The outages are shorter than `scripts/bench.sh faults` holds them (which prints the same
//! figures for a 60 s aggregator outage); `MIXMON_FAULTS_OUTAGE_S` lengthens them here.

use std::time::Duration;

use anyhow::ensure;
use mixmon_integration_tests::faults::{self, Cluster, ClusterSpec, Outcome};

fn outage() -> Duration {
    let seconds = std::env::var("MIXMON_FAULTS_OUTAGE_S").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    Duration::from_secs(seconds)
}

fn assert_exact(scenario: &str, outcome: Outcome) -> anyhow::Result<()> {
    println!("{scenario}: {outcome:?}");
    ensure!(outcome.measured > 0, "{scenario}: nothing was measured");
    ensure!(outcome.lost == 0, "{scenario}: {} results lost: {outcome:?}", outcome.lost);
    ensure!(outcome.duplicated == 0, "{scenario}: {} results counted twice: {outcome:?}", outcome.duplicated);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_outage_loses_nothing_and_counts_nothing_twice() -> anyhow::Result<()> {
    assert_exact("aggregator outage", faults::aggregator_outage(outage()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_killed_mid_stream_resends_its_buffer_once() -> anyhow::Result<()> {
    assert_exact("prober SIGKILL", faults::prober_kill(Duration::from_secs(3)).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    assert_exact("redis restart", faults::redis_restart(Duration::from_secs(5)).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probers_fail_over_to_the_other_replica() -> anyhow::Result<()> {
    let (outcome, failover_s) = faults::failover().await?;
    println!("failover after {failover_s:.2} s");
    assert_exact("failover", outcome)?;
    // Generous: the point is "seconds, not minutes"; the bench prints the figure.
    ensure!(failover_s < 15.0, "failover took {failover_s:.1} s");
    Ok(())
}

/// A catalogue edit reaches running probers without a restart, a bad edit is refused and the
/// previous catalogue stays, probers confirm the version they run, and an assignment rule
/// added later takes a check away from probers outside its region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_edit_reaches_running_probers_and_a_bad_one_is_refused() -> anyhow::Result<()> {
    let spec =
        ClusterSpec { aggregators: 1, regions: vec!["eu-west"], checks: 2, interval_s: 1, append_only_redis: false };
    let mut cluster = Cluster::start(spec).await?;
    cluster.wait_flowing().await?;
    let config = cluster.dir.path().join("aggregator.toml");
    let original = std::fs::read_to_string(&config)?;

    // A bad edit: refused, with the reason in the log; probing goes on.
    std::fs::write(&config, format!("{original}[[checks]]\nid = \"bad\"\nurl = \"ftp://nope\"\n"))?;
    let aggregator = &cluster.aggregators[0];
    wait_for_log(aggregator.process.as_ref(), "previous catalogue stays in force", 1).await?;

    // A good edit: a third check, probed within seconds.
    let url = original.lines().find(|l| l.starts_with("url = \"http:")).unwrap_or_default().to_string();
    std::fs::write(&config, format!("{original}[[checks]]\nid = \"added\"\n{url}\n"))?;
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stored = cluster.stored().await?;
        if stored.keys().any(|(check, _, _)| check == "added") {
            break;
        }
        ensure!(std::time::Instant::now() < end, "the added check was never probed\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The prober confirms the new version as it confirmed the first.
    wait_for_log(cluster.aggregators[0].process.as_ref(), "prober runs assignment version", 2).await?;

    // An assignment rule keeps the added check to us-west: this eu-west prober drops it.
    std::fs::write(
        &config,
        format!("{original}[[checks]]\nid = \"added\"\n{url}\n[[assignments]]\nchecks = [\"added\"]\nregions = [\"us-west\"]\n"),
    )?;
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = cluster.probers[0]
            .process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.log_path()).ok())
            .unwrap_or_default();
        let applied: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("assignment applied"))
            .filter_map(|l| faults::field(l, "checks"))
            .collect();
        if applied.ends_with(&[3, 2]) {
            break;
        }
        ensure!(std::time::Instant::now() < end, "the rule never narrowed the assignment: {applied:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcome = cluster.finish().await?;
    assert_exact("catalogue reload", outcome)
}

async fn wait_for_log(
    process: Option<&mixmon_testkit::ChildProcess>,
    needle: &str,
    times: usize,
) -> anyhow::Result<()> {
    let Some(process) = process else { anyhow::bail!("process not running") };
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if std::fs::read_to_string(process.log_path()).unwrap_or_default().matches(needle).count() >= times {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < end, "{needle:?} never logged:\n{}", process.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The aggregator's request deadline (10 s) bounds unary calls and the opening of streams,
/// never a stream itself: a healthy session outlives it without reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_stream_outlives_the_request_deadline() -> anyhow::Result<()> {
    let spec =
        ClusterSpec { aggregators: 1, regions: vec!["eu-west"], checks: 2, interval_s: 1, append_only_redis: false };
    let mut cluster = Cluster::start(spec).await?;
    cluster.wait_flowing().await?;
    // Past the aggregator's 10 s request deadline: a stream that long must not be cut.
    tokio::time::sleep(Duration::from_secs(13)).await;
    cluster.wait_caught_up(Duration::from_secs(10)).await?;
    let connections = cluster.probers[0].connections();
    ensure!(connections == 1, "the prober reconnected ({connections} sessions):\n{}", cluster.logs());
    assert_exact("long stream", cluster.finish().await?)
}
