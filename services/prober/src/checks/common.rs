//! What every check engine shares: the phase clock that survives a timeout, failures named by
//! phase, address resolution with a family preference, TCP connect and the TLS handshake that
//! records the certificate's expiry and validity even when it then fails.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mixmon_model::{FailureKind, IpPreference, PhaseTimings, ProbeDetails, TlsInfo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub(crate) use super::rx_clock::StampedStream;

/// The phase a probe is in, so a timeout can say where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Dns,
    Connect,
    Tls,
    FirstByte,
    Transfer,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Progress {
    pub(crate) phase: Phase,
    /// Whether `phase` was entered and not yet finished.
    running: bool,
    phase_started: Instant,
    pub(crate) phases: PhaseTimings,
    pub(crate) status: u16,
    pub(crate) details: ProbeDetails,
    /// When the last byte of the response was read, if it was: the probe's duration ends
    /// there, not after our own clean-up (closing the socket is not the target's time).
    pub(crate) done_at: Option<Instant>,
    /// The kernel's receive time of the connection's latest data (see `rx_clock`).
    pub(crate) rx: Option<std::sync::Arc<super::rx_clock::RxStamp>>,
    /// When the request was sent (the first-byte phase began): no response data is older.
    request_sent: Option<Instant>,
}

/// Where every connection-based probe starts: its clock, its progress (with the DNS time
/// already spent when the address was resolved for it), and its time budget.
pub(crate) fn begin(
    spec: &mixmon_model::CheckSpec,
    addr: Option<(std::net::SocketAddr, u64)>,
) -> (Instant, Progress, std::time::Duration) {
    let start = Instant::now();
    let mut progress = Progress::new(start);
    if let Some((_, dns_us)) = addr {
        progress.phases.dns_us = dns_us;
    }
    (start, progress, std::time::Duration::from_millis(u64::from(spec.timeout_ms)))
}

impl Progress {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            phase: Phase::Dns,
            running: false,
            phase_started: start,
            phases: PhaseTimings::default(),
            status: 0,
            details: ProbeDetails::default(),
            done_at: None,
            rx: None,
            request_sent: None,
        }
    }

    /// When the response data read last reached this host: the kernel's receive time if known
    /// and not before the request was sent, else now.
    pub(crate) fn received_at(&self) -> Instant {
        let now = Instant::now();
        match (self.rx.as_ref().and_then(|rx| rx.instant()), self.request_sent) {
            (Some(at), Some(sent)) if at >= sent && at <= now => at,
            _ => now,
        }
    }

    /// Finishes the running phase when its data arrived (see [`Progress::received_at`]).
    pub(crate) fn finish_received(&mut self) {
        let at = self.received_at();
        self.finish_at(at);
    }

    pub(crate) fn enter(&mut self, phase: Phase) {
        self.enter_at(phase, Instant::now());
    }

    /// Enters `phase` as of `at`, for a phase that began before this record of it.
    pub(crate) fn enter_at(&mut self, phase: Phase, at: Instant) {
        if phase == Phase::FirstByte {
            self.request_sent = Some(at);
        }
        self.phase = phase;
        self.running = true;
        self.phase_started = at;
    }

    /// Adds the running phase's time since it was entered; a no-op between phases, so a
    /// completed phase is never charged twice. Adds rather than sets: over redirects every hop
    /// has its own DNS, connect, TLS and so on, and they sum, as in the blackbox exporter.
    pub(crate) fn finish(&mut self) {
        self.finish_at(Instant::now());
    }

    fn finish_at(&mut self, at: Instant) {
        if !self.running {
            return;
        }
        self.running = false;
        let us = micros(at.saturating_duration_since(self.phase_started));
        let slot = match self.phase {
            Phase::Dns => &mut self.phases.dns_us,
            Phase::Connect => &mut self.phases.connect_us,
            Phase::Tls => &mut self.phases.tls_us,
            Phase::FirstByte => &mut self.phases.first_byte_us,
            Phase::Transfer => &mut self.phases.transfer_us,
        };
        *slot = slot.saturating_add(us);
    }
}

/// A probe's failure: its kind and a short cause that names the phase.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) error: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, error: String) -> Self {
        Self { kind, error }
    }
}

