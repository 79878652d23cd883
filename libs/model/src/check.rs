//! Check specifications, as the aggregator's catalogue defines them and probers run them, and
//! the fixed schedule each check keeps.

use crate::ids::CheckId;

/// Smallest interval a check may run at; below this a prober would mostly measure itself.
pub const MIN_INTERVAL_MS: u32 = 100;
/// Largest interval: a check that runs less than once an hour cannot feed per-minute SLIs.
pub const MAX_INTERVAL_MS: u32 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub id: CheckId,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http(HttpCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    /// Status codes that count as success; never empty once validated.
    pub expected_status: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    #[error("check {id}: interval {interval_ms} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms")]
    Interval { id: CheckId, interval_ms: u32 },
    #[error("check {id}: timeout {timeout_ms} ms must be above 0 and at most the interval ({interval_ms} ms)")]
    Timeout { id: CheckId, timeout_ms: u32, interval_ms: u32 },
    #[error("check {id}: url {url:?} must be an absolute http:// or https:// URL with a host")]
    Url { id: CheckId, url: String },
    #[error("check {id}: method {method:?} is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH")]
    Method { id: CheckId, method: String },
    #[error("check {id}: expected status {status} is not an HTTP status code (100..=599)")]
    Status { id: CheckId, status: u16 },
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

impl CheckSpec {
    /// Every problem with this spec, so a catalogue with several mistakes is fixed in one go.
    pub fn problems(&self) -> Vec<CheckSpecError> {
        let mut problems = Vec::new();
        let id = self.id.clone();
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            problems.push(CheckSpecError::Interval { id: id.clone(), interval_ms: self.interval_ms });
        }
        if self.timeout_ms == 0 || self.timeout_ms > self.interval_ms {
            problems.push(CheckSpecError::Timeout {
                id: id.clone(),
                timeout_ms: self.timeout_ms,
                interval_ms: self.interval_ms,
            });
        }
        match &self.kind {
            CheckKind::Http(http) => {
                if !is_plausible_http_url(&http.url) {
                    problems.push(CheckSpecError::Url { id: id.clone(), url: http.url.clone() });
                }
                if !METHODS.contains(&http.method.as_str()) {
                    problems.push(CheckSpecError::Method { id: id.clone(), method: http.method.clone() });
                }
                for status in &http.expected_status {
                    if !(100..=599).contains(status) {
                        problems.push(CheckSpecError::Status { id: id.clone(), status: *status });
                    }
                }
            }
        }
        problems
    }

    /// Where in each interval this check runs, derived from its id alone, so the schedule
    /// survives restarts and different checks spread over the interval instead of bunching
    /// at its start.
    pub fn phase_ms(&self) -> u64 {
        fnv1a(self.id.as_str().as_bytes()) % u64::from(self.interval_ms.max(1))
    }

    /// The first scheduled run strictly after `now_ms`: runs sit at `k * interval + phase`.
    pub fn next_run_after(&self, now_ms: i64) -> i64 {
        let interval = i64::from(self.interval_ms.max(1));
        let phase = self.phase_ms() as i64;
        let k = (now_ms - phase).div_euclid(interval) + 1;
        k * interval + phase
    }
}

fn is_plausible_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(id: &str, url: &str, interval_ms: u32, timeout_ms: u32) -> CheckSpec {
        CheckSpec {
            id: CheckId::new(id).unwrap(),
            interval_ms,
            timeout_ms,
            kind: CheckKind::Http(HttpCheck { url: url.into(), method: "GET".into(), expected_status: vec![200] }),
        }
    }

    #[test]
    fn valid_spec_has_no_problems() {
        assert!(http("a", "https://a.example/health", 10_000, 5_000).problems().is_empty());
        assert!(http("a", "http://127.0.0.1:8080", 1_000, 1_000).problems().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut spec = http("a", "ftp://x", 50, 100);
        let CheckKind::Http(h) = &mut spec.kind;
        h.method = "BREW".into();
        h.expected_status = vec![200, 999];
        let problems: Vec<String> = spec.problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        for (url, ok) in [("http://", false), ("https://h", true), ("https:// h", false), ("h/x", false)] {
            assert_eq!(is_plausible_http_url(url), ok, "{url}");
        }
    }

    #[test]
    fn schedule_keeps_its_phase_and_never_runs_twice_in_an_interval() {
        let spec = http("us-west", "http://h", 10_000, 1_000);
        let phase = spec.phase_ms() as i64;
        assert_eq!(phase, http("us-west", "http://other", 10_000, 1_000).phase_ms() as i64);
        let mut now = 1_700_000_000_000;
        for _ in 0..100 {
            let next = spec.next_run_after(now);
            assert!(next > now && next - now <= 10_000);
            assert_eq!(next.rem_euclid(10_000), phase);
            now = next;
        }
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let spec = http(&format!("check-{i}"), "http://h", 10_000, 1_000);
            buckets[(spec.phase_ms() / 1_000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (50..=150).contains(&n)), "{buckets:?}");
    }
}
