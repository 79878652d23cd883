//! The Redis key schema: every key and field name the Redis store reads or writes is built
//! (and parsed) here and nowhere else.
//!
//! All keys start with `mixmon:v1:`, so a future incompatible layout can live next to this one
//! during a migration. Ids are validated at the edge (ASCII letters, digits, `.`, `_`, `-`),
//! so they never contain the separators `:` `/` or the hash-tag braces used below.
//!
//! Every key of one endpoint (check) carries the hash tag `{<check>}`, so it lives in one Redis
//! Cluster slot: one endpoint's batch is applied by one script on one node, and a query for
//! one endpoint never fans out. Only the endpoint index [`CHECKS`] lives elsewhere; it is
//! written with an idempotent `SADD`, outside the exactly-once path.
//!
//! | key | type | TTL | value |
//! |-----|------|-----|-------|
//! | `mixmon:v1:{<check>}:roll:<region>:<minute>` | hash | `EXPIREAT` minute start + [`ROLLUP_RETENTION_MINUTES`] | one minute's rollup, fields below |
//! | `mixmon:v1:{<check>}:rollh:<region>:<hour>` | hash | `EXPIREAT` hour end + [`ROLLUP_RETENTION_MINUTES`] | one hour's rollup (same fields); its `n` also versions the hour's minutes for read caches |
//! | `mixmon:v1:{<check>}:raw:<region>` | list | `EXPIRE` [`SERIES_INDEX_TTL_SECONDS`] on every write | the latest [`RECORDS_KEPT`](mixmon_model::RECORDS_KEPT) raw records, newest first ([`RawRecord::encode`](mixmon_model::RawRecord::encode)) |
//! | `mixmon:v1:{<check>}:regions` | set | `EXPIRE` [`SERIES_INDEX_TTL_SECONDS`] on every write | regions with data for the check |
//! | `mixmon:v1:{<check>}:wm:<prober>:<epoch>` | string | `EXPIRE` [`WATERMARK_RETENTION_SECONDS`] on every write | decimal u64: highest batch seq applied to this check |
//! | `mixmon:v1:checks` | set | `EXPIRE` [`SERIES_INDEX_TTL_SECONDS`], renewed by writers | checks with data |
//!
//! `<minute>` is [`Minute`] and `<hour>` is [`Hour`] in decimal (since the unix epoch, UTC).
//!
//! Rollup hash fields (all integers, incremented with `HINCRBY`, so merging is addition):
//!
//! | field | meaning |
//! |-------|---------|
//! | `n` | probes in the minute |
//! | `ok` | successful probes |
//! | `ls` | sum of successful probes' latency, µs |
//! | `f:<kind>` | failures of that kind ([`FailureKind::as_str`](mixmon_model::FailureKind::as_str), e.g. `f:timeout`) |
//! | `bz` | latency sketch zero bucket count |
//! | `b:<index>` | latency sketch bucket count, `<index>` an `i32` in decimal |
//! | `ps:<phase>` / `pn:<phase>` | sum (µs) / count of a phase's timings ([`Phase::as_str`](mixmon_model::Phase::as_str)) |
//!
//! Readers ignore fields they do not know, so a newer writer can add fields.

use mixmon_model::{CheckId, Hour, Minute, ProberId, SeriesKey};

use crate::{ROLLUP_RETENTION_MINUTES, WATERMARK_RETENTION_SECONDS};

pub const PREFIX: &str = "mixmon:v1";

/// The set of every check written within retention.
pub const CHECKS: &str = "mixmon:v1:checks";

/// The series indexes are refreshed on write, so they live as long as the newest rollup.
pub const SERIES_INDEX_TTL_SECONDS: u64 = ROLLUP_RETENTION_MINUTES as u64 * 60;

/// Seconds a watermark key lives after its last write.
pub const WATERMARK_TTL_SECONDS: u64 = WATERMARK_RETENTION_SECONDS;

pub fn rollup(series: &SeriesKey, minute: Minute) -> String {
    format!("{PREFIX}:{{{}}}:roll:{}:{}", series.check, series.region, minute.0)
}

pub fn rollup_hour(series: &SeriesKey, hour: Hour) -> String {
    format!("{PREFIX}:{{{}}}:rollh:{}:{}", series.check, series.region, hour.0)
}

/// The unix time (seconds) at which a rollup key expires: its minute's start plus retention.
pub fn rollup_expire_at(minute: Minute) -> i64 {
    (minute.0 + ROLLUP_RETENTION_MINUTES) * 60
}

/// An hourly rollup lives until its last minute has expired.
pub fn rollup_hour_expire_at(hour: Hour) -> i64 {
    (hour.end_minute().0 + ROLLUP_RETENTION_MINUTES) * 60
}

/// The latest raw records of one series, newest first.
pub fn records(series: &SeriesKey) -> String {
    format!("{PREFIX}:{{{}}}:raw:{}", series.check, series.region)
}

/// The regions with data for one check.
pub fn regions(check: &CheckId) -> String {
    format!("{PREFIX}:{{{check}}}:regions")
}

/// The highest batch seq of (prober, epoch) applied to one check.
pub fn watermark(check: &CheckId, prober: &ProberId, epoch: u64) -> String {
    format!("{PREFIX}:{{{check}}}:wm:{prober}:{epoch}")
}

