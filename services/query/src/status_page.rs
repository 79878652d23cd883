//! `GET /status`: the status page operators open when Grafana is what broke. Per endpoint
//! (merged across regions, then per region) the status, success and p95 of the last 5 minutes
//! and the rolling 24 h uptime, all exactly as `GET /api/v1/status` answers them
//! ([`status_snapshot`]); the uptime over 7 d and 15 d and the last 24 hours' hourly p95 and
//! availability as inline SVG, from hourly rollups; the open incidents (firing alerts) and the
//! latest failed probes (raw records).
//!
//! Plain HTML and CSS, rendered here: no JavaScript (the response's CSP forbids scripts), a
//! `<meta http-equiv="refresh">`, and a table that becomes cards on a phone. Every string that
//! comes from the store is escaped.
//!
//! Its work is bounded and takes no parameter: the status table (the same reads as
//! `/api/v1/status`), one hourly read of at most [`MAX_HISTORY_ROWS`] series over 15 days, the
//! alert instances, and at most [`FAILURE_SERIES`] raw-record reads. One page is rendered at a
//! time, and a page rendered within [`REUSE`] of a request's arrival answers it, so any number
//! of viewers costs at most one render per [`REUSE`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mixmon_model::alert::{AlertInstance, AlertState};
use mixmon_model::sli::{self, HealthStatus, HealthThresholds};
use mixmon_model::{CheckId, Hour, Minute, Region, SeriesKey};
use mixmon_sli::status::{status_snapshot, EndpointStatus};
use mixmon_store::Store;

use crate::error::QueryError;
use crate::AppState;

/// The route, which the auth layer treats apart (public when configured, 401 otherwise).
pub const PATH: &str = "/status";
/// Rows (merged and regional series) whose 7 d and 15 d uptime and history are read; rows past
/// it show the 5-minute figures and the 24 h uptime only.
pub const MAX_HISTORY_ROWS: usize = 120;
/// Regional series whose raw records are read for the latest failures: those that failed most
/// recently, by their hourly rollups.
pub const FAILURE_SERIES: usize = 8;
/// Records read per such series (the newest; the store keeps 1000).
const FAILURE_RECORDS_PER_SERIES: usize = 100;
const FAILURES_SHOWN: usize = 20;
const INCIDENTS_SHOWN: usize = 50;
/// Hours drawn in the history sparklines.
pub const HISTORY_HOURS: i64 = 24;
const HOURS_7D: i64 = 7 * 24;
/// The retention: 15 days of hourly rollups.
const HOURS_15D: i64 = 15 * 24;
/// How old a rendered page may be when it answers a request.
pub const REUSE: Duration = Duration::from_secs(5);

/// `[status_page]` as the service runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPageOptions {
    /// Served without the bearer token (everything else still needs it).
    pub public: bool,
    /// The page's `<meta http-equiv="refresh">`, in seconds.
    pub refresh_seconds: u32,
}

pub const DEFAULT_REFRESH_SECONDS: u32 = 30;

impl Default for StatusPageOptions {
    fn default() -> Self {
        StatusPageOptions { public: false, refresh_seconds: DEFAULT_REFRESH_SECONDS }
    }
}

/// The last rendered page, shared by every request (one render at a time).
#[derive(Default)]
pub(crate) struct Renders {
    last: tokio::sync::Mutex<Option<Rendered>>,
}

struct Rendered {
    started: Instant,
    status: StatusCode,
    html: Bytes,
}

pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    let arrived = Instant::now();
    let mut last = state.status_page.last.lock().await;
    if let Some(page) = last.as_ref().filter(|p| arrived.saturating_duration_since(p.started) <= REUSE) {
        return html_response(page.status, page.html.clone());
    }
    let started = Instant::now();
    let now_ms = Utc::now().timestamp_millis();
    let options = &state.options;
    let (status, html) = match gather(state.store.as_ref(), now_ms, &options.health).await {
        Ok(page) => (StatusCode::OK, render(&page, &options.health, options.status_page.refresh_seconds)),
        Err(error) => {
            tracing::error!(%error, "the status page could not read the status table");
            let status = error.status();
            (status, render_error(&error.to_string(), now_ms, options.status_page.refresh_seconds))
        }
    };
    let html = Bytes::from(html);
    *last = Some(Rendered { started, status, html: html.clone() });
    html_response(status, html)
}

/// What a request without the right token gets when the page is not public: 401 with a short
/// reason a browser shows.
pub(crate) fn unauthorized() -> Response {
    let body = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>401: token required</title></head><body>\
        <h1>401: token required</h1><p>This status page takes the query API's bearer token \
        (<code>Authorization: Bearer &lt;token&gt;</code>). Operators can make it public with \
        <code>[status_page] public = true</code> in the query service's configuration.</p>\
        </body></html>\n";
    let mut response = html_response(StatusCode::UNAUTHORIZED, Bytes::from_static(body.as_bytes()));
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mixmon\""));
    response
}

fn html_response(status: StatusCode, html: Bytes) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // No script may run, whatever got into the page; styles are inline.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

// ------------------------------------------------------------------------------------------
// What the page shows

/// Everything one page shows, read at `now_ms`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageData {
    pub now_ms: i64,
    pub rows: Vec<Row>,
    /// `None` when the alerts could not be read (the page still shows the rest).
    pub incidents: Option<Vec<Incident>>,
    pub incidents_omitted: usize,
    /// `None` when the raw records could not be read.
    pub failures: Option<Vec<Failure>>,
}

