//! Serving an `axum` router over HTTP/1.1 on a [`GuardedListener`], with hyper's header-read
//! timeout armed. `axum::serve` sets no timer on hyper, so hyper's own 30 s header timeout
//! never runs there, and a client that trickles a header byte by byte (slow loris) on a
//! kept-alive connection would hold it as long as each byte comes before the idle timeout.

use std::future::Future;
use std::io;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::GuardedListener;

/// Serves `router` until `shutdown` resolves, then lets every open connection finish its
/// request in flight (graceful, as `axum::serve`'s `with_graceful_shutdown`) and returns.
pub async fn serve_http(
    mut listener: GuardedListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let header_read_timeout = listener.limits().header_read_timeout();
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept_guarded() => accepted,
            // Finished connections are reaped as they end, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let router = router.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let service = TowerToHyperService::new(router);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                // A connection's end (the peer closed, a timeout, a protocol error) is the
                // peer's business: nothing to report.
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
