//! The database: one writer connection, a few read-only readers, transactions.

mod connection;
pub mod options;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use powersync_sys::{CoreLibrary, CoreVersion};
use rusqlite::{Connection, Params, Row, Transaction, TransactionBehavior};
use tokio::sync::{Mutex, Notify, Semaphore, watch};

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::status::SyncStatus;
use connection::Location;
use options::DatabaseOptions;

/// A PowerSync database: SQLite with the core loaded into every connection, the application's
/// schema applied, and the CRUD upload queue.
///
/// Cheap to clone (all clones share the connections). SQLite work runs on tokio's blocking
/// threads, never on the async workers. Writes are serialised through one writer connection;
/// reads use a small pool of read-only connections (WAL), so they do not wait for writes.
#[derive(Clone)]
pub struct PowerSyncDatabase {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    core: &'static CoreLibrary,
    path: Option<PathBuf>,
    writer: Arc<Mutex<Option<Connection>>>,
    readers: Arc<std::sync::Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
    /// Signalled after every committed write transaction: the upload loop's wake-up.
    pub(crate) local_write: Notify,
    pub(crate) status: watch::Sender<SyncStatus>,
    pub(crate) sync: Mutex<Option<crate::sync::SyncHandle>>,
    /// The connector's fatal upload error, once one happened.
    pub(crate) fatal: watch::Sender<Option<Arc<crate::connector::ConnectorError>>>,
}

impl std::fmt::Debug for PowerSyncDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSyncDatabase")
            .field("path", &self.inner.path)
            .field("core", &self.inner.core.version())
            .finish_non_exhaustive()
    }
}

impl PowerSyncDatabase {
    /// Opens (or creates) the database file at `path`, loads the core into every connection
    /// and applies `schema`. An invalid schema is rejected before the file is touched.
    pub async fn open(
        path: impl AsRef<Path>,
        schema: &Schema,
        options: DatabaseOptions,
    ) -> Result<Self> {
        Self::open_at(Some(path.as_ref().to_path_buf()), schema, options).await
    }

    /// Opens a private in-memory database (one connection, used for reads and writes).
    pub async fn open_in_memory(schema: &Schema, options: DatabaseOptions) -> Result<Self> {
        Self::open_at(None, schema, options).await
    }

    async fn open_at(
        path: Option<PathBuf>,
        schema: &Schema,
        options: DatabaseOptions,
    ) -> Result<Self> {
        let schema_json = schema.to_json()?;
        let core = match options.core {
            Some(core) => core,
            None => CoreLibrary::load()?,
        };
        if schema.tables.iter().any(|t| t.uses_tracking_options())
            && !core.version().at_least(0, 3, 13)
        {
            return Err(Error::UnsupportedByCore {
                feature: "include_old, include_metadata and ignore_empty_update",
                needs: "0.3.13",
                found: core.version().clone(),
            });
        }
        let open_path = path.clone();
        let (writer, readers) = run_blocking(move || -> Result<_> {
            let location = match &open_path {
                Some(p) => Location::File(p),
                None => Location::Memory,
            };
            let mut writer = connection::open_writer(&location, core, &options.pragmas)?;
            connection::apply_schema(&mut writer, &schema_json)?;
            let readers = match &open_path {
                Some(p) => (0..options.readers)
                    .map(|_| connection::open_reader(p, core, &options.pragmas))
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            Ok((writer, readers))
        })
        .await??;
        let permits = readers.len();
        Ok(Self {
            inner: Arc::new(Inner {
                core,
                path,
                writer: Arc::new(Mutex::new(Some(writer))),
                readers: Arc::new(std::sync::Mutex::new(readers)),
                reader_permits: Arc::new(Semaphore::new(permits)),
                local_write: Notify::new(),
                status: watch::Sender::new(SyncStatus::default()),
                sync: Mutex::new(None),
                fatal: watch::Sender::new(None),
            }),
        })
    }

    /// The loaded core.
    pub fn core(&self) -> &'static CoreLibrary {
        self.inner.core
    }

