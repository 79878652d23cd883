//! The prober's region from its node, for a prober deployed without `identity.region`: the
//! `topology.kubernetes.io/region` label of its `Node` (`GET /api/v1/nodes/{node}`, `get` on
//! `nodes`), read once at start through `[scrape.kubernetes]`'s client. The downward API
//! cannot hand a node's label to a pod, so the prober asks the API server it already talks to.
//!
//! An API that cannot be reached or answers 429/5xx is asked again (with backoff) until it
//! answers or the prober is stopped; an answer that will not change by asking again (no such
//! node, no permission, no label, a label that is no valid region) fails the start, saying
//! what to set instead.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};
use mixmon_model::Region;

use crate::ProberError;

/// The well-known label a node's cloud (or its operator) sets to the node's region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(10);

/// Why one attempt did not give a region.
#[derive(Debug)]
pub enum Lookup {
    /// Asking again may work (the API is unreachable, overloaded, failing).
    Retry(String),
    /// It will not (the answer is definite); the message says what to change.
    Fail(String),
}

fn fix(node: &str) -> String {
    format!("label node {node} with {REGION_LABEL}, or set identity.region (MIXMON_IDENTITY__REGION)")
}

/// One attempt: the region label of `node`, valid as a prober region.
pub async fn read(client: &Client, node: &str) -> Result<Region, Lookup> {
    let object = match Api::<Node>::all(client.clone()).get(node).await {
        Ok(object) => object,
        Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => {
            return Err(Lookup::Fail(format!(
                "reading node {node} for its {REGION_LABEL} label was refused ({} {}): the prober's service \
                 account needs get on nodes; or set identity.region (MIXMON_IDENTITY__REGION)",
                status.code, status.message
            )))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(Lookup::Fail(format!(
                "node {node} does not exist in the Kubernetes API (identity.node, $NODE_NAME): {}",
                fix(node)
            )))
        }
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) && status.code != 429 => {
            return Err(Lookup::Fail(format!("reading node {node}: {} {}", status.code, status.message)))
        }
        Err(error) => return Err(Lookup::Retry(format!("reading node {node}: {error}"))),
    };
    let label = object.metadata.labels.as_ref().and_then(|labels| labels.get(REGION_LABEL));
    let Some(label) = label.map(|l| l.trim()).filter(|l| !l.is_empty()) else {
        return Err(Lookup::Fail(format!("node {node} has no {REGION_LABEL} label: {}", fix(node))));
    };
    let region = Region::new(label).map_err(|e| {
        Lookup::Fail(format!("node {node}'s {REGION_LABEL} label {label:?} is not a valid region ({e}): {}", fix(node)))
    })?;
    if region.is_reserved() {
        return Err(Lookup::Fail(format!(
            "node {node}'s {REGION_LABEL} label {label:?} is reserved (region names must not start with '_'): {}",
            fix(node)
        )));
    }
    Ok(region)
}

/// The region of `node`, asking until the API answers; `Ok(None)` when `stop` turned true
/// first. `beat` is called at every attempt (the prober's liveness).
pub async fn resolve(
    client: &Client,
    node: &str,
    beat: impl Fn(),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Region>, ProberError> {
    let mut delay = RETRY_FIRST;
    loop {
        beat();
        let attempt = tokio::select! {
            attempt = read(client, node) => attempt,
            _ = stop.wait_for(|s| *s) => return Ok(None),
        };
        match attempt {
            Ok(region) => {
                tracing::info!(%node, %region, "region from the node's {REGION_LABEL} label");
                return Ok(Some(region));
            }
            Err(Lookup::Fail(message)) => return Err(ProberError::Config(format!("identity.region: {message}"))),
            Err(Lookup::Retry(message)) => {
                tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "cannot learn this prober's region yet");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
        delay = (delay * 2).min(RETRY_CAP);
    }
}
