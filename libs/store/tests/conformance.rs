//! One behavioural suite for every [`Store`]: each case is an async function over `&dyn Store`,
//! run once against [`MemoryStore`] and once against [`RedisStore`] on a real `redis-server`
//! (a fresh one per test, so tests share nothing). Redis-only behaviour (TTLs, outages,
//! corrupt data, secrets in errors) is tested at the end.

// In tests a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mixmon_model::{
    CheckId, EntityName, FailureKind, Fields, Hour, Minute, PhaseTimings, ProbeResult, ProberId, RawRecord, Region,
    Rollup, RollupDelta, SeriesKey, Subject, RECORDS_KEPT,
};
use mixmon_store::{
    keys, ApplyOutcome, BatchId, MemoryStore, RedisStore, RedisStoreConfig, Store, StoreError,
    ROLLUP_RETENTION_MINUTES, WATERMARK_RETENTION_SECONDS,
};
use mixmon_testkit::{eventually, RedisServer};

fn now_minute() -> Minute {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    Minute::containing(i64::try_from(ms).unwrap())
}

/// A recent minute, so Redis keys are well within retention and do not expire at once.
fn base() -> Minute {
    Minute(now_minute().0 - 30)
}

fn series(check: &str, region: &str) -> SeriesKey {
    SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
}

fn batch(prober: &str, epoch: u64, seq: u64) -> BatchId {
    BatchId { prober: ProberId::new(prober).unwrap(), epoch, seq }
}

/// A rollup using every field: failures of two kinds, zero bucket and several buckets.
fn rich_rollup(scale: u64) -> Rollup {
    let mut rollup =
        Rollup { total: 10 * scale, successes: 6 * scale, latency_sum_us: 1_234_567 * scale, ..Default::default() };
    rollup.failures.insert(FailureKind::Timeout, 3 * scale);
    rollup.failures.insert(FailureKind::BadStatus, scale);
    rollup.latency.add_n(0.0, scale);
    rollup.latency.add_n(850.0, 2 * scale);
    rollup.latency.add_n(120_000.0, 2 * scale);
    rollup.latency.add_n(4_000_000.0, scale);
    rollup
}

fn simple_rollup(total: u64, successes: u64) -> Rollup {
    let mut rollup = Rollup { total, successes, latency_sum_us: successes * 1000, ..Default::default() };
    if successes > 0 {
        // `add_n(_, 0)` would leave an empty bucket behind, which no store keeps.
        rollup.latency.add_n(1000.0, successes);
    }
    if total > successes {
        rollup.failures.insert(FailureKind::ConnectionRefused, total - successes);
    }
    rollup
}

fn delta(entries: &[(&SeriesKey, Minute, Rollup)]) -> RollupDelta {
    let mut delta = RollupDelta::default();
    for (series, minute, rollup) in entries {
        delta.rollups.entry(((*series).clone(), *minute)).or_default().merge(rollup);
    }
    delta
}

