//! Check specifications, as the aggregator's catalogue defines them and probers run them, and
//! the fixed schedule each check keeps.
//!
//! Every kind's options are optional with the blackbox exporter's defaults, and
//! [`CheckSpec::problems`] validates all of them (regexes compiled, JSON pointers parsed), so a
//! catalogue that loads is one every prober can run.

use std::fmt;

use crate::ids::CheckId;

/// Smallest interval a check may run at; below this a prober would mostly measure itself.
pub const MIN_INTERVAL_MS: u32 = 100;
/// Largest interval: a check that runs less than once an hour cannot feed per-minute SLIs.
pub const MAX_INTERVAL_MS: u32 = 3_600_000;
/// Redirects followed by default, as Go's HTTP client (and so the blackbox exporter) does.
pub const DEFAULT_MAX_REDIRECTS: u8 = 10;
/// Longest request body a check may send: probes are small by design.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub id: CheckId,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    /// Added to the check's own phase (see [`CheckSpec::phase_ms`]); set per prober by the
    /// aggregator to spread regions over the interval.
    pub phase_shift_ms: u32,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Grpc(GrpcCheck),
    Dns(DnsCheck),
}

impl CheckKind {
    /// A short name of the kind, as the config's `type` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Grpc(_) => "grpc",
            CheckKind::Dns(_) => "dns",
        }
    }

    /// What the check probes, for people: a URL, `host:port`, or a DNS name and type.
    pub fn target(&self) -> String {
        match self {
            CheckKind::Http(http) => http.url.clone(),
            CheckKind::Tcp(tcp) => {
                format!("{}{}", if tcp.tls { "tls://" } else { "tcp://" }, host_port(&tcp.host, tcp.port))
            }
            CheckKind::Grpc(grpc) => {
                format!(
                    "grpc{}://{}/{}",
                    if grpc.tls { "s" } else { "" },
                    host_port(&grpc.host, grpc.port),
                    grpc.service
                )
            }
            CheckKind::Dns(dns) => match &dns.server {
                Some(server) => format!("dns://{server}/{}?type={}", dns.name, dns.record_type),
                None => format!("dns:{}?type={}", dns.name, dns.record_type),
            },
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Which address family a check connects over when its name resolves to both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IpPreference {
    /// The resolver's first address, whatever its family.
    #[default]
    Any,
    /// IPv4 only: a name without an A record fails as DNS.
    Ip4,
    /// IPv6 only: a name without an AAAA record fails as DNS.
    Ip6,
}

impl IpPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            IpPreference::Any => "any",
            IpPreference::Ip4 => "ip4",
            IpPreference::Ip6 => "ip6",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [IpPreference::Any, IpPreference::Ip4, IpPreference::Ip6].into_iter().find(|p| p.as_str() == text)
    }

    /// Whether an address of this family may be probed.
    pub fn allows(self, ip: std::net::IpAddr) -> bool {
        match self {
            IpPreference::Any => true,
            IpPreference::Ip4 => ip.is_ipv4(),
            IpPreference::Ip6 => ip.is_ipv6(),
        }
    }
}

/// How a name is turned into the addresses a probe connects to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub ip: IpPreference,
    /// Probe every address the name resolves to, each with its own result, so one bad backend
    /// behind a name is not hidden by the others (the blackbox exporter tries only one).
    pub each_address: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    /// Status codes that count as success; never empty once validated.
    pub expected_status: Vec<u16>,
    /// Extra request headers, sent as given (a `Host` here replaces the URL's).
    pub headers: Vec<(String, String)>,
    /// Request body; sent with a `Content-Length` when not empty.
    pub body: String,
    /// Every one must hold for the probe to succeed; checked in order, the first to fail is named.
    pub assertions: Vec<BodyAssertion>,
    /// Redirects followed before the status is judged; 0 judges the first response.
    pub max_redirects: u8,
    pub address: AddressPolicy,
    /// Offer HTTP/2: over TLS by ALPN (`h2`, falling back to HTTP/1.1 if the server declines),
    /// over `http://` with prior knowledge (h2c), as `curl --http2-prior-knowledge` does.
    pub http2: bool,
    /// The response's HTTP version must be one of these; empty accepts any.
    pub valid_http_versions: Vec<crate::result::HttpVersion>,
}

