//! Per-receiver rate limits as token buckets: `burst` messages at once, refilled at `per_second`.
//! Slack asks for one message a second per webhook with short bursts; PagerDuty allows about
//! 120 events a minute per routing key over a rolling minute, which a bucket of 30 refilled at
//! 1.5/s never exceeds (30 + 60 x 1.5 = 120). A `Retry-After` empties the bucket until then.

/// A limit: sustained rate and burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

pub const SLACK: RateLimit = RateLimit { per_second: 1.0, burst: 3 };
pub const PAGERDUTY: RateLimit = RateLimit { per_second: 1.5, burst: 30 };
/// Mail servers throttle bursts of mail from one sender; a digest is kinder to inboxes too.
pub const EMAIL: RateLimit = RateLimit { per_second: 0.5, burst: 5 };
pub const WEBHOOK: RateLimit = RateLimit { per_second: 20.0, burst: 50 };

/// A token bucket, on a clock the caller passes (milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at_ms: i64,
    /// Nothing before this (a `Retry-After`).
    paused_until_ms: i64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now_ms: i64) -> Bucket {
        Bucket { limit, tokens: f64::from(limit.burst), at_ms: now_ms, paused_until_ms: i64::MIN }
    }

    fn refill(&mut self, now_ms: i64) {
        if now_ms > self.at_ms {
            let gained = (now_ms - self.at_ms) as f64 / 1_000.0 * self.limit.per_second;
            self.tokens = (self.tokens + gained).min(f64::from(self.limit.burst));
            self.at_ms = now_ms;
        }
    }

    /// Takes one message's token: `Ok` to send now, or `Err(ms)` to wait that long first.
    pub fn take(&mut self, now_ms: i64) -> Result<(), i64> {
        if now_ms < self.paused_until_ms {
            return Err(self.paused_until_ms - now_ms);
        }
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(((missing / self.limit.per_second) * 1_000.0).ceil() as i64)
        }
    }

    /// Whether `take` would succeed now, without taking.
    pub fn ready(&self, now_ms: i64) -> bool {
        let mut probe = self.clone();
        probe.take(now_ms).is_ok()
    }

    /// The receiver said to wait until `until_ms`: nothing before, and no burst right after.
    pub fn pause_until(&mut self, until_ms: i64) {
        self.paused_until_ms = self.paused_until_ms.max(until_ms);
        self.tokens = 0.0;
        self.at_ms = self.at_ms.max(until_ms);
    }

    /// How many messages could go within `horizon_ms` from now.
    pub fn capacity_within(&self, now_ms: i64, horizon_ms: i64) -> u32 {
        let start = now_ms.max(self.paused_until_ms);
        let mut probe = self.clone();
        probe.refill(start);
        let later = (now_ms + horizon_ms - start).max(0) as f64 / 1_000.0 * self.limit.per_second;
        if now_ms + horizon_ms < start {
            return 0;
        }
        (probe.tokens + later).floor().min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends whenever allowed for `seconds`, polling every 10 ms; the send times.
    fn drain(limit: RateLimit, seconds: i64) -> Vec<i64> {
        let mut bucket = Bucket::new(limit, 0);
        (0..seconds * 100).map(|i| i * 10).filter(|&t| bucket.take(t).is_ok()).collect()
    }

    #[test]
    fn slack_gets_a_burst_of_three_then_one_a_second() {
        let sent = drain(SLACK, 10);
        assert_eq!(&sent[..3], [0, 10, 20], "a burst of three at once");
        assert_eq!(sent.len(), 3 + 9, "then one each second: {sent:?}");
        for pair in sent[3..].windows(2) {
            assert!(pair[1] - pair[0] >= 990, "{sent:?}");
        }
    }

    #[test]
    fn pagerduty_never_exceeds_120_in_any_rolling_minute() {
        let sent = drain(PAGERDUTY, 300);
        for (i, &t) in sent.iter().enumerate() {
            let in_minute = sent[i..].iter().take_while(|&&u| u < t + 60_000).count();
            assert!(in_minute <= 120, "{in_minute} events in the minute from {t}");
        }
        assert!(sent.len() >= 400, "{} events in 5 minutes", sent.len());
    }

    #[test]
    fn retry_after_pauses_and_capacity_counts_what_fits() {
        let mut bucket = Bucket::new(SLACK, 0);
        assert_eq!(bucket.capacity_within(0, 10_000), 13);
        bucket.pause_until(5_000);
        assert_eq!(bucket.take(4_000), Err(1_000));
        assert!(!bucket.ready(5_000), "no burst right after a Retry-After");
        assert!(bucket.take(6_000).is_ok());
        assert_eq!(bucket.capacity_within(6_000, 1_000), 1);
    }
}
