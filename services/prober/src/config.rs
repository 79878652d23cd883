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
    /// How probes are sent (`[probe]`).
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Scraping the mixer pods' `/metrics` (off unless present).
    pub scrape: Option<ScrapeConfig>,
    /// Sampling this node (off unless present).
    pub node: Option<NodeConfig>,
    /// Sampling the pods on this node (off unless present; needs `[scrape.kubernetes]`).
    pub pods: Option<PodsConfig>,
    /// The prober's own `GET /healthz` and `GET /readyz` (off unless present).
    pub health: Option<HealthConfig>,
}

/// `[health]`: where the prober answers Kubernetes' liveness and readiness probes
/// (`crate::health`). The answers say nothing but alive or ready, so no token is asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// An IP address and port, e.g. `"0.0.0.0:9102"` (`MIXMON_HEALTH__LISTEN`).
    pub listen: String,
}

impl HealthConfig {
    pub fn listen(&self) -> Result<std::net::SocketAddr, ProberError> {
        let text = self.listen.trim();
        text.parse().map_err(|_| {
            ProberError::Config(format!(
                "health.listen: {text:?} is not an IP address with a port (e.g. \"0.0.0.0:9102\")"
            ))
        })
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Stable prober id; defaults to the node name.
    pub id: Option<String>,
    /// The region this prober probes from. Absent with `[scrape.kubernetes]` set: its node's
    /// `topology.kubernetes.io/region` label, read at start; absent otherwise: refused.
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

/// Far above what one aggregator batch takes (it caps batches itself); a typo beyond it is a
/// mistake, not a wish.
const MAX_BATCH_RESULTS: usize = 100_000;

impl BatchConfig {
    pub fn validate(&self) -> Result<(), ProberError> {
        if !(1..=MAX_BATCH_RESULTS).contains(&self.max_results) {
            return Err(ProberError::Config(format!(
                "batch.max_results must be in 1..={MAX_BATCH_RESULTS}, not {}",
                self.max_results
            )));
        }
        if !(10..=60_000).contains(&self.flush_interval_ms) {
            return Err(ProberError::Config(format!(
                "batch.flush_interval_ms must be in 10..=60000 (a minute), not {}",
                self.flush_interval_ms
            )));
        }
        Ok(())
    }
}

fn default_batch_results() -> usize {
    1_000
}

fn default_flush_interval_ms() -> u64 {
    200
}

/// `[probe]`: how every probe connection is made.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The local address every probe connection (HTTP(S), TCP, gRPC, DNS over UDP) is made
    /// from, as the blackbox exporter's `source_ip_address`; it must be an address of this
    /// host. Absent or empty: the kernel chooses by route.
    pub source_ip: Option<String>,
}

impl ProbeConfig {
    /// `source_ip` parsed; whether it is local is checked by [`ProberConfig::probe_source_ip`].
    pub fn source_ip(&self) -> Result<Option<std::net::IpAddr>, ProberError> {
        match self.source_ip.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ProberError::Config(format!("probe.source_ip: {text:?} is not an IP address (e.g. \"10.0.0.5\")"))
            }),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// Append every result as a JSON line here: the ground truth tests compare SLIs with.
    pub ground_truth_file: Option<PathBuf>,
}

impl ProberConfig {
    /// The identity with its region from the file or the environment; a configuration that
    /// leaves the region to the node's label is refused here (see [`ProberConfig::prepare`]).
    pub fn identity(&self) -> Result<ProberIdentity, ProberError> {
        let identity = self.prepared_identity()?;
        match identity.region.clone() {
            RegionSource::Configured(region) => Ok(identity.with_region(region)),
            RegionSource::NodeLabel => {
                Err(ProberError::Config("identity.region is required (or MIXMON_IDENTITY__REGION)".into()))
            }
        }
    }

