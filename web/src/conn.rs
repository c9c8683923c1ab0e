//! Accepting HTTP connections with limits: `axum::serve` keeps a silent or
//! half-sent connection open for ever (it sets no timer, so hyper's header
//! timeout never runs), and accepts without bound — and the server shares
//! its process, and its file-descriptor limit, with the pipeline.
//!
//! Here every connection gets hyper's header-read timeout, which runs from
//! the moment the server waits for a request head: a new connection that
//! sends nothing, one that never finishes its headers, and an idle
//! keep-alive connection between requests are all closed when it expires.
//! Connections beyond the limit are answered `503` and closed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Connection limits of the web server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head must arrive within this long after the server starts
    /// waiting for it (new and idle keep-alive connections alike).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
connection: close\r\ncontent-length: 45\r\nretry-after: 5\r\n\r\n\
too many connections to km3mon's web server.\n";

/// Serves `router` on `listener` until `stop` turns true; then stops
/// accepting, asks every connection to finish its current request, and
/// returns once they have (or after `drain` at most).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let mut refused_logged = false;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!("web: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !refused_logged {
                refused_logged = true;
                tracing::warn!("web: {max} connections open; refusing more (503) until some close");
            }
            tokio::spawn(refuse(stream));
            continue;
        };
        refused_logged = false;
        let service = TowerToHyperService::new(router.clone());
        let (builder, mut stop) = (builder.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let stopping = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            tokio::select! {
                r = conn.as_mut() => log_end(peer, r),
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    log_end(peer, conn.await);
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a permit until it ends.
    let _ = tokio::time::timeout(drain, permits.acquire_many(max as u32)).await;
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

fn log_end<E: std::fmt::Display>(peer: SocketAddr, r: Result<(), E>) {
    if let Err(e) = r {
        tracing::debug!("web: connection from {peer} ended: {e}");
    }
}

/// Answer 503 and close, without waiting long for a slow peer.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
