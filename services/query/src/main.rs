//! `mixmon-query`: the Grafana JSON data source and REST API over the configured store.
//! Thin on purpose: configuration, the refusal to serve unauthenticated on a public address,
//! the ready file, and signals; everything else is the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use mixmon_config::Secret;
use mixmon_model::sli::HealthThresholds;
use mixmon_query::{app, serve, QueryOptions};
use mixmon_store::StoreConfig;
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "mixmon-query", about = "Grafana JSON data source and REST API for mixmon")]
struct Args {
    /// TOML config file; `MIXMON_<SECTION>__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, overriding `listen` from the config.
    #[arg(long)]
    listen: Option<String>,
    /// After binding, write `{"http": "<address>"}` here (atomically).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Allow serving without a token on a non-loopback address.
    #[arg(long)]
    insecure_no_auth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    limits: LimitsConfig,
}

/// `[limits]`: what one request may cost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsConfig {
    /// Most datapoints one `/query` answers (series x points), refused before any read.
    #[serde(default = "default_max_datapoints")]
    max_datapoints: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_datapoints: default_max_datapoints() }
    }
}

fn default_max_datapoints() -> usize {
    mixmon_query::DEFAULT_MAX_DATAPOINTS
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    token: Option<Secret>,
    token_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:8090".to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    mixmon_telemetry::init("info");
    mixmon_config::process::exit_code("mixmon-query", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config: QueryConfig =
        mixmon_config::load(args.config.as_deref(), mixmon_config::process_env()).map_err(|e| anyhow!("{e}"))?;
    let token = resolve_token(&config.auth)?;
    let listen = args.listen.unwrap_or(config.listen);
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("cannot read the bound address")?;
    if !addr.ip().is_loopback() && token.is_none() {
        if !args.insecure_no_auth {
            bail!(
                "refusing to serve on non-loopback address {addr} without an auth token; set [auth] token or \
                 token_file (or MIXMON_AUTH__TOKEN), listen on 127.0.0.1, or pass --insecure-no-auth"
            );
        }
        tracing::warn!(%addr, "serving without authentication on a non-loopback address (--insecure-no-auth)");
    }
    let store = mixmon_store::open(&config.store).await.map_err(|e| anyhow!("cannot open the store: {e}"))?;
    store.ping().await.map_err(|e| anyhow!("the store does not answer: {e}"))?;
    if let Some(path) = &args.ready_file {
        write_ready_file(path, addr).with_context(|| format!("cannot write ready file {}", path.display()))?;
    }
    tracing::info!(%addr, auth = token.is_some(), "query API listening");
    if config.limits.max_datapoints == 0 {
        anyhow::bail!("limits.max_datapoints must be above 0");
    }
    let options = QueryOptions {
        auth_token: token,
        health: HealthThresholds::default(),
        max_datapoints: config.limits.max_datapoints,
    };
    let router = app(store, options);
    serve(listener, router, shutdown_signal()).await.context("server failed")?;
    tracing::info!("query API stopped");
    Ok(())
}

fn resolve_token(auth: &AuthConfig) -> anyhow::Result<Option<Secret>> {
    let token = match (&auth.token, &auth.token_file) {
        (Some(_), Some(_)) => bail!("set only one of [auth] token and token_file"),
        (Some(token), None) => token.clone(),
        (None, Some(path)) => {
            Secret::from_file(path).with_context(|| format!("cannot read auth token file {}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    if token.expose().trim().is_empty() {
        bail!("the auth token is empty");
    }
    Ok(Some(token))
}

/// Writes then renames, so a watcher never reads a half-written file.
fn write_ready_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, serde_json::json!({ "http": addr.to_string() }).to_string())?;
    std::fs::rename(&tmp, path)
}

/// Completes on Ctrl-C or SIGTERM. A signal source that cannot be installed never fires,
/// rather than shutting the server down at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_comes_from_exactly_one_place() {
        let dir = std::env::temp_dir().join(format!("mixmon-query-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = AuthConfig { token: None, token_file: Some(file.clone()) };
        assert!(resolve_token(&from_file).unwrap().unwrap().matches("from-file"));
        let inline = AuthConfig { token: Some(Secret::new("inline")), token_file: None };
        assert!(resolve_token(&inline).unwrap().unwrap().matches("inline"));
        assert!(resolve_token(&AuthConfig::default()).unwrap().is_none());
        let both = AuthConfig { token: Some(Secret::new("a")), token_file: Some(file) };
        assert!(resolve_token(&both).is_err());
        let empty = AuthConfig { token: Some(Secret::new(" ")), token_file: None };
        assert!(resolve_token(&empty).is_err());
        let missing = AuthConfig { token: None, token_file: Some(dir.join("absent")) };
        assert!(resolve_token(&missing).unwrap_err().to_string().contains("absent"));

        let ready = dir.join("ready.json");
        write_ready_file(&ready, "127.0.0.1:8090".parse().unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(&ready).unwrap(), r#"{"http":"127.0.0.1:8090"}"#);
        assert!(!dir.join("ready.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let config: QueryConfig = mixmon_config::parse_with_env("t", "", Vec::new()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8090");
        assert_eq!(config.store, StoreConfig::Memory);
        let env = vec![("MIXMON_AUTH__TOKEN".to_string(), "t0k".to_string())];
        let config: QueryConfig = mixmon_config::parse_with_env("t", "", env).unwrap();
        assert!(config.auth.token.unwrap().matches("t0k"));
        assert!(mixmon_config::parse_with_env::<QueryConfig>("t", "[auth]\ntokn = 1\n", Vec::new()).is_err());
    }
}
