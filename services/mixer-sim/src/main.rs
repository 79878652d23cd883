//! `mixmon-mixer-sim`: runs a simulated AI Mixer fleet until SIGTERM or Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use mixmon_mixer_sim::{parse_regions, SimAddresses, SimConfig};

/// A simulated AI Mixer fleet: per-pod /health and /metrics, endpoint fronts, an admin API
/// for injecting faults, and a read-only Kubernetes API (pods, metrics.k8s.io) under /k8s.
#[derive(Debug, Parser)]
#[command(name = "mixmon-mixer-sim", version)]
struct Args {
    /// Regions and their pod counts.
    #[arg(long, default_value = "us-west=8,us-east=8,eu-west=7,ap=7", value_parser = regions_flag)]
    regions: Regions,
    /// Address every pod and front binds (each on an OS-chosen port).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Address of the admin API (port 0: OS-chosen).
    #[arg(long, default_value = "127.0.0.1:9100")]
    admin_addr: SocketAddr,
    /// Mean simulated requests per second and pod.
    #[arg(long, default_value_t = 40.0)]
    rps_per_pod: f64,
    /// Seed of the simulation, for reproducible figures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bearer token the admin API requires.
    #[arg(long, env = "MIXMON_SIM_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Kubernetes nodes per region: pod i of a region runs on `node-<region>-<i % N>`.
    #[arg(long, default_value_t = 3)]
    nodes_per_region: usize,
    /// Write the listening addresses here as JSON once everything listens.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Regions(Vec<(String, usize)>);

fn regions_flag(spec: &str) -> Result<Regions, String> {
    parse_regions(spec).map(Regions).map_err(|error| error.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    mixmon_telemetry::init("info");
    let config = SimConfig {
        regions: args.regions.0,
        bind_ip: args.bind,
        admin_addr: args.admin_addr,
        requests_per_second_per_pod: args.rps_per_pod,
        seed: args.seed,
        admin_token: args.admin_token,
        nodes_per_region: args.nodes_per_region,
    };
    let sim = mixmon_mixer_sim::start(config).await.context("starting the simulator")?;
    let json = serde_json::to_string_pretty(sim.addresses()).context("encoding the addresses")?;
    println!("{json}");
    if let Some(path) = &args.addr_file {
        write_atomically(path, sim.addresses())
            .with_context(|| format!("writing the addresses to {}", path.display()))?;
    }
    stop_signal().await.context("waiting for a stop signal")?;
    tracing::info!("stopping");
    sim.shutdown().await;
    Ok(())
}

/// Writes a temporary file beside the target and renames it, so a reader never sees half.
fn write_atomically(path: &Path, addresses: &SimAddresses) -> anyhow::Result<()> {
    let file_name = path.file_name().context("the path has no file name")?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, serde_json::to_vec_pretty(addresses)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(unix)]
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn stop_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
