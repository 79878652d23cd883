//! Conversions of the samples (mixer scrapes, node and pod samples) between wire and domain
//! types. Every `TryFrom` validates, naming the field: a sample that passes is safe to fold,
//! store and display.

use mixmon_model::{DiskSample, EntityName, IdError, MixerSample, NodeSample, PodSample, Record};

use crate::convert::ConvertError;
use crate::pb;

/// Bounds on a sample's lists: a mixer exposes a handful of statuses, about a dozen buckets
/// and genres, a node tens of mounts. Far above that is garbage, refused before it is folded.
pub const MAX_STATUSES: usize = 64;
pub const MAX_BUCKETS: usize = 128;
pub const MAX_GENRES: usize = 256;
pub const MAX_DISKS: usize = 256;
pub const MAX_MOUNT_LEN: usize = 256;
/// A sample stands for at most an hour: a longer weight would smear one figure over many minutes.
pub const MAX_WEIGHT_MS: u32 = 3_600_000;

fn name(field: &'static str, value: String) -> Result<EntityName, ConvertError> {
    EntityName::new(value).map_err(|source: IdError| ConvertError::Id { field, source })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConvertError {
    ConvertError::Invalid { field, reason: reason.into() }
}

fn weight(field: &'static str, weight_ms: u32) -> Result<u32, ConvertError> {
    if weight_ms == 0 || weight_ms > MAX_WEIGHT_MS {
        return Err(invalid(field, format!("{weight_ms} ms is outside 1..={MAX_WEIGHT_MS}")));
    }
    Ok(weight_ms)
}

fn at_most<T>(field: &'static str, items: &[T], max: usize) -> Result<(), ConvertError> {
    if items.len() > max {
        return Err(invalid(field, format!("{} entries, at most {max}", items.len())));
    }
    Ok(())
}

/// A gauge must be finite; `None` stays `None`.
fn finite(field: &'static str, value: Option<f64>) -> Result<Option<f64>, ConvertError> {
    match value {
        Some(v) if !v.is_finite() => Err(invalid(field, format!("{v} is not finite"))),
        other => Ok(other),
    }
}

impl TryFrom<pb::MixerSample> for MixerSample {
    type Error = ConvertError;
    fn try_from(s: pb::MixerSample) -> Result<Self, ConvertError> {
        at_most("mixer.requests", &s.requests, MAX_STATUSES)?;
        at_most("mixer.duration_buckets", &s.duration_buckets, MAX_BUCKETS)?;
        at_most("mixer.genres", &s.genres, MAX_GENRES)?;
        let mut requests = Vec::with_capacity(s.requests.len());
        for r in s.requests {
            let status = u16::try_from(r.status)
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| invalid("mixer.requests.status", r.status.to_string()))?;
            requests.push((status, r.count));
        }
        requests.sort_unstable();
        if requests.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(invalid("mixer.requests.status", "a status appears twice"));
        }
        let buckets: Vec<(f64, u64)> = s.duration_buckets.iter().map(|b| (b.le, b.count)).collect();
        if buckets.iter().any(|(le, _)| le.is_nan() || *le < 0.0) {
            return Err(invalid("mixer.duration_buckets.le", "a bound is NaN or negative"));
        }
        if buckets.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(invalid("mixer.duration_buckets.le", "bounds must increase strictly"));
        }
        let mut genres = Vec::with_capacity(s.genres.len());
        for g in s.genres {
            genres.push((name("mixer.genres.name", g.name)?, g.count));
        }
        genres.sort();
        if genres.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(invalid("mixer.genres.name", "a genre appears twice"));
        }
        let active_streams = finite("mixer.active_streams", s.active_streams)?;
        if active_streams.is_some_and(|v| v < 0.0) {
            return Err(invalid("mixer.active_streams", "negative"));
        }
        Ok(MixerSample {
            pod: name("mixer.pod", s.pod)?,
            node: name("mixer.node", s.node)?,
            at_ms: s.at_ms,
            weight_ms: weight("mixer.weight_ms", s.weight_ms)?,
            scrape_ok: s.scrape_ok,
            restarted: s.restarted,
            requests,
            duration_buckets: buckets,
            duration_count: s.duration_count,
            duration_sum_us: s.duration_sum_us,
            active_streams,
            audio_peak_db: finite("mixer.audio_peak_db", s.audio_peak_db)?,
            audio_lufs: finite("mixer.audio_lufs", s.audio_lufs)?,
            genres,
            covered_ms: s.covered_ms,
            first_in_minute: s.first_in_minute,
        })
    }
}

