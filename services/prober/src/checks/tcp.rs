//! The TCP check: resolve, connect, and optionally complete a TLS handshake (certificate
//! verified for the host name, its expiry recorded). Success means the port accepted, and with
//! TLS that the handshake and certificate were good.

use std::net::SocketAddr;

use mixmon_model::{CheckSpec, ProbeResult, TcpCheck};
use tokio::io::AsyncWriteExt;

use super::common::{connect, resolve_first, tls_handshake, Failure, Progress};
use super::http::{conclude, HttpProber};

pub(crate) async fn probe(
    prober: &HttpProber,
    spec: &CheckSpec,
    tcp: &TcpCheck,
    started_at_ms: i64,
    addr: Option<(SocketAddr, u64)>,
) -> ProbeResult {
    let (start, mut progress, budget) = super::common::begin(spec, addr);
    let work = run(prober, tcp, &mut progress, addr.map(|(a, _)| a));
    let outcome = tokio::time::timeout(budget, work).await;
    conclude(spec, started_at_ms, start, progress, outcome)
}

async fn run(
    prober: &HttpProber,
    tcp: &TcpCheck,
    progress: &mut Progress,
    addr: Option<SocketAddr>,
) -> Result<(), Failure> {
    let addr = match addr {
        Some(addr) => addr,
        None => resolve_first(&tcp.host, tcp.port, tcp.address.ip, progress).await?,
    };
    let stream = connect(addr, prober.source_ip, progress).await?;
    if tcp.tls {
        let mut tls = tls_handshake(&prober.plain, &tcp.host, stream, progress).await?;
        // A polite close_notify; the verdict is already in, so its failure does not matter.
        let _ = tls.shutdown().await;
    }
    Ok(())
}
