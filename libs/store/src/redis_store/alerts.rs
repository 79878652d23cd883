//! [`AlertStore`] for [`RedisStore`], under the keys the schema reserves (`mixmon:v1:alerts:*`).
//! The lease, the instances and the transitions stream share one hash tag (`{alerts}`), so
//! that the commit script (check the fencing token, upsert, remove, append) is one atomic
//! step on one slot, also on a cluster. Latest observations and day counts are per check.
//! Values are JSON: small, versioned by the key prefix, readable with `redis-cli`.

use async_trait::async_trait;
use mixmon_model::alert::silence::{MAX_SILENCES, SILENCE_RETENTION_MS};
use mixmon_model::alert::{AlertInstance, AlertTransition, Fingerprint, LatestObservation, Silence};
use mixmon_model::CheckId;
use tokio::sync::broadcast;

use crate::alerts::{AlertStore, CommitOutcome, Lease, ProbeRequest, ProberSeen, StreamEntry, HISTORY_RETENTION_MS};
use crate::{RedisStore, StoreError};

pub(crate) const LEASE: &str = "mixmon:v1:alerts:{alerts}:lease";
const LEASE_TOKEN: &str = "mixmon:v1:alerts:{alerts}:lease_token";
const INSTANCES: &str = "mixmon:v1:alerts:{alerts}:instances";
const TRANSITIONS: &str = "mixmon:v1:alerts:{alerts}:transitions";
const PROBERS: &str = "mixmon:v1:alerts:{alerts}:probers";
const PROBE_REQUESTS: &str = "mixmon:v1:alerts:probe_requests";
const SILENCES: &str = "mixmon:v1:alerts:{alerts}:silences";

/// Creates or replaces a silence unless that would keep more than ARGV[3].
const PUT_SILENCE: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";
/// Latest observations outlive a check that is no longer probed by a day, then go.
const LATEST_TTL_MS: i64 = 24 * 3_600_000;
/// Transitions read per page when filtering the history by time.
const HISTORY_PAGE: usize = 1_000;

fn latest_key(check: &CheckId) -> String {
    format!("mixmon:v1:alerts:latest:{{{check}}}")
}

/// Keeps the newer observation of a prober (by `started_ms`).
const WRITE_LATEST: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and tonumber(decoded['started_ms']) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Keeps a prober's first sighting and its latest.
const RECORD_PROBER: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = cjson.decode(ARGV[2])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok then
    new['first_seen_ms'] = math.min(tonumber(decoded['first_seen_ms']), tonumber(new['first_seen_ms']))
    new['last_seen_ms'] = math.max(tonumber(decoded['last_seen_ms']), tonumber(new['last_seen_ms']))
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(new))
return 1
";

/// ARGV: holder, ttl_ms, now_ms. Returns {token, expires_at} or false when held by another.
const ACQUIRE: &str = r"
local now = tonumber(ARGV[3])
local expires = now + tonumber(ARGV[2])
local holder = redis.call('HGET', KEYS[1], 'holder')
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if holder and until_ms > now then
  if holder ~= ARGV[1] then return false end
  redis.call('HSET', KEYS[1], 'expires', expires)
  return {tonumber(redis.call('HGET', KEYS[1], 'token')), expires}
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expires', expires)
return {token, expires}
";

/// ARGV: token, ttl_ms, now_ms. 1 when renewed.
const RENEW: &str = r"
local now = tonumber(ARGV[3])
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'expires') or '0') > now then
  redis.call('HSET', KEYS[1], 'expires', now + tonumber(ARGV[2]))
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// KEYS: lease, instances, transitions. ARGV: token, now_ms, horizon_ms, n_changed,
/// n_removed, then n_changed (fingerprint, json) pairs, n_removed fingerprints, and the
/// transitions' json. Ids are `<ms>-<seq>`, never behind the last one.
const COMMIT: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local now = tonumber(ARGV[2])
local changed = tonumber(ARGV[4])
local removed = tonumber(ARGV[5])
local i = 6
for _ = 1, changed do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, removed do
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local ms, seq = now, 0
if #last > 0 then
  local dash = string.find(last[1][1], '-')
  local last_ms = tonumber(string.sub(last[1][1], 1, dash - 1))
  local last_seq = tonumber(string.sub(last[1][1], dash + 1))
  if last_ms >= now then ms, seq = last_ms, last_seq + 1 end