/// Resolves `host` (an IP literal needs no DNS) to the addresses `ip` allows, in the
/// resolver's order. An empty list is a DNS failure, naming the family that was missing.
pub(crate) async fn resolve(host: &str, port: u16, ip: IpPreference) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(literal) = host.parse::<std::net::IpAddr>() {
        return if ip.allows(literal) {
            Ok(vec![SocketAddr::new(literal, port)])
        } else {
            Err(Failure::new(FailureKind::Dns, format!("dns: {host} is not an {} address", ip.as_str())))
        };
    }
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(FailureKind::Dns, format!("dns: {host}: {e}")))?;
    let mut found: Vec<SocketAddr> = Vec::new();
    for addr in addrs.filter(|a| ip.allows(a.ip())) {
        // getaddrinfo lists an address once per socket type unless told otherwise.
        if !found.contains(&addr) {
            found.push(addr);
        }
    }
    if found.is_empty() {
        let family = match ip {
            IpPreference::Any => String::new(),
            other => format!(" {}", other.as_str()),
        };
        return Err(Failure::new(FailureKind::Dns, format!("dns: no{family} address for {host}")));
    }
    Ok(found)
}

/// Resolves, timing DNS when there was any, and picks the first address: one connection
/// attempt and no happy eyeballs, as the blackbox exporter does, so a bad address shows up.
pub(crate) async fn resolve_first(
    host: &str,
    port: u16,
    ip: IpPreference,
    progress: &mut Progress,
) -> Result<SocketAddr, Failure> {
    if let Ok(literal) = host.parse::<std::net::IpAddr>() {
        if ip.allows(literal) {
            return Ok(SocketAddr::new(literal, port));
        }
    }
    progress.enter(Phase::Dns);
    let addrs = resolve(host, port, ip).await?;
    progress.finish();
    addrs.into_iter().next().ok_or_else(|| Failure::new(FailureKind::Dns, format!("dns: no address for {host}")))
}

/// A TCP connection to `addr`, timed as the connect phase.
///
/// Why not `TcpStream::connect`: it always waits for the reactor to report the socket
/// writable, which costs a wake-up (tens of µs) even when the handshake finished inside the
/// `connect` call, as it does on loopback and often on a LAN, and that wait would be charged to
/// the connect phase. Here a connection that is already established is used at once, and only
/// one still in progress waits for the reactor.
///
/// With a `source` address the socket is bound to it first (port chosen at connect time where
/// the kernel can, so probes to different targets share source ports).
pub(crate) async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    progress: &mut Progress,
) -> Result<StampedStream, Failure> {
    progress.enter(Phase::Connect);
    progress.details.address = Some(addr);
    let fail = |e: std::io::Error| connect_failure(&e, addr);
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    if let Some(ip) = source {
        bind_source(&socket, ip, addr)?;
    }
    let in_progress = match socket.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(e) => return Err(fail(e)),
    };
    let tcp = TcpStream::from_std(std::net::TcpStream::from(socket)).map_err(fail)?;
    if in_progress && tcp.peer_addr().is_err() {
        tcp.writable().await.map_err(fail)?;
        if let Some(e) = tcp.take_error().map_err(fail)? {
            return Err(fail(e));
        }
        // Writable without an error, yet not connected, would be a kernel oddity; say so.
        tcp.peer_addr().map_err(fail)?;
    }
    // Requests are tiny and sent once: Nagle would only add delay to first byte.
    tcp.set_nodelay(true).map_err(fail)?;
    progress.finish();
    let (stream, rx) = StampedStream::new(tcp);
    progress.rx = Some(rx);
    Ok(stream)
}

/// Binds a probe's socket to the configured source address, any port.
fn bind_source(socket: &socket2::Socket, ip: IpAddr, target: SocketAddr) -> Result<(), Failure> {
    if ip.is_ipv4() != target.is_ipv4() {
        return Err(Failure::new(
            FailureKind::Connection,
            format!("connect: source_ip {ip} cannot reach {target}: another address family"),
        ));
    }
    // Without it, binding port 0 reserves a port for this socket alone and a busy prober
    // could run out of them; with it the port is chosen by connect, per 4-tuple. Best effort:
    // without it the bind still works.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true);
    socket
        .bind(&SocketAddr::new(ip, 0).into())
        .map_err(|e| Failure::new(FailureKind::Connection, format!("connect: bind source_ip {ip}: {e}")))
}

/// Whether probes can be sent from `ip`: a TCP and a UDP socket bind to it (any port). An
/// address of another host, or one not (yet) configured here, fails with the kernel's
/// reason.
pub fn check_source_ip(ip: IpAddr) -> std::io::Result<()> {
    let local = SocketAddr::new(ip, 0);
    let tcp = socket2::Socket::new(socket2::Domain::for_address(local), socket2::Type::STREAM, None)?;
    tcp.bind(&local.into())?;
    std::net::UdpSocket::bind(local)?;
    Ok(())
}

