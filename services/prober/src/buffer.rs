//! Results waiting for an acknowledgement. New results are `pending`; `seal` cuts them into
//! numbered batches, which stay `sealed` until the aggregator acknowledges their sequence
//! number (it does so only once the batch is durably stored) and are sent again after a
//! reconnect.
//!
//! With a directory configured the buffer is durable: every result, seal, acknowledgement and
//! drop is first appended to the write-ahead log (`wal`), and a restarted prober recovers its
//! epoch, its unacknowledged batches with their original sequence numbers (so the store
//! recognises what it already applied) and its pending results. Without one it lives in
//! memory and a restart starts a new `epoch`, so sequence numbers never collide.
//!
//! The buffer is bounded by results held, by age (a result older than `max_age` relative to
//! the newest is dropped) and by the log's bytes on disk. Past a bound the oldest results are
//! dropped and counted (`stats().dropped`, and a warning in the log), never silently.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

#[cfg(test)]
use mixmon_model::ProbeResult;
use mixmon_model::Record;

use crate::wal::{Header, LiveSeal, Wal, WalError, WalOptions};

#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub results: Vec<Record>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStats {
    pub pending: usize,
    pub sealed_batches: usize,
    pub held: usize,
    pub dropped: u64,
    pub acked_results: u64,
    pub rejected_results: u64,
    /// Bytes of the write-ahead log on disk (0 without one).
    pub wal_bytes: u64,
    /// Appends to the write-ahead log that failed (the results stay in memory).
    pub wal_errors: u64,
}

/// Bounds and durability of a buffer.
#[derive(Debug, Clone)]
pub struct BufferOptions {
    pub max_results: usize,
    /// Results older than this, relative to the newest result, are dropped.
    pub max_age: Duration,
    /// Bytes the write-ahead log may take on disk.
    pub max_bytes: u64,
    /// The write-ahead log; `None` keeps the buffer in memory only.
    pub wal: Option<WalOptions>,
}

pub struct ResultBuffer {
    epoch: u64,
    max_results: usize,
    max_age_ms: i64,
    max_bytes: u64,
    state: Mutex<State>,
}

struct Held {
    rid: u64,
    result: Record,
}

struct Sealed {
    seq: u64,
    first: u64,
    end: u64,
    results: VecDeque<Held>,
}

struct State {
    pending: VecDeque<Held>,
    sealed: VecDeque<Sealed>,
    next_seq: u64,
    next_rid: u64,
    acked_seq: u64,
    drop_below: u64,
    sealed_below: u64,
    held: usize,
    dropped: u64,
    acked_results: u64,
    rejected_results: u64,
    wal: Option<Wal>,
    wal_errors: u64,
}

fn new_epoch() -> u64 {
    // Any value unlikely to repeat across restarts of this prober will do; never zero.
    let epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
            ^ rand::random::<u64>() >> 16;
    epoch.max(1)
}

impl ResultBuffer {
    /// A buffer in memory only.
    pub fn new(max_results: usize) -> Self {
        Self::with_epoch(max_results, new_epoch())
    }

    pub fn with_epoch(max_results: usize, epoch: u64) -> Self {
        Self {
            epoch,
            max_results: max_results.max(1),
            max_age_ms: i64::MAX,
            max_bytes: u64::MAX,
            state: Mutex::new(State::empty(None)),
        }
    }

