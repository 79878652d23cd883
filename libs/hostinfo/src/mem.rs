//! Memory use from `/proc/meminfo`.

use crate::HostError;

/// The node's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total_bytes: u64,
    /// What could be given to a new process without swapping (`MemAvailable`, or on kernels
    /// without it `MemFree + Buffers + Cached`).
    pub available_bytes: u64,
    pub free_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

impl MemInfo {
    /// In use: total less available (page cache that can be dropped is not "used").
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }

    /// `used / total`, 0 to 1; `None` without a total.
    pub fn used_fraction(&self) -> Option<f64> {
        // Byte counts of real machines fit an f64's 53 bits.
        #[allow(clippy::cast_precision_loss)]
        (self.total_bytes > 0).then(|| (self.used_bytes() as f64 / self.total_bytes as f64).clamp(0.0, 1.0))
    }
}

/// Parses `/proc/meminfo` (`Key:   value kB` lines; unknown keys ignored).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, HostError> {
    let err = |reason: String| HostError::Parse { file: "/proc/meminfo", reason };
    let mut total = None;
    let (mut available, mut free, mut buffers, mut cached) = (None, None, None, None);
    let (mut swap_total, mut swap_free) = (0, 0);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let mut words = rest.split_ascii_whitespace();
        let number = words.next().and_then(|n| n.parse::<u64>().ok());
        let unit = words.next();
        let Some(number) = number else { continue };
        let bytes = match unit {
            Some("kB") => number.saturating_mul(1024),
            None => number,
            Some(other) => return Err(err(format!("{key}: unknown unit {other:?}"))),
        };
        match key {
            "MemTotal" => total = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "MemFree" => free = Some(bytes),
            "Buffers" => buffers = Some(bytes),
            "Cached" => cached = Some(bytes),
            "SwapTotal" => swap_total = bytes,
            "SwapFree" => swap_free = bytes,
            _ => {}
        }
    }
    let total_bytes = total.ok_or_else(|| err("no MemTotal".to_owned()))?;
    let free_bytes = free.ok_or_else(|| err("no MemFree".to_owned()))?;
    let available_bytes = available
        .unwrap_or_else(|| free_bytes.saturating_add(buffers.unwrap_or(0)).saturating_add(cached.unwrap_or(0)))
        .min(total_bytes);
    Ok(MemInfo { total_bytes, available_bytes, free_bytes, swap_total_bytes: swap_total, swap_free_bytes: swap_free })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture() {
        let m = parse_meminfo(include_str!("../tests/fixtures/meminfo.txt")).expect("parses");
        assert_eq!(m.total_bytes, 24_684_084 * 1024);
        assert!(m.available_bytes <= m.total_bytes && m.free_bytes <= m.total_bytes);
        assert!(m.used_fraction().is_some_and(|f| (0.0..=1.0).contains(&f)));
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            ("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 400 kB\n", Some((1_024_000, 614_400))),
            // No MemAvailable (old kernel): free + buffers + cached.
            ("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n", Some((1_024_000, 614_400))),
            // Available above total (a racy read) is capped.
            ("MemTotal: 10 kB\nMemFree: 1 kB\nMemAvailable: 20 kB\n", Some((10_240, 0))),
            ("HugePages_Total: 0\nMemTotal: 1 kB\nMemFree: 1 kB\n", Some((1024, 0))),
            ("MemFree: 100 kB\n", None),
            ("MemTotal: 100 kB\n", None),
            ("MemTotal: 100 MB\nMemFree: 1 kB\n", None),
            ("garbage", None),
        ];
        for (text, want) in cases {
            let got = parse_meminfo(text).ok().map(|m| (m.total_bytes, m.used_bytes()));
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
