//! Sampling the prober's node: CPU, memory, network and disks from `/proc` (`mixmon_hostinfo`),
//! off the async runtime and under a timeout (a `statvfs` on a dead mount can block). The
//! other source, the kubelet, is `kubelet.rs`.

use std::path::PathBuf;
use std::time::Duration;

use mixmon_hostinfo::{counter_increase, cpu_usage, HostSample};
use mixmon_model::{DiskSample, EntityName, NodeSample, Record};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{unix_ms, Emit, RateLimitedWarn};

/// The longest a mount point may be in a [`DiskSample`].
const MAX_MOUNT_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub interval: Duration,
    /// Where the figures come from.
    pub source: NodeSource,
    /// The node's `/proc`, for [`NodeSource::Proc`].
    pub proc_root: PathBuf,
}

/// Where a node's figures come from: `/proc` and `statvfs` on the node itself, or its kubelet's
/// stats summary through the Kubernetes API (`kubelet.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeSource {
    #[default]
    Proc,
    Kubelet,
}

impl NodeSettings {
    /// A sample that takes longer than this is abandoned (and not retried while it runs).
    fn timeout(&self) -> Duration {
        self.interval.min(Duration::from_secs(10))
    }
}

/// The node sample for `cur`, with rates against `prev` (the previous sample, if any).
pub fn node_sample(
    prev: Option<&HostSample>,
    cur: &HostSample,
    node: EntityName,
    at_ms: i64,
    weight_ms: u32,
) -> NodeSample {
    let (mut rx, mut tx) = (0u64, 0u64);
    if let Some(prev) = prev {
        for dev in cur.network.iter().filter(|d| d.interface != "lo") {
            if let Some(before) = prev.network.iter().find(|p| p.interface == dev.interface) {
                rx = rx.saturating_add(counter_increase(before.rx_bytes, dev.rx_bytes));
                tx = tx.saturating_add(counter_increase(before.tx_bytes, dev.tx_bytes));
            }
        }
    }
    NodeSample {
        node,
        at_ms,
        weight_ms,
        cpu_busy_ratio: prev.and_then(|p| cpu_usage(&p.cpu.total, &cur.cpu.total)),
        memory_used_bytes: cur.memory.total_bytes.saturating_sub(cur.memory.available_bytes),
        memory_total_bytes: cur.memory.total_bytes,
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        disks: cur
            .disks
            .iter()
            .map(|d| DiskSample {
                mount: printable(&d.mount.mount_point),
                used_bytes: d.used_bytes,
                total_bytes: d.total_bytes,
            })
            .collect(),
    }
}

