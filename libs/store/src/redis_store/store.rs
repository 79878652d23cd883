//! [`Store`] for [`RedisStore`].

use async_trait::async_trait;
use mixmon_model::{
    CheckId, Fields, Hour, Minute, RawRecord, Region, Rollup, RollupDelta, SeriesKey, Subject, RECORDS_KEPT,
};

use super::codec::decode_rollup;
use super::read::check_read;
use super::write::{by_endpoint, by_subject};
use super::RedisStore;
use crate::keys;
use crate::{ApplyOutcome, BatchId, RollupBlock, Store, StoreError};

impl RedisStore {
    async fn smembers(&self, what: &str, key: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        self.bounded(what, async {
            redis::cmd("SMEMBERS")
                .arg(key)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.map_error(what, Some(key), &e))
        })
        .await
    }
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
        let (hours, blocks) = RedisStore::hour_blocks(series, from, to);
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
        let (hours, blocks) = RedisStore::hour_blocks(series, from, to);
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
        self.bounded("read_hourly", self.read_hashes("read_hourly", series.len(), &wanted, decode_rollup)).await
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
        let checks = self.smembers("list_series", keys::CHECKS).await?;
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
        let minutes = (from.0..to.0).map(Minute);
        let read = self.read_figure_periods("read_figures", subjects, minutes, keys::figures);
        self.bounded("read_figures", read).await
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
        let hours = (from.0..to.0).map(Hour);
        let read = self.read_figure_periods("read_figures_hourly", subjects, hours, keys::figures_hour);
        self.bounded("read_figures_hourly", read).await
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>, StoreError> {
        let members = self.smembers("list_subjects", keys::SUBJECTS).await?;
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
