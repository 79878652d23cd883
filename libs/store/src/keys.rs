//! The Redis key schema: every key and field name the Redis store reads or writes is built
//! (and parsed) here and nowhere else.
//!
//! All keys start with `mixmon:v1:`, so a future incompatible layout can live next to this one
//! during a migration. Ids are validated at the edge (ASCII letters, digits, `.`, `_`, `-`),
//! so they never contain the separators `:` `/` or the hash-tag braces used below.
//!
//! Every key of one endpoint (check) carries the hash tag `{<check>}`, so it lives in one Redis
//! Cluster slot: one endpoint's batch is applied by one script on one node, and a query for
//! one endpoint never fans out. Only the indexes [`CHECKS`] and [`SUBJECTS`] live elsewhere; they are
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
//! | `mixmon:v1:{sub:<subject>}:f:<minute>` | hash | `EXPIREAT` minute start + [`ROLLUP_RETENTION_MINUTES`] | one minute of a subject's figures: sums under their name, maxima under `^<name>` ([`figure_field`]) |
//! | `mixmon:v1:{sub:<subject>}:fh:<hour>` | hash | `EXPIREAT` hour end + [`ROLLUP_RETENTION_MINUTES`] | one hour of them, the merge of its minutes |
//! | `mixmon:v1:{sub:<subject>}:wm:<prober>:<epoch>` | string | `EXPIRE` [`WATERMARK_RETENTION_SECONDS`] on every write | decimal u64: highest batch seq applied to this subject |
//! | `mixmon:v1:subjects` | set | `EXPIRE` [`SERIES_INDEX_TTL_SECONDS`], renewed by writers | subjects with figures ([`subject_member`]) |
//!
//! `<subject>` is [`Subject`]'s display form (`mixer:<region>`, `node:<region>:<node>`,
//! `pod:<region>:<namespace>.<pod>`), so one subject's keys share one cluster slot. The
//! all-regions series of a check ([`SeriesKey::all_regions`], region `_all`) uses the rollup
//! keys above with that region: same hash tag and watermark as the check's regions, no raw
//! records, not in the `regions` set.
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

use mixmon_model::{CheckId, Hour, Minute, ProberId, SeriesKey, Subject};

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

/// The set of every figure subject written within retention (untagged, like [`CHECKS`]).
pub const SUBJECTS: &str = "mixmon:v1:subjects";

/// The hash tag of one subject's keys: `{sub:<subject>}`, e.g. `{sub:mixer:eu-west}`.
fn subject_tag(subject: &Subject) -> String {
    format!("{{sub:{subject}}}")
}

/// One minute of a subject's figures.
pub fn figures(subject: &Subject, minute: Minute) -> String {
    format!("{PREFIX}:{}:f:{}", subject_tag(subject), minute.0)
}

/// One hour of a subject's figures, the merge of its minutes, written at ingest.
pub fn figures_hour(subject: &Subject, hour: Hour) -> String {
    format!("{PREFIX}:{}:fh:{}", subject_tag(subject), hour.0)
}

/// The highest batch seq of (prober, epoch) applied to one subject.
pub fn figures_watermark(subject: &Subject, prober: &ProberId, epoch: u64) -> String {
    format!("{PREFIX}:{}:wm:{prober}:{epoch}", subject_tag(subject))
}

/// How a member of [`SUBJECTS`] is written.
pub fn subject_member(subject: &Subject) -> String {
    subject.to_string()
}

/// Reads a member of [`SUBJECTS`] back; `None` for an unreadable one.
pub fn parse_subject_member(member: &str) -> Option<Subject> {
    Subject::parse(member)
}

/// Hash fields of a figures hash: a sum is stored under its [`Fields`](mixmon_model::Fields)
/// name, a maximum under `^<name>` (every field name starts with a letter, so the two never
/// collide, and a reader knows a maximum it has never heard of).
pub mod figure_field {
    const MAX_PREFIX: char = '^';

    pub fn max(name: &str) -> String {
        format!("{MAX_PREFIX}{name}")
    }

    /// `(name, is_max)` of a stored field.
    pub fn parse(stored: &str) -> (&str, bool) {
        match stored.strip_prefix(MAX_PREFIX) {
            Some(name) => (name, true),
            None => (stored, false),
        }
    }
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
    fn figure_keys_carry_the_subject_as_hash_tag() {
        let region = Region::new("eu-west").unwrap();
        let mixer = Subject::mixer(region.clone());
        assert_eq!(figures(&mixer, Minute(28_333_335)), "mixmon:v1:{sub:mixer:eu-west}:f:28333335");
        assert_eq!(figures_hour(&mixer, Hour(472_222)), "mixmon:v1:{sub:mixer:eu-west}:fh:472222");
        let prober = ProberId::new("node-1").unwrap();
        assert_eq!(figures_watermark(&mixer, &prober, 7), "mixmon:v1:{sub:mixer:eu-west}:wm:node-1:7");
        let node = Subject::node(region.clone(), mixmon_model::EntityName::new("n-1").unwrap());
        assert_eq!(figures(&node, Minute(1)), "mixmon:v1:{sub:node:eu-west:n-1}:f:1");
        let pod = Subject::pod(
            region,
            &mixmon_model::EntityName::new("mixer").unwrap(),
            &mixmon_model::EntityName::new("ai-1").unwrap(),
        )
        .unwrap();
        assert_eq!(figures_hour(&pod, Hour(2)), "mixmon:v1:{sub:pod:eu-west:mixer.ai-1}:fh:2");
        assert_eq!(SUBJECTS, "mixmon:v1:subjects");
        for subject in [mixer, node, pod] {
            assert_eq!(parse_subject_member(&subject_member(&subject)), Some(subject));
        }
        for bad in ["", "mixer", "mixer:eu-west:x", "node:eu-west", "pod:a b:c", "host:eu:x", "node:eu:a:b"] {
            assert_eq!(parse_subject_member(bad), None, "{bad}");
        }
        assert_eq!(figure_field::max("dx:/var"), "^dx:/var");
        assert_eq!(figure_field::parse("^dx:/var"), ("dx:/var", true));
        assert_eq!(figure_field::parse("rq:200"), ("rq:200", false));
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
