//! Results waiting for an acknowledgement. New results are `pending`; `seal` cuts them into
//! numbered batches, which stay `sealed` until the aggregator acknowledges their sequence
//! number (it does so only once the batch is durably stored) and are sent again after a
//! reconnect. The buffer is bounded: past `max_results` the oldest results are dropped and
//! counted, never silently.
//!
//! This buffer lives in memory; a restart loses it and starts a new `epoch`, so sequence
//! numbers never collide with the previous process's.

use std::collections::VecDeque;
use std::sync::Mutex;

use mixmon_model::ProbeResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub seq: u64,
    pub results: Vec<ProbeResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStats {
    pub pending: usize,
    pub sealed_batches: usize,
    pub held: usize,
    pub dropped: u64,
    pub acked_results: u64,
    pub rejected_results: u64,
}

pub struct ResultBuffer {
    epoch: u64,
    max_results: usize,
    state: Mutex<State>,
}

struct State {
    pending: VecDeque<ProbeResult>,
    sealed: VecDeque<Batch>,
    next_seq: u64,
    held: usize,
    dropped: u64,
    acked_results: u64,
    rejected_results: u64,
}

impl ResultBuffer {
    pub fn new(max_results: usize) -> Self {
        // Any value unlikely to repeat across restarts of this prober will do.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ rand::random::<u64>() >> 16;
        Self::with_epoch(max_results, epoch)
    }

    pub fn with_epoch(max_results: usize, epoch: u64) -> Self {
        Self {
            epoch,
            max_results: max_results.max(1),
            state: Mutex::new(State {
                pending: VecDeque::new(),
                sealed: VecDeque::new(),
                next_seq: 1,
                held: 0,
                dropped: 0,
                acked_results: 0,
                rejected_results: 0,
            }),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, result: ProbeResult) {
        let mut state = self.lock();
        state.pending.push_back(result);
        state.held += 1;
        while state.held > self.max_results {
            // Oldest first: the sealed batches are older than anything pending.
            if let Some(batch) = state.sealed.front_mut() {
                if !batch.results.is_empty() {
                    batch.results.remove(0);
                }
                if batch.results.is_empty() {
                    state.sealed.pop_front();
                }
            } else {
                state.pending.pop_front();
            }
            state.held -= 1;
            state.dropped += 1;
        }
    }

    /// Cuts pending results into new batches of at most `max_results` each and returns them
    /// (they stay held until acknowledged).
    pub fn seal(&self, max_results: usize) -> Vec<Batch> {
        let mut state = self.lock();
        let mut batches = Vec::new();
        while !state.pending.is_empty() {
            let take = state.pending.len().min(max_results.max(1));
            let results: Vec<ProbeResult> = state.pending.drain(..take).collect();
            let batch = Batch { seq: state.next_seq, results };
            state.next_seq += 1;
            state.sealed.push_back(batch.clone());
            batches.push(batch);
        }
        batches
    }

    /// Every sealed, unacknowledged batch, oldest first: what a new stream must send again.
    pub fn unacked(&self) -> Vec<Batch> {
        self.lock().sealed.iter().cloned().collect()
    }

    /// The aggregator stored everything up to and including `seq`.
    pub fn ack(&self, seq: u64) {
        let mut state = self.lock();
        while state.sealed.front().is_some_and(|b| b.seq <= seq) {
            if let Some(batch) = state.sealed.pop_front() {
                state.held -= batch.results.len();
                state.acked_results += batch.results.len() as u64;
            }
        }
    }

    /// The aggregator refused this batch for good; keeping it would block nothing but would
    /// be resent forever.
    pub fn reject(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(position) = state.sealed.iter().position(|b| b.seq == seq) {
            if let Some(batch) = state.sealed.remove(position) {
                state.held -= batch.results.len();
                state.rejected_results += batch.results.len() as u64;
            }
        }
    }

    pub fn stats(&self) -> BufferStats {
        let state = self.lock();
        BufferStats {
            pending: state.pending.len(),
            sealed_batches: state.sealed.len(),
            held: state.held,
            dropped: state.dropped,
            acked_results: state.acked_results,
            rejected_results: state.rejected_results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_model::{CheckId, PhaseTimings};

    fn result(n: i64) -> ProbeResult {
        ProbeResult {
            check_id: CheckId::new("c").unwrap(),
            started_at_ms: n,
            failure: None,
            duration_us: 1,
            status_code: 200,
            error: String::new(),
            phases: PhaseTimings::default(),
        }
    }

    #[test]
    fn batches_stay_until_acknowledged_and_are_resent() {
        let buffer = ResultBuffer::with_epoch(100, 7);
        (0..5).for_each(|i| buffer.push(result(i)));
        let batches = buffer.seal(2);
        assert_eq!(batches.iter().map(|b| (b.seq, b.results.len())).collect::<Vec<_>>(), [(1, 2), (2, 2), (3, 1)]);
        assert_eq!(buffer.unacked(), batches);
        buffer.ack(2);
        assert_eq!(buffer.unacked().iter().map(|b| b.seq).collect::<Vec<_>>(), [3]);
        buffer.ack(1); // an old ack changes nothing
        buffer.push(result(5));
        assert_eq!(buffer.seal(10)[0].seq, 4, "sequence numbers never repeat");
        buffer.reject(3);
        let stats = buffer.stats();
        assert_eq!((stats.held, stats.acked_results, stats.rejected_results, stats.sealed_batches), (1, 4, 1, 1));
    }

    #[test]
    fn full_buffer_drops_the_oldest_and_counts() {
        let buffer = ResultBuffer::with_epoch(3, 1);
        (0..2).for_each(|i| buffer.push(result(i)));
        buffer.seal(10);
        (2..5).for_each(|i| buffer.push(result(i)));
        let stats = buffer.stats();
        assert_eq!((stats.held, stats.dropped), (3, 2));
        let kept: Vec<i64> = buffer.seal(10).iter().flat_map(|b| b.results.iter().map(|r| r.started_at_ms)).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert!(buffer.unacked().iter().all(|b| !b.results.is_empty()));
    }
}