async fn read_one(store: &dyn Store, series: &SeriesKey, from: Minute, to: Minute) -> Vec<(Minute, Rollup)> {
    let mut all = store.read_rollups(std::slice::from_ref(series), from, to).await.unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn mixer(region: &str) -> Subject {
    Subject::mixer(Region::new(region).unwrap())
}

fn node(region: &str, name: &str) -> Subject {
    Subject::node(Region::new(region).unwrap(), EntityName::new(name).unwrap())
}

fn pod(region: &str, namespace: &str, name: &str) -> Subject {
    Subject::pod(Region::new(region).unwrap(), &EntityName::new(namespace).unwrap(), &EntityName::new(name).unwrap())
        .unwrap()
}

/// Mixer-like fields scaled by `k`, with a negative maximum (a peak in dBFS) and a label-like
/// field name.
fn figures(k: i64, peak: i64) -> Fields {
    let mut fields = Fields::default();
    fields.add("rq:200", 100 * k);
    fields.add("rq:503", k);
    fields.add("hb:0.005", 3 * k);
    fields.add("hb:+Inf", k);
    fields.add("pkn", k);
    fields.add("pks", peak * k);
    fields.max("pkx", peak);
    fields
}

fn figures_delta(entries: &[(&Subject, Minute, Fields)]) -> RollupDelta {
    let mut delta = RollupDelta::default();
    for (subject, minute, fields) in entries {
        delta.figures.entry(((*subject).clone(), *minute)).or_default().merge(fields);
    }
    delta
}

async fn read_figures_one(store: &dyn Store, subject: &Subject, from: Minute, to: Minute) -> Vec<(Minute, Fields)> {
    let mut all = store.read_figures(std::slice::from_ref(subject), from, to).await.unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn merged(parts: &[Fields]) -> Fields {
    let mut sum = Fields::default();
    parts.iter().for_each(|p| sum.merge(p));
    sum
}

fn probe(check: &str, at_ms: i64, ok: bool, duration_us: u64) -> ProbeResult {
    ProbeResult {
        check_id: CheckId::new(check).unwrap(),
        started_at_ms: at_ms,
        failure: (!ok).then_some(FailureKind::Timeout),
        duration_us,
        status_code: if ok { 200 } else { 0 },
        error: String::new(),
        phases: PhaseTimings::default(),
        details: Default::default(),
    }
}

/// The behaviour every store must have.
mod cases {
    use super::*;

    pub async fn apply_then_read_back_equals_the_delta(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let rollup = rich_rollup(1);
        let outcome = store.apply_batch(&batch("p1", 1, 1), &delta(&[(&s, m, rollup.clone())])).await.unwrap();
        assert_eq!(outcome, ApplyOutcome::Applied);
        let read = read_one(store, &s, m, m.next()).await;
        assert_eq!(read, vec![(m, rollup.clone())]);
        let (_, back) = &read[0];
        assert_eq!(back.latency.zero_count(), 1);
        assert_eq!(back.latency.count(), 6);
        assert_eq!(back.failures[&FailureKind::Timeout], 3);
        store.ping().await.unwrap();
    }

    pub async fn the_same_seq_again_is_a_duplicate_and_changes_nothing(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let first = delta(&[(&s, m, rich_rollup(1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &first).await.unwrap(), ApplyOutcome::Applied);
        // Same id, even with other content: already applied, so nothing may change.
        let other = delta(&[(&s, m, rich_rollup(7)), (&s, m.next(), simple_rollup(1, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &first).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &other).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(read_one(store, &s, m, Minute(m.0 + 5)).await, vec![(m, rich_rollup(1))]);
    }

    pub async fn a_lower_seq_is_a_duplicate(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let d = delta(&[(&s, m, simple_rollup(2, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 10), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 9), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(store.apply_batch(&batch("p1", 1, 0), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(store.apply_batch(&batch("p1", 1, 11), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, simple_rollup(4, 2))]);
    }

    pub async fn seq_zero_works_as_a_first_seq(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let d = delta(&[(&s, m, simple_rollup(1, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 0), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 0), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
    }

    pub async fn seqs_beyond_float_precision_compare_exactly(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let d = delta(&[(&s, m, simple_rollup(1, 1))]);
        let big = (1u64 << 53) + 1;
        assert_eq!(store.apply_batch(&batch("p1", 1, big), &d).await.unwrap(), ApplyOutcome::Applied);
        // 2^53 and 2^53 + 1 are the same f64: a float comparison would get these wrong.
        assert_eq!(store.apply_batch(&batch("p1", 1, big - 1), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(store.apply_batch(&batch("p1", 1, big + 1), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, u64::MAX), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, u64::MAX), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, simple_rollup(3, 3))]);
    }

    pub async fn epochs_and_probers_are_independent(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let d = delta(&[(&s, m, simple_rollup(1, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &d).await.unwrap(), ApplyOutcome::Applied);
        // A restarted prober (new epoch) starts its sequence again.
        assert_eq!(store.apply_batch(&batch("p1", 2, 1), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p2", 1, 1), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p2", 1, 5), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 2, 1), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, simple_rollup(4, 4))]);
    }

    pub async fn batches_merge_by_addition(store: &dyn Store) {
        let (a, b, m) = (series("api", "eu-west"), series("api", "us-west"), base());
        let first = delta(&[(&a, m, rich_rollup(1)), (&b, m, simple_rollup(3, 2))]);
        let second = delta(&[(&a, m, rich_rollup(2)), (&a, m.next(), simple_rollup(1, 0))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 1), &first).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p2", 1, 1), &second).await.unwrap(), ApplyOutcome::Applied);
        let mut merged = rich_rollup(1);
        merged.merge(&rich_rollup(2));
        assert_eq!(merged, rich_rollup(3), "sanity: the fixture scales linearly");
        assert_eq!(
            read_one(store, &a, m, Minute(m.0 + 2)).await,
            vec![(m, rich_rollup(3)), (m.next(), simple_rollup(1, 0))]
        );
        assert_eq!(read_one(store, &b, m, Minute(m.0 + 2)).await, vec![(m, simple_rollup(3, 2))]);
    }

    pub async fn read_range_is_half_open_and_missing_minutes_are_absent(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let at = |offset: i64| Minute(m.0 + offset);
        let d = delta(&[
            (&s, at(0), simple_rollup(1, 1)),
            (&s, at(2), simple_rollup(2, 1)),
            (&s, at(3), simple_rollup(3, 3)),
        ]);
        store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap();
        assert_eq!(
            read_one(store, &s, at(0), at(3)).await,
            vec![(at(0), simple_rollup(1, 1)), (at(2), simple_rollup(2, 1))]
        );
        assert_eq!(read_one(store, &s, at(1), at(3)).await, vec![(at(2), simple_rollup(2, 1))]);
        assert_eq!(read_one(store, &s, at(3), at(4)).await, vec![(at(3), simple_rollup(3, 3))]);
        assert_eq!(read_one(store, &s, at(-10), at(0)).await, vec![]);
        assert_eq!(read_one(store, &s, at(1), at(2)).await, vec![]);
        assert_eq!(read_one(store, &s, at(3), at(3)).await, vec![], "empty range");
        assert_eq!(read_one(store, &s, at(4), at(0)).await, vec![], "reversed range");
        assert_eq!(read_one(store, &series("nothing", "eu-west"), at(0), at(4)).await, vec![]);
    }

    pub async fn several_series_in_one_read_keep_their_order(store: &dyn Store) {
        let m = base();
        let (a, b, c, missing) =
            (series("a", "eu-west"), series("b", "eu-west"), series("a", "us-west"), series("zz", "eu-west"));
        let d = delta(&[(&a, m, simple_rollup(1, 1)), (&b, m, simple_rollup(2, 2)), (&c, m, simple_rollup(3, 3))]);
        store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap();
        let read = store.read_rollups(&[c.clone(), missing, a.clone(), b.clone(), c], m, m.next()).await.unwrap();
        assert_eq!(
            read,
            vec![
                vec![(m, simple_rollup(3, 3))],
                vec![],
                vec![(m, simple_rollup(1, 1))],
                vec![(m, simple_rollup(2, 2))],
                vec![(m, simple_rollup(3, 3))],
            ]
        );
        assert_eq!(store.read_rollups(&[], m, m.next()).await.unwrap(), Vec::<Vec<(Minute, Rollup)>>::new());
    }

    pub async fn list_series_is_sorted_and_complete(store: &dyn Store) {
        assert_eq!(store.list_series().await.unwrap(), vec![]);
        let m = base();
        let all = [
            series("web", "us-west"),
            series("api", "us-west"),
            series("api", "eu-west"),
            series("edge.v2", "ap-south"),
        ];
        for (seq, s) in all.iter().enumerate() {
            let d = delta(&[(s, m, simple_rollup(1, 1)), (s, m.next(), simple_rollup(1, 1))]);
            store.apply_batch(&batch("p1", 1, seq as u64), &d).await.unwrap();
        }
        let mut expected = all.to_vec();
        expected.sort();
        assert_eq!(store.list_series().await.unwrap(), expected);
    }

    pub async fn an_empty_batch_is_applied_and_stores_nothing(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        assert_eq!(
            store.apply_batch(&batch("p1", 1, 3), &RollupDelta::default()).await.unwrap(),
            ApplyOutcome::Applied
        );
        assert_eq!(store.list_series().await.unwrap(), vec![]);
        let d = delta(&[(&s, m, simple_rollup(1, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 4), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 4), &d).await.unwrap(), ApplyOutcome::Duplicate);
    }

    /// Watermarks are per endpoint: a batch whose endpoints were all seen is a duplicate; one
    /// that brings an endpoint not yet applied at that seq applies that endpoint only.
    pub async fn a_resend_completes_a_partly_applied_batch_without_double_counting(store: &dyn Store) {
        let (a, b, m) = (series("api", "eu-west"), series("web", "eu-west"), base());
        // Seq 7 reached `api` only (as when the other endpoint's script failed).
        store.apply_batch(&batch("p1", 1, 7), &delta(&[(&a, m, simple_rollup(2, 2))])).await.unwrap();
        // Its resend carries both endpoints: `web` is applied, `api` is not counted again.
        let whole = delta(&[(&a, m, simple_rollup(2, 2)), (&b, m, simple_rollup(3, 1))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 7), &whole).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 7), &whole).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(read_one(store, &a, m, m.next()).await, vec![(m, simple_rollup(2, 2))]);
        assert_eq!(read_one(store, &b, m, m.next()).await, vec![(m, simple_rollup(3, 1))]);
    }

    /// Hourly rollups are the sums of their minutes, across batches, and half-open by hour.
    pub async fn hourly_rollups_add_up_their_minutes(store: &dyn Store) {
        let s = series("api", "eu-west");
        let hour = Minute(base().0 - 180).hour();
        let first = hour.first_minute();
        let entries = [
            (first, rich_rollup(1)),
            (Minute(first.0 + 59), simple_rollup(4, 3)),
            (Minute(first.0 + 60), simple_rollup(5, 5)),
        ];
        for (seq, (minute, rollup)) in entries.iter().enumerate() {
            let d = delta(&[(&s, *minute, rollup.clone())]);
            store.apply_batch(&batch("p1", 1, seq as u64), &d).await.unwrap();
        }
        let mut first_hour = rich_rollup(1);
        first_hour.merge(&simple_rollup(4, 3));
        let read = store.read_hourly(std::slice::from_ref(&s), hour, Hour(hour.0 + 3)).await.unwrap();
        assert_eq!(read, vec![vec![(hour, first_hour.clone()), (Hour(hour.0 + 1), simple_rollup(5, 5))]]);
        let read = store.read_hourly(std::slice::from_ref(&s), hour, Hour(hour.0 + 1)).await.unwrap();
        assert_eq!(read, vec![vec![(hour, first_hour)]]);
        assert_eq!(store.read_hourly(std::slice::from_ref(&s), hour, hour).await.unwrap(), vec![vec![]]);
    }

    /// The latest raw records, newest first, trimmed to what is kept, never duplicated by a
    /// resend.
    pub async fn raw_records_keep_the_latest_once(store: &dyn Store) {
        let (s, other, m) = (series("api", "eu-west"), series("api", "us-west"), base());
        let record = |i: i64| RawRecord {
            started_at_ms: m.start_ms() + i,
            duration_us: (1_000 + i) as u64,
            status_code: 200,
            failure: (i % 7 == 0).then_some(FailureKind::Timeout),
            address: (i % 2 == 0).then(|| std::net::SocketAddr::from(([10, 0, 0, (i % 3) as u8], 443))),
        };
        let mut expected = Vec::new();
        let per_batch = 400;
        for seq in 0..3i64 {
            let mut d = delta(&[(&s, m, simple_rollup(1, 1))]);
            let records: Vec<RawRecord> = (seq * per_batch..(seq + 1) * per_batch).map(record).collect();
            expected.extend(records.iter().copied());
            d.records.insert(s.clone(), records);
            d.records.insert(other.clone(), vec![record(-1)]);
            let id = batch("p1", 1, seq as u64);
            assert_eq!(store.apply_batch(&id, &d).await.unwrap(), ApplyOutcome::Applied);
            assert_eq!(store.apply_batch(&id, &d).await.unwrap(), ApplyOutcome::Duplicate);
        }
        expected.reverse();
        expected.truncate(RECORDS_KEPT);
        assert_eq!(store.read_records(&s, 5_000).await.unwrap(), expected);
        assert_eq!(store.read_records(&s, 3).await.unwrap(), expected[..3]);
        assert_eq!(store.read_records(&other, 10).await.unwrap(), vec![record(-1); 3]);
        assert_eq!(store.read_records(&series("web", "eu-west"), 10).await.unwrap(), vec![]);
        assert_eq!(store.read_records(&s, 0).await.unwrap(), vec![]);
    }

    /// Figures land once: a re-sent batch is a duplicate, also with other content.
    pub async fn figures_are_applied_once_even_when_the_batch_is_resent(store: &dyn Store) {
        let (a, m) = (mixer("eu-west"), base());
        let d = figures_delta(&[(&a, m, figures(1, -6_000)), (&a, m.next(), figures(2, -3_000))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &d).await.unwrap(), ApplyOutcome::Duplicate);
        assert_eq!(store.apply_batch(&batch("p1", 1, 4), &d).await.unwrap(), ApplyOutcome::Duplicate);
        let other = figures_delta(&[(&a, m, figures(9, 0))]);
        assert_eq!(store.apply_batch(&batch("p1", 1, 5), &other).await.unwrap(), ApplyOutcome::Duplicate);
        let expected = vec![(m, figures(1, -6_000)), (m.next(), figures(2, -3_000))];
        assert_eq!(read_figures_one(store, &a, m, Minute(m.0 + 5)).await, expected);
        // Another prober, or a new epoch, is its own sequence space.
        assert_eq!(store.apply_batch(&batch("p2", 1, 5), &d).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 2, 1), &d).await.unwrap(), ApplyOutcome::Applied);
        let read = read_figures_one(store, &a, m, m.next()).await;
        assert_eq!(read, vec![(m, merged(&[figures(1, -6_000), figures(1, -6_000), figures(1, -6_000)]))]);
        assert_eq!(read[0].1.sum("rq:200"), 300);
    }

    /// Each subject is its own exactly-once space, and endpoints and subjects of one batch are
    /// independent: a resend of a partly applied batch applies only what is missing.
    pub async fn a_resend_completes_a_partly_applied_batch_of_figures(store: &dyn Store) {
        let (a, b, c, m) = (mixer("eu-west"), node("eu-west", "n1"), pod("eu-west", "mixer", "ai-1"), base());
        let s = series("api", "eu-west");
        // Seq 7 reached subject `a` and the endpoint only.
        let mut first = figures_delta(&[(&a, m, figures(1, -1_000))]);
        first.rollups.insert((s.clone(), m), simple_rollup(2, 2));
        assert_eq!(store.apply_batch(&batch("p1", 1, 7), &first).await.unwrap(), ApplyOutcome::Applied);
        let mut node_fields = Fields::default();
        node_fields.add("cpu", 250_000);
        node_fields.add("cpun", 1);
        node_fields.max("cpux", 250_000);
        let mut pod_fields = Fields::default();
        pod_fields.add("n", 2);
        pod_fields.add("rdy", 1);
        let mut whole =
            figures_delta(&[(&a, m, figures(1, -1_000)), (&b, m, node_fields.clone()), (&c, m, pod_fields.clone())]);
        whole.rollups.insert((s.clone(), m), simple_rollup(2, 2));
        assert_eq!(store.apply_batch(&batch("p1", 1, 7), &whole).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 7), &whole).await.unwrap(), ApplyOutcome::Duplicate);
        let read = store.read_figures(&[c.clone(), a.clone(), b.clone()], m, m.next()).await.unwrap();
        assert_eq!(read, vec![vec![(m, pod_fields)], vec![(m, figures(1, -1_000))], vec![(m, node_fields)]]);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, simple_rollup(2, 2))]);
    }

    /// Maxima merge by maximum, negative ones included (an absent maximum is not 0).
    pub async fn figure_maxes_keep_negative_values(store: &dyn Store) {
        let (a, m) = (mixer("eu-west"), base());
        for (seq, peak) in [(1, -8_000), (2, -2_500), (3, -9_999)] {
            let d = figures_delta(&[(&a, m, figures(1, peak))]);
            assert_eq!(store.apply_batch(&batch("p1", 1, seq), &d).await.unwrap(), ApplyOutcome::Applied);
        }
        let read = read_figures_one(store, &a, m, m.next()).await;
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1.max_of("pkx"), Some(-2_500));
        assert_eq!(read[0].1.sum("pks"), -8_000 - 2_500 - 9_999);
        let hourly = store.read_figures_hourly(std::slice::from_ref(&a), m.hour(), Hour(m.hour().0 + 1)).await.unwrap();
        assert_eq!(hourly[0][0].1.max_of("pkx"), Some(-2_500));
        // Beyond f64's exact integers, maxima still compare exactly.
        let big = (1i64 << 53) + 1;
        for (seq, value) in [(4, big - 1), (5, big), (6, big - 2)] {
            let mut fields = Fields::default();
            fields.max("mrx", value);
            let d = figures_delta(&[(&a, m, fields)]);
            store.apply_batch(&batch("p1", 1, seq), &d).await.unwrap();
        }
        assert_eq!(read_figures_one(store, &a, m, m.next()).await[0].1.max_of("mrx"), Some(big));
    }

    /// A minute mark is 1 in its minute however many probers and batches mark it, and an hour
    /// counts its marked minutes once each; resends change nothing.
    pub async fn minute_marks_count_each_minute_once(store: &dyn Store) {
        let a = mixer("ap");
        let hour = Minute(base().0 - 240).hour();
        let first = hour.first_minute();
        let marked = |requests: i64| {
            let mut fields = Fields::default();
            fields.mark("cm");
            fields.add("rq:200", requests);
            fields
        };
        // Two probers mark minute 0; one batch marks minutes 0, 1 and 61 (the next hour).
        store.apply_batch(&batch("p1", 1, 1), &figures_delta(&[(&a, first, marked(1))])).await.unwrap();
        store.apply_batch(&batch("p2", 1, 1), &figures_delta(&[(&a, first, marked(2))])).await.unwrap();
        let spanning = figures_delta(&[
            (&a, first, marked(4)),
            (&a, Minute(first.0 + 1), marked(8)),
            (&a, Minute(first.0 + 61), marked(16)),
        ]);
        store.apply_batch(&batch("p3", 1, 1), &spanning).await.unwrap();
        assert_eq!(store.apply_batch(&batch("p3", 1, 1), &spanning).await.unwrap(), ApplyOutcome::Duplicate);
        let minutes = read_figures_one(store, &a, first, Minute(first.0 + 120)).await;
        let seen: Vec<(i64, i64, i64)> =
            minutes.iter().map(|(m, f)| (m.0 - first.0, f.sum("cm"), f.sum("rq:200"))).collect();
        assert_eq!(seen, [(0, 1, 7), (1, 1, 8), (61, 1, 16)]);
        let hourly = store.read_figures_hourly(std::slice::from_ref(&a), hour, Hour(hour.0 + 2)).await.unwrap();
        let hours: Vec<(i64, i64)> = hourly[0].iter().map(|(_, f)| (f.sum("cm"), f.sum("rq:200"))).collect();
        assert_eq!(hours, [(2, 15), (1, 16)], "the first hour has two marked minutes, the second one");
    }

    /// Hourly figures are the merge of their minutes, across batches, half-open by hour.
    pub async fn hourly_figures_are_the_merge_of_minutes(store: &dyn Store) {
        let a = node("us-west", "n-2");
        let hour = Minute(base().0 - 180).hour();
        let first = hour.first_minute();
        let entries = [
            (first, figures(1, -4_000)),
            (Minute(first.0 + 30), figures(3, -1_000)),
            (Minute(first.0 + 59), figures(2, -7_000)),
            (Minute(first.0 + 60), figures(5, -500)),
        ];
        for (seq, (minute, fields)) in entries.iter().enumerate() {
            let d = figures_delta(&[(&a, *minute, fields.clone())]);
            store.apply_batch(&batch("p1", 1, seq as u64), &d).await.unwrap();
        }
        // One batch spanning both hours too.
        let d = figures_delta(&[(&a, first, figures(1, -100)), (&a, Minute(first.0 + 61), figures(1, -200))]);
        store.apply_batch(&batch("p1", 1, 10), &d).await.unwrap();
        let minutes = read_figures_one(store, &a, first, Minute(first.0 + 120)).await;
        assert_eq!(minutes.len(), 5);
        let expect_hour = |h: Hour| {
            merged(&minutes.iter().filter(|(m, _)| m.hour() == h).map(|(_, f)| f.clone()).collect::<Vec<_>>())
        };
        let read = store.read_figures_hourly(std::slice::from_ref(&a), hour, Hour(hour.0 + 3)).await.unwrap();
        let next = Hour(hour.0 + 1);
        assert_eq!(read, vec![vec![(hour, expect_hour(hour)), (next, expect_hour(next))]]);
        assert_eq!(read[0][0].1.max_of("pkx"), Some(-100));
        assert_eq!(read[0][0].1.sum("rq:200"), 700);
        let read = store.read_figures_hourly(std::slice::from_ref(&a), hour, next).await.unwrap();
        assert_eq!(read, vec![vec![(hour, expect_hour(hour))]]);
        assert_eq!(store.read_figures_hourly(std::slice::from_ref(&a), hour, hour).await.unwrap(), vec![vec![]]);
        assert_eq!(read_figures_one(store, &a, Minute(first.0 + 1), Minute(first.0 + 30)).await, vec![]);
        assert_eq!(read_figures_one(store, &mixer("nowhere"), first, Minute(first.0 + 120)).await, vec![]);
    }

    pub async fn list_subjects_is_sorted_and_complete(store: &dyn Store) {
        assert_eq!(store.list_subjects().await.unwrap(), vec![]);
        let m = base();
        let all = [
            pod("eu-west", "mixer", "ai-2"),
            node("eu-west", "n1"),
            mixer("us-west"),
            mixer("eu-west"),
            pod("eu-west", "kube-system", "dns-1"),
            node("ap-south", "n9"),
        ];
        for (seq, subject) in all.iter().enumerate() {
            let d = figures_delta(&[(subject, m, figures(1, -1))]);
            store.apply_batch(&batch("p1", 1, seq as u64), &d).await.unwrap();
        }
        let mut expected = all.to_vec();
        expected.sort();
        assert_eq!(store.list_subjects().await.unwrap(), expected);
        assert_eq!(store.list_series().await.unwrap(), vec![], "figures are no endpoint series");
    }

    /// The all-regions series is written with the regions', exactly once, and read by its key;
    /// it is not listed as a region and has no raw records.
    pub async fn all_regions_rollups_are_stored_once_and_not_listed(store: &dyn Store) {
        let m = base();
        let at = m.start_ms() + 5;
        let (eu, us) = (Region::new("eu-west").unwrap(), Region::new("us-west").unwrap());
        let mut first = RollupDelta::default();
        first.add(&eu, &probe("api", at, true, 1_000));
        first.add(&eu, &probe("api", at, false, 5_000));
        first.add(&eu, &probe("web", at + 60_000, true, 9_000));
        let mut second = RollupDelta::default();
        second.add(&us, &probe("api", at, true, 3_000));
        assert_eq!(store.apply_batch(&batch("p1", 1, 1), &first).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p2", 1, 1), &second).await.unwrap(), ApplyOutcome::Applied);
        assert_eq!(store.apply_batch(&batch("p1", 1, 1), &first).await.unwrap(), ApplyOutcome::Duplicate);
        let all_api = SeriesKey::all_regions(CheckId::new("api").unwrap());
        let regions =
            store.read_rollups(&[series("api", "eu-west"), series("api", "us-west")], m, m.next()).await.unwrap();
        let mut expected = regions[0][0].1.clone();
        expected.merge(&regions[1][0].1);
        assert_eq!((expected.total, expected.successes), (3, 2));
        assert_eq!(read_one(store, &all_api, m, Minute(m.0 + 2)).await, vec![(m, expected.clone())]);
        let hourly = store.read_hourly(std::slice::from_ref(&all_api), m.hour(), Hour(m.hour().0 + 1)).await.unwrap();
        assert_eq!(hourly[0][0].1.total, 3);
        let all_web = SeriesKey::all_regions(CheckId::new("web").unwrap());
        assert_eq!(read_one(store, &all_web, m, Minute(m.0 + 2)).await.len(), 1);
        assert_eq!(
            store.list_series().await.unwrap(),
            vec![series("api", "eu-west"), series("api", "us-west"), series("web", "eu-west")]
        );
        assert_eq!(store.read_records(&all_api, 10).await.unwrap(), vec![]);
        assert_eq!(store.read_records(&series("api", "eu-west"), 10).await.unwrap().len(), 2);
    }

    /// Sums stay exact far beyond a double's integers (2^53), whichever way a store adds them.
    pub async fn large_counters_add_exactly(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let big = Rollup { total: 1, successes: 1, latency_sum_us: 999_999_999_999_999, ..Default::default() };
        let huge = Rollup { total: 1, successes: 1, latency_sum_us: (1 << 60) + 1, ..Default::default() };
        let mut expected = Rollup::default();
        for (seq, rollup) in [(1, &big), (2, &big), (3, &huge), (4, &big)] {
            store.apply_batch(&batch("p1", 1, seq), &delta(&[(&s, m, rollup.clone())])).await.unwrap();
            expected.merge(rollup);
        }
        assert_eq!(expected.latency_sum_us, 3 * 999_999_999_999_999 + (1 << 60) + 1);
        assert_eq!(read_one(store, &s, m, m.next()).await, vec![(m, expected.clone())]);
        let hourly = store.read_hourly(std::slice::from_ref(&s), m.hour(), Hour(m.hour().0 + 1)).await.unwrap();
        assert_eq!(hourly, vec![vec![(m.hour(), expected)]]);
    }

    /// A read after new data sees it, however reads are cached.
    pub async fn reads_see_every_applied_batch(store: &dyn Store) {
        let (s, m) = (series("api", "eu-west"), base());
        let mut expected = Rollup::default();
        for seq in 1..=4u64 {
            let d = delta(&[(&s, m, simple_rollup(seq, seq - 1))]);
            store.apply_batch(&batch("p1", 1, seq), &d).await.unwrap();
            expected.merge(&simple_rollup(seq, seq - 1));
            assert_eq!(read_one(store, &s, Minute(m.0 - 90), m.next()).await, vec![(m, expected.clone())]);
        }
    }
}

