//! `sqlite3-local`: plain SQLite through rusqlite, no PowerSync.
//!
//! One connection, owned by a dedicated writer thread that runs the jobs sent to it one after
//! another, so transactions are serialized without locks. The file is opened in WAL mode with
//! `synchronous=FULL` by default: a transaction is acknowledged only after its commit reached
//! the WAL on stable storage, so a SIGKILL (or power loss) loses nothing that was acknowledged.
//! `--synchronous normal` trades that for fewer fsyncs (a power loss may then lose the last
//! acknowledged transactions; a SIGKILL alone still loses nothing).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::model::lww::{self, LwwRow, MicroOp};
use crate::store::{StoreStatus, TxnStore};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_millis(30_000);
/// Upper bound of the WAL file kept after a checkpoint, in bytes.
const JOURNAL_SIZE_LIMIT: i64 = 6_291_456;
/// Jobs that may wait for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 256;

/// A job for the writer thread, with the channel its answer goes back on.
enum Job {
    Txn(Vec<MicroOp>, oneshot::Sender<Result<Vec<MicroOp>>>),
    List(oneshot::Sender<Result<Vec<LwwRow>>>),
    /// Close the connection and stop; jobs queued after it are dropped (their senders see
    /// [`Error::StoreClosed`]).
    Close(oneshot::Sender<Result<()>>),
}

/// The `sqlite3-local` store.
#[derive(Debug)]
pub struct Sqlite3Store {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    closed: AtomicBool,
}

impl Sqlite3Store {
    /// Opens (creating if needed) the database at `path`, sets the pragmas (`synchronous` as
    /// `durability` says), creates and seeds the `lww` table, and starts the writer thread.
    /// Blocking: call it from a blocking context.
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        configure(&conn, durability)?;
        // One transaction: one fsync for the 100 seed rows, and all or none of them.
        let tx = conn.transaction()?;
        lww::create_and_seed(&tx)?;
        tx.commit()?;
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("sqlite3-writer".into())
            .spawn(move || run_writer(conn, rx))?;
        Ok(Self {
            path: path.to_owned(),
            jobs,
            closed: AtomicBool::new(false),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::StoreClosed);
        }
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(job(tx))
            .await
            .map_err(|_| Error::StoreClosed)?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }
}

/// Connection settings of the `sqlite3-local` store.
fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::WalRefused(mode));
    }
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    Ok(())
}

/// The writer thread: runs jobs in arrival order until a [`Job::Close`] (or until every sender
/// is gone), then closes the connection.
fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        match job {
            Job::Txn(ops, reply) => {
                let result = run_txn(&mut conn, ops);
                // The requester may have gone away (client timeout); the outcome stands.
                let _ = reply.send(result);
            }
            Job::List(reply) => {
                let _ = reply.send(lww::list(&conn));
            }
            Job::Close(reply) => {
                let _ = reply.send(conn.close().map_err(|(_, err)| Error::Sqlite(err)));
                return;
            }
        }
    }
}

/// One write transaction: BEGIN IMMEDIATE, the micro-ops, COMMIT (rolled back on any error).
fn run_txn(conn: &mut Connection, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = lww::apply(&tx, ops)?;
    tx.commit()?;
    Ok(out)
}

impl TxnStore for Sqlite3Store {
    async fn run_txn(&self, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>> {
        self.send(|reply| Job::Txn(ops, reply)).await
    }

    async fn list(&self) -> Result<Vec<LwwRow>> {
        self.send(Job::List).await
    }

    async fn status(&self) -> StoreStatus {
        StoreStatus {
            closed: self.closed.load(Ordering::Acquire),
            connected: false,
            runtime_type: "Sqlite3Store",
            status_connected: false,
            last_synced_at: None,
        }
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Jobs queued before this one still run first: the queue is FIFO.
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Close(tx))
            .await
            .map_err(|_| Error::StoreClosed)?;
        rx.await.map_err(|_| Error::StoreClosed)?
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn append(key: i64, value: i64) -> MicroOp {
        MicroOp::Append { key, value }
    }

    fn read(key: i64) -> MicroOp {
        MicroOp::Read { key, value: None }
    }

    #[tokio::test]
    async fn opens_with_wal_and_full_sync_and_keeps_data_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = Sqlite3Store::open(&path, Durability::Full).unwrap();
        store.run_txn(vec![append(2, 5)]).await.unwrap();
        store.close().await.unwrap();

        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);

        let store = Sqlite3Store::open(&path, Durability::Full).unwrap();
        let out = store.run_txn(vec![read(2)]).await.unwrap();
        assert_eq!(
            out,
            vec![MicroOp::Read {
                key: 2,
                value: Some("[5]".into())
            }]
        );
        let rows = store.list().await.unwrap();
        assert_eq!(rows.len(), lww::KEY_COUNT as usize);
    }

    #[test]
    fn pragmas_are_set_on_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("p.sqlite3")).unwrap();
        configure(&conn, Durability::Full).unwrap();
        let get = |name: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(get("synchronous"), 2, "FULL");
        configure(&conn, Durability::Normal).unwrap();
        assert_eq!(get("synchronous"), 1, "NORMAL");
        configure(&conn, Durability::Full).unwrap();
        assert_eq!(get("busy_timeout"), 30_000);
        assert_eq!(get("journal_size_limit"), JOURNAL_SIZE_LIMIT);
    }

    #[test]
    fn an_in_memory_database_is_refused_for_lack_of_wal() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(matches!(
            configure(&conn, Durability::Full),
            Err(Error::WalRefused(mode)) if mode == "memory"
        ));
    }

    #[tokio::test]
    async fn a_failing_transaction_keeps_none_of_its_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite3Store::open(&dir.path().join("t.sqlite3"), Durability::Full).unwrap();
        let err = store
            .run_txn(vec![append(1, 1), append(200, 3), read(-1)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::KeyNotPresent(-1)));
        assert_eq!(store.list().await.unwrap().len(), lww::KEY_COUNT as usize);
        assert_eq!(store.list().await.unwrap()[1].v, "");
    }

    #[tokio::test]
    async fn after_close_every_call_is_store_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite3Store::open(&dir.path().join("t.sqlite3"), Durability::Full).unwrap();
        store.close().await.unwrap();
        assert!(store.status().await.closed);
        assert!(matches!(
            store.run_txn(vec![read(0)]).await,
            Err(Error::StoreClosed)
        ));
        assert!(matches!(store.list().await, Err(Error::StoreClosed)));
        store.close().await.unwrap();
    }
}
