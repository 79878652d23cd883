//! Network throughput from `/proc/net/dev`: per-interface byte and packet counters, and rates
//! between two samples that survive counter wraps and interface re-creation.

use crate::HostError;

/// One interface's cumulative counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetDev {
    pub interface: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `iface: 16 numbers` per interface (the name
/// and the first number may touch: `eth0:123`).
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDev>, HostError> {
    let err = |reason: String| HostError::Parse { file: "/proc/net/dev", reason };
    let mut out = Vec::new();
    for line in text.lines() {
        // The header lines have `|` and no `:`.
        let Some((name, rest)) = line.split_once(':') else { continue };
        let interface = name.trim();
        let numbers: Result<Vec<u64>, _> = rest.split_ascii_whitespace().map(str::parse::<u64>).collect();
        let numbers = numbers.map_err(|_| err(format!("{interface}: a column is not a number")))?;
        let [rx_bytes, rx_packets, rx_errors, rx_dropped, _, _, _, _, tx_bytes, tx_packets, tx_errors, tx_dropped, ..] =
            numbers.as_slice()
        else {
            return Err(err(format!("{interface}: {} columns, expected 16", numbers.len())));
        };
        out.push(NetDev {
            interface: interface.to_owned(),
            rx_bytes: *rx_bytes,
            rx_packets: *rx_packets,
            rx_errors: *rx_errors,
            rx_dropped: *rx_dropped,
            tx_bytes: *tx_bytes,
            tx_packets: *tx_packets,
            tx_errors: *tx_errors,
            tx_dropped: *tx_dropped,
        });
    }
    Ok(out)
}

/// How much a cumulative counter grew from `prev` to `cur`, never negative, never giant.
///
/// A smaller `cur` is either a 32-bit wrap (some drivers still keep 32-bit counters) or a
/// reset (the interface was re-created, as a pod's veth is). It is taken as a wrap only when
/// `prev` was in the top quarter of the 32-bit range and `cur` in the bottom quarter, where a
/// reset is the unlikely reading; anything else is a reset and counts `cur`, what was counted
/// since. Taking a reset for a wrap would invent up to 4 GiB of traffic.
pub fn counter_increase(prev: u64, cur: u64) -> u64 {
    const SPAN: u64 = 1 << 32;
    const QUARTER: u64 = SPAN / 4;
    if cur >= prev {
        cur - prev
    } else if (SPAN - QUARTER..SPAN).contains(&prev) && cur < QUARTER {
        SPAN - prev + cur
    } else {
        cur
    }
}

/// One interface's throughput over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct NetRate {
    pub interface: String,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// Rates for every interface present in both samples, over `elapsed_s` seconds (the caller's
/// clock). Nothing when `elapsed_s` is not a positive finite number. An interface in only one
/// sample has no rate yet (new) or any more (gone).
pub fn net_rates(prev: &[NetDev], cur: &[NetDev], elapsed_s: f64) -> Vec<NetRate> {
    if !(elapsed_s.is_finite() && elapsed_s > 0.0) {
        return Vec::new();
    }
    // Byte counts over one interval fit an f64's 53 bits.
    #[allow(clippy::cast_precision_loss)]
    let per_s = |p: u64, c: u64| counter_increase(p, c) as f64 / elapsed_s;
    cur.iter()
        .filter_map(|c| {
            let p = prev.iter().find(|p| p.interface == c.interface)?;
            Some(NetRate {
                interface: c.interface.clone(),
                rx_bytes_per_s: per_s(p.rx_bytes, c.rx_bytes),
                tx_bytes_per_s: per_s(p.tx_bytes, c.tx_bytes),
                rx_errors: counter_increase(p.rx_errors, c.rx_errors),
                tx_errors: counter_increase(p.tx_errors, c.tx_errors),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_fixture() {
        let devs = parse_net_dev(include_str!("../tests/fixtures/net_dev.txt")).expect("parses");
        let names: Vec<&str> = devs.iter().map(|d| d.interface.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        let eth0 = &devs[3];
        assert_eq!(
            (eth0.rx_bytes, eth0.rx_packets, eth0.tx_bytes, eth0.tx_packets),
            (245_093_556, 10_281, 648_137, 5946)
        );
    }

    #[test]
    fn parse_table() {
        let header = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n";
        // (body, Some(interfaces as (name, rx, tx)) or None for an error)
        type Case<'a> = (&'a str, Option<Vec<(&'a str, u64, u64)>>);
        let cases: &[Case<'_>] = &[
            ("", Some(vec![])),
            ("eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", Some(vec![("eth0", 1, 9)])),
            ("  veth a:1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n", Some(vec![("veth a", 1, 2)])),
            ("eth0: 1 2 3\n", None),
            ("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", None),
            ("eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", None),
        ];
        for (body, want) in cases {
            let text = format!("{header}{body}");
            let got = parse_net_dev(&text)
                .ok()
                .map(|d| d.iter().map(|d| (d.interface.clone(), d.rx_bytes, d.tx_bytes)).collect::<Vec<_>>());
            let want = want.as_ref().map(|w| w.iter().map(|(n, r, t)| ((*n).to_owned(), *r, *t)).collect::<Vec<_>>());
            assert_eq!(got, want, "{body:?}");
        }
    }

    #[test]
    fn increase_table() {
        const SPAN: u64 = 1 << 32;
        let cases = [
            ("normal", 100, 250, 150),
            ("unchanged", 7, 7, 0),
            ("32-bit wrap", SPAN - 100, 50, 150),
            ("reset to zero", 1_000_000, 0, 0),
            ("reset, small prev: not a wrap", 1000, 10, 10),
            ("reset of a 64-bit counter", 10 * SPAN, 5, 5),
            ("reset landing high", SPAN - 100, SPAN / 2, SPAN / 2),
        ];
        for (what, prev, cur, want) in cases {
            assert_eq!(counter_increase(prev, cur), want, "{what}");
        }
    }

    #[test]
    fn rates_table() {
        let dev =
            |name: &str, rx, tx| NetDev { interface: name.to_owned(), rx_bytes: rx, tx_bytes: tx, ..NetDev::default() };
        let prev = [dev("eth0", 1000, 500), dev("veth1", 5_000_000, 10)];
        let cur = [dev("eth0", 3000, 1500), dev("veth1", 100, 20), dev("veth2", 9, 9)];
        let rates = net_rates(&prev, &cur, 2.0);
        let got: Vec<(&str, f64, f64)> =
            rates.iter().map(|r| (r.interface.as_str(), r.rx_bytes_per_s, r.tx_bytes_per_s)).collect();
        assert_eq!(got, [("eth0", 1000.0, 500.0), ("veth1", 50.0, 5.0)]);
        assert!(net_rates(&prev, &cur, 0.0).is_empty());
        assert!(net_rates(&prev, &cur, f64::NAN).is_empty());
    }

    proptest! {
        #[test]
        fn increase_is_never_more_than_a_wrap_or_the_new_value(prev in any::<u64>(), cur in any::<u64>()) {
            let inc = counter_increase(prev, cur);
            prop_assert!(inc == cur.wrapping_sub(prev) || inc <= cur);
            prop_assert!(inc <= cur.max(1 << 31) || cur >= prev);
        }
    }
}
