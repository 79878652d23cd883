//! The Redis store: rollups as hashes of counters, so merging batches, regions and aggregator
//! replicas is `HINCRBY` done by Redis itself; exactly-once through a per-(prober, epoch)
//! watermark checked and moved in the same Lua script that applies the increments. The key
//! schema is in [`crate::keys`].
//!
//! Every call is bounded by the configured response timeout, reconnecting included, so a dead
//! Redis turns into [`StoreError::Unavailable`] quickly instead of a hung caller. The
//! connection manager reconnects on the next call after a failure; callers never reconnect.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use mixmon_config::Secret;
use mixmon_model::{Minute, Rollup, RollupDelta, SeriesKey};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Value};

use crate::keys::{self, field, field::Field};
use crate::{ApplyOutcome, BatchId, Store, StoreError};

/// Reads longer than this are refused: no dashboard needs more than a month per request.
pub const MAX_READ_MINUTES: i64 = 31 * 24 * 60;
/// Reads touching more rollup keys than this are refused, to bound Redis and our memory.
pub const MAX_READ_KEYS: usize = 200_000;
/// Keys per pipeline in a read: large reads go in slices so no single reply is huge and each
/// slice finishes well within the response timeout.
const READ_PIPELINE_KEYS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); a secret because it may hold
    /// the password.
    pub url: Secret,
    /// Upper bound on every store call, waiting for a reconnect included.
    pub response_timeout: Duration,
    /// Upper bound on establishing one connection.
    pub connect_timeout: Duration,
}

impl RedisStoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
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

/// The batch script. Atomic because Redis runs a script without interleaving other commands.
///
/// Layout:
/// - `KEYS[1]` watermark key, `KEYS[2]` series index set, `KEYS[3..]` one rollup hash per
///   (series, minute) in the delta.
/// - `ARGV[1]` batch seq (decimal u64), `ARGV[2]` watermark TTL s, `ARGV[3]` series index TTL s,
///   `ARGV[4]` = S, the number of series members, `ARGV[5 .. 4+S]` the members;
///   then for each rollup key, in `KEYS` order: its `EXPIREAT` unix seconds, F = its number of
///   fields, then F (field, increment) pairs.
///
/// Returns 1 when applied, 0 when `seq` is at or below the watermark (a resend). Key types are
/// checked before the first write, so a foreign value at one of our keys fails the whole batch
/// instead of leaving it half-applied.
const APPLY_SCRIPT: &str = r#"
local function seq_le(a, b)
  -- u64 values exceed Lua's exact number range (2^53): compare decimal strings instead.
  if #a ~= #b then return #a < #b end
  return a <= b
end
local seq = ARGV[1]
local mark = redis.call('GET', KEYS[1])
if mark and seq_le(seq, mark) then return 0 end
for k = 3, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= 'hash' then
    return redis.error_reply('WRONGTYPE rollup key ' .. KEYS[k] .. ' holds a ' .. t)
  end
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[2])
local members = tonumber(ARGV[4])
if members > 0 then
  -- Chunked: unpack() of thousands of values would overflow Lua's C stack.
  for first = 5, 4 + members, 500 do
    redis.call('SADD', KEYS[2], unpack(ARGV, first, math.min(first + 499, 4 + members)))
  end
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local i = 5 + members
for k = 3, #KEYS do
  local expire_at = ARGV[i]
  local fields = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, fields do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIREAT', KEYS[k], expire_at)
end
return 1
"#;

pub struct RedisStore {
    connection: ConnectionManager,
    apply_script: redis::Script,
    response_timeout: Duration,
    shown_url: String,
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
            match tokio::time::timeout(bound, ConnectionManager::new_with_config(client, manager_config)).await {
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
        })
    }

    /// Runs one store operation with the response timeout over all of it. A timed-out
    /// `apply_batch` may still have been applied; a resend is then a harmless Duplicate.
    async fn bounded<T>(
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

    fn map_error(&self, what: &str, key: Option<&str>, e: &RedisError) -> StoreError {
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

/// A redis error as text. Redis errors never carry the URL, so nothing secret leaks here.
fn describe(e: &RedisError) -> String {
    e.to_string()
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} does not fit a Redis integer")))
}

/// The (field, increment) pairs of one rollup. `n` is always written, so every rollup in a
/// delta has a hash, as it has an entry in the memory store.
fn rollup_fields(rollup: &Rollup) -> Result<Vec<(String, i64)>, StoreError> {
    let mut fields = vec![(field::TOTAL.to_string(), to_i64(rollup.total, "total")?)];
    let mut push = |name: String, value: u64| -> Result<(), StoreError> {
        if value > 0 {
            fields.push((name, to_i64(value, "count")?));
        }
        Ok(())
    };
    push(field::SUCCESSES.to_string(), rollup.successes)?;
    push(field::LATENCY_SUM_US.to_string(), rollup.latency_sum_us)?;
    for (kind, n) in &rollup.failures {
        push(field::failure(*kind), *n)?;
    }
    push(field::ZERO_BUCKET.to_string(), rollup.latency.zero_count())?;
    for (index, n) in rollup.latency.buckets() {
        push(field::bucket(index), n)?;
    }
    Ok(fields)
}

fn invocation_for<'a>(
    script: &'a redis::Script,
    batch: &BatchId,
    delta: &RollupDelta,
) -> Result<redis::ScriptInvocation<'a>, StoreError> {
    let mut invocation = script.prepare_invoke();
    invocation.key(keys::watermark(&batch.prober, batch.epoch)).key(keys::SERIES_INDEX);
    invocation.arg(batch.seq.to_string()).arg(keys::WATERMARK_TTL_SECONDS).arg(keys::SERIES_INDEX_TTL_SECONDS);
    let members: BTreeSet<String> = delta.rollups.keys().map(|(series, _)| keys::series_member(series)).collect();
    invocation.arg(members.len());
    for member in &members {
        invocation.arg(member);
    }
    for ((series, minute), rollup) in &delta.rollups {
        invocation.key(keys::rollup(series, *minute));
        let fields = rollup_fields(rollup)?;
        invocation.arg(keys::rollup_expire_at(*minute)).arg(fields.len());
        for (name, increment) in fields {
            invocation.arg(name).arg(increment);
        }
    }
    Ok(invocation)
}

