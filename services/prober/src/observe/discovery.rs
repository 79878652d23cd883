//! Finding the mixer pods on this node through the Kubernetes API: pods with
//! `spec.nodeName=<node>` and the label selector, Running with a pod IP, re-listed every
//! discovery interval. A failing list is logged and the previous targets stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, Config};
use mixmon_model::EntityName;
use tokio::sync::watch;

use super::scrape::{ScrapeTarget, ScrapeUrl};
use super::RateLimitedWarn;
use crate::ProberError;

/// How long one API call may take (connect, then the answer).
const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const API_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the Kubernetes API is and which mixer pods to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    /// `None`: the in-cluster configuration (service account token and CA).
    pub api_url: Option<http::Uri>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub label_selector: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    pub port: u16,
    pub path: String,
    pub discovery_interval: Duration,
}

/// The name of the container port a pod declares its metrics on, the convention Prometheus'
/// Kubernetes discovery users follow; a pod that names none is scraped at the configured port.
pub const METRICS_PORT_NAME: &str = "metrics";

/// The pod's container port named [`METRICS_PORT_NAME`], if any container declares one.
fn metrics_port(pod: &Pod) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .filter(|port| *port > 0)
}

/// A client for `settings`: the in-cluster configuration unless an `api_url` is given.
pub fn client(settings: &KubeSettings) -> Result<Client, ProberError> {
    let mut config = match &settings.api_url {
        Some(url) => Config::new(url.clone()),
        None => Config::incluster().map_err(|e| {
            ProberError::Config(format!(
                "scrape.kubernetes: no api_url and no in-cluster configuration ({e}); set scrape.kubernetes.api_url"
            ))
        })?,
    };
    if let Some(token_file) = &settings.token_file {
        config.auth_info.token_file = Some(token_file.display().to_string());
    }
    if let Some(ca_file) = &settings.ca_file {
        config.root_cert_file = Some(ca_file.clone());
    }
    config.connect_timeout = Some(API_CONNECT_TIMEOUT);
    config.read_timeout = Some(API_READ_TIMEOUT);
    config.reset_reader_on_write = true;
    // The next interval is the retry.
    config.default_retry = false;
    Client::try_from(config)
        .map_err(|e| ProberError::Config(format!("scrape.kubernetes: cannot build the client: {e}")))
}

/// `Api<Pod>` over one namespace or all of them.
pub(crate) fn pods_api(client: Client, namespace: Option<&str>) -> Api<Pod> {
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Lists the mixer pods on the node.
pub struct Discoverer {
    client: Client,
    settings: KubeSettings,
    node: EntityName,
    warn: RateLimitedWarn,
}

impl Discoverer {
    pub fn new(client: Client, settings: KubeSettings, node: EntityName) -> Self {
        Discoverer { client, settings, node, warn: RateLimitedWarn::new(Duration::from_secs(300)) }
    }

    /// The scrape targets on the node now.
    pub async fn list(&self) -> Result<Vec<ScrapeTarget>, kube::Error> {
        let api = pods_api(self.client.clone(), self.settings.namespace.as_deref());
        let mut params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        if !self.settings.label_selector.is_empty() {
            params = params.labels(&self.settings.label_selector);
        }
        let pods = api.list(&params).await?;
        let mut targets: Vec<ScrapeTarget> = pods.items.iter().filter_map(|pod| self.target(pod)).collect();
        targets.sort_by(|a, b| a.pod.cmp(&b.pod));
        targets.dedup_by(|a, b| a.pod == b.pod);
        Ok(targets)
    }

    fn target(&self, pod: &Pod) -> Option<ScrapeTarget> {
        let name = pod.metadata.name.as_deref()?;
        let status = pod.status.as_ref()?;
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        // The API server filtered by node already; a fake or an old one may not have.
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(self.node.as_str()) {
            return None;
        }
        let ip: std::net::IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
        let host = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let pod_name = match EntityName::new(name) {
            Ok(n) => n,
            Err(error) => {
                tracing::debug!(pod = name, %error, "pod name is not a valid entity name; not scraped");
                return None;
            }
        };
        let port = metrics_port(pod).unwrap_or(self.settings.port);
        let url = ScrapeUrl::parse(&format!("http://{host}:{port}{}", self.settings.path)).ok()?;
        Some(ScrapeTarget { pod: pod_name, url })
    }

    /// Lists now and every discovery interval, publishing each successful list on `targets`.
    pub async fn run(mut self, targets: watch::Sender<Arc<Vec<ScrapeTarget>>>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.discovery_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let listed = tokio::select! {
                listed = self.list() => listed,
                _ = stop.wait_for(|s| *s) => return,
            };
            match listed {
                Ok(found) => {
                    targets.send_if_modified(|current| {
                        let changed = **current != found;
                        if changed {
                            tracing::info!(node = %self.node, pods = found.len(), "mixer pods on this node");
                            *current = Arc::new(found);
                        }
                        changed
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "listing the mixer pods failed; keeping the previous list");
                    if self.warn.allow() {
                        tracing::warn!(%error, "listing the mixer pods failed; keeping the previous list");
                    }
                }
            }
        }
    }
}
