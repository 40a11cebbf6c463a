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
//! # Compared with the official Rust SDK
//!
//! The official SDK is the `powersync` crate of `powersync-ja/powersync-native` (read at its
//! commit `2fc180e` and newer files; it links one core statically). Honest state of this crate:
//!
//! | feature | official Rust SDK | this crate |
//! |---|---|---|
//! | open, writer + readers, schema | yes | yes; durable pragmas by default; `readers: 0` reads on the writer |
//! | scoped connections | `reader()` / `writer()` leases | [`PowerSyncDatabase::reader`] / [`PowerSyncDatabase::writer`], plus closure transactions |
//! | change notifications | `watch_tables`, update hooks of the core | [`PowerSyncDatabase::table_updates`] (SQLite's hooks, every core) |
//! | watched queries | `watch_statement`, no throttle | [`PowerSyncDatabase::watch`] (30 ms throttle, skip unchanged), [`PowerSyncDatabase::watch_diff`] |
//! | upload queue | `next_crud_transaction`, transactions | also [`PowerSyncDatabase::crud_batch`], prefix-checked `complete()`, multi-transaction batches |
//! | credentials | resolved per request | cached, prefetched, dropped on 401 and on expiry |
//! | reconnects | fixed 5 s | jittered backoff, 1 s doubling to 30 s by default ([`SyncOptions::DEFAULT_RECONNECT`]) |
//! | lifecycle | tasks end with the last handle | the same, plus an explicit, idempotent `close()` |
//! | core version | one, linked in | any from 0.3.11 to 0.5.x, loaded at run time (Linux x86-64 only) |
//! | sync streams | yes | yes ([`PowerSyncDatabase::sync_stream`], [`StreamSubscription`] handles with TTL and priority, `unsubscribe_all`, per-stream [`SyncStreamStatus`], `include_default_streams`; core 0.4.5+) |
//! | bucket priorities | yes | yes (per-priority status, [`PowerSyncDatabase::wait_for_first_sync_at`]) |
//! | `app_metadata` | yes (newer versions) | yes ([`SyncOptions::app_metadata`], core 0.4.10+) |
//! | `update_schema` | yes | yes ([`PowerSyncDatabase::update_schema`], while disconnected) |
//! | raw tables | yes (put/delete statements, or inferred from a local schema) | put/delete/clear statements ([`schema::RawTable`], core 0.4.2+; `clear` 0.4.12+); no inference, no `Rest` parameter |
//! | checkpoint requests | yes (newer versions) | yes ([`CheckpointMode::Requests`], core 0.5.0+); no `request_checkpoint()` handle |
//! | encryption at rest | bring your own SQLite build | the `sqlcipher` feature and [`DatabaseOptions::encryption_key`] |
//! | executor | runtime-agnostic (tokio, smol) | tokio only |
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
pub use db::options::{DatabaseOptions, EncryptionKey, JournalMode, Pragmas, Synchronous};
pub use db::{PowerSyncDatabase, ReaderGuard, WriterGuard};
pub use error::{Error, Result};
pub use powersync_sys::{CoreLibrary, CoreVersion};
pub use schema::Schema;
pub use status::{
    DownloadProgress, FULL_SYNC_PRIORITY, PriorityStatus, SyncStatus, SyncStreamStatus,
};
pub use sync::streams::{StreamSubscription, SubscribeOptions, SyncStream};
pub use sync::{CheckpointMode, SyncOptions};
pub use upload::UploadOptions;
pub use watch::{TableUpdates, Watch, WatchDiff, WatchOptions};

/// rusqlite, re-exported: transactions hand out `rusqlite::Transaction`.
pub use rusqlite;
