//! The time axis of a query: the range (`range.from`/`range.to`, RFC 3339 or epoch ms), the
//! step (whole minutes, because rollups are per minute) and the step-aligned point starts.

use chrono::DateTime;
use serde_json::{Map, Value};

use crate::body::kind;
use crate::error::{clip, QueryError};

pub const MS_PER_MINUTE: i64 = 60_000;
/// Longest range one query covers: a longer one (Grafana's "Last 90 days") is answered for
/// its last 31 days, which hold everything kept (rollups are kept 15 days).
pub const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;
pub const DEFAULT_RANGE_MS: i64 = 3_600_000;
pub const DEFAULT_MAX_POINTS: u64 = 1_000;
pub const MAX_POINTS_CAP: u64 = 10_000;
/// 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write; also keeps all arithmetic
/// far from overflow.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
    /// Start of the first point (step-aligned, at or before `from_ms`).
    pub first_ms: i64,
    pub points: usize,
}

impl Timeline {
    /// `max_points` is already clamped to `1..=MAX_POINTS_CAP`.
    pub fn new(from_ms: i64, to_ms: i64, interval_ms: Option<i64>, max_points: u64) -> Result<Self, QueryError> {
        if from_ms >= to_ms {
            return Err(QueryError::bad_request("invalid_range", "range.from must be before range.to"));
        }
        // A cap bounds work, not intent: the points of a longer range beyond what is kept
        // would all be empty, so the range is clamped, not refused.
        let from_ms = from_ms.max(to_ms - MAX_RANGE_MS);
        let span = to_ms - from_ms;
        let max_points = max_points.clamp(1, MAX_POINTS_CAP) as i64;
        let by_interval = interval_ms.filter(|ms| *ms > 0).map_or(0, |ms| ceil_to_minute(ms.min(MAX_RANGE_MS)));
        let by_points = ceil_to_minute((span + max_points - 1) / max_points);
        let base_step = MS_PER_MINUTE.max(by_interval).max(by_points);
        // Aligning the first point down to a step boundary can add one point. A slightly
        // longer step usually absorbs it; a step of span / (max - 1) always does; with a
        // single point allowed, the one covering the end of the range is kept.
        let fits = |step: i64| {
            let first = from_ms.div_euclid(step) * step;
            let count = (to_ms - first + step - 1) / step;
            (count <= max_points).then_some(Self {
                from_ms,
                to_ms,
                step_ms: step,
                first_ms: first,
                points: count as usize,
            })
        };
        if let Some(timeline) = (0..10).find_map(|extra| fits(base_step + extra * MS_PER_MINUTE)) {
            return Ok(timeline);
        }
        if max_points >= 2 {
            let wide = base_step.max(ceil_to_minute((span + max_points - 2) / (max_points - 1)));
            if let Some(timeline) = fits(wide) {
                return Ok(timeline);
            }
        }
        let last = (to_ms - 1).div_euclid(base_step) * base_step;
        Ok(Self { from_ms, to_ms, step_ms: base_step, first_ms: last, points: 1 })
    }

    pub fn point_starts(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.points as i64).map(move |i| self.first_ms + i * self.step_ms)
    }

    pub fn step_minutes(&self) -> i64 {
        self.step_ms / MS_PER_MINUTE
    }

    pub fn first_minute(&self) -> i64 {
        self.first_ms / MS_PER_MINUTE
    }

    /// End (exclusive) of the last point, in minutes.
    pub fn end_minute(&self) -> i64 {
        self.first_minute() + self.points as i64 * self.step_minutes()
    }

    /// Minutes that overlap `[from, to)`: the window of a table's whole-range value.
    pub fn range_minutes(&self) -> (i64, i64) {
        (self.from_ms.div_euclid(MS_PER_MINUTE), (self.to_ms + MS_PER_MINUTE - 1).div_euclid(MS_PER_MINUTE))
    }
}

fn ceil_to_minute(ms: i64) -> i64 {
    (ms + MS_PER_MINUTE - 1) / MS_PER_MINUTE * MS_PER_MINUTE
}

