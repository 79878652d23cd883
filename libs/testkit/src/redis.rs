//! A real `redis-server` per test: its own process, port and data directory, so tests never
//! share state with each other or with a system Redis, and can kill and restart it to test
//! failure handling.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestkitError;

const START_DEADLINE: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const LOG_FILE: &str = "redis.log";
const STDIO_FILE: &str = "redis.stdio.log";

#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    append_only: bool,
    program: PathBuf,
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        Self { append_only: false, program: PathBuf::from("redis-server") }
    }
}

impl RedisServerBuilder {
    /// `appendonly yes` with `appendfsync always`: every acknowledged write survives
    /// [`RedisServer::kill`] + [`RedisServer::restart`].
    pub fn append_only(mut self, on: bool) -> Self {
        self.append_only = on;
        self
    }

    /// The server binary; `redis-server` from `PATH` by default.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    pub fn start(self) -> Result<RedisServer, TestkitError> {
        let mut last_failure = None;
        // The free port is found by binding and releasing it, so another process can take it
        // before redis binds; a few attempts with fresh ports make that race harmless.
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("mixmon-redis-")
                .tempdir()
                .map_err(|e| TestkitError::io("creating redis data dir", e))?;
            let mut server = RedisServer {
                child: None,
                port: free_port()?,
                append_only: self.append_only,
                program: self.program.clone(),
                dir,
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(err @ TestkitError::RedisNotFound) => return Err(err),
                Err(err) => last_failure = Some(err),
            }
        }
        Err(last_failure.unwrap_or_else(|| TestkitError::RedisStart {
            reason: "no start attempt was made".into(),
            log: String::new(),
        }))
    }
}

/// A running `redis-server` on 127.0.0.1, killed and reaped on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    append_only: bool,
    program: PathBuf,
    // Declared last so it is removed after the process is gone (fields drop in order, and
    // `Drop::drop` runs before any of them).
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> Result<RedisServer, TestkitError> {
        Self::builder().start()
    }

    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's process id while it runs (to `kill -STOP` it and simulate a hang).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory (AOF, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` lines of the server's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let mut text = tail(&self.dir.path().join(LOG_FILE), n);
        let stdio = tail(&self.dir.path().join(STDIO_FILE), n);
        if !stdio.is_empty() {
            text.push_str(&stdio);
        }
        text
    }

    /// SIGKILL, like a crash or an OOM kill: nothing is flushed that was not already.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it already exited; either way it is reaped by `wait`.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server if it runs and starts it again on the same port and data directory,
    /// so append-only data survives; returns once it answers `PING`.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.spawn_and_wait()
    }

    fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let dir = self.dir.path();
        let stdio = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(STDIO_FILE))
            .map_err(|e| TestkitError::io("creating redis stdio log", e))?;
        let stdio_err = stdio.try_clone().map_err(|e| TestkitError::io("creating redis stdio log", e))?;
        let mut command = Command::new(&self.program);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .args(["--logfile", LOG_FILE]);
        if self.append_only {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no", "--save", ""]);
        }
        let child = command.current_dir(dir).stdin(Stdio::null()).stdout(stdio).stderr(stdio_err).spawn().map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::RedisNotFound,
                _ => TestkitError::io("spawning redis-server", e),
            },
        )?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if ping(self.addr()) {
                return Ok(());
            }
            if !self.is_running() {
                self.kill();
                return Err(TestkitError::RedisStart {
                    reason: format!("redis-server exited before answering PING on port {}", self.port),
                    log: self.log_tail(20),
                });
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(TestkitError::RedisStart {
                    reason: format!("no PONG on port {} within {START_DEADLINE:?}", self.port),
                    log: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> Result<u16, TestkitError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| TestkitError::io("finding a free port", e))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| TestkitError::io("finding a free port", e))
}

/// Raw `PING` over TCP: true only on `+PONG` (a loading server answers `-LOADING`).
pub(crate) fn ping(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;

    /// One RESP command over a fresh connection; enough to check data without a client crate.
    fn command(addr: SocketAddr, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        // Replies used here are single lines or one bulk string: read until the final CRLF.
        loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed mid-reply");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let complete = match text.as_bytes().first() {
                Some(b'$') => text.matches("\r\n").count() >= 2 || text.starts_with("$-1\r\n"),
                _ => text.ends_with("\r\n"),
            };
            if complete {
                return text.into_owned();
            }
        }
    }

    #[test]
    fn starts_answers_and_is_gone_after_kill() {
        let mut redis = RedisServer::start().unwrap();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
        assert_ne!(redis.port(), 6379, "must never use the system redis port");
        assert!(ping(redis.addr()));
        assert_eq!(command(redis.addr(), &["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(command(redis.addr(), &["GET", "k"]), "$1\r\nv\r\n");
        redis.kill();
        assert!(!redis.is_running());
        assert!(TcpStream::connect_timeout(&redis.addr(), Duration::from_millis(500)).is_err());
    }

    #[test]
    fn restart_keeps_append_only_data_on_the_same_port() {
        let mut redis = RedisServer::builder().append_only(true).start().unwrap();
        let port = redis.port();
        assert_eq!(command(redis.addr(), &["SET", "kept", "yes"]), "+OK\r\n");
        redis.kill();
        redis.restart().unwrap();
        assert_eq!(redis.port(), port);
        assert_eq!(command(redis.addr(), &["GET", "kept"]), "$3\r\nyes\r\n");
    }

    #[test]
    fn without_append_only_a_restart_starts_empty() {
        let mut redis = RedisServer::start().unwrap();
        assert_eq!(command(redis.addr(), &["SET", "lost", "yes"]), "+OK\r\n");
        redis.restart().unwrap();
        assert_eq!(command(redis.addr(), &["GET", "lost"]), "$-1\r\n");
        assert!(redis.log_tail(50).contains("Ready to accept connections"), "{}", redis.log_tail(50));
    }

    #[test]
    fn a_missing_binary_says_how_to_get_it() {
        let err = RedisServer::builder().program("/nonexistent/redis-server").start().unwrap_err();
        assert!(matches!(err, TestkitError::RedisNotFound));
        assert!(err.to_string().contains("run scripts/test.sh"), "{err}");
    }

    #[test]
    fn servers_are_independent_and_drop_stops_them() {
        let a = RedisServer::start().unwrap();
        let b = RedisServer::start().unwrap();
        assert_ne!(a.port(), b.port());
        command(a.addr(), &["SET", "only-a", "1"]);
        assert_eq!(command(b.addr(), &["GET", "only-a"]), "$-1\r\n");
        let (addr, dir) = (a.addr(), a.dir().to_path_buf());
        drop(a);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
        assert!(!dir.exists(), "the data dir is removed with the server");
    }
}