async fn connect_redis_store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(RedisStoreConfig::new(server.url())).await.unwrap()
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(&super::MemoryStore::new()).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = mixmon_testkit::RedisServer::start().unwrap();
                    super::cases::$case(&super::connect_redis_store(&server).await).await;
                }
            )*
        }
    };
}

conformance!(
    apply_then_read_back_equals_the_delta,
    the_same_seq_again_is_a_duplicate_and_changes_nothing,
    a_lower_seq_is_a_duplicate,
    seq_zero_works_as_a_first_seq,
    seqs_beyond_float_precision_compare_exactly,
    epochs_and_probers_are_independent,
    batches_merge_by_addition,
    read_range_is_half_open_and_missing_minutes_are_absent,
    several_series_in_one_read_keep_their_order,
    list_series_is_sorted_and_complete,
    an_empty_batch_is_applied_and_stores_nothing,
    a_resend_completes_a_partly_applied_batch_without_double_counting,
    hourly_rollups_add_up_their_minutes,
    reads_see_every_applied_batch,
    raw_records_keep_the_latest_once,
    figures_are_applied_once_even_when_the_batch_is_resent,
    a_resend_completes_a_partly_applied_batch_of_figures,
    figure_maxes_keep_negative_values,
    hourly_figures_are_the_merge_of_minutes,
    minute_marks_count_each_minute_once,
    list_subjects_is_sorted_and_complete,
    all_regions_rollups_are_stored_once_and_not_listed,
    large_counters_add_exactly,
);