    /// The identity as far as the configuration fixes it: the region from the file or the
    /// environment, or, when neither sets it and `[scrape.kubernetes]` gives an API to ask,
    /// from the node's label at start.
    pub fn prepared_identity(&self) -> Result<PreparedIdentity, ProberError> {
        let node = self
            .identity
            .node
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown-node".into());
        let id = self.identity.id.clone().unwrap_or_else(|| node.clone());
        let region = match self.identity.region.clone() {
            Some(region) => {
                let region = Region::new(region).map_err(|e| ProberError::Config(format!("identity.region: {e}")))?;
                if region.is_reserved() {
                    // The aggregator would refuse it at register; say so before starting.
                    return Err(ProberError::Config(format!(
                        "identity.region: {region} is reserved (region names must not start with '_')"
                    )));
                }
                RegionSource::Configured(region)
            }
            None if self.scrape.as_ref().is_some_and(|s| s.kubernetes.is_some()) => RegionSource::NodeLabel,
            None => {
                return Err(ProberError::Config(format!(
                    "identity.region is required (or MIXMON_IDENTITY__REGION), unless [scrape.kubernetes] is \
                     configured: then it is the node's {} label",
                    crate::observe::region::REGION_LABEL
                )))
            }
        };
        Ok(PreparedIdentity {
            id: ProberId::new(id).map_err(|e| ProberError::Config(format!("identity.id: {e}")))?,
            region,
            node,
        })
    }

    /// `[probe] source_ip`, parsed and checked the way the prober checks it at start: a
    /// socket must bind to it, so an address of another host fails here, naming the setting.
    pub fn probe_source_ip(&self) -> Result<Option<std::net::IpAddr>, ProberError> {
        let Some(ip) = self.probe.source_ip()? else { return Ok(None) };
        crate::checks::check_source_ip(ip).map_err(|e| {
            ProberError::Config(format!(
                "probe.source_ip: cannot send probes from {ip}: {e} (it must be an address of this host)"
            ))
        })?;
        Ok(Some(ip))
    }

    /// Everything the prober refuses at start that does not depend on the host it runs on
    /// (whether `probe.source_ip` is an address of this host is checked at start only): the
    /// one path of its start and of `mixmon validate --prober`.
    pub fn prepare(&self) -> Result<Prepared, ProberError> {
        self.batch.validate()?;
        Ok(Prepared {
            identity: self.prepared_identity()?,
            aggregators: self.aggregator_endpoints()?,
            token: self.aggregator.token()?,
            buffer: self.buffer.options()?,
            source_ip: self.probe.source_ip()?,
            observe: self.observe()?,
            health: self.health.as_ref().map(HealthConfig::listen).transpose()?,
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
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    return Err(ProberError::Config(format!(
                        "aggregator.addresses: {address:?} needs a scheme: http://{address} or https://{address}"
                    )));
                }
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

/// `[scrape]`: the mixer pods to scrape and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    #[serde(default = "default_observe_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_scrape_timeout_ms")]
    pub timeout_ms: u64,
    /// Pods named in the file, scraped besides the discovered ones.
    #[serde(default)]
    pub targets: Vec<StaticTargetConfig>,
    /// Finds the mixer pods on this node through the Kubernetes API.
    pub kubernetes: Option<KubernetesConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTargetConfig {
    pub pod: String,
    pub url: String,
}

/// `[scrape.kubernetes]`: the API to ask, and which pods are mixers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Absent: the in-cluster configuration (service account token and CA).
    pub api_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_label_selector")]
    pub label_selector: String,
    /// Empty: every namespace.
    #[serde(default)]
    pub namespace: String,
    #[serde(default = "default_metrics_port")]
    pub port: u16,
    #[serde(default = "default_metrics_path")]
    pub path: String,
    #[serde(default = "default_discovery_interval_ms")]
    pub discovery_interval_ms: u64,
}

/// `[node]`: sampling this node, from `/proc` or from its kubelet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(default = "default_observe_interval_ms")]
    pub interval_ms: u64,
    /// `"proc"` (default): `/proc` and `statvfs` here; `"kubelet"`: the node's kubelet stats
    /// summary through `[scrape.kubernetes]`'s API (needs `get` on `nodes` and `nodes/proxy`).
    #[serde(default)]
    pub source: crate::observe::node::NodeSource,
    /// The node's `/proc` (mounted at `/host/proc` in a container), for `source = "proc"`.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
}

/// `[pods]`: sampling the pods on this node (through `[scrape.kubernetes]`'s API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodsConfig {
    #[serde(default = "default_observe_interval_ms")]
    pub interval_ms: u64,
    /// Empty: every namespace.
    #[serde(default)]
    pub namespace: String,
}

fn default_observe_interval_ms() -> u64 {
    15_000
}

fn default_scrape_timeout_ms() -> u64 {
    5_000
}

fn default_label_selector() -> String {
    "app=ai-mixer".into()
}

