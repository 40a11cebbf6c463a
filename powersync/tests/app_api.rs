//! What an application meets first: scoped connections, change notifications, watched
//! queries, and the lifecycle (close, drop). Local tests use in-process connectors; the sync
//! cases run against a throwaway PostgreSQL and the stand-in over real HTTP.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use pg::{PgConnector, client_rows, eventually, fast, open_client, pg_rows, postgres_with_standin};
use powersync::{
    BackendConnector, ConnectorError, CoreLibrary, DatabaseOptions, Error, PowerSyncCredentials,
    PowerSyncDatabase, Pragmas, SyncOptions, Synchronous, WatchOptions,
};

const WAIT: Duration = Duration::from_secs(30);

/// Upload-only: completes every batch, counting the entries.
#[derive(Clone, Default)]
struct Counting {
    uploaded: Arc<AtomicUsize>,
}

impl BackendConnector for Counting {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Err(ConnectorError::fatal("upload-only"))
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let retry = |e: Error| ConnectorError::retryable(e.to_string());
        if let Some(batch) = db.crud_batch(100).await.map_err(retry)? {
            let n = batch.crud.len();
            batch.complete().await.map_err(retry)?;
            // Counted once completed, so a test that saw the count sees an empty queue.
            self.uploaded.fetch_add(n, Ordering::SeqCst);
        }
        Ok(())
    }
}

async fn next_with_timeout<S: futures_util::Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("the stream yielded within the wait")
        .expect("the stream did not end")
}

