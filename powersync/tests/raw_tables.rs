//! Raw tables, on every core of the test set: a table the application creates receives the rows
//! synced from PostgreSQL through the stand-in, with the application's own put and delete
//! statements (the sync `start` request carries them), and its local writes, recorded by the
//! application's triggers into `powersync_crud` as the SDKs document, are uploaded.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use futures_util::StreamExt;
use pg::{PgConnector, Rows, eventually, fast, pg_rows, postgres_with_standin, rows_of};
use powersync::schema::{PendingStatement, PendingStatementValue as P, RawTable, Schema};
use powersync::{Error, PowerSyncDatabase};

const WAIT: Duration = Duration::from_secs(30);

/// The application's table and the triggers that queue its local writes for upload as rows of
/// type `todos`; writes of the sync client (`powersync_in_sync_operation()`) are not queued.
const CREATE: &str = "
CREATE TABLE todo_rows (id TEXT PRIMARY KEY NOT NULL, description TEXT, done INTEGER);
CREATE TRIGGER todo_rows_insert AFTER INSERT ON todo_rows
WHEN NOT powersync_in_sync_operation() BEGIN
  INSERT INTO powersync_crud(op, id, type, data) VALUES
    ('PUT', NEW.id, 'todos', json_object('description', NEW.description, 'done', NEW.done));
END;
CREATE TRIGGER todo_rows_update AFTER UPDATE ON todo_rows
WHEN NOT powersync_in_sync_operation() BEGIN
  INSERT INTO powersync_crud(op, id, type, data) VALUES
    ('PATCH', NEW.id, 'todos', json_object('description', NEW.description, 'done', NEW.done));
END;
CREATE TRIGGER todo_rows_delete AFTER DELETE ON todo_rows
WHEN NOT powersync_in_sync_operation() BEGIN
  INSERT INTO powersync_crud(op, id, type) VALUES ('DELETE', OLD.id, 'todos');
END;
";

/// Synced `todos` rows go to `todo_rows`; with `clear`, `powersync_clear` empties it (core
/// 0.4.12+: older cores let the triggers above queue every cleared row as an upload).
fn raw_schema(clear: bool) -> Schema {
    let mut todos = RawTable::new(
        "todos",
        PendingStatement::new(
            "INSERT INTO todo_rows(id, description, done) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET description = excluded.description, done = excluded.done",
            vec![
                P::Id,
                P::Column("description".into()),
                P::Column("done".into()),
            ],
        ),
        PendingStatement::new("DELETE FROM todo_rows WHERE id = ?1", vec![P::Id]),
    );
    if clear {
        todos = todos.clear("DELETE FROM todo_rows");
    }
    Schema::new(vec![]).with_raw_tables(vec![todos])
}

async fn raw_rows(db: &PowerSyncDatabase) -> Rows {
    rows_of(db, "SELECT id, description, done FROM todo_rows").await
}

/// Waits until the raw table's rows satisfy `check`.
async fn until_raw(db: &PowerSyncDatabase, what: &str, check: impl Fn(&Rows) -> bool) {
    eventually(WAIT, what, || async { check(&raw_rows(db).await) }).await;
}