/// Field names of a rollup hash.
pub mod field {
    use mixmon_model::{FailureKind, Phase};

    pub const TOTAL: &str = "n";
    pub const SUCCESSES: &str = "ok";
    pub const LATENCY_SUM_US: &str = "ls";
    pub const ZERO_BUCKET: &str = "bz";
    const FAILURE_PREFIX: &str = "f:";
    const BUCKET_PREFIX: &str = "b:";
    const PHASE_SUM_PREFIX: &str = "ps:";
    const PHASE_COUNT_PREFIX: &str = "pn:";

    pub fn phase_sum(phase: Phase) -> String {
        format!("{PHASE_SUM_PREFIX}{}", phase.as_str())
    }

    pub fn phase_count(phase: Phase) -> String {
        format!("{PHASE_COUNT_PREFIX}{}", phase.as_str())
    }

    pub fn failure(kind: FailureKind) -> String {
        format!("{FAILURE_PREFIX}{}", kind.as_str())
    }

    pub fn bucket(index: i32) -> String {
        format!("{BUCKET_PREFIX}{index}")
    }

    /// A known field of a rollup hash.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Field {
        Total,
        Successes,
        LatencySumUs,
        Failure(FailureKind),
        ZeroBucket,
        Bucket(i32),
        PhaseSum(Phase),
        PhaseCount(Phase),
    }

    /// `None` for a field this version does not know (written by a newer one).
    pub fn parse(name: &str) -> Option<Field> {
        match name {
            TOTAL => Some(Field::Total),
            SUCCESSES => Some(Field::Successes),
            LATENCY_SUM_US => Some(Field::LatencySumUs),
            ZERO_BUCKET => Some(Field::ZeroBucket),
            _ => {
                if let Some(kind) = name.strip_prefix(FAILURE_PREFIX) {
                    FailureKind::parse(kind).map(Field::Failure)
                } else if let Some(phase) = name.strip_prefix(PHASE_SUM_PREFIX) {
                    Phase::parse(phase).map(Field::PhaseSum)
                } else if let Some(phase) = name.strip_prefix(PHASE_COUNT_PREFIX) {
                    Phase::parse(phase).map(Field::PhaseCount)
                } else {
                    name.strip_prefix(BUCKET_PREFIX).and_then(|i| i.parse().ok()).map(Field::Bucket)
                }
            }
        }
    }

    impl Field {
        pub fn name(self) -> String {
            match self {
                Field::Total => TOTAL.to_string(),
                Field::Successes => SUCCESSES.to_string(),
                Field::LatencySumUs => LATENCY_SUM_US.to_string(),
                Field::ZeroBucket => ZERO_BUCKET.to_string(),
                Field::Failure(kind) => failure(kind),
                Field::Bucket(index) => bucket(index),
                Field::PhaseSum(phase) => phase_sum(phase),
                Field::PhaseCount(phase) => phase_count(phase),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::field::Field;
    use super::*;
    use mixmon_model::{FailureKind, Region};

    fn series(check: &str, region: &str) -> SeriesKey {
        SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
    }

    #[test]
    fn key_formats_are_the_documented_ones() {
        let s = series("api", "eu-west");
        assert_eq!(rollup(&s, Minute(28_333_335)), "mixmon:v1:{api}:roll:eu-west:28333335");
        assert_eq!(rollup(&s, Minute(-1)), "mixmon:v1:{api}:roll:eu-west:-1");
        assert_eq!(rollup_hour(&s, Hour(472_222)), "mixmon:v1:{api}:rollh:eu-west:472222");
        assert_eq!(watermark(&s.check, &ProberId::new("node-1").unwrap(), 7), "mixmon:v1:{api}:wm:node-1:7");
        assert_eq!(regions(&s.check), "mixmon:v1:{api}:regions");
        assert_eq!(records(&s), "mixmon:v1:{api}:raw:eu-west");
        assert_eq!(CHECKS, "mixmon:v1:checks");
        assert_eq!(rollup_expire_at(Minute(0)), ROLLUP_RETENTION_MINUTES * 60);
        assert_eq!(rollup_hour_expire_at(Hour(0)), (60 + ROLLUP_RETENTION_MINUTES) * 60);
    }

    #[test]
    fn fields_round_trip_and_unknown_ones_are_none() {
        let mut all = vec![Field::Total, Field::Successes, Field::LatencySumUs, Field::ZeroBucket];
        all.extend(FailureKind::ALL.map(Field::Failure));
        all.extend([i32::MIN, -5, 0, 1, 1234, i32::MAX].map(Field::Bucket));
        all.extend(mixmon_model::Phase::ALL.map(Field::PhaseSum));
        all.extend(mixmon_model::Phase::ALL.map(Field::PhaseCount));
        for f in all {
            assert_eq!(field::parse(&f.name()), Some(f), "{}", f.name());
        }
        assert_eq!(field::failure(FailureKind::Timeout), "f:timeout");
        assert_eq!(field::bucket(-3), "b:-3");
        for unknown in ["", "x", "f:", "f:nope", "b:", "b:x", "b:99999999999", "N", "ps:", "pn:nope"] {
            assert_eq!(field::parse(unknown), None, "{unknown}");
        }
    }
}
