//! Every listener of mixmon accepts through [`GuardedListener`], so that clients that connect
//! and never speak (a port scanner, a slow-loris client, a crashed peer behind a NAT) cost
//! nothing lasting:
//! - at most [`ConnectionLimits::max_connections`] connections are open at once; past it a new
//!   connection is closed at once (and counted in the log), so file descriptors cannot be
//!   pinned;
//! - a connection that moves no byte either way for [`ConnectionLimits::idle_timeout_ms`] is
//!   closed. Long-lived gRPC streams stay open: HTTP/2 keepalive pings (every 30 s on the
//!   aggregator) are bytes, so the default idle timeout is well above that interval;
//! - a connection whose client does not send its greeting (the first bytes its protocol
//!   speaks: HTTP/2's 24-byte preface for gRPC, a request for HTTP) within
//!   [`ConnectionLimits::header_read_timeout_ms`] is closed, so trickling a byte a minute does
//!   not keep a connection; [`serve_http`] also bounds every later request's header by it.
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
/// Far above what a client on any real network needs to send a request's header (hyper's own
/// default). On HTTP/1.1 it also ends a kept-alive connection left unused this long: hyper
/// arms it as soon as it waits for the next request.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// The client connection preface of HTTP/2 (RFC 9113, 3.4): what a gRPC client sends first.
pub const HTTP2_PREFACE_BYTES: usize = 24;

/// What a listener allows, from a service's `[connections]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
        }
    }
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

fn default_header_read_timeout_ms() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_MS
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
        if !(100..=600_000).contains(&self.header_read_timeout_ms) {
            return Err(format!(
                "connections.header_read_timeout_ms must be between 100 and 600000 (10 min), not {}",
                self.header_read_timeout_ms
            ));
        }
        Ok(())
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
}

/// A bound listener that accepts within [`ConnectionLimits`].
pub struct GuardedListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    open: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    greeting_bytes: usize,
}

impl GuardedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        GuardedListener { listener, limits, open, refused: Arc::default(), greeting_bytes: 1 }
    }

    /// How many bytes a client must send within the header-read timeout (default 1; a gRPC
    /// listener asks for [`HTTP2_PREFACE_BYTES`]).
    pub fn greeting_bytes(mut self, bytes: usize) -> Self {
        self.greeting_bytes = bytes.max(1);
        self
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
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
                    let greeting = Greeting {
                        missing: self.greeting_bytes,
                        within: self.limits.header_read_timeout(),
                        deadline: Box::pin(tokio::time::sleep(self.limits.header_read_timeout())),
                    };
                    return (GuardedStream::new(stream, peer, self.limits.idle_timeout(), greeting, permit), peer);
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

/// The bytes a new connection still owes before its header-read deadline.
struct Greeting {
    missing: usize,
    within: Duration,
    deadline: Pin<Box<Sleep>>,
}

/// An accepted connection that holds its slot under the limit and ends when idle, or when
/// its client does not greet in time.
pub struct GuardedStream {
    inner: TcpStream,
    peer: SocketAddr,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    greeting: Option<Greeting>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(
        inner: TcpStream,
        peer: SocketAddr,
        idle_timeout: Duration,
        greeting: Greeting,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let deadline = Box::pin(tokio::time::sleep(idle_timeout));
        GuardedStream { inner, peer, idle_timeout, deadline, greeting: Some(greeting), _slot: slot }
    }

    fn received(&mut self, bytes: usize) {
        self.touched();
        if let Some(greeting) = &mut self.greeting {
            greeting.missing = greeting.missing.saturating_sub(bytes);
            if greeting.missing == 0 {
                self.greeting = None;
            }
        }
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

    /// While an operation waits, the greeting's and the idle deadline are what end it.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if let Some(greeting) = &mut self.greeting {
            if greeting.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} sent no greeting within {:?}", self.peer, greeting.within),
                ));
            }
        }
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
                let read = buf.filled().len() - before;
                if read > 0 {
                    this.received(read);
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

mod http;
pub use http::serve_http;

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
        guarded_greeting(limits, 1).await
    }

    async fn guarded_greeting(limits: ConnectionLimits, greeting: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut guarded = GuardedListener::new(listener, limits).greeting_bytes(greeting);
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
        let (addr, _task) =
            guarded(ConnectionLimits { max_connections: 8, idle_timeout_ms: 1_000, header_read_timeout_ms: 1_000 })
                .await;
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
        let (addr, _task) = guarded(ConnectionLimits { max_connections: 2, ..ConnectionLimits::default() }).await;
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

    /// Ends with end of file or an error within `within`: the server closed the connection.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => continue, // a response (say a 408) before the close
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_greet_in_time_is_closed_before_the_idle_timeout() {
        let limits = ConnectionLimits { max_connections: 8, idle_timeout_ms: 60_000, header_read_timeout_ms: 500 };
        let (addr, _task) = guarded_greeting(limits, HTTP2_PREFACE_BYTES).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let mut greeted = TcpStream::connect(addr).await.unwrap();
        greeted.write_all(&[b'p'; HTTP2_PREFACE_BYTES]).await.unwrap();
        let mut echoed = [0u8; HTTP2_PREFACE_BYTES];
        greeted.read_exact(&mut echoed).await.unwrap();
        // Part of a preface, then a byte at a time: activity, but never the whole greeting.
        slow.write_all(b"PRI * HTTP").await.unwrap();
        let trickle = async {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if slow.write_all(b"/").await.is_err() {
                    break;
                }
            }
        };
        trickle.await;
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "a client that never greeted was kept");
        // The greeted one is past its greeting: only the idle timeout applies to it now.
        greeted.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        greeted.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
    }

    #[tokio::test]
    async fn serve_http_closes_a_trickled_header_on_a_kept_alive_connection_and_serves_others() {
        let limits = ConnectionLimits { max_connections: 8, idle_timeout_ms: 60_000, header_read_timeout_ms: 500 };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_http(GuardedListener::new(listener, limits), router, async {
            let _ = stopped.await;
        }));
        let request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
        let mut loris = TcpStream::connect(addr).await.unwrap();
        loris.write_all(request).await.unwrap();
        let mut buf = [0u8; 256];
        let n = loris.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
        // The next request on the same connection, a byte every 100 ms: each byte is activity
        // (far inside the idle timeout), but the header takes longer than 500 ms.
        for byte in request.iter().take(20) {
            if loris.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(closed_within(&mut loris, Duration::from_secs(5)).await, "a trickled header was kept");
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
        let _ = stop.send(());
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
    }

    #[test]
    fn limits_are_validated_by_key() {
        assert!(ConnectionLimits::default().validate().is_ok());
        let zero = ConnectionLimits { max_connections: 0, ..ConnectionLimits::default() };
        assert!(zero.validate().unwrap_err().contains("connections.max_connections"));
        let short = ConnectionLimits { idle_timeout_ms: 10, ..ConnectionLimits::default() };
        assert!(short.validate().unwrap_err().contains("1000 (1 s)"));
        let header = ConnectionLimits { header_read_timeout_ms: 50, ..ConnectionLimits::default() };
        assert!(header.validate().unwrap_err().contains("connections.header_read_timeout_ms"));
    }
}