fn default_metrics_port() -> u16 {
    8080
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_discovery_interval_ms() -> u64 {
    30_000
}

fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}

/// `[scrape]`, validated.
#[derive(Debug, Clone)]
pub struct ScrapeObserve {
    pub settings: crate::observe::scrape::ScrapeSettings,
    pub targets: Vec<crate::observe::scrape::ScrapeTarget>,
}

/// `[pods]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodsObserve {
    pub interval: std::time::Duration,
    pub namespace: Option<String>,
}

/// Where the prober's region comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionSource {
    /// `identity.region` (or `MIXMON_IDENTITY__REGION`).
    Configured(Region),
    /// The node's `topology.kubernetes.io/region` label, read at start through
    /// `[scrape.kubernetes]`'s API (`crate::observe::region`).
    NodeLabel,
}

impl std::fmt::Display for RegionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegionSource::Configured(region) => write!(f, "{region}"),
            RegionSource::NodeLabel => {
                write!(f, "the region of its node's {} label (read at start)", crate::observe::region::REGION_LABEL)
            }
        }
    }
}

/// The prober's identity before start: its region may still have to be read from its node.
#[derive(Debug, Clone)]
pub struct PreparedIdentity {
    pub id: ProberId,
    pub region: RegionSource,
    pub node: String,
}

impl PreparedIdentity {
    /// The identity the prober registers with, in `region`.
    pub fn with_region(self, region: Region) -> ProberIdentity {
        ProberIdentity { id: self.id, region, node: self.node, version: env!("CARGO_PKG_VERSION").into() }
    }
}

/// A configuration as the prober runs it, checked by [`ProberConfig::prepare`].
#[derive(Debug)]
pub struct Prepared {
    pub identity: PreparedIdentity,
    pub aggregators: Vec<tonic::transport::Endpoint>,
    pub token: Option<Secret>,
    pub buffer: crate::buffer::BufferOptions,
    pub source_ip: Option<std::net::IpAddr>,
    pub observe: ObserveSettings,
    /// `[health] listen`: where `GET /healthz` and `GET /readyz` are served.
    pub health: Option<std::net::SocketAddr>,
}

/// Every observer's settings, validated: what `observe::spawn` starts.
#[derive(Debug, Clone, Default)]
pub struct ObserveSettings {
    pub scrape: Option<ScrapeObserve>,
    pub kubernetes: Option<crate::observe::discovery::KubeSettings>,
    pub node: Option<crate::observe::node::NodeSettings>,
    pub pods: Option<PodsObserve>,
}

/// A positive interval, or an error naming `key`.
fn interval(key: &str, ms: u64) -> Result<std::time::Duration, ProberError> {
    if ms == 0 {
        return Err(ProberError::Config(format!("{key} must be above 0")));
    }
    Ok(std::time::Duration::from_millis(ms))
}

fn namespace(key: &str, ns: &str) -> Result<Option<String>, ProberError> {
    if ns.is_empty() {
        return Ok(None);
    }
    mixmon_model::EntityName::new(ns).map_err(|e| ProberError::Config(format!("{key}: {e}")))?;
    Ok(Some(ns.to_owned()))
}

