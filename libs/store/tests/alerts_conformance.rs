#![allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
//! One suite for alerting's part of every store ([`AlertStore`]): lease and fencing,
//! newest-wins observations, prober liveness, commits, the transitions stream and history,
//! probe requests, silences, and the notifier's groups and outbox. Each case takes a fresh store.

use std::collections::BTreeMap;
use std::time::Duration;

use mixmon_model::alert::dispatch::{GroupState, GroupTiming};
use mixmon_model::alert::Notification;
use mixmon_model::alert::{
    AlertInstance, AlertState, AlertTransition, LabelSet, LatestObservation, Silence, SilenceMatcher,
};
use mixmon_model::CheckId;
use mixmon_store::{
    AlertStore, CommitOutcome, Delivery, IntegrationStatus, MemoryStore, OutboxStore, ProbeRequest, ProberSeen,
};

fn check(id: &str) -> CheckId {
    CheckId::new(id).unwrap()
}

fn observation(prober: &str, started_ms: i64, ok: bool) -> LatestObservation {
    LatestObservation {
        prober: prober.into(),
        region: "eu-west".into(),
        started_ms,
        ok,
        streak: 1,
        streak_since_ms: started_ms,
        failure: (!ok).then(|| "timeout".to_string()),
    }
}

fn instance(endpoint: &str, state: AlertState) -> AlertInstance {
    AlertInstance {
        labels: LabelSet::new().with("alertname", "ServiceDown").with("endpoint", endpoint),
        annotations: BTreeMap::from([("summary".into(), format!("{endpoint} down"))]),
        state,
        value: Some(4.0),
        active_at_ms: Some(1_000),
        fired_at_ms: (state == AlertState::Firing).then_some(61_000),
        resolved_at_ms: None,
        last_bad_ms: Some(61_000),
        updated_at_ms: 61_000,
        event: false,
        inhibited_by: Vec::new(),
        silenced_by: Vec::new(),
    }
}

fn transition(of: &AlertInstance, from: AlertState, at_ms: i64) -> AlertTransition {
    AlertTransition::of(of, from, at_ms)
}

pub async fn newest_observation_wins(store: &dyn AlertStore) {
    let api = check("api");
    store.write_latest(&[(api.clone(), observation("p1", 2_000, false))]).await.unwrap();
    store
        .write_latest(&[(api.clone(), observation("p1", 1_000, true)), (api.clone(), observation("p2", 500, true))])
        .await
        .unwrap();
    let read = store.read_latest(&[api.clone(), check("edge")]).await.unwrap();
    assert_eq!(read.len(), 2);
    assert!(read[1].is_empty());
    let mut got = read[0].clone();
    got.sort_by(|a, b| a.prober.cmp(&b.prober));
    assert_eq!(got, [observation("p1", 2_000, false), observation("p2", 500, true)], "the older write lost");
}

pub async fn probers_keep_first_and_latest_seen(store: &dyn AlertStore) {
    let seen = |last| ProberSeen {
        prober: "p1".into(),
        region: "eu-west".into(),
        node: "n1".into(),
        first_seen_ms: last,
        last_seen_ms: last,
    };
    store.record_probers(&[seen(5_000)]).await.unwrap();
    store.record_probers(&[seen(9_000)]).await.unwrap();
    store.record_probers(&[seen(7_000)]).await.unwrap();
    let probers = store.read_probers().await.unwrap();
    assert_eq!(probers.len(), 1);
    assert_eq!((probers[0].first_seen_ms, probers[0].last_seen_ms), (5_000, 9_000));
}