impl From<&MixerSample> for pb::MixerSample {
    fn from(s: &MixerSample) -> Self {
        pb::MixerSample {
            pod: s.pod.to_string(),
            node: s.node.to_string(),
            at_ms: s.at_ms,
            weight_ms: s.weight_ms,
            scrape_ok: s.scrape_ok,
            restarted: s.restarted,
            requests: s
                .requests
                .iter()
                .map(|(status, count)| pb::StatusCount { status: (*status).into(), count: *count })
                .collect(),
            duration_buckets: s
                .duration_buckets
                .iter()
                .map(|(le, count)| pb::HistogramBucket { le: *le, count: *count })
                .collect(),
            duration_count: s.duration_count,
            duration_sum_us: s.duration_sum_us,
            active_streams: s.active_streams,
            audio_peak_db: s.audio_peak_db,
            audio_lufs: s.audio_lufs,
            genres: s
                .genres
                .iter()
                .map(|(name, count)| pb::NamedCount { name: name.to_string(), count: *count })
                .collect(),
            covered_ms: s.covered_ms,
            first_in_minute: s.first_in_minute,
        }
    }
}

impl TryFrom<pb::NodeSample> for NodeSample {
    type Error = ConvertError;
    fn try_from(s: pb::NodeSample) -> Result<Self, ConvertError> {
        at_most("node.disks", &s.disks, MAX_DISKS)?;
        let cpu_busy_ratio = finite("node.cpu_busy_ratio", s.cpu_busy_ratio)?;
        if cpu_busy_ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err(invalid("node.cpu_busy_ratio", "outside 0..=1"));
        }
        let mut disks = Vec::with_capacity(s.disks.len());
        for d in s.disks {
            if d.mount.is_empty() || d.mount.len() > MAX_MOUNT_LEN || d.mount.chars().any(char::is_control) {
                return Err(invalid("node.disks.mount", "empty, too long or not printable"));
            }
            disks.push(DiskSample { mount: d.mount, used_bytes: d.used_bytes, total_bytes: d.total_bytes });
        }
        Ok(NodeSample {
            node: name("node.node", s.node)?,
            at_ms: s.at_ms,
            weight_ms: weight("node.weight_ms", s.weight_ms)?,
            cpu_busy_ratio,
            memory_used_bytes: s.memory_used_bytes,
            memory_total_bytes: s.memory_total_bytes,
            net_rx_bytes: s.net_rx_bytes,
            net_tx_bytes: s.net_tx_bytes,
            disks,
        })
    }
}