/// A hash's (field, value) pairs as raw bytes.
type HashPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One HGETALL reply as (field, value) byte pairs: RESP2 sends a flat array, RESP3 a map.
fn hash_pairs(value: Value) -> Result<HashPairs, String> {
    fn bytes(value: Value) -> Result<Vec<u8>, String> {
        match value {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            Value::Int(i) => Ok(i.to_string().into_bytes()),
            other => Err(format!("unexpected hash element {other:?}")),
        }
    }
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(format!("hash reply with an odd number ({}) of elements", items.len()));
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((bytes(k)?, bytes(v)?));
            }
            Ok(pairs)
        }
        Value::Map(pairs) => pairs.into_iter().map(|(k, v)| Ok((bytes(k)?, bytes(v)?))).collect(),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Rebuilds a rollup from its hash; `None` for an empty (missing) hash.
fn decode_rollup(key: &str, pairs: HashPairs) -> Result<Option<Rollup>, StoreError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut rollup = Rollup::default();
    for (name, value) in pairs {
        let Some(known) = std::str::from_utf8(&name).ok().and_then(field::parse) else {
            continue;
        };
        let count = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            StoreError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "field {} holds {:?}, not a non-negative integer",
                    known.name(),
                    String::from_utf8_lossy(&value)
                ),
            }
        })?;
        match known {
            Field::Total => rollup.total = count,
            Field::Successes => rollup.successes = count,
            Field::LatencySumUs => rollup.latency_sum_us = count,
            Field::Failure(kind) => {
                if count > 0 {
                    rollup.failures.insert(kind, count);
                }
            }
            Field::ZeroBucket => rollup.latency.add_zero(count),
            Field::Bucket(index) => rollup.latency.add_bucket(index, count),
        }
    }
    Ok(Some(rollup))
}

