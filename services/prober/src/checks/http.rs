//! The HTTP(S) check engine: one fresh connection per probe (no pooling, as the blackbox
//! exporter does, so every probe pays and measures DNS, connect and TLS), timed phase by phase,
//! bounded as a whole by the check's timeout, and reporting every failure as a result named by
//! the phase it happened in.
//!
//! Built for throughput: the TLS client configuration is built once per [`HttpProber`], the
//! HTTP/1 connection is driven inside the probe's own future (no task spawn per probe, and it
//! cannot outlive the probe), and nothing is formatted on the success path.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mixmon_model::{CheckSpec, FailureKind, HttpCheck, PhaseTimings, ProbeResult};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Read at most this much of a body: enough to time a realistic transfer, bounded so a huge or
/// endless response cannot pin a prober's memory or time.
pub const BODY_LIMIT_BYTES: u64 = 1 << 20;

const USER_AGENT: &str = concat!("mixmon-prober/", env!("CARGO_PKG_VERSION"));

/// Why the engine itself could not be built (probes never return errors, only results).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot build the TLS client configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
}

/// Runs HTTP(S) probes. Build one and share it (it is cheap to clone: the TLS configuration
/// sits behind an `Arc`).
#[derive(Clone)]
pub struct HttpProber {
    tls: TlsConnector,
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
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // We only speak HTTP/1.1; saying so keeps servers from choosing h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: TlsConnector::from(Arc::new(config)) })
    }

    /// Probes `http` once, within `spec.timeout_ms`. Never panics and never errors: every
    /// failure comes back as a result with `failure` set and `error` naming the phase.
    pub async fn probe(&self, spec: &CheckSpec, http: &HttpCheck, started_at_ms: i64) -> ProbeResult {
        let start = Instant::now();
        let mut progress = Progress::new(start);
        let budget = Duration::from_millis(u64::from(spec.timeout_ms));
        let outcome = tokio::time::timeout(budget, self.run(http, &mut progress)).await;
        let (failure, error) = match outcome {
            Ok(Ok(())) => (None, String::new()),
            Ok(Err(failure)) => {
                // The phase that failed still took time (a slow refusal, a DNS server timing
                // out): charge it, so the phases add up to the duration.
                progress.finish();
                (Some(failure.kind), failure.error)
            }
            Err(_elapsed) => {
                // Charge the time spent so far to the phase that was running, so the phases
                // still add up to the duration and show where the time went.
                progress.finish();
                let error = format!("timeout after {} ms during {}", spec.timeout_ms, progress.phase.name());
                (Some(FailureKind::Timeout), error)
            }
        };
        ProbeResult {
            check_id: spec.id.clone(),
            started_at_ms,
            failure,
            duration_us: micros(start.elapsed()),
            status_code: progress.status,
            error,
            phases: progress.phases,
        }
    }

    async fn run(&self, http: &HttpCheck, progress: &mut Progress) -> Result<(), Failure> {
        let target =
            Target::parse(&http.url).map_err(|e| Failure::new(FailureKind::Connection, format!("url: {e}")))?;
        let method = Method::from_bytes(http.method.as_bytes()).map_err(|_| {
            Failure::new(FailureKind::Connection, format!("method: {:?} is not an HTTP method", http.method))
        })?;

        let addr = match target.ip() {
            Some(ip) => SocketAddr::new(ip, target.port),
            None => {
                progress.enter(Phase::Dns);
                let addr = resolve(target.host(), target.port).await?;
                progress.finish();
                addr
            }
        };

        progress.enter(Phase::Connect);
        let tcp = TcpStream::connect(addr).await.map_err(|e| connect_failure(&e, addr))?;
        // Requests are tiny and sent once: Nagle would only add delay to first byte.
        tcp.set_nodelay(true).map_err(|e| connect_failure(&e, addr))?;
        progress.finish();

        let request = build_request(&target, method)?;
        if target.tls {
            progress.enter(Phase::Tls);
            let name = ServerName::try_from(target.host())
                .map_err(|e| Failure::new(FailureKind::Tls, format!("tls: server name {:?}: {e}", target.host())))?
                .to_owned();
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::new(FailureKind::Tls, format!("tls: {}", chain(&e))))?;
            progress.finish();
            exchange(stream, request, progress).await?;
        } else {
            exchange(tcp, request, progress).await?;
        }

        let status = progress.status;
        let accepted = if http.expected_status.is_empty() {
            // Validation never lets this through; the blackbox exporter's default is the
            // sensible fallback if it ever does.
            (200..300).contains(&status)
        } else {
            http.expected_status.contains(&status)
        };
        if !accepted {
            let error = if http.expected_status.is_empty() {
                format!("status {status} not in 2xx")
            } else {
                format!("status {status} not in {:?}", http.expected_status)
            };
            return Err(Failure::new(FailureKind::BadStatus, error));
        }
        Ok(())
    }
}