/// One row of the status table: `/api/v1/status`'s, and the long windows.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub status: EndpointStatus,
    /// Whether the long windows were read for this row (the first [`MAX_HISTORY_ROWS`]).
    pub history_read: bool,
    /// Over the last 168 whole UTC hours, the current one included.
    pub uptime_7d: Option<f64>,
    /// Over the last 360 whole UTC hours (the retention), the current one included.
    pub uptime_15d: Option<f64>,
    /// The last [`HISTORY_HOURS`] hours, oldest first (empty when not read).
    pub hours: Vec<HourFigures>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HourFigures {
    pub start_ms: i64,
    pub p95_ms: Option<f64>,
    pub availability: Option<f64>,
    pub failures: u64,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incident {
    pub alertname: String,
    pub severity: String,
    pub summary: Option<String>,
    /// The labels but `alertname` and `severity`.
    pub labels: Vec<(String, String)>,
    pub since_ms: i64,
    /// "silenced" or "inhibited" when muted.
    pub muted: Option<&'static str>,
}

/// A failed probe, from the raw records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub at_ms: i64,
    pub endpoint: String,
    pub region: String,
    pub kind: &'static str,
    pub status_code: u16,
    pub duration_ms: f64,
    pub address: Option<String>,
}

fn series_key(row: &EndpointStatus) -> Option<SeriesKey> {
    let check = CheckId::new(row.endpoint.as_str()).ok()?;
    if row.region == mixmon_sli::MERGED_REGION {
        return Some(SeriesKey::all_regions(check));
    }
    Some(SeriesKey { check, region: Region::new(row.region.as_str()).ok()? })
}

/// Reads what the page shows. Only the status table is required: the alerts and the raw
/// records are shown as unavailable when they cannot be read.
pub(crate) async fn gather(
    store: &dyn Store,
    now_ms: i64,
    thresholds: &HealthThresholds,
) -> Result<PageData, QueryError> {
    let table = status_snapshot(store, now_ms, thresholds).await?;
    let current = Minute::containing(now_ms).hour();
    let from = Hour(current.0 - HOURS_15D + 1);
    let to = Hour(current.0 + 1);
    let keyed: Vec<(usize, SeriesKey)> =
        table.iter().enumerate().take(MAX_HISTORY_ROWS).filter_map(|(i, row)| Some((i, series_key(row)?))).collect();
    let keys: Vec<SeriesKey> = keyed.iter().map(|(_, k)| k.clone()).collect();
    let hourly = store.read_hourly(&keys, from, to).await?;
    let mut rows: Vec<Row> = table
        .into_iter()
        .map(|status| Row { status, history_read: false, uptime_7d: None, uptime_15d: None, hours: Vec::new() })
        .collect();
    for ((index, _), hours) in keyed.iter().zip(&hourly) {
        let Some(row) = rows.get_mut(*index) else { continue };
        let (mut total_7d, mut ok_7d, mut total_15d, mut ok_15d) = (0u64, 0u64, 0u64, 0u64);
        let mut recent = vec![None; HISTORY_HOURS as usize];
        for (hour, rollup) in hours.iter().filter(|(h, _)| (from..to).contains(h)) {
            total_15d += rollup.total;
            ok_15d += rollup.successes;
            if hour.0 > current.0 - HOURS_7D {
                total_7d += rollup.total;
                ok_7d += rollup.successes;
            }
            let back = current.0 - hour.0;
            if (0..HISTORY_HOURS).contains(&back) {
                recent[(HISTORY_HOURS - 1 - back) as usize] = Some(rollup);
            }
        }
        row.history_read = true;
        row.uptime_7d = (total_7d > 0).then(|| ok_7d as f64 / total_7d as f64);
        row.uptime_15d = (total_15d > 0).then(|| ok_15d as f64 / total_15d as f64);
        row.hours = recent
            .iter()
            .enumerate()
            .map(|(i, rollup)| HourFigures {
                start_ms: Hour(current.0 - HISTORY_HOURS + 1 + i as i64).first_minute().start_ms(),
                p95_ms: rollup.and_then(|r| sli::latency_ms(r, 0.95)),
                availability: rollup.and_then(sli::availability),
                failures: rollup.map_or(0, |r| r.total.saturating_sub(r.successes)),
            })
            .collect();
    }
    let incidents = match store.load_alerts().await {
        Ok(alerts) => Some(incidents(&alerts)),
        Err(error) => {
            tracing::warn!(%error, "the status page could not read the alerts");
            None
        }
    };
    let incidents_omitted = incidents.as_ref().map_or(0, |list| list.len().saturating_sub(INCIDENTS_SHOWN));
    let incidents = incidents.map(|mut list| {
        list.truncate(INCIDENTS_SHOWN);
        list
    });
    let failures = latest_failures(store, &rows).await;
    Ok(PageData { now_ms, rows, incidents, incidents_omitted, failures })
}

/// The firing alerts, one-shot events left out: unmuted first, then by severity, newest first.
fn incidents(alerts: &[AlertInstance]) -> Vec<Incident> {
    let mut list: Vec<Incident> = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing && !a.event)
        .map(|a| Incident {
            alertname: a.labels.get(mixmon_model::alert::ALERTNAME).to_string(),
            severity: a.labels.get("severity").to_string(),
            summary: a.annotations.get("summary").filter(|s| !s.is_empty()).cloned(),
            labels: a
                .labels
                .iter()
                .filter(|(k, _)| *k != mixmon_model::alert::ALERTNAME && *k != "severity")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            since_ms: a.fired_at_ms.or(a.active_at_ms).unwrap_or(a.updated_at_ms),
            muted: if !a.silenced_by.is_empty() {
                Some("silenced")
            } else if !a.inhibited_by.is_empty() {
                Some("inhibited")
            } else {
                None
            },
        })
        .collect();
    list.sort_by(|a, b| {
        (a.muted.is_some(), severity_rank(&a.severity), std::cmp::Reverse(a.since_ms), &a.alertname, &a.labels).cmp(&(
            b.muted.is_some(),
            severity_rank(&b.severity),
            std::cmp::Reverse(b.since_ms),
            &b.alertname,
            &b.labels,
        ))
    });
    list
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

