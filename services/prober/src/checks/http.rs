//! The HTTP(S) check engine: one fresh connection per probe (no pooling, as the blackbox
//! exporter does, so every probe pays and measures DNS, connect and TLS), timed phase by phase,
//! bounded as a whole by the check's timeout, and reporting every failure as a result named by
//! the phase it happened in: DNS, connect, TLS, status, assertion, timeout.
//!
//! Redirects are followed up to the check's limit, each hop on a new connection, with the
//! phases summed over hops. Body assertions (substring, regex, a JSON field) run on the first
//! [`BODY_LIMIT_BYTES`] of the last response.
//!
//! Built for throughput: the TLS client configurations are built once per [`HttpProber`], the
//! HTTP/1 connection is driven inside the probe's own future (no task spawn per probe, and it
//! cannot outlive the probe), and nothing is formatted or collected on the success path of a
//! check without assertions.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderName;
use http::uri::{PathAndQuery, Scheme};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mixmon_model::{BodyAssertion, CheckSpec, FailureKind, HttpCheck, HttpVersion, ProbeResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::common::{chain, connect, micros, resolve_first, tls_handshake, Failure, Phase, Progress};

/// Read at most this much of a body: enough to time a realistic transfer and to check it,
/// bounded so a huge or endless response cannot pin a prober's memory or time.
pub const BODY_LIMIT_BYTES: u64 = 1 << 20;

const USER_AGENT: &str = concat!("mixmon-prober/", env!("CARGO_PKG_VERSION"));

/// Why the engine itself could not be built (probes never return errors, only results).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot build the TLS client configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
}

/// Runs probes of every kind (HTTP(S), TCP, gRPC health, DNS; the name is historical). Build
/// one and share it: it is cheap to clone, the TLS configurations sit behind `Arc`s.
#[derive(Clone)]
pub struct HttpProber {
    /// ALPN `http/1.1`: a check that does not offer HTTP/2 says so, which keeps servers from
    /// choosing h2.
    pub(crate) http1: TlsConnector,
    /// ALPN `h2`, then `http/1.1`: a check with `http2` lets the server choose.
    pub(crate) h2_or_http1: TlsConnector,
    /// ALPN `h2`, which gRPC requires.
    pub(crate) h2: TlsConnector,
    /// No ALPN, for TCP checks: a server insisting on its own protocol list must not refuse us.
    pub(crate) plain: TlsConnector,
    /// The local address every probe connection is made from (`[probe] source_ip`); `None`:
    /// the kernel chooses by route.
    pub(crate) source_ip: Option<IpAddr>,
    /// Keeps the kernel's receive timestamps on between probes (see `rx_clock`).
    _timestamps: Option<Arc<std::net::UdpSocket>>,
}

impl std::fmt::Debug for HttpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProber").finish_non_exhaustive()
    }
}

impl HttpProber {
    /// A prober trusting the Mozilla root store (webpki-roots), independent of the host's
    /// certificate store so results do not depend on how a node was provisioned.
    pub fn new() -> Result<Self, CheckError> {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        Self::with_root_certificates(roots)
    }

