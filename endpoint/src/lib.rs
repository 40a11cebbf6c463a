//! `powersync_endpoint` as a library: the HTTP test endpoint for jepsen-powersync (a drop-in for
//! the Dart endpoints of both Jepsen eras), and the vocabulary other crates (the harness) use to
//! talk about it: [`Mode`], [`BackendConnector`], [`LatestEndpoint`], [`Era`] and the key counts.
//!
//! The binary (`src/main.rs`) only loads the [`Config`], starts logging and calls [`run`].

mod api;
mod auth;
pub mod config;
mod connectors;
pub mod error;
pub mod logging;
mod model;
mod pg;
mod store;

pub use config::{
    BackendConnector, Config, Durability, Era, FailurePolicy, LatestEndpoint, MWW_DEFAULT_KEYS,
    Mode,
};
pub use error::{Error, Result};
/// The seed era's (`lww`) seeded key count.
pub use model::lww::{KEY_COUNT as LWW_KEY_COUNT, MAX_KEY as LWW_MAX_KEY};

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::store::postgres::PostgresStore;
use crate::store::powersync_mww::PowerSyncMwwStore;
use crate::store::sqlite3::Sqlite3Store;
use crate::store::{MwwStore, TxnStore};

/// How long requests in flight may take to finish after SIGTERM/SIGINT (the seed's Jepsen client
/// gives up on a request after 1 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the mode's store and serves it until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<()> {
    let mode = match config.era {
        Era::Latest {
            endpoint: LatestEndpoint::Postgresql,
            keys,
        } => {
            let store = PostgresStore::open(&config.postgres, keys).await?;
            tracing::info!("postgresql endpoint: mww holds keys 0..{keys} in PostgreSQL");
            return serve_latest(Arc::new(store), &config).await;
        }
        Era::Latest {
            endpoint: LatestEndpoint::Powersync,
            ..
        } => {
            let store = PowerSyncMwwStore::open(&config).await?;
            return serve_latest(store, &config).await;
        }
        Era::Seed { mode } => mode,
    };
    match mode {
        Mode::Sqlite3Local => {
            let path = config.sqlite3_path.clone();
            if config.fresh_database {
                remove_database(&path)?;
            }
            let durability = config.synchronous;
            let store = tokio::task::spawn_blocking(move || Sqlite3Store::open(&path, durability))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??;
            tracing::info!("sqlite3-local database {}", store.path().display());
            serve(Arc::new(store), &config).await
        }
        Mode::PowersyncLocal | Mode::Powersync => {
            let store = store::powersync::PowerSyncStore::open(&config).await?;
            serve(store, &config).await
        }
    }
}

/// Deletes the database file and its WAL and shared-memory files, if present: the
/// `sqlite3_endpoint` program starts each run from an empty database, as the Dart one does.
fn remove_database(path: &std::path::Path) -> Result<()> {
    let mut removed = false;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    tracing::info!(
        "sqlite3_endpoint: starting from an empty database {} ({}; --keep-database keeps it)",
        path.display(),
        if removed {
            "the previous run's file was removed"
        } else {
            "there was none"
        }
    );
    Ok(())
}

async fn serve<S: TxnStore>(store: Arc<S>, config: &Config) -> Result<()> {
    let app = api::seed::router(Arc::clone(&store), config.mode(), config.local_only);
    serve_app(app, config).await?;
    store.close().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Serves the latest era's API over `store` until SIGTERM or SIGINT.
async fn serve_latest<S: MwwStore>(store: Arc<S>, config: &Config) -> Result<()> {
    let app = api::latest::router(Arc::clone(&store), config.keys(), config.failure_policy);
    serve_app(app, config).await?;
    store.close().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Binds `0.0.0.0:port` and serves `app` until SIGTERM or SIGINT (plus the drain time).
async fn serve_app(app: axum::Router, config: &Config) -> Result<()> {
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port))).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let signalled = Arc::new(Notify::new());
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let signalled = Arc::clone(&signalled);
        async move {
            shutdown_signal().await;
            signalled.notify_one();
        }
    });
    // Requests in flight get DRAIN_TIMEOUT to finish; a client that keeps its connection busy
    // longer does not keep the process alive.
    let drain_deadline = async {
        signalled.notified().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = server.into_future() => served?,
        () = drain_deadline => tracing::warn!(
            "connections still busy {} s after the signal; closing anyway",
            DRAIN_TIMEOUT.as_secs()
        ),
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let wait = |kind: SignalKind, name: &'static str| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
                tracing::info!("{name} received, shutting down");
            }
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = wait(SignalKind::terminate(), "SIGTERM") => {}
        () = wait(SignalKind::interrupt(), "SIGINT") => {}
    }
}