/// The newest failed probes of the regional series that failed most recently (by their
/// hourly rollups), at most [`FAILURE_SERIES`] series read.
async fn latest_failures(store: &dyn Store, rows: &[Row]) -> Option<Vec<Failure>> {
    let mut candidates: Vec<(usize, u64, &Row)> = rows
        .iter()
        .filter(|r| r.status.region != mixmon_sli::MERGED_REGION)
        .filter_map(|r| {
            let last = r.hours.iter().rposition(|h| h.failures > 0)?;
            let failed: u64 = r.hours.iter().map(|h| h.failures).sum();
            Some((last, failed, r))
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    let mut failures = Vec::new();
    for (_, _, row) in candidates.into_iter().take(FAILURE_SERIES) {
        let Some(key) = series_key(&row.status) else { continue };
        let records = match store.read_records(&key, FAILURE_RECORDS_PER_SERIES).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "the status page could not read raw records");
                return None;
            }
        };
        failures.extend(records.iter().filter_map(|r| {
            Some(Failure {
                at_ms: r.started_at_ms,
                endpoint: row.status.endpoint.clone(),
                region: row.status.region.clone(),
                kind: r.failure?.as_str(),
                status_code: r.status_code,
                duration_ms: r.duration_us as f64 / 1_000.0,
                address: r.address.map(|a| a.to_string()),
            })
        }));
    }
    failures
        .sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| (&a.endpoint, &a.region).cmp(&(&b.endpoint, &b.region))));
    failures.truncate(FAILURES_SHOWN);
    Some(failures)
}

// ------------------------------------------------------------------------------------------
// Rendering: pure functions of the data

/// Text made safe for HTML text and (quoted) attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "no data" for a status that has none; the class and the words otherwise.
fn status_words(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::NoData => "no data",
        other => other.as_str(),
    }
}

/// A share as a percentage that never rounds up to 100: 0.99996 is "99.99 %", only 1 is "100 %".
pub(crate) fn percent(share: Option<f64>) -> String {
    match share {
        None => "—".into(),
        Some(v) if v >= 1.0 => "100\u{a0}%".into(),
        Some(v) => format!("{:.2}\u{a0}%", ((v * 10_000.0).floor() / 100.0).max(0.0)),
    }
}

/// Milliseconds with one decimal below 100 ms, whole above.
pub(crate) fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if v < 100.0 => format!("{v:.1}\u{a0}ms"),
        Some(v) => format!("{v:.0}\u{a0}ms"),
    }
}

pub(crate) fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn utc_hour(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%H:00 UTC").to_string()
}

/// How long ago, coarsely: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub(crate) fn age(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    match s {
        0..60 => format!("{s}\u{a0}s"),
        60..3_600 => format!("{}\u{a0}min", s / 60),
        3_600..86_400 => format!("{}\u{a0}h {}\u{a0}min", s / 3_600, s % 3_600 / 60),
        _ => format!("{}\u{a0}d {}\u{a0}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// A figure with its exact value for machines (`<data value>`, empty when there is none) and
/// its rounded text for people.
fn figure(field: &str, value: Option<f64>, text: String) -> String {
    let exact = value.map(|v| v.to_string()).unwrap_or_default();
    format!("<data data-field=\"{field}\" value=\"{exact}\">{}</data>", escape(&text))
}

const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 28.0;
const SPARK_PAD: f64 = 2.0;

/// The hourly p95 as a line (gaps where an hour has no successful probe), with the warning
/// threshold dashed when it is in range.
pub(crate) fn p95_sparkline(hours: &[HourFigures], warning_ms: f64) -> String {
    let values: Vec<Option<f64>> = hours.iter().map(|h| h.p95_ms).collect();
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let mut svg = format!(
        "<svg class=\"spark p95\" viewBox=\"0 0 {SPARK_W} {SPARK_H}\" width=\"{SPARK_W}\" height=\"{SPARK_H}\" \
         preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"p95 per hour, last {n} h\">",
        n = hours.len()
    );
    let title = match (known.iter().copied().reduce(f64::min), known.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) => {
            format!("p95 per hour, last {} h: {} to {}", hours.len(), millis(Some(lo)), millis(Some(hi)))
        }
        _ => format!("p95 per hour, last {} h: no successful probes", hours.len()),
    };
    let _ = write!(svg, "<title>{}</title>", escape(&title));
    let top = known.iter().copied().fold(1.0_f64, f64::max) * 1.15;
    let span = SPARK_H - 2.0 * SPARK_PAD;
    let y = |v: f64| SPARK_H - SPARK_PAD - (v / top).clamp(0.0, 1.0) * span;
    let step = if values.len() > 1 { (SPARK_W - 2.0 * SPARK_PAD) / (values.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| SPARK_PAD + i as f64 * step;
    if known.is_empty() {
        let _ = write!(
            svg,
            "<line class=\"none\" x1=\"{SPARK_PAD}\" y1=\"{mid:.1}\" x2=\"{end:.1}\" y2=\"{mid:.1}\"/>",
            mid = SPARK_H / 2.0,
            end = SPARK_W - SPARK_PAD
        );
    } else if warning_ms < top {
        let _ = write!(
            svg,
            "<line class=\"thr\" x1=\"0\" y1=\"{t:.1}\" x2=\"{SPARK_W}\" y2=\"{t:.1}\"/>",
            t = y(warning_ms)
        );
    }
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let flush = |segment: &mut Vec<(f64, f64)>, svg: &mut String| {
        match segment.as_slice() {
            [] => {}
            [(px, py)] => {
                let _ =
                    write!(svg, "<line class=\"dot\" x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{px:.1}\" y2=\"{py:.1}\"/>");
            }
            points => {
                let list: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
                let _ = write!(svg, "<polyline points=\"{}\"/>", list.join(" "));
            }
        }
        segment.clear();
    };
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => segment.push((x(i), y(*v))),
            None => flush(&mut segment, &mut svg),
        }
    }
    flush(&mut segment, &mut svg);
    svg.push_str("</svg>");
    svg
}

/// Which colour an hour's availability gets, by the operators' uptime thresholds.
fn availability_class(availability: Option<f64>, t: &HealthThresholds) -> &'static str {
    match availability {
        None => "none",
        Some(a) if a < t.uptime_critical => "bad",
        Some(a) if a < t.uptime_warning => "warn",
        Some(_) => "ok",
    }
}