/// `text` without control characters, cut to [`MAX_MOUNT_BYTES`] at a character boundary.
fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_MOUNT_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Samples the node every interval until `stop` turns true.
pub async fn run(settings: NodeSettings, node: EntityName, emit: Emit, mut stop: watch::Receiver<bool>) {
    let weight_ms = u32::try_from(settings.interval.as_millis()).unwrap_or(u32::MAX);
    let mut warn = RateLimitedWarn::new(Duration::from_secs(300));
    let mut prev: Option<HostSample> = None;
    // A sample still running after its timeout: no second one is started beside it.
    let mut stuck: Option<JoinHandle<Result<HostSample, mixmon_hostinfo::HostError>>> = None;
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut handle = match stuck.take() {
            Some(h) if !h.is_finished() => {
                stuck = Some(h);
                tracing::debug!("the previous node sample is still running; skipping this one");
                continue;
            }
            // A late result is stale: dropped, and a fresh sample is taken.
            _ => {
                let root = settings.proc_root.clone();
                tokio::task::spawn_blocking(move || mixmon_hostinfo::sample_from(&root))
            }
        };
        let at_ms = unix_ms();
        let error = match tokio::time::timeout(settings.timeout(), &mut handle).await {
            Ok(Ok(Ok(cur))) => {
                emit(Record::Node(node_sample(prev.as_ref(), &cur, node.clone(), at_ms, weight_ms)));
                prev = Some(cur);
                continue;
            }
            Ok(Ok(Err(error))) => error.to_string(),
            Ok(Err(join)) => format!("the sampling task failed: {join}"),
            Err(_) => {
                stuck = Some(handle);
                format!("timed out after {:?}", settings.timeout())
            }
        };
        tracing::debug!(%error, "node sample failed");
        if warn.allow() {
            tracing::warn!(%error, proc_root = %settings.proc_root.display(), "node sample failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixmon_hostinfo::{parse_meminfo, parse_net_dev, parse_proc_stat, DiskUsage, Mount, StatVfsFields};
    use std::sync::Arc;

    fn host(user: u64, idle: u64, eth_rx: u64, eth_tx: u64, lo: u64) -> HostSample {
        let stat = format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {user} 0 0 {idle} 0 0 0 0 0 0\n");
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         2000000 kB\nMemAvailable:    6000000 kB\n";
        let net = format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
             \x20   lo: {lo} 10 0 0 0 0 0 0 {lo} 10 0 0 0 0 0 0\n\
             \x20 eth0: {eth_rx} 10 0 0 0 0 0 0 {eth_tx} 10 0 0 0 0 0 0\n"
        );
        let mount = Mount { device: "/dev/sda1".into(), mount_point: "/".into(), fs_type: "ext4".into() };
        let fields = StatVfsFields { fragment_size: 4096, blocks: 1000, blocks_free: 400, blocks_available: 300 };
        HostSample {
            cpu: parse_proc_stat(&stat).expect("stat parses"),
            memory: parse_meminfo(meminfo).expect("meminfo parses"),
            network: parse_net_dev(&net).expect("net/dev parses"),
            disks: DiskUsage::from_statvfs(mount, fields).into_iter().collect(),
            disks_skipped: 0,
        }
    }

    #[test]
    fn first_sample_has_no_rates_then_rates_over_non_loopback() {
        let node = EntityName::new("node-a").expect("valid");
        let first = host(100, 900, 1_000, 2_000, 50);
        let sample = node_sample(None, &first, node.clone(), 1, 15_000);
        assert_eq!(sample.cpu_busy_ratio, None);
        assert_eq!((sample.net_rx_bytes, sample.net_tx_bytes), (0, 0));
        assert_eq!((sample.memory_used_bytes, sample.memory_total_bytes), (10_000_000 * 1024, 16_000_000 * 1024));
        assert_eq!(sample.disks.len(), 1);
        assert_eq!((sample.disks[0].mount.as_str(), sample.disks[0].total_bytes), ("/", 4096 * 1000));
        assert_eq!(sample.disks[0].used_bytes, 4096 * 600);

        // 30 busy jiffies of 100; eth0 +500/+700 bytes, loopback +1M ignored.
        let second = host(130, 970, 1_500, 2_700, 1_000_050);
        let sample = node_sample(Some(&first), &second, node.clone(), 2, 15_000);
        assert_eq!(sample.cpu_busy_ratio, Some(0.3));
        assert_eq!((sample.net_rx_bytes, sample.net_tx_bytes), (500, 700));

        // eth0 re-created (counters back to small values): what it counted since, not negative.
        let third = host(160, 1_040, 100, 200, 1_000_060);
        let sample = node_sample(Some(&second), &third, node, 3, 15_000);
        assert_eq!((sample.net_rx_bytes, sample.net_tx_bytes), (100, 200));
    }

    #[test]
    fn mount_points_are_printable_and_bounded() {
        assert_eq!(printable("/var/lib/kubelet"), "/var/lib/kubelet");
        assert_eq!(printable("/a\nb\t"), "/ab");
        let long = "é".repeat(200);
        let cut = printable(&long);
        assert!(cut.len() <= MAX_MOUNT_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[tokio::test]
    async fn samples_a_proc_tree_and_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc = dir.path();
        std::fs::create_dir_all(proc.join("net")).expect("mkdir");
        std::fs::create_dir_all(proc.join("self")).expect("mkdir");
        std::fs::write(proc.join("stat"), "cpu  1 0 0 9 0 0 0 0 0 0\n").expect("write");
        std::fs::write(proc.join("meminfo"), "MemTotal: 2000 kB\nMemFree: 1000 kB\nMemAvailable: 1500 kB\n")
            .expect("write");
        std::fs::write(proc.join("net/dev"), "h1\nh2\n  eth0: 1 1 0 0 0 0 0 0 2 2 0 0 0 0 0 0\n").expect("write");
        std::fs::write(proc.join("self/mounts"), "").expect("write");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let emit: Emit = {
            let seen = seen.clone();
            Arc::new(move |r| seen.lock().expect("lock").push(r))
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let settings = NodeSettings {
            interval: Duration::from_millis(20),
            source: NodeSource::Proc,
            proc_root: proc.to_path_buf(),
        };
        let task = tokio::spawn(run(settings, EntityName::new("node-a").expect("valid"), emit, stop_rx));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.lock().expect("lock").len() < 2 {
            assert!(std::time::Instant::now() < deadline, "no node samples");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).expect("send");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("joins");
        let seen = seen.lock().expect("lock");
        let Some(Record::Node(first)) = seen.first() else { panic!("not a node sample: {seen:?}") };
        assert_eq!((first.memory_used_bytes, first.memory_total_bytes), (500 * 1024, 2000 * 1024));
        assert_eq!(first.node.as_str(), "node-a");
    }
}