pub async fn one_leader_and_fencing(store: &dyn AlertStore) {
    let a = store.acquire_lease("a", 5_000, 0).await.unwrap().expect("a free lease is taken");
    assert!(store.acquire_lease("b", 5_000, 1_000).await.unwrap().is_none(), "held by a");
    let renewed = store.acquire_lease("a", 5_000, 2_000).await.unwrap().unwrap();
    assert_eq!(renewed.token, a.token, "the holder renews the same holding");
    assert!(store.renew_lease(&a, 5_000, 3_000).await.unwrap());
    // a stops renewing (paused); after the TTL b takes over with a higher token.
    let b = store.acquire_lease("b", 5_000, 8_001).await.unwrap().expect("an expired lease is free");
    assert!(b.token > a.token);
    assert!(!store.renew_lease(&a, 5_000, 8_002).await.unwrap(), "a lost it");
    let firing = instance("eu-west", AlertState::Firing);
    let t = transition(&firing, AlertState::Pending, 8_003);
    assert_eq!(
        store.commit_alerts(&a, std::slice::from_ref(&firing), &[], std::slice::from_ref(&t), 8_003).await.unwrap(),
        CommitOutcome::Fenced,
        "the paused old leader cannot write"
    );
    assert!(store.load_alerts().await.unwrap().is_empty());
    assert!(store.read_transitions(None, 10).await.unwrap().is_empty());
    assert_eq!(
        store.commit_alerts(&b, std::slice::from_ref(&firing), &[], &[t], 8_004).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(store.load_alerts().await.unwrap(), [firing]);
    store.release_lease(&b).await.unwrap();
    let c = store.acquire_lease("c", 5_000, 8_005).await.unwrap().expect("released: free at once");
    assert!(c.token > b.token);
}

pub async fn commits_upsert_remove_and_stream(store: &dyn AlertStore) {
    let lease = store.acquire_lease("a", 60_000, 0).await.unwrap().unwrap();
    let pending = instance("eu-west", AlertState::Pending);
    let other = instance("api", AlertState::Pending);
    let t1 = transition(&pending, AlertState::Inactive, 1_000);
    store
        .commit_alerts(&lease, &[pending.clone(), other.clone()], &[], std::slice::from_ref(&t1), 1_000)
        .await
        .unwrap();
    let firing = instance("eu-west", AlertState::Firing);
    let t2 = transition(&firing, AlertState::Pending, 61_000);
    let t3 = transition(&other, AlertState::Pending, 61_000);
    store
        .commit_alerts(&lease, std::slice::from_ref(&firing), &[other.fingerprint()], &[t2.clone(), t3.clone()], 61_000)
        .await
        .unwrap();
    assert_eq!(store.load_alerts().await.unwrap(), [firing], "upserted and removed");
    let all = store.read_transitions(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.transition.clone()).collect::<Vec<_>>(), [t1.clone(), t2.clone(), t3.clone()]);
    let after_first = store.read_transitions(Some(&all[0].id), 10).await.unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(after_first[0].id, all[1].id);
    assert_eq!(store.read_transitions(Some(&all[0].id), 1).await.unwrap().len(), 1, "limit");
    let history = store.read_history(0, 100_000, 10).await.unwrap();
    assert_eq!(history, [t3, t2.clone(), t1], "newest first");
    assert_eq!(store.read_history(50_000, 100_000, 1).await.unwrap().len(), 1);
    assert!(store.read_history(0, 1_000, 10).await.unwrap().is_empty(), "to is exclusive");
    assert!(store.read_transitions(Some("garbage"), 10).await.is_err(), "a bad position is refused, not a panic");
}

pub async fn probe_requests_reach_subscribers(store: &dyn AlertStore) {
    let mut rx = store.subscribe_probe_requests().await.unwrap();
    let request = ProbeRequest { check: "api".into(), except_region: "eu-west".into(), requested_at_ms: 7 };
    // A networked store's subscription may take a moment to be in place: publish until one
    // arrives, within a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        store.publish_probe_request(&request).await.unwrap();
        if let Ok(Ok(got)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            assert_eq!(got, request);
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no probe request arrived within 5 s");
    }
}

