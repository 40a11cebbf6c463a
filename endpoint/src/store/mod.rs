//! Transaction stores: where `/sql-txn` transactions run. One implementation per mode.

pub mod postgres;
pub mod powersync;
pub mod powersync_mww;
pub mod sqlite3;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::powersync::PowerSyncDatabase;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::lww::{LwwRow, MicroOp};
use crate::model::mww::MwwOp;

/// One list-append transaction store (the `lww` model).
///
/// Implemented by `sqlite3-local` ([`sqlite3::Sqlite3Store`]) and the PowerSync modes
/// ([`powersync::PowerSyncStore`]).
/// The HTTP layer is generic over it, so a mode only has to provide these four operations.
pub trait TxnStore: Send + Sync + 'static {
    /// Runs `ops` in order in ONE write transaction and returns them with reads filled in
    /// (see [`crate::model::lww::apply`]). On any error nothing of the transaction is kept.
    fn run_txn(&self, ops: Vec<MicroOp>) -> impl Future<Output = Result<Vec<MicroOp>>> + Send;

    /// Every row of the `lww` table, ordered by key.
    fn list(&self) -> impl Future<Output = Result<Vec<LwwRow>>> + Send;

    /// The store's state for `GET /powersync`.
    fn status(&self) -> impl Future<Output = StoreStatus> + Send;

    /// Closes the store: waits for work in flight, then releases the database. Later calls of
    /// the other methods fail with [`crate::error::Error::StoreClosed`].
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Opens the PowerSync database at `SQLITE3_PATH` with `schema` and the configured
/// `synchronous`, and says at INFO which core it loaded from where (the core is found as
/// `powersync_sys::CoreLibrary::load` documents: `POWERSYNC_LIB*`, an installed bundle's core
/// beside the binary or in `../lib/`, the vendored default, the system loader).
pub async fn open_powersync(
    config: &crate::config::Config,
    schema: &::powersync::schema::Schema,
) -> Result<PowerSyncDatabase> {
    let db = PowerSyncDatabase::open(
        &config.sqlite3_path,
        schema,
        config.synchronous.database_options(),
    )
    .await?;
    tracing::info!(
        "PowerSync core {} from {}, database {}",
        db.core_version(),
        db.core().path().display(),
        config.sqlite3_path.display()
    );
    Ok(db)
}

/// Ends the process with `code` (after an `ERROR` line) once `db`'s upload loop stops on a
/// fatal error: the connector cannot go on, and the harness must see it.
pub fn exit_on_fatal_upload_error(db: &PowerSyncDatabase, code: i32) {
    let watched = db.clone();
    tokio::spawn(async move {
        let e = watched.fatal_upload_error().await;
        tracing::error!("unrecoverable upload error, exiting: {e}");
        std::process::exit(code);
    });
}

/// How often the start-up wait says at INFO what it still waits for.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How often the start-up wait looks.
const SYNC_POLL: Duration = Duration::from_millis(100);

/// The synced stores' start-up wait: until the first full checkpoint was applied, `count_keys`
/// (SQL, `?1` = `keys`) counts all `keys`, and, with `settled`, nothing is downloading. Without a
/// `limit` it waits as long as it takes (as the Dart endpoint), saying at INFO every
/// [`PROGRESS_EVERY`] what it still waits for; with one it fails with
/// [`Error::FirstSyncTimeout`].
pub async fn wait_until_synced(
    db: &PowerSyncDatabase,
    count_keys: &str,
    keys: i64,
    settled: bool,
    limit: Option<Duration>,
) -> Result<()> {
    let wait = async {
        let started = Instant::now();
        let mut report_at = started + PROGRESS_EVERY;
        loop {
            let status = db.status();
            let synced = status.has_synced == Some(true);
            let present = if synced {
                let counted: Vec<i64> = db.query(count_keys, [keys], |r| r.get(0)).await?;
                counted.first().copied().unwrap_or(0)
            } else {
                0
            };
            if synced && present == keys && !(settled && status.downloading) {
                return Ok::<_, Error>(());
            }
            if Instant::now() >= report_at {
                tracing::info!(
                    "still waiting for the first sync after {} s: synced={synced}, {present} of \
                     {keys} keys present, connected={}, downloading={}",
                    started.elapsed().as_secs(),
                    status.connected,
                    status.downloading
                );
                report_at += PROGRESS_EVERY;
            }
            tokio::time::sleep(SYNC_POLL).await;
        }
    };
    match limit {
        Some(limit) => tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| Error::FirstSyncTimeout(limit))?,
        None => wait.await,
    }
}

/// Whether a store has been closed; every store's calls after `close` fail with
/// [`Error::StoreClosed`].
#[derive(Debug, Default)]
pub struct Closed(AtomicBool);

impl Closed {
    /// `Err(StoreClosed)` once closed.
    pub fn check(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::StoreClosed)
        } else {
            Ok(())
        }
    }

    /// Whether the store is closed.
    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Marks the store closed; true only for the first call.
    pub fn close(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// A store's state, as `GET /powersync` reports it (the Dart endpoint's `db.*` and `status.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// `db.closed`: the database has been closed.
    pub closed: bool,
    /// `db.connected`: a sync connection is established (always false without sync).
    pub connected: bool,
    /// `db.runtimeType`: which store implementation answers.
    pub runtime_type: &'static str,
    /// `status.connected`: the last sync status says connected.
    pub status_connected: bool,
    /// `status.lastSyncedAt`: RFC 3339 time of the last completed sync, if any.
    pub last_synced_at: Option<String>,
}

/// A latest-era (`mww`) store: the PowerSync database or PostgreSQL directly.
pub trait MwwStore: Send + Sync + 'static {
    /// `clientType` of the replies: `ps` or `pg`.
    fn client_type(&self) -> &'static str;

    /// Runs `ops` in order in ONE transaction (see [`crate::model::mww`]).
    fn run_txn(&self, ops: Vec<MwwOp>) -> impl Future<Output = Result<MwwOutcome>> + Send;

    /// One `GET /db-api/<action>`; the reply body.
    fn db_api(&self, action: DbAction) -> impl Future<Output = Result<serde_json::Value>> + Send;

    /// Closes the store at shutdown (idempotent).
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// The outcome of a latest-era transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MwwOutcome {
    /// Committed: the micro-ops with reads filled in and writes filtered.
    Ok(Vec<MwwOp>),
    /// Certainly not committed (a PostgreSQL serialization failure, for example): `type: fail`.
    Fail(String),
}

/// The actions of `GET /db-api/<action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAction {
    /// `connect`: start syncing.
    Connect,
    /// `disconnect`: stop syncing.
    Disconnect,
    /// `close`: close the database; later calls fail.
    Close,
    /// `uploadQueueCount`: entries waiting for upload.
    UploadQueueCount,
    /// `uploadQueueWait`: wait until nothing waits for upload.
    UploadQueueWait,
    /// `downloadingWait`: wait until no checkpoint is being downloaded.
    DownloadingWait,
    /// `selectAll`: every key's value.
    SelectAll,
}

impl DbAction {
    /// Every action with its name in the URL.
    pub const ALL: [(&'static str, DbAction); 7] = [
        ("connect", DbAction::Connect),
        ("disconnect", DbAction::Disconnect),
        ("close", DbAction::Close),
        ("uploadQueueCount", DbAction::UploadQueueCount),
        ("uploadQueueWait", DbAction::UploadQueueWait),
        ("downloadingWait", DbAction::DownloadingWait),
        ("selectAll", DbAction::SelectAll),
    ];

    /// The action named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, action)| *action)
    }
}
