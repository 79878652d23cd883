//! The live health table: per endpoint, merged across regions (`region: "all"`) and per
//! region, the last 5 minutes' success rate and p95, the rolling 24 h uptime, and the
//! operators' classification. `mixmon up` prints it; the query service's `GET /api/v1/status` serves it.
//! `GET /api/v1/status/mixer` is the mixer's counterpart: per region and merged, the last 5
//! minutes' request rate, error rate and processing p95.

use std::collections::BTreeMap;

use mixmon_model::figure_sli;
use mixmon_model::sli::{self, HealthStatus, HealthThresholds};
use mixmon_model::{figures, Fields, Minute, Rollup, SeriesKey, SubjectKind};
use mixmon_store::Store;
use serde::{Serialize, Serializer};

use crate::metric::UPTIME_WINDOW_MINUTES;
use crate::{SliError, MERGED_REGION};

/// Minutes in the "recent" window, the current (partial) minute included.
pub const RECENT_MINUTES: i64 = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStatus {
    pub endpoint: String,
    /// A region, or `"all"` for the endpoint merged across regions.
    pub region: String,
    #[serde(serialize_with = "status_name")]
    pub status: HealthStatus,
    pub success_rate_5m: Option<f64>,
    pub p95_ms_5m: Option<f64>,
    pub uptime_24h: Option<f64>,
    pub probes_5m: u64,
}

fn status_name<S: Serializer>(status: &HealthStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

#[derive(Default)]
struct Tally {
    recent: Rollup,
    total_24h: u64,
    successes_24h: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.recent.merge(&other.recent);
        self.total_24h += other.total_24h;
        self.successes_24h += other.successes_24h;
    }

    fn status(&self, endpoint: &str, region: &str, thresholds: &HealthThresholds) -> EndpointStatus {
        let uptime = (self.total_24h > 0).then(|| self.successes_24h as f64 / self.total_24h as f64);
        EndpointStatus {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            status: sli::classify(&self.recent, uptime, thresholds),
            success_rate_5m: sli::success_rate(&self.recent),
            p95_ms_5m: sli::latency_ms(&self.recent, 0.95),
            uptime_24h: uptime,
            probes_5m: self.recent.total,
        }
    }
}

/// Every endpoint in the store as of `now_ms`: its merged row first, then a row per region.
/// An endpoint without probes in the recent window is `NoData`, never down.
pub async fn status_snapshot(
    store: &dyn Store,
    now_ms: i64,
    thresholds: &HealthThresholds,
) -> Result<Vec<EndpointStatus>, SliError> {
    let series = store.list_series().await?;
    let mut by_endpoint: BTreeMap<String, Vec<SeriesKey>> = BTreeMap::new();
    for key in series {
        by_endpoint.entry(key.check.to_string()).or_default().push(key);
    }
    let end = Minute::containing(now_ms).0 + 1;
    let (from_24h, from_recent) = (end - UPTIME_WINDOW_MINUTES, end - RECENT_MINUTES);
    let mut rows = Vec::new();
    for (endpoint, mut members) in by_endpoint {
        members.sort();
        let read = store.read_rollups(&members, Minute(from_24h), Minute(end)).await?;
        let mut merged = Tally::default();
        let mut regional = Vec::with_capacity(members.len());
        for (key, minutes) in members.iter().zip(&read) {
            let mut tally = Tally::default();
            for (minute, rollup) in minutes.iter().filter(|(m, _)| (from_24h..end).contains(&m.0)) {
                tally.total_24h += rollup.total;
                tally.successes_24h += rollup.successes;
                if minute.0 >= from_recent {
                    tally.recent.merge(rollup);
                }
            }
            merged.add(&tally);
            regional.push(tally.status(&endpoint, key.region.as_str(), thresholds));
        }
        rows.push(merged.status(&endpoint, MERGED_REGION, thresholds));
        rows.extend(regional);
    }
    Ok(rows)
}

/// The mixer of one region (or `"all"`, every region merged) over the recent window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixerStatus {
    pub region: String,
    pub request_rate_5m: Option<f64>,
    pub error_rate_5m: Option<f64>,
    pub p95_ms_5m: Option<f64>,
}

impl MixerStatus {
    fn of(region: &str, fields: &Fields, window_ms: i64) -> Self {
        MixerStatus {
            region: region.to_string(),
            request_rate_5m: figure_sli::request_rate(fields, window_ms),
            error_rate_5m: figure_sli::error_rate(fields),
            p95_ms_5m: figure_sli::processing_quantile_ms(fields, 0.95),
        }
    }
}

/// Every region's mixer as of `now_ms`, the merged row first. Rates are over the time the
/// window has covered so far (the current minute counts up to `now_ms`).
pub async fn mixer_snapshot(store: &dyn Store, now_ms: i64) -> Result<Vec<MixerStatus>, SliError> {
    let mut subjects: Vec<_> = store
        .list_subjects()
        .await?
        .into_iter()
        .filter(|s| s.kind == SubjectKind::Mixer && !s.region.is_all())
        .collect();
    subjects.sort();
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let end = Minute::containing(now_ms).0 + 1;
    let from = end - RECENT_MINUTES;
    let window_ms = now_ms - Minute(from).start_ms();
    let mut read = store.read_figures(&subjects, Minute(from), Minute(end)).await?;
    read.iter_mut().for_each(|minutes| figures::count_pods_not_yet_heard(minutes, Minute::containing(now_ms)));
    let mut merged = Fields::default();
    let mut regional = Vec::with_capacity(subjects.len());
    for (subject, minutes) in subjects.iter().zip(&read) {
        let mut fields = Fields::default();
        for (_, f) in minutes.iter().filter(|(m, _)| (from..end).contains(&m.0)) {
            fields.merge(f);
        }
        merged.merge_concurrent(&fields);
        regional.push(MixerStatus::of(subject.region.as_str(), &fields, window_ms));
    }
    let mut rows = vec![MixerStatus::of(MERGED_REGION, &merged, window_ms)];
    rows.extend(regional);
    Ok(rows)
}
