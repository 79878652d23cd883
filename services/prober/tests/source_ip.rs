//! `[probe] source_ip`: every check kind sends from it, as real peers see it (HTTP/1.1,
//! HTTPS, HTTP/2 without TLS, TCP with and without TLS, gRPC health, DNS over UDP), and a
//! source the prober cannot send from fails at start, naming the setting. How a cut-off
//! source fails its probes is tested against the simulator, in `services/mixmon/tests`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mixmon_model::{
    AddressPolicy, CheckId, CheckKind, CheckSpec, DnsCheck, DnsRecordType, FailureKind, GrpcCheck, HttpCheck,
    HttpVersion, ProbeResult, TcpCheck,
};
use mixmon_prober::checks::{self, HttpProber};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// On Linux every address of 127.0.0.0/8 is this host's; the servers listen on 127.0.0.1.
const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const DEADLINE: Duration = Duration::from_secs(15);

/// The peer addresses a server saw, in order.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<IpAddr>>>);

impl Peers {
    fn saw(&self, peer: SocketAddr) {
        self.0.lock().expect("lock").push(peer.ip());
    }

    fn seen(&self) -> Vec<IpAddr> {
        self.0.lock().expect("lock").clone()
    }

    /// The peers once `n` were seen: a connect-only probe can end before the server accepts.
    async fn first(&self, n: usize) -> Vec<IpAddr> {
        let seen = || self.0.lock().expect("lock").len() >= n;
        let waited =
            mixmon_testkit::eventually(DEADLINE, Duration::from_millis(10), || std::future::ready(seen())).await;
        assert!(waited.is_ok(), "{n} connections were not accepted in time");
        self.seen()
    }
}

fn spec(kind: CheckKind) -> CheckSpec {
    CheckSpec {
        id: CheckId::new("source").expect("id"),
        interval_ms: 10_000,
        timeout_ms: 3_000,
        phase_shift_ms: 0,
        kind,
    }
}

async fn run_one(prober: &HttpProber, kind: CheckKind) -> ProbeResult {
    let spec = spec(kind);
    assert!(spec.problems().is_empty(), "{:?}", spec.problems());
    let mut results = tokio::time::timeout(DEADLINE, checks::run(prober, &spec, 0)).await.expect("in time");
    assert_eq!(results.len(), 1, "{results:#?}");
    results.remove(0)
}

fn from_source() -> HttpProber {
    HttpProber::new().expect("prober").with_source_ip(Some(SOURCE))
}

async fn ok(_: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    Ok(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// Serves HTTP/1.1 (or HTTP/2 with prior knowledge) on a stream.
async fn serve_http<S>(io: S, h2: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let _ = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service_fn(ok)).await
    } else {
        hyper::server::conn::http1::Builder::new().serve_connection(io, service_fn(ok)).await
    };
}

/// A listener on 127.0.0.1 that records each peer and hands the stream to `handle`.
async fn listen<F, Fut>(handle: F) -> (SocketAddr, Peers)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peers = Peers::default();
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            seen.saw(peer);
            tokio::spawn(handle(stream));
        }
    });
    (addr, peers)
}

fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("self-signed cert");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server cert");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert)
}

#[tokio::test]
async fn http_https_and_http2_probes_come_from_the_source_address() {
    let (plain, plain_peers) = listen(|s| serve_http(s, false)).await;
    let (h2c, h2c_peers) = listen(|s| serve_http(s, true)).await;
    let (acceptor, cert) = tls_acceptor();
    let (tls, tls_peers) = listen(move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(stream) = acceptor.accept(s).await {
                serve_http(stream, false).await;
            }
        }
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let prober = HttpProber::with_root_certificates(roots).expect("prober").with_source_ip(Some(SOURCE));

    let result = run_one(&prober, CheckKind::Http(HttpCheck::get(format!("http://{plain}/health")))).await;
    assert!(result.success(), "{result:#?}");
    let result = run_one(&prober, CheckKind::Http(HttpCheck::get(format!("https://{tls}/health")))).await;
    assert!(result.success() && result.details.tls.is_some(), "{result:#?}");
    let mut http2 = HttpCheck::get(format!("http://{h2c}/health"));
    http2.http2 = true;
    let result = run_one(&prober, CheckKind::Http(http2)).await;
    assert!(result.success() && result.details.http_version == Some(HttpVersion::Http2), "{result:#?}");
    let tcp_tls = TcpCheck { host: "127.0.0.1".into(), port: tls.port(), tls: true, address: AddressPolicy::default() };
    let result = run_one(&prober, CheckKind::Tcp(tcp_tls)).await;
    assert!(result.success() && result.details.tls.is_some(), "{result:#?}");
    assert_eq!(tls_peers.first(2).await, [SOURCE, SOURCE], "https, then tcp with tls");
    for (what, peers) in [("http", plain_peers), ("h2c", h2c_peers)] {
        assert_eq!(peers.seen(), [SOURCE], "{what}");
    }

    // Without the setting the kernel picks the route's address, 127.0.0.1 on loopback.
    let default = HttpProber::new().expect("prober");
    let (addr, peers) = listen(|s| serve_http(s, false)).await;
    assert!(run_one(&default, CheckKind::Http(HttpCheck::get(format!("http://{addr}/")))).await.success());
    assert_eq!(peers.seen(), [IpAddr::from([127, 0, 0, 1])]);
}

