//! The prober's configuration file. Identity comes from the file or the environment
//! (`NODE_NAME` from the Kubernetes downward API), the aggregator list from the file.

use std::path::PathBuf;

use mixmon_config::Secret;
use mixmon_model::{ProberId, ProberIdentity, Region};
use serde::Deserialize;

use crate::ProberError;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProberConfig {
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub aggregator: AggregatorConfig,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub debug: DebugConfig,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Stable prober id; defaults to the node name.
    pub id: Option<String>,
    /// The region this prober probes from (required).
    pub region: Option<String>,
    /// The node name; defaults to `$NODE_NAME`, then the host name.
    pub node: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Aggregator replicas (or one Kubernetes Service), tried in turn.
    #[serde(default = "default_aggregators")]
    pub addresses: Vec<String>,
    /// Bearer token the aggregator expects; prefer `token_file` or `MIXMON_AGGREGATOR__TOKEN`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self { addresses: default_aggregators(), token: None, token_file: None }
    }
}

fn default_aggregators() -> Vec<String> {
    vec!["http://127.0.0.1:50051".into()]
}

/// The result buffer. With `dir` set, every result is appended to a write-ahead log there
/// before it is sent, and a restarted prober resends what was not acknowledged; without it the
/// buffer lives in memory (the `mixmon-prober` binary defaults `dir` to
/// `/var/lib/mixmon/prober`; an embedding such as `mixmon up` chooses).
///
/// `fsync_interval_ms` is the durability trade-off: a killed prober loses nothing either way
/// (every append is written before `push` returns); a power loss or kernel crash can lose the
/// results of at most the last interval. `0` syncs every append.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Results held while unacknowledged; past this the oldest are dropped and counted.
    #[serde(default = "default_buffer_results")]
    pub max_results: usize,
    /// Directory of the write-ahead log; the log itself lives in `<dir>/<prober id>/`.
    pub dir: Option<PathBuf>,
    /// Bytes the log may take on disk; past this the oldest results are dropped and counted.
    #[serde(default = "default_buffer_max_bytes")]
    pub max_bytes: u64,
    /// Results older than this (relative to the newest) are dropped and counted.
    #[serde(default = "default_buffer_max_age_s")]
    pub max_age_s: u64,
    /// Size at which a log segment is closed and the next one started.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_results: default_buffer_results(),
            dir: None,
            max_bytes: default_buffer_max_bytes(),
            max_age_s: default_buffer_max_age_s(),
            segment_bytes: default_segment_bytes(),
            fsync_interval_ms: default_fsync_interval_ms(),
        }
    }
}

/// Where the `mixmon-prober` binary keeps its write-ahead log unless told otherwise.
pub const DEFAULT_BUFFER_DIR: &str = "/var/lib/mixmon/prober";
/// The smallest log bound accepted: a few segments' worth.
const MIN_BUFFER_BYTES: u64 = 256 * 1024;

fn default_buffer_results() -> usize {
    1_000_000
}

fn default_buffer_max_bytes() -> u64 {
    512 * 1024 * 1024
}

fn default_buffer_max_age_s() -> u64 {
    // Two days: well inside the store's 7-day batch watermark, so a resend is always
    // recognised, and inside the 15-day rollup retention.
    2 * 24 * 3600
}

fn default_segment_bytes() -> u64 {
    8 * 1024 * 1024
}

fn default_fsync_interval_ms() -> u64 {
    200
}

