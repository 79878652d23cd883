//! Faults of the network around the pods: an endpoint front's own misbehaviour
//! ([`EndpointFault`]) and a client cut off from the whole fleet ([`ClientCut`]), with their
//! validation.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::fault::{FaultError, MAX_LATENCY_MS};

/// How many clients may be cut at once: each blackholed one costs two instructions of the
/// socket filter every listener runs on every packet, and a jump there reaches at most 255.
pub(crate) const MAX_CUT_CLIENTS: usize = 64;

/// An endpoint front's misbehaviour, independent of the pods behind it; every field is
/// optional in JSON and off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointFault {
    /// The endpoint is killed: its listener is closed, so connections are refused, and the
    /// connections it had are closed; cleared, it listens again on the same port.
    pub down: bool,
    /// Connections are accepted and `/health` never answers (released at shutdown).
    pub hang: bool,
    /// Added before the front forwards `/health` to its pod.
    pub latency_ms: u64,
    /// Exactly this share (0..=1) of the front's `/health` answers are 500, evenly spread.
    pub error_share: f64,
}

impl EndpointFault {
    /// Checks every field; a fault is only ever applied after this passed.
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.error_share) {
            return Err(FaultError::ErrorShare(self.error_share));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(FaultError::Latency(self.latency_ms));
        }
        Ok(())
    }
}

/// What a cut looks like to the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutMode {
    /// Its packets vanish, as across a real partition: a new connection never completes its
    /// handshake (the probe times out connecting), an open one stops moving.
    #[default]
    Blackhole,
    /// Its connections are accepted and reset at once, as by a firewall that rejects.
    Reset,
}

/// A client (by its source address) cut off from every front and pod, or from some fronts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCut {
    /// `true` cuts the client off; `false` lets it through again.
    pub cut: bool,
    #[serde(default)]
    pub mode: CutMode,
    /// Only these fronts (e.g. `["api"]`: one bad path from one region); empty: everything.
    /// A blackhole scoped to fronts completes the handshake and then answers nothing, since
    /// the kernel-level filter that drops a whole client's packets is per listener set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fronts: Vec<String>,
}

impl ClientCut {
    /// Whether the cut covers the port named `port`.
    pub(crate) fn covers(&self, port: &str) -> bool {
        self.fronts.is_empty() || self.fronts.iter().any(|f| f == port)
    }
}

/// Why a client cut was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutError {
    #[error("`{0}` is not an IP address")]
    NotAnAddress(String),
    #[error("at most {MAX_CUT_CLIENTS} clients can be cut at once")]
    TooMany,
    #[error("no front is named `{0}`")]
    UnknownFront(String),
}

/// The client address in a URL path, as the kernel reports peers: IPv4-mapped IPv6
/// addresses become IPv4.
pub(crate) fn parse_client(text: &str) -> Result<IpAddr, CutError> {
    text.parse::<IpAddr>().map(|ip| ip.to_canonical()).map_err(|_| CutError::NotAnAddress(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_faults_validate_like_pod_faults() {
        let cases = [
            (EndpointFault::default(), None),
            (EndpointFault { down: true, hang: true, latency_ms: 10, error_share: 0.5 }, None),
            (EndpointFault { error_share: 1.01, ..EndpointFault::default() }, Some(FaultError::ErrorShare(1.01))),
            (
                EndpointFault { latency_ms: MAX_LATENCY_MS + 1, ..EndpointFault::default() },
                Some(FaultError::Latency(MAX_LATENCY_MS + 1)),
            ),
        ];
        for (fault, expected) in cases {
            assert_eq!(fault.validate().err(), expected, "{fault:?}");
        }
        assert!(EndpointFault { error_share: f64::NAN, ..EndpointFault::default() }.validate().is_err());
        assert!(serde_json::from_str::<EndpointFault>(r#"{"traffic_factor": 1}"#).is_err(), "a pod-only field");
    }

    #[test]
    fn cuts_default_to_a_black_hole_and_need_cut() {
        let cut: ClientCut = serde_json::from_str(r#"{"cut": true}"#).expect("valid");
        assert_eq!(cut, ClientCut { cut: true, mode: CutMode::Blackhole, fronts: Vec::new() });
        let reset: ClientCut = serde_json::from_str(r#"{"cut": true, "mode": "reset"}"#).expect("valid");
        assert_eq!(reset.mode, CutMode::Reset);
        for bad in
            [r#"{"mode": "reset"}"#, r#"{"cut": true, "mode": "drop"}"#, r#"{"cut": 1}"#, r#"{"cut": true, "x": 1}"#]
        {
            assert!(serde_json::from_str::<ClientCut>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_addresses_are_canonical() {
        assert_eq!(parse_client("127.0.0.3"), Ok(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(parse_client("::ffff:127.0.0.3"), Ok(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(parse_client("::1"), Ok("::1".parse().expect("an address")));
        assert_eq!(parse_client("127.0.0"), Err(CutError::NotAnAddress("127.0.0".into())));
        assert!(parse_client("localhost").is_err());
    }
}