impl HttpCheck {
    /// A GET of `url` with every option at its default.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: "GET".into(),
            expected_status: vec![200],
            headers: Vec::new(),
            body: String::new(),
            assertions: Vec::new(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            address: AddressPolicy::default(),
            http2: false,
            valid_http_versions: Vec::new(),
        }
    }
}

/// A condition on the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAssertion {
    /// The body contains this text.
    Contains(String),
    /// The body does not contain this text.
    NotContains(String),
    /// The body matches this regular expression (Rust `regex` syntax, unanchored).
    Matches(String),
    /// The body is JSON and the value at `pointer` (RFC 6901) equals `equals`: a JSON string
    /// compares by its text, any other value by its compact JSON form (`true`, `3`, `null`).
    JsonField { pointer: String, equals: String },
}

impl fmt::Display for BodyAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyAssertion::Contains(text) => write!(f, "body contains {text:?}"),
            BodyAssertion::NotContains(text) => write!(f, "body does not contain {text:?}"),
            BodyAssertion::Matches(regex) => write!(f, "body matches /{regex}/"),
            BodyAssertion::JsonField { pointer, equals } => write!(f, "json {pointer} == {equals:?}"),
        }
    }
}

/// A TCP connect, optionally followed by a TLS handshake (certificate checked and its expiry
/// recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheck {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub address: AddressPolicy,
}

/// A `grpc.health.v1.Health/Check` call; SERVING is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCheck {
    pub host: String,
    pub port: u16,
    /// The service asked about; empty asks about the server as a whole.
    pub service: String,
    pub tls: bool,
    pub address: AddressPolicy,
}

/// A DNS query; the probe fails as DNS when the server cannot answer, and as an assertion when
/// it answers without every expected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub name: String,
    pub record_type: DnsRecordType,
    /// `ip` or `ip:port` of the server to ask; the node's resolver (`/etc/resolv.conf`) when unset.
    pub server: Option<String>,
    /// Values that must all be among the answers (addresses, names without the final dot, TXT
    /// text); when empty, any non-empty answer passes.
    pub expected: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
    Txt,
    Mx,
    Ns,
}

impl DnsRecordType {
    pub const ALL: [DnsRecordType; 6] = [
        DnsRecordType::A,
        DnsRecordType::Aaaa,
        DnsRecordType::Cname,
        DnsRecordType::Txt,
        DnsRecordType::Mx,
        DnsRecordType::Ns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::A => "A",
            DnsRecordType::Aaaa => "AAAA",
            DnsRecordType::Cname => "CNAME",
            DnsRecordType::Txt => "TXT",
            DnsRecordType::Mx => "MX",
            DnsRecordType::Ns => "NS",
        }
    }

    /// Case-insensitive, as people write record types either way.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(text))
    }

    /// The type's code in DNS messages (RFC 1035, RFC 3596).
    pub fn code(self) -> u16 {
        match self {
            DnsRecordType::A => 1,
            DnsRecordType::Ns => 2,
            DnsRecordType::Cname => 5,
            DnsRecordType::Mx => 15,
            DnsRecordType::Txt => 16,
            DnsRecordType::Aaaa => 28,
        }
    }
}

