//! The Redis store: rollups as hashes of counters, so merging batches, regions and aggregator
//! replicas is `HINCRBY` done by Redis itself. A batch is applied by one Lua script per
//! endpoint (check), every key of which shares the endpoint's hash tag, so the store is Redis
//! Cluster safe; the scripts of one batch go in one pipeline (one round trip). Exactly-once
//! holds per endpoint: each script checks and moves that endpoint's (prober, epoch) watermark
//! atomically with its increments, so a batch that was only partly applied before a failure
//! is completed by its resend, and never counted twice. The key schema is in [`crate::keys`].
//!
//! Reads of minute rollups go through a cache of decoded hours: a cached hour is reused while
//! its hourly rollup's `n` (which every write to one of its minutes increments, in the same
//! script) is unchanged, so a dashboard refresh reads one small counter per (series, hour)
//! and only the minutes of hours that changed.
//!
//! Every call is bounded by the configured response timeout, reconnecting included, so a dead
//! Redis turns into [`StoreError::Unavailable`] quickly instead of a hung caller. The
//! connection manager reconnects on the next call after a failure; callers never reconnect.
//!
//! `write` (the batch scripts and their commands), `codec` (hash replies into rollups and
//! figures), `cache` (decoded hours), `read` (every windowed read, through one pipelined
//! routine), `store` (the [`Store`] methods), `alerts` and `outbox` (alerting's keys).

mod alerts;
mod cache;
mod codec;
mod outbox;
mod read;
mod store;
#[cfg(test)]
mod tests;
mod write;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mixmon_config::Secret;
use mixmon_model::{CheckId, Subject};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Value};

pub use cache::{DEFAULT_READ_CACHE_BYTES, DEFAULT_READ_CACHE_HOURS};
pub use read::{MAX_READ_KEYS, MAX_READ_MINUTES};

use crate::StoreError;
use cache::HourCache;
use write::{APPLY_SCRIPT, FIGURES_SCRIPT};

#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); a secret because it may hold
    /// the password.
    pub url: Secret,
    /// Upper bound on every store call, waiting for a reconnect included.
    pub response_timeout: Duration,
    /// Upper bound on establishing one connection.
    pub connect_timeout: Duration,
    /// Decoded (series, hour) blocks kept for reads; 0 disables the cache.
    pub read_cache_hours: usize,
    /// Bytes those blocks may hold (by estimate); 0 disables the cache.
    pub read_cache_bytes: usize,
}

impl RedisStoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            read_cache_hours: DEFAULT_READ_CACHE_HOURS,
            read_cache_bytes: DEFAULT_READ_CACHE_BYTES,
        }
    }
}

/// The URL with any password replaced by `***`, the only form that may appear in a message.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL we understand: it could be anything, including a bare password.
        return "***".to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let shown_user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // `redis://secret@host` is read by some clients as a password, so it is hidden too.
        None => "***".to_string(),
    };
    format!("{}{shown_user}{}", &url[..scheme_end], &url[scheme_end + at..])
}

