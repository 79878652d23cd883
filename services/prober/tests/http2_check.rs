//! HTTP/2 in the HTTP check: prior knowledge (h2c) over `http://`, ALPN over TLS with a
//! fallback to HTTP/1.1 when the server declines, and `valid_http_versions`. The servers are
//! hyper's own HTTP/2 and HTTP/1 servers, which answer with what they received, so the tests
//! see the `:authority` and path the probe really sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mixmon_model::{BodyAssertion, CheckId, CheckKind, CheckSpec, FailureKind, HttpCheck, HttpVersion, ProbeResult};
use mixmon_prober::checks::HttpProber;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

async fn echo(request: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let authority = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    let text =
        format!("version={:?} authority={authority} host={host} path={}", request.version(), request.uri().path());
    Ok(hyper::Response::new(Full::new(Bytes::from(text))))
}

async fn serve_connection<S>(io: S, h2: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let _ = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service_fn(echo)).await
    } else {
        hyper::server::conn::http1::Builder::new().serve_connection(io, service_fn(echo)).await
    };
}

/// A cleartext HTTP/2-only server (prior knowledge).
async fn serve_h2c() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, true));
        }
    });
    addr
}

/// An HTTPS server offering `alpn`, speaking whichever protocol was negotiated.
async fn serve_tls(alpn: &[&[u8]]) -> (SocketAddr, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("self-signed cert");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let stream: TcpStream = stream;
                if let Ok(tls) = acceptor.accept(stream).await {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    serve_connection(tls, h2).await;
                }
            });
        }
    });
    (addr, cert)
}

async fn probe(prober: &HttpProber, http: HttpCheck) -> ProbeResult {
    let spec = CheckSpec {
        id: CheckId::new("h2-check").expect("id"),
        interval_ms: 10_000,
        timeout_ms: 5_000,
        phase_shift_ms: 0,
        kind: CheckKind::Http(http.clone()),
    };
    tokio::time::timeout(Duration::from_secs(15), prober.probe(&spec, &http, 1_700_000_000_000))
        .await
        .expect("the probe bounds itself")
}

fn trusting(cert: CertificateDer<'static>) -> HttpProber {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    HttpProber::with_root_certificates(roots).expect("prober")
}

#[tokio::test]
async fn h2c_with_prior_knowledge_sends_the_authority_and_path() {
    let addr = serve_h2c().await;
    let url = format!("http://{addr}/health?x=1");
    let http = HttpCheck {
        http2: true,
        assertions: vec![
            BodyAssertion::Contains("version=HTTP/2.0".into()),
            BodyAssertion::Contains(format!("authority={addr} ")),
            BodyAssertion::Contains("path=/health".into()),
        ],
        valid_http_versions: vec![HttpVersion::Http2],
        ..HttpCheck::get(url)
    };
    let result = probe(&HttpProber::new().expect("prober"), http).await;
    assert!(result.success(), "{result:#?}");
    assert_eq!(result.details.http_version, Some(HttpVersion::Http2));
    assert!(result.phases.first_byte_us > 0, "{:?}", result.phases);

    // Without http2 the same server cannot be spoken to: HTTP/1.1 is not HTTP/2.
    let plain = probe(&HttpProber::new().expect("prober"), HttpCheck::get(format!("http://{addr}/"))).await;
    assert!(!plain.success(), "an HTTP/2-only server does not answer HTTP/1.1: {plain:#?}");
}

#[tokio::test]
async fn tls_negotiates_h2_by_alpn_and_records_the_version() {
    let (addr, cert) = serve_tls(&[b"h2", b"http/1.1"]).await;
    let prober = trusting(cert);
    let url = format!("https://{addr}/health");
    let h2 = probe(&prober, HttpCheck { http2: true, ..HttpCheck::get(url.clone()) }).await;
    assert!(h2.success(), "{h2:#?}");
    assert_eq!(h2.details.http_version, Some(HttpVersion::Http2));
    assert!(h2.details.tls.as_ref().is_some_and(|t| t.valid), "{:?}", h2.details.tls);

    // A check that does not ask for HTTP/2 offers only http/1.1, and gets it.
    let h1 = probe(&prober, HttpCheck::get(url)).await;
    assert!(h1.success(), "{h1:#?}");
    assert_eq!(h1.details.http_version, Some(HttpVersion::Http11));
}

#[tokio::test]
async fn a_server_declining_h2_falls_back_and_valid_versions_judge_it() {
    let (addr, cert) = serve_tls(&[b"http/1.1"]).await;
    let prober = trusting(cert);
    let url = format!("https://{addr}/health");
    let fallback = probe(&prober, HttpCheck { http2: true, ..HttpCheck::get(url.clone()) }).await;
    assert!(fallback.success(), "{fallback:#?}");
    assert_eq!(fallback.details.http_version, Some(HttpVersion::Http11));

    let strict =
        probe(&prober, HttpCheck { http2: true, valid_http_versions: vec![HttpVersion::Http2], ..HttpCheck::get(url) })
            .await;
    assert_eq!(strict.failure, Some(FailureKind::BadStatus), "{strict:#?}");
    assert!(strict.error.contains("HTTP version HTTP/1.1 not in [\"HTTP/2\"]"), "{}", strict.error);
    assert_eq!(strict.status_code, 200, "the status was fine; the version was not");
}
