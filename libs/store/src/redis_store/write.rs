//! The write path: one Lua script per endpoint (and per subject) of a batch, pipelined, each
//! checking and moving its watermark atomically with its increments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mixmon_model::figures::is_minute_mark;
use mixmon_model::{
    CheckId, Fields, Hour, Minute, Phase, RawRecord, Rollup, RollupDelta, SeriesKey, Subject, RECORDS_KEPT,
};
use redis::{ErrorKind, RedisError, Value};

use super::{to_i64, RedisStore};
use crate::keys::{self, field, figure_field};
use crate::{ApplyOutcome, BatchId, StoreError};

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
pub(super) const APPLY_SCRIPT: &str = r#"
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
///   compared exactly, negatives included), K, K (field, index in `KEYS` of the minute's
///   hour hash) pairs of minute marks: set to 1 in the minute if absent (`HSETNX`), and only
///   then counted in the hour, so an hour counts each marked minute once whoever marks it.
///
/// Returns 1 when applied, 0 for a resend; a foreign value at a key fails it before any write.
pub(super) const FIGURES_SCRIPT: &str = r#"
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
  local marks = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, marks do
    if redis.call('HSETNX', key, ARGV[i], 1) == 1 then
      redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 1])], ARGV[i], 1)
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

/// The (field, increment) pairs of one rollup. `n` is always written, so every rollup in a
/// delta has a hash, as it has an entry in the memory store.
pub(super) fn rollup_fields(rollup: &Rollup) -> Result<Vec<(String, i64)>, StoreError> {
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
pub(super) struct EndpointDelta<'a> {
    pub(super) check: &'a CheckId,
    pub(super) minutes: Vec<(&'a SeriesKey, Minute, &'a Rollup)>,
    pub(super) records: Vec<(&'a SeriesKey, &'a [RawRecord])>,
}

/// Splits a delta by endpoint; the delta is sorted by series, so by check first.
pub(super) fn by_endpoint(delta: &RollupDelta) -> Vec<EndpointDelta<'_>> {
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
pub(super) fn endpoint_command(sha: &str, batch: &BatchId, part: &EndpointDelta<'_>) -> Result<redis::Cmd, StoreError> {
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
pub(super) struct SubjectDelta<'a> {
    subject: &'a Subject,
    minutes: Vec<(Minute, &'a Fields)>,
}

/// Splits a delta's figures by subject (the map is sorted by subject first); empty Fields are
/// left out, as they store nothing.
pub(super) fn by_subject(delta: &RollupDelta) -> Vec<SubjectDelta<'_>> {
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
pub(super) fn subject_command(sha: &str, batch: &BatchId, part: &SubjectDelta<'_>) -> redis::Cmd {
    // Marks are counted in the hour by the script, once per minute newly marked.
    let mut hours: BTreeMap<Hour, Fields> = BTreeMap::new();
    for (minute, fields) in &part.minutes {
        let hour = hours.entry(minute.hour()).or_default();
        hour.merge(fields);
        hour.sums.retain(|name, _| !is_minute_mark(name));
    }
    // 1-based index in KEYS of each hour's hash: after the watermark and the minutes.
    let hour_index: BTreeMap<Hour, usize> =
        hours.keys().enumerate().map(|(i, hour)| (*hour, 2 + part.minutes.len() + i)).collect();
    let mut keys = Vec::with_capacity(1 + part.minutes.len() + hours.len());
    keys.push(keys::figures_watermark(part.subject, &batch.prober, batch.epoch));
    let mut args: Vec<Vec<u8>> =
        vec![batch.seq.to_string().into_bytes(), keys::WATERMARK_TTL_SECONDS.to_string().into_bytes()];
    let mut push_fields = |key: String, expire_at: i64, fields: &Fields, hour: Option<usize>| {
        keys.push(key);
        args.push(expire_at.to_string().into_bytes());
        let (marks, sums): (Vec<_>, Vec<_>) = fields.sums.iter().partition(|(name, _)| is_minute_mark(name));
        args.push(sums.len().to_string().into_bytes());
        for (name, increment) in sums {
            args.push(name.as_bytes().to_vec());
            args.push(increment.to_string().into_bytes());
        }
        args.push(fields.maxes.len().to_string().into_bytes());
        for (name, value) in &fields.maxes {
            args.push(figure_field::max(name).into_bytes());
            args.push(value.to_string().into_bytes());
        }
        let marks: Vec<_> = marks.into_iter().filter(|(_, value)| **value > 0).collect();
        match hour {
            Some(hour) if !marks.is_empty() => {
                args.push(marks.len().to_string().into_bytes());
                for (name, _) in marks {
                    args.push(name.as_bytes().to_vec());
                    args.push(hour.to_string().into_bytes());
                }
            }
            _ => args.push(b"0".to_vec()),
        }
    };
    for (minute, fields) in &part.minutes {
        let hour = hour_index.get(&minute.hour()).copied();
        push_fields(keys::figures(part.subject, *minute), keys::rollup_expire_at(*minute), fields, hour);
    }
    for (hour, fields) in &hours {
        push_fields(keys::figures_hour(part.subject, *hour), keys::rollup_hour_expire_at(*hour), fields, None);
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len()).arg(&keys);
    for arg in &args {
        cmd.arg(arg.as_slice());
    }
    cmd
}

impl RedisStore {
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

    pub(super) async fn load_script(&self) -> Result<(), StoreError> {
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
    pub(super) async fn apply_parts(
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
}