/// Direct access to the server, to look at what the store wrote.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn ttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn redis_keys_have_ttls_matching_their_retention() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let (s, m) = (series("api", "eu-west"), now_minute());
    let mut d = delta(&[(&s, m, simple_rollup(1, 1))]);
    let record =
        RawRecord { started_at_ms: m.start_ms(), duration_us: 5, status_code: 200, failure: None, address: None };
    d.records.insert(s.clone(), vec![record]);
    store.apply_batch(&batch("p1", 4, 1), &d).await.unwrap();
    let mut conn = raw(&server).await;

    // The rollup expires at its minute's start + retention; `m` started under a minute ago.
    let retention = ROLLUP_RETENTION_MINUTES * 60;
    let rollup_ttl = ttl(&mut conn, &keys::rollup(&s, m)).await;
    assert!((retention - 120..=retention).contains(&rollup_ttl), "rollup TTL {rollup_ttl}, retention {retention}");
    let hour_ttl = ttl(&mut conn, &keys::rollup_hour(&s, m.hour())).await;
    assert!((retention - 60..=retention + 3600).contains(&hour_ttl), "hourly rollup TTL {hour_ttl}");
    for index in [keys::CHECKS.to_string(), keys::regions(&s.check), keys::records(&s)] {
        let index_ttl = ttl(&mut conn, &index).await;
        assert!((retention - 60..=retention).contains(&index_ttl), "{index} TTL {index_ttl}");
    }
    let watermark = keys::watermark(&s.check, &ProberId::new("p1").unwrap(), 4);
    let wm_ttl = ttl(&mut conn, &watermark).await;
    let wm_retention = i64::try_from(WATERMARK_RETENTION_SECONDS).unwrap();
    assert!((wm_retention - 60..=wm_retention).contains(&wm_ttl), "watermark TTL {wm_ttl}");
    let stored: String = redis::cmd("GET").arg(&watermark).query_async(&mut conn).await.unwrap();
    assert_eq!(stored, "1");

    // A minute already past retention is not kept at all.
    let old = Minute(m.0 - ROLLUP_RETENTION_MINUTES - 1);
    store.apply_batch(&batch("p1", 4, 2), &delta(&[(&s, old, simple_rollup(1, 1))])).await.unwrap();
    assert_eq!(ttl(&mut conn, &keys::rollup(&s, old)).await, -2, "expired key does not exist");
}