/// The hourly availability as bars coloured by the uptime thresholds (grey: no probes).
pub(crate) fn availability_bars(hours: &[HourFigures], t: &HealthThresholds) -> String {
    let slot = if hours.is_empty() { SPARK_W } else { SPARK_W / hours.len() as f64 };
    let mut svg = format!(
        "<svg class=\"spark bars\" viewBox=\"0 0 {SPARK_W} {SPARK_H}\" width=\"{SPARK_W}\" height=\"{SPARK_H}\" \
         preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"availability per hour, last {n} h\">",
        n = hours.len()
    );
    let lowest =
        hours
            .iter()
            .filter_map(|h| h.availability.map(|a| (a, h.start_ms)))
            .reduce(|a, b| if b.0 < a.0 { b } else { a });
    let silent = hours.iter().filter(|h| h.availability.is_none()).count();
    let mut title = match lowest {
        Some((a, at)) => {
            format!("availability per hour, last {} h: lowest {} ({})", hours.len(), percent(Some(a)), utc_hour(at))
        }
        None => format!("availability per hour, last {} h: no probes", hours.len()),
    };
    if silent > 0 && lowest.is_some() {
        let _ = write!(title, ", {silent} h without probes");
    }
    let _ = write!(svg, "<title>{}</title>", escape(&title));
    for (i, hour) in hours.iter().enumerate() {
        let class = availability_class(hour.availability, t);
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{SPARK_H}\" rx=\"1\"/>",
            i as f64 * slot + 0.5,
            (slot - 1.0).max(0.5)
        );
    }
    svg.push_str("</svg>");
    svg
}

const CSS: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#5b6570;--line:#dde1e6;--ok:#1a7f37;--warn:#b35900;--bad:#c62828;--none:#8a939c;--ok-bg:#dff3e4;--warn-bg:#fff0d6;--bad-bg:#fde2e1;--none-bg:#eceef1;--accent:#2456a6}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1a1e23;--fg:#e6e8eb;--muted:#9aa4ae;--line:#2c3238;--ok:#4cc26b;--warn:#f0a23c;--bad:#ff6b61;--none:#7d8790;--ok-bg:#163321;--warn-bg:#3a2a10;--bad-bg:#3d1715;--none-bg:#262b31;--accent:#7aa7ff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding:0 16px 32px}
header.banner{border-bottom:4px solid var(--none);background:var(--card);margin-bottom:20px}
header.banner.healthy{border-color:var(--ok)}header.banner.degraded{border-color:var(--warn)}header.banner.unhealthy{border-color:var(--bad)}
header .wrap{padding-top:16px;padding-bottom:14px}
h1{font-size:1.45rem;margin:0 0 6px}
h2{font-size:1.1rem;margin:26px 0 10px}
.overall{margin:0;font-size:1.05rem;display:flex;flex-wrap:wrap;gap:4px 8px;align-items:center}
.meta{color:var(--muted);font-size:.85rem;margin:6px 0 0}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:.8rem;font-weight:600;white-space:nowrap;background:var(--none-bg);color:var(--none)}
.pill.healthy{background:var(--ok-bg);color:var(--ok)}.pill.degraded,.pill.warning{background:var(--warn-bg);color:var(--warn)}
.pill.unhealthy,.pill.critical{background:var(--bad-bg);color:var(--bad)}.pill.info{background:var(--none-bg);color:var(--accent)}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 10px;vertical-align:middle}
thead th{font-size:.78rem;color:var(--muted);border-bottom:1px solid var(--line);font-weight:600;white-space:nowrap}
table.status tbody+tbody{border-top:2px solid var(--line)}
table.status tbody tr+tr td,table.status tbody tr+tr th{border-top:1px solid var(--line)}
table.status tr.merged th,table.status tr.merged td{background:rgba(127,127,127,.05)}
table.status th.endpoint{font-weight:700}
table.status tr.regional th.endpoint{font-weight:400;color:var(--muted)}
table.status td.region{white-space:nowrap}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
data{font-variant-numeric:tabular-nums}
svg.spark{display:block;width:120px;height:28px}
svg.spark polyline,svg.spark line{vector-effect:non-scaling-stroke}
svg.p95 polyline{fill:none;stroke:var(--accent);stroke-width:1.6;stroke-linejoin:round}
svg.p95 line.dot{stroke:var(--accent);stroke-width:3.5;stroke-linecap:round}
svg.p95 line.thr{stroke:var(--warn);stroke-width:1;stroke-dasharray:3 3;opacity:.7}
svg line.none{stroke:var(--none);stroke-width:1;stroke-dasharray:2 3}
svg.bars rect.ok{fill:var(--ok)}svg.bars rect.warn{fill:var(--warn)}svg.bars rect.bad{fill:var(--bad)}svg.bars rect.none{fill:var(--none-bg)}
.empty{color:var(--muted);padding:12px 14px;margin:0}
ul.incidents{list-style:none;margin:0;padding:0}
ul.incidents li{padding:10px 14px;border-left:4px solid var(--none)}
ul.incidents li+li{border-top:1px solid var(--line)}
ul.incidents li.critical{border-left-color:var(--bad)}ul.incidents li.warning{border-left-color:var(--warn)}ul.incidents li.info{border-left-color:var(--accent)}
ul.incidents .name{font-weight:700;margin-right:6px}
ul.incidents .summary{margin:3px 0 0}
ul.incidents .labels{color:var(--muted);font-size:.85rem}
ul.incidents .label{display:inline-block;max-width:100%;overflow-wrap:anywhere;margin-right:6px}
ul.incidents .muted{font-size:.8rem;color:var(--muted);border:1px solid var(--line);border-radius:4px;padding:0 5px;margin-left:6px}
table.failures td{border-top:1px solid var(--line);font-size:.9rem}
table.failures td.addr{word-break:break-all}
footer{color:var(--muted);font-size:.82rem;margin-top:26px}
footer p{margin:4px 0}
a{color:var(--accent)}
@media (max-width:760px){
 .wrap{padding:0 10px 24px}
 table.status,table.status tbody,table.status tr,table.status th,table.status td,table.failures,table.failures tbody,table.failures tr,table.failures td{display:block}
 table.status thead,table.failures thead{display:none}
 .panel.rows{background:none;border:0}
 table.status tbody+tbody{border-top:0;margin-top:14px}
 table.status tr{display:grid;grid-template-columns:repeat(10,1fr);gap:6px 8px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:9px 11px;margin:0 0 8px}
 table.status tr.merged{border-left:4px solid var(--accent)}
 table.status tr.merged th,table.status tr.merged td{background:none}
 table.status tbody tr+tr td,table.status tbody tr+tr th{border-top:0}
 table.status th,table.status td{padding:0;min-width:0}
 table.status th.endpoint{grid-column:1/4;font-size:1.02rem;overflow-wrap:anywhere}
 table.status tr.regional th.endpoint{font-size:.9rem}
 table.status td.region{grid-column:4/8;font-weight:600;overflow-wrap:anywhere;white-space:normal}
 table.status tr.merged td.region{font-weight:400;color:var(--muted)}
 table.status td.status{grid-column:8/11;justify-self:end}
 table.status td.num{grid-column:span 2;font-size:.9rem}
 table.status td.spark{grid-column:span 5}
 table.status td.spark[colspan]{grid-column:1/-1;font-size:.8rem;color:var(--muted)}
 table.status td.num::before,table.status td.spark::before,table.failures td::before{content:attr(data-label);display:block;font-size:.68rem;text-transform:uppercase;letter-spacing:.02em;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
 table.status td.spark svg{width:100%;height:26px}
 table.failures tr{display:grid;grid-template-columns:repeat(4,1fr);gap:4px 10px;padding:9px 12px}
 table.failures tr+tr{border-top:1px solid var(--line)}
 table.failures td{border-top:0;padding:0;min-width:0;overflow-wrap:anywhere}
 table.failures td.when{grid-column:1/-1;font-weight:600}
 table.failures td.when::before{content:none}
 table.failures td.kind,table.failures td.addr{grid-column:span 2}
}
"#;

fn summary(rows: &[Row]) -> (HealthStatus, String) {
    let merged: Vec<HealthStatus> =
        rows.iter().filter(|r| r.status.region == mixmon_sli::MERGED_REGION).map(|r| r.status.status).collect();
    if merged.is_empty() {
        return (HealthStatus::NoData, "No endpoint has reported yet".into());
    }
    let count = |s: HealthStatus| merged.iter().filter(|m| **m == s).count();
    let worst = merged.iter().copied().max().unwrap_or(HealthStatus::NoData);
    let n = merged.len();
    let noun = if n == 1 { "endpoint" } else { "endpoints" };
    let text = if count(HealthStatus::Healthy) == n {
        format!("All {n} {noun} healthy")
    } else {
        let mut parts = Vec::new();
        for status in [HealthStatus::Unhealthy, HealthStatus::Degraded, HealthStatus::NoData, HealthStatus::Healthy] {
            let c = count(status);
            if c > 0 {
                parts.push(format!("{c} {}", status_words(status)));
            }
        }
        format!("{n} {noun}: {}", parts.join(", "))
    };
    (worst, text)
}

fn head(out: &mut String, title: &str, refresh_seconds: u32) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n",
        escape(title)
    );
}