    /// A prober trusting exactly `roots`: for private CAs and tests.
    pub fn with_root_certificates(roots: rustls::RootCertStore) -> Result<Self, CheckError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |alpn: &[&[u8]]| -> Result<TlsConnector, CheckError> {
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            http1: config(&[b"http/1.1"])?,
            h2_or_http1: config(&[b"h2", b"http/1.1"])?,
            h2: config(&[b"h2"])?,
            plain: config(&[])?,
            source_ip: None,
            _timestamps: super::rx_clock::keep_kernel_timestamps_on(),
        })
    }

    /// The same engine with every probe connection (HTTP(S), TCP, gRPC, DNS) made from
    /// `source_ip`, as the blackbox exporter's `source_ip_address`. The address is not checked
    /// here: [`check_source_ip`](crate::checks::check_source_ip) tells whether it is local.
    pub fn with_source_ip(mut self, source_ip: Option<IpAddr>) -> Self {
        self.source_ip = source_ip;
        self
    }

    /// Probes `http` once, within `spec.timeout_ms`, at the first address its host resolves
    /// to. Never panics and never errors: every failure comes back as a result with `failure`
    /// set and `error` naming the phase.
    pub async fn probe(&self, spec: &CheckSpec, http: &HttpCheck, started_at_ms: i64) -> ProbeResult {
        self.probe_at(spec, http, started_at_ms, None).await
    }

    /// Probes with the first hop going to `addr` (already resolved, `dns_us` spent on it) when
    /// given: how every address behind a name gets its own result.
    pub(crate) async fn probe_at(
        &self,
        spec: &CheckSpec,
        http: &HttpCheck,
        started_at_ms: i64,
        addr: Option<(SocketAddr, u64)>,
    ) -> ProbeResult {
        let (start, mut progress, budget) = super::common::begin(spec, addr);
        let outcome = tokio::time::timeout(budget, self.run(http, &mut progress, addr.map(|(a, _)| a))).await;
        conclude(spec, started_at_ms, start, progress, outcome)
    }

    async fn run(&self, http: &HttpCheck, progress: &mut Progress, first: Option<SocketAddr>) -> Result<(), Failure> {
        let mut method = Method::from_bytes(http.method.as_bytes()).map_err(|_| {
            Failure::new(FailureKind::Connection, format!("method: {:?} is not an HTTP method", http.method))
        })?;
        let mut url: Cow<'_, str> = Cow::Borrowed(&http.url);
        let mut with_body = !http.body.is_empty();
        let mut first = first;
        loop {
            let target = Target::parse(&url).map_err(|e| Failure::new(FailureKind::Connection, format!("url: {e}")))?;
            let addr = match first.take() {
                Some(addr) => addr,
                None => resolve_first(target.host(), target.port, http.address.ip, progress).await?,
            };
            let tcp = connect(addr, self.source_ip, progress).await?;
            let request = build_request(&target, method.clone(), http, with_body)?;
            let collect = !http.assertions.is_empty();
            let response = if target.tls {
                let connector = if http.http2 { &self.h2_or_http1 } else { &self.http1 };
                let stream = tls_handshake(connector, target.host(), tcp, progress).await?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                let request = if h2 { for_h2(request, true)? } else { request };
                exchange(stream, request, h2, progress, collect).await?
            } else if http.http2 {
                exchange(tcp, for_h2(request, false)?, true, progress, collect).await?
            } else {
                exchange(tcp, request, false, progress, collect).await?
            };

            let status = progress.status;
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if redirect && progress.details.redirects < http.max_redirects {
                if let Some(location) = response.location {
                    progress.details.redirects += 1;
                    url = Cow::Owned(target.join(&location).map_err(|reason| {
                        Failure::new(FailureKind::Connection, format!("redirect: location {location:?}: {reason}"))
                    })?);
                    // What browsers and Go do: 303 always, and 301/302 after a POST, turn into
                    // a GET without a body; 307/308 repeat the request as it was.
                    if status == 303 || (method == Method::POST && matches!(status, 301 | 302)) {
                        method = Method::GET;
                        with_body = false;
                    }
                    continue;
                }
            }

            let accepted = if http.expected_status.is_empty() {
                // Validation never lets this through; the blackbox exporter's default is the
                // sensible fallback if it ever does.
                (200..300).contains(&status)
            } else {
                http.expected_status.contains(&status)
            };
            if accepted && !http.valid_http_versions.is_empty() {
                let version = progress.details.http_version;
                if !version.is_some_and(|v| http.valid_http_versions.contains(&v)) {
                    let got = version.map_or("unknown", HttpVersion::as_str);
                    let wanted: Vec<&str> = http.valid_http_versions.iter().map(|v| v.as_str()).collect();
                    return Err(Failure::new(FailureKind::BadStatus, format!("HTTP version {got} not in {wanted:?}")));
                }
            }
            if !accepted {
                let after = match progress.details.redirects {
                    0 => String::new(),
                    n => format!(" (after {n} redirects)"),
                };
                let error = if http.expected_status.is_empty() {
                    format!("status {status} not in 2xx{after}")
                } else {
                    format!("status {status} not in {:?}{after}", http.expected_status)
                };
                return Err(Failure::new(FailureKind::BadStatus, error));
            }
            return check_assertions(&http.assertions, &response.body);
        }
    }
}

/// Turns a probe's outcome into its result: a failure or timeout charges the running phase's
/// time to that phase, so the phases still add up to the duration and show where it went.
pub(crate) fn conclude(
    spec: &CheckSpec,
    started_at_ms: i64,
    start: Instant,
    mut progress: Progress,
    outcome: Result<Result<(), Failure>, tokio::time::error::Elapsed>,
) -> ProbeResult {
    let (failure, error) = match outcome {
        Ok(Ok(())) => (None, String::new()),
        Ok(Err(failure)) => {
            progress.finish();
            (Some(failure.kind), failure.error)
        }
        Err(_elapsed) => {
            progress.finish();
            let error = format!("timeout after {} ms during {}", spec.timeout_ms, progress.phase.name());
            (Some(FailureKind::Timeout), error)
        }
    };
    let end = match (&failure, progress.done_at) {
        (None, Some(done_at)) => done_at,
        _ => Instant::now(),
    };
    ProbeResult {
        check_id: spec.id.clone(),
        started_at_ms,
        failure,
        duration_us: micros(end.duration_since(start)),
        status_code: progress.status,
        error,
        phases: progress.phases,
        details: progress.details,
    }
}

