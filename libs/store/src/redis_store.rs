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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mixmon_config::Secret;
use mixmon_model::{
    CheckId, Fields, Hour, Minute, Phase, RawRecord, Region, Rollup, RollupDelta, SeriesKey, Subject, RECORDS_KEPT,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Value};

use crate::keys::{self, field, field::Field, figure_field};
use crate::{ApplyOutcome, BatchId, RollupBlock, Store, StoreError};

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
    /// Decoded (series, hour) blocks kept for reads; 0 disables the cache.
    pub read_cache_hours: usize,
}

impl RedisStoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            read_cache_hours: DEFAULT_READ_CACHE_HOURS,
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

/// The per-endpoint batch script. Atomic because Redis runs a script without interleaving
/// other commands; every key shares the endpoint's hash tag, so it runs on one cluster node.
///
/// Layout:
/// - `KEYS[1]` the endpoint's watermark for (prober, epoch), `KEYS[2]` the endpoint's region
///   set, then U rollup hashes (per (region, minute) and per (region, hour)), then one raw
///   record list per region.
/// - `ARGV[1]` batch seq (decimal u64), `ARGV[2]` watermark TTL s, `ARGV[3]` region set and
///   record list TTL s, `ARGV[4]` records kept per list, `ARGV[5]` = U, `ARGV[6]` = R, the
///   number of regions, `ARGV[7 .. 6+R]` the regions; then for each rollup key, in `KEYS`
///   order: its `EXPIREAT` unix seconds, F = its number of fields, then F (field, increment)
///   pairs; then for each record list: N, then N encoded records, oldest first.
///
/// Returns 1 when applied, 0 when `seq` is at or below the watermark (a resend). Key types are
/// checked before the first write, so a foreign value at one of our keys fails the endpoint's
/// whole script instead of leaving it half-applied.
const APPLY_SCRIPT: &str = r#"
local function seq_le(a, b)
  -- u64 values exceed Lua's exact number range (2^53): compare decimal strings instead.
  if #a ~= #b then return #a < #b end
  return a <= b
end
local seq = ARGV[1]
local mark = redis.call('GET', KEYS[1])
if mark and seq_le(seq, mark) then return 0 end
local rollups = tonumber(ARGV[5])
for k = 3, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  local want = 'hash'
  if k > 2 + rollups then want = 'list' end
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[k] .. ' holds a ' .. t)
  end
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[2])
local regions = tonumber(ARGV[6])
if regions > 0 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 7, 6 + regions))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local i = 7 + regions
for k = 3, 2 + rollups do
  local key = KEYS[k]
  local expire_at = ARGV[i]
  local fields = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, fields do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIREAT', key, expire_at)
end
for k = 3 + rollups, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  -- Chunked: unpack() of thousands of values would overflow Lua's C stack.
  for first = i, i + n - 1, 500 do
    redis.call('LPUSH', KEYS[k], unpack(ARGV, first, math.min(first + 499, i + n - 1)))
  end
  i = i + n
  redis.call('LTRIM', KEYS[k], 0, tonumber(ARGV[4]) - 1)
  redis.call('EXPIRE', KEYS[k], ARGV[3])
end
return 1
"#;

/// The per-subject figures script: like [`APPLY_SCRIPT`] for one subject (a region's mixer, a
/// node, a pod), whose keys all carry the subject's hash tag.
///
/// Layout:
/// - `KEYS[1]` the subject's watermark for (prober, epoch), then its figure hashes (minutes,
///   then hours).
/// - `ARGV[1]` batch seq (decimal u64), `ARGV[2]` watermark TTL s; then for each hash, in
///   `KEYS` order: its `EXPIREAT` unix seconds, S, S (field, increment) pairs for `HINCRBY`,
///   M, M (field, value) pairs that replace the stored value when above it (decimal i64,
///   compared exactly, negatives included).
///
/// Returns 1 when applied, 0 for a resend; a foreign value at a key fails it before any write.
const FIGURES_SCRIPT: &str = r#"
local function seq_le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
local function int_lt(a, b)
  -- canonical decimal i64 strings (as Redis and Rust write them), compared exactly
  if a == b then return false end
  local an, bn = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if an ~= bn then return an end
  if an then a = string.sub(a, 2); b = string.sub(b, 2) end
  local lt
  if #a ~= #b then lt = #a < #b else lt = a < b end
  if an then return not lt end
  return lt
