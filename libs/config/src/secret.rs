//! A value that must never reach a log line or an API answer.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (an auth check, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file (trailing newline removed), as Kubernetes mounts them.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self(std::fs::read_to_string(path)?.trim_end_matches(['\n', '\r']).to_string()))
    }

    /// Constant-time comparison, so a token check leaks nothing through timing.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "**REDACTED** **REDACTED**");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3") && !s.matches("hunter") && !s.matches(""));
    }
}