impl ProberConfig {
    /// The `[scrape]`, `[node]` and `[pods]` sections, checked: intervals above zero, URLs
    /// that parse, pod names that are valid entity names, `[pods]` only with an API to ask.
    pub fn observe(&self) -> Result<ObserveSettings, ProberError> {
        use crate::observe::scrape::{ScrapeSettings, ScrapeTarget, ScrapeUrl, MAX_BODY_BYTES};
        let mut out = ObserveSettings::default();
        if let Some(scrape) = &self.scrape {
            let settings = ScrapeSettings {
                interval: interval("scrape.interval_ms", scrape.interval_ms)?,
                timeout: interval("scrape.timeout_ms", scrape.timeout_ms)?,
                max_body_bytes: MAX_BODY_BYTES,
            };
            let mut targets: Vec<ScrapeTarget> = Vec::with_capacity(scrape.targets.len());
            for (i, t) in scrape.targets.iter().enumerate() {
                let pod = mixmon_model::EntityName::new(t.pod.as_str())
                    .map_err(|e| ProberError::Config(format!("scrape.targets[{i}].pod: {e}")))?;
                let url = ScrapeUrl::parse(&t.url)
                    .map_err(|e| ProberError::Config(format!("scrape.targets[{i}].url: {e}")))?;
                if targets.iter().any(|other| other.pod == pod) {
                    return Err(ProberError::Config(format!("scrape.targets[{i}].pod: {pod} is listed twice")));
                }
                targets.push(ScrapeTarget { pod, url });
            }
            if let Some(k) = &scrape.kubernetes {
                let api_url = match &k.api_url {
                    Some(url) => {
                        let uri: http::Uri = url.parse().map_err(|e| {
                            ProberError::Config(format!("scrape.kubernetes.api_url: {url:?} is not a URL: {e}"))
                        })?;
                        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                            return Err(ProberError::Config(format!(
                                "scrape.kubernetes.api_url: {url:?} must be an http:// or https:// URL with a host"
                            )));
                        }
                        Some(uri)
                    }
                    None => None,
                };
                if k.port == 0 {
                    return Err(ProberError::Config("scrape.kubernetes.port must be above 0".into()));
                }
                if !k.path.starts_with('/') {
                    return Err(ProberError::Config(format!(
                        "scrape.kubernetes.path: {:?} must start with '/'",
                        k.path
                    )));
                }
                // The URL every discovered pod will be scraped at, with a documentation address.
                ScrapeUrl::parse(&format!("http://192.0.2.1:{}{}", k.port, k.path)).map_err(|e| {
                    ProberError::Config(format!("scrape.kubernetes.path: {:?} does not make a URL: {e}", k.path))
                })?;
                out.kubernetes = Some(crate::observe::discovery::KubeSettings {
                    api_url,
                    token_file: k.token_file.clone(),
                    ca_file: k.ca_file.clone(),
                    label_selector: k.label_selector.trim().to_owned(),
                    namespace: namespace("scrape.kubernetes.namespace", &k.namespace)?,
                    port: k.port,
                    path: k.path.clone(),
                    discovery_interval: interval("scrape.kubernetes.discovery_interval_ms", k.discovery_interval_ms)?,
                });
            } else if targets.is_empty() {
                return Err(ProberError::Config(
                    "scrape: list scrape.targets or configure [scrape.kubernetes]; there is nothing to scrape".into(),
                ));
            }
            out.scrape = Some(ScrapeObserve { settings, targets });
        }
        if let Some(node) = &self.node {
            if node.source == crate::observe::node::NodeSource::Kubelet && out.kubernetes.is_none() {
                return Err(ProberError::Config(
                    "node.source = \"kubelet\" reads the node through the Kubernetes API; configure [scrape.kubernetes]"
                        .into(),
                ));
            }
            out.node = Some(crate::observe::node::NodeSettings {
                interval: interval("node.interval_ms", node.interval_ms)?,
                source: node.source,
                proc_root: node.proc_root.clone(),
            });
        }
        if let Some(pods) = &self.pods {
            if out.kubernetes.is_none() {
                return Err(ProberError::Config(
                    "pods: sampling pods needs the Kubernetes API; configure [scrape.kubernetes]".into(),
                ));
            }
            out.pods = Some(PodsObserve {
                interval: interval("pods.interval_ms", pods.interval_ms)?,
                namespace: namespace("pods.namespace", &pods.namespace)?,
            });
        }
        Ok(out)
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
    fn the_probe_source_must_be_an_address_of_this_host() {
        let parse = |text: &str| -> ProberConfig { mixmon_config::parse_with_env("p.toml", text, Vec::new()).unwrap() };
        assert_eq!(ProberConfig::default().probe_source_ip().unwrap(), None);
        assert_eq!(parse("[probe]\nsource_ip = \"\"\n").probe_source_ip().unwrap(), None);
        let local = parse("[probe]\nsource_ip = \"127.0.0.3\"\n");
        assert_eq!(local.probe_source_ip().unwrap(), Some(std::net::IpAddr::from([127, 0, 0, 3])));
        for (text, part) in [
            ("[probe]\nsource_ip = \"127.0.0\"\n", "is not an IP address"),
            // TEST-NET-1 (RFC 5737): never an address of this host.
            ("[probe]\nsource_ip = \"192.0.2.1\"\n", "cannot send probes from 192.0.2.1"),
        ] {
            let err = parse(text).probe_source_ip().unwrap_err().to_string();
            assert!(err.contains("probe.source_ip") && err.contains(part), "{err}");
        }
        let typo = mixmon_config::parse_with_env::<ProberConfig>("p.toml", "[probe]\nsource = \"x\"", Vec::new());
        assert!(typo.unwrap_err().to_string().contains("source"));
    }

