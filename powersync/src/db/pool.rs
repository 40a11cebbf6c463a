//! The connection pool: one writer connection and a few read-only readers, handed out as
//! scoped leases. It knows nothing of sync; it records which tables each commit on the
//! writer touched (SQLite's update, commit and rollback hooks) and publishes them.

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use powersync_sys::CoreLibrary;
use rusqlite::Connection;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, broadcast};

use super::run_blocking;
use crate::error::{Error, Result};

/// Names of the tables one or more commits changed (SQLite's names, e.g. `ps_data__todos`).
pub(crate) type TableSet = Arc<BTreeSet<String>>;

/// Tables changed by the writer's open transaction, and by commits not yet published.
#[derive(Default)]
struct Touched {
    pending: BTreeSet<String>,
    committed: BTreeSet<String>,
}

/// What the writer's hooks record and who hears about it.
pub(crate) struct PoolEvents {
    touched: std::sync::Mutex<Touched>,
    /// Every commit's changed tables, published after the writer is released; `None` once
    /// the pool is closed (listeners' streams end).
    updates: std::sync::Mutex<Option<broadcast::Sender<TableSet>>>,
    /// Signalled after an application commit (not the wrapper's own writes) changed rows.
    pub(crate) app_commit: Notify,
}

impl PoolEvents {
    fn touched(&self) -> std::sync::MutexGuard<'_, Touched> {
        self.touched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes what was committed since the last call; returns whether anything was.
    pub(crate) fn publish(&self) -> bool {
        let committed = std::mem::take(&mut self.touched().committed);
        if committed.is_empty() {
            return false;
        }
        self.send(Arc::new(committed));
        true
    }

    /// Publishes `tables` as changed.
    pub(crate) fn send(&self, tables: TableSet) {
        if let Some(updates) = self
            .updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = updates.send(tables);
        }
    }

    /// A new listener; on a closed pool one that ends at once.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<TableSet> {
        match self
            .updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(updates) => updates.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Listeners alive now.
    pub(crate) fn listeners(&self) -> usize {
        self.updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |u| u.receiver_count())
    }

    fn close(&self) {
        self.updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// Installs the hooks that record changed tables on the writer.
fn install_hooks(conn: &mut Connection, events: &Arc<PoolEvents>) -> Result<()> {
    let on_update = events.clone();
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _db: &str, table: &str, _rowid: i64| {
            let mut touched = on_update.touched();
            if !touched.pending.contains(table) {
                touched.pending.insert(table.to_string());
            }
        },
    ))?;
    let on_commit = events.clone();
    conn.commit_hook(Some(move || {
        let mut touched = on_commit.touched();
        let pending = std::mem::take(&mut touched.pending);
        touched.committed.extend(pending);
        false
    }))?;
    let on_rollback = events.clone();
    conn.rollback_hook(Some(move || on_rollback.touched().pending.clear()))?;
    Ok(())
}

/// One writer, `readers` read-only connections (none in memory, where the writer reads).
pub(crate) struct ConnectionPool {
    pub(crate) core: &'static CoreLibrary,
    pub(crate) path: Option<PathBuf>,
    writer: Arc<Mutex<Option<Connection>>>,
    readers: Arc<std::sync::Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
    /// Reads go to the writer (in memory, or `readers: 0`).
    reads_on_writer: bool,
    pub(crate) events: Arc<PoolEvents>,
}

impl ConnectionPool {
    pub(crate) fn new(
        core: &'static CoreLibrary,
        path: Option<PathBuf>,
        mut writer: Connection,
        readers: Vec<Connection>,
    ) -> Result<Self> {
        let events = Arc::new(PoolEvents {
            touched: Default::default(),
            updates: std::sync::Mutex::new(Some(broadcast::channel(256).0)),
            app_commit: Notify::new(),
        });
        install_hooks(&mut writer, &events)?;
        let permits = readers.len();
        Ok(Self {
            core,
            path,
            writer: Arc::new(Mutex::new(Some(writer))),
            readers: Arc::new(std::sync::Mutex::new(readers)),
            reader_permits: Arc::new(Semaphore::new(permits)),
            reads_on_writer: permits == 0,
            events,
        })
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The writer, exclusively, until the lease drops.
    pub(crate) async fn writer(&self, app: bool) -> Result<WriterLease> {
        let guard = self.writer.clone().lock_owned().await;
        if guard.is_none() {
            return Err(Error::Closed);
        }
        Ok(WriterLease {
            guard,
            events: self.events.clone(),
            app,
        })
    }

    /// A reader (the writer when reads go there) until the lease drops.
    pub(crate) async fn reader(&self) -> Result<ReaderLease> {
        if self.reads_on_writer {
            return Ok(ReaderLease::Writer(self.writer(false).await?));
        }
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let conn = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or(Error::Closed)?;
        Ok(ReaderLease::Reader(PooledReader {
            conn: Some(conn),
            pool: self.readers.clone(),
            _permit: permit,
        }))
    }

    /// Runs `f` with the writer off the async scheduler, holding the writer lock.
    pub(crate) async fn with_writer<R, F>(&self, app: bool, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut lease = self.writer(app).await?;
        run_blocking(move || f(&mut lease)).await
    }

    /// Runs `f` with a reader off the async scheduler.
    pub(crate) async fn with_reader<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut lease = self.reader().await?;
        run_blocking(move || f(&mut lease)).await
    }

    /// Closes every connection (after the leases in use are back). Idempotent.
    pub(crate) async fn close(&self) -> Result<()> {
        let writer = self.writer.lock().await.take();
        self.reader_permits.close();
        self.events.close();
        let readers = std::mem::take(&mut *self.readers.lock().unwrap_or_else(|p| p.into_inner()));
        // Readers first: the writer, closing last, checkpoints the WAL and removes it.
        run_blocking(move || {
            drop(readers);
            drop(writer);
        })
        .await
    }
}

impl Drop for ConnectionPool {
    /// Closes the readers before the writer, as [`close`](Self::close) does.
    fn drop(&mut self) {
        drop(std::mem::take(
            &mut *self.readers.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        if let Ok(mut writer) = self.writer.try_lock() {
            drop(writer.take());
        }
    }
}

/// The writer, leased; publishes the tables its commits changed when it drops.
pub(crate) struct WriterLease {
    guard: OwnedMutexGuard<Option<Connection>>,
    events: Arc<PoolEvents>,
    app: bool,
}

impl Deref for WriterLease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.guard
            .as_ref()
            .expect("a lease is only handed out for an open writer")
    }
}

impl DerefMut for WriterLease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.guard
            .as_mut()
            .expect("a lease is only handed out for an open writer")
    }
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        if self.events.publish() && self.app {
            self.events.app_commit.notify_one();
        }
    }
}

/// A read-only connection taken from the pool; it goes back when dropped, also after a panic.
pub(crate) struct PooledReader {
    conn: Option<Connection>,
    pool: Arc<std::sync::Mutex<Vec<Connection>>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for PooledReader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }
}

/// A reader lease: a pooled reader, or the writer where reads go to the writer.
pub(crate) enum ReaderLease {
    Reader(PooledReader),
    Writer(WriterLease),
}

impl Deref for ReaderLease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Self::Reader(r) => r.conn.as_ref().expect("present until the lease drops"),
            Self::Writer(w) => w,
        }
    }
}

impl DerefMut for ReaderLease {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Self::Reader(r) => r.conn.as_mut().expect("present until the lease drops"),
            Self::Writer(w) => w,
        }
    }
}
