//! The database façade: [`PowerSyncDatabase`] joins the connection pool ([`pool`], which knows
//! nothing of sync) and the sync coordinator ([`crate::sync::coordinator`]).

mod connection;
mod guards;
pub mod options;
pub(crate) mod pool;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use powersync_sys::{CoreLibrary, CoreVersion};
use rusqlite::{Connection, Params, Row, Transaction, TransactionBehavior};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::status::SyncStatus;
use crate::sync::coordinator::SyncCoordinator;
use connection::Location;
pub use guards::{ReaderGuard, WriterGuard};
use options::DatabaseOptions;
use pool::ConnectionPool;
pub(crate) use tables::TableNames;

/// A PowerSync database: SQLite with the core loaded into every connection, the application's
/// schema applied, and the CRUD upload queue.
///
/// Cheap to clone (all clones share the connections). SQLite work runs off the async
/// scheduler: in place with `block_in_place` on a multi-thread runtime, on the blocking pool
/// on a current-thread runtime. Writes are serialised through one writer connection; reads use
/// a small pool of read-only connections (WAL), so they do not wait for writes.
///
/// Dropping the last handle stops the sync and upload tasks (they hold weak references) and
/// closes the connections; [`close`](Self::close) does it explicitly and waits for it.
#[derive(Clone)]
pub struct PowerSyncDatabase {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: ConnectionPool,
    pub(crate) sync: SyncCoordinator,
    pub(crate) tables: Arc<TableNames>,
    /// The schema applied now (the sync `start` request carries its raw tables).
    pub(crate) schema: std::sync::Mutex<Schema>,
}

/// A handle that does not keep the database open: what background tasks hold.
#[derive(Clone)]
pub(crate) struct WeakDatabase(Weak<Inner>);

impl WeakDatabase {
    /// The database, unless every handle was dropped.
    pub(crate) fn upgrade(&self) -> Option<PowerSyncDatabase> {
        self.0.upgrade().map(|inner| PowerSyncDatabase { inner })
    }

    /// Like [`upgrade`](Self::upgrade), as [`Error::Closed`] when the database is gone.
    pub(crate) fn get(&self) -> Result<PowerSyncDatabase> {
        self.upgrade().ok_or(Error::Closed)
    }
}

impl std::fmt::Debug for PowerSyncDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSyncDatabase")
            .field("path", &self.inner.pool.path)
            .field("core", &self.inner.pool.core.version())
            .finish_non_exhaustive()
    }
}

impl PowerSyncDatabase {
    /// Opens (or creates) the database file at `path`, loads the core into every connection
    /// and applies `schema`. An invalid schema is rejected before the file is touched.
    ///
    /// ```no_run
    /// use powersync::{DatabaseOptions, PowerSyncDatabase, schema::{Column, Schema, Table}};
    /// # async fn demo() -> powersync::Result<()> {
    /// let schema = Schema::new(vec![Table::new("todos", vec![Column::text("description")])]);
    /// let db = PowerSyncDatabase::open("app.db", &schema, DatabaseOptions::default()).await?;
    /// # Ok(()) }
    /// ```
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
        schema.check_core(core.version())?;
        let open_path = path.clone();
        let (writer, readers) = run_blocking(move || -> Result<_> {
            let location = match &open_path {
                Some(p) => Location::File(p),
                None => Location::Memory,
            };
            let key = options.encryption_key.as_ref();
            let mut writer = connection::open_writer(&location, core, &options.pragmas, key)?;
            connection::apply_schema(&mut writer, &schema_json)?;
            let readers = match &open_path {
                Some(p) => (0..options.readers)
                    .map(|_| connection::open_reader(p, core, &options.pragmas, key))
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            Ok((writer, readers))
        })
        .await??;
        Ok(Self {
            inner: Arc::new(Inner {
                pool: ConnectionPool::new(core, path, writer, readers)?,
                sync: SyncCoordinator::new(),
                tables: Arc::new(TableNames::new(schema)),
                schema: std::sync::Mutex::new(schema.clone()),
            }),
        })
    }

    /// Replaces the schema at run time (`powersync_replace_schema`): views are recreated,
    /// synced data is kept. Only while disconnected, as in the official SDKs: connected, it is
    /// [`Error::InvalidSchema`] and nothing changes.
    pub async fn update_schema(&self, schema: &Schema) -> Result<()> {
        let schema_json = schema.to_json()?;
        schema.check_core(self.core_version())?;
        if self.inner.sync.running.lock().await.is_some() {
            return Err(Error::InvalidSchema(
                "the schema cannot change while connected; disconnect first".into(),
            ));
        }
        self.inner
            .pool
            .with_writer(false, move |conn| {
                connection::apply_schema(conn, &schema_json)
            })
            .await??;
        self.inner.tables.replace(schema);
        *self.inner.schema.lock().unwrap_or_else(|p| p.into_inner()) = schema.clone();
        Ok(())
    }

    /// A handle for background tasks that does not keep the database open.
    pub(crate) fn downgrade(&self) -> WeakDatabase {
        WeakDatabase(Arc::downgrade(&self.inner))
    }

