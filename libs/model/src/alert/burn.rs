//! SLO error budgets and multi-window, multi-burn-rate alerts (the SRE Workbook's recipe:
//! page on 14.4x over 1 h and 5 m or 6x over 6 h and 30 m; ticket on 3x over 1 d and 2 h or
//! 1x over 3 d and 6 h), computed from the integer good/total counts of the rollups.
//!
//! The objective is held in parts per million and factors in thousandths, and comparisons
//! are done in integers, so 99.9 % is exactly 999 000 ppm: no `0.000999999…` budget, no
//! float drift, no extrapolation from a rate.

use serde::{Deserialize, Serialize};

/// Probes in a window and how many succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub good: u64,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.total.saturating_sub(self.good)
    }

    pub fn add(&mut self, other: Counts) {
        self.total = self.total.saturating_add(other.total);
        self.good = self.good.saturating_add(other.good);
    }
}

pub const PPM: u64 = 1_000_000;

/// An availability objective, e.g. 99.9 % = 999 000 ppm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    pub ppm: u64,
}

impl Objective {
    /// From a percentage with at most four decimals (`99.9`, `99.95`); `None` outside (0, 100).
    pub fn from_percent(percent: f64) -> Option<Objective> {
        if !(percent > 0.0 && percent < 100.0) {
            return None;
        }
        let ppm = (percent * 10_000.0).round();
        ((ppm - percent * 10_000.0).abs() < 1e-6 && ppm < PPM as f64).then_some(Objective { ppm: ppm as u64 })
    }

    /// The allowed failure share in ppm (1 000 for 99.9 %).
    pub fn budget_ppm(&self) -> u64 {
        PPM.saturating_sub(self.ppm).max(1)
    }

    pub fn percent(&self) -> f64 {
        self.ppm as f64 / 10_000.0
    }

    /// How fast the budget burns over `counts`: the failure share divided by the allowed
    /// share (1.0 spends exactly the budget over the SLO period). `None` without probes.
    pub fn burn_rate(&self, counts: Counts) -> Option<f64> {
        (counts.total > 0).then(|| counts.bad() as f64 * PPM as f64 / (counts.total as f64 * self.budget_ppm() as f64))
    }

    /// Whether `counts` burn at `factor_milli / 1000` times the budget or faster, exactly.
    pub fn burns_at_least(&self, counts: Counts, factor_milli: u64) -> bool {
        if counts.total == 0 {
            return false;
        }
        let lhs = u128::from(counts.bad()) * u128::from(PPM) * 1_000;
        let rhs = u128::from(factor_milli) * u128::from(counts.total) * u128::from(self.budget_ppm());
        lhs >= rhs
    }

    /// The share of the period's budget left (1.0 untouched, 0.0 spent, below 0 overspent).
    pub fn budget_remaining(&self, period: Counts) -> Option<f64> {
        self.burn_rate(period).map(|burn| 1.0 - burn)
    }

    /// Seconds until the period's budget is spent at the failure rate of `recent`
    /// (`recent_seconds` long), assuming the traffic of `period` (`period_seconds` long)
    /// continues. `None` when nothing fails now or nothing was probed; `Some(0)` when spent.
    pub fn seconds_to_exhaustion(
        &self,
        period: Counts,
        period_seconds: f64,
        recent: Counts,
        recent_seconds: f64,
    ) -> Option<f64> {
        if period.total == 0 || recent.total == 0 || recent_seconds <= 0.0 || period_seconds <= 0.0 {
            return None;
        }
        // Failures the period may hold at its traffic, minus those already spent.
        let allowed = period.total as f64 * self.budget_ppm() as f64 / PPM as f64;
        let left = allowed - period.bad() as f64;
        if left <= 0.0 {
            return Some(0.0);
        }
        let failures_per_second = recent.bad() as f64 / recent_seconds;
        (failures_per_second > 0.0).then(|| left / failures_per_second)
    }
}

/// One pair of windows and the burn factor both must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnWindow {
    pub long_minutes: u32,
    pub short_minutes: u32,
    /// The factor in thousandths: 14.4 is 14 400.
    pub factor_milli: u64,
}

impl BurnWindow {
    pub const fn new(long_minutes: u32, short_minutes: u32, factor_milli: u64) -> BurnWindow {
        BurnWindow { long_minutes, short_minutes, factor_milli }
    }

    pub fn factor(&self) -> f64 {
        self.factor_milli as f64 / 1_000.0
    }

    /// Both windows burn at the factor or faster, with at least two failures in the long
    /// window: on a service just started (or a check just added) one lost probe among a few
    /// dozen already "burns" far past any factor, and one failure is no evidence of anything.
    pub fn fires(&self, objective: &Objective, long: Counts, short: Counts) -> bool {
        long.bad() >= 2
            && objective.burns_at_least(long, self.factor_milli)
            && objective.burns_at_least(short, self.factor_milli)
    }
}