end
while i <= #ARGV do
  redis.call('XADD', KEYS[3], ms .. '-' .. seq, 't', ARGV[i])
  seq = seq + 1
  i = i + 1
end
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])
return 1
";

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot encode alert state: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(text).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

/// Every readable value of a hash; one that is not (written by hand, or by a future version)
/// is skipped with a warning, so one bad entry cannot stop alerting for everything else.
pub(crate) fn decode_all<T: serde::de::DeserializeOwned>(key: &str, values: &[Vec<u8>]) -> Vec<T> {
    values
        .iter()
        .filter_map(|v| match decode(key, v) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(%key, error = %err, "skipping an unreadable alerting entry");
                None
            }
        })
        .collect()
}

fn valid_position(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

type StreamReply = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn stream_entries(reply: StreamReply) -> Result<Vec<StreamEntry>, StoreError> {
    Ok(reply
        .into_iter()
        .filter_map(|(id, fields)| {
            let body = fields.into_iter().find(|(name, _)| name == "t").map(|(_, v)| v).unwrap_or_default();
            match decode(TRANSITIONS, &body) {
                Ok(transition) => Some(StreamEntry { id, transition }),
                Err(err) => {
                    tracing::warn!(%id, error = %err, "skipping an unreadable alert transition");
                    None
                }
            }
        })
        .collect())
}

impl RedisStore {
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        key: &str,
        cmd: redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.clone();
        self.bounded(what, async {
            cmd.query_async(&mut connection).await.map_err(|e| self.map_error(what, Some(key), &e))
        })
        .await
    }

    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &str,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<T, StoreError> {
        let script = redis::Script::new(script);
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        let key = keys.first().copied().unwrap_or(what);
        self.bounded(what, async {
            invocation.invoke_async(&mut connection).await.map_err(|e| self.map_error(what, Some(key), &e))
        })
        .await
    }
}

