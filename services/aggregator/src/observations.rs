//! What the rule evaluator reads besides rollups, kept up to date at ingest: each endpoint's
//! latest observation per prober (with its current streak), and which probers were seen.
//!
//! The replica that serves a prober's report stream sees that prober's results in order, so
//! it keeps their streaks in memory and writes the new latest observation after every batch;
//! a replica that takes a stream over reads the last one written first. When a prober sees an
//! endpoint change (up to failing, or failing to up) the replica publishes a probe request, so
//! the probers of the other regions probe it now instead of at their next slot: the quorum's
//! verdict then costs a round trip, not an interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mixmon_model::alert::LatestObservation;
use mixmon_model::{CheckId, ProberIdentity};
use mixmon_store::{ProbeRequest, ProberSeen, Store, StoreError};

use crate::ingest::Outcome;

/// At most one probe request per endpoint this often from one replica: a flapping endpoint
/// must not turn every prober into a load generator.
const PROBE_REQUEST_SPACING_MS: i64 = 1_000;
/// How often liveness is written to the store.
pub const LIVENESS_FLUSH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Observations {
    latest: Mutex<HashMap<(CheckId, String), LatestObservation>>,
    last_request_ms: Mutex<HashMap<CheckId, i64>>,
    seen: Mutex<HashMap<String, ProberSeen>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section only inserts whole values, so a poisoned lock's data is whole.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Observations {
    /// Folds one stored batch's outcomes into the latest observations, writes them, and
    /// publishes a probe request for every endpoint this prober saw change.
    pub async fn record(
        &self,
        store: &dyn Store,
        prober: &ProberIdentity,
        outcomes: &[Outcome],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let id = prober.id.to_string();
        let region = prober.region.to_string();
        let missing: Vec<CheckId> = {
            let latest = lock(&self.latest);
            let mut missing: Vec<CheckId> = outcomes
                .iter()
                .filter(|o| !latest.contains_key(&(o.check.clone(), id.clone())))
                .map(|o| o.check.clone())
                .collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            // A stream new to this replica: continue the streaks another replica kept.
            let stored = store.read_latest(&missing).await?;
            let mut latest = lock(&self.latest);
            for (check, list) in missing.iter().zip(stored) {
                if let Some(mine) = list.into_iter().find(|o| o.prober == id) {
                    latest.entry((check.clone(), id.clone())).or_insert(mine);
                }
            }
        }
        let mut updates: Vec<(CheckId, LatestObservation)> = Vec::new();
        let mut changed: Vec<CheckId> = Vec::new();
        {
            let mut latest = lock(&self.latest);
            for outcome in outcomes {
                let key = (outcome.check.clone(), id.clone());
                let previous = latest.get(&key);
                let failure = outcome.failure.map(|f| f.as_str());
                let next = LatestObservation::advance(previous, &id, &region, outcome.started_ms, outcome.ok, failure);
                if previous.is_some_and(|p| p.ok != next.ok) && !changed.contains(&outcome.check) {
                    changed.push(outcome.check.clone());
                }
                if previous != Some(&next) {
                    updates.retain(|(check, _)| check != &outcome.check);
                    updates.push((outcome.check.clone(), next.clone()));
                    latest.insert(key, next);
                }
            }
        }
        store.write_latest(&updates).await?;
        for check in changed {
            let due = {
                let mut last = lock(&self.last_request_ms);
                let due = last.get(&check).is_none_or(|at| now_ms - at >= PROBE_REQUEST_SPACING_MS);
                if due {
                    last.insert(check.clone(), now_ms);
                }
                due
            };
            if due {
                let request =
                    ProbeRequest { check: check.to_string(), except_region: region.clone(), requested_at_ms: now_ms };
                store.publish_probe_request(&request).await?;
                tracing::debug!(check = %check, region = %region, "asked the other regions for a second opinion");
            }
        }
        Ok(())
    }

    /// Notes that `prober` spoke; written to the store by [`Observations::flush_liveness`].
    pub fn seen(&self, prober: &ProberIdentity, now_ms: i64) {
        let mut seen = lock(&self.seen);
        let entry = seen.entry(prober.id.to_string()).or_insert_with(|| ProberSeen {
            prober: prober.id.to_string(),
            region: prober.region.to_string(),
            node: prober.node.clone(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        });
        entry.region = prober.region.to_string();
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// Writes the probers seen since the last flush.
    pub async fn flush_liveness(&self, store: &dyn Store) -> Result<(), StoreError> {
        let pending: Vec<ProberSeen> = lock(&self.seen).drain().map(|(_, v)| v).collect();
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(err) = store.record_probers(&pending).await {
            // Kept for the next flush: liveness must not be lost to one failed write.
            let mut seen = lock(&self.seen);
            for prober in pending {
                seen.entry(prober.prober.clone()).or_insert(prober);
            }
            return Err(err);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::{FailureKind, ProberId, Region};
    use mixmon_store::{AlertStore, MemoryStore};

    fn prober(id: &str, region: &str) -> ProberIdentity {
        ProberIdentity {
            id: ProberId::new(id).unwrap(),
            region: Region::new(region).unwrap(),
            node: "n".into(),
            version: "t".into(),
        }
    }

    fn outcome(check: &str, started_ms: i64, ok: bool) -> Outcome {
        Outcome {
            check: CheckId::new(check).unwrap(),
            started_ms,
            ok,
            failure: (!ok).then_some(FailureKind::ConnectionRefused),
        }
    }

    #[tokio::test]
    async fn streaks_are_stored_and_a_change_asks_for_a_second_opinion() {
        let store = MemoryStore::new();
        let mut requests = store.subscribe_probe_requests().await.unwrap();
        let observations = Observations::default();
        let p = prober("p1", "eu-west");
        observations
            .record(&store, &p, &[outcome("api", 1_000, true), outcome("api", 2_000, true)], 2_500)
            .await
            .unwrap();
        assert!(requests.try_recv().is_err(), "nothing changed yet");
        observations.record(&store, &p, &[outcome("api", 3_000, false)], 3_100).await.unwrap();
        let request = requests.try_recv().unwrap();
        assert_eq!((request.check.as_str(), request.except_region.as_str()), ("api", "eu-west"));
        observations.record(&store, &p, &[outcome("api", 4_000, false)], 3_200).await.unwrap();
        let latest = store.read_latest(&[CheckId::new("api").unwrap()]).await.unwrap();
        assert_eq!((latest[0][0].ok, latest[0][0].streak, latest[0][0].streak_since_ms), (false, 2, 3_000));
        // Flapping within a second asks only once.
        observations.record(&store, &p, &[outcome("api", 5_000, true)], 3_300).await.unwrap();
        assert!(requests.try_recv().is_err());
        observations.record(&store, &p, &[outcome("api", 6_000, false)], 4_400).await.unwrap();
        assert!(requests.try_recv().is_ok());
    }

    #[tokio::test]
    async fn another_replica_continues_the_stored_streak() {
        let store = MemoryStore::new();
        let p = prober("p1", "eu-west");
        Observations::default().record(&store, &p, &[outcome("api", 1_000, false)], 1_100).await.unwrap();
        let takeover = Observations::default();
        takeover.record(&store, &p, &[outcome("api", 2_000, false), outcome("api", 1_500, true)], 2_100).await.unwrap();
        let latest = store.read_latest(&[CheckId::new("api").unwrap()]).await.unwrap();
        assert_eq!((latest[0][0].streak, latest[0][0].streak_since_ms), (2, 1_000), "old result ignored");
    }

    #[tokio::test]
    async fn liveness_is_flushed_and_kept_on_failure() {
        let store = MemoryStore::new();
        let observations = Observations::default();
        observations.seen(&prober("p1", "eu-west"), 10);
        observations.seen(&prober("p1", "eu-west"), 20);
        observations.flush_liveness(&store).await.unwrap();
        let probers = store.read_probers().await.unwrap();
        assert_eq!((probers[0].first_seen_ms, probers[0].last_seen_ms), (10, 20));
        observations.flush_liveness(&store).await.unwrap();
    }
}