impl BufferConfig {
    pub fn options(&self) -> Result<crate::buffer::BufferOptions, ProberError> {
        if self.max_bytes < MIN_BUFFER_BYTES {
            return Err(ProberError::Config(format!("buffer.max_bytes must be at least {MIN_BUFFER_BYTES}")));
        }
        if self.max_age_s == 0 {
            return Err(ProberError::Config("buffer.max_age_s must be above 0".into()));
        }
        // At least four segments fit in the bound, so dropping the oldest frees a quarter.
        let segment_bytes = self.segment_bytes.clamp(4_096, self.max_bytes / 4);
        Ok(crate::buffer::BufferOptions {
            max_results: self.max_results,
            max_age: std::time::Duration::from_secs(self.max_age_s),
            max_bytes: self.max_bytes,
            wal: self.dir.as_ref().map(|dir| crate::wal::WalOptions {
                dir: dir.clone(),
                segment_bytes,
                fsync_interval: std::time::Duration::from_millis(self.fsync_interval_ms),
            }),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_results")]
    pub max_results: usize,
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_results: default_batch_results(), flush_interval_ms: default_flush_interval_ms() }
    }
}

fn default_batch_results() -> usize {
    1_000
}

fn default_flush_interval_ms() -> u64 {
    200
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// Append every result as a JSON line here: the ground truth tests compare SLIs with.
    pub ground_truth_file: Option<PathBuf>,
}

impl ProberConfig {
    pub fn identity(&self) -> Result<ProberIdentity, ProberError> {
        let node = self
            .identity
            .node
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown-node".into());
        let id = self.identity.id.clone().unwrap_or_else(|| node.clone());
        let region =
            self.identity.region.clone().ok_or_else(|| {
                ProberError::Config("identity.region is required (or MIXMON_IDENTITY__REGION)".into())
            })?;
        Ok(ProberIdentity {
            id: ProberId::new(id).map_err(|e| ProberError::Config(format!("identity.id: {e}")))?,
            region: Region::new(region).map_err(|e| ProberError::Config(format!("identity.region: {e}")))?,
            node,
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    pub fn aggregator_endpoints(&self) -> Result<Vec<tonic::transport::Endpoint>, ProberError> {
        if self.aggregator.addresses.is_empty() {
            return Err(ProberError::Config("aggregator.addresses must list at least one address".into()));
        }
        self.aggregator
            .addresses
            .iter()
            .map(|address| {
                tonic::transport::Endpoint::from_shared(address.clone())
                    .map_err(|e| ProberError::Config(format!("aggregator.addresses: {address:?}: {e}")))
            })
            .collect()
    }
}

impl AggregatorConfig {
    pub fn token(&self) -> Result<Option<Secret>, ProberError> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => Secret::from_file(path)
                .map(Some)
                .map_err(|e| ProberError::Config(format!("aggregator.token_file {}: {e}", path.display()))),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_refuses_typos() {
        let text = r#"
            [identity]
            id = "node-1"
            region = "eu-west"
            [aggregator]
            addresses = ["http://a:50051", "http://b:50051"]
            [batch]
            max_results = 10
        "#;
        let config: ProberConfig = mixmon_config::parse_with_env("p.toml", text, Vec::new()).unwrap();
        let identity = config.identity().unwrap();
        assert_eq!((identity.id.as_str(), identity.region.as_str()), ("node-1", "eu-west"));
        assert_eq!(config.aggregator_endpoints().unwrap().len(), 2);
        assert_eq!(config.batch.max_results, 10);
        let err = mixmon_config::parse_with_env::<ProberConfig>("p.toml", "[identity]\nregoin = \"x\"", Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("regoin"), "{err}");
    }

    #[test]
    fn the_buffer_section_sets_the_write_ahead_log_and_refuses_nonsense() {
        let text = "[buffer]\ndir = \"/tmp/wal\"\nmax_bytes = 1048576\nmax_age_s = 60\nfsync_interval_ms = 0\n";
        let config: ProberConfig = mixmon_config::parse_with_env("p.toml", text, Vec::new()).unwrap();
        let options = config.buffer.options().unwrap();
        let wal = options.wal.unwrap();
        assert_eq!(wal.dir, PathBuf::from("/tmp/wal"));
        assert_eq!(wal.fsync_interval, std::time::Duration::ZERO);
        assert_eq!(wal.segment_bytes, 1048576 / 4, "at least four segments fit in the bound");
        assert_eq!(options.max_age, std::time::Duration::from_secs(60));
        assert!(ProberConfig::default().buffer.options().unwrap().wal.is_none(), "memory only unless a dir is set");
        let config: ProberConfig =
            mixmon_config::parse_with_env("p.toml", "[buffer]\nmax_bytes = 10\n", Vec::new()).unwrap();
        assert!(config.buffer.options().unwrap_err().to_string().contains("buffer.max_bytes"));
    }

    #[test]
    fn region_is_required_and_validated() {
        let config = ProberConfig::default();
        assert!(config.identity().unwrap_err().to_string().contains("identity.region"));
        let mut config = ProberConfig::default();
        config.identity.region = Some("bad region".into());
        assert!(config.identity().is_err());
    }
}
