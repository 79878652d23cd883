//! Every listener of mixmon accepts through [`GuardedListener`], so that clients that connect
//! and never speak (a port scanner, a slow-loris client, a crashed peer behind a NAT) cost
//! nothing lasting:
//! - at most [`ConnectionLimits::max_connections`] connections are open at once; past it a new
//!   connection is closed at once (and counted in the log), so file descriptors cannot be
//!   pinned;
//! - a connection that moves no byte either way for [`ConnectionLimits::idle_timeout_ms`] is
//!   closed. Long-lived gRPC streams stay open: HTTP/2 keepalive pings (every 30 s on the
//!   aggregator) are bytes, so the default idle timeout is well above that interval.
//!
//! It serves `axum` (through [`axum::serve::Listener`]) and `tonic` (through
//! [`GuardedListener::into_stream`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// Twice the aggregator's keepalive interval (30 s), so a quiet but healthy stream is kept.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 75_000;

/// What a listener allows, from a service's `[connections]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: DEFAULT_MAX_CONNECTIONS, idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS }
    }
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

impl ConnectionLimits {
    /// The mistakes a configuration can make, named by key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("connections.max_connections must be above 0".into());
        }
        if self.idle_timeout_ms < 1_000 {
            return Err(format!(
                "connections.idle_timeout_ms must be at least 1000 (1 s), not {}",
                self.idle_timeout_ms
            ));
        }
        Ok(())
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }
}

/// A bound listener that accepts within [`ConnectionLimits`].
pub struct GuardedListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    open: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
}

impl GuardedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        GuardedListener { listener, limits, open, refused: Arc::default() }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection within the limit. Connections past it are closed as they come;
    /// accept errors (out of file descriptors, a reset before accept) are waited out.
    pub async fn accept_guarded(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: accepting again at once would spin.
                    tracing::warn!(%error, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    return (GuardedStream::new(stream, peer, self.limits.idle_timeout(), permit), peer);
                }
                Err(_) => {
                    let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                    // Logged at powers of two, so a flood does not flood the log.
                    if refused.is_power_of_two() {
                        tracing::warn!(%peer, refused, limit = self.limits.max_connections, "connection limit reached; closing new connections");
                    }
                    drop(stream);
                }
            }
        }
    }

    /// The connections as a stream, for `tonic`'s `serve_with_incoming`.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<GuardedStream>> + Send + 'static {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.accept_guarded().await;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        self.accept_guarded()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection that holds its slot under the limit and ends when idle.
pub struct GuardedStream {
    inner: TcpStream,
    peer: SocketAddr,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(inner: TcpStream, peer: SocketAddr, idle_timeout: Duration, slot: OwnedSemaphorePermit) -> Self {
        let deadline = Box::pin(tokio::time::sleep(idle_timeout));
        GuardedStream { inner, peer, idle_timeout, deadline, _slot: slot }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn touched(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// A write that moved bytes is activity; one that waits is ended by the idle deadline (a
    /// peer that reads nothing while we write is as idle as one that sends nothing).
    fn after_write(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touched();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    /// While an operation waits, the idle deadline is what ends it.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no bytes from or to {} for {:?}", self.peer, self.idle_timeout),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touched();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.after_write(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn guarded(limits: ConnectionLimits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut guarded = GuardedListener::new(listener, limits);
        let task = tokio::spawn(async move {
            loop {
                let (mut stream, _) = guarded.accept_guarded().await;
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    // An echo server: it ends when the peer or the idle timeout ends it.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_a_talking_one_is_kept() {
        let (addr, _task) = guarded(ConnectionLimits { max_connections: 8, idle_timeout_ms: 1_000 }).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut talking = TcpStream::connect(addr).await.unwrap();
        // Longer in all than the idle timeout, each gap a fifth of it.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            talking.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            talking.read_exact(&mut byte).await.unwrap();
        }
        // Without a byte for the idle timeout, the server closed it (end of file, or a reset).
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "an idle connection was kept: {read:?}");
    }

    #[tokio::test]
    async fn past_the_limit_a_new_connection_is_closed_and_the_open_ones_are_served() {
        let (addr, _task) = guarded(ConnectionLimits { max_connections: 2, idle_timeout_ms: 60_000 }).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        for stream in [&mut first, &mut second] {
            stream.write_all(b"a").await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(b"a").await;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "a connection past the limit was served: {read:?}");
        // A slot comes back when a connection ends.
        drop(first);
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let served = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                fourth.write_all(b"b").await.ok()?;
                let mut byte = [0u8; 1];
                match fourth.read(&mut byte).await {
                    Ok(1) => return Some(()),
                    _ => {
                        fourth = TcpStream::connect(addr).await.ok()?;
                    }
                }
            }
        })
        .await;
        assert_eq!(served, Ok(Some(())));
    }

    #[test]
    fn limits_are_validated_by_key() {
        assert!(ConnectionLimits::default().validate().is_ok());
        let zero = ConnectionLimits { max_connections: 0, ..ConnectionLimits::default() };
        assert!(zero.validate().unwrap_err().contains("connections.max_connections"));
        let short = ConnectionLimits { idle_timeout_ms: 10, ..ConnectionLimits::default() };
        assert!(short.validate().unwrap_err().contains("1000 (1 s)"));
    }
}