#[tokio::test]
async fn redis_figure_keys_have_ttls_matching_their_retention() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let (a, m) = (mixer("eu-west"), now_minute());
    store.apply_batch(&batch("p1", 4, 1), &figures_delta(&[(&a, m, figures(1, -3))])).await.unwrap();
    let mut conn = raw(&server).await;
    let retention = ROLLUP_RETENTION_MINUTES * 60;
    let minute_ttl = ttl(&mut conn, &keys::figures(&a, m)).await;
    assert!((retention - 120..=retention).contains(&minute_ttl), "figures TTL {minute_ttl}");
    let hour_ttl = ttl(&mut conn, &keys::figures_hour(&a, m.hour())).await;
    assert!((retention - 60..=retention + 3600).contains(&hour_ttl), "hourly figures TTL {hour_ttl}");
    let index_ttl = ttl(&mut conn, keys::SUBJECTS).await;
    assert!((retention - 60..=retention).contains(&index_ttl), "subjects TTL {index_ttl}");
    let watermark = keys::figures_watermark(&a, &ProberId::new("p1").unwrap(), 4);
    let wm_ttl = ttl(&mut conn, &watermark).await;
    let wm_retention = i64::try_from(WATERMARK_RETENTION_SECONDS).unwrap();
    assert!((wm_retention - 60..=wm_retention).contains(&wm_ttl), "watermark TTL {wm_ttl}");
    let stored: String = redis::cmd("GET").arg(&watermark).query_async(&mut conn).await.unwrap();
    assert_eq!(stored, "1");
    // Maxima are stored apart from sums, so a reader knows which is which.
    let peak: i64 = redis::cmd("HGET").arg(keys::figures(&a, m)).arg("^pkx").query_async(&mut conn).await.unwrap();
    assert_eq!(peak, -3);
    // The all-regions series shares its check's hash tag and is kept out of the region set.
    let mut d = RollupDelta::default();
    d.add(&Region::new("eu-west").unwrap(), &probe("api", m.start_ms(), true, 10));
    store.apply_batch(&batch("p1", 4, 2), &d).await.unwrap();
    let all = SeriesKey::all_regions(CheckId::new("api").unwrap());
    assert_eq!(keys::rollup(&all, m), format!("mixmon:v1:{{api}}:roll:_all:{}", m.0));
    let all_ttl = ttl(&mut conn, &keys::rollup(&all, m)).await;
    assert!((retention - 120..=retention).contains(&all_ttl), "all-regions TTL {all_ttl}");
    let regions: Vec<String> =
        redis::cmd("SMEMBERS").arg(keys::regions(&all.check)).query_async(&mut conn).await.unwrap();
    assert_eq!(regions, ["eu-west"]);
}

