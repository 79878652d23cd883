//! Minutes and hours: the units of rollups. A [`Minute`] is the number of whole minutes since
//! the unix epoch (UTC), so a rollup is keyed by its minute's start; an [`Hour`] likewise, for
//! the coarser rollups that make 24 h, 7 d and 15 d windows cheap to read.

use std::fmt;

pub const MS_PER_MINUTE: i64 = 60_000;
pub const MINUTES_PER_HOUR: i64 = 60;

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

    /// The hour this minute belongs to.
    pub fn hour(self) -> Hour {
        Hour(self.0.div_euclid(MINUTES_PER_HOUR))
    }
}

/// Whole hours since the unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub i64);

impl Hour {
    pub fn first_minute(self) -> Minute {
        Minute(self.0 * MINUTES_PER_HOUR)
    }

    /// The first minute after this hour.
    pub fn end_minute(self) -> Minute {
        Minute((self.0 + 1) * MINUTES_PER_HOUR)
    }

    /// The hour containing `minute`, and the first hour starting at or after it.
    pub fn floor(minute: Minute) -> Hour {
        minute.hour()
    }

    pub fn ceil(minute: Minute) -> Hour {
        Hour((minute.0 + MINUTES_PER_HOUR - 1).div_euclid(MINUTES_PER_HOUR))
    }
}

impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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

    #[test]
    fn hours_contain_their_minutes() {
        for (minute, hour, ceil) in [(0, 0, 0), (59, 0, 1), (60, 1, 1), (-1, -1, 0), (-60, -1, -1), (61, 1, 2)] {
            assert_eq!(Minute(minute).hour(), Hour(hour), "{minute}");
            assert_eq!(Hour::ceil(Minute(minute)), Hour(ceil), "{minute}");
            let h = Hour(hour);
            assert!(h.first_minute().0 <= minute && minute < h.end_minute().0);
        }
    }
}
