//! A tiny HTTP/1.1 client for tests, so no test depends on a full client stack: one request
//! per connection (`Connection: close`), the response read to EOF, chunked bodies decoded.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::TestkitError;

/// Every request, connect to last byte, is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, TestkitError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| TestkitError::Http(format!("body is not JSON ({e}): {}", self.text())))
    }
}

fn err(message: impl Into<String>) -> TestkitError {
    TestkitError::Http(message.into())
}

/// Splits `http://host:port/path?query` into (`host:port`, `/path?query`).
fn split_url(url: &str) -> Result<(&str, &str), TestkitError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| err(format!("only http:// URLs are supported: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(err(format!("no host in {url}")));
    }
    Ok((authority, path))
}

/// Sends one request and reads the whole response.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, TestkitError> {
    match tokio::time::timeout(TIMEOUT, request_inner(method, url, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(TestkitError::Timeout { what: format!("{method} {url}"), after: TIMEOUT }),
    }
}

async fn request_inner(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, TestkitError> {
    let (authority, path) = split_url(url)?;
    let addr = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let mut stream =
        TcpStream::connect(&addr).await.map_err(|e| err(format!("connecting to {addr} for {method} {url}: {e}")))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    stream.write_all(&raw).await.map_err(|e| err(format!("sending {method} {url}: {e}")))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| err(format!("reading response to {method} {url}: {e}")))?;
    parse_response(&response, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<Response, TestkitError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| err(format!("incomplete response head: {:?}", String::from_utf8_lossy(raw))))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| err("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| err(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| err(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let response = Response { status, headers, body: Vec::new() };
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(|_| err(format!("bad Content-Length {length:?}")))?;
        rest.get(..length).ok_or_else(|| err(format!("body shorter than Content-Length {length}")))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { body, ..response })
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, TestkitError> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| err("truncated chunk size line"))?;
        let size_line = std::str::from_utf8(&data[..line_end]).map_err(|_| err("chunk size is not UTF-8"))?;
        // Chunk extensions (`;name=value`) carry nothing a test needs.
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| err(format!("bad chunk size {size_line:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = data.get(..size).ok_or_else(|| err("truncated chunk"))?;
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or_else(|| err("chunk not followed by CRLF"))?;
    }
}

pub async fn get(url: &str) -> Result<Response, TestkitError> {
    request("GET", url, &[], None).await
}

/// POSTs `body` as JSON (with a bearer token if given) and returns the status and the body as
/// JSON; a body that is not JSON comes back as a JSON string holding its text.
pub async fn post_json(
    url: &str,
    body: &serde_json::Value,
    bearer: Option<&str>,
) -> Result<(u16, serde_json::Value), TestkitError> {
    let payload = serde_json::to_vec(body).map_err(|e| err(format!("encoding JSON: {e}")))?;
    let auth = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth.as_deref() {
        headers.push(("Authorization", auth));
    }
    let response = request("POST", url, &headers, Some(&payload)).await?;
    let value = response.json().unwrap_or_else(|_| serde_json::Value::String(response.text()));
    Ok((response.status, value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves one connection: records the raw request, answers with `reply`.
    async fn serve_once(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // Read the head, then as many body bytes as Content-Length says.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                assert!(n > 0, "client closed early");
            }
            socket.write_all(reply).await.unwrap();
            socket.shutdown().await.unwrap();
            request
        });
        (url, task)
    }

    #[tokio::test]
    async fn get_reads_a_content_length_body() {
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello").await;
        let response = get(&format!("{url}/health?x=1")).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(response.header("x-test"), Some("yes"));
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(request.starts_with("GET /health?x=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Connection: close\r\n"), "{request}");
    }

    #[tokio::test]
    async fn decodes_chunked_responses() {
        let (url, _server) = serve_once(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\
              4\r\n{\"a\"\r\nb;ext=1\r\n: [1, 2, 3]\r\n1\r\n}\r\n0\r\n\r\n",
        )
        .await;
        let (status, body) = post_json(&url, &serde_json::json!({"k": 1}), None).await.unwrap();
        assert_eq!(status, 201);
        assert_eq!(body, serde_json::json!({"a": [1, 2, 3]}));
    }

    #[tokio::test]
    async fn post_json_sends_body_length_and_bearer() {
        let (url, server) = serve_once(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\nno way").await;
        let (status, body) =
            post_json(&format!("{url}/api"), &serde_json::json!({"x": "y"}), Some("t0k")).await.unwrap();
        assert_eq!(status, 401);
        assert_eq!(body, serde_json::Value::String("no way".into()), "non-JSON body comes back as text");
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(request.starts_with("POST /api HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Authorization: Bearer t0k\r\n"), "{request}");
        assert!(request.contains("Content-Length: 9\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"x\":\"y\"}"), "{request}");
    }

    #[tokio::test]
    async fn connection_refused_is_an_error_naming_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        drop(listener);
        let error = get(&url).await.unwrap_err();
        assert!(error.to_string().contains(&url), "{error}");
    }

    #[test]
    fn refuses_non_http_urls() {
        assert!(split_url("https://x/").is_err());
        assert_eq!(split_url("http://h:1").unwrap(), ("h:1", "/"));
    }
}