/// The phase a probe is in, so a timeout can say where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Dns,
    Connect,
    Tls,
    FirstByte,
    Transfer,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first byte",
            Phase::Transfer => "transfer",
        }
    }
}

/// What the probe has measured so far. Lives outside the timed-out future so a timeout keeps
/// the timings of the phases that completed.
struct Progress {
    phase: Phase,
    /// Whether `phase` was entered and not yet finished.
    running: bool,
    phase_started: Instant,
    phases: PhaseTimings,
    status: u16,
}

impl Progress {
    fn new(start: Instant) -> Self {
        Self { phase: Phase::Dns, running: false, phase_started: start, phases: PhaseTimings::default(), status: 0 }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.running = true;
        self.phase_started = Instant::now();
    }

    /// Records the running phase's time since it was entered; a no-op between phases, so a
    /// completed phase is never charged twice.
    fn finish(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let us = micros(self.phase_started.elapsed());
        let slot = match self.phase {
            Phase::Dns => &mut self.phases.dns_us,
            Phase::Connect => &mut self.phases.connect_us,
            Phase::Tls => &mut self.phases.tls_us,
            Phase::FirstByte => &mut self.phases.first_byte_us,
            Phase::Transfer => &mut self.phases.transfer_us,
        };
        *slot = us;
    }
}

#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    error: String,
}

impl Failure {
    fn new(kind: FailureKind, error: String) -> Self {
        Self { kind, error }
    }
}

/// The first address the resolver returns, as the blackbox exporter does: one connection
/// attempt, no happy eyeballs, so a bad address shows up instead of being masked.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(FailureKind::Dns, format!("dns: {host}: {e}")))?;
    addrs.next().ok_or_else(|| Failure::new(FailureKind::Dns, format!("dns: no address for {host}")))
}

fn connect_failure(err: &std::io::Error, addr: SocketAddr) -> Failure {
    if err.kind() == std::io::ErrorKind::ConnectionRefused {
        Failure::new(FailureKind::ConnectionRefused, format!("connect: connection refused by {addr}"))
    } else {
        Failure::new(FailureKind::Connection, format!("connect: {addr}: {err}"))
    }
}

fn build_request(target: &Target, method: Method) -> Result<Request<Empty<Bytes>>, Failure> {
    let host = HeaderValue::from_str(target.host_header())
        .map_err(|e| Failure::new(FailureKind::Connection, format!("url: host {:?}: {e}", target.host_header())))?;
    // A relative URI: hyper's HTTP/1 connection writes the request target as given, and
    // servers expect origin form.
    let mut request = Request::new(Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from(target.path_and_query.clone());
    let headers = request.headers_mut();
    headers.insert(header::HOST, host);
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// Sends `request` over `io` and reads the response to its end (or [`BODY_LIMIT_BYTES`]).
///
/// The connection future is polled here, alongside the request, rather than spawned: it then
/// costs no task per probe and ends exactly when the probe does, timeout included.
async fn exchange<S>(io: S, request: Request<Empty<Bytes>>, progress: &mut Progress) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    progress.enter(Phase::FirstByte);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::new(FailureKind::Connection, format!("http: {}", chain(&e))))?;

    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::new(FailureKind::Connection, format!("http: {}", chain(&e))))?;
        progress.finish();
        progress.status = response.status().as_u16();

        progress.enter(Phase::Transfer);
        let mut body = response.into_body();
        let mut read: u64 = 0;
        while read < BODY_LIMIT_BYTES {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                Some(Err(e)) => {
                    return Err(Failure::new(FailureKind::Connection, format!("transfer: {}", chain(&e))));
                }
            }
        }
        progress.finish();
        Ok(())
    };

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

/// An error with its causes, since hyper's and rustls' top-level messages alone are terse.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // io::Error wrapping a custom error displays the inner one too; skip the repeat.
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
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
    pub(crate) fn host(&self) -> &str {
        let host = self.uri.host().unwrap_or_default();
        host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
    }

    /// `Some` for an IP literal, which needs no DNS.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host().parse().ok()
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

    #[test]
    fn error_chains_keep_the_cause_without_repeating_it() {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad record");
        assert_eq!(chain(&inner), "bad record");
    }
}