end
local seq = ARGV[1]
local mark = redis.call('GET', KEYS[1])
if mark and seq_le(seq, mark) then return 0 end
for k = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= 'hash' then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[k] .. ' holds a ' .. t)
  end
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[2])
local i = 3
for k = 2, #KEYS do
  local key = KEYS[k]
  local expire_at = ARGV[i]
  local sums = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, sums do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local maxes = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, maxes do
    local current = redis.call('HGET', key, ARGV[i])
    if not current or int_lt(current, ARGV[i + 1]) then
      redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    end
    i = i + 2
  end
  redis.call('EXPIREAT', key, expire_at)
end
return 1
"#;

/// Largest number of regions one script call may name (Lua's `unpack` limit is far above).
const MAX_REGIONS_PER_SCRIPT: usize = 500;

/// How often a writer renews a check's membership (and the TTL) of [`keys::CHECKS`].
const CHECKS_INDEX_RENEW: Duration = Duration::from_secs(600);

/// Default number of decoded (series, hour) blocks the read cache keeps. One block is 60
/// minute rollups, a few tens of KiB with typical sketches, so the default stays under about
/// a hundred MiB while holding two days (a 24 h dashboard and its uptime lead) of 24 series.
pub const DEFAULT_READ_CACHE_HOURS: usize = 2_048;

/// Decoded minute rollups of one (series, hour), shared between the cache and readers.
type Minutes = Arc<Vec<(Minute, Rollup)>>;

/// The decoded minutes of one (series, hour), and the hourly `n` they were read at.
struct CachedHour {
    version: u64,
    minutes: Arc<Vec<(Minute, Rollup)>>,
    last_used: u64,
}

#[derive(Default)]
struct HourCache {
    entries: HashMap<(SeriesKey, Hour), CachedHour>,
    clock: u64,
}

impl HourCache {
    fn get(&mut self, key: &(SeriesKey, Hour), version: u64) -> Option<Arc<Vec<(Minute, Rollup)>>> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(key)?;
        if entry.version != version {
            return None;
        }
        entry.last_used = clock;
        Some(entry.minutes.clone())
    }

    fn put(&mut self, key: (SeriesKey, Hour), version: u64, minutes: Arc<Vec<(Minute, Rollup)>>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        self.clock += 1;
        if self.entries.len() >= capacity && !self.entries.contains_key(&key) {
            // Evict the least recently used quarter at once, so eviction is amortised.
            let mut stamps: Vec<u64> = self.entries.values().map(|e| e.last_used).collect();
            stamps.sort_unstable();
            let cut = stamps[(stamps.len() / 4).min(stamps.len() - 1)];
            self.entries.retain(|_, e| e.last_used > cut);
        }
        self.entries.insert(key, CachedHour { version, minutes, last_used: self.clock });
    }
}

pub struct RedisStore {
    pub(crate) connection: ConnectionManager,
    apply_script: redis::Script,
    response_timeout: Duration,
    pub(crate) shown_url: String,
    cache: Mutex<HourCache>,
    cache_capacity: usize,
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
            cache: Mutex::new(HourCache::default()),
            cache_capacity: config.read_cache_hours,
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
    let mut fields = Vec::with_capacity(8 + rollup.failures.len() + rollup.latency.buckets().size_hint().0);
    fields.push((field::TOTAL.to_string(), to_i64(rollup.total, "total")?));
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
    for phase in Phase::ALL {
        push(field::phase_sum(phase), rollup.phases.sum_us[phase as usize])?;
        push(field::phase_count(phase), rollup.phases.count[phase as usize])?;
    }
    push(field::ZERO_BUCKET.to_string(), rollup.latency.zero_count())?;
    for (index, n) in rollup.latency.buckets() {
        push(field::bucket(index), n)?;
    }
    Ok(fields)
}

/// One endpoint's share of a batch: its minute rollups, and the hourly rollups they add up to.
struct EndpointDelta<'a> {
    check: &'a CheckId,
    minutes: Vec<(&'a SeriesKey, Minute, &'a Rollup)>,
    records: Vec<(&'a SeriesKey, &'a [RawRecord])>,
}

/// Splits a delta by endpoint; the delta is sorted by series, so by check first.
fn by_endpoint(delta: &RollupDelta) -> Vec<EndpointDelta<'_>> {
    let mut out: Vec<EndpointDelta<'_>> = Vec::new();
    for ((series, minute), rollup) in &delta.rollups {
        match out.last_mut() {
            Some(last) if last.check == &series.check => last.minutes.push((series, *minute, rollup)),
            _ => out.push(EndpointDelta {
                check: &series.check,
                minutes: vec![(series, *minute, rollup)],
                records: Vec::new(),
            }),
        }
    }
    for (series, records) in delta.records.iter().filter(|(_, r)| !r.is_empty()) {
        match out.iter_mut().find(|part| part.check == &series.check) {
            Some(part) => part.records.push((series, records)),
            None => {
                out.push(EndpointDelta { check: &series.check, minutes: Vec::new(), records: vec![(series, records)] })
            }
        }
    }
    out
}

