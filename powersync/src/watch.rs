//! Change notifications and reactive queries: [`PowerSyncDatabase::table_updates`] and
//! [`PowerSyncDatabase::watch`].
//!
//! The writer connection records the tables every commit changed through SQLite's update,
//! commit and rollback hooks (the same on every core version: the core's own
//! `powersync_update_hooks` exists only in newer cores and would take SQLite's single update
//! hook slot). Local writes and rows applied by download sync (`powersync_control`) both run on
//! the writer, so both are seen. The changed tables are published when the writer is
//! released, so a listener that queries then sees the commit.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use rusqlite::Row;
use rusqlite::types::Value;
use tokio::sync::broadcast;

use crate::db::pool::TableSet;
use crate::db::{PowerSyncDatabase, TableNames, WeakDatabase};
use crate::error::{Error, Result};

/// A stream of the sets of tables (the application's view names) changed by commits, from
/// [`PowerSyncDatabase::table_updates`]. Commits that happen while the consumer is busy are
/// merged into the next item. Ends when the database is closed or dropped.
pub struct TableUpdates {
    inner: Pin<Box<dyn Stream<Item = BTreeSet<String>> + Send>>,
}

impl Stream for TableUpdates {
    type Item = BTreeSet<String>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for TableUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableUpdates").finish_non_exhaustive()
    }
}

/// Receives changed SQLite tables; on lag (more than the channel holds), everything counts as
/// changed.
struct Changes {
    rx: broadcast::Receiver<TableSet>,
    names: Arc<TableNames>,
}

impl Changes {
    /// The next changed tables (SQLite names) plus whatever else is already queued; `None`
    /// when the database is gone.
    async fn next(&mut self) -> Option<BTreeSet<String>> {
        let mut tables = match self.rx.recv().await {
            Ok(set) => (*set).clone(),
            Err(broadcast::error::RecvError::Lagged(_)) => self.names.all_tables(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        self.drain_into(&mut tables);
        Some(tables)
    }

    fn drain_into(&mut self, tables: &mut BTreeSet<String>) {
        loop {
            match self.rx.try_recv() {
                Ok(set) => tables.extend(set.iter().cloned()),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    tables.extend(self.names.all_tables())
                }
                Err(_) => return,
            }
        }
    }
}

/// How [`PowerSyncDatabase::watch`] runs its query again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// After a change, wait this long and take every further change with it before running the
    /// query again. Default 30 ms (as the Dart and JS SDKs).
    pub throttle: Duration,
    /// The tables the query depends on (view names or SQLite table names). `None`: found
    /// with `EXPLAIN`, as the SDKs do.
    pub tables: Option<BTreeSet<String>>,
    /// Do not emit a result equal to the previous one. Default true.
    pub skip_unchanged: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            throttle: Duration::from_millis(30),
            tables: None,
            skip_unchanged: true,
        }
    }
}

impl WatchOptions {
    /// Sets the throttle.
    pub fn with_throttle(mut self, throttle: Duration) -> Self {
        self.throttle = throttle;
        self
    }

    /// Names the tables instead of finding them with `EXPLAIN`.
    pub fn with_tables<S: Into<String>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.tables = Some(tables.into_iter().map(Into::into).collect());
        self
    }

    /// Emits every result, also one equal to the previous.
    pub fn emit_unchanged(mut self) -> Self {
        self.skip_unchanged = false;
        self
    }
}

/// What changed between two results of [`PowerSyncDatabase::watch_diff`], by key.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchDiff<T> {
    /// Rows whose key is new.
    pub added: Vec<T>,
    /// Rows whose key is gone.
    pub removed: Vec<T>,
    /// Rows whose key stayed and whose value changed: `(before, after)`.
    pub changed: Vec<(T, T)>,
    /// The whole new result, in query order.
    pub all: Vec<T>,
}

/// A stream of query results from [`PowerSyncDatabase::watch`]. Ends when the database is
/// closed or dropped.
pub struct Watch<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T>> + Send>>,
}

