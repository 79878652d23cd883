//! Every check kind and HTTP option against real local peers: raw HTTP servers with
//! hand-written answers (headers, bodies, redirects), TLS servers with fresh certificates (one
//! expired), a tonic-health gRPC server, and a DNS responder written here over UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mixmon_model::{
    AddressPolicy, BodyAssertion, CheckId, CheckKind, CheckSpec, DnsCheck, DnsRecordType, FailureKind, GrpcCheck,
    HttpCheck, HttpVersion, IpPreference, ProbeResult, TcpCheck,
};
use mixmon_prober::checks::{self, HttpProber};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const DEADLINE: Duration = Duration::from_secs(15);

fn spec(kind: CheckKind) -> CheckSpec {
    CheckSpec {
        id: CheckId::new("kinds").expect("id"),
        interval_ms: 10_000,
        timeout_ms: 3_000,
        phase_shift_ms: 0,
        kind,
    }
}

async fn run_with(prober: &HttpProber, kind: CheckKind) -> Vec<ProbeResult> {
    let spec = spec(kind);
    assert!(spec.problems().is_empty(), "{:?}", spec.problems());
    match tokio::time::timeout(DEADLINE, checks::run(prober, &spec, 1_700_000_000_000)).await {
        Ok(results) => results,
        Err(_) => panic!("probe did not return within {DEADLINE:?}"),
    }
}

async fn run_one(prober: &HttpProber, kind: CheckKind) -> ProbeResult {
    let mut results = run_with(prober, kind).await;
    assert_eq!(results.len(), 1, "{results:#?}");
    results.remove(0)
}

fn prober() -> HttpProber {
    HttpProber::new().expect("prober")
}

fn assert_failed(result: &ProbeResult, kind: FailureKind, error_part: &str) {
    assert_eq!(result.failure, Some(kind), "{result:#?}");
    assert!(result.error.contains(error_part), "error {:?} should mention {error_part:?}", result.error);
}

/// Reads a whole request (head and a Content-Length body).
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).to_string()
}

/// An HTTP server whose answer depends on the request path: `route(path)` gives the response.
async fn serve_routes(route: fn(&str) -> String) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let request = read_request(&mut stream).await;
                let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = stream.write_all(route(&path).as_bytes()).await;
                let _ = stream.shutdown().await;
                let _ = tx.send(request);
            });
        }
    });
    (addr, rx)
}