    /// A buffer with the given bounds; with a write-ahead log, whatever it held before is
    /// recovered.
    pub fn open(options: BufferOptions) -> Result<Self, WalError> {
        let max_age_ms = i64::try_from(options.max_age.as_millis()).unwrap_or(i64::MAX);
        let Some(wal_options) = options.wal else {
            let mut buffer = Self::new(options.max_results);
            buffer.max_age_ms = max_age_ms;
            return Ok(buffer);
        };
        let (mut wal, recovered) = Wal::open(wal_options)?;
        let mut state = State::empty(None);
        let epoch = match &recovered.header {
            Some(header) => {
                state.next_seq = header.next_seq;
                state.next_rid = header.next_rid;
                state.acked_seq = header.acked_seq;
                state.drop_below = header.drop_below;
                state.sealed_below = header.sealed_below;
                state.dropped = header.dropped;
                header.epoch
            }
            None => new_epoch(),
        };
        for (seal, results) in recovered.sealed {
            let results: VecDeque<Held> = results.into_iter().map(|(rid, result)| Held { rid, result }).collect();
            state.held += results.len();
            state.sealed.push_back(Sealed { seq: seal.seq, first: seal.first, end: seal.end, results });
        }
        state.pending = recovered.pending.into_iter().map(|(rid, result)| Held { rid, result }).collect();
        state.held += state.pending.len();
        if recovered.header.is_some() {
            tracing::info!(
                epoch,
                batches = state.sealed.len(),
                pending = state.pending.len(),
                next_seq = state.next_seq,
                torn_records = recovered.torn_records,
                "recovered the write-ahead log: unacknowledged results will be sent again"
            );
        }
        wal.start_segment(&state.header(epoch))?;
        let low = state.low_rid();
        wal.remove_obsolete(low)?;
        state.wal = Some(wal);
        Ok(Self {
            epoch,
            max_results: options.max_results.max(1),
            max_age_ms,
            max_bytes: options.max_bytes,
            state: Mutex::new(state),
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, record: impl Into<Record>) {
        let result = record.into();
        let mut state = self.lock();
        let rid = state.next_rid;
        state.next_rid += 1;
        let newest_ms = result.at_ms();
        // The state changes before the log append: an append may start a new segment, whose
        // header must already describe this result.
        let logged = state.wal.is_some().then(|| result.clone());
        state.pending.push_back(Held { rid, result });
        state.held += 1;
        if let Some(logged) = logged {
            state.wal_op(self.epoch, |wal| wal.append_result(rid, &logged));
        }

        let over = state.held.saturating_sub(self.max_results);
        if over > 0 {
            state.drop_oldest(self.epoch, "max_results", |n, _| n < over);
        }
        let cutoff = newest_ms.saturating_sub(self.max_age_ms);
        state.drop_oldest(self.epoch, "max_age", |_, held| held.result.at_ms() < cutoff);
        self.enforce_bytes(&mut state);
    }

    fn enforce_bytes(&self, state: &mut State) {
        loop {
            let Some(wal) = state.wal.as_mut() else { return };
            if wal.bytes() <= self.max_bytes {
                return;
            }
            match wal.oldest_closed_max_rid() {
                // Only the active segment: close it so that its results can go.
                None => {
                    if state.held == 0 {
                        return;
                    }
                    let header = state.header(self.epoch);
                    state.wal_op(self.epoch, |wal| wal.rotate(&header));
                    if state.wal.as_ref().is_some_and(|w| w.segment_count() < 2) {
                        return;
                    }
                }
                Some(max_rid) => {
                    let through = max_rid.unwrap_or(0);
                    let dropped = state.drop_oldest(self.epoch, "max_bytes", |_, held| held.rid <= through);
                    let low = state.low_rid();
                    let before = state.wal.as_ref().map_or(0, Wal::segment_count);
                    state.wal_op(self.epoch, |wal| wal.remove_obsolete(low));
                    let after = state.wal.as_ref().map_or(0, Wal::segment_count);
                    if dropped == 0 && after == before {
                        return;
                    }
                }
            }
        }
    }

    /// Cuts pending results into new batches of at most `max_results` each and returns them
    /// (they stay held until acknowledged). Each batch is in the log before it is returned,
    /// so it is never sent under a sequence number a restart could reuse.
    pub fn seal(&self, max_results: usize) -> Vec<Batch> {
        let mut state = self.lock();
        let mut batches = Vec::new();
        while !state.pending.is_empty() {
            let take = state.pending.len().min(max_results.max(1));
            let results: VecDeque<Held> = state.pending.drain(..take).collect();
            let first = results.front().map_or(0, |h| h.rid);
            let end = results.back().map_or(0, |h| h.rid + 1);
            let seq = state.next_seq;
            state.next_seq += 1;
            state.sealed_below = end;
            batches.push(Batch { seq, results: results.iter().map(|h| h.result.clone()).collect() });
            state.sealed.push_back(Sealed { seq, first, end, results });
            state.wal_op(self.epoch, |wal| wal.append_seal(LiveSeal { seq, first, end }));
        }
        batches
    }

    /// Every sealed, unacknowledged batch, oldest first: what a new stream must send again.
    pub fn unacked(&self) -> Vec<Batch> {
        self.lock()
            .sealed
            .iter()
            .map(|s| Batch { seq: s.seq, results: s.results.iter().map(|h| h.result.clone()).collect() })
            .collect()
    }

    /// The aggregator stored everything up to and including `seq`.
    pub fn ack(&self, seq: u64) {
        let mut state = self.lock();
        if seq <= state.acked_seq {
            return;
        }
        state.acked_seq = seq;
        while state.sealed.front().is_some_and(|b| b.seq <= seq) {
            if let Some(batch) = state.sealed.pop_front() {
                state.held -= batch.results.len();
                state.acked_results += batch.results.len() as u64;
            }
        }
        state.wal_op(self.epoch, |wal| wal.append_ack(seq));
        state.forget_obsolete(self.epoch);
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
            state.wal_op(self.epoch, |wal| wal.append_reject(seq));
            state.forget_obsolete(self.epoch);
        }
    }

    /// Makes everything logged so far durable (the periodic fsync and the one at shutdown).
    pub fn sync(&self) {
        let mut state = self.lock();
        state.wal_op(self.epoch, Wal::sync);
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
            wal_bytes: state.wal.as_ref().map_or(0, Wal::bytes),
            wal_errors: state.wal_errors,
        }
    }
}

