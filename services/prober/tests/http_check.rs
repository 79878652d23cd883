//! The HTTP(S) check engine against real local servers: raw TCP servers that answer with
//! hand-written HTTP responses (so each misbehaviour is exactly what the test says), and a
//! tokio-rustls server with a certificate made on the spot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixmon_model::{CheckId, CheckKind, CheckSpec, FailureKind, HttpCheck, ProbeResult};
use mixmon_prober::checks::{self, HttpProber};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Outer bound on any probe in these tests: far above every check timeout used, so hitting it
/// means the engine failed to bound itself.
const PROBE_DEADLINE: Duration = Duration::from_secs(15);

fn spec(url: &str, timeout_ms: u32, expected_status: &[u16]) -> (CheckSpec, HttpCheck) {
    let http = HttpCheck { expected_status: expected_status.to_vec(), ..HttpCheck::get(url) };
    let spec = CheckSpec {
        id: CheckId::new("test-check").expect("a valid id"),
        interval_ms: 10_000,
        timeout_ms,
        phase_shift_ms: 0,
        kind: CheckKind::Http(http.clone()),
    };
    (spec, http)
}

async fn probe_with(prober: &HttpProber, url: &str, timeout_ms: u32, expected: &[u16]) -> ProbeResult {
    let (spec, http) = spec(url, timeout_ms, expected);
    match tokio::time::timeout(PROBE_DEADLINE, prober.probe(&spec, &http, 1_700_000_000_000)).await {
        Ok(result) => result,
        Err(_) => panic!("probe of {url} did not return within {PROBE_DEADLINE:?}"),
    }
}

async fn probe(url: &str, timeout_ms: u32, expected: &[u16]) -> ProbeResult {
    let prober = HttpProber::new().expect("prober with webpki roots");
    probe_with(&prober, url, timeout_ms, expected).await
}

/// Reads a request head, or gives up early on bytes that cannot be HTTP (a TLS ClientHello),
/// the way a real server answers garbage with a 400 instead of waiting for more.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return head,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || !head[0].is_ascii_uppercase() {
            return head;
        }
    }
}

#[derive(Clone)]
struct Reply {
    head: &'static str,
    body_len: usize,
    delay: Duration,
}

fn reply(head: &'static str) -> Reply {
    Reply { head, body_len: 0, delay: Duration::ZERO }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reply: Reply) -> Vec<u8> {
    let request = read_head(&mut stream).await;
    // Waiting here is the server's processing time, which the probe must see as first byte.
    tokio::time::sleep(reply.delay).await;
    let _ = stream.write_all(reply.head.as_bytes()).await;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = reply.body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        // The prober may hang up once it has read enough; that ends the body here.
        if stream.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        left -= n;
    }
    let _ = stream.shutdown().await;
    request
}

/// A plain-HTTP server answering every connection with `reply`; returns its address and a
/// channel carrying each request head it received.
async fn serve(reply: Reply) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (reply, tx) = (reply.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(answer(stream, reply).await);
            });
        }
    });
    (addr, rx)
}

/// An HTTPS server with a fresh self-signed certificate for 127.0.0.1; returns its address and
/// the certificate, for a client to trust.
async fn serve_tls(reply: Reply) -> (SocketAddr, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("self-signed cert");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, reply) = (acceptor.clone(), reply.clone());
            tokio::spawn(async move {
                // A client refusing the certificate ends the handshake; nothing to answer then.
                if let Ok(tls) = acceptor.accept(stream).await {
                    answer(tls, reply).await;
                }
            });
        }
    });
    (addr, cert)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

fn assert_failed(result: &ProbeResult, kind: FailureKind, error_part: &str) {
    assert_eq!(result.failure, Some(kind), "{result:#?}");
    assert!(result.error.contains(error_part), "error {:?} should mention {error_part:?}", result.error);
    assert!(!result.success());
}

