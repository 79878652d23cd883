//! The aggregator's configuration file: where it listens, which store it writes, the token
//! probers must present, and the check catalogue.
//!
//! ```toml
//! listen = "0.0.0.0:50051"
//! [store]
//! kind = "redis"
//! url = "redis://redis:6379"
//! [auth]
//! token_file = "/etc/mixmon/prober-token"
//! [defaults]
//! interval_s = 10      # HEALTH_CHECK_INTERVAL overrides this default
//! timeout_ms = 5000
//! [[checks]]
//! id = "us-west"
//! url = "https://us-west.mixer.example/health"
//! ```

use std::path::PathBuf;

use mixmon_config::Secret;
use mixmon_store::StoreConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub defaults: CheckDefaults,
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer token probers must send; prefer `token_file` or `MIXMON_AUTH__TOKEN`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

impl AuthConfig {
    pub fn resolve(&self) -> Result<Option<Secret>, String> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => {
                Secret::from_file(path).map(Some).map_err(|e| format!("auth.token_file {}: {e}", path.display()))
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDefaults {
    #[serde(default = "default_interval_s")]
    pub interval_s: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
}

impl Default for CheckDefaults {
    fn default() -> Self {
        Self { interval_s: default_interval_s(), timeout_ms: default_timeout_ms() }
    }
}

fn default_interval_s() -> u32 {
    10
}

fn default_timeout_ms() -> u32 {
    5_000
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique; names the endpoint in every SLI (`us-west`, `api`, ...).
    pub id: String,
    #[serde(default = "default_type", rename = "type")]
    pub check_type: CheckType,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_expected_status")]
    pub expected_status: Vec<u16>,
    pub interval_s: Option<u32>,
    pub timeout_ms: Option<u32>,
}

fn default_type() -> CheckType {
    CheckType::Http
}

fn default_method() -> String {
    "GET".into()
}

fn default_expected_status() -> Vec<u16> {
    vec![200]
}