/// Every assertion in order; the first that does not hold fails the probe, named by its index
/// and its text, so an operator sees which one without looking the check up.
fn check_assertions(assertions: &[BodyAssertion], body: &[u8]) -> Result<(), Failure> {
    if assertions.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let mut json: Option<Result<serde_json::Value, String>> = None;
    for (index, assertion) in assertions.iter().enumerate() {
        let problem = match assertion {
            BodyAssertion::Contains(needle) => (!text.contains(needle.as_str())).then(|| "not found".to_string()),
            BodyAssertion::NotContains(needle) => text.contains(needle.as_str()).then(|| "found".to_string()),
            BodyAssertion::Matches(pattern) => match mixmon_model::check::compile_body_regex(pattern) {
                Ok(regex) => (!regex.is_match(&text)).then(|| "no match".to_string()),
                Err(e) => Some(format!("bad regex: {e}")),
            },
            BodyAssertion::JsonField { pointer, equals } => {
                let parsed = json.get_or_insert_with(|| {
                    serde_json::from_slice::<serde_json::Value>(body).map_err(|e| format!("body is not JSON: {e}"))
                });
                match parsed {
                    Err(e) => Some(e.clone()),
                    Ok(value) => match value.pointer(pointer) {
                        None => Some("no such field".to_string()),
                        Some(serde_json::Value::String(found)) if found == equals => None,
                        Some(serde_json::Value::String(found)) => Some(format!("found {found:?}")),
                        Some(found) => {
                            let found = found.to_string();
                            (found != *equals).then(|| format!("found {found}"))
                        }
                    },
                }
            }
        };
        if let Some(problem) = problem {
            let mut problem = problem;
            problem.truncate(200);
            return Err(Failure::new(
                FailureKind::AssertionFailed,
                format!("assertion {index} ({assertion}) failed: {problem}"),
            ));
        }
    }
    Ok(())
}

fn build_request(
    target: &Target,
    method: Method,
    http: &HttpCheck,
    with_body: bool,
) -> Result<Request<Full<Bytes>>, Failure> {
    let host = HeaderValue::from_str(target.host_header())
        .map_err(|e| Failure::new(FailureKind::Connection, format!("url: host {:?}: {e}", target.host_header())))?;
    let body = if with_body { Bytes::copy_from_slice(http.body.as_bytes()) } else { Bytes::new() };
    // A relative URI: hyper's HTTP/1 connection writes the request target as given, and
    // servers expect origin form.
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from(target.path_and_query.clone());
    let headers = request.headers_mut();
    headers.insert(header::HOST, host);
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in &http.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .zip(HeaderValue::from_str(value).ok())
            .ok_or_else(|| Failure::new(FailureKind::Connection, format!("header {name:?} cannot be sent")))?;
        headers.insert(header.0, header.1);
    }
    Ok(request)
}

/// What a response left that the probe still needs once the connection is gone.
struct Response {
    location: Option<String>,
    /// The body, read only when assertions need it.
    body: Vec<u8>,
}

/// Sends `request` over `io` and reads the response to its end (or [`BODY_LIMIT_BYTES`]).
///
/// The connection future is polled here, alongside the request, rather than spawned: it then
/// costs no task per probe and ends exactly when the probe does, timeout included.
async fn exchange<S>(
    io: S,
    request: Request<Full<Bytes>>,
    h2: bool,
    progress: &mut Progress,
    collect: bool,
) -> Result<Response, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    progress.enter(Phase::FirstByte);
    let handshake_failed = |e: hyper::Error| Failure::new(FailureKind::Connection, format!("http: {}", chain(&e)));
    if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(handshake_failed)?;
        drive(read_response(sender.send_request(request), progress, collect), conn).await
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(handshake_failed)?;
        drive(read_response(sender.send_request(request), progress, collect), conn).await
    }
}