impl fmt::Display for DnsRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    #[error("check {id}: interval {interval_ms} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms")]
    Interval { id: CheckId, interval_ms: u32 },
    #[error("check {id}: timeout {timeout_ms} ms must be above 0 and at most the interval ({interval_ms} ms)")]
    Timeout { id: CheckId, timeout_ms: u32, interval_ms: u32 },
    #[error("check {id}: url {url:?} must be an absolute http:// or https:// URL with a host")]
    Url { id: CheckId, url: String },
    #[error("check {id}: method {method:?} is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH")]
    Method { id: CheckId, method: String },
    #[error("check {id}: expected status {status} is not an HTTP status code (100..=599)")]
    Status { id: CheckId, status: u16 },
    #[error("check {id}: header {name:?}: {reason}")]
    Header { id: CheckId, name: String, reason: String },
    #[error("check {id}: body is {len} bytes; at most {MAX_REQUEST_BODY} may be sent")]
    Body { id: CheckId, len: usize },
    #[error("check {id}: assertion {index} ({assertion}): {reason}")]
    Assertion { id: CheckId, index: usize, assertion: String, reason: String },
    #[error("check {id}: host {host:?} must be a DNS name or an IP address")]
    Host { id: CheckId, host: String },
    #[error("check {id}: port must be 1..=65535")]
    Port { id: CheckId },
    #[error("check {id}: dns server {server:?} must be an IP address, optionally with :port")]
    DnsServer { id: CheckId, server: String },
    #[error("check {id}: expected {value:?} cannot be a {record_type} answer")]
    DnsExpected { id: CheckId, value: String, record_type: DnsRecordType },
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

impl CheckSpec {
    /// Every problem with this spec, so a catalogue with several mistakes is fixed in one go.
    pub fn problems(&self) -> Vec<CheckSpecError> {
        let mut problems = Vec::new();
        let id = self.id.clone();
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            problems.push(CheckSpecError::Interval { id: id.clone(), interval_ms: self.interval_ms });
        }
        if self.timeout_ms == 0 || self.timeout_ms > self.interval_ms {
            problems.push(CheckSpecError::Timeout {
                id: id.clone(),
                timeout_ms: self.timeout_ms,
                interval_ms: self.interval_ms,
            });
        }
        match &self.kind {
            CheckKind::Http(http) => http_problems(&id, http, &mut problems),
            CheckKind::Tcp(tcp) => host_problems(&id, &tcp.host, tcp.port, &mut problems),
            CheckKind::Grpc(grpc) => host_problems(&id, &grpc.host, grpc.port, &mut problems),
            CheckKind::Dns(dns) => dns_problems(&id, dns, &mut problems),
        }
        problems
    }

    /// Where in each interval this check runs, derived from its id alone, so the schedule
    /// survives restarts and different checks spread over the interval instead of bunching
    /// at its start.
    pub fn phase_ms(&self) -> u64 {
        let interval = u64::from(self.interval_ms.max(1));
        (fnv1a(self.id.as_str().as_bytes()) % interval + u64::from(self.phase_shift_ms)) % interval
    }

    /// The shift that puts the `index`-th of `count` regions at its own slot of the interval,
    /// so `count` regions together probe once every `interval / count`.
    pub fn region_shift_ms(interval_ms: u32, index: usize, count: usize) -> u32 {
        let count = count.max(1) as u64;
        let slot = (index as u64 % count) * u64::from(interval_ms) / count;
        u32::try_from(slot).unwrap_or(0)
    }

    /// The first scheduled run strictly after `now_ms`: runs sit at `k * interval + phase`.
    pub fn next_run_after(&self, now_ms: i64) -> i64 {
        let interval = i64::from(self.interval_ms.max(1));
        let phase = self.phase_ms() as i64;
        let k = (now_ms - phase).div_euclid(interval) + 1;
        k * interval + phase
    }
}

fn http_problems(id: &CheckId, http: &HttpCheck, problems: &mut Vec<CheckSpecError>) {
    if !is_plausible_http_url(&http.url) {
        problems.push(CheckSpecError::Url { id: id.clone(), url: http.url.clone() });
    }
    if !METHODS.contains(&http.method.as_str()) {
        problems.push(CheckSpecError::Method { id: id.clone(), method: http.method.clone() });
    }
    for status in &http.expected_status {
        if !(100..=599).contains(status) {
            problems.push(CheckSpecError::Status { id: id.clone(), status: *status });
        }
    }
    for (name, value) in &http.headers {
        let reason = if name.is_empty() || !name.bytes().all(is_token_byte) {
            Some("the name must be a non-empty HTTP token".to_string())
        } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            Some("the value must not contain CR, LF or NUL".to_string())
        } else if ["content-length", "transfer-encoding", "connection"].contains(&name.to_ascii_lowercase().as_str()) {
            Some("set by the prober; it cannot be configured".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            problems.push(CheckSpecError::Header { id: id.clone(), name: name.clone(), reason });
        }
    }
    if http.body.len() > MAX_REQUEST_BODY {
        problems.push(CheckSpecError::Body { id: id.clone(), len: http.body.len() });
    }
    for (index, assertion) in http.assertions.iter().enumerate() {
        let reason = match assertion {
            BodyAssertion::Contains(text) | BodyAssertion::NotContains(text) if text.is_empty() => {
                Some("the text must not be empty".to_string())
            }
            BodyAssertion::Contains(_) | BodyAssertion::NotContains(_) => None,
            BodyAssertion::Matches(pattern) => compile_body_regex(pattern).err(),
            BodyAssertion::JsonField { pointer, .. } => json_pointer_tokens(pointer).err(),
        };
        if let Some(reason) = reason {
            problems.push(CheckSpecError::Assertion {
                id: id.clone(),
                index,
                assertion: assertion.to_string(),
                reason,
            });
        }
    }
}

