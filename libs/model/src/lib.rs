//! What mixmon knows, with no I/O, no async and no clock reads: ids, checks, probe results,
//! per-minute rollups with their latency sketch, and the SLIs computed from them.
//!
//! Time is always a parameter here (unix milliseconds or [`Minute`]), so every function can be
//! tested with tables of inputs.

pub mod alert;
pub mod check;
pub mod counters;
pub mod figure_sli;
pub mod figures;
pub mod ids;
pub mod lru;
pub mod prober;
pub mod record;
pub mod result;
pub mod rollup;
pub mod sample;
pub mod sketch;
pub mod sli;
pub mod time;

pub use check::{
    AddressPolicy, BodyAssertion, CheckKind, CheckSpec, CheckSpecError, DnsCheck, DnsRecordType, GrpcCheck, HttpCheck,
    IpPreference, TcpCheck,
};
pub use figures::{Fields, Subject, SubjectKind};
pub use ids::{CheckId, EntityName, IdError, ProberId, Region};
pub use prober::ProberIdentity;
pub use record::{RawRecord, RECORDS_KEPT};
pub use result::{FailureKind, HttpVersion, PhaseTimings, ProbeDetails, ProbeResult, TlsInfo};
pub use rollup::{Phase, PhaseStats, Rollup, RollupDelta, SeriesKey};
pub use sample::{DiskSample, MixerSample, NodeSample, PodSample, Record};
pub use sketch::{LatencySketch, SketchSum};
pub use time::{Hour, Minute};
