//! The query service's configuration file (`config/query.example.toml`).
//!
//! ```toml
//! listen = "0.0.0.0:8090"
//! [store]
//! kind = "redis"
//! url = "redis://redis:6379"
//! [auth]
//! token_file = "/etc/mixmon/query-token"
//! [limits]
//! max_datapoints = 500000
//! [status_page]
//! public = false        # true: GET /status without the token (the rest still needs it)
//! refresh_seconds = 30
//! ```

use mixmon_config::AuthConfig;
use mixmon_store::StoreConfig;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What the listener allows: open connections and their idle timeout.
    #[serde(default)]
    pub connections: mixmon_listener::ConnectionLimits,
    #[serde(default)]
    pub status_page: StatusPageConfig,
}

/// `[status_page]`: who may read `GET /status`, and how often it reloads itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// Served without the bearer token; off by default, so the page takes the API's token.
    #[serde(default)]
    pub public: bool,
    /// The page's `<meta http-equiv="refresh">`.
    #[serde(default = "default_refresh_seconds")]
    pub refresh_seconds: u32,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig { public: false, refresh_seconds: default_refresh_seconds() }
    }
}

impl StatusPageConfig {
    pub fn options(&self) -> crate::StatusPageOptions {
        crate::StatusPageOptions { public: self.public, refresh_seconds: self.refresh_seconds }
    }
}

fn default_refresh_seconds() -> u32 {
    crate::status_page::DEFAULT_REFRESH_SECONDS
}

/// `[limits]`: what one request may cost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most datapoints one `/query` answers (series x points), refused before any read.
    #[serde(default = "default_max_datapoints")]
    pub max_datapoints: usize,
    /// Requests served at once; past it one is shed with 503 and `Retry-After: 1`.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// Longest one request may run before it is stopped with 503.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_datapoints: default_max_datapoints(),
            max_concurrent_requests: default_max_concurrent(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }
}

fn default_max_concurrent() -> usize {
    crate::DEFAULT_MAX_CONCURRENT
}

fn default_request_timeout_ms() -> u64 {
    crate::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64
}

/// Everything the query service refuses at start, checked without starting: the one path of
/// its start and of `mixmon validate --query`.
pub fn prepare(config: &QueryConfig) -> Result<(), String> {
    mixmon_config::startup::check_listen(&config.listen)?;
    config.validate()
}

impl QueryConfig {
    /// What a working service needs beyond the file's shape.
    pub fn validate(&self) -> Result<(), String> {
        if self.limits.max_datapoints == 0 {
            return Err("limits.max_datapoints must be above 0".into());
        }
        if !(1..=10_000).contains(&self.limits.max_concurrent_requests) {
            return Err(format!(
                "limits.max_concurrent_requests must be in 1..=10000, got {}",
                self.limits.max_concurrent_requests
            ));
        }
        if !(100..=600_000).contains(&self.limits.request_timeout_ms) {
            return Err(format!(
                "limits.request_timeout_ms must be in 100..=600000 (10 minutes), got {}",
                self.limits.request_timeout_ms
            ));
        }
        // Below 5 s a wall display would re-render the page for nothing (it is reused for
        // 5 s); above an hour it is no longer a live page.
        if !(5..=3_600).contains(&self.status_page.refresh_seconds) {
            return Err(format!(
                "status_page.refresh_seconds must be in 5..=3600, got {}",
                self.status_page.refresh_seconds
            ));
        }
        self.connections.validate()
    }
}

fn default_max_datapoints() -> usize {
    crate::DEFAULT_MAX_DATAPOINTS
}

fn default_listen() -> String {
    "127.0.0.1:8090".to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_loads_and_defaults_fill_the_rest() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/query.example.toml");
        let config: QueryConfig = mixmon_config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8090");
        assert_eq!(config.limits.max_datapoints, 500_000);
        assert!(config.auth.token_file.is_some());
        config.validate().unwrap();
        let defaults: QueryConfig = mixmon_config::parse_with_env("t", "", Vec::new()).unwrap();
        assert_eq!((defaults.listen.as_str(), defaults.limits.max_datapoints), ("127.0.0.1:8090", 500_000));
        let env = vec![("MIXMON_LIMITS__MAX_DATAPOINTS".to_string(), "0".to_string())];
        let zero: QueryConfig = mixmon_config::parse_with_env("t", "", env).unwrap();
        assert!(zero.validate().is_err());
        assert!(mixmon_config::parse_with_env::<QueryConfig>("t", "[auth]\ntokn = 1\n", Vec::new()).is_err());
    }

    #[test]
    fn the_status_page_is_private_by_default_and_its_refresh_is_bounded() {
        let defaults: QueryConfig = mixmon_config::parse_with_env("t", "", Vec::new()).unwrap();
        assert_eq!(defaults.status_page.options(), crate::StatusPageOptions { public: false, refresh_seconds: 30 });
        let public: QueryConfig =
            mixmon_config::parse_with_env("t", "[status_page]\npublic = true\nrefresh_seconds = 60\n", Vec::new())
                .unwrap();
        assert_eq!(public.status_page.options(), crate::StatusPageOptions { public: true, refresh_seconds: 60 });
        prepare(&public).unwrap();
        let env = vec![("MIXMON_STATUS_PAGE__PUBLIC".to_string(), "true".to_string())];
        let from_env: QueryConfig = mixmon_config::parse_with_env("t", "", env).unwrap();
        assert!(from_env.status_page.public);
        for bad in [0, 4, 3_601] {
            let text = format!("[status_page]\nrefresh_seconds = {bad}\n");
            let config: QueryConfig = mixmon_config::parse_with_env("t", &text, Vec::new()).unwrap();
            let error = prepare(&config).unwrap_err();
            assert!(error.contains("status_page.refresh_seconds must be in 5..=3600"), "{error}");
        }
        let typo = "[status_page]\npublik = true\n";
        assert!(mixmon_config::parse_with_env::<QueryConfig>("t", typo, Vec::new()).is_err());
    }
}