/// The `EVALSHA` applying one endpoint's share of a batch.
fn endpoint_command(sha: &str, batch: &BatchId, part: &EndpointDelta<'_>) -> Result<redis::Cmd, StoreError> {
    let mut hours: BTreeMap<(&SeriesKey, Hour), Rollup> = BTreeMap::new();
    for (series, minute, rollup) in &part.minutes {
        hours.entry((*series, minute.hour())).or_default().merge(rollup);
    }
    // The all-regions series is stored like a region, but it is not one: not in the set.
    let mut regions: Vec<&str> =
        part.minutes.iter().filter(|(s, _, _)| !s.is_all_regions()).map(|(s, _, _)| s.region.as_str()).collect();
    regions.extend(part.records.iter().filter(|(s, _)| !s.is_all_regions()).map(|(s, _)| s.region.as_str()));
    regions.sort_unstable();
    regions.dedup();
    if regions.len() > MAX_REGIONS_PER_SCRIPT {
        return Err(StoreError::Invalid(format!(
            "a batch naming {} regions for check {} exceeds {MAX_REGIONS_PER_SCRIPT}",
            regions.len(),
            part.check
        )));
    }
    let mut keys = Vec::with_capacity(2 + part.minutes.len() + hours.len() + part.records.len());
    keys.push(keys::watermark(part.check, &batch.prober, batch.epoch));
    keys.push(keys::regions(part.check));
    let mut args: Vec<Vec<u8>> = vec![
        batch.seq.to_string().into_bytes(),
        keys::WATERMARK_TTL_SECONDS.to_string().into_bytes(),
        keys::SERIES_INDEX_TTL_SECONDS.to_string().into_bytes(),
        RECORDS_KEPT.to_string().into_bytes(),
        (part.minutes.len() + hours.len()).to_string().into_bytes(),
        regions.len().to_string().into_bytes(),
    ];
    args.extend(regions.iter().map(|r| r.as_bytes().to_vec()));
    let mut push_rollup = |key: String, expire_at: i64, rollup: &Rollup| -> Result<(), StoreError> {
        keys.push(key);
        let fields = rollup_fields(rollup)?;
        args.push(expire_at.to_string().into_bytes());
        args.push(fields.len().to_string().into_bytes());
        for (name, increment) in fields {
            args.push(name.into_bytes());
            args.push(increment.to_string().into_bytes());
        }
        Ok(())
    };
    for (series, minute, rollup) in &part.minutes {
        push_rollup(keys::rollup(series, *minute), keys::rollup_expire_at(*minute), rollup)?;
    }
    for ((series, hour), rollup) in &hours {
        push_rollup(keys::rollup_hour(series, *hour), keys::rollup_hour_expire_at(*hour), rollup)?;
    }
    for (series, records) in &part.records {
        keys.push(keys::records(series));
        // Only the newest ones can survive the trim: send no more than are kept.
        let newest = &records[records.len().saturating_sub(RECORDS_KEPT)..];
        args.push(newest.len().to_string().into_bytes());
        args.extend(newest.iter().map(|r| r.encode().into_bytes()));
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len()).arg(&keys);
    for arg in &args {
        cmd.arg(arg.as_slice());
    }
    Ok(cmd)
}

/// One subject's share of a batch: its minute figures.
struct SubjectDelta<'a> {
    subject: &'a Subject,
    minutes: Vec<(Minute, &'a Fields)>,
}

/// Splits a delta's figures by subject (the map is sorted by subject first); empty Fields are
/// left out, as they store nothing.
fn by_subject(delta: &RollupDelta) -> Vec<SubjectDelta<'_>> {
    let mut out: Vec<SubjectDelta<'_>> = Vec::new();
    for ((subject, minute), fields) in delta.figures.iter().filter(|(_, f)| !f.is_empty()) {
        match out.last_mut() {
            Some(last) if last.subject == subject => last.minutes.push((*minute, fields)),
            _ => out.push(SubjectDelta { subject, minutes: vec![(*minute, fields)] }),
        }
    }
    out
}

