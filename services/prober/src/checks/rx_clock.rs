//! When did the response arrive? A probe that reads the clock once its task is scheduled again
//! after the data came in also measures its own wake-up: the reactor noticing, a worker thread
//! waking on an idle CPU, the task being polled. On a quiet node that is tens of microseconds,
//! on a busy one far more, and it is the prober's delay, not the endpoint's.
//!
//! So the sockets of HTTP probes ask the kernel for receive timestamps (`SO_TIMESTAMPNS`), read
//! with `recvmsg`, and keep the kernel's time of the data read last. The probe ends its
//! first-byte and transfer phases at those times instead of at its own wake-up. Where the
//! kernel gives no timestamp, or the wall clock moved, the probe's own clock is used as before.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Linux turns packet timestamping on lazily, and off again when the last socket asking for it
/// closes; a probe's fresh socket could then see its response arrive before timestamping is
/// back on (and fall back to its own clock). A socket holding the option for the prober's
/// lifetime keeps it on.
pub(crate) fn keep_kernel_timestamps_on() -> Option<Arc<std::net::UdpSocket>> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    setsockopt(&socket.as_fd(), sockopt::ReceiveTimestampns, &true).ok()?;
    Some(Arc::new(socket))
}

/// A kernel receive time older than this is not trusted: the wall clock was stepped.
const MAX_STAMP_AGE: Duration = Duration::from_secs(60);

/// The kernel's receive time (wall clock, ns since the epoch) of the data read last; 0: none.
#[derive(Debug, Default)]
pub(crate) struct RxStamp(AtomicI64);

impl RxStamp {
    fn store(&self, ns: i64) {
        self.0.store(ns, Ordering::Relaxed);
    }

    /// The last receive time on the monotonic clock, if the kernel gave one and it is sane.
    pub(crate) fn instant(&self) -> Option<Instant> {
        let ns = self.0.load(Ordering::Relaxed);
        if ns <= 0 {
            return None;
        }
        let (mono_now, wall_now) = (Instant::now(), SystemTime::now());
        let wall_now_ns = i64::try_from(wall_now.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()?;
        let age = Duration::from_nanos(u64::try_from(wall_now_ns.checked_sub(ns)?).ok()?);
        (age <= MAX_STAMP_AGE).then(|| mono_now.checked_sub(age)).flatten()
    }
}

/// A TCP stream whose reads record the kernel's receive time in a shared [`RxStamp`].
pub(crate) struct StampedStream {
    inner: TcpStream,
    stamp: Arc<RxStamp>,
    /// Receive timestamps are on: reads go through `recvmsg`.
    stamped: bool,
}

impl StampedStream {
    /// Turns receive timestamps on for `inner`; if the kernel refuses, reads stay plain.
    pub(crate) fn new(inner: TcpStream) -> (Self, Arc<RxStamp>) {
        let stamped = setsockopt(&inner.as_fd(), sockopt::ReceiveTimestampns, &true).is_ok();
        let stamp = Arc::new(RxStamp::default());
        (Self { inner, stamp: Arc::clone(&stamp), stamped }, stamp)
    }

    /// One `recvmsg` into `buf`: the bytes read and the kernel's timestamp of them, if any.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<i64>)> {
        let mut iov = [io::IoSliceMut::new(buf)];
        let mut control = nix::cmsg_space!(TimeSpec);
        let msg = recvmsg::<()>(self.inner.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let mut stamp = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                    stamp = ts.tv_sec().checked_mul(1_000_000_000).and_then(|s| s.checked_add(ts.tv_nsec()));
                }
            }
        }
        Ok((msg.bytes, stamp))
    }
}

impl AsyncRead for StampedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.stamped {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match this.inner.try_io(Interest::READABLE, || this.recv(unfilled)) {
                Ok((n, stamp)) => {
                    if let Some(ns) = stamp.filter(|_| n > 0) {
                        this.stamp.store(ns);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_carry_the_kernels_receive_time_from_before_the_read() {
        let _on = keep_kernel_timestamps_on().expect("timestamps on");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // The kernel turns timestamping on asynchronously: send once it has had time to.
            wait.await.unwrap();
            socket.write_all(b"hello").await.unwrap();
            socket
        });
        let (mut stream, stamp) = StampedStream::new(TcpStream::connect(addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        go.send(()).unwrap();
        let _server = server.await.unwrap();
        // The data is in the socket; reading it 50 ms later must not move its arrival time.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.unwrap();
        let read_at = Instant::now();
        assert_eq!(&buf[..n], b"hello");
        assert!(stream.stamped, "this kernel gives receive timestamps");
        let arrived = stamp.instant().expect("a receive timestamp");
        assert!(arrived <= read_at, "arrival after the read");
        assert!(read_at - arrived >= Duration::from_millis(40), "the arrival is the kernel's, not the read's");
    }

    #[test]
    fn no_or_absurd_stamps_give_no_instant() {
        let stamp = RxStamp::default();
        assert!(stamp.instant().is_none());
        stamp.store(1);
        assert!(stamp.instant().is_none(), "decades old: the wall clock moved");
        let future = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64 + 10_000_000_000;
        stamp.store(future);
        assert!(stamp.instant().is_none(), "in the future: the wall clock moved");
    }
}
