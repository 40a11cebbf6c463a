//! A loopback TCP proxy between a client and the stand-in, for sync-loop tests: it counts the
//! `POST /sync/stream` requests that pass, counts open connections (so a test sees a client
//! close its stream), and can hold write-checkpoint requests forever (a struggling service).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const STREAM_REQUEST: &[u8] = b"POST /sync/stream";
const WRITE_CHECKPOINT: &[u8] = b"GET /write-checkpoint2.json";

#[derive(Default)]
struct Counters {
    stream_requests: AtomicUsize,
    write_checkpoints: AtomicUsize,
    open: AtomicUsize,
    stall_write_checkpoints: AtomicBool,
    /// Everything clients sent, up to 1 MiB.
    sent: std::sync::Mutex<Vec<u8>>,
}

/// The proxy; stops (and drops every proxied connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn occurrences(haystack: &[u8], needle: &[u8], from: usize) -> usize {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(i, w)| *w == needle && i + needle.len() > from)
        .count()
}

struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) {
    counters.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(counters.clone());
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The end of the previous chunk, so that a request line split across reads counts.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut sent = counters.sent.lock().unwrap();
                if sent.len() < 1 << 20 {
                    sent.extend_from_slice(&buf[..n]);
                }
            }
            let mut window = std::mem::take(&mut carry);
            let from = window.len();
            window.extend_from_slice(&buf[..n]);
            counters
                .stream_requests
                .fetch_add(occurrences(&window, STREAM_REQUEST, from), Ordering::SeqCst);
            let checkpoints = occurrences(&window, WRITE_CHECKPOINT, from);
            counters
                .write_checkpoints
                .fetch_add(checkpoints, Ordering::SeqCst);
            if checkpoints > 0 && counters.stall_write_checkpoints.load(Ordering::SeqCst) {
                // Hold the request: the service never answers. Read on only to see the
                // client give up and close.
                while let Ok(1..) = client_read.read(&mut buf).await {}
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let keep = window.len().min(64);
            carry = window[window.len() - keep..].to_vec();
        }
        let _ = server_write.shutdown().await;
    };
    // The connection ends when either side ends it (HTTP clients do not half-close).
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => {
                            connections.spawn(serve(client, upstream, shared.clone()));
                        }
                        Err(_) => return,
                    },
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Proxy {
            addr,
            counters,
            accept,
        }
    }

    /// The base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `POST /sync/stream` requests seen so far.
    pub fn stream_requests(&self) -> usize {
        self.counters.stream_requests.load(Ordering::SeqCst)
    }

    /// `GET /write-checkpoint2.json` requests seen so far.
    pub fn write_checkpoints(&self) -> usize {
        self.counters.write_checkpoints.load(Ordering::SeqCst)
    }

    /// Whether clients sent `needle` (requests and bodies, up to 1 MiB in all).
    pub fn sent_contains(&self, needle: &str) -> bool {
        let sent = self.counters.sent.lock().unwrap();
        sent.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// Client connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// From now on, write-checkpoint requests are held and never answered.
    pub fn stall_write_checkpoints(&self, stall: bool) {
        self.counters
            .stall_write_checkpoints
            .store(stall, Ordering::SeqCst);
    }
}