impl<T> Stream for Watch<T> {
    type Item = Result<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

/// The SQLite tables a statement reads: the root pages its `OpenRead` opcodes open, looked up
/// in `sqlite_schema` (views resolve to the tables behind them).
fn tables_read_by(conn: &rusqlite::Connection, sql: &str) -> Result<BTreeSet<String>> {
    let mut explain = conn.prepare(&format!("EXPLAIN {sql}"))?;
    let columns: Vec<String> = explain.column_names().map(|c| c.to_string()).collect();
    let opcode = columns.iter().position(|c| c == "opcode");
    let p2 = columns.iter().position(|c| c == "p2");
    let (Some(opcode), Some(p2)) = (opcode, p2) else {
        return Err(Error::Decode {
            what: "EXPLAIN output",
            detail: format!("no opcode/p2 columns in {columns:?}"),
        });
    };
    let params = explain.parameter_count();
    let nulls = vec![Value::Null; params];
    let mut pages = BTreeSet::new();
    let mut rows = explain.query(rusqlite::params_from_iter(nulls))?;
    while let Some(row) = rows.next()? {
        let op: String = row.get(opcode)?;
        if op == "OpenRead" {
            pages.insert(row.get::<_, i64>(p2)?);
        }
    }
    let mut lookup = conn.prepare(
        "SELECT tbl_name FROM sqlite_schema WHERE rootpage = ?1 AND type IN ('table', 'index')",
    )?;
    let mut tables = BTreeSet::new();
    for page in pages {
        if let Some(name) = lookup
            .query_row([page], |r| r.get::<_, String>(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?
        {
            tables.insert(name);
        }
    }
    Ok(tables)
}

impl PowerSyncDatabase {
    /// The sets of tables changed by each commit, by the application's view names: local
    /// writes (also through [`writer`](Self::writer)) and rows applied by download sync, after
    /// they committed. [`disconnect_and_clear`](Self::disconnect_and_clear) reports every
    /// table. Dropping the stream unsubscribes it.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn demo(db: powersync::PowerSyncDatabase) {
    /// let mut updates = db.table_updates();
    /// while let Some(tables) = updates.next().await {
    ///     if tables.contains("todos") { /* refresh the list */ }
    /// }
    /// # }
    /// ```
    pub fn table_updates(&self) -> TableUpdates {
        let names = self.inner.tables.clone();
        let changes = Changes {
            rx: self.inner.pool.events.subscribe(),
            names: names.clone(),
        };
        let inner = stream::unfold(changes, move |mut changes| {
            let names = names.clone();
            async move {
                loop {
                    let tables = changes.next().await?;
                    let views = names.views(&tables);
                    if !views.is_empty() {
                        return Some((views, changes));
                    }
                }
            }
        });
        TableUpdates {
            inner: Box::pin(inner),
        }
    }

    /// Listeners of [`table_updates`](Self::table_updates) and [`watch`](Self::watch) alive
    /// now (for tests of unsubscribing).
    #[doc(hidden)]
    pub fn change_listeners(&self) -> usize {
        self.inner.pool.events.listeners()
    }

    /// Runs `sql` with `params` now and again after every commit that changed a table it
    /// reads, mapping rows with `map`. Emits the first result at once; later results come at
    /// most once per [`WatchOptions::throttle`], never older than one already emitted (the
    /// query runs again only after the previous result was taken), and by default only when
    /// the result changed.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use powersync::WatchOptions;
    /// # async fn demo(db: powersync::PowerSyncDatabase) -> powersync::Result<()> {
    /// let mut todos = db.watch(
    ///     "SELECT description FROM todos ORDER BY description",
    ///     vec![],
    ///     WatchOptions::default(),
    ///     |row| row.get::<_, String>(0),
    /// );
    /// while let Some(list) = todos.next().await {
    ///     println!("{:?}", list?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch<T, F>(
        &self,
        sql: &str,
        params: Vec<Value>,
        options: WatchOptions,
        map: F,
    ) -> Watch<Vec<T>>
    where
        T: Clone + PartialEq + Send + 'static,
        F: Fn(&Row<'_>) -> rusqlite::Result<T> + Send + Sync + 'static,
    {
        struct State<T> {
            db: WeakDatabase,
            changes: Changes,
            tables: Option<BTreeSet<String>>,
            last: Option<Vec<T>>,
            started: bool,
            done: bool,
        }
        let state = State {
            db: self.downgrade(),
            // Subscribed before the first run: no commit after it is missed.
            changes: Changes {
                rx: self.inner.pool.events.subscribe(),
                names: self.inner.tables.clone(),
            },
            tables: options
                .tables
                .as_ref()
                .map(|t| self.inner.tables.resolve(t)),
            last: None,
            started: false,
            done: false,
        };
        let shared = Arc::new((sql.to_string(), params, options, map));
        let inner = stream::unfold(state, move |mut st| {
            let shared = shared.clone();
            async move {
                let (sql, params, options, _) = &*shared;
                if st.done {
                    return None;
                }
                let tables = match st.tables.clone() {
                    Some(tables) => tables,
                    None => {
                        let db = st.db.upgrade()?;
                        let explain = sql.clone();
                        match db
                            .inner
                            .pool
                            .with_reader(move |conn| tables_read_by(conn, &explain))
                            .await
                            .and_then(|r| r)
                        {
                            Ok(tables) => {
                                st.tables = Some(tables.clone());
                                tables
                            }
                            Err(e) => {
                                st.done = true;
                                return Some((Err(e), st));
                            }
                        }
                    }
                };
                loop {
                    if st.started {
                        // A commit touching the query's tables, then the throttle, which takes
                        // every further change with it.
                        loop {
                            let changed = st.changes.next().await?;
                            if changed.iter().any(|t| tables.contains(t)) {
                                break;
                            }
                        }
                        tokio::time::sleep(options.throttle).await;
                        let mut rest = BTreeSet::new();
                        st.changes.drain_into(&mut rest);
                    }
                    st.started = true;
                    let db = st.db.upgrade()?;
                    let shared = shared.clone();
                    let result = db
                        .query(sql, rusqlite::params_from_iter(params.clone()), move |r| {
                            (shared.3)(r)
                        })
                        .await;
                    match result {
                        Ok(rows) => {
                            if options.skip_unchanged && st.last.as_ref() == Some(&rows) {
                                continue;
                            }
                            st.last = Some(rows.clone());
                            return Some((Ok(rows), st));
                        }
                        Err(Error::Closed) => return None,
                        Err(e) => return Some((Err(e), st)),
                    }
                }
            }
        });
        Watch {
            inner: Box::pin(inner),
        }
    }

    /// [`watch`](Self::watch) in differential mode: each item says which rows were added,
    /// removed or changed since the previous item, by the key `key` extracts (the first item
    /// has every row as added). As the JS SDK's differential watch; the official Rust SDK has
    /// no such mode.
    pub fn watch_diff<T, K, F, G>(
        &self,
        sql: &str,
        params: Vec<Value>,
        options: WatchOptions,
        map: F,
        key: G,
    ) -> Watch<WatchDiff<T>>
    where
        T: Clone + PartialEq + Send + 'static,
        K: Eq + std::hash::Hash + Send + 'static,
        F: Fn(&Row<'_>) -> rusqlite::Result<T> + Send + Sync + 'static,
        G: Fn(&T) -> K + Send + 'static,
    {
        let mut previous: HashMap<K, T> = HashMap::new();
        let inner = self.watch(sql, params, options, map).map(move |result| {
            let all = result?;
            let mut current: HashMap<K, T> = HashMap::with_capacity(all.len());
            let mut diff = WatchDiff {
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
                all: Vec::new(),
            };
            for row in &all {
                let k = key(row);
                match previous.remove(&k) {
                    None => diff.added.push(row.clone()),
                    Some(before) if before != *row => diff.changed.push((before, row.clone())),
                    Some(_) => {}
                }
                current.insert(k, row.clone());
            }
            diff.removed = previous.drain().map(|(_, v)| v).collect();
            previous = current;
            diff.all = all;
            Ok(diff)
        });
        Watch {
            inner: Box::pin(inner),
        }
    }
}