#[tokio::test]
async fn success_reports_status_and_phases_that_fit_in_the_duration() {
    let (addr, mut requests) = serve(reply(OK)).await;
    let result = probe(&format!("http://{addr}/health?deep=1"), 5_000, &[200]).await;

    assert!(result.success(), "{result:#?}");
    assert_eq!(result.status_code, 200);
    assert_eq!(result.error, "");
    assert_eq!(result.check_id.as_str(), "test-check");
    assert_eq!(result.started_at_ms, 1_700_000_000_000);
    let p = result.phases;
    assert_eq!(p.dns_us, 0, "an IP literal needs no DNS");
    assert_eq!(p.tls_us, 0, "no TLS on http://");
    assert!(p.connect_us > 0 && p.first_byte_us > 0, "{p:?}");
    let sum = p.dns_us + p.connect_us + p.tls_us + p.first_byte_us + p.transfer_us;
    assert!(sum <= result.duration_us, "phases {sum} µs exceed duration {} µs", result.duration_us);

    let request = String::from_utf8(requests.recv().await.expect("request head")).expect("utf-8 head");
    assert!(request.starts_with("GET /health?deep=1 HTTP/1.1\r\n"), "{request}");
    let lower = request.to_ascii_lowercase();
    assert!(lower.contains(&format!("\r\nhost: {addr}\r\n")), "{request}");
    assert!(lower.contains(&format!("\r\nuser-agent: mixmon-prober/{}\r\n", env!("CARGO_PKG_VERSION"))), "{request}");
    assert!(lower.contains("\r\naccept: */*\r\n") && lower.contains("\r\nconnection: close\r\n"), "{request}");
}

#[tokio::test]
async fn unexpected_status_is_bad_status_with_the_code() {
    let (addr, _requests) = serve(reply("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")).await;
    let result = probe(&format!("http://{addr}/"), 5_000, &[200]).await;
    assert_failed(&result, FailureKind::BadStatus, "status 503 not in [200]");
    assert_eq!(result.status_code, 503);
}

#[tokio::test]
async fn any_listed_status_is_accepted() {
    let (addr, _requests) = serve(reply("HTTP/1.1 204 No Content\r\n\r\n")).await;
    let result = probe(&format!("http://{addr}/"), 5_000, &[200, 204]).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(result.status_code, 204);
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let result = probe(&format!("http://{addr}/"), 5_000, &[200]).await;
    assert_failed(&result, FailureKind::ConnectionRefused, "connect: connection refused");
    assert_eq!(result.status_code, 0);
}

#[tokio::test]
async fn silent_server_times_out_naming_the_phase() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // Accept and hold every connection open without a byte of answer.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let result = probe(&format!("http://{addr}/"), 300, &[200]).await;
    assert_failed(&result, FailureKind::Timeout, "timeout after 300 ms during first byte");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(result.duration_us >= 300_000, "{result:#?}");
    let p = result.phases;
    assert!(p.connect_us > 0, "completed phases are kept: {result:#?}");
    assert!(p.first_byte_us >= 200_000, "the wait is charged to the phase that timed out: {result:#?}");
    assert!(p.connect_us + p.first_byte_us <= result.duration_us, "{result:#?}");
    holder.abort();
}

