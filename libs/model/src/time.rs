//! Minutes: the unit of every rollup. A [`Minute`] is the number of whole minutes since the
//! unix epoch (UTC), so a rollup is keyed by its minute's start.

use std::fmt;

pub const MS_PER_MINUTE: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute(pub i64);

impl Minute {
    /// The minute that contains `unix_ms` (floor, also for times before 1970).
    pub fn containing(unix_ms: i64) -> Self {
        Minute(unix_ms.div_euclid(MS_PER_MINUTE))
    }

    pub fn start_ms(self) -> i64 {
        self.0 * MS_PER_MINUTE
    }

    pub fn next(self) -> Self {
        Minute(self.0 + 1)
    }
}

impl fmt::Display for Minute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_contains_its_milliseconds() {
        for (ms, minute) in [(0, 0), (59_999, 0), (60_000, 1), (-1, -1), (1_700_000_123_456, 28_333_335)] {
            assert_eq!(Minute::containing(ms), Minute(minute), "{ms}");
            assert!(Minute(minute).start_ms() <= ms && ms < Minute(minute).next().start_ms());
        }
    }
}