/// `EINPROGRESS` on Linux: a non-blocking connect that has not finished yet.
const EINPROGRESS: i32 = 115;

fn connect_failure(err: &std::io::Error, addr: SocketAddr) -> Failure {
    if err.kind() == std::io::ErrorKind::ConnectionRefused {
        Failure::new(FailureKind::ConnectionRefused, format!("connect: connection refused by {addr}"))
    } else {
        Failure::new(FailureKind::Connection, format!("connect: {addr}: {err}"))
    }
}

/// The TLS handshake with `host` as SNI and verified name. On success the chain's earliest
/// expiry and the protocol version are recorded; a chain refused for its dates is recorded
/// too (valid = false), and named `certificate expired` in the error.
pub(crate) async fn tls_handshake<S>(
    connector: &TlsConnector,
    host: &str,
    io: S,
    progress: &mut Progress,
) -> Result<TlsStream<S>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    progress.enter(Phase::Tls);
    let name = ServerName::try_from(host)
        .map_err(|e| Failure::new(FailureKind::Tls, format!("tls: server name {host:?}: {e}")))?
        .to_owned();
    match connector.connect(name, io).await {
        Ok(stream) => {
            progress.finish();
            let (_, conn) = stream.get_ref();
            let not_after =
                conn.peer_certificates().and_then(|chain| chain.iter().filter_map(|c| cert_not_after(c)).min());
            if let Some(cert_not_after_s) = not_after {
                let version = match conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "",
                };
                progress.details.tls = Some(TlsInfo { version: version.to_string(), cert_not_after_s, valid: true });
            }
            Ok(stream)
        }
        Err(err) => {
            let rustls_error = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                not_after, ..
            })) = rustls_error
            {
                let cert_not_after_s = i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX);
                progress.details.tls = Some(TlsInfo { version: String::new(), cert_not_after_s, valid: false });
                let days = (unix_s() - cert_not_after_s).max(0) / 86_400;
                return Err(Failure::new(
                    FailureKind::Tls,
                    format!("tls: certificate expired {days} days ago ({})", chain(&err)),
                ));
            }
            Err(Failure::new(FailureKind::Tls, format!("tls: {}", chain(&err))))
        }
    }
}

fn unix_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An error with its causes, since hyper's and rustls' top-level messages alone are terse.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
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

pub(crate) fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// A certificate's `notAfter`, unix seconds, read straight from its DER: the walk to one field
/// of `TBSCertificate` does not justify an X.509 library in every prober.
pub(crate) fn cert_not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = der_item(der, 0x30)?;
    let (mut tbs, _) = der_item(cert, 0x30)?;
    // version [0] EXPLICIT is optional (absent means v1).
    if tbs.first() == Some(&0xa0) {
        tbs = der_item(tbs, 0xa0)?.1;
    }
    let (_, rest) = der_item(tbs, 0x02)?; // serialNumber
    let (_, rest) = der_item(rest, 0x30)?; // signature
    let (_, rest) = der_item(rest, 0x30)?; // issuer
    let (validity, _) = der_item(rest, 0x30)?;
    let not_before_tag = *validity.first()?;
    let (_, rest) = der_item(validity, not_before_tag)?;
    let tag = *rest.first()?;
    let (time, _) = der_item(rest, tag)?;
    parse_asn1_time(tag, time)
}

/// One DER item with the expected tag: its contents and what follows it.
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[count..];
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn parse_asn1_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_become_unix_seconds() {
        assert_eq!(parse_asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_asn1_time(0x17, b"231114221320Z"), Some(1_700_000_000));
        assert_eq!(parse_asn1_time(0x18, b"20231114221320Z"), Some(1_700_000_000));
        assert_eq!(parse_asn1_time(0x18, b"40960101000000Z"), Some(67_090_118_400));
        assert_eq!(parse_asn1_time(0x17, b"231314221320Z"), None, "month 13");
        assert_eq!(parse_asn1_time(0x17, b"2311142213Z"), None);
    }

    #[test]
    fn garbage_der_has_no_expiry() {
        assert_eq!(cert_not_after(&[]), None);
        assert_eq!(cert_not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(cert_not_after(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }

    #[test]
    fn error_chains_keep_the_cause_without_repeating_it() {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad record");
        assert_eq!(chain(&inner), "bad record");
    }
}