#[tokio::test]
async fn tcp_and_grpc_probes_come_from_the_source_address() {
    let (tcp_addr, tcp_peers) = listen(|_| async {}).await;
    let tcp =
        TcpCheck { host: "127.0.0.1".into(), port: tcp_addr.port(), tls: false, address: AddressPolicy::default() };
    let result = run_one(&from_source(), CheckKind::Tcp(tcp)).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(tcp_peers.first(1).await, [SOURCE]);

    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("mixer", tonic_health::ServingStatus::Serving).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let grpc_addr = listener.local_addr().expect("addr");
    let grpc_peers = Peers::default();
    let seen = grpc_peers.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).inspect(move |stream| {
        if let Ok(peer) = stream.as_ref().map(|s| s.peer_addr()) {
            peer.into_iter().for_each(|p| seen.saw(p));
        }
    });
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
    let grpc = GrpcCheck {
        host: "127.0.0.1".into(),
        port: grpc_addr.port(),
        service: "mixer".into(),
        tls: false,
        address: AddressPolicy::default(),
    };
    let result = run_one(&from_source(), CheckKind::Grpc(grpc)).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(grpc_peers.seen(), [SOURCE]);
}

#[tokio::test]
async fn dns_queries_come_from_the_source_address() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let server = socket.local_addr().expect("addr");
    let peers = Peers::default();
    let seen = peers.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            seen.saw(peer);
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            reply[3] = 0x80;
            reply[7] = 1;
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 7]);
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    let dns = DnsCheck {
        name: "api.mixer.example".into(),
        record_type: DnsRecordType::A,
        server: Some(server.to_string()),
        expected: vec!["10.0.0.7".into()],
    };
    let result = run_one(&from_source(), CheckKind::Dns(dns)).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(peers.seen(), [SOURCE]);
}

#[tokio::test]
async fn a_source_of_the_other_family_fails_the_probe_naming_it() {
    let tcp = TcpCheck { host: "::1".into(), port: 9, tls: false, address: AddressPolicy::default() };
    let result = run_one(&from_source(), CheckKind::Tcp(tcp)).await;
    assert_eq!(result.failure, Some(FailureKind::Connection), "{result:#?}");
    assert!(result.error.contains("source_ip 127.0.0.3 cannot reach [::1]:9"), "{}", result.error);
    let dns = DnsCheck {
        name: "api.example".into(),
        record_type: DnsRecordType::A,
        server: Some("[::1]:53".into()),
        expected: vec![],
    };
    let result = run_one(&from_source(), CheckKind::Dns(dns)).await;
    assert_eq!(result.failure, Some(FailureKind::Connection), "{result:#?}");
    assert!(result.error.contains("source_ip 127.0.0.3"), "{}", result.error);
}

#[tokio::test]
async fn a_source_that_is_not_local_stops_the_prober_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // TEST-NET-1 (RFC 5737): never an address of this host.
    let text = format!(
        "[identity]\nid = \"p1\"\nregion = \"eu-west\"\n[buffer]\ndir = \"{}\"\n[probe]\nsource_ip = \"192.0.2.1\"\n",
        dir.path().display()
    );
    let config: mixmon_prober::ProberConfig =
        mixmon_config::parse_with_env("p.toml", &text, Vec::new()).expect("parses");
    let outcome = tokio::time::timeout(DEADLINE, mixmon_prober::run(config, std::future::pending())).await;
    let error = outcome.expect("fails at once").expect_err("refused").to_string();
    assert!(error.contains("probe.source_ip") && error.contains("192.0.2.1"), "{error}");
}