fn ok(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

fn routes(path: &str) -> String {
    match path {
        "/hop1" => "HTTP/1.1 302 Found\r\nLocation: /hop2\r\nContent-Length: 0\r\n\r\n".into(),
        "/hop2" => "HTTP/1.1 307 Temporary Redirect\r\nLocation: final?x=1\r\nContent-Length: 0\r\n\r\n".into(),
        "/loop" => "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".into(),
        "/json" => ok(r#"{"status":"up","checks":{"db":true,"lag":3}}"#),
        _ => ok("all good: mixer up"),
    }
}

#[tokio::test]
async fn method_headers_and_body_are_sent_as_configured() {
    let (addr, mut requests) = serve_routes(routes).await;
    let mut http = HttpCheck::get(format!("http://{addr}/submit"));
    http.method = "POST".into();
    http.headers = vec![("X-Probe".into(), "mixmon".into()), ("Content-Type".into(), "application/json".into())];
    http.body = r#"{"ping":1}"#.into();
    let result = run_one(&prober(), CheckKind::Http(http)).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(result.details.http_version, Some(HttpVersion::Http11));
    assert_eq!(result.details.address, Some(addr));
    let request = requests.recv().await.expect("request");
    let lower = request.to_ascii_lowercase();
    assert!(request.starts_with("POST /submit HTTP/1.1\r\n"), "{request}");
    assert!(lower.contains("\r\nx-probe: mixmon\r\n") && lower.contains("\r\ncontent-length: 10\r\n"), "{request}");
    assert!(request.ends_with(r#"{"ping":1}"#), "{request}");
}

#[tokio::test]
async fn body_assertions_pass_or_name_the_one_that_failed() {
    let (addr, _requests) = serve_routes(routes).await;
    let prober = prober();
    let with = |path: &str, assertions: Vec<BodyAssertion>| {
        let mut http = HttpCheck::get(format!("http://{addr}{path}"));
        http.assertions = assertions;
        CheckKind::Http(http)
    };
    let passing = with(
        "/json",
        vec![
            BodyAssertion::Contains("\"up\"".into()),
            BodyAssertion::NotContains("down".into()),
            BodyAssertion::Matches(r#""lag":\d+"#.into()),
            BodyAssertion::JsonField { pointer: "/status".into(), equals: "up".into() },
            BodyAssertion::JsonField { pointer: "/checks/db".into(), equals: "true".into() },
            BodyAssertion::JsonField { pointer: "/checks/lag".into(), equals: "3".into() },
        ],
    );
    let result = run_one(&prober, passing).await;
    assert!(result.success(), "{result:#?}");

    let cases = [
        (
            with("/", vec![BodyAssertion::Contains("good".into()), BodyAssertion::Contains("down".into())]),
            "assertion 1 (body contains \"down\") failed: not found",
        ),
        (
            with("/", vec![BodyAssertion::NotContains("mixer".into())]),
            "assertion 0 (body does not contain \"mixer\") failed: found",
        ),
        (
            with("/", vec![BodyAssertion::Matches("^down".into())]),
            "assertion 0 (body matches /^down/) failed: no match",
        ),
        (
            with("/", vec![BodyAssertion::JsonField { pointer: "/status".into(), equals: "up".into() }]),
            "body is not JSON",
        ),
        (
            with("/json", vec![BodyAssertion::JsonField { pointer: "/status".into(), equals: "down".into() }]),
            "found \"up\"",
        ),
        (
            with("/json", vec![BodyAssertion::JsonField { pointer: "/nope".into(), equals: "x".into() }]),
            "no such field",
        ),
    ];
    for (kind, error) in cases {
        let result = run_one(&prober, kind).await;
        assert_failed(&result, FailureKind::AssertionFailed, error);
        assert_eq!(result.status_code, 200, "the status was fine: {result:#?}");
    }
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit_with_phases_summed() {
    let (addr, mut requests) = serve_routes(routes).await;
    let prober = prober();
    let result = run_one(&prober, CheckKind::Http(HttpCheck::get(format!("http://{addr}/hop1")))).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!((result.status_code, result.details.redirects), (200, 2));
    let mut paths = Vec::new();
    for _ in 0..3 {
        let request = tokio::time::timeout(DEADLINE, requests.recv()).await.ok().flatten().unwrap_or_default();
        paths.push(request.split(' ').nth(1).unwrap_or("").to_owned());
    }
    // Each hop is its own connection, served by its own task: they may be logged in any order.
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, ["/final?x=1", "/hop1", "/hop2"], "{paths:?}");
    let p = result.phases;
    assert!(p.connect_us + p.first_byte_us + p.transfer_us <= result.duration_us, "{result:#?}");

    let mut off = HttpCheck::get(format!("http://{addr}/hop1"));
    off.max_redirects = 0;
    let result = run_one(&prober, CheckKind::Http(off)).await;
    assert_failed(&result, FailureKind::BadStatus, "status 302 not in [200]");

    let result = run_one(&prober, CheckKind::Http(HttpCheck::get(format!("http://{addr}/loop")))).await;
    assert_failed(&result, FailureKind::BadStatus, "status 302 not in [200] (after 10 redirects)");
    assert_eq!(result.details.redirects, 10);
}

#[tokio::test]
async fn address_family_and_each_address_policies() {
    let (addr, _requests) = serve_routes(routes).await;
    let prober = prober();
    let mut http = HttpCheck::get(format!("http://{addr}/"));
    http.address = AddressPolicy { ip: IpPreference::Ip6, each_address: false };
    let result = run_one(&prober, CheckKind::Http(http.clone())).await;
    assert_failed(&result, FailureKind::Dns, "not an ip6 address");

    // `localhost` resolves to at least 127.0.0.1 here; every address gets its own result.
    let mut each = HttpCheck::get(format!("http://localhost:{}/", addr.port()));
    each.address = AddressPolicy { ip: IpPreference::Ip4, each_address: true };
    let results = run_with(&prober, CheckKind::Http(each)).await;
    assert!(!results.is_empty());
    for result in &results {
        assert!(result.success(), "{result:#?}");
        assert!(result.details.address.is_some_and(|a| a.is_ipv4() && a.port() == addr.port()), "{result:#?}");
    }

    let mut nowhere = HttpCheck::get("http://nonexistent.invalid/");
    nowhere.address.each_address = true;
    let results = run_with(&prober, CheckKind::Http(nowhere)).await;
    assert_eq!(results.len(), 1);
    assert_failed(&results[0], FailureKind::Dns, "nonexistent.invalid");
    assert!(results[0].phases.dns_us > 0 && results[0].phases.dns_us <= results[0].duration_us, "{results:#?}");
}

/// A TLS server for 127.0.0.1 with a certificate valid from `not_before` to `not_after`
/// (years); answers every request with 200.
async fn serve_tls(not_before: i32, not_after: i32) -> (SocketAddr, CertificateDer<'static>) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(not_before, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let der = cert.der().clone();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(ok("secure").as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, der)
}

fn trusting(cert: CertificateDer<'static>) -> HttpProber {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    HttpProber::with_root_certificates(roots).expect("prober")
}

#[tokio::test]
async fn tls_expiry_and_version_are_recorded_on_success() {
    let (addr, cert) = serve_tls(2020, 2200).await;
    let prober = trusting(cert);
    let result = run_one(&prober, CheckKind::Http(HttpCheck::get(format!("https://{addr}/")))).await;
    assert!(result.success(), "{result:#?}");
    let tls = result.details.tls.as_ref().expect("tls info");
    assert_eq!((tls.version.as_str(), tls.valid), ("TLSv1.3", true));
    assert_eq!(tls.cert_not_after_s, 7_258_118_400, "2200-01-01T00:00:00Z");
    assert!(result.tls_days_left().is_some_and(|days| days > 365 * 100), "{result:#?}");

    let tcp = TcpCheck { host: "127.0.0.1".into(), port: addr.port(), tls: true, address: AddressPolicy::default() };
    let result = run_one(&prober, CheckKind::Tcp(tcp)).await;
    assert!(result.success(), "{result:#?}");
    assert!(result.phases.tls_us > 0 && result.details.tls.as_ref().is_some_and(|t| t.valid), "{result:#?}");
}

#[tokio::test]
async fn an_expired_certificate_fails_as_tls_and_still_reports_its_expiry() {
    let (addr, cert) = serve_tls(2000, 2001).await;
    let result = run_one(&trusting(cert), CheckKind::Http(HttpCheck::get(format!("https://{addr}/")))).await;
    assert_failed(&result, FailureKind::Tls, "tls: certificate expired");
    let tls = result.details.tls.as_ref().expect("tls info on failure");
    assert!(!tls.valid);
    assert_eq!(tls.cert_not_after_s, 978_307_200, "2001-01-01T00:00:00Z");
    assert!(result.tls_days_left().is_some_and(|days| days < 0));
}

#[tokio::test]
async fn tcp_connects_or_names_the_refusal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let prober = prober();
    let tcp = TcpCheck { host: "127.0.0.1".into(), port, tls: false, address: AddressPolicy::default() };
    let result = run_one(&prober, CheckKind::Tcp(tcp.clone())).await;
    assert!(result.success(), "{result:#?}");
    assert!(result.phases.connect_us > 0 && result.details.tls.is_none(), "{result:#?}");
    drop(listener);
    let result = run_one(&prober, CheckKind::Tcp(tcp)).await;
    assert_failed(&result, FailureKind::ConnectionRefused, "connect: connection refused");
}

#[tokio::test]
async fn grpc_health_serving_is_success_and_anything_else_is_named() {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("mixer", ServingStatus::Serving).await;
    reporter.set_service_status("drained", ServingStatus::NotServing).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let prober = prober();
    let grpc = |service: &str| {
        CheckKind::Grpc(GrpcCheck {
            host: "127.0.0.1".into(),
            port: addr.port(),
            service: service.into(),
            tls: false,
            address: AddressPolicy::default(),
        })
    };
    for service in ["", "mixer"] {
        let result = run_one(&prober, grpc(service)).await;
        assert!(result.success(), "{service}: {result:#?}");
        assert!(result.phases.connect_us > 0 && result.phases.first_byte_us > 0, "{result:#?}");
    }
    let result = run_one(&prober, grpc("drained")).await;
    assert_failed(&result, FailureKind::BadStatus, "grpc health: drained is NOT_SERVING");
    let result = run_one(&prober, grpc("unknown")).await;
    assert_failed(&result, FailureKind::BadStatus, "grpc: NotFound");

    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let refused = CheckKind::Grpc(GrpcCheck {
        host: "127.0.0.1".into(),
        port,
        service: String::new(),
        tls: false,
        address: AddressPolicy::default(),
    });
    assert_failed(&run_one(&prober, refused).await, FailureKind::ConnectionRefused, "connection refused");
}

/// A DNS responder: names starting with `missing` are NXDOMAIN, every other A query is
/// answered with 10.0.0.7 and 10.0.0.8.
async fn dns_responder() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let query = &buf[..n];
            let name_start = 12;
            let missing = query.get(name_start + 1..name_start + 8) == Some(b"missing");
            let mut reply = query.to_vec();
            reply[2] |= 0x80; // a response
            reply[3] = if missing { 0x83 } else { 0x80 }; // RA, and NXDOMAIN when missing
            if !missing {
                reply[7] = 2;
                for last in [7u8, 8] {
                    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, last]);
                }
            }
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn dns_answers_are_checked_against_the_expected_values() {
    let server = dns_responder().await;
    let prober = prober();
    let dns = |name: &str, expected: &[&str]| {
        CheckKind::Dns(DnsCheck {
            name: name.into(),
            record_type: DnsRecordType::A,
            server: Some(server.to_string()),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        })
    };
    let result = run_one(&prober, dns("api.mixer.example", &["10.0.0.8", "10.0.0.7"])).await;
    assert!(result.success(), "{result:#?}");
    assert!(result.phases.dns_us > 0 && result.details.address == Some(server), "{result:#?}");
    assert!(run_one(&prober, dns("api.mixer.example", &[])).await.success());

    let result = run_one(&prober, dns("api.mixer.example", &["10.0.0.9"])).await;
    assert_failed(&result, FailureKind::AssertionFailed, "lacks \"10.0.0.9\" (got 10.0.0.7, 10.0.0.8)");
    let result = run_one(&prober, dns("missing.mixer.example", &[])).await;
    assert_failed(&result, FailureKind::Dns, "NXDOMAIN");

    let mut aaaa = dns("api.mixer.example", &[]);
    if let CheckKind::Dns(d) = &mut aaaa {
        d.record_type = DnsRecordType::Aaaa;
    }
    assert_failed(&run_one(&prober, aaaa).await, FailureKind::Dns, "has no AAAA record");
}

#[tokio::test]
async fn a_silent_dns_server_times_out_in_the_dns_phase() {
    // Bound but never answering.
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut spec = spec(CheckKind::Dns(DnsCheck {
        name: "api.example".into(),
        record_type: DnsRecordType::A,
        server: Some(socket.local_addr().expect("addr").to_string()),
        expected: vec![],
    }));
    spec.timeout_ms = 200;
    let results = checks::run(&prober(), &spec, 0).await;
    assert_failed(&results[0], FailureKind::Timeout, "timeout after 200 ms during dns");
    assert!(results[0].phases.dns_us >= 150_000, "{:#?}", results[0]);
}
