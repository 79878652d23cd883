//! The evaluation loop: take (or keep) the lease, read, judge, commit, sleep until the next
//! tick or the moment a pending alert is due, whichever comes first.
//!
//! Only the lease holder evaluates. It starts from the instances in the store, so `for`
//! timers and firing states carry over from the previous leader; every commit names the
//! lease, and a commit the store fences (a new leader took over while this one was paused)
//! drops the role at once. A commit that fails for any other reason discards the in-memory
//! step and reloads from the store at the next tick: what was not written was not decided.

use std::sync::Arc;
use std::time::Duration;

use mixmon_model::alert::{AlertState, AlertTransition, InhibitRule, RuleSet};
use mixmon_store::{CommitOutcome, Lease, Store};
use tokio::sync::watch;

use super::counts::CountCache;
use super::engine::{Engine, Evaluation};
use super::gather;
use crate::server::CatalogueHandle;
use crate::unix_ms;

/// How the evaluator runs.
#[derive(Debug, Clone)]
pub struct EvaluatorSettings {
    /// This replica's name in the lease (host name and process id by default).
    pub holder: String,
    pub lease_ttl: Duration,
    /// At most this long between evaluations.
    pub tick: Duration,
}

impl Default for EvaluatorSettings {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "aggregator".into());
        EvaluatorSettings {
            holder: format!("{host}:{}", std::process::id()),
            lease_ttl: Duration::from_secs(5),
            tick: Duration::from_millis(500),
        }
    }
}

/// The rules and routing in force; swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub struct AlertingRules {
    pub rules: RuleSet,
    pub routing_inhibits: Vec<InhibitRule>,
    /// The whole routing file, for the notifier.
    pub routing: Option<Arc<mixmon_rules::routes::Routing>>,
}

