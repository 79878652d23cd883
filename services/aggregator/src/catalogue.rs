//! The check catalogue: every check the fleet runs, resolved from the config (defaults and
//! `HEALTH_CHECK_INTERVAL` applied) and validated as a whole, so a bad catalogue is refused
//! with every problem listed. Its version is a hash of its content: every replica that loads
//! the same catalogue announces the same version.

use std::collections::BTreeMap;

use mixmon_model::{CheckId, CheckKind, CheckSpec, HttpCheck};

use crate::config::{AggregatorConfig, CheckType};

/// The environment variable operators already use for the default check interval (seconds).
pub const HEALTH_CHECK_INTERVAL: &str = "HEALTH_CHECK_INTERVAL";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalogue {
    pub version: u64,
    pub checks: BTreeMap<CheckId, CheckSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the check catalogue is invalid:\n  - {}", problems.join("\n  - "))]
pub struct CatalogueError {
    pub problems: Vec<String>,
}

impl Catalogue {
    pub fn new(checks: impl IntoIterator<Item = CheckSpec>) -> Self {
        let checks: BTreeMap<CheckId, CheckSpec> = checks.into_iter().map(|c| (c.id.clone(), c)).collect();
        let version = content_version(&checks);
        Self { version, checks }
    }

    /// Resolves and validates the config's checks. `health_check_interval` is the value of
    /// `HEALTH_CHECK_INTERVAL`, if set: it replaces the default interval (not a check's own).
    pub fn from_config(config: &AggregatorConfig, health_check_interval: Option<&str>) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let mut default_interval_s = config.defaults.interval_s;
        if let Some(raw) = health_check_interval {
            match raw.trim().parse::<u32>() {
                Ok(seconds) if seconds > 0 => default_interval_s = seconds,
                _ => {
                    problems.push(format!("{HEALTH_CHECK_INTERVAL}={raw:?} must be a whole number of seconds above 0"))
                }
            }
        }
        let mut checks = BTreeMap::new();
        for (index, check) in config.checks.iter().enumerate() {
            let id = match CheckId::new(check.id.clone()) {
                Ok(id) => id,
                Err(err) => {
                    problems.push(format!("checks[{index}].id: {err}"));
                    continue;
                }
            };
            let interval_ms = check.interval_s.unwrap_or(default_interval_s).saturating_mul(1_000);
            let timeout_ms = check.timeout_ms.unwrap_or(config.defaults.timeout_ms.min(interval_ms));
            let kind = match check.check_type {
                CheckType::Http => CheckKind::Http(HttpCheck {
                    url: check.url.clone(),
                    method: check.method.to_ascii_uppercase(),
                    expected_status: check.expected_status.clone(),
                }),
            };
            let spec = CheckSpec { id: id.clone(), interval_ms, timeout_ms, kind };
            problems.extend(spec.problems().iter().map(|p| format!("checks[{index}]: {p}")));
            if check.expected_status.is_empty() {
                problems.push(format!("checks[{index}]: expected_status must not be empty"));
            }
            if checks.insert(id.clone(), spec).is_some() {
                problems.push(format!("checks[{index}]: duplicate check id {id}"));
            }
        }
        if problems.is_empty() {
            Ok(Self::new(checks.into_values()))
        } else {
            Err(CatalogueError { problems })
        }
    }

    /// What a prober running `self` must change to run `next`: upserts and removals.
    pub fn diff(&self, next: &Catalogue) -> (Vec<CheckSpec>, Vec<CheckId>) {
        let upserts = next.checks.values().filter(|spec| self.checks.get(&spec.id) != Some(*spec)).cloned().collect();
        let removed = self.checks.keys().filter(|id| !next.checks.contains_key(*id)).cloned().collect();
        (upserts, removed)
    }
}

fn content_version(checks: &BTreeMap<CheckId, CheckSpec>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for spec in checks.values() {
        feed(spec.id.as_str().as_bytes());
        feed(&spec.interval_ms.to_le_bytes());
        feed(&spec.timeout_ms.to_le_bytes());
        match &spec.kind {
            CheckKind::Http(http) => {
                feed(b"http");
                feed(http.url.as_bytes());
                feed(http.method.as_bytes());
                for status in &http.expected_status {
                    feed(&status.to_le_bytes());
                }
            }
        }
    }
    // Zero means "none" on the wire.
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AggregatorConfig {
        mixmon_config::parse_with_env("a.toml", text, Vec::new()).unwrap()
    }

    const TWO_CHECKS: &str = r#"
        [defaults]
        interval_s = 10
        [[checks]]
        id = "us-west"
        url = "http://127.0.0.1:1/health"
        [[checks]]
        id = "api"
        url = "https://api.example/health"
        interval_s = 30
        timeout_ms = 2000
        expected_status = [200, 204]
    "#;

    #[test]
    fn resolves_defaults_and_the_operators_interval_variable() {
        let catalogue = Catalogue::from_config(&config(TWO_CHECKS), None).unwrap();
        let us_west = &catalogue.checks[&CheckId::new("us-west").unwrap()];
        assert_eq!((us_west.interval_ms, us_west.timeout_ms), (10_000, 5_000));
        let with_env = Catalogue::from_config(&config(TWO_CHECKS), Some("3")).unwrap();
        let us_west = &with_env.checks[&CheckId::new("us-west").unwrap()];
        assert_eq!((us_west.interval_ms, us_west.timeout_ms), (3_000, 3_000), "timeout is capped by the interval");
        assert_eq!(with_env.checks[&CheckId::new("api").unwrap()].interval_ms, 30_000, "a check's own interval wins");
        assert_ne!(catalogue.version, with_env.version);
        assert_eq!(catalogue.version, Catalogue::from_config(&config(TWO_CHECKS), None).unwrap().version);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            [[checks]]
            id = "bad id"
            url = "http://x"
            [[checks]]
            id = "a"
            url = "ftp://x"
            [[checks]]
            id = "a"
            url = "http://x"
            expected_status = []
        "#;
        let err = Catalogue::from_config(&config(text), Some("soon")).unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        let text = err.to_string();
        for needle in ["HEALTH_CHECK_INTERVAL", "checks[0].id", "checks[1]", "duplicate check id a", "expected_status"]
        {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn diff_lists_upserts_and_removals() {
        let old = Catalogue::from_config(&config(TWO_CHECKS), None).unwrap();
        let new = Catalogue::from_config(&config(TWO_CHECKS), Some("5")).unwrap();
        let (upserts, removed) = old.diff(&new);
        assert_eq!(upserts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["us-west"]);
        assert!(removed.is_empty());
        let (upserts, removed) = old.diff(&Catalogue::default());
        assert!(upserts.is_empty());
        assert_eq!(removed.len(), 2);
    }
}