/// Polls the connection alongside the probe's work until the work is done.
async fn drive<W, C>(work: W, conn: C) -> Result<Response, Failure>
where
    W: std::future::Future<Output = Result<Response, Failure>>,
    C: std::future::Future,
{
    let mut work = pin!(work);
    let mut conn = pin!(conn);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            outcome = &mut work => return outcome,
            // The connection ending (cleanly or not) is not the probe's verdict: any error
            // reaches `work` through the response or body, and data it already read is still
            // delivered, so keep waiting on `work` alone.
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

/// Waits for the response head, then reads the body to its end (or [`BODY_LIMIT_BYTES`]).
async fn read_response(
    sent: impl std::future::Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>,
    progress: &mut Progress,
    collect: bool,
) -> Result<Response, Failure> {
    let response = sent.await.map_err(|e| Failure::new(FailureKind::Connection, format!("http: {}", chain(&e))))?;
    // The response head arrived when the kernel received it, not when this task woke up.
    progress.finish_received();
    progress.status = response.status().as_u16();
    progress.details.http_version = match response.version() {
        Version::HTTP_10 => Some(HttpVersion::Http10),
        Version::HTTP_11 => Some(HttpVersion::Http11),
        Version::HTTP_2 => Some(HttpVersion::Http2),
        _ => None,
    };
    let location = if response.status().is_redirection() && response.status() != StatusCode::NOT_MODIFIED {
        response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
    } else {
        None
    };

    progress.enter(Phase::Transfer);
    let mut body = response.into_body();
    let mut kept = Vec::new();
    let mut read: u64 = 0;
    while read < BODY_LIMIT_BYTES {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len() as u64;
                    if collect {
                        let room = (BODY_LIMIT_BYTES as usize).saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            Some(Err(e)) => {
                return Err(Failure::new(FailureKind::Connection, format!("transfer: {}", chain(&e))));
            }
        }
    }
    let done = progress.received_at();
    progress.finish_received();
    progress.done_at = Some(done);
    Ok(Response { location, body: kept })
}

/// The HTTP/1 request rewritten for HTTP/2: the authority moves from `Host` into the URI
/// (`:authority`), and the connection-specific `Connection` header, which HTTP/2 forbids, goes.
fn for_h2(mut request: Request<Full<Bytes>>, tls: bool) -> Result<Request<Full<Bytes>>, Failure> {
    let headers = request.headers_mut();
    headers.remove(header::CONNECTION);
    let host = headers.remove(header::HOST);
    let authority = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    let path = request.uri().path_and_query().map_or("/", PathAndQuery::as_str).to_owned();
    let scheme = if tls { "https" } else { "http" };
    *request.uri_mut() = format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e| Failure::new(FailureKind::Connection, format!("url: authority {authority:?}: {e}")))?;
    *request.version_mut() = Version::HTTP_2;
    Ok(request)
}

/// Why a check's URL cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlError {
    #[error("{url:?} is not a URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("{url:?} has no scheme; use http:// or https://")]
    MissingScheme { url: String },
    #[error("{url:?}: scheme {scheme} is not supported; use http:// or https://")]
    Scheme { url: String, scheme: String },
    #[error("{url:?} has no host")]
    MissingHost { url: String },
}

