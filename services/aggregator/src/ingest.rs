//! Turning a batch from the wire into rollup increments, refusing what must never be stored:
//! results that do not decode, that name a check the catalogue does not have, whose
//! timestamp lies far in the future or beyond retention, or whose timings are impossible
//! (a duration far above the check's timeout, phases adding up to more than the duration),
//! and batches above the size limit. Each refusal is counted by reason.
//!
//! Negative or NaN latencies cannot arrive: the wire carries durations as unsigned integer
//! microseconds, so "impossible" means too large or inconsistent, which is checked here.
//!
//! Samples (mixer scrapes, node and pod samples) go through the same hygiene: one that does not
//! decode is malformed, one stamped far in the future or beyond retention is refused by the
//! same limits as results, and they count towards the batch size limit. A sample's region is
//! its prober's registered region.

use std::sync::atomic::{AtomicU64, Ordering};

use mixmon_model::{MixerSample, NodeSample, PodSample, ProbeResult, Record, Region, RollupDelta};
use mixmon_proto::pb;

use crate::catalogue::Catalogue;

/// Largest batch accepted (results and samples together); announced to probers at registration.
pub const MAX_BATCH_RESULTS: usize = 5_000;
/// Clock skew tolerated for results stamped in the future.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60_000;
/// Oldest result accepted: a day inside the 15-day retention, so nothing is written that
/// would expire almost at once.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3_600_000;
/// A probe may overrun its timeout a little (scheduling, the last read); beyond this slack
/// its duration is not a measurement.
pub const TIMEOUT_SLACK_MS: u64 = 1_000;
/// Phases are timed separately from the total, so their sum may exceed it by rounding.
pub const PHASE_SUM_SLACK_US: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Malformed,
    UnknownCheck,
    FutureTimestamp,
    StaleTimestamp,
    /// A duration above the check's timeout plus slack, or phases summing above the duration.
    ImpossibleLatency,
    /// Every result and sample of a batch above [`MAX_BATCH_RESULTS`].
    OversizedBatch,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::Malformed,
        RejectReason::UnknownCheck,
        RejectReason::FutureTimestamp,
        RejectReason::StaleTimestamp,
        RejectReason::ImpossibleLatency,
        RejectReason::OversizedBatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::UnknownCheck => "unknown_check",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::StaleTimestamp => "stale_timestamp",
            RejectReason::ImpossibleLatency => "impossible_latency",
            RejectReason::OversizedBatch => "oversized_batch",
        }
    }
}

/// Counters of what ingestion did, shared by every stream.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub results_stored: AtomicU64,
    /// Mixer, node and pod samples stored.
    pub samples_stored: AtomicU64,
    pub batches_applied: AtomicU64,
    pub batches_duplicate: AtomicU64,
    pub batches_rejected: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Store calls that failed (each retry of a held batch counts).
    pub store_errors: AtomicU64,
    /// How long each `apply_batch` took, failures included.
    pub apply_seconds: mixmon_telemetry::metrics::Histogram,
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
    /// Samples folded into `delta.figures`.
    pub samples: u64,
    /// Each stored probe's outcome, in the order of the batch, one per (check, start): a check
    /// probed at several addresses at once (`each_address`) failed if any address failed.
    pub outcomes: Vec<Outcome>,
}

/// What one probe found, as the latest-observation tracker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub check: mixmon_model::CheckId,
    pub started_ms: i64,
    pub ok: bool,
    pub failure: Option<mixmon_model::FailureKind>,
}

fn add_outcome(outcomes: &mut Vec<Outcome>, result: &ProbeResult) {
    let same = outcomes.iter_mut().rev().find(|o| o.check == result.check_id && o.started_ms == result.started_at_ms);
    match same {
        Some(outcome) => {
            if result.failure.is_some() && outcome.ok {
                outcome.ok = false;
                outcome.failure = result.failure;
            }
        }
        None => outcomes.push(Outcome {
            check: result.check_id.clone(),
            started_ms: result.started_at_ms,
            ok: result.failure.is_none(),
            failure: result.failure,
        }),
    }
}

/// Results and samples of a batch: what the size limit counts.
pub use mixmon_proto::samples::batch_len as batch_size;

/// Why a sample stamped `at_ms` must not be stored, if it must not.
fn time_refusal(at_ms: i64, now_ms: i64) -> Option<RejectReason> {
    if at_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        Some(RejectReason::FutureTimestamp)
    } else if at_ms < now_ms.saturating_sub(MAX_AGE_MS) {
        Some(RejectReason::StaleTimestamp)
    } else {
        None
    }
}

