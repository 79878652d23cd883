//! Node sampling for the prober: CPU, memory, network throughput and disk use per mount.
//!
//! The parsers ([`parse_proc_stat`], [`parse_meminfo`], [`parse_net_dev`], [`parse_mounts`])
//! and the rate arithmetic ([`cpu_usage`], [`net_rates`], [`counter_increase`]) are pure and
//! tested against fixture texts. [`sample`] is the only I/O: it reads this machine's `/proc`
//! and calls `statvfs(2)` once per mount. Time is a parameter (`elapsed_s`), never read here.
//!
//! `statvfs` on a dead network mount can block; callers run [`sample`] off the async runtime
//! (`spawn_blocking`) and under a timeout.

mod cpu;
mod disk;
mod mem;
mod net;

use std::io::Read as _;
use std::path::Path;

pub use cpu::{cpu_usage, parse_proc_stat, CpuStat, CpuTimes};
pub use disk::{parse_mounts, DiskUsage, Mount, StatVfsFields};
pub use mem::{parse_meminfo, MemInfo};
pub use net::{counter_increase, net_rates, parse_net_dev, NetDev, NetRate};

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing {file}: {reason}")]
    Parse { file: &'static str, reason: String },
}

/// One sample of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSample {
    pub cpu: CpuStat,
    pub memory: MemInfo,
    pub network: Vec<NetDev>,
    pub disks: Vec<DiskUsage>,
    /// Mounts whose `statvfs` failed (permission, vanished mount): skipped, counted.
    pub disks_skipped: usize,
}

/// `/proc` files are small; this bounds a read of a corrupt or hostile one.
const MAX_PROC_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn read_proc(path: &Path) -> Result<String, HostError> {
    let err = |source| HostError::Read { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut text = String::new();
    file.take(MAX_PROC_FILE_BYTES).read_to_string(&mut text).map_err(err)?;
    Ok(text)
}

/// Samples this machine: `/proc/stat`, `/proc/meminfo`, `/proc/net/dev`, `/proc/self/mounts`
/// and `statvfs` of each real mount.
pub fn sample() -> Result<HostSample, HostError> {
    sample_from(Path::new("/proc"))
}

/// [`sample`] with `/proc` somewhere else: a node's `/proc` mounted into the prober's
/// container at `/host/proc`. Mount points are then paths in the host's namespace, so disk use
/// is only measured for those visible here too.
pub fn sample_from(proc_root: &Path) -> Result<HostSample, HostError> {
    let cpu = parse_proc_stat(&read_proc(&proc_root.join("stat"))?)?;
    let memory = parse_meminfo(&read_proc(&proc_root.join("meminfo"))?)?;
    let network = parse_net_dev(&read_proc(&proc_root.join("net/dev"))?)?;
    let mounts = parse_mounts(&read_proc(&proc_root.join("self/mounts"))?);
    let mut disks = Vec::new();
    let mut disks_skipped = 0;
    for mount in mounts {
        match rustix::fs::statvfs(mount.mount_point.as_str()) {
            Ok(st) => {
                let fields = StatVfsFields {
                    fragment_size: st.f_frsize,
                    blocks: st.f_blocks,
                    blocks_free: st.f_bfree,
                    blocks_available: st.f_bavail,
                };
                // A zero-sized file system (an empty tmpfs, an autofs placeholder) has no
                // use to report.
                if let Some(usage) = DiskUsage::from_statvfs(mount, fields).filter(|d| d.total_bytes > 0) {
                    disks.push(usage);
                }
            }
            Err(_) => disks_skipped += 1,
        }
    }
    Ok(HostSample { cpu, memory, network, disks, disks_skipped })
}
