//! The DNS check: one query over UDP to the check's server (or the node's first
//! `/etc/resolv.conf` nameserver), with recursion desired, sent from the prober's source
//! address when one is configured. A server that does not answer, or
//! answers with an error code (NXDOMAIN, SERVFAIL, ...), or without any record of the asked
//! type, fails as DNS; an answer missing an expected value fails as an assertion.
//!
//! Written by hand (RFC 1035): a query and the parse of an answer's records are a few dozen
//! lines, against a resolver library's size in every prober.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mixmon_model::check::parse_dns_server;
use mixmon_model::{CheckSpec, DnsCheck, DnsRecordType, FailureKind, ProbeResult};
use tokio::net::UdpSocket;

use super::common::{Failure, Phase, Progress};
use super::http::conclude;

const RESOLV_CONF: &str = "/etc/resolv.conf";

pub(crate) async fn probe(spec: &CheckSpec, dns: &DnsCheck, source: Option<IpAddr>, started_at_ms: i64) -> ProbeResult {
    let start = Instant::now();
    let mut progress = Progress::new(start);
    let budget = Duration::from_millis(u64::from(spec.timeout_ms));
    let outcome = tokio::time::timeout(budget, run(dns, source, &mut progress)).await;
    conclude(spec, started_at_ms, start, progress, outcome)
}

async fn run(dns: &DnsCheck, source: Option<IpAddr>, progress: &mut Progress) -> Result<(), Failure> {
    let server = match &dns.server {
        Some(server) => parse_dns_server(server)
            .ok_or_else(|| Failure::new(FailureKind::Dns, format!("dns: server {server:?} is not ip[:port]")))?,
        None => system_nameserver()?,
    };
    progress.details.address = Some(server);
    progress.enter(Phase::Dns);
    let id: u16 = rand::random();
    let query = build_query(id, &dns.name, dns.record_type)
        .map_err(|reason| Failure::new(FailureKind::Dns, format!("dns: {}: {reason}", dns.name)))?;
    let bind = match source {
        Some(ip) if ip.is_ipv4() != server.is_ipv4() => {
            return Err(Failure::new(
                FailureKind::Connection,
                format!("dns: source_ip {ip} cannot reach {server}: another address family"),
            ));
        }
        Some(ip) => SocketAddr::new(ip, 0),
        None if server.is_ipv4() => ([0u8; 4], 0).into(),
        None => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| match source {
        Some(ip) => Failure::new(FailureKind::Connection, format!("dns: bind source_ip {ip}: {e}")),
        None => Failure::new(FailureKind::Dns, format!("dns: socket: {e}")),
    })?;
    socket
        .connect(server)
        .await
        .map_err(|e| Failure::new(FailureKind::Connection, format!("dns: connect {server}: {e}")))?;
    socket.send(&query).await.map_err(|e| Failure::new(FailureKind::Dns, format!("dns: send to {server}: {e}")))?;
    let mut buf = vec![0u8; 4096];
    let answer = loop {
        let n = socket.recv(&mut buf).await.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                FailureKind::ConnectionRefused
            } else {
                FailureKind::Dns
            };
            Failure::new(kind, format!("dns: {server}: {e}"))
        })?;
        // Anything but the answer to our query (a late answer to an earlier one, a spoof) is
        // ignored; the timeout bounds the wait.
        if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            break parse_answer(&buf[..n], dns.record_type)
                .map_err(|reason| Failure::new(FailureKind::Dns, format!("dns: {server}: {reason}")))?;
        }
    };
    progress.finish();

    if answer.rcode != 0 {
        return Err(Failure::new(
            FailureKind::Dns,
            format!("dns: {} {}: {}", dns.name, dns.record_type, rcode_name(answer.rcode)),
        ));
    }
    if answer.values.is_empty() {
        let truncated = if answer.truncated { " (truncated; TCP is not tried)" } else { "" };
        return Err(Failure::new(
            FailureKind::Dns,
            format!("dns: {} has no {} record{truncated}", dns.name, dns.record_type),
        ));
    }
    for expected in &dns.expected {
        let want = normalise(expected, dns.record_type);
        if !answer.values.contains(&want) {
            let mut found = answer.values.join(", ");
            found.truncate(200);
            return Err(Failure::new(
                FailureKind::AssertionFailed,
                format!("dns: {} {} answer lacks {expected:?} (got {found})", dns.name, dns.record_type),
            ));
        }
    }
    Ok(())
}

/// Names compare without case or the final dot; addresses by their canonical text.
fn normalise(value: &str, record_type: DnsRecordType) -> String {
    match record_type {
        DnsRecordType::A | DnsRecordType::Aaaa => {
            value.parse::<std::net::IpAddr>().map_or_else(|_| value.to_owned(), |ip| ip.to_string())
        }
        DnsRecordType::Cname | DnsRecordType::Ns | DnsRecordType::Mx => {
            value.strip_suffix('.').unwrap_or(value).to_ascii_lowercase()
        }
        DnsRecordType::Txt => value.to_owned(),
    }
}

