//! [`AlertStore`] for the embedded [`MemoryStore`]: the same semantics as the Redis store
//! (lease fencing, newest-wins observations, 30-day history), in one process's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use mixmon_model::alert::dispatch::GroupState;
use mixmon_model::alert::silence::{MAX_SILENCES, SILENCE_RETENTION_MS};
use mixmon_model::alert::{AlertInstance, AlertTransition, Fingerprint, LatestObservation, Silence};
use mixmon_model::CheckId;
use tokio::sync::broadcast;

use crate::alerts::{AlertStore, CommitOutcome, Lease, ProbeRequest, ProberSeen, StreamEntry, HISTORY_RETENTION_MS};
use crate::outbox::{Delivery, IntegrationStatus, OutboxStore};
use crate::{MemoryStore, StoreError};

/// Probe requests a subscriber may fall behind by before it loses the oldest.
const PROBE_REQUEST_BACKLOG: usize = 256;

pub(crate) struct AlertTables {
    inner: Mutex<Tables>,
    probe_requests: broadcast::Sender<ProbeRequest>,
}

#[derive(Default)]
struct Tables {
    latest: HashMap<CheckId, BTreeMap<String, LatestObservation>>,
    probers: BTreeMap<String, ProberSeen>,
    lease: Option<Lease>,
    /// The last fencing token handed out; never reused.
    last_token: u64,
    alerts: BTreeMap<Fingerprint, AlertInstance>,
    /// (stream position, transition); positions are `<ms>-<seq>` as Redis stream ids.
    stream: Vec<((i64, u64), AlertTransition)>,
    silences: BTreeMap<String, Silence>,
    groups: BTreeMap<String, GroupState>,
    outbox: BTreeMap<String, Delivery>,
    integrations: BTreeMap<String, IntegrationStatus>,
}

impl Tables {
    fn fenced(&self, lease: &Lease) -> bool {
        // The token alone fences: an expired lease that nobody took over yet still commits, as
        // in Redis, where the token is compared rather than the clock.
        self.lease.as_ref().is_none_or(|current| current.token != lease.token)
    }
}

impl Default for AlertTables {
    fn default() -> Self {
        let (probe_requests, _) = broadcast::channel(PROBE_REQUEST_BACKLOG);
        AlertTables { inner: Mutex::default(), probe_requests }
    }
}