impl From<&NodeSample> for pb::NodeSample {
    fn from(s: &NodeSample) -> Self {
        pb::NodeSample {
            node: s.node.to_string(),
            at_ms: s.at_ms,
            weight_ms: s.weight_ms,
            cpu_busy_ratio: s.cpu_busy_ratio,
            memory_used_bytes: s.memory_used_bytes,
            memory_total_bytes: s.memory_total_bytes,
            net_rx_bytes: s.net_rx_bytes,
            net_tx_bytes: s.net_tx_bytes,
            disks: s
                .disks
                .iter()
                .map(|d| pb::DiskSample {
                    mount: d.mount.clone(),
                    used_bytes: d.used_bytes,
                    total_bytes: d.total_bytes,
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::PodSample> for PodSample {
    type Error = ConvertError;
    fn try_from(s: pb::PodSample) -> Result<Self, ConvertError> {
        Ok(PodSample {
            pod: name("pod.pod", s.pod)?,
            namespace: name("pod.namespace", s.namespace)?,
            node: name("pod.node", s.node)?,
            at_ms: s.at_ms,
            weight_ms: weight("pod.weight_ms", s.weight_ms)?,
            ready: s.ready,
            restarts: s.restarts,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
        })
    }
}

impl From<&PodSample> for pb::PodSample {
    fn from(s: &PodSample) -> Self {
        pb::PodSample {
            pod: s.pod.to_string(),
            namespace: s.namespace.to_string(),
            node: s.node.to_string(),
            at_ms: s.at_ms,
            weight_ms: s.weight_ms,
            ready: s.ready,
            restarts: s.restarts,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
        }
    }
}

impl TryFrom<pb::BufferedRecord> for Record {
    type Error = ConvertError;
    fn try_from(r: pb::BufferedRecord) -> Result<Self, ConvertError> {
        use pb::buffered_record::Record as R;
        match r.record {
            Some(R::Probe(p)) => Ok(Record::Probe(p.try_into()?)),
            Some(R::Mixer(s)) => Ok(Record::Mixer(s.try_into()?)),
            Some(R::Node(s)) => Ok(Record::Node(s.try_into()?)),
            Some(R::Pod(s)) => Ok(Record::Pod(s.try_into()?)),
            None => Err(ConvertError::Missing { field: "record" }),
        }
    }
}

impl From<&Record> for pb::BufferedRecord {
    fn from(r: &Record) -> Self {
        use pb::buffered_record::Record as R;
        let record = match r {
            Record::Probe(p) => R::Probe(p.into()),
            Record::Mixer(s) => R::Mixer(s.into()),
            Record::Node(s) => R::Node(s.into()),
            Record::Pod(s) => R::Pod(s.into()),
        };
        pb::BufferedRecord { record: Some(record) }
    }
}

/// A batch's records on the wire: results and each kind of sample in their own field.
pub fn batch_to_pb(seq: u64, records: &[Record]) -> pb::ResultBatch {
    let mut batch = pb::ResultBatch { seq, ..Default::default() };
    for record in records {
        match record {
            Record::Probe(r) => batch.results.push(r.into()),
            Record::Mixer(s) => batch.mixer.push(s.into()),
            Record::Node(s) => batch.nodes.push(s.into()),
            Record::Pod(s) => batch.pods.push(s.into()),
        }
    }
    batch
}

/// How many records a wire batch carries, of every kind (for the batch size limit).
pub fn batch_len(batch: &pb::ResultBatch) -> usize {
    batch.results.len() + batch.mixer.len() + batch.nodes.len() + batch.pods.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> EntityName {
        EntityName::new(s).unwrap()
    }

    fn mixer() -> MixerSample {
        MixerSample {
            pod: n("ai-mixer-0"),
            node: n("node-a"),
            at_ms: 1_764_000_000_000,
            weight_ms: 15_000,
            scrape_ok: true,
            restarted: false,
            requests: vec![(200, 1_500), (503, 3)],
            duration_buckets: vec![(0.05, 900), (0.1, 500), (f64::INFINITY, 100)],
            duration_count: 1_500,
            duration_sum_us: 75_000_000,
            active_streams: Some(42.0),
            audio_peak_db: Some(-6.5),
            audio_lufs: Some(-14.2),
            genres: vec![(n("jazz"), 4), (n("rock"), 9)],
            covered_ms: 14_980,
            first_in_minute: true,
        }
    }

    #[test]
    fn samples_round_trip_through_the_wire_and_the_log() {
        let node = NodeSample {
            node: n("node-a"),
            at_ms: 5,
            weight_ms: 15_000,
            cpu_busy_ratio: Some(0.25),
            memory_used_bytes: 3,
            memory_total_bytes: 8,
            net_rx_bytes: 100,
            net_tx_bytes: 50,
            disks: vec![DiskSample { mount: "/var/lib/kubelet".into(), used_bytes: 1, total_bytes: 2 }],
        };
        let pod = PodSample {
            pod: n("ai-mixer-0"),
            namespace: n("ai-mixer"),
            node: n("node-a"),
            at_ms: 5,
            weight_ms: 15_000,
            ready: true,
            restarts: 1,
            memory_bytes: Some(300),
            memory_limit_bytes: None,
        };
        for record in [Record::Mixer(mixer()), Record::Node(node), Record::Pod(pod)] {
            let back = Record::try_from(pb::BufferedRecord::from(&record)).unwrap();
            assert_eq!(back, record);
        }
        let batch = batch_to_pb(7, &[Record::Mixer(mixer()), Record::Mixer(mixer())]);
        assert_eq!((batch.seq, batch.mixer.len(), batch_len(&batch)), (7, 2, 2));
    }

    #[test]
    fn garbage_samples_are_refused_with_the_field_named() {
        let good = pb::MixerSample::from(&mixer());
        type Mutation = Box<dyn Fn(&mut pb::MixerSample)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("mixer.pod", Box::new(|s| s.pod = "a b".into())),
            ("mixer.weight_ms", Box::new(|s| s.weight_ms = 0)),
            ("mixer.weight_ms", Box::new(|s| s.weight_ms = u32::MAX)),
            ("mixer.requests.status", Box::new(|s| s.requests[0].status = 99)),
            ("mixer.requests.status", Box::new(|s| s.requests[1].status = 200)),
            ("mixer.duration_buckets.le", Box::new(|s| s.duration_buckets[1].le = f64::NAN)),
            ("mixer.duration_buckets.le", Box::new(|s| s.duration_buckets[1].le = 0.01)),
            ("mixer.active_streams", Box::new(|s| s.active_streams = Some(f64::INFINITY))),
            ("mixer.active_streams", Box::new(|s| s.active_streams = Some(-1.0))),
            ("mixer.audio_peak_db", Box::new(|s| s.audio_peak_db = Some(f64::NAN))),
            ("mixer.genres.name", Box::new(|s| s.genres[0].name = "jazz/fusion".into())),
            ("mixer.requests", Box::new(|s| s.requests = vec![pb::StatusCount { status: 200, count: 1 }; 65])),
        ];
        for (field, mutate) in cases {
            let mut bad = good.clone();
            mutate(&mut bad);
            let err = MixerSample::try_from(bad).unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
        let bad_cpu =
            pb::NodeSample { node: "n".into(), weight_ms: 1, cpu_busy_ratio: Some(1.5), ..Default::default() };
        assert!(NodeSample::try_from(bad_cpu).unwrap_err().to_string().starts_with("node.cpu_busy_ratio"));
        let bad_mount = pb::NodeSample {
            node: "n".into(),
            weight_ms: 1,
            disks: vec![pb::DiskSample { mount: "/a\n".into(), ..Default::default() }],
            ..Default::default()
        };
        assert!(NodeSample::try_from(bad_mount).unwrap_err().to_string().starts_with("node.disks.mount"));
        let no_ns = pb::PodSample { pod: "p".into(), node: "n".into(), weight_ms: 1, ..Default::default() };
        assert!(PodSample::try_from(no_ns).unwrap_err().to_string().starts_with("pod.namespace"));
        assert!(Record::try_from(pb::BufferedRecord { record: None }).is_err());
    }
}
