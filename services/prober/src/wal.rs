//! The prober's write-ahead log: the on-disk half of the result buffer, so that a killed or
//! restarted prober loses nothing it measured and resends every unacknowledged batch with the
//! *same* `(epoch, seq)`, which the store's watermark recognises as a resend.
//!
//! Layout: numbered segment files `wal-<index>.seg` in one directory. A record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`, the payload a one-byte type and fields.
//! Every segment starts with a `Header` holding the whole buffer state that is not in result
//! records (epoch, counters, the live batches), so older segments are needed only for the
//! results they hold and are deleted, oldest first, once none of their results is still held.
//!
//! What is written when (the buffer calls these under its own lock, so records are ordered):
//! a `Result` before `push` returns, a `Seal` (batch `seq` covers result ids `first..end`)
//! before the batch is sent, an `Ack`, `Reject` or `Drop` when the buffer forgets results.
//! Each record is one `write` to the file, so a killed process (SIGKILL, OOM) loses nothing
//! that was appended; what a power loss or kernel crash can lose depends on the fsync policy:
//! with `fsync_interval` zero nothing, otherwise at most the results of the last interval.
//! Losing an `Ack` is harmless: the batch is sent again and deduplicated by the store.
//!
//! Recovery replays the segments in order; a torn or corrupt record ends that segment's replay
//! (a crash mid-write leaves at most one torn record, at the tail of the newest segment), and
//! the log continues in a fresh segment.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mixmon_model::Record;
use mixmon_proto::wire::{self, WireError};

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".seg";
/// A record larger than this is corruption, not data (results are a few hundred bytes).
const MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;
const RECORD_OVERHEAD: u64 = 8;

/// The file locked by the process that owns the log.
const LOCK_FILE: &str = "lock";
const T_HEADER: u8 = 1;
const T_RESULT: u8 = 2;
const T_SEAL: u8 = 3;
const T_ACK: u8 = 4;
const T_REJECT: u8 = 5;
const T_DROP: u8 = 6;
/// A record other than a probe result (a mixer, node or pod sample), as a `BufferedRecord`.
const T_RECORD: u8 = 7;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("write-ahead log {path} is in use by another process (two probers with one id?)")]
    Locked { path: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.display().to_string(), source }
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// `fsync` at most this long after an append; zero syncs every append.
    pub fsync_interval: Duration,
}

/// A batch that is sealed and not yet acknowledged: `seq` covers result ids `first..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSeal {
    pub seq: u64,
    pub first: u64,
    pub end: u64,
}

/// Everything of the buffer's state that is not in result records; starts every segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub epoch: u64,
    pub next_seq: u64,
    pub next_rid: u64,
    pub acked_seq: u64,
    /// Every result id below this was dropped or forgotten.
    pub drop_below: u64,
    /// Every result id below this was sealed into a batch.
    pub sealed_below: u64,
    pub dropped: u64,
    pub seals: Vec<LiveSeal>,
}

/// What the log held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// `None` when the directory held no log: the buffer starts a new epoch.
    pub header: Option<Header>,
    /// Unacknowledged batches, oldest first, with the results still held.
    pub sealed: Vec<(LiveSeal, Vec<(u64, Record)>)>,
    /// Results not yet in any batch, oldest first.
    pub pending: Vec<(u64, Record)>,
    pub torn_records: u64,
}

#[derive(Debug)]
struct Segment {
    index: u64,
    path: PathBuf,
    bytes: u64,
    /// Highest result id in the segment.
    max_rid: Option<u64>,
}

pub struct Wal {
    options: WalOptions,
    segments: VecDeque<Segment>,
    active: File,
    total_bytes: u64,
    last_sync: Instant,
    dirty: bool,
    /// Held (locked) for as long as the log is open.
    _lock: File,
}

enum Entry {
    Header(Header),
    Result(u64, Record),
    Seal(LiveSeal),
    Ack(u64),
    Reject(u64),
    Drop {
        below: u64,
        count: u64,
    },
    /// Intact, but nothing this version can use.
    Skip,
}

