//! Test helpers shared by the integration tests: a tiny HTTP/1.1 client on a raw
//! `TcpStream`, a poll-until-deadline helper, a Prometheus text reader and a small fleet.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mixmon_mixer_sim::{SimConfig, SimHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous: the machine is shared with parallel builds.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Two regions, small enough to start fast: `a` with 2 pods, `b` with 3.
pub async fn small_fleet(token: Option<&str>) -> SimHandle {
    let config = SimConfig {
        regions: vec![("a".into(), 2), ("b".into(), 3)],
        requests_per_second_per_pod: 200.0,
        seed: 42,
        admin_token: token.map(str::to_owned),
        ..SimConfig::default()
    };
    mixmon_mixer_sim::start(config).await.expect("simulator starts")
}

pub fn pod_addr(sim: &SimHandle, name: &str) -> SocketAddr {
    sim.addresses().pods.iter().find(|p| p.name == name).expect("known pod").addr
}

pub fn endpoint(sim: &SimHandle, name: &str) -> SocketAddr {
    *sim.addresses().endpoints.get(name).expect("known endpoint")
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    exchange(stream, addr, method, path, headers, body).await
}

/// A connection to `addr` from the local address `source` (any loopback address works on
/// Linux: all of 127.0.0.0/8 is this host).
pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// `GET /health` with `Connection: close` on `stream`, read to the end.
pub async fn health_on(stream: TcpStream, addr: SocketAddr) -> std::io::Result<Reply> {
    exchange(stream, addr, "GET", "/health", &[], None).await
}

/// `GET /health` on a connection kept open: reads exactly one response (by its
/// `Content-Length`), so the connection can carry another.
pub async fn keep_alive_health(stream: &mut TcpStream) -> std::io::Result<Reply> {
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: sim\r\n\r\n").await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed mid-response"));
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return parse_reply(&raw);
            }
        }
    }
}

async fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Reply { status, headers, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// GET with the test deadline; panics on failure so tests read as scenarios.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    tokio::time::timeout(DEADLINE, request(addr, "GET", path, &[], None))
        .await
        .expect("answer within the deadline")
        .expect("HTTP exchange")
}

/// Calls `probe` until it returns `Some`, every 20 ms, failing the test at `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Samples of a scrape by series (`name{labels}` exactly as written) to value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().expect("numeric sample")))
        .collect()
}

/// The 200-status request counter of a pod in `region`.
pub fn ok_requests(samples: &BTreeMap<String, f64>, region: &str) -> f64 {
    let series = format!("ai_mixer_requests_total{{region=\"{region}\",status=\"200\"}}");
    *samples.get(&series).expect("200 counter present")
}