#[tokio::test]
async fn a_corrupt_figure_key_fails_its_subject_only_and_the_resend_completes() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let mut conn = raw(&server).await;
    let (good, bad, m) = (mixer("eu-west"), node("eu-west", "n1"), base());
    let wrong = keys::figures(&bad, m);
    let _: () = redis::cmd("SET").arg(&wrong).arg("not a hash").query_async(&mut conn).await.unwrap();
    let d = figures_delta(&[(&good, m, figures(1, -1)), (&bad, m, figures(2, -2))]);
    let err = store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains(&wrong)), "{err}");
    assert_eq!(read_figures_one(&store, &good, m, m.next()).await, vec![(m, figures(1, -1))]);
    let err = store.read_figures(std::slice::from_ref(&bad), m, m.next()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if *key == wrong), "{err}");
    let _: () = redis::cmd("DEL").arg(&wrong).query_async(&mut conn).await.unwrap();
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Duplicate);
    assert_eq!(read_figures_one(&store, &good, m, m.next()).await, vec![(m, figures(1, -1))]);
    assert_eq!(read_figures_one(&store, &bad, m, m.next()).await, vec![(m, figures(2, -2))]);
    // A value that is no integer is corrupt, naming its key; unreadable index members are skipped.
    let _: () =
        redis::cmd("HSET").arg(keys::figures(&good, m)).arg("rq:200").arg("x").query_async(&mut conn).await.unwrap();
    let err = store.read_figures(std::slice::from_ref(&good), m, m.next()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if *key == keys::figures(&good, m)), "{err}");
    let _: () =
        redis::cmd("SADD").arg(keys::SUBJECTS).arg("host:x").arg("mixer:a b").query_async(&mut conn).await.unwrap();
    assert_eq!(store.list_subjects().await.unwrap(), vec![good, bad]);
}