/// The `EVALSHA` applying one subject's share of a batch, hourly sums pre-merged.
fn subject_command(sha: &str, batch: &BatchId, part: &SubjectDelta<'_>) -> redis::Cmd {
    let mut hours: BTreeMap<Hour, Fields> = BTreeMap::new();
    for (minute, fields) in &part.minutes {
        hours.entry(minute.hour()).or_default().merge(fields);
    }
    let mut keys = Vec::with_capacity(1 + part.minutes.len() + hours.len());
    keys.push(keys::figures_watermark(part.subject, &batch.prober, batch.epoch));
    let mut args: Vec<Vec<u8>> =
        vec![batch.seq.to_string().into_bytes(), keys::WATERMARK_TTL_SECONDS.to_string().into_bytes()];
    let mut push_fields = |key: String, expire_at: i64, fields: &Fields| {
        keys.push(key);
        args.push(expire_at.to_string().into_bytes());
        args.push(fields.sums.len().to_string().into_bytes());
        for (name, increment) in &fields.sums {
            args.push(name.as_bytes().to_vec());
            args.push(increment.to_string().into_bytes());
        }
        args.push(fields.maxes.len().to_string().into_bytes());
        for (name, value) in &fields.maxes {
            args.push(figure_field::max(name).into_bytes());
            args.push(value.to_string().into_bytes());
        }
    };
    for (minute, fields) in &part.minutes {
        push_fields(keys::figures(part.subject, *minute), keys::rollup_expire_at(*minute), fields);
    }
    for (hour, fields) in &hours {
        push_fields(keys::figures_hour(part.subject, *hour), keys::rollup_hour_expire_at(*hour), fields);
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len()).arg(&keys);
    for arg in &args {
        cmd.arg(arg.as_slice());
    }
    cmd
}

/// Rebuilds a subject's Fields from its hash; `None` for an empty (missing) hash.
fn decode_fields(key: &str, pairs: HashPairs) -> Result<Option<Fields>, StoreError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut fields = Fields::default();
    for (stored, value) in pairs {
        let stored = String::from_utf8_lossy(&stored);
        let (name, is_max) = figure_field::parse(&stored);
        let value = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
            StoreError::Corrupt {
                key: key.to_string(),
                reason: format!("field {stored} holds {:?}, not an integer", String::from_utf8_lossy(&value)),
            }
        })?;
        if is_max {
            fields.maxes.insert(name.to_string(), value);
        } else {
            fields.sums.insert(name.to_string(), value);
        }
    }
    Ok(Some(fields))
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
            Field::PhaseSum(phase) => rollup.phases.sum_us[phase as usize] = count,
            Field::PhaseCount(phase) => rollup.phases.count[phase as usize] = count,
        }
    }
    Ok(Some(rollup))
}