/// The whole page.
pub(crate) fn render(page: &PageData, t: &HealthThresholds, refresh_seconds: u32) -> String {
    let mut out = String::with_capacity(16_384 + page.rows.len() * 2_048);
    let (worst, text) = summary(&page.rows);
    let class = worst.as_str();
    head(&mut out, &format!("AI Mixer status: {}", text.to_lowercase()), refresh_seconds);
    let _ = write!(
        out,
        "<body>\n<header class=\"banner {class}\"><div class=\"wrap\">\n<h1>AI Mixer status</h1>\n\
         <p class=\"overall\" id=\"overall\" data-status=\"{class}\"><span class=\"pill {class}\">{}</span> {}</p>\n\
         <p class=\"meta\">As of <time datetime=\"{}\">{}</time> · refreshes every {refresh_seconds}&nbsp;s</p>\n\
         </div></header>\n<main class=\"wrap\">\n",
        status_words(worst),
        escape(&text),
        crate::alerts::rfc3339(page.now_ms),
        utc(page.now_ms),
    );
    render_incidents(&mut out, page);
    render_table(&mut out, page, t);
    render_failures(&mut out, page);
    let _ = write!(
        out,
        "<footer>\n<p>Healthy: p95 at most {warn_ms} ms, errors below {warn_err}, 24 h uptime at least {warn_up}. \
         Degraded: p95 above {warn_ms} ms, errors from {warn_err}, or uptime below {warn_up}. \
         Unhealthy: p95 above {crit_ms} ms, errors from {crit_err}, or uptime below {crit_up}. \
         No data: no probe in the last 5 minutes (not down).</p>\n\
         <p>Status, success and p95 are over the last 5 minutes, uptime 24 h over the last 1440 minutes \
         (the figures of <a href=\"/api/v1/status\">/api/v1/status</a>); 7 d and 15 d over whole UTC hours, \
         the current one included. History: the last 24 hours, one point per hour.</p>\n</footer>\n</main>\n</body>\n</html>\n",
        warn_ms = t.latency_warning_ms,
        crit_ms = t.latency_critical_ms,
        warn_err = percent_plain(t.error_rate_warning),
        crit_err = percent_plain(t.error_rate_critical),
        warn_up = percent_plain(t.uptime_warning),
        crit_up = percent_plain(t.uptime_critical),
    );
    out
}

/// A threshold as a percentage, without trailing zeros: 0.005 is "0.5 %".
fn percent_plain(share: f64) -> String {
    let text = format!("{:.3}", share * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} %")
}

