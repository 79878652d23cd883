//! The simulator's configuration, its defaults and the `us-west=8,...` region list syntax.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::SimError;

/// Names of the fronts that always exist besides one per region; a region may not take them.
pub(crate) const GLOBAL_FRONTS: [&str; 2] = ["edge", "api"];
/// Upper bound on pods per region: each pod is a listener and a share of the ticker's work.
const MAX_PODS_PER_REGION: usize = 256;
/// Upper bound on the simulated Kubernetes nodes per region.
const MAX_NODES_PER_REGION: usize = 256;
/// Upper bound on the simulated request rate: each request is a histogram observation per tick.
const MAX_RPS_PER_POD: f64 = 10_000.0;

/// How the fleet looks and where it listens.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Regions in order, each with its pod count (pods are `mixer-<region>-<i>`).
    pub regions: Vec<(String, usize)>,
    /// Address every pod and front binds (each on an OS-chosen port).
    pub bind_ip: IpAddr,
    /// Address of the admin API; port 0 lets the OS choose.
    pub admin_addr: SocketAddr,
    /// Mean simulated mix requests per second and pod.
    pub requests_per_second_per_pod: f64,
    /// Seed of every pod's random generator, so runs are reproducible.
    pub seed: u64,
    /// When set, the admin API (the Kubernetes API under `/k8s` included) wants
    /// `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// Each region's pods are spread round-robin over this many nodes, `node-<region>-<i>`.
    pub nodes_per_region: usize,
}

impl Default for SimConfig {
    /// The production-shaped fleet on loopback; the admin port is OS-chosen so that
    /// several simulators (tests) never collide.
    fn default() -> Self {
        Self {
            regions: vec![
                ("us-west".to_owned(), 8),
                ("us-east".to_owned(), 8),
                ("eu-west".to_owned(), 7),
                ("ap".to_owned(), 7),
            ],
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            requests_per_second_per_pod: 40.0,
            seed: 0,
            admin_token: None,
            nodes_per_region: 3,
        }
    }
}

impl SimConfig {
    /// Refuses configurations that would produce ambiguous names or an absurd load.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.regions.is_empty() {
            return Err(SimError::Config("at least one region is needed".into()));
        }
        let mut seen = BTreeSet::new();
        for (region, pods) in &self.regions {
            if !valid_name(region) {
                return Err(SimError::Config(format!(
                    "region name `{region}` must be non-empty ASCII letters, digits, '-', '_' or '.'"
                )));
            }
            if GLOBAL_FRONTS.contains(&region.as_str()) {
                return Err(SimError::Config(format!("region name `{region}` is reserved for a global front")));
            }
            if !seen.insert(region.as_str()) {
                return Err(SimError::Config(format!("region `{region}` is listed twice")));
            }
            if *pods == 0 || *pods > MAX_PODS_PER_REGION {
                return Err(SimError::Config(format!(
                    "region `{region}` has {pods} pods; expected 1..={MAX_PODS_PER_REGION}"
                )));
            }
        }
        let rps = self.requests_per_second_per_pod;
        if !rps.is_finite() || !(0.0..=MAX_RPS_PER_POD).contains(&rps) {
            return Err(SimError::Config(format!(
                "requests per second per pod is {rps}; expected 0..={MAX_RPS_PER_POD}"
            )));
        }
        if self.nodes_per_region == 0 || self.nodes_per_region > MAX_NODES_PER_REGION {
            return Err(SimError::Config(format!(
                "{} nodes per region; expected 1..={MAX_NODES_PER_REGION}",
                self.nodes_per_region
            )));
        }
        if self.admin_token.as_deref() == Some("") {
            return Err(SimError::Config("the admin token is empty".into()));
        }
        Ok(())
    }
}

/// True for names made only of ASCII letters, digits, '-', '_' and '.' (and not empty), so a
/// name is always safe in a URL path, a Prometheus label and a pod name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses `us-west=8,us-east=8` into regions with pod counts; names are checked by
/// [`SimConfig::validate`].
pub fn parse_regions(spec: &str) -> Result<Vec<(String, usize)>, SimError> {
    spec.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, count) = part
                .split_once('=')
                .ok_or_else(|| SimError::Config(format!("`{part}` is not REGION=PODS (e.g. us-west=8)")))?;
            let count = count
                .trim()
                .parse::<usize>()
                .map_err(|_| SimError::Config(format!("`{count}` in `{part}` is not a pod count")))?;
            Ok((name.trim().to_owned(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(regions: &[(&str, usize)]) -> SimConfig {
        SimConfig { regions: regions.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(), ..SimConfig::default() }
    }

    #[test]
    fn parses_region_lists() {
        let parsed = parse_regions("us-west=8, eu-west=7,").expect("valid list");
        assert_eq!(parsed, vec![("us-west".to_owned(), 8), ("eu-west".to_owned(), 7)]);
        assert!(parse_regions("us-west").is_err());
        assert!(parse_regions("us-west=x").is_err());
        assert!(parse_regions("us-west=-1").is_err());
    }

    #[test]
    fn validates_names_and_counts() {
        assert!(SimConfig::default().validate().is_ok());
        assert!(config(&[("eu_west.2", 1)]).validate().is_ok());
        for bad in [
            config(&[]),
            config(&[("us west", 1)]),
            config(&[("us/west", 1)]),
            config(&[("", 1)]),
            config(&[("edge", 1)]),
            config(&[("ap", 1), ("ap", 2)]),
            config(&[("ap", 0)]),
            config(&[("ap", 100_000)]),
        ] {
            assert!(bad.validate().is_err(), "{:?} should be refused", bad.regions);
        }
        for rps in [f64::NAN, -1.0, f64::INFINITY, 1e9] {
            let bad = SimConfig { requests_per_second_per_pod: rps, ..SimConfig::default() };
            assert!(bad.validate().is_err(), "rps {rps} should be refused");
        }
        assert!(SimConfig { nodes_per_region: 0, ..SimConfig::default() }.validate().is_err());
        let empty_token = SimConfig { admin_token: Some(String::new()), ..SimConfig::default() };
        assert!(empty_token.validate().is_err());
    }
}
