//! When checks run: one task per assigned check, waking at `k * interval + phase` (the phase
//! derived from the check id), so a check keeps its slot across restarts and reassignments.
//! Applying a new assignment restarts only the checks whose spec changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mixmon_model::{CheckId, CheckSpec, Record};
use tokio::task::JoinHandle;

use crate::buffer::ResultBuffer;
use crate::checks::{self, HttpProber};
use crate::ground_truth::GroundTruth;

/// Where results go: the delivery buffer, and the ground-truth log when one is configured.
#[derive(Clone)]
pub struct ResultSink {
    buffer: Arc<ResultBuffer>,
    ground_truth: Option<Arc<GroundTruth>>,
    counted: Option<crate::own_metrics::RecordCounter>,
}

impl ResultSink {
    pub fn new(buffer: Arc<ResultBuffer>, ground_truth: Option<GroundTruth>) -> Self {
        Self { buffer, ground_truth: ground_truth.map(Arc::new), counted: None }
    }

    /// Counts every record in the prober's metrics.
    pub(crate) fn counted(mut self, counter: crate::own_metrics::RecordCounter) -> Self {
        self.counted = Some(counter);
        self
    }

    /// A probe result, a mixer scrape, a node or pod sample: all go through the same buffer.
    /// The ground-truth log (a test aid) lists probe results only.
    pub fn record(&self, record: impl Into<Record>) {
        let record = record.into();
        if let Some(counter) = &self.counted {
            counter.count(&record);
        }
        if let (Some(truth), Record::Probe(result)) = (&self.ground_truth, &record) {
            truth.record(result);
        }
        self.buffer.push(record);
    }
}

pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub struct Scheduler {
    http: Arc<HttpProber>,
    sink: ResultSink,
    running: HashMap<CheckId, (CheckSpec, JoinHandle<()>)>,
    version: u64,
    /// When each check last ran out of schedule, so requests cannot make it run hot.
    extra_runs: HashMap<CheckId, i64>,
    /// The out-of-schedule runs in flight, stopped with the rest.
    extra_tasks: tokio::task::JoinSet<()>,
}

/// An extra run of a check at most this often (or once a quarter interval, if longer).
const MIN_EXTRA_RUN_SPACING_MS: i64 = 1_000;

impl Scheduler {
    pub fn new(http: HttpProber, sink: ResultSink) -> Self {
        Self {
            http: Arc::new(http),
            sink,
            running: HashMap::new(),
            version: 0,
            extra_runs: HashMap::new(),
            extra_tasks: tokio::task::JoinSet::new(),
        }
    }

    /// The catalogue version currently applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn check_count(&self) -> usize {
        self.running.len()
    }

    /// Replaces the whole assignment.
    pub fn apply_snapshot(&mut self, version: u64, checks: Vec<CheckSpec>) {
        let keep: std::collections::HashSet<CheckId> = checks.iter().map(|c| c.id.clone()).collect();
        let gone: Vec<CheckId> = self.running.keys().filter(|id| !keep.contains(*id)).cloned().collect();
        self.apply_delta(version, checks, gone);
    }

    /// Upserts `checks` and stops `removed`.
    pub fn apply_delta(&mut self, version: u64, checks: Vec<CheckSpec>, removed: Vec<CheckId>) {
        for id in removed {
            self.extra_runs.remove(&id);
            if let Some((_, handle)) = self.running.remove(&id) {
                handle.abort();
            }
        }
        for spec in checks {
            if self.running.get(&spec.id).is_some_and(|(running, _)| *running == spec) {
                continue;
            }
            let handle = tokio::spawn(run_check(spec.clone(), self.http.clone(), self.sink.clone()));
            if let Some((_, old)) = self.running.insert(spec.id.clone(), (spec, handle)) {
                old.abort();
            }
        }
        self.version = version;
    }

    /// Runs an assigned check once now, besides its schedule (which stays as it is): a second
    /// opinion the aggregator asked for. Unassigned checks and requests that come faster than
    /// once a second (or a quarter interval) are ignored; `false` then.
    pub fn run_now(&mut self, id: &CheckId, now_ms: i64) -> bool {
        let Some((spec, _)) = self.running.get(id) else { return false };
        let spacing = MIN_EXTRA_RUN_SPACING_MS.max(i64::from(spec.interval_ms) / 4);
        if self.extra_runs.get(id).is_some_and(|last| now_ms - last < spacing) {
            return false;
        }
        self.extra_runs.insert(id.clone(), now_ms);
        let (spec, http, sink) = (spec.clone(), self.http.clone(), self.sink.clone());
        while self.extra_tasks.try_join_next().is_some() {}
        self.extra_tasks.spawn(async move {
            for result in checks::run(&http, &spec, unix_ms()).await {
                sink.record(result);
            }
        });
        true
    }

    pub fn stop_all(&mut self) {
        for (_, (_, handle)) in self.running.drain() {
            handle.abort();
        }
        self.extra_tasks.abort_all();
    }

    /// Stops every check and waits until none can record any more: a probe task running on
    /// another thread when it is aborted may still record its result, which must then be in
    /// the last batch, not after it.
    pub async fn stop_all_and_wait(&mut self) {
        let handles: Vec<_> = self.running.drain().map(|(_, (_, handle))| handle).collect();
        for handle in &handles {
            handle.abort();
        }
        self.extra_tasks.abort_all();
        for handle in handles {
            let _ = handle.await;
        }
        while self.extra_tasks.join_next().await.is_some() {}
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop_all();
    }
}

async fn run_check(spec: CheckSpec, http: Arc<HttpProber>, sink: ResultSink) {
    loop {
        let now = unix_ms();
        let next = spec.next_run_after(now);
        tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
        let started_at_ms = unix_ms();
        // One result, or one per address with `each_address`.
        for result in checks::run(&http, &spec, started_at_ms).await {
            sink.record(result);
        }
    }
}