/// The Workbook's page pairs for a 30-day SLO.
pub const PAGE_WINDOWS: [BurnWindow; 2] = [BurnWindow::new(60, 5, 14_400), BurnWindow::new(360, 30, 6_000)];
/// The Workbook's ticket pairs.
pub const TICKET_WINDOWS: [BurnWindow; 2] = [BurnWindow::new(1_440, 120, 3_000), BurnWindow::new(4_320, 360, 1_000)];

/// Per-minute good/total counts ending at (excluding) minute `end`, newest last, and the
/// window sums over the last `minutes` of them: a small helper for simulations and tests that
/// replay recorded counts minute by minute.
pub fn window_sum(per_minute: &[Counts], end: usize, minutes: usize) -> Counts {
    let start = end.saturating_sub(minutes);
    let mut sum = Counts::default();
    for counts in per_minute.get(start..end.min(per_minute.len())).unwrap_or_default() {
        sum.add(*counts);
    }
    sum
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn objective() -> Objective {
        Objective::from_percent(99.9).unwrap()
    }

    #[test]
    fn one_lost_probe_never_pages() {
        let page = PAGE_WINDOWS[0];
        // 48 probes (a minute of four regions at 5 s): one failure is 2 %, 20x the budget,
        // yet no evidence of an outage; a second one is.
        let one = Counts { total: 48, good: 47 };
        assert!(objective().burns_at_least(one, page.factor_milli));
        assert!(!page.fires(&objective(), one, one));
        let two = Counts { total: 48, good: 46 };
        assert!(page.fires(&objective(), two, two));
    }

    #[test]
    fn objectives_are_exact() {
        assert_eq!(objective().ppm, 999_000);
        assert_eq!(objective().budget_ppm(), 1_000);
        assert_eq!(Objective::from_percent(99.95).unwrap().budget_ppm(), 500);
        for bad in [0.0, 100.0, -1.0, f64::NAN, 99.123456] {
            assert_eq!(Objective::from_percent(bad), None, "{bad}");
        }
    }

    #[test]
    fn burn_rates_from_integer_counts() {
        let o = objective();
        // 1.44 % failures is exactly 14.4x at 99.9 %: the threshold itself fires.
        let at = Counts { total: 10_000, good: 10_000 - 144 };
        assert!(o.burns_at_least(at, 14_400));
        let below = Counts { total: 10_000, good: 10_000 - 143 };
        assert!(!o.burns_at_least(below, 14_400));
        assert!((o.burn_rate(at).unwrap() - 14.4).abs() < 1e-9);
        assert_eq!(o.burn_rate(Counts::default()), None);
        assert!(!o.burns_at_least(Counts::default(), 0));
        let huge = Counts { total: u64::MAX, good: 0 };
        assert!(o.burns_at_least(huge, 1_000_000));
    }

    #[test]
    fn budget_and_exhaustion() {
        let o = objective();
        let period = Counts { total: 1_000_000, good: 999_500 }; // half the budget spent
        assert!((o.budget_remaining(period).unwrap() - 0.5).abs() < 1e-9);
        // 500 failures left; now 1 failure a second.
        let recent = Counts { total: 3_600, good: 0 };
        let eta = o.seconds_to_exhaustion(period, 30.0 * 86_400.0, Counts { total: 3_600, good: 0 }, 3_600.0).unwrap();
        assert!((eta - 500.0).abs() < 1e-6, "{eta}");
        assert_eq!(o.seconds_to_exhaustion(period, 1.0, Counts { total: 10, good: 10 }, 10.0), None);
        let spent = Counts { total: 1_000, good: 990 };
        assert_eq!(o.seconds_to_exhaustion(spent, 1.0, recent, 3_600.0), Some(0.0));
    }

    /// Replays minutes of counts through the page pairs and returns the first minute (1-based:
    /// evaluated at its end) at which a page fires.
    fn first_page(per_minute: &[Counts]) -> Option<usize> {
        let o = objective();
        (1..=per_minute.len()).find(|&end| {
            PAGE_WINDOWS.iter().any(|w| {
                w.fires(
                    &o,
                    window_sum(per_minute, end, w.long_minutes as usize),
                    window_sum(per_minute, end, w.short_minutes as usize),
                )
            })
        })
    }

    #[test]
    fn a_full_outage_pages_within_a_minute_and_a_steady_two_percent_within_45() {
        // 24 h healthy at 48 probes a minute (4 regions every 5 s), then a full outage.
        let mut minutes = vec![Counts { total: 48, good: 48 }; 1_440];
        minutes.extend(vec![Counts { total: 48, good: 0 }; 10]);
        assert_eq!(first_page(&minutes), Some(1_441), "the first outage minute already burns 1 h at 14.4x");
        // A 2 % error share: 14.4x needs 1.44 % over the hour, reached at minute ~44.
        let mut minutes = vec![Counts { total: 1_000, good: 1_000 }; 1_440];
        minutes.extend(vec![Counts { total: 1_000, good: 980 }; 120]);
        let page = first_page(&minutes).unwrap() - 1_440;
        assert!(page <= 45, "paged after {page} minutes");
        assert!(page >= 40, "not before the hour holds 1.44 %: {page}");
    }
}
