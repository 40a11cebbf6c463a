//! `powersync_endpoint`: exposes a list-append transaction store over HTTP for the
//! jepsen-powersync harness (a drop-in for the seed era's Dart endpoint).

mod api;
mod auth;
mod config;
mod connectors;
mod error;
mod logging;
mod model;
mod store;

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::store::TxnStore;
use crate::store::sqlite3::Sqlite3Store;

/// How long requests in flight may take to finish after SIGTERM/SIGINT (the seed's Jepsen client
/// gives up on a request after 1 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("powersync_endpoint: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level.0);
    tracing::info!(
        "powersync_endpoint {} starting: {config}",
        env!("CARGO_PKG_VERSION")
    );
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("powersync_endpoint stopped: {e}");
            match e {
                Error::Config { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Opens the mode's store and serves it until SIGTERM or SIGINT.
async fn run(config: Config) -> Result<()> {
    match config.mode {
        Mode::Sqlite3Local => {
            let path = config.sqlite3_path.clone();
            let store = tokio::task::spawn_blocking(move || Sqlite3Store::open(&path))
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

async fn serve<S: TxnStore>(store: Arc<S>, config: &Config) -> Result<()> {
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port))).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let app = api::seed::router(Arc::clone(&store), config.mode, config.local_only);
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
    store.close().await?;
    tracing::info!("shut down cleanly");
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