pub async fn silences_are_kept_replaced_and_dropped_after_retention(store: &dyn AlertStore) {
    let silence = |id: &str, ends: i64| Silence {
        id: id.into(),
        matchers: vec![SilenceMatcher {
            name: "alertname".into(),
            value: "ServiceDown".into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at_ms: 0,
        ends_at_ms: ends,
        created_by: "sre".into(),
        comment: "upgrade".into(),
        updated_at_ms: 0,
    };
    store.put_silence(&silence("a", 1_000)).await.unwrap();
    store.put_silence(&silence("b", 2_000)).await.unwrap();
    store.put_silence(&silence("a", 5_000)).await.unwrap();
    let read = store.read_silences(3_000).await.unwrap();
    assert_eq!(read, [silence("a", 5_000), silence("b", 2_000)], "replaced by id");
    let month = mixmon_model::alert::silence::SILENCE_RETENTION_MS;
    assert_eq!(store.read_silences(2_000 + month + 1).await.unwrap(), [silence("a", 5_000)], "b ended too long ago");
    assert_eq!(store.read_silences(2_000 + month + 1).await.unwrap().len(), 1, "and is gone");
}

fn delivery(id: &str, created_ms: i64) -> Delivery {
    Delivery {
        id: id.into(),
        integration: "critical/slack/0".into(),
        created_ms,
        notification: Notification {
            receiver: "critical".into(),
            group_key: "{}:{}".into(),
            group_labels: LabelSet::new(),
            alerts: Vec::new(),
            external_url: String::new(),
            dashboard_url: None,
        },
        reason: None,
        folded: 1,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
    }
}

/// Group state, enqueue and settle: fenced like alert commits, atomic, the outbox oldest first.
pub async fn outbox_is_fenced_and_ordered<S: AlertStore + OutboxStore>(store: &S) {
    let lease = store.acquire_lease("a", 5_000, 1_000).await.unwrap().unwrap();
    let group = GroupState {
        receiver: "critical".into(),
        group_key: "{}:{}".into(),
        group_labels: LabelSet::new(),
        timing: GroupTiming { wait_ms: 0, interval_ms: 30_000, repeat_ms: 3_600_000 },
        created_ms: 1_000,
        last_flush_ms: Some(1_000),
        notified: Vec::new(),
        events_sent: Vec::new(),
    };
    let enqueue = [delivery("b", 2_000), delivery("a", 1_000), delivery("c", 2_000)];
    let outcome = store.commit_dispatch(&lease, std::slice::from_ref(&group), &[], &enqueue).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(store.load_groups().await.unwrap(), std::slice::from_ref(&group));
    let ids: Vec<String> = store.read_outbox().await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["a", "b", "c"], "oldest first, then by id");

    let mut retried = delivery("b", 2_000);
    retried.attempts = 1;
    retried.last_error = Some("429".into());
    let status = IntegrationStatus { integration: "critical/slack/0".into(), sent: 1, ..Default::default() };
    let settled = store
        .settle_deliveries(&lease, &["a".to_string()], std::slice::from_ref(&retried), std::slice::from_ref(&status))
        .await;
    assert_eq!(settled.unwrap(), CommitOutcome::Committed);
    assert_eq!(store.read_outbox().await.unwrap(), [retried, delivery("c", 2_000)]);
    assert_eq!(store.read_integrations().await.unwrap(), [status]);

    // A stale leader writes nothing at all.
    store.release_lease(&lease).await.unwrap();
    let next = store.acquire_lease("b", 5_000, 2_000).await.unwrap().unwrap();
    let stale = store.commit_dispatch(&lease, &[], &[group.id()], &[delivery("d", 3_000)]).await.unwrap();
    assert_eq!(stale, CommitOutcome::Fenced);
    let stale = store.settle_deliveries(&lease, &["c".to_string()], &[], &[]).await.unwrap();
    assert_eq!(stale, CommitOutcome::Fenced);
    assert_eq!(store.read_outbox().await.unwrap().len(), 2);
    assert_eq!(store.load_groups().await.unwrap().len(), 1);
    let removed = store.commit_dispatch(&next, &[], &[group.id()], &[]).await.unwrap();
    assert_eq!(removed, CommitOutcome::Committed);
    assert!(store.load_groups().await.unwrap().is_empty());
}

macro_rules! suite {
    ($make:expr) => {
        #[tokio::test]
        async fn outbox_is_fenced_and_ordered() {
            let (_guard, store) = $make;
            super::outbox_is_fenced_and_ordered(&store).await;
        }
        #[tokio::test]
        async fn newest_observation_wins() {
            let (_guard, store) = $make;
            super::newest_observation_wins(&store).await;
        }
        #[tokio::test]
        async fn probers_keep_first_and_latest_seen() {
            let (_guard, store) = $make;
            super::probers_keep_first_and_latest_seen(&store).await;
        }
        #[tokio::test]
        async fn one_leader_and_fencing() {
            let (_guard, store) = $make;
            super::one_leader_and_fencing(&store).await;
        }
        #[tokio::test]
        async fn commits_upsert_remove_and_stream() {
            let (_guard, store) = $make;
            super::commits_upsert_remove_and_stream(&store).await;
        }
        #[tokio::test]
        async fn silences_are_kept_replaced_and_dropped_after_retention() {
            let (_guard, store) = $make;
            super::silences_are_kept_replaced_and_dropped_after_retention(&store).await;
        }
        #[tokio::test]
        async fn probe_requests_reach_subscribers() {
            let (_guard, store) = $make;
            super::probe_requests_reach_subscribers(&store).await;
        }
    };
}

mod memory {
    use super::*;
    suite!(((), MemoryStore::new()));
}

/// The same contract on a real `redis-server` of the test's own.
mod redis {
    use mixmon_store::{RedisStore, RedisStoreConfig};
    use mixmon_testkit::RedisServer;

    suite!({
        let server = RedisServer::start().unwrap();
        let store = RedisStore::connect(RedisStoreConfig::new(server.url())).await.unwrap();
        (server, store)
    });
}

/// An entry nobody can read (written by hand, or by a future version) is skipped, not a reason
/// to stop alerting for everything else; the readable entries stay.
#[tokio::test]
async fn unreadable_redis_entries_are_skipped_not_fatal() {
    use mixmon_store::{RedisStore, RedisStoreConfig};
    let server = mixmon_testkit::RedisServer::start().unwrap();
    let store = RedisStore::connect(RedisStoreConfig::new(server.url())).await.unwrap();
    let lease = store.acquire_lease("a", 60_000, 0).await.unwrap().unwrap();
    let firing = instance("eu-west", AlertState::Firing);
    store.commit_alerts(&lease, std::slice::from_ref(&firing), &[], &[], 1_000).await.unwrap();
    store.write_latest(&[(check("api"), observation("p1", 1_000, true))]).await.unwrap();
    let port = server.port().to_string();
    for (key, field) in [
        ("mixmon:v1:alerts:{alerts}:instances", "garbage"),
        ("mixmon:v1:alerts:latest:{api}", "p2"),
        ("mixmon:v1:alerts:{alerts}:silences", "s"),
        ("mixmon:v1:alerts:{alerts}:probers", "p9"),
    ] {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port, "HSET", key, field, "{not json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(store.load_alerts().await.unwrap(), [firing]);
    assert_eq!(store.read_latest(&[check("api")]).await.unwrap(), [vec![observation("p1", 1_000, true)]]);
    assert!(store.read_silences(0).await.unwrap().is_empty());
    assert!(store.read_probers().await.unwrap().is_empty());
}
