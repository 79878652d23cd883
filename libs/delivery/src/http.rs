//! One HTTP(S) POST per notification: small, rare requests, so one connection each and no
//! pool. TLS trusts the Mozilla roots (webpki-roots), as the prober does. A URL can be a
//! secret (a Slack webhook's path is its key): errors name the scheme and host only.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A receiver's answer is read up to this much (its status matters, its body is shown).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Where a URL points, without its path and query (which may hold a token).
pub fn redacted(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!("{}://{}", uri.scheme_str().unwrap_or("?"), uri.authority().map_or("?", |a| a.as_str())),
        Err(_) => "an unparsable URL".to_string(),
    }
}

fn tls() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// POSTs `body` to `url` with `headers`, all within `timeout`.
pub async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>, timeout: Duration) -> Result<HttpAnswer, String> {
    let place = redacted(url);
    match tokio::time::timeout(timeout, exchange(url, headers, body)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("{place}: {e}")),
        Err(_) => Err(format!("{place}: no answer within {} s", timeout.as_secs_f64())),
    }
}

async fn exchange(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<HttpAnswer, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("only http:// and https:// URLs are supported".into()),
    };
    let host = uri.host().ok_or("no host")?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, uri.authority().map_or(host.as_str(), |a| a.as_str()))
        .header(http::header::USER_AGENT, concat!("mixmon/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| format!("bad request: {e}"))?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("server name: {e}"))?;
        let stream = tls()?.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        send(stream, request).await
    } else {
        send(tcp, request).await
    }
}

async fn send<S>(io: S, request: http::Request<Full<Bytes>>) -> Result<HttpAnswer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"));
    let answer = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after =
                response.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok(HttpAnswer { status, retry_after, body })
        }
        Err(e) => Err(e),
    };
    connection.abort();
    answer
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_url_is_never_shown_whole() {
        assert_eq!(redacted("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com");
        assert_eq!(redacted("http://127.0.0.1:9/x?token=1"), "http://127.0.0.1:9");
        assert_eq!(redacted("::"), "an unparsable URL");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_that_hides_the_path() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = post(&format!("http://127.0.0.1:{port}/secret"), &[], Vec::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.starts_with(&format!("http://127.0.0.1:{port}: connect")), "{err}");
        assert!(!err.contains("secret"));
    }
}
