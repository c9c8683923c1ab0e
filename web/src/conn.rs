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
    // HTTP/1 only (the server offers nothing else): without this the
    // builder first waits for bytes to tell HTTP/1 from HTTP/2, with no
    // timeout at all.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
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
            let conn = builder.serve_connection(TokioIo::new(stream), service);
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;

    /// Everything the server sends until it closes; panics if it does not
    /// close within 10 s (the configured timeout is half a second).
    fn read_until_closed(s: &mut TcpStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("not closed after {:?}: {e}", start.elapsed()),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn silent_half_sent_and_idle_connections_are_closed_and_the_excess_refused() {
        let dir = std::env::temp_dir().join(format!("km3mon-web-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = crate::WebConfig::from_toml(
            "[WebServer]\nbind = \"127.0.0.1:0\"\nheader_timeout = 0.5\nmax_connections = 3\n",
            &dir,
            Some(&dir),
        )
        .unwrap();
        let server = crate::spawn(cfg, Arc::new(crate::NoPipeline)).unwrap();
        let connect = || TcpStream::connect(server.addr).unwrap();

        // Silent: never sends a byte.
        let mut silent = connect();
        // Half-sent: a request head that never ends.
        let mut partial = connect();
        partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let third = connect();
        // Three connections open: the fourth is refused at once.
        let mut extra = connect();
        let answer = read_until_closed(&mut extra);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        drop(third);

        read_until_closed(&mut silent);
        read_until_closed(&mut partial);
        // Idle keep-alive: one request answered, then silence.
        let mut idle = connect();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut idle);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        server.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
