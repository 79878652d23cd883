//! The rules in force: loaded at start (from the configured file, else the shipped rules) and
//! reloaded when the file changes, exactly like the catalogue: polled, validated whole, and a
//! bad file refused with every problem logged while the previous rules stay in force.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mixmon_rules::RulesError;
use tokio::sync::watch;

use super::evaluator::AlertingRules;
use crate::reload::POLL_INTERVAL;

/// The rules of `path`, or the shipped ones without a path.
pub fn load(path: Option<&Path>) -> Result<AlertingRules, RulesError> {
    let rules = match path {
        Some(path) => mixmon_rules::load(path)?,
        None => mixmon_rules::shipped()?,
    };
    Ok(AlertingRules { rules, routing_inhibits: Vec::new() })
}

/// Watches `path` until `stop` turns true, publishing each valid change to `rules` and
/// counting each refused one in `refused`. `loaded` is the file's content the rules in force
/// came from, so an edit made between that load and the first poll is not missed.
pub async fn watch(
    path: PathBuf,
    loaded: Option<Vec<u8>>,
    rules: watch::Sender<Arc<AlertingRules>>,
    refused: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = loaded;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(bytes) = tokio::fs::read(&path).await else { continue };
        if last.as_ref() == Some(&bytes) {
            continue;
        }
        last = Some(bytes);
        match load(Some(&path)) {
            Ok(new) => {
                tracing::info!(file = %path.display(), rules = new.rules.rules.len(), "alert rules reloaded");
                let routing = rules.borrow().routing_inhibits.clone();
                rules.send_replace(Arc::new(AlertingRules { routing_inhibits: routing, ..new }));
            }
            Err(err) => {
                refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    file = %path.display(),
                    rules_in_force = rules.borrow().rules.rules.len(),
                    "refusing the changed rules file; the previous rules stay in force: {err}"
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_testkit::eventually;
    use std::time::Duration;

    const ONE: &str = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: endpoint_down\n        labels: {severity: critical}\n";

    #[tokio::test]
    async fn a_changed_file_is_published_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, ONE).unwrap();
        let (tx, rx) = watch::channel(Arc::new(load(Some(&path)).unwrap()));
        let loaded = Some(ONE.as_bytes().to_vec());
        let (stop_tx, stop_rx) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(watch(path.clone(), loaded, tx, refused.clone(), stop_rx));
        let names = |rx: &watch::Receiver<Arc<AlertingRules>>| {
            rx.borrow().rules.rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>()
        };

        std::fs::write(&path, ONE.replace("endpoint_down", "endpoint_dwn")).unwrap();
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            refused.load(Ordering::Relaxed) == 1
        })
        .await
        .unwrap();
        assert_eq!(names(&rx), ["A"], "the previous rules stay in force");
        std::fs::write(&path, ONE.replace("alert: A", "alert: B")).unwrap();
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async { names(&rx) == ["B"] }).await.unwrap();
        assert_eq!(refused.load(Ordering::Relaxed), 1);
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }

    #[test]
    fn without_a_file_the_shipped_rules_run() {
        assert!(load(None).unwrap().rules.rule("ServiceDown").is_some());
    }
}