fn host_problems(id: &CheckId, host: &str, port: u16, problems: &mut Vec<CheckSpecError>) {
    if !is_plausible_host(host) {
        problems.push(CheckSpecError::Host { id: id.clone(), host: host.to_string() });
    }
    if port == 0 {
        problems.push(CheckSpecError::Port { id: id.clone() });
    }
}

fn dns_problems(id: &CheckId, dns: &DnsCheck, problems: &mut Vec<CheckSpecError>) {
    if dns.name.parse::<std::net::IpAddr>().is_ok() || !is_plausible_host(&dns.name) {
        problems.push(CheckSpecError::Host { id: id.clone(), host: dns.name.clone() });
    }
    if let Some(server) = &dns.server {
        if parse_dns_server(server).is_none() {
            problems.push(CheckSpecError::DnsServer { id: id.clone(), server: server.clone() });
        }
    }
    for value in &dns.expected {
        let fits = match dns.record_type {
            DnsRecordType::A => value.parse::<std::net::Ipv4Addr>().is_ok(),
            DnsRecordType::Aaaa => value.parse::<std::net::Ipv6Addr>().is_ok(),
            DnsRecordType::Cname | DnsRecordType::Ns | DnsRecordType::Mx => is_plausible_host(value),
            DnsRecordType::Txt => true,
        };
        if !fits {
            problems.push(CheckSpecError::DnsExpected {
                id: id.clone(),
                value: value.clone(),
                record_type: dns.record_type,
            });
        }
    }
}

/// Compiles a body regex with the limits every prober uses, so what validates here is exactly
/// what runs there.
pub fn compile_body_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| e.to_string())
}

/// The reference tokens of an RFC 6901 JSON pointer (`""` is the whole document).
pub fn json_pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} must be empty or start with '/'"));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, true) => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("JSON pointer {pointer:?}: '~' must be followed by 0 or 1")),
                    },
                    (c, false) => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// `ip` or `ip:port` (`[v6]:port`), the port defaulting to 53.
pub fn parse_dns_server(server: &str) -> Option<std::net::SocketAddr> {
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 53));
    }
    server.parse::<std::net::SocketAddr>().ok().filter(|addr| addr.port() != 0)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A DNS name (letters, digits, hyphens, underscores, dots; an optional final dot) or an IP.