/// Why one decoded result must not be stored, if it must not.
fn refusal(result: &ProbeResult, catalogue: &Catalogue, now_ms: i64) -> Option<RejectReason> {
    let Some(check) = catalogue.checks.get(&result.check_id) else { return Some(RejectReason::UnknownCheck) };
    if let Some(reason) = time_refusal(result.started_at_ms, now_ms) {
        return Some(reason);
    }
    let limit_us = (u64::from(check.timeout_ms) + TIMEOUT_SLACK_MS) * 1_000;
    let p = &result.phases;
    let phases_us =
        [p.dns_us, p.connect_us, p.tls_us, p.first_byte_us, p.transfer_us].into_iter().fold(0u64, u64::saturating_add);
    if result.duration_us > limit_us || phases_us > result.duration_us.saturating_add(PHASE_SUM_SLACK_US) {
        return Some(RejectReason::ImpossibleLatency);
    }
    None
}

/// Sorts the probe results of a batch (see [`sort_report`] for a whole batch with samples).
pub fn sort_batch(region: &Region, catalogue: &Catalogue, results: Vec<pb::ProbeResult>, now_ms: i64) -> Sorted {
    sort_report(region, catalogue, pb::ResultBatch { results, ..Default::default() }, now_ms)
}

/// Sorts a whole batch: results into rollups, samples into figures, refusals counted by reason.
pub fn sort_report(region: &Region, catalogue: &Catalogue, batch: pb::ResultBatch, now_ms: i64) -> Sorted {
    let mut sorted = Sorted::default();
    let size = batch_size(&batch);
    if size > MAX_BATCH_RESULTS {
        // The control plane refuses such a batch before it gets here; this keeps the limit
        // true for every caller.
        sorted.rejected = vec![(RejectReason::OversizedBatch, size as u64)];
        return sorted;
    }
    let mut counts = [0u64; RejectReason::ALL.len()];
    let mut sample = |record: Result<Record, mixmon_proto::ConvertError>, delta: &mut RollupDelta| {
        let reason = match record {
            Err(_) => Some(RejectReason::Malformed),
            Ok(record) => time_refusal(record.at_ms(), now_ms).or_else(|| {
                // Only a pod whose `<namespace>.<pod>` is too long for a name fails here.
                delta.add_record(region, &record).err().map(|_| RejectReason::Malformed)
            }),
        };
        match reason {
            Some(reason) => counts[reason as usize] += 1,
            None => sorted.samples += 1,
        }
    };
    for raw in batch.mixer {
        sample(MixerSample::try_from(raw).map(Record::Mixer), &mut sorted.delta);
    }
    for raw in batch.nodes {
        sample(NodeSample::try_from(raw).map(Record::Node), &mut sorted.delta);
    }
    for raw in batch.pods {
        sample(PodSample::try_from(raw).map(Record::Pod), &mut sorted.delta);
    }
    for raw in batch.results {
        let reason = match ProbeResult::try_from(raw) {
            Err(_) => Some(RejectReason::Malformed),
            Ok(result) => {
                let reason = refusal(&result, catalogue, now_ms);
                if reason.is_none() {
                    sorted.delta.add(region, &result);
                    add_outcome(&mut sorted.outcomes, &result);
                }
                reason
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
            phase_shift_ms: 0,
            kind: CheckKind::Http(HttpCheck {
                url: "http://h".into(),
                method: "GET".into(),
                expected_status: vec![200],
                ..HttpCheck::get("http://h")
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
            details: None,
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
            pb::ProbeResult { duration_us: 2_000_001, ..result("api", now, true) },
            pb::ProbeResult {
                phases: Some(pb::PhaseTimings { connect_us: 50, first_byte_us: 1_100, ..Default::default() }),
                ..result("api", now, true)
            },
            pb::ProbeResult { duration_us: 2_000_000, ..result("api", now, false) },
        ];
        let sorted = sort_batch(&region, &catalogue(), batch, now);
        assert_eq!(sorted.delta.result_count(), 3, "a timeout at timeout + slack is a measurement");
        assert_eq!(
            sorted.rejected,
            [
                (RejectReason::Malformed, 2),
                (RejectReason::UnknownCheck, 1),
                (RejectReason::FutureTimestamp, 1),
                (RejectReason::StaleTimestamp, 1),
                (RejectReason::ImpossibleLatency, 2),
            ]
        );
    }

    fn mixer(at_ms: i64) -> pb::MixerSample {
        pb::MixerSample {
            pod: "ai-1".into(),
            node: "n1".into(),
            at_ms,
            weight_ms: 15_000,
            scrape_ok: true,
            requests: vec![pb::StatusCount { status: 200, count: 10 }],
            ..Default::default()
        }
    }

    fn node(at_ms: i64) -> pb::NodeSample {
        pb::NodeSample { node: "n1".into(), at_ms, weight_ms: 15_000, cpu_busy_ratio: Some(0.5), ..Default::default() }
    }

    fn pod(at_ms: i64) -> pb::PodSample {
        pb::PodSample {
            pod: "ai-1".into(),
            namespace: "mixer".into(),
            node: "n1".into(),
            at_ms,
            weight_ms: 15_000,
            ready: true,
            ..Default::default()
        }
    }

    #[test]
    fn samples_fold_into_the_probers_region_and_are_refused_by_reason() {
        use mixmon_model::{EntityName, Minute, Subject};
        let now = 1_700_000_000_000;
        let region = Region::new("eu-west").unwrap();
        let batch = pb::ResultBatch {
            seq: 1,
            results: vec![result("api", now, true)],
            mixer: vec![
                mixer(now),
                mixer(now - 1),
                mixer(now + MAX_FUTURE_SKEW_MS + 1),
                pb::MixerSample { audio_peak_db: Some(f64::NAN), ..mixer(now) },
                pb::MixerSample { pod: "bad pod".into(), ..mixer(now) },
            ],
            nodes: vec![node(now), node(now - MAX_AGE_MS - 1), pb::NodeSample { weight_ms: 0, ..node(now) }],
            pods: vec![
                pod(now),
                // `<namespace>.<pod>` longer than a name may be.
                pb::PodSample { namespace: "n".repeat(100), pod: "p".repeat(100), ..pod(now) },
            ],
        };
        let sorted = sort_report(&region, &catalogue(), batch, now);
        assert_eq!((sorted.delta.result_count(), sorted.samples), (1, 4));
        assert_eq!(
            sorted.rejected,
            [(RejectReason::Malformed, 4), (RejectReason::FutureTimestamp, 1), (RejectReason::StaleTimestamp, 1)]
        );
        let minute = Minute::containing(now);
        let mixer_fields = &sorted.delta.figures[&(Subject::mixer(region.clone()), minute)];
        assert_eq!((mixer_fields.sum("rq:200"), mixer_fields.sum("so")), (20, 2));
        let node_subject = Subject::node(region.clone(), EntityName::new("n1").unwrap());
        assert_eq!(sorted.delta.figures[&(node_subject, minute)].sum("cpu"), 500_000);
        let pod_subject =
            Subject::pod(region, &EntityName::new("mixer").unwrap(), &EntityName::new("ai-1").unwrap()).unwrap();
        assert_eq!(sorted.delta.figures[&(pod_subject, minute)].sum("rdy"), 1);
        assert_eq!(sorted.delta.figures.len(), 3);
    }

    #[test]
    fn the_size_limit_counts_samples_too() {
        let now = 1_700_000_000_000;
        let half = MAX_BATCH_RESULTS / 2;
        let batch = pb::ResultBatch {
            seq: 1,
            results: vec![result("api", now, true); half],
            nodes: vec![node(now); MAX_BATCH_RESULTS - half + 1],
            ..Default::default()
        };
        assert_eq!(batch_size(&batch), MAX_BATCH_RESULTS + 1);
        let sorted = sort_report(&Region::new("eu").unwrap(), &catalogue(), batch, now);
        assert!(sorted.delta.is_empty());
        assert_eq!(sorted.rejected, [(RejectReason::OversizedBatch, MAX_BATCH_RESULTS as u64 + 1)]);
    }

    #[test]
    fn an_oversized_batch_is_refused_whole() {
        let now = 1_700_000_000_000;
        let batch = vec![result("api", now, true); MAX_BATCH_RESULTS + 1];
        let sorted = sort_batch(&Region::new("eu").unwrap(), &catalogue(), batch, now);
        assert!(sorted.delta.is_empty());
        assert_eq!(sorted.rejected, [(RejectReason::OversizedBatch, MAX_BATCH_RESULTS as u64 + 1)]);
        let sorted = sort_batch(
            &Region::new("eu").unwrap(),
            &catalogue(),
            vec![result("api", now, true); MAX_BATCH_RESULTS],
            now,
        );
        assert_eq!(sorted.delta.result_count(), MAX_BATCH_RESULTS as u64);
    }
}