fn render_incidents(out: &mut String, page: &PageData) {
    let count = page.incidents.as_ref().map_or(0, |l| l.len() + page.incidents_omitted);
    let _ = write!(out, "<section id=\"incidents\">\n<h2>Open incidents ({count})</h2>\n<div class=\"panel\">\n");
    match &page.incidents {
        None => out.push_str("<p class=\"empty\">The alerts could not be read; see the query service's log.</p>\n"),
        Some(list) if list.is_empty() => out.push_str("<p class=\"empty\">No open incidents.</p>\n"),
        Some(list) => {
            out.push_str("<ul class=\"incidents\">\n");
            for incident in list {
                let class = match incident.severity.as_str() {
                    s @ ("critical" | "warning" | "info") => s,
                    _ => "other",
                };
                let labels: Vec<String> = incident
                    .labels
                    .iter()
                    .map(|(k, v)| format!("<span class=\"label\">{}={}</span>", escape(k), escape(v)))
                    .collect();
                let _ = write!(
                    out,
                    "<li class=\"incident {class}\" data-alertname=\"{name}\"><span class=\"pill {class}\">{severity}</span> \
                     <span class=\"name\">{name}</span><span class=\"labels\">{labels}</span>",
                    name = escape(&incident.alertname),
                    severity = escape(if incident.severity.is_empty() { "alert" } else { &incident.severity }),
                    labels = labels.join(" "),
                );
                if let Some(muted) = incident.muted {
                    let _ = write!(out, "<span class=\"muted\">{muted}</span>");
                }
                if let Some(summary) = &incident.summary {
                    let _ = write!(out, "<p class=\"summary\">{}</p>", escape(summary));
                }
                let _ = writeln!(
                    out,
                    "<p class=\"meta\">Firing since <time datetime=\"{}\">{}</time> ({} ago)</p></li>",
                    crate::alerts::rfc3339(incident.since_ms),
                    utc(incident.since_ms),
                    age(page.now_ms - incident.since_ms)
                );
            }
            out.push_str("</ul>\n");
            if page.incidents_omitted > 0 {
                let _ = writeln!(
                    out,
                    "<p class=\"empty\">And {} more: see <a href=\"/api/v2/alerts\">/api/v2/alerts</a>.</p>",
                    page.incidents_omitted
                );
            }
        }
    }
    out.push_str("</div>\n</section>\n");
}

