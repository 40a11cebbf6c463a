//! Transaction stores: where `/sql-txn` transactions run. One implementation per mode.

pub mod powersync;
pub mod sqlite3;

use std::future::Future;

use crate::error::Result;
use crate::model::lww::{LwwRow, MicroOp};

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
