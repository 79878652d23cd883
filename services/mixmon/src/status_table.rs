//! The compact live table `mixmon up` prints: one line per endpoint, all regions merged.

use mixmon_query::{EndpointStatus, MixerStatus};

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.2}%", v * 100.0))
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1} ms"))
}

pub fn render(rows: &[EndpointStatus]) -> String {
    let mut out = format!(
        "{:<12} {:<10} {:>12} {:>10} {:>12} {:>8}\n",
        "ENDPOINT", "STATUS", "SUCCESS 5m", "P95 5m", "UPTIME 24h", "PROBES"
    );
    for row in rows.iter().filter(|r| r.region == "all") {
        out.push_str(&format!(
            "{:<12} {:<10} {:>12} {:>10} {:>12} {:>8}\n",
            row.endpoint,
            row.status.as_str(),
            percent(row.success_rate_5m),
            millis(row.p95_ms_5m),
            percent(row.uptime_24h),
            row.probes_5m
        ));
    }
    if rows.is_empty() {
        out.push_str("(no results yet: the first probes land within one check interval)\n");
    }
    out
}

/// The mixer's own figures per region (from its scraped metrics), the merge of all first.
pub fn render_mixer(rows: &[MixerStatus]) -> String {
    let mut out = format!("{:<12} {:>12} {:>12} {:>14}\n", "MIXER", "REQ/S 5m", "ERRORS 5m", "PROC P95 5m");
    for row in rows {
        out.push_str(&format!(
            "{:<12} {:>12} {:>12} {:>14}\n",
            row.region,
            row.request_rate_5m.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            percent(row.error_rate_5m),
            millis(row.p95_ms_5m),
        ));
    }
    out
}