/// Parses `range` from a request: absent means the last hour ending `now_ms`; a missing
/// `to` is now and a missing `from` is an hour before `to`.
pub(crate) fn parse_range(body: &Map<String, Value>, now_ms: i64) -> Result<(i64, i64), QueryError> {
    let range = match body.get("range") {
        None | Some(Value::Null) => return Ok((now_ms - DEFAULT_RANGE_MS, now_ms)),
        Some(Value::Object(range)) => range,
        Some(other) => {
            return Err(QueryError::bad_request(
                "invalid_range",
                format!("range must be an object, not {}", kind(other)),
            ))
        }
    };
    let to = match range.get("to") {
        None | Some(Value::Null) => now_ms,
        Some(v) => parse_time(v, "range.to")?,
    };
    let from = match range.get("from") {
        None | Some(Value::Null) => to - DEFAULT_RANGE_MS,
        Some(v) => parse_time(v, "range.from")?,
    };
    Ok((from, to))
}

/// An instant as RFC 3339 text, epoch milliseconds, or epoch milliseconds as text (what
/// `${__from}` produces in hand-written bodies).
pub(crate) fn parse_time(value: &Value, what: &str) -> Result<i64, QueryError> {
    let ms = match value {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e16).map(|f| f.round() as i64))
        }
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<i64>().ok(),
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis()),
        _ => None,
    };
    match ms {
        Some(ms) if (0..=MAX_TIMESTAMP_MS).contains(&ms) => Ok(ms),
        _ => Err(QueryError::bad_request(
            "invalid_time",
            format!("{what} must be an RFC 3339 time or epoch milliseconds, got {}", clip(&value.to_string(), 60)),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_729_231_200_000; // 2024-10-18T06:00:00Z

    #[test]
    fn times_in_every_accepted_form() {
        assert_eq!(parse_time(&json!("2024-10-18T06:00:00.000Z"), "t").unwrap(), T0);
        assert_eq!(parse_time(&json!("2024-10-18T08:00:00+02:00"), "t").unwrap(), T0);
        assert_eq!(parse_time(&json!(T0), "t").unwrap(), T0);
        assert_eq!(parse_time(&json!(T0 as f64 + 0.4), "t").unwrap(), T0);
        assert_eq!(parse_time(&json!(T0.to_string()), "t").unwrap(), T0);
        for bad in
            [json!("now-6h"), json!("yesterday"), json!(-5), json!(1e300), json!(true), json!("99999999999999999999")]
        {
            assert_eq!(parse_time(&bad, "t").unwrap_err().code(), "invalid_time", "{bad}");
        }
    }

    #[test]
    fn missing_parts_of_the_range_default() {
        let now = T0;
        assert_eq!(parse_range(&Map::new(), now).unwrap(), (now - 3_600_000, now));
        let body = json!({"range": {"to": T0 + 60_000}});
        let Value::Object(body) = body else { unreachable!() };
        assert_eq!(parse_range(&body, now).unwrap(), (T0 + 60_000 - 3_600_000, T0 + 60_000));
    }

    #[test]
    fn step_is_whole_minutes_and_points_are_aligned_and_bounded() {
        let six_hours = 6 * 3_600_000;
        let t = Timeline::new(T0 + 1_234, T0 + six_hours, Some(20_000), 1080).unwrap();
        assert_eq!(t.step_ms, 60_000);
        assert!(t.points <= 1080 && t.first_ms <= t.from_ms && t.first_ms % t.step_ms == 0);
        let t = Timeline::new(T0, T0 + six_hours, Some(20_000), 100).unwrap();
        assert_eq!(t.step_ms, 240_000, "6 h / 100 points = 3.6 min, rounded up to 4");
        assert_eq!(t.points, 90);
        let t = Timeline::new(T0, T0 + six_hours, Some(90_000), 1000).unwrap();
        assert_eq!(t.step_ms, 120_000, "intervalMs rounds up to whole minutes");
        for max in [1, 2, 3, 7, 59, 1000] {
            for offset in [0, 1, 59_999, 61_000] {
                let t = Timeline::new(T0 + offset, T0 + offset + 3 * 3_600_000 + 7, None, max).unwrap();
                assert!(t.points as u64 <= max && t.points >= 1, "{max} {offset}: {t:?}");
                assert_eq!(t.first_ms % t.step_ms, 0);
                assert!(t.point_starts().all(|p| p < t.to_ms));
            }
        }
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(Timeline::new(T0, T0, None, 10).is_err());
        assert!(Timeline::new(T0 + 1, T0, None, 10).is_err());
        let ninety_days = Timeline::new(T0, T0 + 90 * 24 * 3_600_000, None, 1_000).unwrap();
        assert_eq!(ninety_days.to_ms - ninety_days.from_ms, MAX_RANGE_MS, "clamped to its last 31 days");
        assert!(ninety_days.points <= 1_000);
        assert!(Timeline::new(T0, T0 + MAX_RANGE_MS, Some(i64::MAX), 10).is_ok());
    }
}
