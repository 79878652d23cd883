//! Check engines: each turns one run of a [`CheckSpec`] into [`ProbeResult`]s, failures
//! included, so the scheduler never has to handle errors from a probe, only results.
//!
//! `http` (HTTP(S), redirects, assertions), `tcp` (connect, optional TLS), `grpc`
//! (`grpc.health.v1`), `dns` (one query over UDP); `common` holds what they share: the phase
//! clock, resolution with a family preference, connect (from the configured source address,
//! if any), and the TLS handshake with certificate expiry.

mod common;
mod dns;
mod grpc;
mod http;
mod rx_clock;
mod tcp;

use std::time::Instant;

pub use common::check_source_ip;
pub use http::{CheckError, HttpProber, BODY_LIMIT_BYTES};

use mixmon_model::{AddressPolicy, CheckKind, CheckSpec, ProbeResult};

use common::{micros, resolve, Progress};

/// Runs one probe of `spec` with the engine its kind needs: one result, or with
/// `each_address` one result per resolved address (each carrying its address in
/// `details.address`; a name that does not resolve gives one DNS failure).
///
/// A free function rather than a method on the spec so the scheduler holds one engine
/// (TLS configurations and all) and shares it across every check.
pub async fn run(prober: &HttpProber, spec: &CheckSpec, started_at_ms: i64) -> Vec<ProbeResult> {
    let (host, port, policy) = match &spec.kind {
        CheckKind::Http(http) if http.address.each_address => match http::Target::parse(&http.url) {
            Ok(target) => (target.host().to_owned(), target.port(), http.address),
            Err(_) => return vec![run_one(prober, spec, started_at_ms, None).await],
        },
        CheckKind::Tcp(tcp) if tcp.address.each_address => (tcp.host.clone(), tcp.port, tcp.address),
        CheckKind::Grpc(grpc) if grpc.address.each_address => (grpc.host.clone(), grpc.port, grpc.address),
        _ => return vec![run_one(prober, spec, started_at_ms, None).await],
    };
    fan_out(prober, spec, started_at_ms, &host, port, policy).await
}

async fn run_one(
    prober: &HttpProber,
    spec: &CheckSpec,
    started_at_ms: i64,
    addr: Option<(std::net::SocketAddr, u64)>,
) -> ProbeResult {
    match &spec.kind {
        CheckKind::Http(http) => prober.probe_at(spec, http, started_at_ms, addr).await,
        CheckKind::Tcp(tcp) => tcp::probe(prober, spec, tcp, started_at_ms, addr).await,
        CheckKind::Grpc(grpc) => grpc::probe(prober, spec, grpc, started_at_ms, addr).await,
        CheckKind::Dns(dns) => dns::probe(spec, dns, prober.source_ip, started_at_ms).await,
    }
}

/// Resolves once, then probes every address at the same time, each within the check's timeout.
async fn fan_out(
    prober: &HttpProber,
    spec: &CheckSpec,
    started_at_ms: i64,
    host: &str,
    port: u16,
    policy: AddressPolicy,
) -> Vec<ProbeResult> {
    let start = Instant::now();
    let budget = std::time::Duration::from_millis(u64::from(spec.timeout_ms));
    let resolved = tokio::time::timeout(budget, resolve(host, port, policy.ip)).await;
    let dns_us = micros(start.elapsed());
    let addrs = match resolved {
        Ok(Ok(addrs)) => addrs,
        other => {
            let mut progress = Progress::new(start);
            // The resolution began with the probe: charge all of it to DNS.
            progress.enter_at(common::Phase::Dns, start);
            let outcome = other.map(|r| r.map(|_| ()));
            return vec![http::conclude(spec, started_at_ms, start, progress, outcome)];
        }
    };
    let probes = addrs.into_iter().map(|addr| run_one(prober, spec, started_at_ms, Some((addr, dns_us))));
    futures::future::join_all(probes).await
}