#[tokio::test]
async fn a_killed_redis_is_unavailable_and_the_store_recovers_after_restart() {
    let mut server = RedisServer::start().unwrap();
    let mut config = RedisStoreConfig::new(server.url());
    config.response_timeout = Duration::from_secs(1);
    let store = RedisStore::connect(config).await.unwrap();
    let (s, m) = (series("api", "eu-west"), base());
    let d = delta(&[(&s, m, simple_rollup(1, 1))]);
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Applied);

    server.kill();
    for seq in 2..4 {
        let started = Instant::now();
        let result = store.apply_batch(&batch("p1", 1, seq), &d).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    }
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.read_rollups(std::slice::from_ref(&s), m, m.next()).await, Err(StoreError::Unavailable(_))));

    // Without persistence the restarted server is empty, scripts included: the store must
    // reconnect by itself and reload its script.
    server.restart().unwrap();
    eventually(Duration::from_secs(10), Duration::from_millis(50), || async { store.ping().await.is_ok() })
        .await
        .expect("store usable again after restart");
    assert_eq!(store.apply_batch(&batch("p1", 1, 2), &d).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(read_one(&store, &s, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
}

fn signal(server: &RedisServer, signal: &str) {
    let pid = server.pid().unwrap().to_string();
    let status = std::process::Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_hung_redis_is_unavailable_within_the_response_timeout() {
    let server = RedisServer::start().unwrap();
    let mut config = RedisStoreConfig::new(server.url());
    config.response_timeout = Duration::from_millis(500);
    let store = RedisStore::connect(config).await.unwrap();
    let (s, m) = (series("api", "eu-west"), base());
    let d = delta(&[(&s, m, simple_rollup(1, 1))]);

    // Stopped, not dead: the connection stays open and nothing ever answers.
    signal(&server, "-STOP");
    let started = Instant::now();
    let result = store.apply_batch(&batch("p1", 1, 1), &d).await;
    let elapsed = started.elapsed();
    signal(&server, "-CONT");
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1500), "took {elapsed:?}");

    // The timed-out batch may or may not have landed once Redis resumed; a resend must leave
    // exactly one copy either way.
    eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
        store.apply_batch(&batch("p1", 1, 1), &d).await.is_ok()
    })
    .await
    .expect("store usable again after the hang");
    assert_eq!(read_one(&store, &s, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
}

#[tokio::test]
async fn applied_batches_survive_a_crash_with_append_only() {
    let mut server = RedisServer::builder().append_only(true).start().unwrap();
    let store = connect_redis_store(&server).await;
    let (s, m) = (series("api", "eu-west"), base());
    let d = delta(&[(&s, m, rich_rollup(1))]);
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Applied);
    server.kill();
    server.restart().unwrap();
    eventually(Duration::from_secs(10), Duration::from_millis(50), || async { store.ping().await.is_ok() })
        .await
        .expect("store usable again after restart");
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Duplicate, "watermark kept");
    assert_eq!(read_one(&store, &s, m, m.next()).await, vec![(m, rich_rollup(1))]);
}

