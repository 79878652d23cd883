//! Every windowed read: minute and hourly rollups, figures, each a list of hash keys read in
//! pipelined slices by one routine, and bounded before anything is sent.

use std::sync::Arc;

use mixmon_model::{Fields, Hour, Minute, Rollup, SeriesKey};
use redis::{RedisError, Value};

use super::cache::Minutes;
use super::codec::{decode_fields, decode_rollup, hash_pairs, HashPairs};
use super::RedisStore;
use crate::keys::{self, field};
use crate::StoreError;

/// Reads longer than this are refused: no dashboard needs more than a month per request.
pub const MAX_READ_MINUTES: i64 = 31 * 24 * 60;
/// Reads touching more rollup keys than this are refused, to bound Redis and our memory.
pub const MAX_READ_KEYS: usize = 200_000;
/// Keys per pipeline in a read: large reads go in slices so no single reply is huge and each
/// slice finishes well within the response timeout.
pub(super) const READ_PIPELINE_KEYS: usize = 10_000;

impl RedisStore {
    /// The one windowed read: the hashes `wanted` names, `(result index, period, key)` in
    /// ascending period per index, in pipelined slices, each decoded by `decode`; missing
    /// hashes are absent from the answer.
    pub(super) async fn read_hashes<P: Copy, T>(
        &self,
        what: &str,
        count: usize,
        wanted: &[(usize, P, String)],
        decode: fn(&str, HashPairs) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<Vec<(P, T)>>, StoreError> {
        let mut out: Vec<Vec<(P, T)>> = (0..count).map(|_| Vec::new()).collect();
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
                if let Some(value) = decode(key, pairs)? {
                    out[*index].push((*period, value));
                }
            }
        }
        Ok(out)
    }

    /// Reads and decodes the minute hashes of `(series, hour)` blocks.
    async fn read_minute_blocks(&self, blocks: &[(SeriesKey, Hour)]) -> Result<Vec<Vec<(Minute, Rollup)>>, StoreError> {
        let wanted: Vec<(usize, Minute, String)> = blocks
            .iter()
            .enumerate()
            .flat_map(|(i, (s, h))| {
                (h.first_minute().0..h.end_minute().0).map(move |m| (i, Minute(m), keys::rollup(s, Minute(m))))
            })
            .collect();
        self.read_hashes("read_rollups", blocks.len(), &wanted, decode_rollup).await
    }

    /// Figure hashes of `subjects` over periods, keyed by `key`.
    pub(super) async fn read_figure_periods<P: Copy>(
        &self,
        what: &str,
        subjects: &[mixmon_model::Subject],
        periods: impl Iterator<Item = P> + Clone,
        key: impl Fn(&mixmon_model::Subject, P) -> String,
    ) -> Result<Vec<Vec<(P, Fields)>>, StoreError> {
        let wanted: Vec<(usize, P, String)> = subjects
            .iter()
            .enumerate()
            .flat_map(|(i, s)| periods.clone().map(|p| (i, p, key(s, p))).collect::<Vec<_>>())
            .collect();
        self.read_hashes(what, subjects.len(), &wanted, decode_fields).await
    }

    /// The hour blocks of `series` covering `[from, to)`, series-major.
    pub(super) fn hour_blocks(series: &[SeriesKey], from: Minute, to: Minute) -> (Vec<Hour>, Vec<(SeriesKey, Hour)>) {
        let hours: Vec<Hour> = (Hour::floor(from).0..Hour::ceil(to).0).map(Hour).collect();
        let blocks = series.iter().flat_map(|s| hours.iter().map(move |h| (s.clone(), *h))).collect();
        (hours, blocks)
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
    pub(super) async fn minute_blocks(&self, blocks: &[(SeriesKey, Hour)]) -> Result<Vec<Minutes>, StoreError> {
        // Versions first, then minutes: data read after its version can only be newer, which
        // costs a re-read next time, never a stale answer.
        let versions = if self.cache().enabled() { self.hour_versions(blocks).await? } else { vec![0; blocks.len()] };
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
                    cache.put(block, versions[*i], minutes.clone());
                }
                out[*i] = Some(minutes);
            }
        }
        Ok(out.into_iter().map(|b| b.unwrap_or_default()).collect())
    }
}

/// Refuses reads beyond the limits: `span` periods of `unit_minutes` each, over `series` series.
pub(super) fn check_read(series: usize, span: i64, unit_minutes: i64) -> Result<(), StoreError> {
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
