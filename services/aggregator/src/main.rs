//! `mixmon-aggregator`: the control plane and ingestion service. See the library.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mixmon_aggregator::{catalogue::HEALTH_CHECK_INTERVAL, reload, AggregatorConfig, CatalogueHandle, ServeOptions};
use mixmon_config::startup;

#[derive(Parser)]
#[command(version, about = "mixmon aggregator: control plane, ingestion and rollups")]
struct Args {
    #[command(flatten)]
    service: startup::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mixmon_telemetry::init("info");
    let args = Args::parse();
    mixmon_config::process::exit_code("mixmon-aggregator", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config: AggregatorConfig = mixmon_config::load(args.service.config.as_deref(), mixmon_config::process_env())?;
    let interval = std::env::var(HEALTH_CHECK_INTERVAL).ok();
    let (catalogue, assignments) = reload::prepare(&config, interval.as_deref())?;
    let token = config.auth.resolve().map_err(anyhow::Error::msg)?;
    let how = "set auth.token_file (or MIXMON_AUTH__TOKEN)";
    let listener = args
        .service
        .bind(&config.listen, token.as_ref(), "the control plane", how)
        .await
        .map_err(anyhow::Error::msg)?;
    let address = listener.local_addr()?;
    let store = mixmon_store::open(&config.store).await.context("opening the store")?;
    tracing::info!(%address, checks = catalogue.checks.len(), version = catalogue.version, "aggregator listening");
    args.service.announce(&[("grpc", address)]).map_err(anyhow::Error::msg)?;
    let handle = CatalogueHandle::with_assignments(catalogue, assignments);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(path) = &args.service.config {
        // Edits to the file reach the probers without a restart.
        tokio::spawn(reload::watch_file(path.clone(), handle.clone(), Arc::default(), stop_rx.clone()));
    }
    let alerting = mixmon_aggregator::alerting::start(&config.alerting, store.clone(), handle.clone(), stop_rx)?;
    let (probers, stats) = (Arc::default(), Arc::default());
    if let Some(listen) = &config.metrics.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "own metrics: GET /metrics");
        let router = mixmon_aggregator::own_metrics::router(mixmon_aggregator::own_metrics::registry(&stats, &probers));
        let listener = mixmon_listener::GuardedListener::new(listener, config.connections);
        tokio::spawn(async move {
            if let Err(error) = mixmon_listener::serve_http(listener, router, std::future::pending()).await {
                tracing::warn!(%error, "the metrics listener stopped");
            }
        });
    }
    let options = ServeOptions {
        catalogue: handle,
        store,
        auth_token: token,
        registry: probers,
        stats,
        connections: config.connections,
    };
    mixmon_aggregator::serve(options, listener, mixmon_config::process::shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    // The evaluator gives its lease up on the way out, so a replica takes over at once.
    for task in alerting.tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    Ok(())
}
