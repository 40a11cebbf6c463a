//! A stand-in for the PowerSync service's client-facing protocol over a real PostgreSQL, for
//! testing sync on one machine. See `standin/README.md` for its scope and what it leaves out.
//!
//! ```no_run
//! # async fn demo(config: standin::Config) -> Result<(), standin::Error> {
//! let standin = standin::StandIn::start(config).await?;
//! println!("sync endpoint: {}", standin.url());
//! standin.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api_error;
pub mod auth;
pub mod bson;
pub mod checksum;
pub mod compact;
pub mod config;
pub mod decode;
mod error;
pub mod http;
pub mod replication;
pub mod rows;
pub mod rules;
pub mod storage;
pub mod store;
pub mod stream;
pub mod wal_stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use compact::CompactStats;
pub use config::Config;
pub use error::Error;
pub use rules::SyncRules;

/// A running stand-in: HTTP server plus replication worker.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    store: Arc<store::Store>,
    shutdown: watch::Sender<bool>,
    disconnect: watch::Sender<u64>,
    commands: mpsc::Sender<replication::Command>,
    served: Arc<http::Served>,
    generation: u64,
    config: Config,
    rules: Arc<SyncRules>,
    server: JoinHandle<()>,
    replication: JoinHandle<()>,
}

impl StandIn {
    /// Starts the stand-in: connects to PostgreSQL, takes the initial snapshot (or resumes from
    /// the persisted state), binds the listener and starts replicating. Returns once clients
    /// can be served.
    pub async fn start(config: Config) -> Result<StandIn, Error> {
        config.sync_rules.check_served_by_stream()?;
        let keys = auth::KeyStore::new(
            &config.jwks,
            config.audience.clone(),
            config.max_token_lifetime,
        )?;
        let store = Arc::new(store::Store::new());
        let rules = Arc::new(config.sync_rules.clone());
        let replicator = replication::Replicator::init(&config, store.clone(), true).await?;
        let generation = replicator.generation();
        let served = Arc::new(http::Served::default());
        let (commands, commands_rx) = mpsc::channel(4);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(Error::Http)?;
        let addr = listener.local_addr().map_err(Error::Http)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (disconnect, disconnect_rx) = watch::channel(0);
        let state = Arc::new(http::AppState {
            store: store.clone(),
            keys,
            storage: storage::Storage::new(&config.storage_schema),
            client: Mutex::new(None),
            config: config.clone(),
            rules: rules.clone(),
            shutdown: shutdown_rx.clone(),
            disconnect: disconnect_rx,
            served: served.clone(),
        });
        let mut server_shutdown = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            // Sync lines are small writes: without TCP_NODELAY, a line written while the
            // previous one is unacknowledged waits for the client's delayed ACK (40 ms).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY not set on a sync connection: {e}");
                }
            });
            let result = axum::serve(listener, http::router(state))
                .with_graceful_shutdown(async move {
                    let _ = server_shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!("HTTP server failed: {e}");
            }
        });
        let stream_config = config.clone();
        let replication = tokio::spawn(replication::run(
            config,
            store.clone(),
            replicator,
            shutdown_rx,
            commands_rx,
        ));
        tracing::info!("stand-in listening on http://{addr}");
        Ok(StandIn {
            addr,
            store,
            shutdown,
            disconnect,
            commands,
            served,
            generation,
            config: stream_config,
            rules,
            server,
            replication,
        })
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The newest durable checkpoint (`last_op_id` of the newest checkpoint streams complete).
    pub fn checkpoint(&self) -> u64 {
        self.store.durable_checkpoint()
    }

    /// The snapshot generation: bucket ids are `<generation>#<definition>[]`, e.g.
    /// `1#global[]` (a new snapshot, e.g. after a sync rules change, gets new ids).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The bucket id clients see for bucket definition `definition` (e.g. `global`).
    pub fn bucket(&self, definition: &str) -> String {
        format!("{}#{definition}[]", self.generation)
    }

    /// How many `/sync/stream` responses were served as `(NDJSON, BSON)`.
    pub fn streams_served(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.served.ndjson.load(Ordering::Relaxed),
            self.served.bson.load(Ordering::Relaxed),
        )
    }

    /// How many write checkpoints were handed out as `(GET /write-checkpoint2.json,
    /// POST /sync/checkpoint-request)`.
    pub fn checkpoints_served(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.served.write_checkpoints.load(Ordering::Relaxed),
            self.served.checkpoint_requests.load(Ordering::Relaxed),
        )
    }

    /// Compacts every bucket up to the durable checkpoint now: superseded ops become MOVE, the
    /// dead prefix of each bucket one CLEAR, persisted before streams see it (see
    /// [`compact`]). Also runs every [`Config::compact_interval`] when set.
    pub async fn compact(&self) -> Result<CompactStats, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(replication::Command::Compact(reply))
            .await
            .map_err(|_| Error::Source("the replication worker has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| Error::Source("the replication worker has stopped".to_owned()))?
    }

    /// Opens a sync stream without HTTP whose consumer sets the pace: the same stream task a
    /// `/sync/stream` response runs (this stand-in's store, chunk size, keepalives, shutdown
    /// and [`disconnect_streams`](Self::disconnect_streams)), for the user key `user_key`
    /// (`"<sub>/<client_id>"`), starting from `positions` (bucket id → `after`), with a token
    /// expiring at `exp` (seconds since the epoch) whose `sub` is the user key's part before
    /// `/`, without client parameters, NDJSON-framed. Its lines go through a
    /// channel of one line, so the task is never more than two lines ahead of the reader: a
    /// test can hold a download after a given line until a condition holds (e.g. a newer
    /// checkpoint is durable) without depending on TCP buffer sizes. Dropping the receiver
    /// ends the task.
    pub fn paced_stream(
        &self,
        user_key: &str,
        positions: std::collections::HashMap<String, u64>,
        exp: i64,
    ) -> mpsc::Receiver<stream::Line> {
        let ctx = stream::StreamContext {
            store: self.store.clone(),
            rules: self.rules.clone(),
            claims: serde_json::json!({ "sub": user_key.split('/').next().unwrap_or(user_key) }),
            parameters: serde_json::json!({}),
            streams: rules::StreamsRequest::defaults(),
            max_buckets: self.config.max_buckets,
            user_key: user_key.to_owned(),
            positions,
            exp,
            keepalive: self.config.keepalive_interval,
            expire_warning: self.config.expire_warning,
            chunk_ops: self.config.data_chunk_ops.max(1),
            bson: false,
            shutdown: self.shutdown.subscribe(),
            disconnect: self.disconnect.subscribe(),
        };
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(ctx.run(tx));
        rx
    }

    /// Ends every open `/sync/stream` response (a fault for tests: clients see the body end
    /// and reconnect). New connections are served as usual.
    pub fn disconnect_streams(&self) {
        self.disconnect.send_modify(|n| *n += 1);
    }

    /// Stops accepting connections, ends open streams and the replication worker.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.replication.await;
        let _ = self.server.await;
    }
}
