//! Disk use per mount: which mounts are real file systems (from `/proc/self/mounts`), and
//! their use from `statvfs` fields.

/// One line of `/proc/self/mounts`, octal escapes (`\040` for a space) decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Pseudo and container-layer file systems, whose "disk use" means nothing for the node: the
/// node exporter's default exclusion list.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Where container runtimes and the kubelet mount pods' volumes and image layers: a node has
/// hundreds of these (every secret is a tmpfs), and they are pod-level, not the node's disks.
const POD_VOLUME_PREFIXES: &[&str] =
    &["/var/lib/kubelet/pods/", "/var/lib/containerd/", "/run/containerd/", "/var/lib/docker/", "/run/k3s/"];

/// The real file systems in `/proc/self/mounts`, one per mount point (the last mount over a
/// point is the visible one), in order of first appearance. The root is kept whatever its
/// type: in a container it is an `overlay`, and still the disk the process writes to.
/// Malformed lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    // Mount point → index in `out`: a node can have thousands of mounts.
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let mount_point = unescape_octal(mount_point);
        let pseudo = PSEUDO_FS.contains(&fs_type) || POD_VOLUME_PREFIXES.iter().any(|p| mount_point.starts_with(p));
        if pseudo && mount_point != "/" {
            continue;
        }
        let mount = Mount { device: unescape_octal(device), mount_point, fs_type: fs_type.to_owned() };
        match index.get(&mount.mount_point).and_then(|&i| out.get_mut(i)) {
            Some(existing) => *existing = mount,
            None => {
                index.insert(mount.mount_point.clone(), out.len());
                out.push(mount);
            }
        }
    }
    out
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash in paths). Anything
/// that is not a valid three-digit octal escape is kept as written.
fn unescape_octal(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(&[d1, d2, d3]) = bytes.get(i + 1..i + 4) {
                let octal = |d: u8| (b'0'..=b'7').contains(&d).then(|| u32::from(d - b'0'));
                if let (Some(a), Some(b2), Some(c)) = (octal(d1), octal(d2), octal(d3)) {
                    if let Ok(byte) = u8::try_from(a * 64 + b2 * 8 + c) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `statvfs` fields disk use is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatVfsFields {
    /// `f_frsize`: the unit of the block counts.
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks available to unprivileged users (less the root reserve).
    pub blocks_available: u64,
}

/// One mount's use, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    pub mount: Mount,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

impl DiskUsage {
    /// From `statvfs` fields; `None` if they are inconsistent (more free than total).
    pub fn from_statvfs(mount: Mount, st: StatVfsFields) -> Option<DiskUsage> {
        if st.blocks_free > st.blocks || st.blocks_available > st.blocks_free {
            return None;
        }
        let bytes = |blocks: u64| blocks.saturating_mul(st.fragment_size);
        Some(DiskUsage {
            mount,
            total_bytes: bytes(st.blocks),
            used_bytes: bytes(st.blocks - st.blocks_free),
            available_bytes: bytes(st.blocks_available),
        })
    }

    /// Use as `df` reports it: `used / (used + available)`, so a disk whose root reserve is
    /// all that is left reads 100 %. `None` for an empty file system.
    pub fn used_fraction(&self) -> Option<f64> {
        // In f64 so that the sum cannot overflow; byte counts of real disks fit its 53 bits.
        #[allow(clippy::cast_precision_loss)]
        let (used, available) = (self.used_bytes as f64, self.available_bytes as f64);
        (used + available > 0.0).then(|| used / (used + available))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture() {
        let mounts = parse_mounts(include_str!("../tests/fixtures/mounts.txt"));
        let got: Vec<(&str, &str, &str)> =
            mounts.iter().map(|m| (m.device.as_str(), m.mount_point.as_str(), m.fs_type.as_str())).collect();
        assert_eq!(
            got,
            [("/dev/vda", "/", "ext4"), ("tmpfs", "/dev/shm", "tmpfs"), ("/dev/vdb", "/var/lib/mixer data", "xfs")],
        );
    }

    #[test]
    fn unescape_table() {
        let cases = [
            ("/plain", "/plain"),
            ("/a\\040b", "/a b"),
            ("/tab\\011x", "/tab\tx"),
            ("/back\\134slash", "/back\\slash"),
            ("/short\\04", "/short\\04"),
            ("/not\\999octal", "/not\\999octal"),
            ("/too\\777big", "/too\\777big"),
            ("\\", "\\"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape_octal(raw), want, "{raw}");
        }
    }

    #[test]
    fn usage_table() {
        let m = || Mount { device: "d".into(), mount_point: "/".into(), fs_type: "ext4".into() };
        let f = |fragment_size, blocks, blocks_free, blocks_available| StatVfsFields {
            fragment_size,
            blocks,
            blocks_free,
            blocks_available,
        };
        let cases = [
            ("half used", f(4096, 100, 50, 50), Some((409_600, 204_800, Some(0.5)))),
            ("root reserve left only", f(1024, 100, 5, 0), Some((102_400, 97_280, Some(1.0)))),
            ("empty fs", f(4096, 0, 0, 0), Some((0, 0, None))),
            ("free above total", f(4096, 10, 20, 5), None),
            ("available above free", f(4096, 10, 2, 5), None),
            ("huge", f(u64::MAX, 2, 1, 1), Some((u64::MAX, u64::MAX, Some(0.5)))),
        ];
        for (what, st, want) in cases {
            let got = DiskUsage::from_statvfs(m(), st).map(|d| (d.total_bytes, d.used_bytes, d.used_fraction()));
            assert_eq!(got, want, "{what}");
        }
    }
}
