//! What mixmon knows, with no I/O, no async and no clock reads: ids, checks, probe results,
//! per-minute rollups with their latency sketch, and the SLIs computed from them.
//!
//! Time is always a parameter here (unix milliseconds or [`Minute`]), so every function can be
//! tested with tables of inputs.

pub mod check;
pub mod ids;
pub mod prober;
pub mod result;
pub mod rollup;
pub mod sketch;
pub mod sli;
pub mod time;

pub use check::{CheckKind, CheckSpec, CheckSpecError, HttpCheck};
pub use ids::{CheckId, IdError, ProberId, Region};
pub use prober::ProberIdentity;
pub use result::{FailureKind, PhaseTimings, ProbeResult};
pub use rollup::{Rollup, RollupDelta, SeriesKey};
pub use sketch::LatencySketch;
pub use time::Minute;
