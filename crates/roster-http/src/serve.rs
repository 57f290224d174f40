//! Serving a router over hyper with title-case response headers and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long open connections may take to finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's head, and how long an idle kept-alive
/// connection stays open: without it, connections that never finish their headers pile up
/// until the process runs out of file descriptors and nobody can connect.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one write of a response may wait for the client to take bytes. hyper bounds
/// reading a request (above, and the body timeouts of the layers) but not writing the
/// answer: a client that pipelines requests and never reads the answers would otherwise
/// hold its connection, and a slot under `max_connections`, for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often, at most, the server logs that it is holding `max_connections` connections.
const FULL_WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets open
/// requests finish (up to ten seconds) and returns. At most `max_connections` connections
/// are open at once; while that many are, the next one waits in the listen backlog rather
/// than taking a file descriptor that the server needs for its own files and database.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    max_connections: usize,
) -> std::io::Result<()> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // lark-oapi copies headers into a plain dict and reads "Content-Type" verbatim.
    http1
        .title_case_headers(true)
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut warned_full: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = if let Ok(slot) = slots.clone().try_acquire_owned() {
            slot
        } else {
            if warned_full.is_none_or(|at| at.elapsed() >= FULL_WARN_EVERY) {
                tracing::warn!(
                    max_connections,
                    "holding the most connections allowed; new ones wait until one closes"
                );
                warned_full = Some(Instant::now());
            }
            tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    // The semaphore is never closed; if it were, no slot would ever free.
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Running out of file descriptors is the usual cause; back off briefly
                        // instead of spinning.
                        tracing::warn!("failed to accept a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
                stream.set_write_timeout(Some(WRITE_TIMEOUT));
                let service = TowerToHyperService::new(app.clone());
                let conn = http1.serve_connection(TokioIo::new(Box::pin(stream)), service);
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(err) = watched.await {
                        tracing::debug!("connection ended with an error: {err}");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after {DRAIN:?}; closing"),
    }
    Ok(())
}
