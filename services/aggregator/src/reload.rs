//! Reloading the check catalogue without a restart. The config file is polled (its bytes
//! hashed every [`POLL_INTERVAL`]; no file-notification dependency, and it works the same for
//! a Kubernetes ConfigMap, whose files change by symlink swap). A changed file is parsed and
//! validated as a whole, like at start; a bad one is refused with the problems logged and the
//! previous catalogue stays in force. A good one is published and reaches every prober's
//! assignment stream at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::assignment::Assignments;
use crate::catalogue::{Catalogue, CatalogueError, HEALTH_CHECK_INTERVAL};
use crate::config::AggregatorConfig;
use crate::server::CatalogueHandle;

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(#[from] mixmon_config::ConfigError),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// The catalogue and the assignment rules of `config`, validated together: a rule naming a
/// check the catalogue lacks is one more problem of the catalogue.
pub fn resolve(
    config: &AggregatorConfig,
    health_check_interval: Option<&str>,
) -> Result<(Catalogue, Assignments), CatalogueError> {
    let catalogue = Catalogue::from_config(config, health_check_interval);
    let assignments = match &catalogue {
        Ok(catalogue) => {
            let labels = config.checks.iter().map(|c| (c.id.clone(), c.labels.clone())).collect();
            Assignments::resolve(&config.assignments, catalogue, &labels)
                .map(|a| a.with_regions(config.regions.clone()))
        }
        // Rules are only checked against a valid catalogue.
        Err(_) => Ok(Assignments::default()),
    };
    match (catalogue, assignments) {
        (Ok(catalogue), Ok(assignments)) => Ok((catalogue, assignments)),
        (Err(err), _) => Err(err),
        (Ok(_), Err(problems)) => Err(CatalogueError { problems }),
    }
}

/// Everything the aggregator refuses at start, checked without starting anything: the one
/// path of the service's start and of `mixmon validate`, so what one refuses the other does,
/// with the same message. The rules and routing files are checked where they are loaded
/// (`mixmon_rules`), by both alike.
pub fn prepare(
    config: &AggregatorConfig,
    health_check_interval: Option<&str>,
) -> Result<(Catalogue, Assignments), PrepareError> {
    mixmon_config::startup::check_listen(&config.listen).map_err(PrepareError::Invalid)?;
    if let Some(listen) = &config.metrics.listen {
        mixmon_config::startup::check_listen(listen).map_err(|e| PrepareError::Invalid(format!("metrics.{e}")))?;
    }
    let resolved = resolve(config, health_check_interval)?;
    config.alerting.validate().map_err(PrepareError::Invalid)?;
    config.connections.validate().map_err(PrepareError::Invalid)?;
    Ok(resolved)
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("{0}")]
    Invalid(String),
}

/// Reads `path` (with the environment overrides) into a catalogue and its rules.
pub fn load(path: &Path) -> Result<(AggregatorConfig, Catalogue, Assignments), LoadError> {
    let config: AggregatorConfig = mixmon_config::load(Some(path), mixmon_config::process_env())?;
    let interval = std::env::var(HEALTH_CHECK_INTERVAL).ok();
    let (catalogue, assignments) = resolve(&config, interval.as_deref())?;
    Ok((config, catalogue, assignments))
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Polls `path` every [`POLL_INTERVAL`] until `stop` turns true and calls `changed` each time
/// its content differs from the last seen. `loaded` is the content in force at start, when
/// known; without it the first poll counts as a change, so an edit made while the service
/// started is not missed. A file briefly absent (mid-swap) is tried again at the next tick.
pub(crate) async fn follow(
    path: &Path,
    loaded: Option<&[u8]>,
    mut stop: watch::Receiver<bool>,
    mut changed: impl FnMut(&Path),
) {
    let mut last = loaded.map(fingerprint);
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(bytes) = tokio::fs::read(path).await else { continue };
        let seen = Some(fingerprint(&bytes));
        if seen != last {
            last = seen;
            changed(path);
        }
    }
}

/// Watches `path` until `stop` turns true, publishing each valid new catalogue to `handle`
/// and counting each refused change in `refused`.
pub async fn watch_file(path: PathBuf, handle: CatalogueHandle, refused: Arc<AtomicU64>, stop: watch::Receiver<bool>) {
    follow(&path, None, stop, |path| match load(path) {
        Ok((_, catalogue, assignments)) => {
            let previous = handle.published();
            if previous.catalogue.version == catalogue.version && previous.assignments == assignments {
                return;
            }
            tracing::info!(
                file = %path.display(),
                version = catalogue.version,
                previous = previous.catalogue.version,
                checks = catalogue.checks.len(),
                "check catalogue reloaded"
            );
            handle.publish(catalogue, assignments);
        }
        Err(err) => {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                file = %path.display(),
                version_in_force = handle.current().version,
                "refusing the changed configuration; the previous catalogue stays in force: {err}"
            );
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_testkit::eventually;

    fn write(path: &Path, checks: &[&str]) {
        let mut text = String::new();
        for id in checks {
            text.push_str(&format!("[[checks]]\nid = \"{id}\"\nurl = \"http://{id}.example/health\"\n"));
        }
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn a_changed_file_is_published_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aggregator.toml");
        write(&path, &["a"]);
        let (_, catalogue, assignments) = load(&path).unwrap();
        let handle = CatalogueHandle::with_assignments(catalogue, assignments);
        let (stop_tx, stop_rx) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(watch_file(path.clone(), handle.clone(), refused.clone(), stop_rx));

        write(&path, &["a", "b"]);
        let count = |h: &CatalogueHandle| h.current().checks.len();
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async { count(&handle) == 2 }).await.unwrap();
        let good = handle.current().version;

        std::fs::write(&path, "[[checks]]\nid = \"a\"\nurl = \"ftp://nope\"\n").unwrap();
        // The bad file is seen and refused; the good catalogue stays.
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            refused.load(Ordering::Relaxed) == 1
        })
        .await
        .unwrap();
        assert_eq!(handle.current().version, good);

        write(&path, &["c"]);
        eventually(Duration::from_secs(10), Duration::from_millis(20), || async {
            handle.current().checks.keys().map(|k| k.to_string()).collect::<Vec<_>>() == ["c"]
        })
        .await
        .unwrap();
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }

    #[test]
    fn a_rule_naming_an_unknown_check_is_a_catalogue_problem() {
        let config: AggregatorConfig = mixmon_config::parse_with_env(
            "a.toml",
            "[[checks]]\nid = \"a\"\nurl = \"http://a/\"\n[[assignments]]\nchecks = [\"b\"]\nregions = [\"eu-west\"]\n",
            Vec::new(),
        )
        .unwrap();
        let err = resolve(&config, None).unwrap_err().to_string();
        assert!(err.contains("assignments[0]") && err.contains("\"b\""), "{err}");
    }
}
