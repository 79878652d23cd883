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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Results held while unacknowledged; past this the oldest are dropped and counted.
    #[serde(default = "default_buffer_results")]
    pub max_results: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self { max_results: default_buffer_results() }
    }
}

fn default_buffer_results() -> usize {
    1_000_000
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
    fn region_is_required_and_validated() {
        let config = ProberConfig::default();
        assert!(config.identity().unwrap_err().to_string().contains("identity.region"));
        let mut config = ProberConfig::default();
        config.identity.region = Some("bad region".into());
        assert!(config.identity().is_err());
    }
}
