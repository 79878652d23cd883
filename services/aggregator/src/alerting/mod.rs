//! Alert rules, evaluated in the aggregator: at least once a second, from the data in the
//! store, by exactly one replica at a time (a lease with a fencing token), with every
//! instance's state and timers kept in the store so a restart neither re-pages nor resets a
//! timer. What it decides leaves as [`AlertTransition`](mixmon_model::alert::AlertTransition)s
//! on the store's transitions stream, which the history, the Alertmanager-compatible API and
//! the notifier read.
//!
//! `inputs` (what one evaluation reads, as plain data), `gather` (reading it from the store
//! through `libs/sli`), `signals` (what each rule's instances show), `engine` (the state
//! machine over all of them, events, inhibition), `evaluator` (the lease and the loop).

pub mod counts;
pub mod engine;
pub mod evaluator;
pub mod gather;
pub mod inputs;
pub mod rules_file;
#[cfg(test)]
mod scenarios;
pub mod signals;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use mixmon_store::Store;
use tokio::sync::watch;

use crate::config::AlertingConfig;
use crate::server::CatalogueHandle;

/// What a service starts to evaluate alerts: the evaluator and, with a rules file, its watcher.
pub struct Alerting {
    pub rules: watch::Receiver<Arc<evaluator::AlertingRules>>,
    /// Rules- and routing-file changes refused since start.
    pub refused: Arc<AtomicU64>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Loads the rules (a bad file stops the start, with every problem) and spawns the evaluator
/// and the file watcher until `stop` turns true.
pub fn start(
    config: &AlertingConfig,
    store: Arc<dyn Store>,
    catalogue: CatalogueHandle,
    stop: watch::Receiver<bool>,
) -> Result<Alerting, mixmon_rules::RulesError> {
    let loaded = config.rules_file.as_ref().and_then(|path| std::fs::read(path).ok());
    let routes_loaded = config.routes_file.as_ref().and_then(|path| std::fs::read(path).ok());
    let mut rules = rules_file::load(config.rules_file.as_deref())?;
    let routing = match &config.routes_file {
        Some(path) => mixmon_rules::routes::load(path)?,
        None => mixmon_rules::routes::shipped()?,
    };
    rules.routing_inhibits = routing.inhibit_rules.clone();
    rules.routing = Some(Arc::new(routing));
    tracing::info!(
        rules = rules.rules.rules.len(),
        file = config.rules_file.as_ref().map_or("built-in config/rules.yaml".to_string(), |p| p.display().to_string()),
        "alert rules loaded"
    );
    let (tx, rx) = watch::channel(Arc::new(rules));
    let tx = Arc::new(tx);
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    if let Some(path) = &config.rules_file {
        tasks.push(tokio::spawn(rules_file::watch(path.clone(), loaded, tx.clone(), refused.clone(), stop.clone())));
    }
    if let Some(path) = &config.routes_file {
        let watcher = rules_file::watch_routes(path.clone(), routes_loaded, tx.clone(), refused.clone(), stop.clone());
        tasks.push(tokio::spawn(watcher));
    }
    let settings = evaluator::EvaluatorSettings {
        lease_ttl: Duration::from_millis(config.lease_ttl_ms),
        tick: Duration::from_millis(config.tick_ms),
        ..Default::default()
    };
    if config.enabled {
        let (lease_tx, lease_rx) = watch::channel(None);
        if config.notify {
            let notifier = crate::notifier::NotifierSettings {
                external_url: config.external_url.clone(),
                dashboard_url: config.dashboard_url.clone(),
                alertmanagers: config.alertmanagers.clone(),
                tick: Duration::from_millis(config.tick_ms),
                forward_every: Duration::from_secs(30),
            };
            tasks.push(tokio::spawn(crate::notifier::run(store.clone(), rx.clone(), lease_rx, notifier, stop.clone())));
        }
        tasks.push(tokio::spawn(evaluator::run(store, catalogue, rx.clone(), settings, lease_tx, stop)));
    }
    Ok(Alerting { rules: rx, refused, tasks })
}