impl RedisStore {
    fn cache(&self) -> MutexGuard<'_, HourCache> {
        // The cache holds only immutable decoded copies; a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks to (re)announce in [`keys::CHECKS`] with this batch.
    fn checks_to_announce(&self, parts: &[EndpointDelta<'_>]) -> Vec<CheckId> {
        let written = self.checks_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        parts
            .iter()
            .filter(|p| written.get(p.check).is_none_or(|at| at.elapsed() > CHECKS_INDEX_RENEW))
            .map(|p| p.check.clone())
            .collect()
    }

    /// Subjects to (re)announce in [`keys::SUBJECTS`] with this batch.
    fn subjects_to_announce(&self, parts: &[SubjectDelta<'_>]) -> Vec<Subject> {
        let written = self.subjects_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        parts
            .iter()
            .filter(|p| written.get(p.subject).is_none_or(|at| at.elapsed() > CHECKS_INDEX_RENEW))
            .map(|p| p.subject.clone())
            .collect()
    }

    /// Sends a pipeline, returning one reply per command; a server error in one command is
    /// its reply (`Value::ServerError`), not a failure of the whole call.
    async fn pipeline(&self, what: &str, pipe: &redis::Pipeline, count: usize) -> Result<Vec<Value>, StoreError> {
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

    async fn load_script(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        for script in [APPLY_SCRIPT, FIGURES_SCRIPT] {
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.map_error("script load", None, &e))?;
        }
        Ok(())
    }

    /// `None` when Redis did not know the script (after a restart): the caller loads it and
    /// applies again; endpoints whose script ran are then recognised by their watermark.
    async fn apply_parts(
        &self,
        batch: &BatchId,
        parts: &[EndpointDelta<'_>],
        subject_parts: &[SubjectDelta<'_>],
    ) -> Result<Option<ApplyOutcome>, StoreError> {
        let announce = self.checks_to_announce(parts);
        let announce_subjects = self.subjects_to_announce(subject_parts);
        let sha = self.apply_script.get_hash();
        let figures_sha = self.figures_script.get_hash();
        let mut pipe = redis::pipe();
        let mut count = 0;
        if !announce.is_empty() {
            // Idempotent and outside the exactly-once path: a check listed a little early is
            // harmless, and it is written before its data.
            pipe.cmd("SADD").arg(keys::CHECKS).arg(announce.iter().map(|c| c.as_str()).collect::<Vec<_>>());
            pipe.cmd("EXPIRE").arg(keys::CHECKS).arg(keys::SERIES_INDEX_TTL_SECONDS);
            count += 2;
        }
        if !announce_subjects.is_empty() {
            // As for checks: idempotent, before the data, outside the exactly-once path.
            pipe.cmd("SADD")
                .arg(keys::SUBJECTS)
                .arg(announce_subjects.iter().map(keys::subject_member).collect::<Vec<_>>());
            pipe.cmd("EXPIRE").arg(keys::SUBJECTS).arg(keys::SERIES_INDEX_TTL_SECONDS);
            count += 2;
        }
        let first_script = count;
        // What each script reply is about, for an error naming its watermark.
        let mut watermarks = Vec::with_capacity(parts.len() + subject_parts.len());
        for part in parts {
            pipe.add_command(endpoint_command(sha, batch, part)?);
            watermarks.push(keys::watermark(part.check, &batch.prober, batch.epoch));
            count += 1;
        }
        for part in subject_parts {
            pipe.add_command(subject_command(figures_sha, batch, part));
            watermarks.push(keys::figures_watermark(part.subject, &batch.prober, batch.epoch));
            count += 1;
        }
        let replies = self.pipeline("apply_batch", &pipe, count).await?;
        let mut applied = false;
        let mut no_script = false;
        let mut first_error = None;
        for (i, reply) in replies.into_iter().enumerate() {
            match reply {
                Value::ServerError(e) => {
                    let e = RedisError::from(e);
                    if e.kind() == ErrorKind::NoScriptError {
                        no_script = true;
                    } else if first_error.is_none() {
                        first_error = Some(self.map_error("apply_batch", None, &e));
                    }
                }
                Value::Int(1) if i >= first_script => applied = true,
                Value::Int(0) if i >= first_script => {}
                other if i >= first_script => {
                    return Err(StoreError::Corrupt {
                        key: watermarks.get(i - first_script).cloned().unwrap_or_default(),
                        reason: format!("apply script returned {other:?}"),
                    })
                }
                _ => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if no_script {
            return Ok(None);
        }
        if !announce.is_empty() {
            let mut written = self.checks_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            for check in announce {
                written.insert(check, now);
            }
        }
        if !announce_subjects.is_empty() {
            let mut written = self.subjects_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            for subject in announce_subjects {
                written.insert(subject, now);
            }
        }
        Ok(Some(if applied { ApplyOutcome::Applied } else { ApplyOutcome::Duplicate }))
    }

    /// Reads and decodes the minute hashes of `(series, hour)` blocks, one pipeline per slice.
    async fn read_minute_blocks(&self, blocks: &[(SeriesKey, Hour)]) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        let wanted: Vec<(usize, Minute, String)> = blocks
            .iter()
            .enumerate()
            .flat_map(|(i, (s, h))| {
                (h.first_minute().0..h.end_minute().0).map(move |m| (i, Minute(m), keys::rollup(s, Minute(m))))
            })
            .collect();
        let mut out = vec![Vec::new(); blocks.len()];
        for slice in wanted.chunks(READ_PIPELINE_KEYS) {
            let mut pipe = redis::pipe();
            for (_, _, key) in slice {
                pipe.cmd("HGETALL").arg(key);
            }
            let replies = self.pipeline("read_rollups", &pipe, slice.len()).await?;
            for ((index, minute, key), reply) in slice.iter().zip(replies) {
                if let Value::ServerError(e) = reply {
                    let e = RedisError::from(e);
                    return Err(self.map_error("read_rollups", Some(key), &e));
                }
                let pairs = hash_pairs(reply).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason })?;
                if let Some(rollup) = decode_rollup(key, pairs)? {
                    out[*index].push((*minute, rollup));
                }
            }
        }
        Ok(out)
    }

    /// Reads figure hashes, `(subject index, period, key)` in ascending period per subject, in
    /// pipelined slices; missing hashes are absent from the answer.
    async fn read_field_hashes<P: Copy>(
        &self,
        what: &str,
        subjects: usize,
        wanted: Vec<(usize, P, String)>,
    ) -> Result<Vec<Vec<(P, Fields)>>, StoreError> {
        let mut out = vec![Vec::new(); subjects];
        for slice in wanted.chunks(READ_PIPELINE_KEYS) {
            let mut pipe = redis::pipe();
            for (_, _, key) in slice {
                pipe.cmd("HGETALL").arg(key);
            }
            let replies = self.pipeline(what, &pipe, slice.len()).await?;
            for ((index, period, key), reply) in slice.iter().zip(replies) {
                if let Value::ServerError(e) = reply {
                    let e = RedisError::from(e);
                    return Err(self.map_error(what, Some(key), &e));
                }
                let pairs = hash_pairs(reply).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason })?;
                if let Some(fields) = decode_fields(key, pairs)? {
                    out[*index].push((*period, fields));
                }
            }
        }
        Ok(out)
    }

    /// The `n` of each hourly rollup (0 when absent): the version of its minutes.
    async fn hour_versions(&self, blocks: &[(SeriesKey, Hour)]) -> Result<Vec<u64>, StoreError> {
        let mut versions = Vec::with_capacity(blocks.len());
        for slice in blocks.chunks(READ_PIPELINE_KEYS) {
            let mut pipe = redis::pipe();
            for (series, hour) in slice {
                pipe.cmd("HGET").arg(keys::rollup_hour(series, *hour)).arg(field::TOTAL);
            }
            let replies = self.pipeline("read_rollups", &pipe, slice.len()).await?;
            for ((series, hour), reply) in slice.iter().zip(replies) {
                let key = keys::rollup_hour(series, *hour);
                let version = match reply {
                    Value::Nil => 0,
                    Value::BulkString(b) => {
                        std::str::from_utf8(&b).ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                            StoreError::Corrupt { key: key.clone(), reason: "n is not a non-negative integer".into() }
                        })?
                    }
                    Value::ServerError(e) => {
                        let e = RedisError::from(e);
                        return Err(self.map_error("read_rollups", Some(&key), &e));
                    }
                    other => return Err(StoreError::Corrupt { key, reason: format!("unexpected reply {other:?}") }),
                };
                versions.push(version);
            }
        }
        Ok(versions)
    }

    /// The decoded minutes of each block: from the cache when its version is unchanged, else
    /// read (and cached). Hours without an hourly rollup are read but never cached.
    async fn minute_blocks(&self, blocks: &[(SeriesKey, Hour)]) -> Result<Vec<Minutes>, StoreError> {
        // Versions first, then minutes: data read after its version can only be newer, which
        // costs a re-read next time, never a stale answer.
        let versions = if self.cache_capacity > 0 { self.hour_versions(blocks).await? } else { vec![0; blocks.len()] };
        let mut out: Vec<Option<Minutes>> = Vec::with_capacity(blocks.len());
        let mut missing = Vec::new();
        {
            let mut cache = self.cache();
            for (i, (block, version)) in blocks.iter().zip(&versions).enumerate() {
                let hit = if *version > 0 { cache.get(block, *version) } else { None };
                if hit.is_none() {
                    missing.push(i);
                }
                out.push(hit);
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<(SeriesKey, Hour)> = missing.iter().map(|i| blocks[*i].clone()).collect();
            let read = self.read_minute_blocks(&wanted).await?;
            let mut cache = self.cache();
            for ((i, block), minutes) in missing.iter().zip(wanted).zip(read) {
                let minutes = Arc::new(minutes);
                if versions[*i] > 0 {
                    cache.put(block, versions[*i], minutes.clone(), self.cache_capacity);
                }
                out[*i] = Some(minutes);
            }
        }
        Ok(out.into_iter().map(|b| b.unwrap_or_default()).collect())
    }
}