#[async_trait]
impl Store for RedisStore {
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        let invocation = invocation_for(&self.apply_script, batch, delta)?;
        let mut connection = self.connection.clone();
        self.bounded("apply_batch", async {
            // EVALSHA; the script is loaded (and the call repeated) only when Redis lost it,
            // after a restart.
            let applied: i64 =
                invocation.invoke_async(&mut connection).await.map_err(|e| self.map_error("apply_batch", None, &e))?;
            match applied {
                1 => Ok(ApplyOutcome::Applied),
                0 => Ok(ApplyOutcome::Duplicate),
                other => Err(StoreError::Corrupt {
                    key: keys::watermark(&batch.prober, batch.epoch),
                    reason: format!("apply script returned {other}"),
                }),
            }
        })
        .await
    }

    async fn read_rollups(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        if from >= to {
            return Ok(vec![Vec::new(); series.len()]);
        }
        let minutes = to.0 - from.0;
        if minutes > MAX_READ_MINUTES {
            return Err(StoreError::Invalid(format!(
                "read of {minutes} minutes is longer than the limit of {MAX_READ_MINUTES} (31 days)"
            )));
        }
        let key_count = usize::try_from(minutes).unwrap_or(usize::MAX).saturating_mul(series.len());
        if key_count > MAX_READ_KEYS {
            return Err(StoreError::Invalid(format!(
                "read of {} series x {minutes} minutes = {key_count} rollups exceeds the limit of {MAX_READ_KEYS}",
                series.len()
            )));
        }
        let wanted: Vec<(usize, Minute, String)> = series
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (from.0..to.0).map(move |m| (i, Minute(m), keys::rollup(s, Minute(m)))))
            .collect();
        let mut result = vec![Vec::new(); series.len()];
        let mut connection = self.connection.clone();
        self.bounded("read_rollups", async {
            for slice in wanted.chunks(READ_PIPELINE_KEYS) {
                let mut pipe = redis::pipe();
                for (_, _, key) in slice {
                    pipe.cmd("HGETALL").arg(key);
                }
                let replies = connection
                    .req_packed_commands(&pipe, 0, slice.len())
                    .await
                    .map_err(|e| self.map_error("read_rollups", None, &e))?;
                if replies.len() != slice.len() {
                    return Err(StoreError::Unavailable(format!(
                        "redis answered {} of {} reads",
                        replies.len(),
                        slice.len()
                    )));
                }
                for ((index, minute, key), reply) in slice.iter().zip(replies) {
                    if let Value::ServerError(e) = reply {
                        let e = RedisError::from(e);
                        return Err(self.map_error("read_rollups", Some(key), &e));
                    }
                    let pairs = hash_pairs(reply).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason })?;
                    if let Some(rollup) = decode_rollup(key, pairs)? {
                        result[*index].push((*minute, rollup));
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(result)
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        let mut connection = self.connection.clone();
        let members: Vec<Vec<u8>> = self
            .bounded("list_series", async {
                redis::cmd("SMEMBERS")
                    .arg(keys::SERIES_INDEX)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.map_error("list_series", Some(keys::SERIES_INDEX), &e))
            })
            .await?;
        let mut series: Vec<SeriesKey> = members
            .iter()
            .filter_map(|member| {
                let text = String::from_utf8_lossy(member);
                match keys::parse_series_member(&text) {
                    Ok(series) => Some(series),
                    Err(e) => {
                        tracing::warn!(key = keys::SERIES_INDEX, error = %e, "skipping unreadable series member");
                        None
                    }
                }
            })
            .collect();
        series.sort();
        series.dedup();
        Ok(series)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        self.bounded("ping", async {
            let reply: String =
                redis::cmd("PING").query_async(&mut connection).await.map_err(|e| self.map_error("ping", None, &e))?;
            if reply == "PONG" {
                Ok(())
            } else {
                Err(StoreError::Unavailable(format!("redis at {} answered PING with {reply:?}", self.shown_url)))
            }
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;
    use mixmon_model::{CheckId, FailureKind, Region};

    #[test]
    fn urls_are_shown_without_passwords() {
        let cases = [
            ("redis://127.0.0.1:6380", "redis://127.0.0.1:6380"),
            ("redis://:hunter2@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:hunter2@h:1", "redis://user:***@h:1"),
            ("rediss://user:p%40ss@word@h:1/2?x=1", "rediss://user:***@h:1/2?x=1"),
            ("redis://hunter2@h", "redis://***@h"),
            ("hunter2", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
    }

    #[test]
    fn rollups_survive_encoding_to_fields_and_back() {
        let mut rollup = Rollup { total: 9, successes: 5, latency_sum_us: 12_345, ..Default::default() };
        rollup.failures.insert(FailureKind::Timeout, 3);
        rollup.failures.insert(FailureKind::Dns, 1);
        rollup.latency.add(0.5);
        rollup.latency.add(1000.0);
        rollup.latency.add(1000.0);
        rollup.latency.add(2_000_000.0);
        let pairs = rollup_fields(&rollup)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.to_string().into_bytes()))
            .chain([(b"future-field".to_vec(), b"not a number".to_vec())])
            .collect();
        assert_eq!(decode_rollup("k", pairs).unwrap(), Some(rollup));
        assert_eq!(decode_rollup("k", Vec::new()).unwrap(), None);
    }

    #[test]
    fn a_non_integer_counter_is_corrupt_naming_the_key() {
        let err = decode_rollup("the-key", vec![(b"n".to_vec(), b"1.5".to_vec())]).unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == "the-key"), "{err}");
        let err = decode_rollup("k", vec![(b"b:3".to_vec(), b"-1".to_vec())]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
    }

    #[test]
    fn hash_replies_decode_in_both_protocols() {
        let flat = Value::Array(vec![Value::BulkString(b"n".to_vec()), Value::BulkString(b"2".to_vec())]);
        let map = Value::Map(vec![(Value::BulkString(b"n".to_vec()), Value::BulkString(b"2".to_vec()))]);
        let expected = vec![(b"n".to_vec(), b"2".to_vec())];
        assert_eq!(hash_pairs(flat).unwrap(), expected);
        assert_eq!(hash_pairs(map).unwrap(), expected);
        assert!(hash_pairs(Value::Array(vec![Value::Nil])).is_err());
    }

    #[test]
    fn script_invocation_builds_for_extreme_seqs() {
        let series = SeriesKey { check: CheckId::new("api").unwrap(), region: Region::new("eu").unwrap() };
        let mut delta = RollupDelta::default();
        let rollup = delta.rollups.entry((series.clone(), Minute(10))).or_default();
        rollup.total = 2;
        rollup.successes = 2;
        let batch = BatchId { prober: mixmon_model::ProberId::new("p").unwrap(), epoch: 3, seq: u64::MAX };
        let script = redis::Script::new(APPLY_SCRIPT);
        // Only checks that building succeeds for extreme values; the layout itself is exercised
        // against a real Redis in tests/conformance.rs.
        assert!(invocation_for(&script, &batch, &delta).is_ok());
    }

    #[test]
    fn counts_beyond_redis_integers_are_refused() {
        let rollup = Rollup { total: u64::MAX, ..Default::default() };
        assert!(matches!(rollup_fields(&rollup), Err(StoreError::Invalid(_))));
    }
}
