//! What a receiver's answer means for a delivery: accepted, try again (a timeout, 429, 5xx;
//! after `Retry-After` where given), or refused for good (any other 4xx: retrying a request
//! the receiver called wrong only repeats the refusal). Backoff doubles from 1 s to 5 min,
//! jittered so that replicas and receivers do not retry in step.

use chrono::{DateTime, Utc};

/// Longest wait a `Retry-After` may impose; a longer one is read as this.
pub const MAX_RETRY_AFTER_MS: i64 = 3_600_000;
const FIRST_BACKOFF_MS: f64 = 1_000.0;
const MAX_BACKOFF_MS: f64 = 300_000.0;
/// A delivery that has failed this long is given up, recorded as failed and shown.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Send again; not before `after_ms` from now where the receiver said so.
    Retry {
        after_ms: Option<i64>,
        reason: String,
    },
    Refused {
        reason: String,
    },
}

/// The answer an HTTP receiver gave. `body` is shown in the reason, clipped.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str, now_ms: i64) -> Answer {
    let reason = || {
        let body = crate::clip(body.trim(), 200);
        if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        }
    };
    match status {
        200..=299 => Answer::Accepted,
        429 => Answer::Retry {
            after_ms: retry_after.and_then(|h| parse_retry_after(h, now_ms)).or_else(|| slack_retry_after(body)),
            reason: reason(),
        },
        408 | 500..=599 => {
            Answer::Retry { after_ms: retry_after.and_then(|h| parse_retry_after(h, now_ms)), reason: reason() }
        }
        _ => Answer::Refused { reason: reason() },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, in milliseconds from now, capped.
pub fn parse_retry_after(header: &str, now_ms: i64) -> Option<i64> {
    let header = header.trim();
    let ms = if let Ok(seconds) = header.parse::<f64>() {
        (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1_000.0).ceil() as i64)?
    } else {
        let at = DateTime::parse_from_rfc2822(header).ok()?.with_timezone(&Utc);
        (at.timestamp_millis() - now_ms).max(0)
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// Slack also says it in the body: `{"ok":false,"error":"rate_limited","retry_after":1}`.
fn slack_retry_after(body: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value["retry_after"].as_f64().map(|s| ((s * 1_000.0).ceil() as i64).clamp(0, MAX_RETRY_AFTER_MS))
}

/// The wait before attempt `attempt + 1` (attempt counts from 1), `jitter` in `[0, 1)`.
pub fn backoff_ms(attempt: u32, jitter: f64) -> i64 {
    let base = (FIRST_BACKOFF_MS * 2f64.powi(attempt.saturating_sub(1).min(30) as i32)).min(MAX_BACKOFF_MS);
    (base * (0.5 + jitter.clamp(0.0, 1.0) / 2.0)).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_status() {
        assert_eq!(classify(202, None, r#"{"status":"success"}"#, 0), Answer::Accepted);
        assert_eq!(classify(200, None, "ok", 0), Answer::Accepted);
        assert_eq!(
            classify(400, None, r#"{"status":"invalid event"}"#, 0),
            Answer::Refused { reason: r#"HTTP 400: {"status":"invalid event"}"#.into() }
        );
        assert!(matches!(classify(404, None, "channel_not_found", 0), Answer::Refused { .. }));
        assert!(matches!(classify(500, None, "", 0), Answer::Retry { after_ms: None, .. }));
        assert!(matches!(classify(503, Some("7"), "", 0), Answer::Retry { after_ms: Some(7_000), .. }));
        assert!(matches!(classify(429, Some("2"), "", 0), Answer::Retry { after_ms: Some(2_000), .. }));
        let slack = r#"{"retry_after":1,"ok":false,"error":"rate_limited"}"#;
        assert!(matches!(classify(429, None, slack, 0), Answer::Retry { after_ms: Some(1_000), .. }));
    }

    #[test]
    fn retry_after_as_seconds_or_a_date_capped() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2026 07:28:00 GMT").unwrap().timestamp_millis();
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now), Some(30_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", now), Some(0));
        assert_eq!(parse_retry_after("1.5", now), Some(1_500));
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_five_minutes() {
        assert_eq!(backoff_ms(1, 1.0), 1_000);
        assert_eq!(backoff_ms(1, 0.0), 500);
        assert_eq!(backoff_ms(4, 1.0), 8_000);
        assert_eq!(backoff_ms(40, 1.0), 300_000);
        assert_eq!(backoff_ms(40, 0.0), 150_000);
    }
}