/// Runs `test` on every core of the vendored test set ([`common::cores`]), one after the
/// other, naming each on stderr first so that a failure's output says which core failed. The
/// change notifications come from SQLite's hooks on the writer, so the cores without
/// `powersync_update_hooks` (0.3.x) must pass the same tests.
async fn on_every_core<F, Fut>(test: F)
where
    F: Fn(&'static CoreLibrary) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for core in common::cores() {
        eprintln!("core {}", core.version());
        test(core).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_borrow_locals_and_a_writer_commit_wakes_the_upload_loop() {
    let core = common::default_core();
    let (_dir, db) = common::open_temp(core).await;
    let connector = Counting::default();
    db.connect(connector.clone(), SyncOptions::upload_only())
        .await
        .unwrap();
    let description = String::from("borrowed, not 'static");
    {
        let mut writer = db.writer().await.unwrap();
        let tx = writer.transaction().unwrap();
        tx.execute(
            "INSERT INTO todos(id, description) VALUES (uuid(), ?1)",
            [&description],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    eventually(WAIT, "the upload after the guard dropped", || async {
        connector.uploaded.load(Ordering::SeqCst) == 1
    })
    .await;
    {
        // A rolled-back transaction and pragmas commit nothing: no upload, nothing queued.
        let mut writer = db.writer().await.unwrap();
        let tx = writer.transaction().unwrap();
        tx.execute(
            "INSERT INTO todos(id, description) VALUES (uuid(), 'rolled back')",
            [],
        )
        .unwrap();
        tx.rollback().unwrap();
        writer.execute_batch("VACUUM").unwrap();
        let mode: String = writer
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
    }
    let reader = db.reader().await.unwrap();
    let n: i64 = reader
        .query_row(
            "SELECT count(*) FROM todos WHERE description = ?1",
            [&description],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let total: i64 = reader
        .query_row("SELECT count(*) FROM todos", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 1, "the rollback left nothing");
    drop(reader);
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 0);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_readers_read_on_the_writer_instead_of_hanging() {
    let core = common::default_core();
    let dir = tempfile::tempdir().unwrap();
    let options = DatabaseOptions {
        readers: 0,
        ..common::options(core)
    };
    let db = PowerSyncDatabase::open(dir.path().join("zero.db"), &common::schema(core), options)
        .await
        .unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('a', 'x')", [])
        .await
        .unwrap();
    let rows = tokio::time::timeout(
        WAIT,
        db.query("SELECT id FROM todos", [], |r| r.get::<_, String>(0)),
    )
    .await
    .expect("a read with readers: 0 returned")
    .unwrap();
    assert_eq!(rows, ["a"]);
    let reader = tokio::time::timeout(WAIT, db.reader())
        .await
        .expect("reader() with readers: 0 returned")
        .unwrap();
    let n: i64 = reader
        .query_row("SELECT count(*) FROM ps_crud", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    drop(reader);
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_idempotent_and_later_calls_fail_with_closed() {
    let core = common::default_core();
    let (_dir, db) = common::open_temp(core).await;
    db.connect(Counting::default(), SyncOptions::upload_only())
        .await
        .unwrap();
    let clone = db.clone();
    db.close().await.unwrap();
    clone.close().await.unwrap();
    let err = clone.execute("DELETE FROM todos", []).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert!(matches!(db.reader().await.unwrap_err(), Error::Closed));
    assert!(matches!(db.writer().await.unwrap_err(), Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_updates_name_the_views_a_commit_changed_on_every_core() {
    on_every_core(table_updates_name_the_views_a_commit_changed_with).await;
}

async fn table_updates_name_the_views_a_commit_changed_with(core: &'static CoreLibrary) {
    let (_dir, db) = common::open_temp(core).await;
    let mut updates = db.table_updates();
    db.execute("INSERT INTO todos(id, description) VALUES ('a', 'x')", [])
        .await
        .unwrap();
    let tables = next_with_timeout(&mut updates).await;
    assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["todos"]);
    db.write_transaction(|tx| {
        tx.execute(
            "INSERT INTO drafts(id, body) VALUES ('d', 'local only')",
            [],
        )?;
        tx.execute("UPDATE todos SET done = 1 WHERE id = 'a'", [])?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let tables = next_with_timeout(&mut updates).await;
    assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["drafts", "todos"]);
    // A rolled-back transaction reports nothing; the next commit reports only itself.
    let failed: Result<(), Error> = db
        .write_transaction(|tx| {
            tx.execute("INSERT INTO todos(id, description) VALUES ('b', 'x')", [])?;
            Err(Error::Closed)
        })
        .await;
    assert!(failed.is_err());
    db.execute("INSERT INTO drafts(id, body) VALUES ('e', 'x')", [])
        .await
        .unwrap();
    let tables = next_with_timeout(&mut updates).await;
    assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["drafts"]);
    db.close().await.unwrap();
    assert!(
        updates.next().await.is_none(),
        "the stream ends with the database"
    );
}

/// On every core: a watch sees a local write and a `disconnect_and_clear`; on the cores with
/// download sync (0.4.6+) also the rows arriving from PostgreSQL through the stand-in. Older
/// cores connect upload-only (download sync is a typed error there, see `sync.rs`), and their
/// local write reaching PostgreSQL is checked instead. One PostgreSQL and stand-in serve every
/// core; each core's rows carry its version and the watched query reads only those and `seed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_local_writes_synced_rows_and_a_clear_on_every_core() {
    let (pg, pgc, standin) =
        postgres_with_standin("INSERT INTO todos VALUES ('seed', 'from postgres', 0)").await;
    for core in common::cores() {
        let v = core.version().semver();
        let (local, from_pg) = (format!("local-{v}"), format!("pg-{v}"));
        let (_dir, db) = open_client(core).await;
        let mut ids = db.watch(
            "SELECT id FROM todos WHERE id IN ('seed', ?1, ?2) ORDER BY id",
            vec![local.clone().into(), from_pg.clone().into()],
            WatchOptions::default(),
            |r| r.get::<_, String>(0),
        );
        assert_eq!(
            next_with_timeout(&mut ids).await.unwrap(),
            Vec::<String>::new(),
            "core {v}"
        );
        let downloads = db.capabilities().unwrap().can_download_sync();
        let connector = PgConnector::new(&standin.url(), &pg, "w");
        if downloads {
            db.connect(connector, fast()).await.unwrap();
            assert_eq!(
                next_with_timeout(&mut ids).await.unwrap(),
                ["seed"],
                "core {v}: synced"
            );
        } else {
            db.connect(connector, SyncOptions::upload_only())
                .await
                .unwrap();
        }
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'x')",
            [local.clone()],
        )
        .await
        .unwrap();
        let mut expected = vec![local.clone()];
        if downloads {
            expected.push("seed".into());
        }
        assert_eq!(
            next_with_timeout(&mut ids).await.unwrap(),
            expected,
            "core {v}: local write"
        );
        if downloads {
            pgc.execute(
                "INSERT INTO todos (id, description) VALUES ($1, 'x')",
                &[&from_pg],
            )
            .await
            .unwrap();
            // The local row is uploaded and comes back; this core's `pg` row arrives through
            // the stream.
            loop {
                let rows = next_with_timeout(&mut ids).await.unwrap();
                if rows.contains(&from_pg) {
                    assert_eq!(
                        rows,
                        [local.clone(), from_pg.clone(), "seed".into()],
                        "core {v}"
                    );
                    break;
                }
            }
        } else {
            eventually(
                WAIT,
                "the upload-only core's write in PostgreSQL",
                || async { pg_rows(&pgc).await.contains_key(&local) },
            )
            .await;
        }
        db.disconnect_and_clear(false).await.unwrap();
        assert_eq!(
            next_with_timeout(&mut ids).await.unwrap(),
            Vec::<String>::new(),
            "core {v}: cleared"
        );
        assert!(client_rows(&db).await.is_empty(), "core {v}");
        db.close().await.unwrap();
    }
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_writes_is_coalesced_on_every_core() {
    on_every_core(a_burst_of_1000_writes_is_coalesced_and_the_last_result_is_complete_with).await;
}

async fn a_burst_of_1000_writes_is_coalesced_and_the_last_result_is_complete_with(
    core: &'static CoreLibrary,
) {
    let dir = tempfile::tempdir().unwrap();
    // No fsync per commit: the burst is fast, so coalescing, not slow writes, bounds the count.
    let options = common::options(core).with_pragmas(Pragmas {
        synchronous: Synchronous::Normal,
        ..Pragmas::default()
    });
    let db = PowerSyncDatabase::open(dir.path().join("burst.db"), &common::schema(core), options)
        .await
        .unwrap();
    let mut counts = db.watch(
        "SELECT count(*) FROM todos",
        vec![],
        WatchOptions::default().with_throttle(Duration::from_millis(100)),
        |r| r.get::<_, i64>(0),
    );
    assert_eq!(next_with_timeout(&mut counts).await.unwrap(), [0]);
    let writer = db.clone();
    let burst = tokio::spawn(async move {
        for i in 0..1000 {
            writer
                .execute(
                    "INSERT INTO todos(id, description) VALUES (?1, 'burst')",
                    [format!("t{i}")],
                )
                .await
                .unwrap();
        }
    });
    let mut emissions = 0;
    let mut last = 0;
    while last < 1000 {
        let count = next_with_timeout(&mut counts).await.unwrap()[0];
        assert!(
            count > last,
            "results only move forward: {count} after {last}"
        );
        last = count;
        emissions += 1;
    }
    burst.await.unwrap();
    assert_eq!(last, 1000);
    assert!(
        emissions < 100,
        "1000 commits gave {emissions} emissions; the 100 ms throttle coalesces them"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_unsubscribes_and_differential_mode_reports_by_key_on_every_core() {
    on_every_core(a_dropped_watch_unsubscribes_and_differential_mode_reports_by_key_with).await;
}

async fn a_dropped_watch_unsubscribes_and_differential_mode_reports_by_key_with(
    core: &'static CoreLibrary,
) {
    let (_dir, db) = common::open_temp(core).await;
    let before = db.change_listeners();
    let mut diffs = db.watch_diff(
        "SELECT id, description FROM todos ORDER BY id",
        vec![],
        WatchOptions::default(),
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        |row| row.0.clone(),
    );
    assert_eq!(db.change_listeners(), before + 1);
    let first = next_with_timeout(&mut diffs).await.unwrap();
    assert!(first.added.is_empty() && first.all.is_empty());
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('a', 'one'), ('b', 'two')",
        [],
    )
    .await
    .unwrap();
    let d = next_with_timeout(&mut diffs).await.unwrap();
    assert_eq!(d.added.len(), 2);
    assert!(d.removed.is_empty() && d.changed.is_empty());
    db.write_transaction(|tx| {
        tx.execute("UPDATE todos SET description = 'ONE' WHERE id = 'a'", [])?;
        tx.execute("DELETE FROM todos WHERE id = 'b'", [])?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let d = next_with_timeout(&mut diffs).await.unwrap();
    assert!(d.added.is_empty());
    assert_eq!(d.removed, [("b".to_string(), "two".to_string())]);
    assert_eq!(
        d.changed,
        [(
            ("a".to_string(), "one".to_string()),
            ("a".to_string(), "ONE".to_string())
        )]
    );
    assert_eq!(d.all, [("a".to_string(), "ONE".to_string())]);
    // A write to a table the query does not read wakes nothing.
    db.execute("INSERT INTO drafts(id, body) VALUES ('x', 'y')", [])
        .await
        .unwrap();
    drop(diffs);
    assert_eq!(
        db.change_listeners(),
        before,
        "the dropped watch unsubscribed"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_schema_adds_a_table_keeps_data_and_is_refused_while_connected_on_every_core() {
    on_every_core(update_schema_adds_a_table_keeps_data_and_is_refused_while_connected_with).await;
}

async fn update_schema_adds_a_table_keeps_data_and_is_refused_while_connected_with(
    core: &'static CoreLibrary,
) {
    use powersync::schema::{Column, Schema, Table};
    let (_dir, db) = common::open_temp(core).await;
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('kept', 'x')",
        [],
    )
    .await
    .unwrap();
    let mut tables = common::schema(core).tables;
    tables.push(Table::new("notes", vec![Column::text("text")]));
    let bigger = Schema::new(tables);
    db.connect(Counting::default(), SyncOptions::upload_only())
        .await
        .unwrap();
    let err = db.update_schema(&bigger).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSchema(_)), "{err:?}");
    db.disconnect().await.unwrap();
    db.update_schema(&bigger).await.unwrap();
    let mut updates = db.table_updates();
    db.execute("INSERT INTO notes(id, text) VALUES ('n', 'new table')", [])
        .await
        .unwrap();
    let tables = next_with_timeout(&mut updates).await;
    assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["notes"]);
    let kept: Vec<String> = db
        .query("SELECT id FROM todos", [], |r| r.get(0))
        .await
        .unwrap();
    assert_eq!(kept, ["kept"]);
    db.close().await.unwrap();
}
