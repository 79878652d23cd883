//! The Redis key schema: every key and field name the Redis store reads or writes is built
//! (and parsed) here and nowhere else.
//!
//! All keys start with `mixmon:v1:`, so a future incompatible layout can live next to this one
//! during a migration. Ids are validated at the edge (ASCII letters, digits, `.`, `_`, `-`),
//! so they never contain the separators `:` `/` or the hash-tag braces used below.
//!
//! | key | type | TTL | value |
//! |-----|------|-----|-------|
//! | `mixmon:v1:{<check>}:roll:<region>:<minute>` | hash | `EXPIREAT` minute start + [`ROLLUP_RETENTION_MINUTES`] | one rollup, fields below |
//! | `mixmon:v1:series` | set | `EXPIRE` [`SERIES_INDEX_TTL_SECONDS`] on every write | members `<check>/<region>` |
//! | `mixmon:v1:wm:<prober>:<epoch>` | string | `EXPIRE` [`WATERMARK_RETENTION_SECONDS`] on every write | decimal u64: highest applied batch seq |
//!
//! `<minute>` is [`Minute`] in decimal (minutes since the unix epoch, UTC). The hash tag
//! `{<check>}` puts all of one endpoint's rollups in one Redis Cluster slot, so a query for one
//! check never fans out across nodes.
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
//!
//! Readers ignore fields they do not know, so a newer writer can add fields.

use mixmon_model::{CheckId, Minute, ProberId, Region, SeriesKey};

use crate::{ROLLUP_RETENTION_MINUTES, WATERMARK_RETENTION_SECONDS};

pub const PREFIX: &str = "mixmon:v1";

/// The set of every series written within retention.
pub const SERIES_INDEX: &str = "mixmon:v1:series";

/// The series index is refreshed on every write, so it lives as long as the newest rollup.
pub const SERIES_INDEX_TTL_SECONDS: u64 = ROLLUP_RETENTION_MINUTES as u64 * 60;

/// Seconds a watermark key lives after its last write.
pub const WATERMARK_TTL_SECONDS: u64 = WATERMARK_RETENTION_SECONDS;

pub fn rollup(series: &SeriesKey, minute: Minute) -> String {
    format!("{PREFIX}:{{{}}}:roll:{}:{}", series.check, series.region, minute.0)
}

/// The unix time (seconds) at which a rollup key expires: its minute's start plus retention.
pub fn rollup_expire_at(minute: Minute) -> i64 {
    (minute.0 + ROLLUP_RETENTION_MINUTES) * 60
}

pub fn watermark(prober: &ProberId, epoch: u64) -> String {
    format!("{PREFIX}:wm:{prober}:{epoch}")
}

pub fn series_member(series: &SeriesKey) -> String {
    format!("{}/{}", series.check, series.region)
}

/// Why a stored series member could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad series member {member:?}: {reason}")]
pub struct BadSeriesMember {
    pub member: String,
    pub reason: String,
}

pub fn parse_series_member(member: &str) -> Result<SeriesKey, BadSeriesMember> {
    let bad = |reason: String| BadSeriesMember { member: member.to_string(), reason };
    let (check, region) = member.split_once('/').ok_or_else(|| bad("no '/' separator".into()))?;
    let check = CheckId::new(check).map_err(|e| bad(e.to_string()))?;
    let region = Region::new(region).map_err(|e| bad(e.to_string()))?;
    Ok(SeriesKey { check, region })
}

/// Field names of a rollup hash.
pub mod field {
    use mixmon_model::FailureKind;

    pub const TOTAL: &str = "n";
    pub const SUCCESSES: &str = "ok";
    pub const LATENCY_SUM_US: &str = "ls";
    pub const ZERO_BUCKET: &str = "bz";
    const FAILURE_PREFIX: &str = "f:";
    const BUCKET_PREFIX: &str = "b:";

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
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::field::Field;
    use super::*;
    use mixmon_model::FailureKind;

    fn series(check: &str, region: &str) -> SeriesKey {
        SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
    }

    #[test]
    fn key_formats_are_the_documented_ones() {
        let s = series("api", "eu-west");
        assert_eq!(rollup(&s, Minute(28_333_335)), "mixmon:v1:{api}:roll:eu-west:28333335");
        assert_eq!(rollup(&s, Minute(-1)), "mixmon:v1:{api}:roll:eu-west:-1");
        assert_eq!(watermark(&ProberId::new("node-1").unwrap(), 7), "mixmon:v1:wm:node-1:7");
        assert_eq!(SERIES_INDEX, "mixmon:v1:series");
        assert_eq!(rollup_expire_at(Minute(0)), ROLLUP_RETENTION_MINUTES * 60);
    }

    #[test]
    fn series_members_round_trip() {
        for (check, region) in [("api", "eu-west"), ("a.b_c-d", "us-west-2"), ("x", "y")] {
            let s = series(check, region);
            let member = series_member(&s);
            assert_eq!(member, format!("{check}/{region}"));
            assert_eq!(parse_series_member(&member), Ok(s));
        }
    }

    #[test]
    fn bad_series_members_are_refused() {
        for member in ["", "api", "api/", "/eu", "api/eu/x", "a b/eu", "{api}/eu"] {
            let err = parse_series_member(member).unwrap_err();
            assert_eq!(err.member, member);
        }
    }

    #[test]
    fn fields_round_trip_and_unknown_ones_are_none() {
        let mut all = vec![Field::Total, Field::Successes, Field::LatencySumUs, Field::ZeroBucket];
        all.extend(FailureKind::ALL.map(Field::Failure));
        all.extend([i32::MIN, -5, 0, 1, 1234, i32::MAX].map(Field::Bucket));
        for f in all {
            assert_eq!(field::parse(&f.name()), Some(f), "{}", f.name());
        }
        assert_eq!(field::failure(FailureKind::Timeout), "f:timeout");
        assert_eq!(field::bucket(-3), "b:-3");
        for unknown in ["", "x", "f:", "f:nope", "b:", "b:x", "b:99999999999", "N"] {
            assert_eq!(field::parse(unknown), None, "{unknown}");
        }
    }
}
