//! Turning a batch from the wire into rollup increments, refusing what must never be stored:
//! results that do not decode, that name a check the catalogue does not have, or whose
//! timestamp lies far in the future or beyond retention. Each refusal is counted by reason.

use std::sync::atomic::{AtomicU64, Ordering};

use mixmon_model::{ProbeResult, Region, RollupDelta};
use mixmon_proto::pb;

use crate::catalogue::Catalogue;

/// Largest batch accepted (results); announced to probers at registration.
pub const MAX_BATCH_RESULTS: usize = 5_000;
/// Clock skew tolerated for results stamped in the future.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60_000;
/// Oldest result accepted: a day inside the 15-day retention, so nothing is written that
/// would expire almost at once.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Malformed,
    UnknownCheck,
    FutureTimestamp,
    StaleTimestamp,
}

impl RejectReason {
    pub const ALL: [RejectReason; 4] = [
        RejectReason::Malformed,
        RejectReason::UnknownCheck,
        RejectReason::FutureTimestamp,
        RejectReason::StaleTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::UnknownCheck => "unknown_check",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Counters of what ingestion did, shared by every stream.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub results_stored: AtomicU64,
    pub batches_applied: AtomicU64,
    pub batches_duplicate: AtomicU64,
    pub batches_rejected: AtomicU64,
    rejected: [AtomicU64; 4],
}

impl IngestStats {
    pub fn count_rejected(&self, reason: RejectReason, n: u64) {
        self.rejected[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason as usize].load(Ordering::Relaxed)
    }
}

/// The outcome of sorting one batch's results.
#[derive(Debug, Default)]
pub struct Sorted {
    pub delta: RollupDelta,
    pub rejected: Vec<(RejectReason, u64)>,
}

pub fn sort_batch(region: &Region, catalogue: &Catalogue, results: Vec<pb::ProbeResult>, now_ms: i64) -> Sorted {
    let mut sorted = Sorted::default();
    let mut counts = [0u64; 4];
    for raw in results {
        let reason = match ProbeResult::try_from(raw) {
            Err(_) => Some(RejectReason::Malformed),
            Ok(result) if !catalogue.checks.contains_key(&result.check_id) => Some(RejectReason::UnknownCheck),
            Ok(result) if result.started_at_ms > now_ms + MAX_FUTURE_SKEW_MS => Some(RejectReason::FutureTimestamp),
            Ok(result) if result.started_at_ms < now_ms - MAX_AGE_MS => Some(RejectReason::StaleTimestamp),
            Ok(result) => {
                sorted.delta.add(region, &result);
                None
            }
        };
        if let Some(reason) = reason {
            counts[reason as usize] += 1;
        }
    }
    sorted.rejected = RejectReason::ALL
        .into_iter()
        .filter_map(|r| (counts[r as usize] > 0).then_some((r, counts[r as usize])))
        .collect();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_model::{CheckId, CheckKind, CheckSpec, HttpCheck};

    fn catalogue() -> Catalogue {
        Catalogue::new([CheckSpec {
            id: CheckId::new("api").unwrap(),
            interval_ms: 1_000,
            timeout_ms: 1_000,
            kind: CheckKind::Http(HttpCheck {
                url: "http://h".into(),
                method: "GET".into(),
                expected_status: vec![200],
            }),
        }])
    }

    fn result(check: &str, at_ms: i64, success: bool) -> pb::ProbeResult {
        pb::ProbeResult {
            check_id: check.into(),
            started_at_ms: at_ms,
            success,
            duration_us: 100,
            failure: if success { 0 } else { pb::FailureKind::Timeout as i32 },
            status_code: if success { 200 } else { 0 },
            error: String::new(),
            phases: None,
        }
    }

    #[test]
    fn refuses_and_counts_by_reason() {
        let now = 1_700_000_000_000;
        let region = Region::new("eu-west").unwrap();
        let batch = vec![
            result("api", now - 1_000, true),
            result("api", now, false),
            result("unknown", now, true),
            result("api", now + MAX_FUTURE_SKEW_MS + 1, true),
            result("api", now - MAX_AGE_MS - 1, true),
            result("bad id!", now, true),
            pb::ProbeResult { success: true, failure: pb::FailureKind::Dns as i32, ..result("api", now, true) },
        ];
        let sorted = sort_batch(&region, &catalogue(), batch, now);
        assert_eq!(sorted.delta.result_count(), 2);
        assert_eq!(
            sorted.rejected,
            [
                (RejectReason::Malformed, 2),
                (RejectReason::UnknownCheck, 1),
                (RejectReason::FutureTimestamp, 1),
                (RejectReason::StaleTimestamp, 1)
            ]
        );
    }
}
