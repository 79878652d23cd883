//! A real SMTP server for the tests and the notify benchmark: `aiosmtpd` (PyPI; the test
//! command installs it) run by `smtp_sink.py`, with STARTTLS and AUTH required and a fresh
//! self-signed certificate for `localhost`. Mail it accepts is read back whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mixmon_testkit::{read_ready_file, ChildProcess};

pub const USER: &str = "mixmon@aimixer.com";

pub struct SmtpSink {
    pub process: ChildProcess,
    pub port: u16,
    /// The server's certificate: the aggregator trusts it through `SSL_CERT_FILE`.
    pub cert: PathBuf,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub async fn start(password: &str) -> anyhow::Result<SmtpSink> {
        let dir = tempfile::tempdir()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let args = [script.display().to_string(), dir.path().display().to_string(), USER.into(), password.into()];
        let process = ChildProcess::spawn(Path::new("python3"), args, &[])?;
        let ready = read_ready_file(&dir.path().join("ready.json"), Duration::from_secs(30))
            .await
            .context("aiosmtpd did not start (the test command installs it with pip)")?;
        let port = ready["port"].as_u64().context("no port")? as u16;
        let cert = PathBuf::from(ready["cert"].as_str().context("no cert")?);
        Ok(SmtpSink { process, port, cert, dir })
    }

    /// Every message received, in order, as raw text.
    pub fn messages(&self) -> anyhow::Result<Vec<String>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read_to_string(p).with_context(|| p.display().to_string())).collect()
    }
}

/// A header's value in a raw message (unfolded), if present.
pub fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or(message);
    let mut value: Option<String> = None;
    for line in head.split("\r\n").flat_map(|l| l.split('\n')) {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line.trim_start());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}
