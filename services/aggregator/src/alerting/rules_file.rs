//! The rules in force: loaded at start (from the configured file, else the shipped rules) and
//! reloaded when the file changes, exactly like the catalogue: polled, validated whole, and a
//! bad file refused with every problem logged while the previous rules stay in force.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mixmon_rules::RulesError;
use tokio::sync::watch;

use super::evaluator::AlertingRules;

/// The rules of `path`, or the shipped ones without a path.
pub fn load(path: Option<&Path>) -> Result<AlertingRules, RulesError> {
    let rules = match path {
        Some(path) => mixmon_rules::load(path)?,
        None => mixmon_rules::shipped()?,
    };
    Ok(AlertingRules { rules, routing_inhibits: Vec::new(), routing: None })
}

/// Watches `path` until `stop` turns true, publishing each valid change of the rules file to
/// `rules` and counting each refused one in `refused`. `loaded` is the file's content the
/// rules in force came from, so an edit made between that load and the first poll is not missed.
pub async fn watch(
    path: PathBuf,
    loaded: Option<Vec<u8>>,
    rules: Arc<watch::Sender<Arc<AlertingRules>>>,
    refused: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    follow(path, loaded, "rules", refused, stop, |path| {
        let new = load(Some(path))?;
        let count = new.rules.rules.len();
        rules.send_modify(|current| {
            *current = Arc::new(AlertingRules {
                routing_inhibits: current.routing_inhibits.clone(),
                routing: current.routing.clone(),
                ..new
            })
        });
        Ok(format!("{count} rules"))
    })
    .await
}

/// The same for the routing file: its inhibit rules replace those in force.
pub async fn watch_routes(
    path: PathBuf,
    loaded: Option<Vec<u8>>,
    rules: Arc<watch::Sender<Arc<AlertingRules>>>,
    refused: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    follow(path, loaded, "routing", refused, stop, |path| {
        let routing = mixmon_rules::routes::load(path)?;
        let count = routing.inhibit_rules.len();
        rules.send_modify(|current| {
            let mut next = AlertingRules::clone(current);
            next.routing_inhibits = routing.inhibit_rules.clone();
            next.routing = Some(Arc::new(routing));
            *current = Arc::new(next);
        });
        Ok(format!("{count} inhibit rules"))
    })
    .await
}

/// Follows `path` (as the catalogue is followed); on each change `apply` validates the whole
/// file and publishes it, or refuses it, and then what is in force stays.
async fn follow(
    path: PathBuf,
    loaded: Option<Vec<u8>>,
    what: &'static str,
    refused: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
    mut apply: impl FnMut(&Path) -> Result<String, RulesError>,
) {
    crate::reload::follow(&path, loaded.as_deref(), stop, |path| match apply(path) {
        Ok(summary) => tracing::info!(file = %path.display(), %summary, "{what} file reloaded"),
        Err(err) => {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(file = %path.display(), "refusing the changed {what} file; what was in force stays: {err}");
        }
    })
    .await
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
        let tx = Arc::new(tx);
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

    #[tokio::test]
    async fn a_changed_routing_file_replaces_the_inhibit_rules_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alertmanager.yml");
        let one = "route: { receiver: a }\nreceivers: [{ name: a }]\ninhibit_rules:\n  - { source_matchers: ['x=\"1\"'], target_matchers: ['y=\"1\"'] }\n";
        std::fs::write(&path, one).unwrap();
        let (tx, rx) = watch::channel(Arc::new(load(None).unwrap()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(watch_routes(path.clone(), None, Arc::new(tx), refused.clone(), stop_rx));
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            rx.borrow().routing_inhibits.len() == 1
        })
        .await
        .unwrap();
        std::fs::write(&path, one.replace("receiver: a", "receiver: nobody")).unwrap();
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            refused.load(Ordering::Relaxed) == 1
        })
        .await
        .unwrap();
        assert_eq!(rx.borrow().routing_inhibits.len(), 1, "what was in force stays");
        assert!(rx.borrow().rules.rule("ServiceDown").is_some(), "the rules are untouched");
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }

    #[test]
    fn without_a_file_the_shipped_rules_run() {
        assert!(load(None).unwrap().rules.rule("ServiceDown").is_some());
    }
}
