//! CPU use from `/proc/stat`: the aggregate `cpu` line's jiffies, and the busy fraction
//! between two samples.

use crate::HostError;

/// Cumulative jiffies of the aggregate `cpu` line. `guest` and `guest_nice` are left out:
/// the kernel already counts them in `user` and `nice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    fn fields(&self) -> [u64; 8] {
        [self.user, self.nice, self.system, self.idle, self.iowait, self.irq, self.softirq, self.steal]
    }
}

/// `/proc/stat` as far as CPU use goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuStat {
    pub total: CpuTimes,
    /// Number of `cpuN` lines: the CPUs online.
    pub cpus: usize,
}

/// Parses `/proc/stat`. Kernels before 2.6.11 have fewer columns; missing ones are zero.
pub fn parse_proc_stat(text: &str) -> Result<CpuStat, HostError> {
    let err = |reason: &str| HostError::Parse { file: "/proc/stat", reason: reason.to_owned() };
    let mut total = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") => {
                let mut f = [0u64; 8];
                for (slot, word) in f.iter_mut().zip(words) {
                    *slot = word.parse().map_err(|_| err("a cpu column is not a number"))?;
                }
                let [user, nice, system, idle, iowait, irq, softirq, steal] = f;
                total = Some(CpuTimes { user, nice, system, idle, iowait, irq, softirq, steal });
            }
            Some(w)
                if w.strip_prefix("cpu").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                cpus += 1;
            }
            _ => {}
        }
    }
    let total = total.ok_or_else(|| err("no aggregate cpu line"))?;
    Ok(CpuStat { total, cpus })
}

/// The fraction of CPU time (0 to 1, all CPUs together) spent busy between two samples:
/// everything but `idle` and `iowait`. `None` when no time was counted between them (samples
/// too close, or the same one twice).
///
/// Each column's increase saturates at zero: `iowait` is known to go backwards on some
/// kernels, and a backwards column must not make the busy fraction negative or above one.
pub fn cpu_usage(prev: &CpuTimes, cur: &CpuTimes) -> Option<f64> {
    let d: Vec<u64> = prev.fields().iter().zip(cur.fields()).map(|(p, c)| c.saturating_sub(*p)).collect();
    let total: u64 = d.iter().fold(0u64, |a, b| a.saturating_add(*b));
    if total == 0 {
        return None;
    }
    let idle = d.get(3).copied().unwrap_or(0).saturating_add(d.get(4).copied().unwrap_or(0));
    let busy = total.saturating_sub(idle);
    // Jiffies fit an f64 exactly for centuries of uptime.
    #[allow(clippy::cast_precision_loss)]
    let fraction = busy as f64 / total as f64;
    Some(fraction.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/stat_a.txt");

    #[test]
    fn parses_the_fixture() {
        let stat = parse_proc_stat(FIXTURE).expect("parses");
        assert_eq!(stat.cpus, 2);
        assert_eq!(
            stat.total,
            CpuTimes {
                user: 198_470,
                nice: 41_549,
                system: 26_489,
                idle: 296_051,
                iowait: 1391,
                irq: 0,
                softirq: 338,
                steal: 134
            }
        );
    }

    #[test]
    fn parse_table() {
        // (text, Some((user, idle, cpus)) or None for an error)
        type Case<'a> = (&'a str, Option<(u64, u64, usize)>);
        let cases: &[Case<'_>] = &[
            ("cpu 1 2 3 4\ncpu0 1 2 3 4\n", Some((1, 4, 1))),
            ("cpu  10 0 5 100 3 0 0 0 7 7\n", Some((10, 100, 0))),
            ("cpux 1\ncpu 1 1 1 1\n", Some((1, 1, 0))),
            ("", None),
            ("cpu0 1 2 3 4\n", None),
            ("cpu a b c\n", None),
            ("cpu -1 2 3 4\n", None),
        ];
        for (text, want) in cases {
            let got = parse_proc_stat(text).ok().map(|s| (s.total.user, s.total.idle, s.cpus));
            assert_eq!(got, *want, "{text:?}");
        }
    }

    #[test]
    fn usage_table() {
        let t = |user, system, idle, iowait| CpuTimes { user, system, idle, iowait, ..CpuTimes::default() };
        let cases = [
            ("half busy", t(100, 0, 100, 0), t(150, 0, 150, 0), Some(0.5)),
            ("all idle", t(100, 0, 100, 0), t(100, 0, 200, 0), Some(0.0)),
            ("all busy", t(100, 0, 100, 0), t(150, 50, 100, 0), Some(1.0)),
            ("iowait is not busy", t(0, 0, 0, 0), t(25, 0, 50, 25), Some(0.25)),
            ("iowait went backwards", t(0, 0, 0, 50), t(50, 0, 50, 10), Some(0.5)),
            ("no time passed", t(1, 1, 1, 1), t(1, 1, 1, 1), None),
            ("counters went backwards", t(100, 100, 100, 100), t(1, 1, 1, 1), None),
        ];
        for (what, prev, cur, want) in cases {
            assert_eq!(cpu_usage(&prev, &cur), want, "{what}");
        }
    }
}
