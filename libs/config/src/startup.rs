//! The start-up rules every service binary and `mixmon up` share, in one place so they are
//! the same everywhere and tested once: where a bearer token comes from (`[auth]`), the refusal
//! to listen beyond loopback without one, and the ready file that announces what was bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Secret;

/// `[auth]`: the bearer token a service requires, inline (prefer the environment,
/// `MIXMON_AUTH__TOKEN`) or from a file (a mounted Kubernetes Secret).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

impl AuthConfig {
    /// The token, if one is configured: from exactly one place, and not blank.
    pub fn resolve(&self) -> Result<Option<Secret>, String> {
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => return Err("set only one of auth.token and auth.token_file".into()),
            (Some(token), None) => token.clone(),
            (None, Some(path)) => {
                Secret::from_file(path).map_err(|e| format!("cannot read auth.token_file {}: {e}", path.display()))?
            }
            (None, None) => return Ok(None),
        };
        if token.expose().trim().is_empty() {
            return Err("the auth token is empty".into());
        }
        Ok(Some(token))
    }
}

/// The command line every service takes, flattened into its own `clap` parser.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// Configuration file (TOML); `MIXMON_<SECTION>__<KEY>` variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address, overriding the file's `listen` (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// After binding, write the bound addresses here as JSON, atomically (for supervisors
    /// and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

impl ServiceArgs {
    /// Binds `--listen`, else `configured`, by the one rule of [`bind_guarded`].
    pub async fn bind(
        &self,
        configured: &str,
        token: Option<&Secret>,
        what: &str,
        how: &str,
    ) -> Result<tokio::net::TcpListener, String> {
        bind_guarded(self.listen.as_deref().unwrap_or(configured), token, self.insecure_no_auth, what, how).await
    }

    /// Writes `--ready-file`, if one was asked for.
    pub fn announce(&self, addresses: &[(&str, SocketAddr)]) -> Result<(), String> {
        match &self.ready_file {
            Some(path) => {
                announce(path, addresses).map_err(|e| format!("cannot write ready file {}: {e}", path.display()))
            }
            None => Ok(()),
        }
    }
}

/// Whether `listen` can be listened on at all (`host:port`, the port a number); a host name
/// is resolved when bound. Checked by `mixmon validate` and at start alike.
pub fn check_listen(listen: &str) -> Result<(), String> {
    let host_and_port = listen.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    });
    if listen.parse::<SocketAddr>().is_ok() || host_and_port {
        Ok(())
    } else {
        Err(format!("listen: {listen:?} is not an address to listen on (host:port, e.g. 0.0.0.0:8090)"))
    }
}

/// Binds `listen`, refusing an address beyond loopback unless a token guards it or the
/// operator said `insecure` (then it warns). `what` names the listener in messages,
/// `how` says how to set its token.
pub async fn bind_guarded(
    listen: &str,
    token: Option<&Secret>,
    insecure: bool,
    what: &str,
    how: &str,
) -> Result<tokio::net::TcpListener, String> {
    check_listen(listen)?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen} ({what}): {e}"))?;
    let address = listener.local_addr().map_err(|e| format!("cannot read the bound address of {what}: {e}"))?;
    refuse_unguarded(address, token.is_some(), insecure, what, how)?;
    Ok(listener)
}

/// The one rule: beyond loopback, a listener needs a token unless `insecure`.
pub fn refuse_unguarded(
    address: SocketAddr,
    has_token: bool,
    insecure: bool,
    what: &str,
    how: &str,
) -> Result<(), String> {
    if address.ip().is_loopback() || has_token {
        return Ok(());
    }
    if insecure {
        tracing::warn!(%address, listener = what, "serving without authentication on a non-loopback address (--insecure-no-auth)");
        return Ok(());
    }
    Err(format!(
        "refusing to serve {what} on {address} without a token: {how}, listen on a loopback address, or pass --insecure-no-auth"
    ))
}

/// Announces the bound addresses as `{"<name>": "<address>", ...}` in `path`, atomically (a
/// reader never sees half a file), for supervisors and tests.
pub fn announce(path: &Path, addresses: &[(&str, SocketAddr)]) -> std::io::Result<()> {
    let body: serde_json::Map<String, serde_json::Value> =
        addresses.iter().map(|(name, addr)| (name.to_string(), serde_json::Value::String(addr.to_string()))).collect();
    crate::process::write_ready_file(path, &serde_json::Value::Object(body).to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_is_host_and_port() {
        for good in ["127.0.0.1:0", "[::1]:8090", "0.0.0.0:50051", "mixmon-query:8090"] {
            assert!(check_listen(good).is_ok(), "{good}");
        }
        for bad in ["8090", "localhost", ":8090", "127.0.0.1:99999", "my host:80", ""] {
            assert!(check_listen(bad).unwrap_err().contains("host:port"), "{bad}");
        }
    }

    #[test]
    fn a_token_comes_from_exactly_one_place_and_is_never_blank() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = AuthConfig { token: None, token_file: Some(file.clone()) };
        assert!(from_file.resolve().unwrap().unwrap().matches("from-file"));
        let inline = AuthConfig { token: Some(Secret::new("inline")), token_file: None };
        assert!(inline.resolve().unwrap().unwrap().matches("inline"));
        assert!(AuthConfig::default().resolve().unwrap().is_none());
        assert!(AuthConfig { token: Some(Secret::new("a")), token_file: Some(file) }.resolve().is_err());
        assert!(AuthConfig { token: Some(Secret::new(" ")), token_file: None }.resolve().is_err());
        let missing = AuthConfig { token: None, token_file: Some(dir.path().join("absent")) };
        assert!(missing.resolve().unwrap_err().contains("absent"));
    }

    #[test]
    fn beyond_loopback_a_listener_needs_a_token_or_an_explicit_insecure() {
        let public: SocketAddr = "10.0.0.1:8090".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8090".parse().unwrap();
        let how = "set auth.token_file";
        assert!(refuse_unguarded(local, false, false, "the query API", how).is_ok());
        assert!(refuse_unguarded(public, true, false, "the query API", how).is_ok());
        assert!(refuse_unguarded(public, false, true, "the query API", how).is_ok());
        let refused = refuse_unguarded(public, false, false, "the query API", how).unwrap_err();
        assert!(refused.contains("10.0.0.1:8090") && refused.contains(how), "{refused}");
    }

    #[test]
    fn the_ready_file_names_every_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        announce(&path, &[("grpc", "127.0.0.1:1".parse().unwrap()), ("http", "127.0.0.1:2".parse().unwrap())]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"grpc":"127.0.0.1:1","http":"127.0.0.1:2"}"#);
    }
}
