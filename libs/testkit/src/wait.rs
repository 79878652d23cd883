//! Waiting with a deadline: tests poll for a condition instead of sleeping and hoping, so they
//! are as fast as the system under test and fail with a clear message when it never gets there.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{TestkitError, TimedOut};

/// Polls `f` every `poll` until it returns true; gives up after `deadline`. `f` is always
/// called at least once, and once more at the deadline, so a slow poll interval never hides a
/// condition that became true just in time.
pub async fn eventually<F, Fut>(deadline: Duration, poll: Duration, mut f: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return Ok(());
        }
        let now = Instant::now();
        if now >= end {
            return Err(TimedOut { after: deadline });
        }
        tokio::time::sleep(poll.min(end - now)).await;
    }
}

/// The blocking twin of [`eventually`], for sync tests and `Drop`-free helpers.
pub fn eventually_blocking(deadline: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> Result<(), TimedOut> {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= end {
            return Err(TimedOut { after: deadline });
        }
        std::thread::sleep(poll.min(end - now));
    }
}

const READY_POLL: Duration = Duration::from_millis(20);

fn try_read_json(path: &Path) -> Option<serde_json::Value> {
    // A service may be halfway through writing the file, so an unparsable file means "not yet".
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits until `path` exists and holds a complete JSON document (services write their bound
/// addresses there once listening), and returns it.
pub async fn read_ready_file(path: &Path, deadline: Duration) -> Result<serde_json::Value, TestkitError> {
    let mut found = None;
    let waited = eventually(deadline, READY_POLL, || {
        found = try_read_json(path);
        std::future::ready(found.is_some())
    })
    .await;
    match (waited, found) {
        (Ok(()), Some(value)) => Ok(value),
        _ => Err(TestkitError::Timeout { what: format!("ready file {} to appear", path.display()), after: deadline }),
    }
}

/// The blocking twin of [`read_ready_file`].
pub fn read_ready_file_blocking(path: &Path, deadline: Duration) -> Result<serde_json::Value, TestkitError> {
    let mut found = None;
    let waited = eventually_blocking(deadline, READY_POLL, || {
        found = try_read_json(path);
        found.is_some()
    });
    match (waited, found) {
        (Ok(()), Some(value)) => Ok(value),
        _ => Err(TestkitError::Timeout { what: format!("ready file {} to appear", path.display()), after: deadline }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn eventually_returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let result = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { n >= 3 }
        })
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn eventually_times_out_with_the_deadline() {
        let started = Instant::now();
        let result = eventually(Duration::from_millis(50), Duration::from_millis(10), || async { false }).await;
        assert_eq!(result, Err(TimedOut { after: Duration::from_millis(50) }));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn blocking_twin_behaves_the_same() {
        let mut n = 0;
        assert!(eventually_blocking(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            n == 4
        })
        .is_ok());
        assert_eq!(n, 4);
        assert!(eventually_blocking(Duration::from_millis(20), Duration::from_millis(5), || { false }).is_err());
    }

    #[tokio::test]
    async fn ready_file_is_read_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let writer_path = path.clone();
        let writer = tokio::spawn(async move {
            // A partial write first: the reader must not accept it.
            tokio::fs::write(&writer_path, b"{\"grpc\": \"127.0").await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            tokio::fs::write(&writer_path, b"{\"grpc\": \"127.0.0.1:4000\"}").await.unwrap();
        });
        let value = read_ready_file(&path, Duration::from_secs(10)).await.unwrap();
        assert_eq!(value["grpc"], "127.0.0.1:4000");
        writer.await.unwrap();
    }

    #[test]
    fn missing_ready_file_times_out_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never.json");
        let err = read_ready_file_blocking(&path, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("never.json"), "{err}");
    }
}