/// A check URL, split into what each phase needs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    uri: Uri,
    tls: bool,
    port: u16,
    path_and_query: PathAndQuery,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, UrlError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Invalid { url: url.to_owned(), reason: e.to_string() })?;
        let tls = match uri.scheme() {
            None => return Err(UrlError::MissingScheme { url: url.to_owned() }),
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) => return Err(UrlError::Scheme { url: url.to_owned(), scheme: s.to_string() }),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(UrlError::MissingHost { url: url.to_owned() });
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query = match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
            // `http://host?q` has an empty path; origin form needs it to be `/`.
            Some(pq) if !pq.as_str().is_empty() => PathAndQuery::try_from(format!("/{}", pq.as_str()))
                .map_err(|e| UrlError::Invalid { url: url.to_owned(), reason: e.to_string() })?,
            _ => PathAndQuery::from_static("/"),
        };
        Ok(Self { uri, tls, port, path_and_query })
    }

    /// The host as the resolver and SNI want it: IPv6 literals without their brackets.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn host(&self) -> &str {
        let host = self.uri.host().unwrap_or_default();
        host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
    }

    /// `Some` for an IP literal, which needs no DNS.
    #[cfg(test)]
    pub(crate) fn ip(&self) -> Option<std::net::IpAddr> {
        self.host().parse().ok()
    }

    /// Where a redirect's `Location` points, as an absolute URL: absolute, scheme-relative
    /// (`//host/p`), absolute-path (`/p`) and relative-path (`p`, `../p`) forms.
    pub(crate) fn join(&self, location: &str) -> Result<String, String> {
        let scheme = if self.tls { "https" } else { "http" };
        let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(location.to_owned());
        }
        if location.contains("://") {
            return Err("only http and https redirects are followed".into());
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Ok(format!("{scheme}://{rest}"));
        }
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        if location.starts_with('/') {
            return Ok(format!("{scheme}://{authority}{location}"));
        }
        let (location, query) = match location.split_once(['?', '#']) {
            Some(("", _)) => return Ok(format!("{scheme}://{authority}{}{location}", self.path_and_query.path())),
            Some((path, _)) => (path, &location[path.len()..]),
            None => (location, ""),
        };
        let base = self.path_and_query.path();
        let mut segments: Vec<&str> = base.split('/').collect();
        segments.pop(); // the last segment is a file name, replaced by the location
        for part in location.split('/') {
            match part {
                "." => {}
                ".." => {
                    if segments.len() > 1 {
                        segments.pop();
                    }
                }
                other => segments.push(other),
            }
        }
        let path = segments.join("/");
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        Ok(format!("{scheme}://{authority}{path}{query}"))
    }

    /// The `Host` header: the URL's authority without user info, and without the port when it
    /// is the scheme's default.
    pub(crate) fn host_header(&self) -> &str {
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        let authority = authority.rsplit_once('@').map_or(authority, |(_, hostport)| hostport);
        let default_port = if self.tls { 443 } else { 80 };
        match self.uri.port_u16() {
            Some(port) if port == default_port => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
            _ => authority,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn parsed(url: &str) -> Target {
        match Target::parse(url) {
            Ok(target) => target,
            Err(e) => panic!("{url} should parse: {e}"),
        }
    }

    #[test]
    fn ipv6_literal_keeps_port_and_drops_brackets_for_connecting() {
        let t = parsed("http://[::1]:8080/health");
        assert!(!t.tls);
        assert_eq!(t.host(), "::1");
        assert_eq!(t.ip(), Some("::1".parse().unwrap_or(IpAddr::from([0u8; 16]))));
        assert_eq!(t.port, 8080);
        assert_eq!(t.host_header(), "[::1]:8080");
        assert_eq!(t.path_and_query.as_str(), "/health");
    }

    #[test]
    fn defaults_fill_port_and_path() {
        let t = parsed("https://example.com");
        assert!(t.tls);
        assert_eq!((t.host(), t.port, t.ip()), ("example.com", 443, None));
        assert_eq!(t.path_and_query.as_str(), "/");
        assert_eq!(t.host_header(), "example.com");

        let t = parsed("http://user:pw@example.com:80/a/b?x=1&y=2");
        assert_eq!((t.host(), t.port), ("example.com", 80));
        assert_eq!(t.host_header(), "example.com", "default port and user info stay out of Host");
        assert_eq!(t.path_and_query.as_str(), "/a/b?x=1&y=2");

        let t = parsed("https://example.com:8443?q");
        assert_eq!(t.host_header(), "example.com:8443");
        assert_eq!(t.path_and_query.as_str(), "/?q");

        let t = parsed("http://10.0.0.1:443/");
        assert_eq!(t.ip(), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(t.host_header(), "10.0.0.1:443", "443 is not http's default");
    }

    #[test]
    fn redirect_locations_resolve_against_the_current_url() {
        let t = parsed("https://a.example:8443/x/y/z?q=1");
        for (location, want) in [
            ("http://b.example/p", "http://b.example/p"),
            ("//c.example/p", "https://c.example/p"),
            ("/p?r=2", "https://a.example:8443/p?r=2"),
            ("p", "https://a.example:8443/x/y/p"),
            ("../p?s", "https://a.example:8443/x/p?s"),
            ("../../../../p", "https://a.example:8443/p"),
            ("?only", "https://a.example:8443/x/y/z?only"),
        ] {
            assert_eq!(t.join(location).as_deref(), Ok(want), "{location}");
        }
        assert!(t.join("ftp://x/").is_err());
    }

    #[test]
    fn unusable_urls_are_refused_with_the_reason() {
        let err = |url: &str| Target::parse(url).err();
        assert!(matches!(err("ftp://example.com/file"), Some(UrlError::Scheme { scheme, .. }) if scheme == "ftp"));
        assert!(matches!(err("/health"), Some(UrlError::MissingScheme { .. })));
        assert!(matches!(
            err("example.com/health"),
            Some(UrlError::MissingScheme { .. }) | Some(UrlError::Invalid { .. })
        ));
        assert!(matches!(err("http://"), Some(UrlError::Invalid { .. }) | Some(UrlError::MissingHost { .. })));
        assert!(matches!(err("http:///health"), Some(UrlError::Invalid { .. }) | Some(UrlError::MissingHost { .. })));
        assert!(matches!(err("http://exa mple.com/"), Some(UrlError::Invalid { .. })));
        assert!(err("").is_some());
    }
}