    /// The loaded core's version.
    pub fn core_version(&self) -> &'static CoreVersion {
        self.inner.core.version()
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`) on the writer connection. Commits
    /// when `f` returns `Ok`, rolls back when it returns `Err` or panics (the panic then
    /// continues in the caller). Wakes the upload loop after a commit.
    pub async fn write_transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let result = self.internal_write_transaction(f).await;
        if result.is_ok() {
            self.inner.local_write.notify_one();
        }
        result
    }

    /// A write transaction that does not wake the upload loop: for the wrapper's own writes
    /// (sync lines, CRUD completion), which never add to the upload queue.
    pub(crate) async fn internal_write_transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.with_writer(move |conn| in_transaction(conn, TransactionBehavior::Immediate, f))
            .await
            .map_err(E::from)?
    }

    /// Runs `f` in a read transaction on a read-only connection (the writer for in-memory
    /// databases). It sees a consistent snapshot of committed data.
    pub async fn read_transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.with_reader(move |conn| in_transaction(conn, TransactionBehavior::Deferred, f))
            .await
            .map_err(E::from)?
    }

    /// Executes one statement in its own write transaction; returns the number of changed rows.
    pub async fn execute<P: Params + Send + 'static>(&self, sql: &str, params: P) -> Result<usize> {
        let sql = sql.to_string();
        self.write_transaction(move |tx| Ok(tx.execute(&sql, params)?))
            .await
    }

    /// Runs a query on a reader and maps every row.
    pub async fn query<T, P, F>(&self, sql: &str, params: P, map: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        P: Params + Send + 'static,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.to_string();
        self.read_transaction(move |tx| {
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt
                .query_map(params, map)?
                .collect::<rusqlite::Result<Vec<T>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Runs a query on a reader and maps the first row, if any.
    pub async fn query_optional<T, P, F>(&self, sql: &str, params: P, map: F) -> Result<Option<T>>
    where
        T: Send + 'static,
        P: Params + Send + 'static,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.to_string();
        self.read_transaction(move |tx| {
            let mut stmt = tx.prepare(&sql)?;
            let mut rows = stmt.query(params)?;
            Ok(match rows.next()? {
                Some(row) => Some(map(row)?),
                None => None,
            })
        })
        .await
    }

    /// The client id the core generated for this database (`powersync_client_id()`).
    pub async fn client_id(&self) -> Result<String> {
        self.with_reader(|conn| {
            Ok(conn.query_row("SELECT powersync_client_id()", [], |r| r.get(0))?)
        })
        .await?
    }

    /// The current sync status.
    pub fn status(&self) -> SyncStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<SyncStatus> {
        self.inner.status.subscribe()
    }

    /// Disconnects (if connected), then closes every connection. Later calls fail with
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        self.disconnect().await?;
        let writer = self.inner.writer.lock().await.take();
        let readers =
            std::mem::take(&mut *self.inner.readers.lock().unwrap_or_else(|p| p.into_inner()));
        self.inner.reader_permits.close();
        run_blocking(move || {
            drop(writer);
            drop(readers);
        })
        .await
    }

    /// Runs `f` with the writer connection on a blocking thread, holding the writer lock.
    pub(crate) async fn with_writer<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut guard = self.inner.writer.clone().lock_owned().await;
        if guard.is_none() {
            return Err(Error::Closed);
        }
        run_blocking(move || {
            let conn = guard
                .as_mut()
                .expect("checked above while holding the lock");
            f(conn)
        })
        .await
    }

    /// Runs `f` with a reader connection (the writer when there are none) on a blocking thread.
    pub(crate) async fn with_reader<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.inner.path.is_none() {
            return self.with_writer(f).await;
        }
        let permit = self
            .inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let pool = self.inner.readers.clone();
        let conn = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or(Error::Closed)?;
        let mut lease = ReaderLease {
            conn: Some(conn),
            pool,
            _permit: permit,
        };
        run_blocking(move || f(lease.conn.as_mut().expect("present until the lease drops"))).await
    }
}

/// A reader taken from the pool; it goes back when the lease drops, also after a panic.
struct ReaderLease {
    conn: Option<Connection>,
    pool: Arc<std::sync::Mutex<Vec<Connection>>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ReaderLease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }
}

/// Runs `f` in a transaction on `conn`: commit on `Ok`, roll back on `Err` (and, through the
/// transaction's drop, on a panic).
fn in_transaction<R, E, F>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    f: F,
) -> Result<R, E>
where
    F: FnOnce(&Transaction<'_>) -> Result<R, E>,
    E: From<Error>,
{
    let tx = conn
        .transaction_with_behavior(behavior)
        .map_err(|e| E::from(e.into()))?;
    let value = f(&tx)?;
    tx.commit().map_err(|e| E::from(e.into()))?;
    Ok(value)
}

/// Runs blocking SQLite work `f` off the async scheduler. On a multi-thread runtime it runs in
/// place with `block_in_place` (tokio hands this worker's other tasks to another thread), which
/// spares the two thread switches of a blocking-pool round trip on every transaction; on a
/// current-thread runtime it goes to the blocking pool. A panic inside `f` continues in the
/// caller either way.
pub(crate) async fn run_blocking<R, F>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        return Ok(tokio::task::block_in_place(f));
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Task(e.to_string())),
    }
}
