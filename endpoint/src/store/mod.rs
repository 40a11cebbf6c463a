//! Transaction stores: where `/sql-txn` transactions run. One implementation per mode.

pub mod postgres;
pub mod powersync;
pub mod powersync_mww;
pub mod sqlite3;

use std::future::Future;

use crate::error::Result;
use crate::model::lww::{LwwRow, MicroOp};
use crate::model::mww::MwwOp;

/// One list-append transaction store (the `lww` model).
///
/// Implemented by `sqlite3-local` ([`sqlite3::Sqlite3Store`]) and, later, by the PowerSync modes.
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
