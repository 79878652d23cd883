//! Silences with Alertmanager's meaning (`silence/silence.go`): matchers, a start and an end;
//! pending before the start, active until the end (exclusive), expired after. An active
//! silence mutes every alert its matchers all match. Expiring one sets its end to now.

use serde::{Deserialize, Serialize};

use super::labels::LabelSet;
use super::matcher::{matches_all, MatchOp, Matcher, MatcherError};

/// How long an expired silence is kept (listed, and in the store), as Alertmanager's default
/// `--data.retention` would keep it for five days; mixmon keeps it as long as alert history.
pub const SILENCE_RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// Most silences kept at once: each mutes by matchers, so thousands are a mistake.
pub const MAX_SILENCES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// A matcher as a silence stores it (Alertmanager's `matcher` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    pub fn compile(&self) -> Result<Matcher, MatcherError> {
        Matcher::new(self.name.clone(), MatchOp::from_flags(self.is_regex, self.is_equal), self.value.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    pub updated_at_ms: i64,
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether it mutes `labels` at `now_ms` (a matcher that does not compile mutes nothing;
    /// the API refuses those).
    pub fn mutes(&self, labels: &LabelSet, now_ms: i64) -> bool {
        if self.state(now_ms) != SilenceState::Active {
            return false;
        }
        let compiled: Result<Vec<Matcher>, _> = self.matchers.iter().map(SilenceMatcher::compile).collect();
        compiled.is_ok_and(|m| !m.is_empty() && matches_all(&m, labels))
    }
}

/// The ids of the silences that mute `labels` at `now_ms`, sorted.
pub fn silenced_by(silences: &[Silence], labels: &LabelSet, now_ms: i64) -> Vec<String> {
    let mut ids: Vec<String> = silences.iter().filter(|s| s.mutes(labels, now_ms)).map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn silence(matchers: &[(&str, &str, bool, bool)], starts: i64, ends: i64) -> Silence {
        Silence {
            id: "s1".into(),
            matchers: matchers
                .iter()
                .map(|(n, v, re, eq)| SilenceMatcher {
                    name: (*n).into(),
                    value: (*v).into(),
                    is_regex: *re,
                    is_equal: *eq,
                })
                .collect(),
            starts_at_ms: starts,
            ends_at_ms: ends,
            created_by: "sre".into(),
            comment: "maintenance".into(),
            updated_at_ms: starts,
        }
    }

    #[test]
    fn a_silence_mutes_what_all_its_matchers_match_while_active() {
        let s = silence(&[("alertname", "ServiceDown", false, true), ("endpoint", "e.*", true, true)], 1_000, 2_000);
        let edge: LabelSet = [("alertname", "ServiceDown"), ("endpoint", "edge")].into_iter().collect();
        let api: LabelSet = [("alertname", "ServiceDown"), ("endpoint", "api")].into_iter().collect();
        assert_eq!(s.state(999), SilenceState::Pending);
        assert!(!s.mutes(&edge, 999), "pending");
        assert!(s.mutes(&edge, 1_000));
        assert!(!s.mutes(&api, 1_000));
        assert!(!s.mutes(&edge, 2_000), "the end is exclusive");
        assert_eq!(s.state(2_000), SilenceState::Expired);
        let not = Silence { id: "s2".into(), ..silence(&[("endpoint", "api", false, false)], 0, 10) };
        assert!(not.mutes(&edge, 5) && !not.mutes(&api, 5));
        let both = [s, not];
        assert_eq!(silenced_by(&both, &edge, 5), ["s2"]);
        assert_eq!(silenced_by(&both, &edge, 1_005), ["s1"]);
    }

    #[test]
    fn matchers_read_as_alertmanager_writes_them() {
        let m: SilenceMatcher = serde_json::from_str(r#"{"name":"a","value":"b","isRegex":false}"#).unwrap();
        assert!(m.is_equal, "isEqual defaults to true, as in Alertmanager before 0.22");
        assert!(SilenceMatcher { is_regex: true, value: "(".into(), ..m }.compile().is_err());
    }
}