impl Wal {
    /// Opens (creating) the log in `options.dir`, replays it, and starts a fresh segment whose
    /// header the caller writes with [`Wal::start_segment`] once it rebuilt its state.
    pub fn open(options: WalOptions) -> Result<(Self, Recovered), WalError> {
        std::fs::create_dir_all(&options.dir).map_err(io(&options.dir))?;
        // Two writers would interleave records and reuse sequence numbers: the second is
        // refused. The lock is the kernel's, so it goes with the process, however it ends.
        let lock_path = options.dir.join(LOCK_FILE);
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(WalError::Locked { path: options.dir.display().to_string() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let (mut segments, recovered) = replay_dir(&options.dir)?;
        let next_index = segments.back().map_or(0, |s| s.index + 1);
        let path = segment_path(&options.dir, next_index);
        let active = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        segments.push_back(Segment { index: next_index, path, bytes: 0, max_rid: None });
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        let wal = Self { options, segments, active, total_bytes, last_sync: Instant::now(), dirty: false, _lock: lock };
        sync_dir(&wal.options.dir)?;
        Ok((wal, recovered))
    }

    /// Writes the header that opens the active segment (right after `open` or a rotation).
    pub fn start_segment(&mut self, header: &Header) -> Result<(), WalError> {
        let mut payload = vec![T_HEADER];
        for value in [
            header.epoch,
            header.next_seq,
            header.next_rid,
            header.acked_seq,
            header.drop_below,
            header.sealed_below,
            header.dropped,
            header.seals.len() as u64,
        ] {
            payload.extend_from_slice(&value.to_le_bytes());
        }
        for seal in &header.seals {
            for value in [seal.seq, seal.first, seal.end] {
                payload.extend_from_slice(&value.to_le_bytes());
            }
        }
        self.write(&payload, None)?;
        // The header is what makes older segments deletable: make it durable now.
        self.sync()
    }

    /// Appends one record. Probe results, the bulk, are written bare (`T_RESULT`); samples in
    /// their `BufferedRecord` envelope (`T_RECORD`).
    pub fn append_result(&mut self, rid: u64, record: &Record) -> Result<(), WalError> {
        let tag = if matches!(record, Record::Probe(_)) { T_RESULT } else { T_RECORD };
        let mut payload = vec![tag];
        payload.extend_from_slice(&rid.to_le_bytes());
        match record {
            Record::Probe(result) => wire::encode_result(result, &mut payload),
            other => wire::encode_record(other, &mut payload),
        }
        self.write(&payload, Some(rid))
    }

    pub fn append_seal(&mut self, seal: LiveSeal) -> Result<(), WalError> {
        self.write(&fields(T_SEAL, &[seal.seq, seal.first, seal.end]), None)
    }

    pub fn append_ack(&mut self, seq: u64) -> Result<(), WalError> {
        self.write(&fields(T_ACK, &[seq]), None)
    }

    pub fn append_reject(&mut self, seq: u64) -> Result<(), WalError> {
        self.write(&fields(T_REJECT, &[seq]), None)
    }

    pub fn append_drop(&mut self, below: u64, count: u64) -> Result<(), WalError> {
        self.write(&fields(T_DROP, &[below, count]), None)
    }

    /// True once the active segment is full: the caller rotates with its current header.
    pub fn wants_rotation(&self) -> bool {
        self.segments.back().is_some_and(|s| s.bytes >= self.options.segment_bytes)
    }

    /// Closes the active segment and opens the next one, headed by `header`.
    pub fn rotate(&mut self, header: &Header) -> Result<(), WalError> {
        self.sync()?;
        let index = self.segments.back().map_or(0, |s| s.index + 1);
        let path = segment_path(&self.options.dir, index);
        self.active = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        self.segments.push_back(Segment { index, path, bytes: 0, max_rid: None });
        sync_dir(&self.options.dir)?;
        self.start_segment(header)
    }

    /// Deletes closed segments, oldest first, whose results are all below `low_rid` (no
    /// longer held): everything else they recorded is repeated in a later segment's header.
    pub fn remove_obsolete(&mut self, low_rid: u64) -> Result<(), WalError> {
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.front() else { break };
            if oldest.max_rid.is_some_and(|max| max >= low_rid) {
                break;
            }
            std::fs::remove_file(&oldest.path).map_err(io(&oldest.path))?;
            self.total_bytes -= oldest.bytes;
            self.segments.pop_front();
        }
        Ok(())
    }

    /// The highest result id in the oldest closed segment, when there is one: dropping every
    /// held result up to it lets [`Wal::remove_obsolete`] free that segment.
    pub fn oldest_closed_max_rid(&self) -> Option<Option<u64>> {
        (self.segments.len() > 1).then(|| self.segments.front().and_then(|s| s.max_rid))
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes on disk, every segment included.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.active.sync_data().map_err(io(&self.options.dir))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Syncs if the fsync interval has passed since the last sync.
    pub fn sync_if_due(&mut self) -> Result<(), WalError> {
        if self.dirty && self.last_sync.elapsed() >= self.options.fsync_interval {
            self.sync()?;
        }
        Ok(())
    }

    fn active_path(&self) -> &Path {
        self.segments.back().map_or(self.options.dir.as_path(), |s| s.path.as_path())
    }

    fn write(&mut self, payload: &[u8], rid: Option<u64>) -> Result<(), WalError> {
        let mut record = Vec::with_capacity(payload.len() + RECORD_OVERHEAD as usize);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        // One write per record: once it returns the bytes are in the kernel, so a killed
        // process loses nothing.
        let path = self.active_path().to_path_buf();
        self.active.write_all(&record).map_err(io(&path))?;
        if let Some(segment) = self.segments.back_mut() {
            segment.bytes += record.len() as u64;
            if rid.is_some() {
                segment.max_rid = segment.max_rid.max(rid);
            }
        }
        self.total_bytes += record.len() as u64;
        self.dirty = true;
        self.sync_if_due()
    }
}

fn fields(kind: u8, values: &[u64]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + 8 * values.len());
    payload.push(kind);
    for value in values {
        payload.extend_from_slice(&value.to_le_bytes());
    }
    payload
}

/// What the log in `dir` holds, read without taking the lock or writing: how a test or an
/// operator sees which batches a running (or dead) prober still owes.
pub fn inspect(dir: &Path) -> Result<Recovered, WalError> {
    Ok(replay_dir(dir)?.1)
}

/// Replays every segment of `dir` in order.
fn replay_dir(dir: &Path) -> Result<(VecDeque<Segment>, Recovered), WalError> {
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SEGMENT_PREFIX))
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        indexes.push(index);
    }
    indexes.sort_unstable();

    let mut replay = Replay::default();
    let mut segments = VecDeque::new();
    let mut torn_records = 0;
    for index in &indexes {
        let path = segment_path(dir, *index);
        let mut bytes = Vec::new();
        File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io(&path))?;
        let (records, good_len) = decode_all(&bytes);
        if good_len < bytes.len() {
            torn_records += 1;
            tracing::warn!(segment = %path.display(), offset = good_len, "write-ahead log segment ends in a torn or corrupt record; replay of this segment stops there");
        }
        let mut max_rid = None;
        for record in records {
            if let Entry::Result(rid, _) = &record {
                max_rid = max_rid.max(Some(*rid));
            }
            replay.apply(record);
        }
        segments.push_back(Segment { index: *index, path, bytes: bytes.len() as u64, max_rid });
    }
    let recovered = replay.finish(torn_records);
    Ok((segments, recovered))
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{index:020}{SEGMENT_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    // A new or deleted file is durable only once its directory entry is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Decodes records until the end or the first torn/corrupt one; returns them and the length
/// of the good prefix.
fn decode_all(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while let Some(header) = bytes.get(offset..offset + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD_BYTES {
            break;
        }
        let Some(payload) = bytes.get(offset + 8..offset + 8 + len as usize) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode(payload) else { break };
        records.push(record);
        offset += 8 + len as usize;
    }
    (records, offset)
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let (&kind, rest) = payload.split_first()?;
    let u64_at = |i: usize| -> Option<u64> {
        rest.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    };
    match kind {
        T_HEADER => {
            let n = usize::try_from(u64_at(7)?).ok()?;
            if rest.len() != 8 * (8 + 3 * n) {
                return None;
            }
            let seals = (0..n)
                .map(|i| {
                    Some(LiveSeal { seq: u64_at(8 + 3 * i)?, first: u64_at(9 + 3 * i)?, end: u64_at(10 + 3 * i)? })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Entry::Header(Header {
                epoch: u64_at(0)?,
                next_seq: u64_at(1)?,
                next_rid: u64_at(2)?,
                acked_seq: u64_at(3)?,
                drop_below: u64_at(4)?,
                sealed_below: u64_at(5)?,
                dropped: u64_at(6)?,
                seals,
            }))
        }
        T_RESULT => {
            let rid = u64_at(0)?;
            match wire::decode_result(rest.get(8..)?) {
                Ok(result) => Some(Entry::Result(rid, Record::Probe(result))),
                Err(WireError::Malformed(_)) => None,
                // Intact but not understood (written by another version): skip the result,
                // keep replaying.
                Err(err) => {
                    tracing::warn!(rid, error = %err, "skipping a result in the write-ahead log that does not decode");
                    Some(Entry::Skip)
                }
            }
        }
        T_RECORD => {
            let rid = u64_at(0)?;
            match wire::decode_record(rest.get(8..)?) {
                Ok(record) => Some(Entry::Result(rid, record)),
                Err(WireError::Malformed(_)) => None,
                Err(err) => {
                    tracing::warn!(rid, error = %err, "skipping a sample in the write-ahead log that does not decode");
                    Some(Entry::Skip)
                }
            }
        }
        T_SEAL => Some(Entry::Seal(LiveSeal { seq: u64_at(0)?, first: u64_at(1)?, end: u64_at(2)? })),
        T_ACK => Some(Entry::Ack(u64_at(0)?)),
        T_REJECT => Some(Entry::Reject(u64_at(0)?)),
        T_DROP => Some(Entry::Drop { below: u64_at(0)?, count: u64_at(1)? }),
        _ => None,
    }
}

#[derive(Default)]
struct Replay {
    header: Option<Header>,
    seals: BTreeMap<u64, LiveSeal>,
    rejected: BTreeSet<u64>,
    results: BTreeMap<u64, Record>,
}

impl Replay {
    fn state(&mut self) -> &mut Header {
        self.header.get_or_insert_with(Header::default)
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Header(h) => {
                // A header lists every batch still live when it was written: a seal missing
                // from it was acknowledged or refused before, whatever older segments say.
                self.seals.clear();
                self.rejected.clear();
                let state = self.state();
                if state.epoch == 0 {
                    state.epoch = h.epoch;
                }
                state.next_seq = state.next_seq.max(h.next_seq);
                state.next_rid = state.next_rid.max(h.next_rid);
                state.acked_seq = state.acked_seq.max(h.acked_seq);
                state.drop_below = state.drop_below.max(h.drop_below);
                state.sealed_below = state.sealed_below.max(h.sealed_below);
                // Cumulative at the time the header was written, drops before it included.
                state.dropped = h.dropped;
                for seal in h.seals {
                    self.seals.insert(seal.seq, seal);
                }
            }
            Entry::Result(rid, result) => {
                let state = self.state();
                state.next_rid = state.next_rid.max(rid + 1);
                self.results.insert(rid, result);
            }
            Entry::Seal(seal) => {
                let state = self.state();
                state.next_seq = state.next_seq.max(seal.seq + 1);
                state.sealed_below = state.sealed_below.max(seal.end);
                self.seals.insert(seal.seq, seal);
            }
            Entry::Ack(seq) => {
                let state = self.state();
                state.acked_seq = state.acked_seq.max(seq);
            }
            Entry::Reject(seq) => {
                self.rejected.insert(seq);
            }
            Entry::Drop { below, count } => {
                let state = self.state();
                state.drop_below = state.drop_below.max(below);
                state.dropped += count;
            }
            Entry::Skip => {}
        }
    }

    fn finish(mut self, torn_records: u64) -> Recovered {
        let Some(mut header) = self.header.take() else {
            return Recovered { torn_records, ..Recovered::default() };
        };
        if header.epoch == 0 {
            // Records without any header: the log is unusable as a sequence space.
            return Recovered { torn_records, ..Recovered::default() };
        }
        let drop_below = header.drop_below;
        self.results.retain(|rid, _| *rid >= drop_below);
        let mut sealed = Vec::new();
        let mut live = Vec::new();
        for (seq, seal) in &self.seals {
            if *seq <= header.acked_seq || self.rejected.contains(seq) {
                continue;
            }
            let results: Vec<(u64, Record)> =
                self.results.range(seal.first..seal.end).map(|(rid, r)| (*rid, r.clone())).collect();
            if results.is_empty() {
                continue;
            }
            live.push(*seal);
            sealed.push((*seal, results));
        }
        let pending = self.results.range(header.sealed_below..).map(|(rid, r)| (*rid, r.clone())).collect();
        header.next_seq = header.next_seq.max(header.acked_seq + 1).max(1);
        header.seals = live;
        Recovered { header: Some(header), sealed, pending, torn_records }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_model::ProbeResult;
    use mixmon_model::{CheckId, EntityName, PhaseTimings, PodSample};

    fn result(n: i64) -> Record {
        Record::Probe(ProbeResult {
            check_id: CheckId::new("c").unwrap(),
            started_at_ms: n,
            failure: None,
            duration_us: 1,
            status_code: 200,
            error: String::new(),
            phases: PhaseTimings::default(),
            details: Default::default(),
        })
    }

    fn options(dir: &Path) -> WalOptions {
        WalOptions { dir: dir.to_path_buf(), segment_bytes: 1 << 20, fsync_interval: Duration::ZERO }
    }

    #[test]
    fn samples_and_results_share_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let name = |s: &str| EntityName::new(s).unwrap();
        let pod = Record::Pod(PodSample {
            pod: name("ai-mixer-0"),
            namespace: name("ai-mixer"),
            node: name("node-a"),
            at_ms: 7,
            weight_ms: 15_000,
            ready: false,
            restarts: 2,
            memory_bytes: Some(1 << 20),
            memory_limit_bytes: Some(1 << 29),
        });
        {
            let (mut wal, _) = Wal::open(options(dir.path())).unwrap();
            wal.start_segment(&Header { epoch: 3, next_seq: 1, ..Header::default() }).unwrap();
            wal.append_result(0, &result(1)).unwrap();
            wal.append_result(1, &pod).unwrap();
            wal.sync().unwrap();
        }
        let (_, recovered) = Wal::open(options(dir.path())).unwrap();
        assert_eq!(recovered.pending, vec![(0, result(1)), (1, pod)]);
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Wal::open(options(dir.path())).unwrap();
        let second = Wal::open(options(dir.path()));
        assert!(matches!(second, Err(WalError::Locked { .. })), "two writers on one log");
        drop(first);
        assert!(Wal::open(options(dir.path())).is_ok(), "the lock goes with the writer");
    }

    #[test]
    fn an_empty_directory_recovers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recovered) = Wal::open(options(dir.path())).unwrap();
        assert!(recovered.header.is_none());
    }

    #[test]
    fn replays_live_batches_and_pending_results_and_tolerates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(options(dir.path())).unwrap();
            wal.start_segment(&Header { epoch: 9, next_seq: 1, ..Header::default() }).unwrap();
            for rid in 0..6 {
                wal.append_result(rid, &result(rid as i64)).unwrap();
            }
            wal.append_seal(LiveSeal { seq: 1, first: 0, end: 2 }).unwrap();
            wal.append_seal(LiveSeal { seq: 2, first: 2, end: 4 }).unwrap();
            wal.append_ack(1).unwrap();
        }
        // A torn record at the tail, as a crash mid-write leaves it.
        let segment = segment_path(dir.path(), 0);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        let (_, recovered) = Wal::open(options(dir.path())).unwrap();
        let header = recovered.header.unwrap();
        assert_eq!((header.epoch, header.next_seq, header.next_rid, header.acked_seq), (9, 3, 6, 1));
        assert_eq!(recovered.torn_records, 1);
        assert_eq!(recovered.sealed.len(), 1);
        assert_eq!(recovered.sealed[0].0.seq, 2);
        assert_eq!(recovered.sealed[0].1.iter().map(|(rid, _)| *rid).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(recovered.pending.iter().map(|(rid, _)| *rid).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(recovered.pending[1].1, result(5));
    }

    #[test]
    fn a_corrupt_record_is_refused_by_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(options(dir.path())).unwrap();
            wal.start_segment(&Header { epoch: 3, next_seq: 1, ..Header::default() }).unwrap();
            wal.append_result(0, &result(0)).unwrap();
            wal.append_result(1, &result(1)).unwrap();
        }
        let segment = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, bytes).unwrap();
        let (_, recovered) = Wal::open(options(dir.path())).unwrap();
        assert_eq!(recovered.pending.iter().map(|(rid, _)| *rid).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn segments_are_deleted_once_nothing_in_them_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(WalOptions { segment_bytes: 200, ..options(dir.path()) }).unwrap();
        let header = Header { epoch: 1, next_seq: 1, ..Header::default() };
        wal.start_segment(&header).unwrap();
        let mut rid = 0;
        while wal.segment_count() < 3 {
            wal.append_result(rid, &result(0)).unwrap();
            rid += 1;
            if wal.wants_rotation() {
                wal.rotate(&Header { next_rid: rid, ..header.clone() }).unwrap();
            }
        }
        let before = wal.bytes();
        wal.remove_obsolete(0).unwrap();
        assert_eq!(wal.segment_count(), 3, "everything still held");
        wal.remove_obsolete(rid).unwrap();
        assert_eq!(wal.segment_count(), 1, "the active segment stays");
        assert!(wal.bytes() < before);
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(SEGMENT_PREFIX))
            .count();
        assert_eq!(segments, 1);
    }
}
