//! [`mixmon_hostinfo::sample`] against this machine's real `/proc`: every value in a sane range.

use std::time::{Duration, Instant};

use mixmon_hostinfo::{cpu_usage, net_rates, sample};

#[test]
fn samples_this_machine() {
    let started = Instant::now();
    let first = sample().expect("first sample");
    // Burn a little CPU so the interval has jiffies to count.
    let mut x = 0u64;
    while started.elapsed() < Duration::from_millis(150) {
        // `black_box` keeps the loop's work from being optimised away; no assertion needed.
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    let second = sample().expect("second sample");
    let elapsed = started.elapsed().as_secs_f64();

    assert!(second.cpu.cpus >= 1);
    let usage = cpu_usage(&first.cpu.total, &second.cpu.total);
    assert!(usage.is_none_or(|u| (0.0..=1.0).contains(&u)), "{usage:?}");

    let mem = second.memory;
    assert!(mem.total_bytes > 64 * 1024 * 1024, "{mem:?}");
    assert!(mem.used_bytes() <= mem.total_bytes);
    assert!(mem.used_fraction().is_some_and(|f| f > 0.0 && f <= 1.0), "{mem:?}");

    assert!(second.network.iter().any(|d| d.interface == "lo"), "{:?}", second.network);
    for rate in net_rates(&first.network, &second.network, elapsed) {
        // Loopback on a busy test machine stays well under 100 GB/s.
        assert!(rate.rx_bytes_per_s >= 0.0 && rate.rx_bytes_per_s < 1e11, "{rate:?}");
        assert!(rate.tx_bytes_per_s >= 0.0 && rate.tx_bytes_per_s < 1e11, "{rate:?}");
    }

    let root = second.disks.iter().find(|d| d.mount.mount_point == "/").expect("the root file system");
    assert!(root.total_bytes > 0 && root.used_bytes <= root.total_bytes, "{root:?}");
    assert!(root.used_fraction().is_some_and(|f| (0.0..=1.0).contains(&f)));
    for disk in &second.disks {
        assert!(disk.used_bytes <= disk.total_bytes && disk.available_bytes <= disk.total_bytes, "{disk:?}");
    }
}