    #[test]
    fn region_is_required_and_validated() {
        let config = ProberConfig::default();
        assert!(config.identity().unwrap_err().to_string().contains("identity.region"));
        let mut config = ProberConfig::default();
        config.identity.region = Some("bad region".into());
        assert!(config.identity().is_err());
    }

    #[test]
    fn without_a_region_the_node_label_is_asked_only_where_there_is_an_api_to_ask() {
        let parse = |text: &str| -> ProberConfig { mixmon_config::parse_with_env("p.toml", text, Vec::new()).unwrap() };
        let from_node = parse("[identity]\nnode = \"n1\"\n[scrape.kubernetes]\n").prepare().unwrap();
        assert_eq!(from_node.identity.region, RegionSource::NodeLabel);
        assert!(from_node.identity.region.to_string().contains("topology.kubernetes.io/region"));
        let configured = parse("[identity]\nregion = \"ap\"\n[scrape.kubernetes]\n").prepare().unwrap();
        assert_eq!(configured.identity.region.to_string(), "ap", "the configured region wins");
        let err = parse("[identity]\nnode = \"n1\"\n").prepare().unwrap_err().to_string();
        assert!(err.contains("identity.region is required") && err.contains("[scrape.kubernetes]"), "{err}");
    }

    #[test]
    fn the_health_listen_address_is_checked_by_prepare() {
        let prepare = |extra: &str| {
            let text = format!("[identity]\nregion = \"ap\"\n{extra}");
            mixmon_config::parse_with_env::<ProberConfig>("p.toml", &text, Vec::new()).unwrap().prepare()
        };
        assert_eq!(prepare("").unwrap().health, None, "off unless present");
        let on = prepare("[health]\nlisten = \"0.0.0.0:9102\"\n").unwrap();
        assert_eq!(on.health, Some(std::net::SocketAddr::from(([0, 0, 0, 0], 9102))));
        for bad in ["9102", "localhost:9102", "0.0.0.0", ""] {
            let err = prepare(&format!("[health]\nlisten = \"{bad}\"\n")).unwrap_err().to_string();
            assert!(err.contains("health.listen"), "{bad:?}: {err}");
        }
        let typo = mixmon_config::parse_with_env::<ProberConfig>("p.toml", "[health]\naddr = \"x\"\n", Vec::new());
        assert!(typo.unwrap_err().to_string().contains("addr"));
    }

    fn observe(text: &str) -> Result<ObserveSettings, String> {
        let config: ProberConfig =
            mixmon_config::parse_with_env("p.toml", text, Vec::new()).map_err(|e| e.to_string())?;
        config.observe().map_err(|e| e.to_string())
    }

    #[test]
    fn the_observe_sections_parse_with_defaults_and_are_off_unless_present() {
        let none = observe("").unwrap();
        assert!(none.scrape.is_none() && none.kubernetes.is_none() && none.node.is_none() && none.pods.is_none());

        let text = r#"
            [scrape]
            interval_ms = 15000
            timeout_ms = 5000
            targets = [ { pod = "mixer-0", url = "http://127.0.0.1:9201/metrics" } ]
            [scrape.kubernetes]
            api_url = "http://127.0.0.1:9100/k8s"
            token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
            label_selector = "app=ai-mixer"
            namespace = ""
            port = 8080
            path = "/metrics"
            discovery_interval_ms = 30000
            [node]
            interval_ms = 15000
            proc_root = "/proc"
            [pods]
            interval_ms = 15000
            namespace = ""
        "#;
        let all = observe(text).unwrap();
        let scrape = all.scrape.unwrap();
        assert_eq!(scrape.settings.interval, std::time::Duration::from_secs(15));
        assert_eq!(scrape.settings.timeout, std::time::Duration::from_secs(5));
        assert_eq!(scrape.targets.len(), 1);
        assert_eq!(
            (scrape.targets[0].pod.as_str(), scrape.targets[0].url.as_str()),
            ("mixer-0", "http://127.0.0.1:9201/metrics")
        );
        let k = all.kubernetes.unwrap();
        assert_eq!(k.api_url.unwrap().to_string(), "http://127.0.0.1:9100/k8s");
        assert_eq!(
            (k.label_selector.as_str(), k.namespace, k.port, k.path.as_str()),
            ("app=ai-mixer", None, 8080, "/metrics")
        );
        assert_eq!(k.discovery_interval, std::time::Duration::from_secs(30));
        let node = all.node.unwrap();
        assert_eq!((node.proc_root, node.source), (PathBuf::from("/proc"), crate::observe::node::NodeSource::Proc));
        assert_eq!(all.pods.unwrap().namespace, None);

        // Defaults: only the section headers.
        let defaults = observe("[scrape.kubernetes]\n[node]\n[pods]\nnamespace = \"audio\"\n").unwrap();
        let scrape = defaults.scrape.unwrap();
        assert_eq!((scrape.settings.interval.as_millis(), scrape.settings.timeout.as_millis()), (15_000, 5_000));
        let k = defaults.kubernetes.unwrap();
        assert_eq!(
            (k.api_url, k.label_selector.as_str(), k.port, k.path.as_str()),
            (None, "app=ai-mixer", 8080, "/metrics")
        );
        assert_eq!(defaults.node.unwrap().interval.as_millis(), 15_000);
        let kubelet = observe("[scrape.kubernetes]\n[node]\nsource = \"kubelet\"\n").unwrap();
        assert_eq!(kubelet.node.unwrap().source, crate::observe::node::NodeSource::Kubelet);
        assert_eq!(defaults.pods.unwrap().namespace.as_deref(), Some("audio"));
    }