pub struct RedisStore {
    pub(crate) connection: ConnectionManager,
    apply_script: redis::Script,
    response_timeout: Duration,
    pub(crate) shown_url: String,
    cache: Mutex<HourCache>,
    /// When this process last added each check to [`keys::CHECKS`].
    checks_written: Mutex<HashMap<CheckId, Instant>>,
    figures_script: redis::Script,
    /// When this process last added each subject to [`keys::SUBJECTS`].
    subjects_written: Mutex<HashMap<Subject, Instant>>,
    /// For the probe-request subscription, which needs a connection of its own.
    pub(crate) client: redis::Client,
    pub(crate) probe_requests: tokio::sync::OnceCell<tokio::sync::broadcast::Sender<crate::alerts::ProbeRequest>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.shown_url).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (one attempt, bounded by `connect_timeout`); fails with
    /// [`StoreError::Unavailable`] naming the URL, password hidden, when Redis is unreachable.
    pub async fn connect(config: RedisStoreConfig) -> Result<RedisStore, StoreError> {
        let shown_url = redact_url(config.url.expose());
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| StoreError::Invalid(format!("bad redis URL {shown_url}: {}", describe(&e))))?;
        // No retries inside the manager: its backoff starts at a full second, and the caller's
        // next call triggers a fresh attempt anyway, so failures surface at once.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(config.connect_timeout)
            .set_response_timeout(config.response_timeout);
        // The outer bound covers DNS and the handshake commands too.
        let bound = config.connect_timeout + config.response_timeout;
        let connection =
            match tokio::time::timeout(bound, ConnectionManager::new_with_config(client.clone(), manager_config)).await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot connect to redis at {shown_url}: {}",
                        describe(&e)
                    )))
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot connect to redis at {shown_url}: no connection within {bound:?}"
                    )))
                }
            };
        Ok(RedisStore {
            connection,
            apply_script: redis::Script::new(APPLY_SCRIPT),
            response_timeout: config.response_timeout,
            shown_url,
            cache: Mutex::new(HourCache::new(config.read_cache_hours, config.read_cache_bytes)),
            checks_written: Mutex::new(HashMap::new()),
            figures_script: redis::Script::new(FIGURES_SCRIPT),
            subjects_written: Mutex::new(HashMap::new()),
            client,
            probe_requests: tokio::sync::OnceCell::new(),
        })
    }

    /// Runs one store operation with the response timeout over all of it. A timed-out
    /// `apply_batch` may still have been applied; a resend is then a harmless Duplicate.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.response_timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis at {} did not answer {what} within {:?}",
                self.shown_url, self.response_timeout
            ))),
        }
    }

    /// The server's `INFO <section>` text, for benchmarks and diagnostics (command counts,
    /// memory); never parsed by the store itself.
    pub async fn server_info(&self, section: &str) -> Result<String, StoreError> {
        let mut connection = self.connection.clone();
        self.bounded("info", async {
            redis::cmd("INFO")
                .arg(section)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.map_error("info", None, &e))
        })
        .await
    }

    pub(crate) fn map_error(&self, what: &str, key: Option<&str>, e: &RedisError) -> StoreError {
        let unavailable = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                ErrorKind::BusyLoadingError
                    | ErrorKind::TryAgain
                    | ErrorKind::ClusterDown
                    | ErrorKind::MasterDown
                    | ErrorKind::ReadOnly
                    | ErrorKind::AuthenticationFailed
            );
        if unavailable {
            return StoreError::Unavailable(format!("redis at {} failed {what}: {}", self.shown_url, describe(e)));
        }
        let wrong_type =
            e.code() == Some("WRONGTYPE") || matches!(e.kind(), ErrorKind::TypeError | ErrorKind::ParseError);
        if wrong_type {
            return StoreError::Corrupt { key: key.unwrap_or(what).to_string(), reason: describe(e) };
        }
        match e.kind() {
            ErrorKind::ClientError | ErrorKind::InvalidClientConfig => {
                StoreError::Invalid(format!("{what}: {}", describe(e)))
            }
            // Anything else the server refused (OOM, script errors): retrying later may help.
            _ => StoreError::Unavailable(format!("redis at {} failed {what}: {}", self.shown_url, describe(e))),
        }
    }
}

impl RedisStore {
    /// Sends a pipeline, returning one reply per command; a server error in one command is
    /// its reply (`Value::ServerError`), not a failure of the whole call.
    pub(crate) async fn pipeline(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, StoreError> {
        if count == 0 {
            // An empty pipeline would wait for replies that never come.
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let replies =
            connection.req_packed_commands(pipe, 0, count).await.map_err(|e| self.map_error(what, None, &e))?;
        if replies.len() != count {
            return Err(StoreError::Unavailable(format!(
                "redis answered {} of {count} {what} commands",
                replies.len()
            )));
        }
        Ok(replies)
    }
}

/// A redis error as text. Redis errors never carry the URL, so nothing secret leaks here.
pub(crate) fn describe(e: &RedisError) -> String {
    e.to_string()
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} does not fit a Redis integer")))
}
