//! `mixmon-query`: the Grafana JSON data source and REST API over the configured store.
//! Thin on purpose: the configuration (`mixmon_query::config`) and the start-up rules every
//! service shares (`mixmon_config::startup`); everything else is the library.

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Parser;
use mixmon_config::startup;
use mixmon_model::sli::HealthThresholds;
use mixmon_query::config::QueryConfig;
use mixmon_query::{app, serve, QueryOptions};

/// mimalloc returns freed memory to the system: 5 s after a burst of 20 heavy but allowed
/// queries (`scripts/bench.sh hostile`) glibc's malloc still held 43 MB above idle in its
/// per-thread arenas, mimalloc 0.4 MB (at an idle 13 MB higher: 34 against 21 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "mixmon-query", about = "Grafana JSON data source and REST API for mixmon")]
struct Args {
    #[command(flatten)]
    service: startup::ServiceArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    mixmon_telemetry::init("info");
    mixmon_config::process::exit_code("mixmon-query", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config: QueryConfig = mixmon_config::load(args.service.config.as_deref(), mixmon_config::process_env())
        .map_err(|e| anyhow!("{e}"))?;
    mixmon_query::config::prepare(&config).map_err(anyhow::Error::msg)?;
    let token = config.auth.resolve().map_err(anyhow::Error::msg)?;
    let how = "set [auth] token_file (or MIXMON_AUTH__TOKEN)";
    let listener =
        args.service.bind(&config.listen, token.as_ref(), "the query API", how).await.map_err(anyhow::Error::msg)?;
    let addr = listener.local_addr().context("cannot read the bound address")?;
    let store = mixmon_store::open(&config.store).await.map_err(|e| anyhow!("cannot open the store: {e}"))?;
    store.ping().await.map_err(|e| anyhow!("the store does not answer: {e}"))?;
    args.service.announce(&[("http", addr)]).map_err(anyhow::Error::msg)?;
    tracing::info!(%addr, auth = token.is_some(), "query API listening");
    let options = QueryOptions {
        auth_token: token,
        health: HealthThresholds::default(),
        max_datapoints: config.limits.max_datapoints,
        max_concurrent: config.limits.max_concurrent_requests,
        request_timeout: std::time::Duration::from_millis(config.limits.request_timeout_ms),
        status_page: config.status_page.options(),
        metrics_from: Vec::new(),
    };
    let router = app(store, options);
    serve(listener, config.connections, router, shutdown()).await.context("server failed")?;
    tracing::info!("query API stopped");
    Ok(())
}

async fn shutdown() {
    mixmon_config::process::shutdown_signal().await;
    tracing::info!("shutdown requested; finishing requests in flight");
}