impl AlertTables {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Every method checks before it changes anything, so a poisoned lock's data is whole.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn parse_position(text: &str) -> Option<(i64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn read_latest(&self, checks: &[CheckId]) -> Result<Vec<Vec<LatestObservation>>, StoreError> {
        let tables = self.alert_tables().lock();
        Ok(checks
            .iter()
            .map(|check| tables.latest.get(check).map(|m| m.values().cloned().collect()).unwrap_or_default())
            .collect())
    }

    async fn write_latest(&self, updates: &[(CheckId, LatestObservation)]) -> Result<(), StoreError> {
        let mut tables = self.alert_tables().lock();
        for (check, observation) in updates {
            let per_check = tables.latest.entry(check.clone()).or_default();
            let newer = per_check.get(&observation.prober).is_none_or(|old| observation.started_ms > old.started_ms);
            if newer {
                per_check.insert(observation.prober.clone(), observation.clone());
            }
        }
        Ok(())
    }

    async fn record_probers(&self, seen: &[ProberSeen]) -> Result<(), StoreError> {
        let mut tables = self.alert_tables().lock();
        for prober in seen {
            let entry = tables.probers.entry(prober.prober.clone()).or_insert_with(|| prober.clone());
            entry.region = prober.region.clone();
            entry.node = prober.node.clone();
            entry.last_seen_ms = entry.last_seen_ms.max(prober.last_seen_ms);
        }
        Ok(())
    }

    async fn read_probers(&self) -> Result<Vec<ProberSeen>, StoreError> {
        Ok(self.alert_tables().lock().probers.values().cloned().collect())
    }

    async fn acquire_lease(&self, holder: &str, ttl_ms: u64, now_ms: i64) -> Result<Option<Lease>, StoreError> {
        let mut tables = self.alert_tables().lock();
        let expires_at_ms = now_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        match &mut tables.lease {
            Some(lease) if lease.expires_at_ms > now_ms && lease.holder != holder => Ok(None),
            Some(lease) if lease.expires_at_ms > now_ms => {
                lease.expires_at_ms = expires_at_ms;
                Ok(Some(lease.clone()))
            }
            _ => {
                tables.last_token += 1;
                let lease = Lease { holder: holder.to_string(), token: tables.last_token, expires_at_ms };
                tables.lease = Some(lease.clone());
                Ok(Some(lease))
            }
        }
    }

    async fn renew_lease(&self, lease: &Lease, ttl_ms: u64, now_ms: i64) -> Result<bool, StoreError> {
        let mut tables = self.alert_tables().lock();
        match &mut tables.lease {
            Some(current) if current.token == lease.token && current.expires_at_ms > now_ms => {
                current.expires_at_ms = now_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut tables = self.alert_tables().lock();
        if tables.lease.as_ref().is_some_and(|current| current.token == lease.token) {
            tables.lease = None;
        }
        Ok(())
    }

    async fn load_alerts(&self) -> Result<Vec<AlertInstance>, StoreError> {
        Ok(self.alert_tables().lock().alerts.values().cloned().collect())
    }

    async fn commit_alerts(
        &self,
        lease: &Lease,
        changed: &[AlertInstance],
        removed: &[Fingerprint],
        transitions: &[AlertTransition],
        now_ms: i64,
    ) -> Result<CommitOutcome, StoreError> {
        let mut tables = self.alert_tables().lock();
        if tables.fenced(lease) {
            return Ok(CommitOutcome::Fenced);
        }
        for instance in changed {
            tables.alerts.insert(instance.fingerprint(), instance.clone());
        }
        for fingerprint in removed {
            tables.alerts.remove(fingerprint);
        }
        for transition in transitions {
            let last = tables.stream.last().map(|(pos, _)| *pos);
            let position = match last {
                Some((ms, seq)) if ms >= now_ms => (ms, seq + 1),
                _ => (now_ms, 0),
            };
            tables.stream.push((position, transition.clone()));
        }
        let horizon = now_ms - HISTORY_RETENTION_MS;
        tables.stream.retain(|((ms, _), _)| *ms >= horizon);
        Ok(CommitOutcome::Committed)
    }

    async fn read_transitions(&self, after: Option<&str>, limit: usize) -> Result<Vec<StreamEntry>, StoreError> {
        let after = match after {
            None => None,
            Some(text) => {
                Some(parse_position(text).ok_or_else(|| StoreError::Invalid(format!("bad stream position {text:?}")))?)
            }
        };
        let tables = self.alert_tables().lock();
        Ok(tables
            .stream
            .iter()
            .filter(|(pos, _)| after.is_none_or(|a| *pos > a))
            .take(limit)
            .map(|((ms, seq), transition)| StreamEntry { id: format!("{ms}-{seq}"), transition: transition.clone() })
            .collect())
    }

    async fn read_history(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<AlertTransition>, StoreError> {
        let tables = self.alert_tables().lock();
        Ok(tables
            .stream
            .iter()
            .rev()
            .filter(|(_, t)| (from_ms..to_ms).contains(&t.at_ms))
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn publish_probe_request(&self, request: &ProbeRequest) -> Result<(), StoreError> {
        // No subscriber is not an error: nobody needs a second opinion then.
        let _ = self.alert_tables().probe_requests.send(request.clone());
        Ok(())
    }

    async fn subscribe_probe_requests(&self) -> Result<broadcast::Receiver<ProbeRequest>, StoreError> {
        Ok(self.alert_tables().probe_requests.subscribe())
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let mut tables = self.alert_tables().lock();
        if !tables.silences.contains_key(&silence.id) && tables.silences.len() >= MAX_SILENCES {
            return Err(StoreError::Invalid(format!("at most {MAX_SILENCES} silences are kept; expire some first")));
        }
        tables.silences.insert(silence.id.clone(), silence.clone());
        Ok(())
    }

    async fn read_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let mut tables = self.alert_tables().lock();
        tables.silences.retain(|_, s| s.ends_at_ms >= now_ms - SILENCE_RETENTION_MS);
        Ok(tables.silences.values().cloned().collect())
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn load_groups(&self) -> Result<Vec<GroupState>, StoreError> {
        Ok(self.alert_tables().lock().groups.values().cloned().collect())
    }

    async fn commit_dispatch(
        &self,
        lease: &Lease,
        changed: &[GroupState],
        removed: &[String],
        enqueue: &[Delivery],
    ) -> Result<CommitOutcome, StoreError> {
        let mut tables = self.alert_tables().lock();
        if tables.fenced(lease) {
            return Ok(CommitOutcome::Fenced);
        }
        for id in removed {
            tables.groups.remove(id);
        }
        for group in changed {
            tables.groups.insert(group.id(), group.clone());
        }
        for delivery in enqueue {
            tables.outbox.insert(delivery.id.clone(), delivery.clone());
        }
        Ok(CommitOutcome::Committed)
    }

    async fn read_outbox(&self) -> Result<Vec<Delivery>, StoreError> {
        let tables = self.alert_tables().lock();
        let mut pending: Vec<Delivery> = tables.outbox.values().cloned().collect();
        pending.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(pending)
    }

    async fn settle_deliveries(
        &self,
        lease: &Lease,
        done: &[String],
        put: &[Delivery],
        statuses: &[IntegrationStatus],
    ) -> Result<CommitOutcome, StoreError> {
        let mut tables = self.alert_tables().lock();
        if tables.fenced(lease) {
            return Ok(CommitOutcome::Fenced);
        }
        for id in done {
            tables.outbox.remove(id);
        }
        for delivery in put {
            tables.outbox.insert(delivery.id.clone(), delivery.clone());
        }
        for status in statuses {
            tables.integrations.insert(status.integration.clone(), status.clone());
        }
        Ok(CommitOutcome::Committed)
    }

    async fn read_integrations(&self) -> Result<Vec<IntegrationStatus>, StoreError> {
        Ok(self.alert_tables().lock().integrations.values().cloned().collect())
    }
}
