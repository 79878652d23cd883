//! Serving one pod's or front's [`Port`]: accept, judge the client, and drive each connection
//! under its [`Verdict`], which can change while it is open (a cut, the endpoint killed).
//!
//! A connection of a blackholed client is held without being polled (nothing is read or
//! answered) and resumes when the cut is lifted; one of a client cut with resets is reset (RST,
//! through `SO_LINGER` 0); one whose listener was closed is closed, as the kernel closes a
//! killed process's sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::net_fault::CutMode;
use crate::network::{Network, Verdict};
use crate::port::Port;
use crate::shutdown::Shutdown;

/// After a failed accept (out of file descriptors, say), the pause before the next: the
/// condition is the host's and retrying at once would only spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts until shutdown, then releases the port and waits for its connections to finish.
pub(crate) async fn serve_port(port: Arc<Port>, router: Router, network: Arc<Network>, shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = port.accept() => match accepted {
                Ok((stream, peer, generation)) => {
                    if network.cut_of(peer.ip(), &port) == Some(CutMode::Reset) {
                        reset(&stream);
                        continue;
                    }
                    let connection = Connection { port: port.clone(), network: network.clone(), peer, generation };
                    connections.spawn(connection.serve(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::debug!(port = %port.name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    port.release();
    while connections.join_next().await.is_some() {}
}

/// Closes with an RST rather than a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

struct Connection {
    port: Arc<Port>,
    network: Arc<Network>,
    peer: SocketAddr,
    generation: u64,
}

impl Connection {
    async fn serve(self, stream: TcpStream, router: Router, shutdown: Shutdown) {
        // A second handle on the socket: hyper owns the stream, and this one can still turn its
        // close into a reset. The socket closes when both are gone.
        let control = socket2::SockRef::from(&stream).try_clone().ok();
        let mut changes = self.network.subscribe();
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
        tokio::pin!(conn);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut draining = false;
        loop {
            let paused = match self.network.verdict(self.peer.ip(), &self.port, self.generation) {
                Verdict::Open => false,
                Verdict::Paused => true,
                Verdict::Closed => return,
                Verdict::Reset => {
                    if let Some(control) = &control {
                        let _ = control.set_linger(Some(Duration::ZERO));
                    }
                    return;
                }
            };
            tokio::select! {
                _ = conn.as_mut(), if !paused => return,
                _ = &mut stop, if !draining => {
                    if paused {
                        return;
                    }
                    // In-flight requests finish (hangs end at shutdown); idle ones close now.
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
