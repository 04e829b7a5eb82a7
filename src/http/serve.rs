//! One accept loop for every listener (plain or TLS), with the limits that
//! keep slow or idle clients from holding the process:
//!
//! - a request's headers must arrive within [`HEADER_READ_TIMEOUT`] (the same
//!   timer closes an HTTP/1 keep-alive connection idle that long), so a
//!   slowloris or a half-sent request is dropped;
//! - a TLS handshake must finish within [`HEADER_READ_TIMEOUT`] too;
//! - at most [`MAX_CONNECTIONS`] connections per listener are served; further
//!   clients wait in the kernel's accept queue;
//! - on shutdown the listener stops accepting, open connections finish the
//!   request they are serving, and after [`SHUTDOWN_DRAIN`] the rest are cut.
//!   The bridge answers a webhook only after its commit, so cutting a
//!   connection never loses an accepted notification.

use super::threads::Threads;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest wait for a request's headers (and for a TLS handshake).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per listener.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long shutdown waits for open connections before cutting them.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (HTTPS when `tls` is set) until `shutdown`,
/// then drains for at most [`SHUTDOWN_DRAIN`]. Each connection is served on
/// the runtime of `threads` with the fewest open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    threads: Threads,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let slot = threads.pick();
        let (builder, router, acceptor, watcher) =
            (builder.clone(), router.clone(), acceptor.clone(), graceful.watcher());
        let Some(handle) = slot.handle().cloned() else {
            connections.spawn(async move {
                let _held = (permit, slot);
                connection(stream, builder, router, acceptor, watcher).await;
            });
            continue;
        };
        // Another runtime's reactor must watch the socket: take it off this one.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(error = %err, "Cannot hand a connection over");
                continue;
            }
        };
        connections.spawn_on(
            async move {
                let _held = (permit, slot);
                match TcpStream::from_std(stream) {
                    Ok(stream) => connection(stream, builder, router, acceptor, watcher).await,
                    Err(err) => tracing::debug!(error = %err, "Cannot take a connection over"),
                }
            },
            &handle,
        );
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(open = connections.len(), "Shutdown drain timed out; closing the remaining connections");
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves one connection until the client closes it, it idles past
/// [`HEADER_READ_TIMEOUT`] or the graceful shutdown ends it.
async fn connection(
    stream: TcpStream,
    builder: Builder<TokioExecutor>,
    router: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: Watcher,
) {
    let service = TowerToHyperService::new(router);
    let result = match acceptor {
        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
        Some(acceptor) => {
            let Ok(Ok(stream)) = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await else {
                return;
            };
            watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "Connection ended with an error");
    }
}
