//! The notifier: from the alert instances in the store to the people who must hear of them,
//! in the replica that holds the evaluator's lease, so exactly one replica sends.
//!
//! Each tick: (1) settle the answers of finished sends; (2) group the alerts as the routing
//! file says and decide, with `libs/model`'s dispatch, which groups notify now; write those
//! notifications to the outbox together with the groups' new state, in one fenced step (the
//! intent); (3) from the outbox, fold what a rate limit would hold back into one digest per
//! receiver, and send what each integration's limit allows; (4) every round, forward the
//! alerts to the configured Alertmanagers. Answers decide: accepted and refused deliveries
//! leave the outbox (a refusal is recorded and shown), the rest wait out their backoff or the
//! receiver's `Retry-After`.

mod grouping;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mixmon_delivery::Integration;
use mixmon_model::alert::dispatch::{self, Flush, GroupState};
use mixmon_model::alert::{AlertInstance, LabelSet};
use mixmon_notify::limit::Bucket;
use mixmon_notify::retry::{backoff_ms, Answer, GIVE_UP_AFTER_MS};
use mixmon_rules::routes::Routing;
use mixmon_store::outbox::MAX_PENDING_PER_INTEGRATION;
use mixmon_store::{CommitOutcome, Delivery, IntegrationStatus, Lease, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerting::evaluator::AlertingRules;
use crate::unix_ms;

/// How the notifier runs.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Where people open mixmon (the query service), linked from every message.
    pub external_url: String,
    pub dashboard_url: Option<String>,
    /// Alertmanagers to forward every alert to (`http://alertmanager:9093`).
    pub alertmanagers: Vec<String>,
    pub tick: Duration,
    /// Forwarded alerts are re-sent this often.
    pub forward_every: Duration,
}

/// A backlog that the integration's limit could not send within this long is folded.
const FOLD_HORIZON_MS: i64 = 2_000;

/// What one send job did: each delivery it took and the receiver's answer (`None`: not tried,
/// because an earlier one in the batch was told to wait).
type Sent = Vec<(Delivery, Option<Answer>, i64)>;

/// The leader's working state; rebuilt from the store whenever the lease changes hands.
struct Leading {
    token: u64,
    groups: BTreeMap<String, GroupState>,
    statuses: BTreeMap<String, IntegrationStatus>,
    statuses_dirty: HashSet<String>,
    buckets: HashMap<String, Bucket>,
    in_flight: HashMap<String, JoinHandle<Sent>>,
    /// Answers not yet recorded in the store (it was unreachable): never sent again meanwhile.
    unsettled: Vec<(Delivery, Answer, i64)>,
    last_forward_ms: i64,
    /// The last failure logged per integration: the same one again is logged at debug level
    /// (a missing secret would otherwise log once per notification).
    last_logged: HashMap<String, String>,
}