impl State {
    fn empty(wal: Option<Wal>) -> Self {
        Self {
            pending: VecDeque::new(),
            sealed: VecDeque::new(),
            next_seq: 1,
            next_rid: 0,
            acked_seq: 0,
            drop_below: 0,
            sealed_below: 0,
            held: 0,
            dropped: 0,
            acked_results: 0,
            rejected_results: 0,
            wal,
            wal_errors: 0,
        }
    }

    /// Runs one log operation; a failure is counted and logged, and the result stays held in
    /// memory: a full or broken disk must not stop probing.
    fn wal_op(&mut self, epoch: u64, op: impl FnOnce(&mut Wal) -> Result<(), WalError>) {
        let Some(wal) = self.wal.as_mut() else { return };
        let mut outcome = op(wal);
        if outcome.is_ok() && wal.wants_rotation() {
            let header = self.header(epoch);
            if let Some(wal) = self.wal.as_mut() {
                outcome = wal.rotate(&header);
            }
        }
        if let Err(err) = outcome {
            self.wal_errors += 1;
            // Every 1000th only: a broken disk fails every append.
            if self.wal_errors % 1000 == 1 {
                tracing::error!(error = %err, failures = self.wal_errors, "write-ahead log append failed; results are held in memory only");
            }
        }
    }

    /// The oldest result id still held (or the next one, when nothing is held).
    fn low_rid(&self) -> u64 {
        self.sealed
            .iter()
            .find_map(|b| b.results.front())
            .or_else(|| self.pending.front())
            .map_or(self.next_rid, |h| h.rid)
    }

    fn header(&self, epoch: u64) -> Header {
        Header {
            epoch,
            next_seq: self.next_seq,
            next_rid: self.next_rid,
            acked_seq: self.acked_seq,
            drop_below: self.drop_below,
            sealed_below: self.sealed_below,
            dropped: self.dropped,
            seals: self.sealed.iter().map(|s| LiveSeal { seq: s.seq, first: s.first, end: s.end }).collect(),
        }
    }

    /// Drops held results from the oldest while `keep_dropping(dropped_so_far, oldest)`;
    /// returns how many went.
    fn drop_oldest(
        &mut self,
        epoch: u64,
        bound: &'static str,
        mut keep_dropping: impl FnMut(usize, &Held) -> bool,
    ) -> usize {
        let mut count = 0;
        let mut last_rid = None;
        loop {
            // Oldest first: the sealed batches are older than anything pending.
            let front = match self.sealed.front_mut() {
                Some(batch) => batch.results.front(),
                None => self.pending.front(),
            };
            match front {
                Some(held) if keep_dropping(count, held) => {}
                _ => break,
            }
            let removed = match self.sealed.front_mut() {
                Some(batch) => {
                    let removed = batch.results.pop_front();
                    if batch.results.is_empty() {
                        self.sealed.pop_front();
                    }
                    removed
                }
                None => self.pending.pop_front(),
            };
            let Some(removed) = removed else { break };
            last_rid = Some(removed.rid);
            self.held -= 1;
            count += 1;
        }
        if let Some(last) = last_rid {
            self.dropped += count as u64;
            self.drop_below = self.drop_below.max(last + 1);
            let below = self.drop_below;
            self.wal_op(epoch, |wal| wal.append_drop(below, count as u64));
            self.forget_obsolete(epoch);
            // A full buffer drops on every push: warn on the first drop and every 1000th.
            if (self.dropped - count as u64) / 1000 != self.dropped / 1000 || self.dropped == count as u64 {
                tracing::warn!(
                    bound,
                    dropped = count,
                    dropped_total = self.dropped,
                    "result buffer full: dropped the oldest results"
                );
            }
        }
        count
    }