#[tokio::test]
async fn unresolvable_host_is_dns() {
    let result = probe("http://nonexistent.invalid/", 5_000, &[200]).await;
    assert_failed(&result, FailureKind::Dns, "dns: ");
    assert!(result.error.contains("nonexistent.invalid"), "{}", result.error);
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_tls() {
    let (addr, _requests) = serve(reply("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")).await;
    let result = probe(&format!("https://{addr}/"), 5_000, &[200]).await;
    assert_failed(&result, FailureKind::Tls, "tls: ");
    assert_eq!(result.status_code, 0);
}

#[tokio::test]
async fn https_success_with_a_trusted_private_root() {
    let (addr, cert) = serve_tls(reply(OK)).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("add root");
    let prober = HttpProber::with_root_certificates(roots).expect("prober");

    let result = probe_with(&prober, &format!("https://{addr}/"), 5_000, &[200]).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(result.status_code, 200);
    let p = result.phases;
    assert!(p.tls_us > 0 && p.connect_us > 0 && p.first_byte_us > 0, "{p:?}");
    assert!(p.connect_us + p.tls_us + p.first_byte_us + p.transfer_us <= result.duration_us, "{result:#?}");

    // The same engine serves many probes; each makes its own connection.
    let again = probe_with(&prober, &format!("https://{addr}/"), 5_000, &[200]).await;
    assert!(again.success(), "{again:#?}");
}

#[tokio::test]
async fn https_with_an_untrusted_certificate_is_tls() {
    let (addr, _cert) = serve_tls(reply(OK)).await;
    let result = probe(&format!("https://{addr}/"), 5_000, &[200]).await;
    assert_failed(&result, FailureKind::Tls, "tls: invalid peer certificate: UnknownIssuer");
}

#[tokio::test]
async fn server_think_time_counts_as_first_byte() {
    let (addr, _requests) = serve(Reply { delay: Duration::from_millis(50), ..reply(OK) }).await;
    let result = probe(&format!("http://{addr}/"), 5_000, &[200]).await;
    assert!(result.success(), "{result:#?}");
    assert!(result.duration_us >= 50_000, "{result:#?}");
    assert!(result.phases.first_byte_us >= 50_000, "{result:#?}");
}

#[tokio::test]
async fn body_beyond_the_limit_is_cut_short_not_failed() {
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\n\r\n";
    let (addr, _requests) = serve(Reply { body_len: 8 << 20, ..reply(head) }).await;
    let result = probe(&format!("http://{addr}/big"), 5_000, &[200]).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(result.status_code, 200);
    assert!(result.phases.transfer_us > 0, "{result:#?}");

    // A body that never ends (delimited by a close that never comes) would run into the
    // timeout if the prober read it all; it must stop at the limit and succeed.
    let (addr, _requests) = serve(Reply { body_len: usize::MAX, ..reply("HTTP/1.1 200 OK\r\n\r\n") }).await;
    let result = probe(&format!("http://{addr}/endless"), 5_000, &[200]).await;
    assert!(result.success(), "{result:#?}");
}

#[test]
fn probes_can_be_spawned() {
    // The scheduler runs each check in its own task, so the probe future must be Send.
    fn assert_send<T: Send>(_: &T) {}
    let prober = HttpProber::new().expect("prober");
    let (spec, http) = spec("http://127.0.0.1:1/", 1_000, &[200]);
    assert_send(&prober.probe(&spec, &http, 0));
    assert_send(&checks::run(&prober, &spec, 0));
}

#[tokio::test]
async fn bad_urls_and_methods_fail_as_connection_without_a_request() {
    let result = probe("ftp://example.com/file", 1_000, &[200]).await;
    assert_failed(&result, FailureKind::Connection, "url: ");
    assert!(result.error.contains("ftp"), "{}", result.error);

    let (addr, _requests) = serve(reply(OK)).await;
    let (spec, mut http) = spec(&format!("http://{addr}/"), 1_000, &[200]);
    http.method = "BAD METHOD".to_owned();
    let prober = HttpProber::new().expect("prober");
    let result = prober.probe(&spec, &http, 0).await;
    assert_failed(&result, FailureKind::Connection, "method: ");
}

#[tokio::test]
async fn run_dispatches_on_the_check_kind() {
    let (addr, _requests) = serve(reply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let (spec, _http) = spec(&format!("http://{addr}/"), 5_000, &[200]);
    let prober = HttpProber::new().expect("prober");
    let results = tokio::time::timeout(PROBE_DEADLINE, checks::run(&prober, &spec, 42)).await.expect("probe returned");
    assert_eq!(results.len(), 1, "one address, one result: {results:#?}");
    assert!(results[0].success(), "{results:#?}");
    assert_eq!(results[0].started_at_ms, 42);
    assert_eq!(results[0].details.address, Some(addr));
}
