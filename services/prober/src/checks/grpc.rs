//! The gRPC health check: `grpc.health.v1.Health/Check` for one service (empty: the server as
//! a whole) on a fresh connection; SERVING is success. The connection (and the TLS handshake,
//! with ALPN `h2` and the certificate's expiry recorded) is made here, timed like every other
//! check, and handed to tonic, so gRPC over TLS needs no TLS stack in tonic.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use mixmon_model::{CheckSpec, FailureKind, GrpcCheck, ProbeResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::common::{chain, connect, resolve_first, tls_handshake, Failure, Phase, Progress};
use super::http::{conclude, HttpProber};

/// A connected stream of either kind, boxed so tonic's connector has one type to return.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(crate) async fn probe(
    prober: &HttpProber,
    spec: &CheckSpec,
    grpc: &GrpcCheck,
    started_at_ms: i64,
    addr: Option<(SocketAddr, u64)>,
) -> ProbeResult {
    let (start, mut progress, budget) = super::common::begin(spec, addr);
    let work = run(prober, grpc, &mut progress, addr.map(|(a, _)| a));
    let outcome = tokio::time::timeout(budget, work).await;
    conclude(spec, started_at_ms, start, progress, outcome)
}

async fn run(
    prober: &HttpProber,
    grpc: &GrpcCheck,
    progress: &mut Progress,
    addr: Option<SocketAddr>,
) -> Result<(), Failure> {
    let addr = match addr {
        Some(addr) => addr,
        None => resolve_first(&grpc.host, grpc.port, grpc.address.ip, progress).await?,
    };
    let tcp = connect(addr, prober.source_ip, progress).await?;
    let io: Box<dyn Io> =
        if grpc.tls { Box::new(tls_handshake(&prober.h2, &grpc.host, tcp, progress).await?) } else { Box::new(tcp) };

    progress.enter(Phase::FirstByte);
    // tonic asks its connector for a connection; this one hands over the one made above, once.
    // A second ask (a reconnect) finds none and fails, which ends the probe as it should.
    let slot = Arc::new(Mutex::new(Some(io)));
    let connector = tower::service_fn(move |_: http::Uri| {
        let io = slot.lock().ok().and_then(|mut slot| slot.take());
        async move {
            io.map(TokioIo::new).ok_or_else(|| std::io::Error::other("the probe's one connection is already used"))
        }
    });
    let authority = if grpc.host.contains(':') {
        format!("http://[{}]:{}", grpc.host, grpc.port)
    } else {
        format!("http://{}:{}", grpc.host, grpc.port)
    };
    let endpoint = tonic::transport::Endpoint::from_shared(authority)
        .map_err(|e| Failure::new(FailureKind::Connection, format!("grpc: endpoint: {e}")))?;
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| Failure::new(FailureKind::Connection, format!("grpc: {}", chain(&e))))?;
    let reply = HealthClient::new(channel).check(HealthCheckRequest { service: grpc.service.clone() }).await.map_err(
        |status| {
            // A transport failure surfaces as UNAVAILABLE/UNKNOWN with a source; an answer
            // from the server (NOT_FOUND for an unknown service, UNIMPLEMENTED without the
            // health service) is the server's verdict, judged like an HTTP status.
            let kind = match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => FailureKind::Connection,
                _ => FailureKind::BadStatus,
            };
            Failure::new(kind, format!("grpc: {:?}: {}", status.code(), status.message()))
        },
    )?;
    progress.finish();
    let status = reply.into_inner().status();
    if status != ServingStatus::Serving {
        let service = if grpc.service.is_empty() { "the server" } else { grpc.service.as_str() };
        return Err(Failure::new(
            FailureKind::BadStatus,
            format!("grpc health: {service} is {}", status.as_str_name()),
        ));
    }
    Ok(())
}