/// Waits until PostgreSQL's rows satisfy `check`.
async fn until_pg(pgc: &tokio_postgres::Client, what: &str, check: impl Fn(&Rows) -> bool) {
    eventually(WAIT, what, || async { check(&pg_rows(pgc).await) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_table_receives_synced_rows_and_its_local_writes_are_uploaded_on_every_core() {
    let (pg, pgc, standin) =
        postgres_with_standin("INSERT INTO todos VALUES ('seed', 'from postgres', 0)").await;
    for core in common::cores() {
        let v = core.version().semver();
        let (local, from_pg) = (format!("local-{v}"), format!("pg-{v}"));
        let dir = tempfile::tempdir().unwrap();
        let clears = core.version().at_least(0, 4, 12);
        let opened = PowerSyncDatabase::open(
            dir.path().join("raw.db"),
            &raw_schema(clears),
            common::options(core),
        )
        .await;
        if !core.version().at_least(0, 4, 2) {
            let err = opened.unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedByCore { needs: "0.4.2", .. }),
                "core {v}: {err:?}"
            );
            continue;
        }
        let db = opened.unwrap_or_else(|e| panic!("core {v}: {e}"));
        if !clears {
            let err = PowerSyncDatabase::open(
                dir.path().join("clear.db"),
                &raw_schema(true),
                common::options(core),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::UnsupportedByCore {
                        needs: "0.4.12",
                        ..
                    }
                ),
                "core {v}: {err:?}"
            );
        }
        db.writer().await.unwrap().execute_batch(CREATE).unwrap();
        let mut updates = db.table_updates();
        db.connect(PgConnector::new(&standin.url(), &pg, "raw"), fast())
            .await
            .unwrap();

        until_raw(&db, &format!("core {v}: seed in the raw table"), |r| {
            r.contains_key("seed")
        })
        .await;
        let changed = tokio::time::timeout(WAIT, updates.next())
            .await
            .unwrap()
            .unwrap();
        assert!(changed.contains("todo_rows"), "core {v}: {changed:?}");
        let untyped: i64 = db
            .query_optional(
                "SELECT count(*) FROM ps_untyped WHERE type = 'todos'",
                [],
                |r| r.get(0),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(untyped, 0, "core {v}: synced rows went to the raw table");

        // Local writes are uploaded.
        db.execute(
            "INSERT INTO todo_rows(id, description, done) VALUES (?1, 'local', 0)",
            [local.clone()],
        )
        .await
        .unwrap();
        until_pg(&pgc, &format!("core {v}: the insert uploaded"), |r| {
            r.contains_key(&local)
        })
        .await;
        db.execute(
            "UPDATE todo_rows SET done = 1 WHERE id = ?1",
            [local.clone()],
        )
        .await
        .unwrap();
        until_pg(&pgc, &format!("core {v}: the update uploaded"), |r| {
            r.get(&local).is_some_and(|row| row.1 == Some(1))
        })
        .await;

        // PostgreSQL's inserts, updates and deletes arrive through the put and delete statements.
        pgc.execute(
            "INSERT INTO todos (id, description) VALUES ($1, 'pg')",
            &[&from_pg],
        )
        .await
        .unwrap();
        until_raw(&db, &format!("core {v}: the insert synced"), |r| {
            r.contains_key(&from_pg)
        })
        .await;
        pgc.execute(
            "UPDATE todos SET description = 'pg updated' WHERE id = $1",
            &[&from_pg],
        )
        .await
        .unwrap();
        until_raw(&db, &format!("core {v}: the update synced"), |r| {
            r.get(&from_pg).is_some_and(|row| row.0 == "pg updated")
        })
        .await;
        pgc.execute("DELETE FROM todos WHERE id = $1", &[&from_pg])
            .await
            .unwrap();
        until_raw(&db, &format!("core {v}: the delete synced"), |r| {
            !r.contains_key(&from_pg)
        })
        .await;

        db.execute("DELETE FROM todo_rows WHERE id = ?1", [local.clone()])
            .await
            .unwrap();
        eventually(WAIT, &format!("core {v}: the delete uploaded"), || async {
            !pg_rows(&pgc).await.contains_key(&local)
                && db.upload_queue_stats().await.unwrap().count == 0
        })
        .await;
        // The sync client's writes were not queued: an upload of them would have put the
        // deleted PostgreSQL row back.
        assert!(
            !pg_rows(&pgc).await.contains_key(&from_pg),
            "core {v}: a synced row was uploaded"
        );
        assert_eq!(
            raw_rows(&db).await.keys().collect::<Vec<_>>(),
            ["seed"],
            "core {v}"
        );

        if clears {
            db.disconnect_and_clear(false).await.unwrap();
            assert!(raw_rows(&db).await.is_empty(), "core {v}: cleared");
            assert_eq!(
                db.upload_queue_stats().await.unwrap().count,
                0,
                "core {v}: clearing queues no upload"
            );
        }
        db.close().await.unwrap();
    }
    standin.shutdown().await;
}
