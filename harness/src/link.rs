//! Network links with latency between the nodes of a run.
//!
//! On one machine every connection is loopback: an upload's round trip to PostgreSQL takes
//! tens of microseconds, where the seed's nodes were separate hosts on a network. Timing
//! anomalies that need a reader to land inside a half-uploaded transaction (the seed's
//! `ps-wo-pg-ro` finding) then almost never show. The kernel here has no `netem`, so a
//! [`Link`] is a TCP relay in the harness: it accepts connections on a loopback port of its
//! own, opens one to the target for each, and delivers every chunk of bytes, in both
//! directions, `latency` after it was read (one-way propagation delay; order kept, no
//! bandwidth limit, no loss). A connection's two directions are independent, as on a wire.
//!
//! Dropping the `Link` stops accepting and closes every relayed connection.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// How long the accept loop waits after a failed accept before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A relay from a local port to `target` that delays every byte by `latency` each way.
///
/// The delay is kept by OS threads sleeping until each chunk is due (`nanosleep`, tens of
/// microseconds of slack), not by tokio's timer, whose 1 ms granularity would turn a 0.5 ms
/// link into one of 1–2 ms.
#[derive(Debug)]
pub struct Link {
    port: u16,
    accept: JoinHandle<()>,
    /// The sockets of the connections being relayed, so that dropping the link can close
    /// them (which ends their threads).
    sockets: Arc<Registry>,
}

/// The open connections of a link by id: their client and server sockets.
#[derive(Debug, Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, [std::net::TcpStream; 2]>>,
}

impl Registry {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, [std::net::TcpStream; 2]>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Link {
    /// Listens on an ephemeral port of 127.0.0.1 and relays each connection to `target`.
    pub async fn start(target: SocketAddr, latency: Duration) -> Result<Link> {
        Link::start_on(Ipv4Addr::LOCALHOST.into(), target, latency).await
    }

    /// [`Link::start`], listening on an ephemeral port of `listen` (a node's end of its veth
    /// pair, when endpoints run in network namespaces of their own).
    pub async fn start_on(listen: IpAddr, target: SocketAddr, latency: Duration) -> Result<Link> {
        let failed = |source| Error::Link { target, source };
        let listener = TcpListener::bind((listen, 0)).await.map_err(failed)?;
        let port = listener.local_addr().map_err(failed)?.port();
        let sockets = Arc::new(Registry::default());
        let registry = Arc::clone(&sockets);
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((client, _)) => {
                        let registry = Arc::clone(&registry);
                        tokio::spawn(async move {
                            // The target is down (a fault, or not started yet): the client
                            // sees its connection closed, as it would see a refusal.
                            if let Ok(server) = TcpStream::connect(target).await {
                                let _ = relay(client, server, latency, registry);
                            }
                        });
                    }
                    // Out of descriptors or similar: the client sees a refused or reset
                    // connection, as over a real network; keep serving the others, after a
                    // pause so that a lasting error does not spin the accept loop.
                    Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                }
            }
        });
        Ok(Link {
            port,
            accept,
            sockets,
        })
    }

    /// The port (on the listening address) that leads to the target.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        for s in self.sockets.open().values().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Relays one connection on four threads: per direction, one reads and timestamps chunks, one
/// writes each when it is due (so reading never waits for the delay of an earlier chunk).
fn relay(
    client: TcpStream,
    server: TcpStream,
    latency: Duration,
    registry: Arc<Registry>,
) -> std::io::Result<()> {
    let client = client.into_std()?;
    let server = server.into_std()?;
    for s in [&client, &server] {
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
    }
    let id = registry.next.fetch_add(1, Ordering::Relaxed);
    registry
        .open()
        .insert(id, [client.try_clone()?, server.try_clone()?]);
    // The second direction to end forgets the connection (closing the registry's copies).
    let ended = Arc::new(AtomicUsize::new(0));
    let done = move || {
        if ended.fetch_add(1, Ordering::AcqRel) == 1 {
            registry.open().remove(&id);
        }
    };
    direction(
        client.try_clone()?,
        server.try_clone()?,
        latency,
        done.clone(),
    )?;
    direction(server, client, latency, done)
}

/// Copies `from` to `to`, each chunk `latency` after it was read; a half-close is passed on.
/// Calls `done` when the writing side has ended.
fn direction(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    latency: Duration,
    done: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name("link-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if tx
                    .send((Instant::now() + latency, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
            // Dropping `tx` tells the writer that no more bytes come.
        })?;
    std::thread::Builder::new()
        .name("link-write".into())
        .spawn(move || {
            while let Ok((due, chunk)) = rx.recv() {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    // The receiver is gone: stop the sender too.
                    let _ = to.shutdown(Shutdown::Both);
                    done();
                    return;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
            done();
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server: every connection gets back what it sends.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(port: u16, payload: &[u8]) -> (Vec<u8>, Duration) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        let t = std::time::Instant::now();
        s.write_all(payload).await.unwrap();
        let mut got = vec![0u8; payload.len()];
        s.read_exact(&mut got).await.unwrap();
        (got, t.elapsed())
    }

    #[tokio::test]
    async fn a_round_trip_takes_at_least_twice_the_latency_and_keeps_the_bytes() {
        let target = echo().await;
        let latency = Duration::from_millis(25);
        let link = Link::start(target, latency).await.unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (got, took) = round_trip(link.port(), &payload).await;
        assert_eq!(got, payload, "bytes arrive whole and in order");
        assert!(took >= 2 * latency, "round trip {took:?} < 2 × {latency:?}");
    }

    #[tokio::test]
    async fn dropping_the_link_closes_its_connections() {
        let target = echo().await;
        let link = Link::start(target, Duration::from_millis(1)).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", link.port()))
            .await
            .unwrap();
        s.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        drop(link);
        // The relay task is gone, so the client reads end of stream (or a reset).
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .expect("the relayed connection is closed when the link is dropped");
        assert!(n.map_or(true, |n| n == 0));
    }

    #[tokio::test]
    async fn a_connection_to_a_down_target_is_closed() {
        // A port nothing listens on: bind one, note it, close it.
        let dead = {
            let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
            l.local_addr().unwrap()
        };
        let link = Link::start(dead, Duration::from_millis(1)).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", link.port()))
            .await
            .unwrap();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("closed promptly");
        assert!(n.map_or(true, |n| n == 0));
    }
}
