//! The SLI catalogue and its reads: the one code a Grafana panel, the status table and an
//! alert rule all read a number from, so a panel and a rule never disagree.
//!
//! `metric` names every metric the query API serves and computes each from a window of
//! merged probe rollups; `figure` does the same for the mixer's, the nodes' and the pods'
//! figures; `window` reads one window ending now for every instance of a scope (what a rule
//! evaluates); `status` is the live health table and the mixer's recent figures.

pub mod figure;
pub mod metric;
pub mod status;
pub mod window;

pub use figure::{FigureMetric, Part, Stat};
pub use metric::{Metric, UPTIME_WINDOW_MINUTES};
pub use window::{instances, scopes_of, window_rollup, Instance, WindowError};

use mixmon_store::StoreError;

/// The region name of a series or row merged across regions.
pub const MERGED_REGION: &str = "all";

#[derive(Debug, thiserror::Error)]
pub enum SliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Window(#[from] WindowError),
}