    /// The loaded core.
    pub fn core(&self) -> &'static CoreLibrary {
        self.inner.pool.core
    }

    /// What the loaded core can do, probed once per core (functions, `powersync_control`
    /// operations, write-checkpoint mechanism, `last_synced_at` unit, ...). The wrapper branches
    /// on these facts rather than on version numbers.
    pub fn capabilities(&self) -> Result<&'static powersync_sys::CoreCapabilities> {
        Ok(self.inner.pool.core.capabilities()?)
    }

    /// The loaded core's version.
    pub fn core_version(&self) -> &'static CoreVersion {
        self.inner.pool.core.version()
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.pool.path()
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`) on the writer connection. Commits
    /// when `f` returns `Ok`, rolls back when it returns `Err` or panics (the panic then
    /// continues in the caller). Wakes the upload loop after a commit that changed rows, and
    /// tells [`table_updates`](Self::table_updates) which tables it changed.
    ///
    /// ```no_run
    /// # async fn demo(db: powersync::PowerSyncDatabase) -> powersync::Result<()> {
    /// let id: String = db
    ///     .write_transaction(|tx| {
    ///         tx.execute("INSERT INTO todos(id, description) VALUES (uuid(), 'a')", [])?;
    ///         Ok::<_, powersync::Error>(tx.query_row("SELECT id FROM todos", [], |r| r.get(0))?)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.writer_transaction(true, f).await
    }

    /// A write transaction that does not wake the upload loop: for the wrapper's own writes
    /// (sync lines, CRUD completion), which never add to the upload queue.
    pub(crate) async fn internal_write_transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.writer_transaction(false, f).await
    }

    /// `BEGIN IMMEDIATE` on the writer; `app`: an application write, whose commit wakes the
    /// upload loop when it changed rows.
    async fn writer_transaction<R, E, F>(&self, app: bool, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.inner
            .pool
            .with_writer(app, move |conn| {
                in_transaction(conn, TransactionBehavior::Immediate, f)
            })
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
        self.inner
            .pool
            .with_reader(move |conn| in_transaction(conn, TransactionBehavior::Deferred, f))
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
        self.with_rows(sql, params, move |rows| {
            rows.mapped(map).collect::<rusqlite::Result<Vec<T>>>()
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
        self.with_rows(sql, params, move |mut rows| match rows.next()? {
            Some(row) => Ok(Some(map(row)?)),
            None => Ok(None),
        })
        .await
    }

    /// Prepares `sql` in a read transaction, binds `params` and hands the rows to `f`.
    async fn with_rows<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        T: Send + 'static,
        P: Params + Send + 'static,
        F: FnOnce(rusqlite::Rows<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.to_string();
        self.read_transaction(move |tx| {
            let mut stmt = tx.prepare(&sql)?;
            Ok(f(stmt.query(params)?)?)
        })
        .await
    }

    /// The client id the core generated for this database (`powersync_client_id()`).
    pub async fn client_id(&self) -> Result<String> {
        self.inner
            .pool
            .with_reader(|conn| {
                Ok(conn.query_row("SELECT powersync_client_id()", [], |r| r.get(0))?)
            })
            .await?
    }

    /// The current sync status.
    pub fn status(&self) -> SyncStatus {
        self.inner.sync.shared.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<SyncStatus> {
        self.inner.sync.shared.status.subscribe()
    }

    /// Disconnects (if connected), then closes every connection, after the leases in use are
    /// back. Idempotent; other calls fail with [`Error::Closed`] afterwards.
    pub async fn close(&self) -> Result<()> {
        self.disconnect().await?;
        self.inner.pool.close().await
    }

    /// A read-only connection for as long as the guard lives (the writer where there are no
    /// readers: in memory, or `readers: 0`). For reads that borrow locals, pragmas, or several
    /// statements in one snapshot (open a transaction on it). Blocking SQLite calls on it run
    /// on the calling thread.
    ///
    /// ```no_run
    /// # async fn demo(db: powersync::PowerSyncDatabase) -> powersync::Result<()> {
    /// let wanted = String::from("a");
    /// let reader = db.reader().await?;
    /// let n: i64 = reader.query_row(
    ///     "SELECT count(*) FROM todos WHERE description = ?1",
    ///     [&wanted],
    ///     |r| r.get(0),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub async fn reader(&self) -> Result<ReaderGuard> {
        Ok(ReaderGuard::new(self.inner.pool.reader().await?))
    }

    /// The writer connection, exclusively, for as long as the guard lives: for the
    /// application's own transactions, `VACUUM`, `ATTACH`, pragmas. When the guard drops after
    /// a commit that changed rows, the upload loop and [`table_updates`](Self::table_updates)
    /// hear of it. Do not hold it across long waits: every other write waits for it.
    ///
    /// ```no_run
    /// # async fn demo(db: powersync::PowerSyncDatabase) -> powersync::Result<()> {
    /// let description = String::from("borrowed");
    /// let mut writer = db.writer().await?;
    /// let tx = writer.transaction()?;
    /// tx.execute("INSERT INTO todos(id, description) VALUES (uuid(), ?1)", [&description])?;
    /// tx.commit()?;
    /// # Ok(()) }
    /// ```
    pub async fn writer(&self) -> Result<WriterGuard> {
        Ok(WriterGuard::new(self.inner.pool.writer(true).await?))
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
        Err(e) => Err(Error::Task(e)),
    }
}