    fn forget_obsolete(&mut self, epoch: u64) {
        let low = self.low_rid();
        self.wal_op(epoch, |wal| wal.remove_obsolete(low));
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
            details: Default::default(),
        }
    }

    fn durable(dir: &std::path::Path, segment_bytes: u64, max_bytes: u64) -> BufferOptions {
        BufferOptions {
            max_results: 1_000_000,
            max_age: Duration::from_secs(3600),
            max_bytes,
            wal: Some(WalOptions { dir: dir.to_path_buf(), segment_bytes, fsync_interval: Duration::from_millis(100) }),
        }
    }

    fn starts(batches: &[Batch]) -> Vec<(u64, Vec<i64>)> {
        batches.iter().map(|b| (b.seq, b.results.iter().map(|r| r.at_ms()).collect())).collect()
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
        let kept: Vec<i64> = buffer.seal(10).iter().flat_map(|b| b.results.iter().map(|r| r.at_ms())).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert!(buffer.unacked().iter().all(|b| !b.results.is_empty()));
    }

    #[test]
    fn results_older_than_max_age_are_dropped_and_counted() {
        let buffer = ResultBuffer::open(BufferOptions {
            max_results: 100,
            max_age: Duration::from_secs(10),
            max_bytes: u64::MAX,
            wal: None,
        })
        .unwrap();
        buffer.push(result(0));
        buffer.push(result(5_000));
        buffer.push(result(12_000));
        assert_eq!((buffer.stats().held, buffer.stats().dropped), (2, 1));
    }

    #[test]
    fn a_reopened_buffer_resends_the_same_batches_and_keeps_its_pending_results() {
        let dir = tempfile::tempdir().unwrap();
        let (epoch, sent) = {
            let buffer = ResultBuffer::open(durable(dir.path(), 1 << 20, u64::MAX)).unwrap();
            (0..5).for_each(|i| buffer.push(result(i)));
            let sent = buffer.seal(2);
            buffer.ack(1);
            buffer.push(result(5));
            buffer.push(result(6));
            // Dropped without sync: a killed process, whose writes are in the kernel.
            (buffer.epoch(), sent)
        };
        let buffer = ResultBuffer::open(durable(dir.path(), 1 << 20, u64::MAX)).unwrap();
        assert_eq!(buffer.epoch(), epoch, "the sequence space survives the restart");
        assert_eq!(starts(&buffer.unacked()), starts(&sent[1..]), "same seqs, same results");
        let next = buffer.seal(10);
        assert_eq!(starts(&next), [(4, vec![5, 6])]);
        buffer.ack(4);
        assert_eq!(buffer.stats().held, 0);
        drop(buffer);
        let buffer = ResultBuffer::open(durable(dir.path(), 1 << 20, u64::MAX)).unwrap();
        assert!(buffer.unacked().is_empty());
        buffer.push(result(7));
        assert_eq!(buffer.seal(10)[0].seq, 5, "sequence numbers never repeat across restarts");
    }

    #[test]
    fn the_log_stays_small_when_acknowledged_and_bounded_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = ResultBuffer::open(durable(dir.path(), 4_096, 32_768)).unwrap();
        for i in 0..2_000 {
            buffer.push(result(i));
            if i % 10 == 9 {
                let seq = buffer.seal(10)[0].seq;
                buffer.ack(seq);
            }
        }
        assert!(buffer.stats().wal_bytes <= 2 * 4_096 + 512, "acknowledged segments are deleted: {:?}", buffer.stats());
        assert_eq!(buffer.stats().dropped, 0);

        // Nobody acknowledges: the log stops at its bound, dropping the oldest.
        for i in 2_000..6_000 {
            buffer.push(result(i));
        }
        let stats = buffer.stats();
        assert!(stats.wal_bytes <= 32_768 + 4_096, "{stats:?}");
        assert!(stats.dropped > 0 && stats.held + stats.dropped as usize == 4_000, "{stats:?}");
        let held = stats.held;
        let dropped = stats.dropped;
        drop(buffer);
        let buffer = ResultBuffer::open(durable(dir.path(), 4_096, 32_768)).unwrap();
        let stats = buffer.stats();
        assert_eq!((stats.held, stats.dropped), (held, dropped), "drops are remembered across restarts");
        let newest: Vec<i64> = buffer.seal(100_000).iter().flat_map(|b| b.results.iter().map(|r| r.at_ms())).collect();
        assert_eq!(newest.last(), Some(&5_999), "the newest results are the ones kept");
    }
}