    #[test]
    fn the_observe_sections_refuse_nonsense_naming_the_key() {
        let target = |pod: &str, url: &str| format!("[scrape]\ntargets = [{{ pod = \"{pod}\", url = \"{url}\" }}]\n");
        let cases = [
            ("[scrape]\ninterval_ms = 0\n[scrape.kubernetes]\n".to_owned(), "scrape.interval_ms"),
            ("[scrape]\ntimeout_ms = 0\n[scrape.kubernetes]\n".to_owned(), "scrape.timeout_ms"),
            ("[scrape]\n".to_owned(), "nothing to scrape"),
            (target("mixer 0", "http://a/metrics"), "scrape.targets[0].pod"),
            (target("mixer-0", "ftp://a/metrics"), "scrape.targets[0].url"),
            (target("mixer-0", "not a url"), "scrape.targets[0].url"),
            (
                "[scrape]\ntargets = [{ pod = \"a\", url = \"http://a/m\" }, { pod = \"a\", url = \"http://b/m\" }]\n"
                    .to_owned(),
                "scrape.targets[1].pod",
            ),
            ("[scrape.kubernetes]\napi_url = \"::\"\n".to_owned(), "scrape.kubernetes.api_url"),
            ("[scrape.kubernetes]\napi_url = \"unix:/x\"\n".to_owned(), "scrape.kubernetes.api_url"),
            ("[scrape.kubernetes]\ndiscovery_interval_ms = 0\n".to_owned(), "scrape.kubernetes.discovery_interval_ms"),
            ("[scrape.kubernetes]\nport = 0\n".to_owned(), "scrape.kubernetes.port"),
            ("[scrape.kubernetes]\npath = \"metrics\"\n".to_owned(), "scrape.kubernetes.path"),
            ("[scrape.kubernetes]\nnamespace = \"a b\"\n".to_owned(), "scrape.kubernetes.namespace"),
            ("[node]\ninterval_ms = 0\n".to_owned(), "node.interval_ms"),
            ("[pods]\n".to_owned(), "[scrape.kubernetes]"),
            ("[scrape.kubernetes]\n[pods]\ninterval_ms = 0\n".to_owned(), "pods.interval_ms"),
            ("[scrape.kubernetes]\n[pods]\nnamespace = \"a/b\"\n".to_owned(), "pods.namespace"),
            ("[scrape]\nintervall_ms = 5\n".to_owned(), "intervall_ms"),
            ("[scrape.kubernetes]\nlabels = \"x\"\n".to_owned(), "labels"),
            ("[node]\nproc = \"/x\"\n".to_owned(), "proc"),
            ("[node]\nsource = \"kubelet\"\n".to_owned(), "[scrape.kubernetes]"),
            ("[scrape.kubernetes]\n[node]\nsource = \"sysfs\"\n".to_owned(), "sysfs"),
        ];
        for (text, key) in cases {
            let err = observe(&text).err().unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}