fn system_nameserver() -> Result<SocketAddr, Failure> {
    let text = std::fs::read_to_string(RESOLV_CONF)
        .map_err(|e| Failure::new(FailureKind::Dns, format!("dns: no server configured and {RESOLV_CONF}: {e}")))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next().and_then(|ip| ip.parse::<std::net::IpAddr>().ok()))
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| Failure::new(FailureKind::Dns, format!("dns: no nameserver in {RESOLV_CONF}")))
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("rcode {other}"),
    }
}

/// A standard query with recursion desired, for `name` and `record_type`, class IN.
pub(crate) fn build_query(id: u16, name: &str, record_type: DnsRecordType) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        let len = u8::try_from(label.len()).ok().filter(|len| (1..=63).contains(len)).ok_or("bad label length")?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&record_type.code().to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) rcode: u8,
    pub(crate) truncated: bool,
    /// The answers of the asked type, as text (see [`normalise`]).
    pub(crate) values: Vec<String>,
}

pub(crate) fn parse_answer(msg: &[u8], record_type: DnsRecordType) -> Result<Answer, String> {
    let header = msg.get(..12).ok_or("short header")?;
    let truncated = header[2] & 0x02 != 0;
    let rcode = header[3] & 0x0f;
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let ancount = u16::from_be_bytes([header[6], header[7]]);
    let mut pos = 12;
    for _ in 0..qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut values = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or("short record")?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = pos + 10;
        let rdata = msg.get(start..start + rdlen).ok_or("short record data")?;
        pos = start + rdlen;
        if rtype != record_type.code() {
            continue; // the CNAME chain before the asked-for records
        }
        let value = match record_type {
            DnsRecordType::A => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| "bad A record")?;
                std::net::Ipv4Addr::from(octets).to_string()
            }
            DnsRecordType::Aaaa => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| "bad AAAA record")?;
                std::net::Ipv6Addr::from(octets).to_string()
            }
            DnsRecordType::Cname | DnsRecordType::Ns => read_name(msg, start)?,
            DnsRecordType::Mx => read_name(msg, start + 2)?,
            DnsRecordType::Txt => {
                let mut text = Vec::new();
                let mut at = 0;
                while at < rdata.len() {
                    let len = usize::from(rdata[at]);
                    text.extend_from_slice(rdata.get(at + 1..at + 1 + len).ok_or("bad TXT record")?);
                    at += 1 + len;
                }
                String::from_utf8_lossy(&text).into_owned()
            }
        };
        values.push(value);
    }
    Ok(Answer { rcode, truncated, values })
}

/// The position just past the name at `pos` (a pointer ends a name).
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(pos).ok_or("name runs past the message")?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => return Ok(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

/// The name at `pos`, following compression pointers (at most 64, so a loop cannot hang us),
/// lower-cased and without the final dot.
fn read_name(msg: &[u8], mut pos: usize) -> Result<String, String> {
    let mut name = String::new();
    for _ in 0..64 {
        let len = *msg.get(pos).ok_or("name runs past the message")?;
        if len == 0 {
            return Ok(name);
        }
        if len & 0xc0 == 0xc0 {
            let low = *msg.get(pos + 1).ok_or("name runs past the message")?;
            pos = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            continue;
        }
        let label = msg.get(pos + 1..pos + 1 + usize::from(len)).ok_or("name runs past the message")?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + usize::from(len);
    }
    Err("name compression loops".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_the_name_and_type() {
        let q = build_query(0x1234, "api.example.", DnsRecordType::Aaaa).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03api\x07example\x00\x00\x1c\x00\x01");
        assert!(build_query(1, "a..b", DnsRecordType::A).is_err());
    }

    #[test]
    fn answers_follow_compression_and_skip_other_types() {
        let mut msg = build_query(7, "www.example", DnsRecordType::A).unwrap();
        msg[2] |= 0x80;
        msg[7] = 2; // two answers
                    // www.example CNAME web.example (name as a pointer to the question's name at 12)
        msg.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'w', b'e', b'b', 0xc0, 16]);
        // web.example A 10.0.0.7
        let web = msg.len() - 6;
        msg.extend_from_slice(&[0xc0, web as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]);
        let answer = parse_answer(&msg, DnsRecordType::A).unwrap();
        assert_eq!(answer, Answer { rcode: 0, truncated: false, values: vec!["10.0.0.7".into()] });
        let cname = parse_answer(&msg, DnsRecordType::Cname).unwrap();
        assert_eq!(cname.values, ["web.example"]);
        assert!(parse_answer(&msg[..msg.len() - 3], DnsRecordType::A).is_err());
        assert!(read_name(&[0xc0, 0], 0).is_err(), "a pointer to itself must not hang the prober");
    }
}
