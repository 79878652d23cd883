//! One listening address of the fleet (a pod's or a front's): its socket, which can be closed
//! and opened again on the same port (an endpoint killed and restarted), and the socket filter
//! its clients pass.
//!
//! Keeping the port while closed: every listener is bound with `SO_REUSEADDR` and
//! `SO_REUSEPORT`, and before it closes a second socket binds the same address the same way
//! without listening. That socket holds the port (nothing else can bind it, no outgoing
//! connection is given it) while the kernel refuses connections to it (no socket listens), and
//! the listener bound again later joins it. So re-opening cannot lose the port to another
//! program; it can still fail for lack of file descriptors, which the caller reports.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use crate::bpf::{self, Insn};
use crate::error::SimError;

/// Connections waiting to be accepted; the kernel caps it at `somaxconn` anyway.
const BACKLOG: i32 = 1024;

#[derive(Debug)]
pub(crate) struct Port {
    /// The pod or front it serves, for logs.
    pub name: String,
    /// Where it listens; the same across a close and a re-open.
    pub addr: SocketAddr,
    state: Mutex<PortState>,
}

#[derive(Debug)]
struct PortState {
    /// `None` while the endpoint is down.
    listener: Option<TcpListener>,
    /// Holds the port while there is no listener.
    holder: Option<Socket>,
    /// The task accepting on this port, woken when the listener comes or goes.
    acceptor: Option<Waker>,
    /// Moves every time the listener closes: connections accepted before belong to a dead
    /// process.
    generation: u64,
}

/// A socket bound the way every listener and holder of the fleet is, so they can share a port.
fn reusable_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listener on `addr`; needs a Tokio runtime (the caller enters one).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = reusable_socket(addr)?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

impl Port {
    /// Binds `addr` (port 0: the OS chooses); needs a Tokio runtime.
    pub(crate) fn bind(name: String, addr: SocketAddr) -> Result<Self, SimError> {
        let bind_error = |source| SimError::Bind { addr, source };
        let listener = listen(addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let state = PortState { listener: Some(listener), holder: None, acceptor: None, generation: 0 };
        Ok(Self { name, addr, state: Mutex::new(state) })
    }

    /// Short, non-async critical sections only; a poisoned lock still holds valid sockets.
    fn state(&self) -> MutexGuard<'_, PortState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next connection and the generation it belongs to; pending while the port is down.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr, u64)>> {
        let mut state = self.state();
        state.acceptor = Some(cx.waker().clone());
        let generation = state.generation;
        match &state.listener {
            Some(listener) => listener.poll_accept(cx).map_ok(|(stream, peer)| (stream, peer, generation)),
            None => Poll::Pending,
        }
    }

    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr, u64)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Whether connections of `generation` still belong to the running listener.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.state().generation == generation
    }

    pub(crate) fn is_listening(&self) -> bool {
        self.state().listener.is_some()
    }

    /// Closes the listener (connections are refused from now on) and keeps the port. A port
    /// already closed stays as it is.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        let Some(listener) = state.listener.take() else { return };
        match reusable_socket(self.addr) {
            Ok(holder) => state.holder = Some(holder),
            // The port is then free until re-opened; re-opening says so if it was taken.
            Err(error) => {
                tracing::warn!(port = %self.name, addr = %self.addr, %error, "cannot hold the port while closed")
            }
        }
        drop(listener);
        state.generation += 1;
        if let Some(acceptor) = state.acceptor.take() {
            acceptor.wake();
        }
    }

    /// Listens again on the same address with `filter` attached; a port already open stays as
    /// it is. Needs a Tokio runtime.
    pub(crate) fn open(&self, filter: Option<&[Insn]>) -> io::Result<()> {
        let mut state = self.state();
        if state.listener.is_some() {
            return Ok(());
        }
        let listener = listen(self.addr)?;
        if let Err(error) = bpf::attach(&listener, filter) {
            tracing::warn!(port = %self.name, %error, "cannot filter blackholed clients; they are held after accept instead");
        }
        state.listener = Some(listener);
        state.holder = None;
        if let Some(acceptor) = state.acceptor.take() {
            acceptor.wake();
        }
        Ok(())
    }

    /// Attaches `filter` to the listener (replacing the one it had), or removes it.
    pub(crate) fn filter(&self, filter: Option<&[Insn]>) -> io::Result<()> {
        match &self.state().listener {
            Some(listener) => bpf::attach(listener, filter),
            None => Ok(()),
        }
    }

    /// Closes for good, at shutdown: the port is released.
    pub(crate) fn release(&self) {
        let mut state = self.state();
        state.listener = None;
        state.holder = None;
    }
}