/// Refuses reads beyond the limits: `span` periods of `unit_minutes` each, over `series` series.
fn check_read(series: usize, span: i64, unit_minutes: i64) -> Result<(), StoreError> {
    let minutes = span.saturating_mul(unit_minutes);
    if minutes > MAX_READ_MINUTES {
        return Err(StoreError::Invalid(format!(
            "read of {minutes} minutes is longer than the limit of {MAX_READ_MINUTES} (31 days)"
        )));
    }
    let key_count = usize::try_from(span).unwrap_or(usize::MAX).saturating_mul(series);
    if key_count > MAX_READ_KEYS {
        return Err(StoreError::Invalid(format!(
            "read of {series} series x {span} periods = {key_count} rollups exceeds the limit of {MAX_READ_KEYS}"
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for RedisStore {
    async fn apply_batch(&self, batch: &BatchId, delta: &RollupDelta) -> Result<ApplyOutcome, StoreError> {
        let parts = by_endpoint(delta);
        let subject_parts = by_subject(delta);
        if parts.is_empty() && subject_parts.is_empty() {
            // Nothing to store (every result refused): nothing to make exactly-once either.
            return Ok(ApplyOutcome::Applied);
        }
        self.bounded("apply_batch", async {
            if let Some(outcome) = self.apply_parts(batch, &parts, &subject_parts).await? {
                return Ok(outcome);
            }
            self.load_script().await?;
            self.apply_parts(batch, &parts, &subject_parts).await?.ok_or_else(|| {
                StoreError::Unavailable(format!("redis at {} keeps losing the apply script", self.shown_url))
            })
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
        check_read(series.len(), to.0 - from.0, 1)?;
        let hours: Vec<Hour> = (Hour::floor(from).0..Hour::ceil(to).0).map(Hour).collect();
        let blocks: Vec<(SeriesKey, Hour)> =
            series.iter().flat_map(|s| hours.iter().map(move |h| (s.clone(), *h))).collect();
        let read = self.bounded("read_rollups", self.minute_blocks(&blocks)).await?;
        let mut result = vec![Vec::new(); series.len()];
        for ((i, _), minutes) in (0..series.len()).flat_map(|i| hours.iter().map(move |h| (i, h))).zip(read) {
            result[i].extend(minutes.iter().filter(|(m, _)| *m >= from && *m < to).cloned());
        }
        Ok(result)
    }

    async fn read_rollup_blocks(
        &self,
        series: &[SeriesKey],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<RollupBlock>>, StoreError> {
        if from >= to {
            return Ok(vec![Vec::new(); series.len()]);
        }
        check_read(series.len(), to.0 - from.0, 1)?;
        let hours: Vec<Hour> = (Hour::floor(from).0..Hour::ceil(to).0).map(Hour).collect();
        let blocks: Vec<(SeriesKey, Hour)> =
            series.iter().flat_map(|s| hours.iter().map(move |h| (s.clone(), *h))).collect();
        let mut read = self.bounded("read_rollups", self.minute_blocks(&blocks)).await?.into_iter();
        Ok(series
            .iter()
            .map(|_| {
                hours
                    .iter()
                    .zip(read.by_ref())
                    .map(|(h, minutes)| RollupBlock { from: h.first_minute(), to: h.end_minute(), minutes })
                    .collect()
            })
            .collect())
    }

    async fn read_hourly(
        &self,
        series: &[SeriesKey],
        from: Hour,
        to: Hour,
    ) -> Result<Vec<Vec<(Hour, Rollup)>>, StoreError> {
        if from >= to {
            return Ok(vec![Vec::new(); series.len()]);
        }
        check_read(series.len(), to.0 - from.0, 60)?;
        let wanted: Vec<(usize, Hour, String)> = series
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (from.0..to.0).map(move |h| (i, Hour(h), keys::rollup_hour(s, Hour(h)))))
            .collect();
        let mut result = vec![Vec::new(); series.len()];
        self.bounded("read_hourly", async {
            for slice in wanted.chunks(READ_PIPELINE_KEYS) {
                let mut pipe = redis::pipe();
                for (_, _, key) in slice {
                    pipe.cmd("HGETALL").arg(key);
                }
                let replies = self.pipeline("read_hourly", &pipe, slice.len()).await?;
                for ((index, hour, key), reply) in slice.iter().zip(replies) {
                    if let Value::ServerError(e) = reply {
                        let e = RedisError::from(e);
                        return Err(self.map_error("read_hourly", Some(key), &e));
                    }
                    let pairs = hash_pairs(reply).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason })?;
                    if let Some(rollup) = decode_rollup(key, pairs)? {
                        result[*index].push((*hour, rollup));
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(result)
    }

    async fn read_records(&self, series: &SeriesKey, limit: usize) -> Result<Vec<RawRecord>, StoreError> {
        let limit = limit.min(RECORDS_KEPT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = keys::records(series);
        let mut connection = self.connection.clone();
        let texts: Vec<Vec<u8>> = self
            .bounded("read_records", async {
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(limit - 1)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.map_error("read_records", Some(&key), &e))
            })
            .await?;
        texts
            .iter()
            .map(|text| {
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| RawRecord::decode(t).ok())
                    .ok_or_else(|| StoreError::Corrupt { key: key.clone(), reason: "unreadable raw record".into() })
            })
            .collect()
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        let mut connection = self.connection.clone();
        let checks: Vec<Vec<u8>> = self
            .bounded("list_series", async {
                redis::cmd("SMEMBERS")
                    .arg(keys::CHECKS)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.map_error("list_series", Some(keys::CHECKS), &e))
            })
            .await?;
        let checks: Vec<CheckId> = checks
            .iter()
            .filter_map(|member| match CheckId::new(String::from_utf8_lossy(member).into_owned()) {
                Ok(check) => Some(check),
                Err(e) => {
                    tracing::warn!(key = keys::CHECKS, error = %e, "skipping unreadable check id");
                    None
                }
            })
            .collect();
        let mut pipe = redis::pipe();
        for check in &checks {
            pipe.cmd("SMEMBERS").arg(keys::regions(check));
        }
        let replies = self.bounded("list_series", self.pipeline("list_series", &pipe, checks.len())).await?;
        let mut series = Vec::new();
        for (check, reply) in checks.iter().zip(replies) {
            let members: Vec<Vec<u8>> = match redis::from_redis_value(&reply) {
                Ok(members) => members,
                Err(e) => {
                    tracing::warn!(key = keys::regions(check), error = %e, "skipping unreadable region set");
                    continue;
                }
            };
            for member in members {
                match Region::new(String::from_utf8_lossy(&member).into_owned()) {
                    Ok(region) if region.is_all() => {}
                    Ok(region) => series.push(SeriesKey { check: check.clone(), region }),
                    Err(e) => tracing::warn!(key = keys::regions(check), error = %e, "skipping unreadable region"),
                }
            }
        }
        series.sort();
        series.dedup();
        Ok(series)
    }

    async fn read_figures(
        &self,
        subjects: &[Subject],
        from: Minute,
        to: Minute,
    ) -> Result<Vec<Vec<(Minute, Fields)>>, StoreError> {
        if from >= to {
            return Ok(vec![Vec::new(); subjects.len()]);
        }
        check_read(subjects.len(), to.0 - from.0, 1)?;
        let wanted: Vec<(usize, Minute, String)> = subjects
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (from.0..to.0).map(move |m| (i, Minute(m), keys::figures(s, Minute(m)))))
            .collect();
        self.bounded("read_figures", self.read_field_hashes("read_figures", subjects.len(), wanted)).await
    }

    async fn read_figures_hourly(
        &self,
        subjects: &[Subject],
        from: Hour,
        to: Hour,
    ) -> Result<Vec<Vec<(Hour, Fields)>>, StoreError> {
        if from >= to {
            return Ok(vec![Vec::new(); subjects.len()]);
        }
        check_read(subjects.len(), to.0 - from.0, 60)?;
        let wanted: Vec<(usize, Hour, String)> = subjects
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (from.0..to.0).map(move |h| (i, Hour(h), keys::figures_hour(s, Hour(h)))))
            .collect();
        self.bounded("read_figures_hourly", self.read_field_hashes("read_figures_hourly", subjects.len(), wanted)).await
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>, StoreError> {
        let mut connection = self.connection.clone();
        let members: Vec<Vec<u8>> = self
            .bounded("list_subjects", async {
                redis::cmd("SMEMBERS")
                    .arg(keys::SUBJECTS)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.map_error("list_subjects", Some(keys::SUBJECTS), &e))
            })
            .await?;
        let mut subjects: Vec<Subject> = members
            .iter()
            .filter_map(|member| {
                let text = String::from_utf8_lossy(member);
                let subject = keys::parse_subject_member(&text);
                if subject.is_none() {
                    tracing::warn!(key = keys::SUBJECTS, member = %text, "skipping unreadable subject");
                }
                subject
            })
            .collect();
        subjects.sort();
        subjects.dedup();
        Ok(subjects)
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
    fn script_commands_build_for_extreme_seqs_and_split_by_endpoint() {
        let series = |c: &str, r: &str| SeriesKey { check: CheckId::new(c).unwrap(), region: Region::new(r).unwrap() };
        let mut delta = RollupDelta::default();
        for (c, r, m) in [("api", "eu", 10), ("api", "us", 10), ("api", "eu", 70), ("web", "eu", 10)] {
            let rollup = delta.rollups.entry((series(c, r), Minute(m))).or_default();
            rollup.total = 2;
            rollup.successes = 2;
        }
        let parts = by_endpoint(&delta);
        assert_eq!(
            parts.iter().map(|p| (p.check.as_str(), p.minutes.len())).collect::<Vec<_>>(),
            [("api", 3), ("web", 1)]
        );
        let batch = BatchId { prober: mixmon_model::ProberId::new("p").unwrap(), epoch: 3, seq: u64::MAX };
        // Only checks that building succeeds for extreme values; the layout itself is exercised
        // against a real Redis in tests/conformance.rs.
        let cmd = endpoint_command("sha", &batch, &parts[0]).unwrap();
        let packed = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
        // 2 + 3 minute keys + 3 hour keys (eu:0, us:0, eu:1), all with the endpoint's hash tag.
        assert!(packed.contains("\r\n8\r\n"), "{packed}");
        assert_eq!(packed.matches("{api}").count(), 8, "{packed}");
        assert!(!packed.contains("{web}"));
    }

    #[test]
    fn counts_beyond_redis_integers_are_refused() {
        let rollup = Rollup { total: u64::MAX, ..Default::default() };
        assert!(matches!(rollup_fields(&rollup), Err(StoreError::Invalid(_))));
    }
}
