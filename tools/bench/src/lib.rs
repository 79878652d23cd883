//! Shared helpers for the benchmark binaries in `src/bin/`, one per `scripts/bench.sh NAME`.
//! Every binary prints its figures one a line as `name: value`.

/// Prints one figure in the `name: value` form every benchmark uses.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    println!("{name}: {value}");
}

/// Resident memory of a process in MiB, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