/// Runs until `stop` turns true; gives the lease up on the way out, so another replica takes
/// over at once instead of after the lease's time to live.
pub async fn run(
    store: Arc<dyn Store>,
    catalogue: CatalogueHandle,
    rules: watch::Receiver<Arc<AlertingRules>>,
    settings: EvaluatorSettings,
    lease_out: watch::Sender<Option<Lease>>,
    mut stop: watch::Receiver<bool>,
) {
    let ttl_ms = u64::try_from(settings.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut leading: Option<(Lease, Engine)> = None;
    let mut counts = CountCache::default();
    let mut last_failure: Option<(String, i64)> = None;
    loop {
        let now = unix_ms();
        leading = hold_lease(store.as_ref(), &settings.holder, ttl_ms, now, leading).await;
        publish(&lease_out, leading.as_ref().map(|(lease, _)| lease));
        let mut wake = now + i64::try_from(settings.tick.as_millis()).unwrap_or(1_000);
        if let Some((lease, engine)) = leading.as_mut() {
            let current = rules.borrow().clone();
            match evaluate_once(store.as_ref(), &catalogue, &current, &mut counts, lease, engine).await {
                Ok(Some(deadline)) => {
                    last_failure = None;
                    wake = wake.min(deadline.max(now + 1));
                }
                Ok(None) => last_failure = None,
                Err(Stop::Fenced) => {
                    tracing::warn!(holder = %settings.holder, "another evaluator holds the lease now; stepping down");
                    leading = None;
                    publish(&lease_out, None);
                }
                Err(Stop::Reload(reason)) => {
                    // A dead store fails every tick: say so when it starts and every 30 s.
                    let repeat = last_failure.as_ref().is_some_and(|(r, at)| *r == reason && now - at < 30_000);
                    if repeat {
                        tracing::debug!(error = %reason, "evaluation not committed");
                    } else {
                        tracing::warn!(error = %reason, "evaluation not committed; continuing from the store");
                        last_failure = Some((reason, now));
                    }
                    if let Some((lease, _)) = leading.take() {
                        leading = store.load_alerts().await.ok().map(|loaded| (lease, Engine::new(loaded)));
                    }
                }
            }
        }
        let sleep_ms = u64::try_from((wake - unix_ms()).max(1)).unwrap_or(1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    publish(&lease_out, None);
    if let Some((lease, _)) = leading {
        if let Err(err) = store.release_lease(&lease).await {
            tracing::warn!(error = %err, "could not release the evaluator lease; it expires by itself");
        }
    }
}

/// Tells the notifier which lease (if any) this replica holds now; only a change wakes it.
fn publish(out: &watch::Sender<Option<Lease>>, lease: Option<&Lease>) {
    out.send_if_modified(|current| {
        let same = current.as_ref().map(|l| l.token) == lease.map(|l| l.token);
        if !same {
            *current = lease.cloned();
        }
        !same
    });
}

enum Stop {
    Fenced,
    Reload(String),
}

/// Takes the lease when free, renews it when held; on taking it, loads the stored instances.
async fn hold_lease(
    store: &dyn Store,
    holder: &str,
    ttl_ms: u64,
    now: i64,
    leading: Option<(Lease, Engine)>,
) -> Option<(Lease, Engine)> {
    match leading {
        Some((lease, engine)) => match store.renew_lease(&lease, ttl_ms, now).await {
            Ok(true) => Some((lease, engine)),
            Ok(false) => {
                tracing::warn!(holder, "the evaluator lease was lost");
                None
            }
            // The store may be down for everyone; the next commit's fencing settles who leads.
            Err(err) => {
                tracing::debug!(error = %err, "lease not renewed this tick");
                Some((lease, engine))
            }
        },
        None => match store.acquire_lease(holder, ttl_ms, now).await {
            Ok(Some(lease)) => match store.load_alerts().await {
                Ok(loaded) => {
                    tracing::info!(
                        holder,
                        token = lease.token,
                        alerts = loaded.len(),
                        "evaluating alert rules (leader)"
                    );
                    Some((lease, Engine::new(loaded)))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "alert state unreadable; not leading until it is");
                    let _ = store.release_lease(&lease).await;
                    None
                }
            },
            Ok(None) => None,
            Err(err) => {
                tracing::debug!(error = %err, "lease not taken this tick");
                None
            }
        },
    }
}

/// One evaluation and its commit; the next deadline of a pending alert, if any.
async fn evaluate_once(
    store: &dyn Store,
    catalogue: &CatalogueHandle,
    rules: &AlertingRules,
    counts: &mut CountCache,
    lease: &Lease,
    engine: &mut Engine,
) -> Result<Option<i64>, Stop> {
    let now = unix_ms();
    let inputs = gather::gather(store, &catalogue.current(), &rules.rules, counts, now)
        .await
        .map_err(|e| Stop::Reload(e.to_string()))?;
    let evaluation = engine.evaluate(&rules.rules, &rules.routing_inhibits, &inputs);
    counts.mark_isolated(&evaluation.isolated_regions, now);
    if !evaluation.is_empty() {
        commit(store, lease, &evaluation, now).await?;
    }
    Ok(engine.next_deadline(&rules.rules))
}

async fn commit(store: &dyn Store, lease: &Lease, evaluation: &Evaluation, now: i64) -> Result<(), Stop> {
    let outcome = store
        .commit_alerts(lease, &evaluation.changed, &evaluation.removed, &evaluation.transitions, now)
        .await
        .map_err(|e| Stop::Reload(e.to_string()))?;
    if outcome == CommitOutcome::Fenced {
        return Err(Stop::Fenced);
    }
    for transition in &evaluation.transitions {
        log_transition(transition);
    }
    Ok(())
}

fn log_transition(t: &AlertTransition) {
    let labels = t.labels.to_string();
    let level_info = matches!(t.to, AlertState::Firing | AlertState::Resolved);
    if level_info {
        tracing::info!(event = "alert_transition", alert = t.alertname(), from = t.from.as_str(), to = t.to.as_str(), fingerprint = %t.fingerprint, value = ?t.value, %labels, "alert {}", t.to.as_str());
    } else {
        tracing::debug!(event = "alert_transition", alert = t.alertname(), from = t.from.as_str(), to = t.to.as_str(), fingerprint = %t.fingerprint, %labels, "alert {}", t.to.as_str());
    }
}