#[tokio::test]
async fn connecting_to_a_dead_port_is_unavailable_naming_the_url_without_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let err = RedisStore::connect(RedisStoreConfig::new(&url)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(&err, StoreError::Unavailable(msg) if msg.contains(&url)), "{err}");

    let secret_url = format!("redis://admin:s3cr3t-pw@127.0.0.1:{port}/0");
    let err = RedisStore::connect(RedisStoreConfig::new(&secret_url)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(shown.contains(&format!("redis://admin:***@127.0.0.1:{port}/0")), "{shown}");
    assert!(matches!(err, StoreError::Unavailable(_)));
}

#[tokio::test]
async fn a_wrong_password_never_shows_the_password() {
    let server = RedisServer::start().unwrap();
    let mut conn = raw(&server).await;
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("right-pw").query_async(&mut conn).await.unwrap();
    let url = format!("redis://:wrong-pw@127.0.0.1:{}", server.port());
    let err = RedisStore::connect(RedisStoreConfig::new(&url)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{shown}");
    assert!(!shown.contains("wrong-pw") && !shown.contains("right-pw"), "{shown}");

    let url = format!("redis://:right-pw@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(RedisStoreConfig::new(&url)).await.unwrap();
    store.ping().await.unwrap();
    assert!(!format!("{store:?}").contains("right-pw"));
}

#[tokio::test]
async fn corrupt_stored_data_is_reported_with_its_key() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let mut conn = raw(&server).await;
    let (s, m) = (series("api", "eu-west"), base());
    let key = keys::rollup(&s, m);
    let _: () =
        redis::cmd("HSET").arg(&key).arg("n").arg("many").arg("future").arg("x").query_async(&mut conn).await.unwrap();
    let err = store.read_rollups(std::slice::from_ref(&s), m, m.next()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key: k, .. } if *k == key), "{err}");

    // A key of the wrong type fails the read, naming it, and a batch touching it changes nothing.
    let other = series("web", "eu-west");
    let wrong = keys::rollup(&other, m);
    let _: () = redis::cmd("SET").arg(&wrong).arg("not a hash").query_async(&mut conn).await.unwrap();
    let err = store.read_rollups(std::slice::from_ref(&other), m, m.next()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key: k, .. } if *k == wrong), "{err}");
    let fine = series("fine", "eu-west");
    let d = delta(&[(&fine, m, simple_rollup(1, 1)), (&other, m, simple_rollup(1, 1))]);
    let err = store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains(&wrong)), "{err}");
    // Each endpoint is atomic: `fine` landed, the corrupt one changed nothing.
    assert_eq!(read_one(&store, &fine, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
    assert_eq!(redis::cmd("GET").arg(&wrong).query_async::<String>(&mut conn).await.unwrap(), "not a hash");
    // Once the bad key is gone, the resend completes the batch; `fine` is not counted twice.
    let _: () = redis::cmd("DEL").arg(&wrong).query_async(&mut conn).await.unwrap();
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply_batch(&batch("p1", 1, 1), &d).await.unwrap(), ApplyOutcome::Duplicate);
    assert_eq!(read_one(&store, &fine, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
    assert_eq!(read_one(&store, &other, m, m.next()).await, vec![(m, simple_rollup(1, 1))]);
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_bad_index_members_skipped() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let mut conn = raw(&server).await;
    let (s, m) = (series("api", "eu-west"), base());
    store.apply_batch(&batch("p1", 1, 1), &delta(&[(&s, m, rich_rollup(1))])).await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys::rollup(&s, m))
        .arg("from-the-future")
        .arg("whatever")
        .arg("f:new_kind")
        .arg(4)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read_one(&store, &s, m, m.next()).await, vec![(m, rich_rollup(1))]);
    let _: () = redis::cmd("SADD").arg(keys::CHECKS).arg("a b").arg("{x}").query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("SADD").arg(keys::regions(&s.check)).arg("bad region").query_async(&mut conn).await.unwrap();
    assert_eq!(store.list_series().await.unwrap(), vec![s]);
}

#[tokio::test]
async fn oversized_reads_are_refused() {
    let server = RedisServer::start().unwrap();
    let store = connect_redis_store(&server).await;
    let m = base();
    let one = [series("api", "eu-west")];
    let err = store.read_rollups(&one, m, Minute(m.0 + 31 * 24 * 60 + 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let many: Vec<SeriesKey> = (0..10).map(|i| series(&format!("c{i}"), "eu-west")).collect();
    let err = store.read_rollups(&many, m, Minute(m.0 + 20_001)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    // A full month of one series is allowed, and missing minutes are simply absent.
    assert_eq!(store.read_rollups(&one, m, Minute(m.0 + 31 * 24 * 60)).await.unwrap(), vec![vec![]]);
}

#[tokio::test]
async fn reads_are_the_same_with_a_tiny_cache_and_without_one() {
    let server = RedisServer::start().unwrap();
    let connect = |hours: usize| {
        let mut config = RedisStoreConfig::new(server.url());
        config.read_cache_hours = hours;
        RedisStore::connect(config)
    };
    let (uncached, tiny, roomy) = (connect(0).await.unwrap(), connect(2).await.unwrap(), connect(1000).await.unwrap());
    let (a, b) = (series("api", "eu-west"), series("api", "us-west"));
    let start = Minute(base().0 - 5 * 60);
    let entries: Vec<(&SeriesKey, Minute, Rollup)> = (0..5 * 60)
        .step_by(7)
        .flat_map(|m| [(&a, Minute(start.0 + m), simple_rollup(3, 2)), (&b, Minute(start.0 + m + 1), rich_rollup(1))])
        .collect();
    uncached.apply_batch(&batch("p1", 1, 1), &delta(&entries)).await.unwrap();
    let both = [a.clone(), b.clone()];
    let expected = uncached.read_rollups(&both, start, base()).await.unwrap();
    assert_eq!(expected[0].len() + expected[1].len(), entries.len());
    for round in 0..3 {
        assert_eq!(tiny.read_rollups(&both, start, base()).await.unwrap(), expected, "round {round}");
        assert_eq!(roomy.read_rollups(&both, start, base()).await.unwrap(), expected, "round {round}");
        let from = Minute(start.0 + 61 + round);
        assert_eq!(
            roomy.read_rollups(&both, from, base()).await.unwrap(),
            uncached.read_rollups(&both, from, base()).await.unwrap()
        );
    }
}