impl Leading {
    fn abort(&mut self) {
        for (_, job) in self.in_flight.drain() {
            job.abort();
        }
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    rules: watch::Receiver<Arc<AlertingRules>>,
    lease: watch::Receiver<Option<Lease>>,
    settings: NotifierSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut leading: Option<Leading> = None;
    let mut last_warning: Option<(String, i64)> = None;
    loop {
        let current = lease.borrow().clone();
        match current {
            None => {
                if let Some(mut old) = leading.take() {
                    old.abort();
                }
            }
            Some(lease) => {
                if leading.as_ref().is_none_or(|l| l.token != lease.token) {
                    if let Some(mut old) = leading.take() {
                        old.abort();
                    }
                    leading = take_over(store.as_ref(), &lease).await;
                }
                if let Some(state) = leading.as_mut() {
                    let routing = rules.borrow().routing.clone();
                    if let Some(routing) = routing {
                        match tick(&store, &lease, &routing, &settings, state).await {
                            Ok(()) => last_warning = None,
                            Err(Step::Fenced) => {
                                tracing::warn!("another replica leads now; the notifier stands down");
                                if let Some(mut old) = leading.take() {
                                    old.abort();
                                }
                            }
                            Err(Step::Store(reason)) => {
                                let now = unix_ms();
                                let repeat =
                                    last_warning.as_ref().is_some_and(|(r, at)| *r == reason && now - at < 30_000);
                                if !repeat {
                                    tracing::warn!(error = %reason, "notifications wait for the store");
                                    last_warning = Some((reason, now));
                                }
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.tick) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if let Some(mut state) = leading {
        // Answers already in hand are recorded; sends in flight are left to the next leader.
        let held = lease.borrow().clone();
        if let Some(lease) = held {
            let _ = settle(store.as_ref(), &lease, &mut state, unix_ms()).await;
        }
        state.abort();
    }
}

enum Step {
    Fenced,
    Store(String),
}

fn store_error(e: mixmon_store::StoreError) -> Step {
    Step::Store(e.to_string())
}

async fn take_over(store: &dyn Store, lease: &Lease) -> Option<Leading> {
    let groups = store.load_groups().await.ok()?;
    let statuses = store.read_integrations().await.ok()?;
    tracing::info!(groups = groups.len(), token = lease.token, "sending notifications (leader)");
    Some(Leading {
        token: lease.token,
        groups: groups.into_iter().map(|g| (g.id(), g)).collect(),
        statuses: statuses.into_iter().map(|s| (s.integration.clone(), s)).collect(),
        statuses_dirty: HashSet::new(),
        buckets: HashMap::new(),
        in_flight: HashMap::new(),
        unsettled: Vec::new(),
        last_forward_ms: 0,
        last_logged: HashMap::new(),
    })
}

async fn tick(
    shared: &Arc<dyn Store>,
    lease: &Lease,
    routing: &Routing,
    settings: &NotifierSettings,
    state: &mut Leading,
) -> Result<(), Step> {
    let store = shared.as_ref();
    let now = unix_ms();
    let integrations: BTreeMap<String, Integration> =
        Integration::all(routing).into_iter().map(|i| (i.name.clone(), i)).collect();
    for name in integrations.keys() {
        if !state.statuses.contains_key(name) {
            state.statuses.insert(name.clone(), IntegrationStatus { integration: name.clone(), ..Default::default() });
            state.statuses_dirty.insert(name.clone());
        }
    }
    collect_finished(state, now).await;
    settle(store, lease, state, now).await?;

    let alerts = store.load_alerts().await.map_err(store_error)?;
    let outbox = store.read_outbox().await.map_err(store_error)?;
    let changed = dispatch_step(store, lease, routing, settings, &integrations, &alerts, &outbox, state, now).await?;

    let outbox = if changed { store.read_outbox().await.map_err(store_error)? } else { outbox };
    send_step(shared, lease, &integrations, outbox, state, now).await?;

    let forward_due =
        now - state.last_forward_ms >= i64::try_from(settings.forward_every.as_millis()).unwrap_or(30_000);
    if !settings.alertmanagers.is_empty() && (changed || forward_due) {
        state.last_forward_ms = now;
        forward(&settings.alertmanagers, &alerts, settings, now).await;
    }
    Ok(())
}

/// Decides what each group is told now and writes it, with the groups' new state, to the
/// outbox in one fenced step. `true` when anything was enqueued or changed.
#[allow(clippy::too_many_arguments)] // one step's inputs, named
async fn dispatch_step(
    store: &dyn Store,
    lease: &Lease,
    routing: &Routing,
    settings: &NotifierSettings,
    integrations: &BTreeMap<String, Integration>,
    alerts: &[AlertInstance],
    outbox: &[Delivery],
    state: &mut Leading,
    now: i64,
) -> Result<bool, Step> {
    let inputs = grouping::group_inputs(routing, alerts, now);
    let plan = dispatch::plan(&state.groups, &inputs, now);
    if plan.is_empty() {
        return Ok(false);
    }
    let mut pending: HashMap<&str, usize> = HashMap::new();
    for delivery in outbox {
        *pending.entry(delivery.integration.as_str()).or_default() += 1;
    }
    let mut enqueue = Vec::new();
    for flush in &plan.flushes {
        for integration in integrations.values().filter(|i| i.receiver == flush.notification.receiver) {
            for delivery in deliveries(integration, flush, settings, now) {
                let count = pending.entry(integration.name.as_str()).or_default();
                if *count >= MAX_PENDING_PER_INTEGRATION {
                    let status = state.statuses.entry(integration.name.clone()).or_default();
                    status.dropped += 1;
                    status.last_error = Some(format!("outbox full ({MAX_PENDING_PER_INTEGRATION} waiting)"));
                    status.last_error_ms = Some(now);
                    state.statuses_dirty.insert(integration.name.clone());
                    tracing::error!(integration = %integration.name, "outbox full: a notification was dropped");
                    continue;
                }
                *count += 1;
                enqueue.push(delivery);
            }
        }
    }
    match store.commit_dispatch(lease, &plan.changed, &plan.removed, &enqueue).await.map_err(store_error)? {
        CommitOutcome::Fenced => return Err(Step::Fenced),
        CommitOutcome::Committed => {}
    }
    dispatch::apply(&mut state.groups, &plan);
    for flush in &plan.flushes {
        tracing::info!(
            event = "notification_decided",
            receiver = %flush.notification.receiver,
            group = %flush.notification.group_key,
            reason = ?flush.reason,
            alerts = flush.notification.alerts.len(),
            "notification decided"
        );
    }
    Ok(true)
}

/// What one integration is sent for one flush: nothing (resolves only, and it does not send
/// them), one message, or (PagerDuty) one event per alert that changed.
fn deliveries(integration: &Integration, flush: &Flush, settings: &NotifierSettings, now: i64) -> Vec<Delivery> {
    let mut notification = flush.notification.clone();
    notification.external_url = settings.external_url.clone();
    notification.dashboard_url = settings.dashboard_url.clone();
    if !integration.send_resolved() {
        notification.alerts.retain(|a| a.firing);
    }
    if notification.alerts.is_empty() {
        return Vec::new();
    }
    let delivery = |id: String, notification| Delivery {
        id,
        integration: integration.name.clone(),
        created_ms: now,
        notification,
        reason: Some(flush.reason),
        folded: 1,
        attempts: 0,
        next_attempt_ms: now,
        last_error: None,
    };
    if integration.per_alert() {
        return notification
            .alerts
            .iter()
            .filter(|a| flush.changed.contains(&a.fingerprint))
            .map(|alert| {
                let action = if alert.firing { "trigger" } else { "resolve" };
                // The same event decided twice is one outbox entry, not two.
                let id = format!("{}/{}/{action}", integration.name, mixmon_notify::pagerduty::dedup_key(alert));
                delivery(id, mixmon_notify::Notification { alerts: vec![alert.clone()], ..notification.clone() })
            })
            .collect();
    }
    let group = LabelSet::new().with("group", notification.group_key.as_str()).fingerprint();
    vec![delivery(format!("{}/{group}/{now}", integration.name), notification)]
}

/// Answers of finished send jobs, into `unsettled`; pauses a bucket a receiver asked to wait.
async fn collect_finished(state: &mut Leading, now: i64) {
    let finished: Vec<String> =
        state.in_flight.iter().filter(|(_, job)| job.is_finished()).map(|(name, _)| name.clone()).collect();
    for name in finished {
        let Some(job) = state.in_flight.remove(&name) else { continue };
        let Ok(sent) = job.await else { continue };
        for (delivery, answer, at) in sent {
            let Some(answer) = answer else { continue };
            if let Answer::Retry { after_ms: Some(after), .. } = &answer {
                if let Some(bucket) = state.buckets.get_mut(&name) {
                    bucket.pause_until(at + after);
                }
            }
            let repeated = match &answer {
                Answer::Accepted => {
                    state.last_logged.remove(&name);
                    false
                }
                Answer::Retry { reason, .. } | Answer::Refused { reason } => {
                    state.last_logged.insert(name.clone(), reason.clone()).as_deref() == Some(reason.as_str())
                }
            };
            log_answer(&delivery, &answer, at.max(now), repeated);
            state.unsettled.push((delivery, answer, at));
        }
    }
}

fn log_answer(delivery: &Delivery, answer: &Answer, now: i64, repeated: bool) {
    let latency_ms = now - delivery.created_ms;
    if repeated {
        tracing::debug!(integration = %delivery.integration, id = %delivery.id, ?answer, "notification not delivered (as before)");
        return;
    }
    match answer {
        Answer::Accepted => tracing::info!(
            event = "notification_sent",
            integration = %delivery.integration,
            id = %delivery.id,
            attempts = delivery.attempts + 1,
            folded = delivery.folded,
            latency_ms,
            "notification delivered"
        ),
        Answer::Retry { reason, after_ms } => tracing::warn!(
            event = "notification_retry",
            integration = %delivery.integration,
            id = %delivery.id,
            attempts = delivery.attempts + 1,
            retry_after_ms = ?after_ms,
            %reason,
            "notification not delivered yet; will retry"
        ),
        Answer::Refused { reason } => tracing::error!(
            event = "notification_failed",
            integration = %delivery.integration,
            id = %delivery.id,
            %reason,
            "notification refused for good"
        ),
    }
}

/// Records answers in the store: done ones leave the outbox, retried ones are rescheduled.
async fn settle(store: &dyn Store, lease: &Lease, state: &mut Leading, now: i64) -> Result<(), Step> {
    if state.unsettled.is_empty() && state.statuses_dirty.is_empty() {
        return Ok(());
    }
    let mut done = Vec::new();
    let mut put = Vec::new();
    let mut statuses = state.statuses.clone();
    let mut dirty = state.statuses_dirty.clone();
    for (delivery, answer, at) in &state.unsettled {
        let status = statuses
            .entry(delivery.integration.clone())
            .or_insert_with(|| IntegrationStatus { integration: delivery.integration.clone(), ..Default::default() });
        dirty.insert(delivery.integration.clone());
        match answer {
            Answer::Accepted => {
                status.sent += 1;
                status.last_success_ms = Some(*at);
                done.push(delivery.id.clone());
            }
            Answer::Refused { reason } => {
                status.failed += 1;
                status.last_error = Some(reason.clone());
                status.last_error_ms = Some(*at);
                done.push(delivery.id.clone());
            }
            Answer::Retry { after_ms, reason } => {
                status.last_error = Some(reason.clone());
                status.last_error_ms = Some(*at);
                if at - delivery.created_ms > GIVE_UP_AFTER_MS {
                    status.failed += 1;
                    done.push(delivery.id.clone());
                    tracing::error!(integration = %delivery.integration, id = %delivery.id, "notification given up after a day of retries");
                    continue;
                }
                let mut next = delivery.clone();
                next.attempts += 1;
                let backoff = backoff_ms(next.attempts, rand::random::<f64>());
                // The receiver's own word wins where it gave one.
                next.next_attempt_ms = at + after_ms.unwrap_or(backoff);
                next.last_error = Some(reason.clone());
                put.push(next);
            }
        }
    }
    let written: Vec<IntegrationStatus> = dirty.iter().filter_map(|name| statuses.get(name).cloned()).collect();
    match store.settle_deliveries(lease, &done, &put, &written).await.map_err(store_error)? {
        CommitOutcome::Fenced => Err(Step::Fenced),
        CommitOutcome::Committed => {
            let _ = now;
            state.statuses = statuses;
            state.statuses_dirty.clear();
            state.unsettled.clear();
            Ok(())
        }
    }
}

/// Folds backlogs into digests, then starts one send job per integration with what its limit
/// allows now.
async fn send_step(
    shared: &Arc<dyn Store>,
    lease: &Lease,
    integrations: &BTreeMap<String, Integration>,
    outbox: Vec<Delivery>,
    state: &mut Leading,
    now: i64,
) -> Result<(), Step> {
    let store = shared.as_ref();
    let unsettled: HashSet<&str> = state.unsettled.iter().map(|(d, _, _)| d.id.as_str()).collect();
    let mut due: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for delivery in outbox {
        if unsettled.contains(delivery.id.as_str()) || delivery.next_attempt_ms > now {
            continue;
        }
        if !integrations.contains_key(&delivery.integration) {
            orphans.push(delivery);
            continue;
        }
        due.entry(delivery.integration.clone()).or_default().push(delivery);
    }
    for delivery in orphans {
        let reason = format!("integration {} is no longer in the routing file", delivery.integration);
        state.unsettled.push((delivery, Answer::Refused { reason }, now));
    }
    let mut folds_done = Vec::new();
    let mut folds_put = Vec::new();
    for (name, pending) in due.iter_mut() {
        let Some(integration) = integrations.get(name) else { continue };
        if state.in_flight.contains_key(name) {
            continue;
        }
        let bucket = state.buckets.entry(name.clone()).or_insert_with(|| Bucket::new(integration.limit(), now));
        let capacity = bucket.capacity_within(now, FOLD_HORIZON_MS) as usize;
        if integration.foldable() && pending.len() > capacity.max(1) {
            // Keep what goes out now as it is; fold everything after it into one digest.
            let keep = capacity.saturating_sub(1);
            let rest: Vec<Delivery> = pending.split_off(keep);
            if let Some(digest) = fold(&rest, now) {
                folds_done.extend(rest.iter().map(|d| d.id.clone()));
                let status = state.statuses.entry(name.clone()).or_default();
                status.integration = name.clone();
                status.folded += rest.len() as u64 - 1;
                state.statuses_dirty.insert(name.clone());
                tracing::info!(integration = %name, folded = digest.folded, "backlog folded into one digest");
                folds_put.push(digest.clone());
                pending.push(digest);
            }
        }
    }
    if !folds_done.is_empty() {
        // The digest replaces what it folds in one fenced step: neither both nor neither sent.
        let statuses: Vec<IntegrationStatus> =
            state.statuses_dirty.iter().filter_map(|n| state.statuses.get(n).cloned()).collect();
        match store.settle_deliveries(lease, &folds_done, &folds_put, &statuses).await.map_err(store_error)? {
            CommitOutcome::Fenced => return Err(Step::Fenced),
            CommitOutcome::Committed => state.statuses_dirty.clear(),
        }
    }
    for (name, pending) in due {
        let Some(integration) = integrations.get(&name) else { continue };
        if state.in_flight.contains_key(&name) {
            continue;
        }
        let bucket = state.buckets.entry(name.clone()).or_insert_with(|| Bucket::new(integration.limit(), now));
        let mut batch = Vec::new();
        for delivery in pending {
            if bucket.take(now).is_err() {
                break;
            }
            batch.push(delivery);
        }
        if batch.is_empty() {
            continue;
        }
        let job = send_batch(integration.clone(), batch, shared.clone(), lease.clone());
        state.in_flight.insert(name, tokio::spawn(job));
    }
    Ok(())
}

/// Sends one integration's batch in order; after a receiver says to wait, the rest wait too.
/// A delivery the receiver has answered for good leaves the outbox at once (fenced), so a
/// replica killed after the answer repeats a notification only when the kill falls within
/// that one write; the loop still records the answer in the integration's record.
async fn send_batch(integration: Integration, batch: Vec<Delivery>, store: Arc<dyn Store>, lease: Lease) -> Sent {
    let mut sent = Vec::with_capacity(batch.len());
    let mut waiting = false;
    for delivery in batch {
        if waiting {
            sent.push((delivery, None, unix_ms()));
            continue;
        }
        let answer = integration.send(&delivery, unix_ms()).await;
        waiting = matches!(answer, Answer::Retry { .. });
        if !waiting {
            // A failure here leaves it to the loop's settle, which removes it as well.
            let _ = store.settle_deliveries(&lease, std::slice::from_ref(&delivery.id), &[], &[]).await;
        }
        sent.push((delivery, Some(answer), unix_ms()));
    }
    sent
}

/// One digest for `deliveries` (all of one integration), identified by what it folds.
fn fold(deliveries: &[Delivery], now: i64) -> Option<Delivery> {
    let first = deliveries.first()?;
    let notification = mixmon_notify::fold(deliveries.iter().map(|d| &d.notification))?;
    let folded = deliveries.iter().map(|d| d.folded).sum();
    let last = deliveries.last().map_or("", |d| d.id.as_str());
    Some(Delivery {
        id: format!("{}/digest/{}", first.integration, LabelSet::new().with("last", last).fingerprint()),
        integration: first.integration.clone(),
        created_ms: first.created_ms,
        notification,
        reason: None,
        folded,
        attempts: 0,
        next_attempt_ms: now,
        last_error: None,
    })
}

async fn forward(alertmanagers: &[String], alerts: &[AlertInstance], settings: &NotifierSettings, now: i64) {
    let round = i64::try_from(settings.forward_every.as_millis()).unwrap_or(30_000);
    let body = mixmon_notify::alertmanager::alerts(alerts, &settings.external_url, now, round);
    for base in alertmanagers {
        match mixmon_delivery::forward(base, &body, now).await {
            Answer::Accepted => {
                tracing::debug!(alertmanager = %mixmon_delivery::http::redacted(base), "alerts forwarded")
            }
            Answer::Retry { reason, .. } | Answer::Refused { reason } => {
                tracing::warn!(alertmanager = %mixmon_delivery::http::redacted(base), %reason, "forwarding to Alertmanager failed; the next round re-sends")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::alert::dispatch::FlushReason;
    use mixmon_model::alert::{Notice, Notification, ALERTNAME, SEVERITY};

    fn notice(endpoint: &str, firing: bool) -> Notice {
        let labels =
            LabelSet::new().with(ALERTNAME, "ServiceDown").with("endpoint", endpoint).with(SEVERITY, "critical");
        Notice {
            fingerprint: labels.fingerprint(),
            labels,
            annotations: Default::default(),
            firing,
            starts_at_ms: 1_000,
            ends_at_ms: (!firing).then_some(2_000),
            value: None,
        }
    }

    fn flush(alerts: Vec<Notice>, changed: &[&Notice]) -> Flush {
        Flush {
            reason: FlushReason::Changed,
            notification: Notification {
                receiver: "critical".into(),
                group_key: "{}:{}".into(),
                group_labels: LabelSet::new(),
                alerts,
                external_url: String::new(),
                dashboard_url: None,
            },
            changed: changed.iter().map(|n| n.fingerprint).collect(),
        }
    }

    fn settings() -> NotifierSettings {
        NotifierSettings {
            external_url: "http://q".into(),
            dashboard_url: Some("http://g".into()),
            alertmanagers: Vec::new(),
            tick: Duration::from_millis(500),
            forward_every: Duration::from_secs(30),
        }
    }

    fn integrations(routing: &str) -> Vec<Integration> {
        Integration::all(&mixmon_rules::routes::parse("test", routing).unwrap())
    }

    const ROUTING: &str = "route:\n  receiver: critical\nreceivers:\n  - name: critical\n    pagerduty_configs:\n      - routing_key: k\n    slack_configs:\n      - api_url: http://s\n";

    #[test]
    fn pagerduty_gets_one_event_per_changed_alert_with_a_stable_id_and_slack_one_message() {
        let [pagerduty, slack] = <[Integration; 2]>::try_from(integrations(ROUTING)).unwrap();
        let (old, new, gone) = (notice("edge", true), notice("ap", true), notice("us-west", false));
        let flush = flush(vec![old.clone(), new.clone(), gone.clone()], &[&new, &gone]);
        let events = deliveries(&pagerduty, &flush, &settings(), 5_000);
        let ids: Vec<&str> = events.iter().map(|d| d.id.as_str()).collect();
        let key = |n: &Notice| mixmon_notify::pagerduty::dedup_key(n);
        assert_eq!(
            ids,
            [
                format!("critical/pagerduty/0/{}/trigger", key(&new)),
                format!("critical/pagerduty/0/{}/resolve", key(&gone))
            ]
        );
        assert!(events.iter().all(|d| d.notification.alerts.len() == 1 && d.notification.external_url == "http://q"));
        assert_eq!(deliveries(&pagerduty, &flush, &settings(), 9_000)[0].id, events[0].id, "decided twice, one entry");
        // Slack does not send resolves unless asked (Alertmanager's default): the firing ones.
        let message = deliveries(&slack, &flush, &settings(), 5_000);
        assert_eq!(message.len(), 1);
        assert_eq!(message[0].notification.alerts, [old, new]);
        assert_eq!(message[0].reason, Some(FlushReason::Changed));
        let only_resolves = super::tests::flush(vec![gone.clone()], &[&gone]);
        assert!(deliveries(&slack, &only_resolves, &settings(), 5_000).is_empty());
    }

    #[test]
    fn a_backlog_folds_into_one_digest_that_names_every_alert() {
        let [_, slack] = <[Integration; 2]>::try_from(integrations(ROUTING)).unwrap();
        let backlog: Vec<Delivery> = (0..5)
            .flat_map(|i| deliveries(&slack, &flush(vec![notice(&format!("e{i}"), true)], &[]), &settings(), 100 + i))
            .collect();
        let digest = fold(&backlog, 200).unwrap();
        assert_eq!(digest.folded, 5);
        assert_eq!(digest.notification.alerts.len(), 5);
        assert_eq!(digest.created_ms, 100, "as old as the oldest it folds");
        assert_eq!(fold(&backlog, 300).unwrap().id, digest.id, "the same backlog, the same digest");
        assert!(fold(&[], 0).is_none());
    }
}