fn render_table(out: &mut String, page: &PageData, t: &HealthThresholds) {
    out.push_str("<section id=\"endpoints\">\n<h2>Endpoints by region</h2>\n");
    if page.rows.is_empty() {
        out.push_str(
            "<div class=\"panel\"><p class=\"empty\">No probe results are stored yet.</p></div>\n</section>\n",
        );
        return;
    }
    out.push_str(
        "<div class=\"panel rows\">\n<table class=\"status\">\n<thead><tr><th>Endpoint</th><th>Region</th><th>Status</th>\
         <th>Success 5 min</th><th>p95 5 min</th><th>Uptime 24 h</th><th>7 d</th><th>15 d</th>\
         <th>p95, 24 h</th><th>Availability, 24 h</th></tr></thead>\n",
    );
    let mut open_endpoint: Option<&str> = None;
    for row in &page.rows {
        let s = &row.status;
        if open_endpoint != Some(s.endpoint.as_str()) {
            if open_endpoint.is_some() {
                out.push_str("</tbody>\n");
            }
            let _ = writeln!(out, "<tbody data-endpoint=\"{}\">", escape(&s.endpoint));
            open_endpoint = Some(s.endpoint.as_str());
        }
        let merged = s.region == mixmon_sli::MERGED_REGION;
        let region_text = if merged { "all regions".to_string() } else { s.region.clone() };
        let class = s.status.as_str();
        let _ = write!(
            out,
            "<tr class=\"{kind}\" data-endpoint=\"{endpoint}\" data-region=\"{region}\" data-status=\"{class}\">\
             <th scope=\"row\" class=\"endpoint\">{endpoint}</th>\
             <td class=\"region\">{region_text}</td>\
             <td class=\"status\"><span class=\"pill {class}\">{words}</span></td>\
             <td class=\"num\" data-label=\"Success\">{success}</td>\
             <td class=\"num\" data-label=\"p95 5m\">{p95}</td>\
             <td class=\"num\" data-label=\"Up 24h\">{up24}</td>\
             <td class=\"num\" data-label=\"Up 7d\">{up7}</td>\
             <td class=\"num\" data-label=\"Up 15d\">{up15}</td>",
            kind = if merged { "merged" } else { "regional" },
            endpoint = escape(&s.endpoint),
            region = escape(&s.region),
            region_text = escape(&region_text),
            words = status_words(s.status),
            success = figure("success_rate_5m", s.success_rate_5m, percent(s.success_rate_5m)),
            p95 = figure("p95_ms_5m", s.p95_ms_5m, millis(s.p95_ms_5m)),
            up24 = figure("uptime_24h", s.uptime_24h, percent(s.uptime_24h)),
            up7 = figure("uptime_7d", row.uptime_7d, percent(row.uptime_7d)),
            up15 = figure("uptime_15d", row.uptime_15d, percent(row.uptime_15d)),
        );
        if row.history_read {
            let _ = writeln!(
                out,
                "<td class=\"spark\" data-label=\"p95 hourly, 24 h\">{}</td>\
                 <td class=\"spark\" data-label=\"Availability, 24 h\">{}</td></tr>",
                p95_sparkline(&row.hours, t.latency_warning_ms),
                availability_bars(&row.hours, t)
            );
        } else {
            out.push_str(
                "<td class=\"spark\" data-label=\"History\" colspan=\"2\">not read: the page draws the first \
                 rows only</td></tr>\n",
            );
        }
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

fn render_failures(out: &mut String, page: &PageData) {
    out.push_str("<section id=\"failures\">\n<h2>Latest failures</h2>\n<div class=\"panel\">\n");
    match &page.failures {
        None => {
            out.push_str("<p class=\"empty\">The raw records could not be read; see the query service's log.</p>\n")
        }
        Some(list) if list.is_empty() => out.push_str("<p class=\"empty\">No failed probe in the last 24 hours.</p>\n"),
        Some(list) => {
            out.push_str(
                "<table class=\"failures\">\n<thead><tr><th>When</th><th>Endpoint</th><th>From</th><th>Failure</th>\
                 <th>HTTP</th><th>Took</th><th>Address</th></tr></thead>\n<tbody>\n",
            );
            for f in list {
                let code = if f.status_code == 0 { "—".to_string() } else { f.status_code.to_string() };
                let _ = writeln!(
                    out,
                    "<tr class=\"failure\" data-endpoint=\"{endpoint}\" data-region=\"{region}\">\
                     <td class=\"when\" data-label=\"When\"><time datetime=\"{iso}\">{when}</time> ({ago} ago)</td>\
                     <td data-label=\"Endpoint\">{endpoint}</td><td data-label=\"From\">{region}</td>\
                     <td class=\"kind\" data-label=\"Failure\">{kind}</td><td data-label=\"HTTP\">{code}</td>\
                     <td data-label=\"Took\">{took}</td><td class=\"addr\" data-label=\"Address\">{addr}</td></tr>",
                    endpoint = escape(&f.endpoint),
                    region = escape(&f.region),
                    iso = crate::alerts::rfc3339(f.at_ms),
                    when = utc(f.at_ms),
                    ago = age(page.now_ms - f.at_ms),
                    kind = escape(&f.kind.replace('_', " ")),
                    took = escape(&millis(Some(f.duration_ms))),
                    addr = escape(f.address.as_deref().unwrap_or("—")),
                );
            }
            out.push_str("</tbody>\n</table>\n");
        }
    }
    out.push_str("</div>\n</section>\n");
}

/// The page when the status table cannot be read: it says so, and refreshes until it can.
pub(crate) fn render_error(message: &str, now_ms: i64, refresh_seconds: u32) -> String {
    let mut out = String::new();
    head(&mut out, "AI Mixer status: unavailable", refresh_seconds);
    let _ = write!(
        out,
        "<body>\n<header class=\"banner\"><div class=\"wrap\"><h1>AI Mixer status</h1>\
         <p class=\"overall\" id=\"overall\" data-status=\"unavailable\"><span class=\"pill\">unavailable</span> {}</p>\
         <p class=\"meta\">As of {} · retrying every {refresh_seconds} s</p></div></header>\n</body>\n</html>\n",
        escape(message),
        utc(now_ms)
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T0: i64 = 1_729_231_200_000;

    fn status(endpoint: &str, region: &str, health: HealthStatus) -> EndpointStatus {
        EndpointStatus {
            endpoint: endpoint.into(),
            region: region.into(),
            status: health,
            success_rate_5m: Some(0.995),
            p95_ms_5m: Some(42.25),
            uptime_24h: Some(0.9999),
            probes_5m: 100,
        }
    }

    fn hours(p95: &[Option<f64>], availability: &[Option<f64>]) -> Vec<HourFigures> {
        p95.iter()
            .zip(availability)
            .enumerate()
            .map(|(i, (p, a))| HourFigures {
                start_ms: T0 + i as i64 * 3_600_000,
                p95_ms: *p,
                availability: *a,
                failures: 0,
            })
            .collect()
    }

    fn row(endpoint: &str, region: &str, health: HealthStatus) -> Row {
        Row {
            status: status(endpoint, region, health),
            history_read: true,
            uptime_7d: Some(0.97),
            uptime_15d: None,
            hours: hours(&[Some(10.0), None, Some(30.0)], &[Some(1.0), None, Some(0.92)]),
        }
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(escape("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(escape("a\"b&c"), "a&quot;b&amp;c");
        assert_eq!(escape("eu-west"), "eu-west");
    }

    #[test]
    fn figures_read_for_people() {
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(1.0)), "100\u{a0}%");
        assert_eq!(percent(Some(0.99996)), "99.99\u{a0}%", "never rounded up to 100");
        assert_eq!(percent(Some(0.5)), "50.00\u{a0}%");
        assert_eq!(percent(Some(0.0)), "0.00\u{a0}%");
        assert_eq!(millis(Some(1.04)), "1.0\u{a0}ms");
        assert_eq!(millis(Some(99.94)), "99.9\u{a0}ms");
        assert_eq!(millis(Some(150.4)), "150\u{a0}ms");
        assert_eq!(millis(None), "—");
        assert_eq!(percent_plain(0.005), "0.5 %");
        assert_eq!(percent_plain(0.95), "95 %");
        assert_eq!(age(45_000), "45\u{a0}s");
        assert_eq!(age(12 * 60_000 + 5_000), "12\u{a0}min");
        assert_eq!(age(3 * 3_600_000 + 5 * 60_000), "3\u{a0}h 5\u{a0}min");
        assert_eq!(age(2 * 86_400_000 + 4 * 3_600_000), "2\u{a0}d 4\u{a0}h");
        assert_eq!(age(-5), "0\u{a0}s");
        assert_eq!(utc(T0), "2024-10-18 06:00:00 UTC");
    }

    #[test]
    fn figures_carry_their_exact_value() {
        assert_eq!(
            figure("p95_ms_5m", Some(0.1), "0.1 ms".into()),
            "<data data-field=\"p95_ms_5m\" value=\"0.1\">0.1 ms</data>"
        );
        assert_eq!(figure("uptime_24h", None, "—".into()), "<data data-field=\"uptime_24h\" value=\"\">—</data>");
        let v = 0.123_456_789_012_345_67_f64;
        let text = figure("x", Some(v), String::new());
        let exact: f64 = text.split("value=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert_eq!(exact, v, "the value round-trips");
    }

    #[test]
    fn the_p95_line_breaks_at_hours_without_data() {
        let svg = p95_sparkline(&hours(&[Some(10.0), Some(20.0), None, Some(15.0)], &[None; 4]), 100.0);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<line class=\"dot\"").count(), 1, "the lone last hour is a dot: {svg}");
        assert!(!svg.contains("class=\"thr\""), "100 ms is off the scale of a 20 ms line: {svg}");
        assert!(svg.contains("10.0\u{a0}ms to 20.0\u{a0}ms"), "{svg}");
        let slow = p95_sparkline(&hours(&[Some(80.0), Some(160.0)], &[None; 2]), 100.0);
        assert!(slow.contains("class=\"thr\""), "the threshold shows when in range: {slow}");
        let empty = p95_sparkline(&hours(&[None, None], &[None; 2]), 100.0);
        assert!(empty.contains("no successful probes") && !empty.contains("<polyline"), "{empty}");
        // Every coordinate inside the box.
        let shapes = slow.split("</title>").nth(1).unwrap();
        for number in shapes.split(['"', ',', ' ']).filter_map(|p| p.parse::<f64>().ok()) {
            assert!((0.0..=SPARK_W).contains(&number), "{number} in {slow}");
        }
    }

    #[test]
    fn availability_bars_take_the_uptime_thresholds() {
        let t = HealthThresholds::default();
        let svg = availability_bars(&hours(&[None; 4], &[Some(1.0), Some(0.94), Some(0.5), None]), &t);
        let classes: Vec<&str> = svg.split("<rect class=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
        assert_eq!(classes, ["ok", "warn", "bad", "none"]);
        assert!(svg.contains("lowest 50.00\u{a0}% (08:00 UTC), 1 h without probes"), "{svg}");
    }

    #[test]
    fn the_page_reads_without_javascript_and_refreshes() {
        let page = PageData {
            now_ms: T0 + 600_000,
            rows: vec![row("api", "all", HealthStatus::Degraded), row("api", "eu-west", HealthStatus::Degraded)],
            incidents: Some(Vec::new()),
            incidents_omitted: 0,
            failures: Some(Vec::new()),
        };
        let html = render(&page, &HealthThresholds::default(), 30);
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(!html.to_lowercase().contains("<script"), "no JavaScript");
        assert!(html.contains("@media (max-width:760px)"), "the table collapses on phones");
        assert!(html.contains("data-endpoint=\"api\" data-region=\"eu-west\" data-status=\"degraded\""));
        assert!(html.contains("<span class=\"pill degraded\">degraded</span> 1 endpoint: 1 degraded"), "{html}");
        assert!(html.contains("No open incidents.") && html.contains("No failed probe"));
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("value=\"0.97\">97.00\u{a0}%</data>"));
    }

    #[test]
    fn summary_is_the_worst_merged_row() {
        let rows = [row("a", "all", HealthStatus::Healthy), row("a", "x", HealthStatus::Unhealthy)];
        assert_eq!(summary(&rows), (HealthStatus::Healthy, "All 1 endpoint healthy".into()));
        let rows = [
            row("a", "all", HealthStatus::Healthy),
            row("b", "all", HealthStatus::Unhealthy),
            row("c", "all", HealthStatus::NoData),
        ];
        assert_eq!(summary(&rows), (HealthStatus::Unhealthy, "3 endpoints: 1 unhealthy, 1 no data, 1 healthy".into()));
        assert_eq!(summary(&[]).0, HealthStatus::NoData);
        let html = render(&PageData::default(), &HealthThresholds::default(), 30);
        assert!(html.contains("No probe results are stored yet."), "{html}");
    }

    #[test]
    fn store_strings_are_escaped_everywhere() {
        let hostile = "<img src=x onerror=alert(1)>\"'&";
        let page = PageData {
            now_ms: T0,
            rows: vec![row("api", "all", HealthStatus::Healthy)],
            incidents: Some(vec![Incident {
                alertname: hostile.into(),
                severity: hostile.into(),
                summary: Some(hostile.into()),
                labels: vec![(hostile.into(), hostile.into())],
                since_ms: T0 - 60_000,
                muted: Some("silenced"),
            }]),
            incidents_omitted: 3,
            failures: Some(vec![Failure {
                at_ms: T0 - 1_000,
                endpoint: hostile.into(),
                region: hostile.into(),
                kind: "bad_status",
                status_code: 503,
                duration_ms: 2.5,
                address: Some(hostile.into()),
            }]),
        };
        let html = render(&page, &HealthThresholds::default(), 30);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("onerror=alert(1)>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
        assert!(html.contains("class=\"incident other\""), "an unknown severity never becomes a class");
        assert!(html.contains("And 3 more"), "{html}");
        assert!(html.contains("bad status") && html.contains(">503<"), "{html}");
        let error = render_error("<b>store</b>", T0, 30);
        assert!(error.contains("&lt;b&gt;store&lt;/b&gt;") && error.contains("content=\"30\""));
    }

    #[test]
    fn incidents_are_firing_alerts_without_events_worst_first() {
        use mixmon_model::alert::LabelSet;
        let alert = |name: &str, severity: &str, at: i64| {
            AlertInstance::firing(
                LabelSet::new().with("alertname", name).with("severity", severity).with("endpoint", "api"),
                at,
            )
        };
        let mut event = alert("CheckRecovered", "info", T0);
        event.event = true;
        let mut pending = alert("HighLatency", "critical", T0);
        pending.state = AlertState::Pending;
        let mut silenced = alert("ServiceDown", "critical", T0 + 5);
        silenced.silenced_by = vec!["s1".into()];
        let list = incidents(&[
            alert("PodRestarts", "warning", T0 + 9),
            alert("ServiceDown", "critical", T0),
            alert("HighErrorRate", "critical", T0 + 1),
            event,
            pending,
            silenced,
        ]);
        let names: Vec<(&str, Option<&str>)> = list.iter().map(|i| (i.alertname.as_str(), i.muted)).collect();
        assert_eq!(
            names,
            [("HighErrorRate", None), ("ServiceDown", None), ("PodRestarts", None), ("ServiceDown", Some("silenced"))]
        );
        assert_eq!(list[0].labels, [("endpoint".to_string(), "api".to_string())]);
    }
}
