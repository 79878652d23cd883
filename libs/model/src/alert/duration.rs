//! Durations written as Prometheus writes them: `30s`, `1m`, `1h30m`, `2d`, `1w`, `500ms`,
//! or `0`. Units must descend (`1h30m`, not `30m1h`), as in Prometheus' `model.ParseDuration`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is negative; durations count forward (e.g. 1m)")]
    Negative(String),
    #[error("{0:?} is not a duration (e.g. 30s, 1m, 1h30m, 2d)")]
    Syntax(String),
    #[error("{0:?} is longer than {max} days", max = MAX_DAYS)]
    TooLong(String),
}

/// Longest duration accepted anywhere (a year): keeps every sum far from overflow.
const MAX_DAYS: u64 = 366;
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("ms", 1),
    ("m", 60_000),
    ("s", 1_000),
];

/// The rank of each unit from largest to smallest (`ms` after `s`).
fn rank(unit: &str) -> usize {
    match unit {
        "y" => 0,
        "w" => 1,
        "d" => 2,
        "h" => 3,
        "m" => 4,
        "s" => 5,
        _ => 6,
    }
}

/// Parses a duration into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    if trimmed == "0" {
        return Ok(0);
    }
    let syntax = || DurationError::Syntax(text.to_string());
    let mut rest = trimmed;
    let mut total: u64 = 0;
    let mut last_rank: Option<usize> = None;
    if rest.is_empty() {
        return Err(syntax());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(syntax)?;
        if digits == 0 {
            return Err(syntax());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| syntax())?;
        rest = &rest[digits..];
        let (unit, ms) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit)).ok_or_else(syntax)?;
        // "m" must not swallow the "m" of "ms".
        let (unit, ms) = if *unit == "m" && rest.starts_with("ms") { ("ms", 1) } else { (*unit, *ms) };
        let r = rank(unit);
        if last_rank.is_some_and(|last| r <= last) {
            return Err(syntax());
        }
        last_rank = Some(r);
        rest = &rest[unit.len()..];
        total = number
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
    }
    if total > MAX_DAYS * 86_400_000 {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(total)
}

/// A duration in milliseconds, printed the way it is written in a rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        let cases = [
            ("0", 0),
            ("30s", 30_000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("500ms", 500),
            ("1m500ms", 60_500),
            ("5m", 300_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn mistakes() {
        assert_eq!(parse_duration("-1m"), Err(DurationError::Negative("-1m".into())));
        for bad in ["", "m", "1", "1x", "30m1h", "1m1m", "1.5m", "1 m"] {
            assert!(matches!(parse_duration(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        assert!(matches!(parse_duration("400d"), Err(DurationError::TooLong(_))));
        assert!(matches!(parse_duration("99999999999999999999s"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse_duration("9999999999999999y"), Err(DurationError::TooLong(_))));
    }

    #[test]
    fn display() {
        assert_eq!(Millis(5_400_000).to_string(), "1h30m");
        assert_eq!(Millis(0).to_string(), "0s");
        assert_eq!(Millis(60_500).to_string(), "1m500ms");
    }
}
