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

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Rules narrowing which probers run which checks (by default all run all).
    #[serde(default)]
    pub assignments: Vec<crate::assignment::AssignmentRule>,
    /// The regions probers run in, in order (e.g. `["us-west", "us-east", "eu-west", "ap"]`):
    /// the probers of the `i`-th of `n` regions run each check `i / n` of its interval after
    /// the first, so together they look at an endpoint every interval / n and an outage is
    /// seen sooner. A region not listed gets a fixed slot from its name.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// What the gRPC listener allows: open connections and their idle timeout.
    #[serde(default)]
    pub connections: mixmon_listener::ConnectionLimits,
    /// `[metrics] listen = "0.0.0.0:9464"`: serve `GET /metrics` there (off when absent).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// The aggregator's own metrics listener (`[metrics]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: Option<String>,
}

/// The alert rule evaluator (`[alerting]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Evaluate the alert rules in this replica when it holds the lease.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The rules file (YAML); absent: the shipped `config/rules.yaml`, built in.
    pub rules_file: Option<PathBuf>,
    /// The routing file (an Alertmanager `alertmanager.yml`); absent: the shipped
    /// `config/alertmanager.yml`, built in. Its inhibit rules mark which alerts are muted.
    pub routes_file: Option<PathBuf>,
    /// How long a leader's lease lasts unrenewed: a killed leader is replaced within it.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// At most this long between evaluations.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Send notifications as the routing file says (in the replica that evaluates).
    #[serde(default = "yes")]
    pub notify: bool,
    /// Where people open mixmon (the query service), linked from every notification.
    #[serde(default = "default_external_url")]
    pub external_url: String,
    /// The Grafana dashboard linked from pages.
    pub dashboard_url: Option<String>,
    /// Alertmanagers (`http://alertmanager:9093`) every alert is forwarded to.
    #[serde(default)]
    pub alertmanagers: Vec<String>,
}

fn default_external_url() -> String {
    "http://localhost:8090".into()
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            rules_file: None,
            routes_file: None,
            lease_ttl_ms: default_lease_ttl_ms(),
            tick_ms: default_tick_ms(),
            notify: true,
            external_url: default_external_url(),
            dashboard_url: None,
            alertmanagers: Vec::new(),
        }
    }
}

impl AlertingConfig {
    /// The lease and tick bounds a working evaluator needs.
    pub fn validate(&self) -> Result<(), String> {
        if !(1_000..=60_000).contains(&self.lease_ttl_ms) {
            return Err(format!("alerting.lease_ttl_ms must be in 1000..=60000, got {}", self.lease_ttl_ms));
        }
        if !(100..=1_000).contains(&self.tick_ms) || self.tick_ms * 2 > self.lease_ttl_ms {
            return Err(format!(
                "alerting.tick_ms must be in 100..=1000 (rules are evaluated at least once a second) and at most half the lease, got {}",
                self.tick_ms
            ));
        }
        for url in self.alertmanagers.iter().chain(std::iter::once(&self.external_url)) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("alerting: {url:?} must be an http:// or https:// URL"));
            }
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn default_lease_ttl_ms() -> u64 {
    5_000
}

fn default_tick_ms() -> u64 {
    500
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

/// `[auth]`: the token probers must send (`token_file`, or `MIXMON_AUTH__TOKEN`).
pub use mixmon_config::AuthConfig;

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

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    #[default]
    Http,
    Tcp,
    Grpc,
    Dns,
}

/// One check. Which keys apply depends on `type`; a key set for another type is refused at
/// load, so a typo'd catalogue never silently probes something else.
///
/// ```toml
/// [[checks]]                       # HTTP(S); every key but id and url is optional
/// id = "api"
/// url = "https://api.mixer.example/health"
/// method = "POST"                  # GET
/// headers = { Authorization = "Bearer x" }
/// body = '{"ping":1}'
/// expected_status = [200, 204]     # [200]
/// follow_redirects = true          # true, at most max_redirects (10)
/// http2 = true                     # offer HTTP/2 (ALPN h2 / h2c); false
/// valid_http_versions = ["HTTP/2"] # any when empty
/// ip = "ip4"                       # any | ip4 | ip6
/// each_address = true             # one result per resolved address
/// assert = [{ body_contains = "ok" }, { body_regex = "^up" }, { json_pointer = "/status", equals = "up" }]
/// labels = { tier = "edge" }
///
/// [[checks]]
/// id = "db"
/// type = "tcp"                     # also grpc (host, port, service, tls) and
/// host = "db.internal"             # dns (name, record_type, server, expected)
/// port = 5432
/// tls = true
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique; names the endpoint in every SLI (`us-west`, `api`, ...).
    pub id: String,
    #[serde(default, rename = "type")]
    pub check_type: CheckType,
    /// http: the URL probed.
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_expected_status")]
    pub expected_status: Vec<u16>,
    pub interval_s: Option<u32>,
    pub timeout_ms: Option<u32>,
    /// http: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http: the request body.
    pub body: Option<String>,
    /// http: conditions on the response body, all of which must hold.
    #[serde(default, rename = "assert")]
    pub assertions: Vec<AssertionConfig>,
    /// http: follow redirects (default true, as the blackbox exporter does).
    pub follow_redirects: Option<bool>,
    /// http: at most this many redirects are followed (default 10).
    pub max_redirects: Option<u8>,
    /// http: offer HTTP/2 (ALPN over TLS, prior knowledge over http://); default false.
    #[serde(default)]
    pub http2: bool,
    /// http: accepted response versions (`HTTP/1.1`, `HTTP/2`, ...); any when empty.
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    /// http, tcp, grpc: `any` (default), `ip4` or `ip6`.
    pub ip: Option<String>,
    /// http, tcp, grpc: probe every resolved address, one result each.
    #[serde(default)]
    pub each_address: bool,
    /// tcp, grpc: where to connect.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// tcp, grpc: TLS after connecting (certificate verified, expiry recorded).
    #[serde(default)]
    pub tls: bool,
    /// grpc: the service asked about (`grpc.health.v1`); empty for the whole server.
    pub service: Option<String>,
    /// dns: the name queried.
    pub name: Option<String>,
    /// dns: A (default), AAAA, CNAME, TXT, MX or NS.
    pub record_type: Option<String>,
    /// dns: `ip[:port]` of the server asked; the node's resolver when unset.
    pub server: Option<String>,
    /// dns: values that must all be among the answers.
    #[serde(default)]
    pub expected: Vec<String>,
    /// Free-form labels (`tier = "edge"`), for assignment rules and people.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One body assertion: exactly one of `body_contains`, `body_not_contains`, `body_regex`, or
/// `json_pointer` with `equals`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    pub body_contains: Option<String>,
    pub body_not_contains: Option<String>,
    pub body_regex: Option<String>,
    pub json_pointer: Option<String>,
    pub equals: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_expected_status() -> Vec<u16> {
    vec![200]
}