pub(crate) fn arg(value: impl ToString) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[async_trait]
impl AlertStore for RedisStore {
    async fn read_latest(&self, checks: &[CheckId]) -> Result<Vec<Vec<LatestObservation>>, StoreError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for check in checks {
            pipe.hvals(latest_key(check));
        }
        let mut connection = self.connection.clone();
        let replies: Vec<Vec<Vec<u8>>> = self
            .bounded("read latest observations", async {
                pipe.query_async(&mut connection)
                    .await
                    .map_err(|e| self.map_error("read latest observations", None, &e))
            })
            .await?;
        checks.iter().zip(replies).map(|(check, values)| Ok(decode_all(&latest_key(check), &values))).collect()
    }

    async fn write_latest(&self, updates: &[(CheckId, LatestObservation)]) -> Result<(), StoreError> {
        for (check, observation) in updates {
            let key = latest_key(check);
            let args = vec![
                arg(&observation.prober),
                arg(observation.started_ms),
                encode(observation)?.into_bytes(),
                arg(LATEST_TTL_MS),
            ];
            let _: i64 = self.script("write latest observation", WRITE_LATEST, &[&key], args).await?;
        }
        Ok(())
    }

    async fn record_probers(&self, seen: &[ProberSeen]) -> Result<(), StoreError> {
        for prober in seen {
            let args = vec![arg(&prober.prober), encode(prober)?.into_bytes()];
            let _: i64 = self.script("record prober", RECORD_PROBER, &[PROBERS], args).await?;
        }
        Ok(())
    }

    async fn read_probers(&self) -> Result<Vec<ProberSeen>, StoreError> {
        let values: Vec<Vec<u8>> = self.run("read probers", PROBERS, redis::cmd("HVALS").arg(PROBERS).clone()).await?;
        let mut probers: Vec<ProberSeen> = decode_all(PROBERS, &values);
        probers.sort_by(|a, b| a.prober.cmp(&b.prober));
        Ok(probers)
    }

    async fn acquire_lease(&self, holder: &str, ttl_ms: u64, now_ms: i64) -> Result<Option<Lease>, StoreError> {
        let reply: Option<(u64, i64)> = self
            .script("acquire lease", ACQUIRE, &[LEASE, LEASE_TOKEN], vec![arg(holder), arg(ttl_ms), arg(now_ms)])
            .await?;
        Ok(reply.map(|(token, expires_at_ms)| Lease { holder: holder.to_string(), token, expires_at_ms }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl_ms: u64, now_ms: i64) -> Result<bool, StoreError> {
        let renewed: i64 =
            self.script("renew lease", RENEW, &[LEASE], vec![arg(lease.token), arg(ttl_ms), arg(now_ms)]).await?;
        Ok(renewed == 1)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = self.script("release lease", RELEASE, &[LEASE], vec![arg(lease.token)]).await?;
        Ok(())
    }

    async fn load_alerts(&self) -> Result<Vec<AlertInstance>, StoreError> {
        let values: Vec<Vec<u8>> =
            self.run("load alerts", INSTANCES, redis::cmd("HVALS").arg(INSTANCES).clone()).await?;
        let mut alerts: Vec<AlertInstance> = decode_all(INSTANCES, &values);
        alerts.sort_by_key(AlertInstance::fingerprint);
        Ok(alerts)
    }

    async fn commit_alerts(
        &self,
        lease: &Lease,
        changed: &[AlertInstance],
        removed: &[Fingerprint],
        transitions: &[AlertTransition],
        now_ms: i64,
    ) -> Result<CommitOutcome, StoreError> {
        let horizon = (now_ms - HISTORY_RETENTION_MS).max(0);
        let mut args = vec![arg(lease.token), arg(now_ms), arg(horizon), arg(changed.len()), arg(removed.len())];
        for instance in changed {
            args.push(arg(instance.fingerprint()));
            args.push(encode(instance)?.into_bytes());
        }
        args.extend(removed.iter().map(arg));
        for transition in transitions {
            args.push(encode(transition)?.into_bytes());
        }
        let committed: i64 = self.script("commit alerts", COMMIT, &[LEASE, INSTANCES, TRANSITIONS], args).await?;
        Ok(if committed == 1 { CommitOutcome::Committed } else { CommitOutcome::Fenced })
    }

    async fn read_transitions(&self, after: Option<&str>, limit: usize) -> Result<Vec<StreamEntry>, StoreError> {
        let start = match after {
            None => "-".to_string(),
            Some(position) if valid_position(position) => format!("({position}"),
            Some(position) => return Err(StoreError::Invalid(format!("bad stream position {position:?}"))),
        };
        let reply: StreamReply = self
            .run(
                "read transitions",
                TRANSITIONS,
                redis::cmd("XRANGE").arg(TRANSITIONS).arg(start).arg("+").arg("COUNT").arg(limit.max(1)).clone(),
            )
            .await?;
        let mut entries = stream_entries(reply)?;
        entries.truncate(limit);
        Ok(entries)
    }

    async fn read_history(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<AlertTransition>, StoreError> {
        // Ids are commit times, never before a transition's own time: page back from `to_ms`
        // plus a margin and keep what falls in the range by the transition's time.
        let mut out = Vec::new();
        let mut end = format!("{}", to_ms.saturating_add(60_000).max(0));
        loop {
            let reply: StreamReply = self
                .run(
                    "read history",
                    TRANSITIONS,
                    redis::cmd("XREVRANGE")
                        .arg(TRANSITIONS)
                        .arg(&end)
                        .arg(format!("{}", from_ms.max(0)))
                        .arg("COUNT")
                        .arg(HISTORY_PAGE)
                        .clone(),
                )
                .await?;
            let page = stream_entries(reply)?;
            let full = page.len() == HISTORY_PAGE;
            let Some(last) = page.last().map(|e| e.id.clone()) else { break };
            for entry in page {
                if (from_ms..to_ms).contains(&entry.transition.at_ms) {
                    out.push(entry.transition);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if !full {
                break;
            }
            end = format!("({last}");
        }
        Ok(out)
    }

    async fn publish_probe_request(&self, request: &ProbeRequest) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                "publish probe request",
                PROBE_REQUESTS,
                redis::cmd("PUBLISH").arg(PROBE_REQUESTS).arg(encode(request)?).clone(),
            )
            .await?;
        Ok(())
    }

    async fn subscribe_probe_requests(&self) -> Result<broadcast::Receiver<ProbeRequest>, StoreError> {
        self.probe_request_relay(PROBE_REQUESTS).await
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let args = vec![arg(&silence.id), encode(silence)?.into_bytes(), arg(MAX_SILENCES)];
        let stored: i64 = self.script("put silence", PUT_SILENCE, &[SILENCES], args).await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!("at most {MAX_SILENCES} silences are kept; expire some first")))
        }
    }

    async fn read_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let values: Vec<Vec<u8>> =
            self.run("read silences", SILENCES, redis::cmd("HVALS").arg(SILENCES).clone()).await?;
        let mut silences: Vec<Silence> = decode_all(SILENCES, &values);
        let horizon = now_ms - SILENCE_RETENTION_MS;
        let old: Vec<String> = silences.iter().filter(|s| s.ends_at_ms < horizon).map(|s| s.id.clone()).collect();
        if !old.is_empty() {
            let _: i64 =
                self.run("drop old silences", SILENCES, redis::cmd("HDEL").arg(SILENCES).arg(&old).clone()).await?;
            silences.retain(|s| s.ends_at_ms >= horizon);
        }
        silences.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(silences)
    }
}