fn is_plausible_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_plausible_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(id: &str, url: &str, interval_ms: u32, timeout_ms: u32) -> CheckSpec {
        CheckSpec {
            id: CheckId::new(id).unwrap(),
            interval_ms,
            timeout_ms,
            phase_shift_ms: 0,
            kind: CheckKind::Http(HttpCheck::get(url)),
        }
    }

    fn with_kind(kind: CheckKind) -> CheckSpec {
        CheckSpec { id: CheckId::new("k").unwrap(), interval_ms: 10_000, timeout_ms: 1_000, phase_shift_ms: 0, kind }
    }

    #[test]
    fn valid_spec_has_no_problems() {
        assert!(http("a", "https://a.example/health", 10_000, 5_000).problems().is_empty());
        assert!(http("a", "http://127.0.0.1:8080", 1_000, 1_000).problems().is_empty());
        let mut full = HttpCheck::get("https://a.example/");
        full.headers = vec![("X-Token".into(), "abc".into())];
        full.body = "{}".into();
        full.assertions = vec![
            BodyAssertion::Contains("ok".into()),
            BodyAssertion::Matches("^up( |$)".into()),
            BodyAssertion::JsonField { pointer: "/status/a~1b".into(), equals: "up".into() },
        ];
        assert!(with_kind(CheckKind::Http(full)).problems().is_empty());
        let tcp = TcpCheck { host: "db.example".into(), port: 5432, tls: false, address: AddressPolicy::default() };
        assert!(with_kind(CheckKind::Tcp(tcp)).problems().is_empty());
        let dns = DnsCheck {
            name: "api.example".into(),
            record_type: DnsRecordType::A,
            server: Some("10.0.0.53:5353".into()),
            expected: vec!["10.0.0.1".into()],
        };
        assert!(with_kind(CheckKind::Dns(dns)).problems().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut spec = http("a", "ftp://x", 50, 100);
        let CheckKind::Http(h) = &mut spec.kind else { unreachable!() };
        h.method = "BREW".into();
        h.expected_status = vec![200, 999];
        h.headers = vec![("Bad Name".into(), "v".into()), ("X-A".into(), "a\r\nb".into())];
        h.assertions = vec![
            BodyAssertion::Matches("(unclosed".into()),
            BodyAssertion::JsonField { pointer: "status".into(), equals: "up".into() },
            BodyAssertion::JsonField { pointer: "/a~2".into(), equals: "up".into() },
        ];
        let problems: Vec<String> = spec.problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 10, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("assertion 0 (body matches /(unclosed/)")), "{problems:#?}");
        for (url, ok) in [("http://", false), ("https://h", true), ("https:// h", false), ("h/x", false)] {
            assert_eq!(is_plausible_http_url(url), ok, "{url}");
        }

        let tcp = TcpCheck { host: "bad host".into(), port: 0, tls: true, address: AddressPolicy::default() };
        assert_eq!(with_kind(CheckKind::Tcp(tcp)).problems().len(), 2);
        let dns = DnsCheck {
            name: "10.0.0.1".into(),
            record_type: DnsRecordType::Aaaa,
            server: Some("resolver".into()),
            expected: vec!["10.0.0.1".into()],
        };
        assert_eq!(with_kind(CheckKind::Dns(dns)).problems().len(), 3);
    }

    #[test]
    fn json_pointers_unescape_and_dns_servers_default_their_port() {
        assert_eq!(json_pointer_tokens("").unwrap(), Vec::<String>::new());
        assert_eq!(json_pointer_tokens("/a~1b/~0c/0").unwrap(), ["a/b", "~c", "0"]);
        assert!(json_pointer_tokens("/a~").is_err());
        assert_eq!(parse_dns_server("10.0.0.1"), Some("10.0.0.1:53".parse().unwrap()));
        assert_eq!(parse_dns_server("[::1]:5353"), Some("[::1]:5353".parse().unwrap()));
        assert_eq!(parse_dns_server("10.0.0.1:0"), None);
        assert_eq!(DnsRecordType::parse("aaaa"), Some(DnsRecordType::Aaaa));
        assert_eq!(IpPreference::parse("ip6"), Some(IpPreference::Ip6));
    }

    #[test]
    fn schedule_keeps_its_phase_and_never_runs_twice_in_an_interval() {
        let spec = http("us-west", "http://h", 10_000, 1_000);
        let phase = spec.phase_ms() as i64;
        assert_eq!(phase, http("us-west", "http://other", 10_000, 1_000).phase_ms() as i64);
        let mut now = 1_700_000_000_000;
        for _ in 0..100 {
            let next = spec.next_run_after(now);
            assert!(next > now && next - now <= 10_000);
            assert_eq!(next.rem_euclid(10_000), phase);
            now = next;
        }
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let spec = http(&format!("check-{i}"), "http://h", 10_000, 1_000);
            buckets[(spec.phase_ms() / 1_000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (50..=150).contains(&n)), "{buckets:?}");
    }
}
