//! A safe Rust API over the native PowerSync SQLite core (`libpowersync.so`, loaded at run time
//! by [`powersync_sys`]).
//!
//! - [`PowerSyncDatabase`]: SQLite with the core in every connection, the application's
//!   [`Schema`], write and read transactions (async; SQLite work runs off the async scheduler,
//!   in place with `block_in_place` on a multi-thread runtime, on the blocking pool on a
//!   current-thread one), and scoped connections ([`PowerSyncDatabase::reader`],
//!   [`PowerSyncDatabase::writer`]);
//! - the CRUD upload queue: [`PowerSyncDatabase::crud_batch`],
//!   [`PowerSyncDatabase::next_crud_transaction`], [`PowerSyncDatabase::crud_transactions`],
//!   acknowledged as a prefix with `complete()`;
//! - [`BackendConnector`] and [`PowerSyncDatabase::connect`]: the upload loop (and download
//!   sync through the core's `powersync_control`), reported in [`SyncStatus`].
//!
//! Works with every core from 0.3.11 to 0.5.x; where cores differ (the write-checkpoint target
//! lives in `ps_buckets` up to 0.4.x and behind `powersync_control` from 0.5.0), the wrapper
//! chooses by the loaded version, and what an old core cannot do is a typed error.
//!
//! ```no_run
//! use powersync::{DatabaseOptions, PowerSyncDatabase, schema::{Column, Schema, Table}};
//! # async fn demo() -> powersync::Result<()> {
//! let schema = Schema::new(vec![Table::new("todos", vec![Column::text("description")])]);
//! let db = PowerSyncDatabase::open("app.db", &schema, DatabaseOptions::default()).await?;
//! db.write_transaction(|tx| {
//!     tx.execute("INSERT INTO todos(id, description) VALUES (uuid(), ?1)", ["write docs"])?;
//!     Ok::<_, powersync::Error>(())
//! })
//! .await?;
//! let batch = db.crud_batch(100).await?.expect("one queued entry");
//! // ... upload batch.crud to the backend, then:
//! batch.complete().await?;
//! # Ok(()) }
//! ```

mod backoff;
mod connector;
mod crud;
mod db;
mod error;
pub mod schema;
mod status;
mod sync;
mod upload;
mod watch;

pub use backoff::Backoff;
pub use connector::{BackendConnector, ConnectorError, ErrorKind, PowerSyncCredentials};
pub use crud::{
    CrudBatch, CrudEntry, CrudTransaction, CrudTransactions, MAX_OP_ID, UpdateType,
    UploadQueueStats,
};
pub use db::options::{DatabaseOptions, JournalMode, Pragmas, Synchronous};
pub use db::{PowerSyncDatabase, ReaderGuard, WriterGuard};
pub use error::{Error, Result};
pub use powersync_sys::{CoreLibrary, CoreVersion};
pub use schema::Schema;
pub use status::{DownloadProgress, SyncStatus};
pub use sync::SyncOptions;
pub use upload::UploadOptions;
pub use watch::{TableUpdates, Watch, WatchDiff, WatchOptions};

/// rusqlite, re-exported: transactions hand out `rusqlite::Transaction`.
pub use rusqlite;