/// Probe requests a subscriber may fall behind by before it loses the oldest.
const PROBE_REQUEST_BACKLOG: usize = 256;

impl RedisStore {
    /// One Redis subscription per process, relayed to every local subscriber; it reconnects
    /// by itself (a probe request lost while Redis is away only costs a second opinion).
    async fn probe_request_relay(
        &self,
        channel: &'static str,
    ) -> Result<broadcast::Receiver<ProbeRequest>, StoreError> {
        let client = self.client.clone();
        let shown = self.shown_url.clone();
        let sender = self
            .probe_requests
            .get_or_init(|| async move {
                let (tx, _) = broadcast::channel(PROBE_REQUEST_BACKLOG);
                let relay = tx.clone();
                tokio::spawn(async move {
                    use futures::StreamExt;
                    loop {
                        match client.get_async_pubsub().await {
                            Ok(mut pubsub) => match pubsub.subscribe(channel).await {
                                Ok(()) => {
                                    let mut messages = pubsub.on_message();
                                    while let Some(message) = messages.next().await {
                                        let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                                        match serde_json::from_slice::<ProbeRequest>(&payload) {
                                            Ok(request) => {
                                                let _ = relay.send(request);
                                            }
                                            Err(e) => {
                                                tracing::warn!(error = %e, "skipping an unreadable probe request")
                                            }
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(redis = %shown, error = %e, "probe request subscription failed")
                                }
                            },
                            Err(e) => {
                                tracing::debug!(redis = %shown, error = %e, "probe request subscription: no connection")
                            }
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                });
                tx
            })
            .await;
        Ok(sender.subscribe())
    }
}
