//! Schema application and CRUD capture, for every vendored core.

mod common;

use powersync::schema::{Column, IncludeOld, Schema, Table};
use powersync::{Error, PowerSyncDatabase, UpdateType};
use serde_json::json;

#[tokio::test]
async fn every_core_applies_the_schema_and_captures_put_patch_delete() {
    for core in common::cores() {
        let v = core.version().to_string();
        let (_dir, db) = common::open_temp(core).await;
        assert_eq!(db.core_version(), core.version());
        db.write_transaction(|tx| {
            tx.execute(
                "INSERT INTO todos(id, description, done) VALUES ('t1', 'first', 0)",
                [],
            )?;
            tx.execute("UPDATE todos SET done = 1 WHERE id = 't1'", [])?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        db.execute("DELETE FROM todos WHERE id = 't1'", [])
            .await
            .unwrap();
        db.execute(
            "INSERT INTO drafts(id, body) VALUES ('d1', 'local only')",
            [],
        )
        .await
        .unwrap();

        let batch = db.crud_batch(100).await.unwrap().expect("queued entries");
        let ops: Vec<_> = batch
            .crud
            .iter()
            .map(|e| (e.op, e.table.as_str(), e.id.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                (UpdateType::Put, "todos", "t1"),
                (UpdateType::Patch, "todos", "t1"),
                (UpdateType::Delete, "todos", "t1")
            ],
            "core {v}: local-only writes produce no CRUD"
        );
        assert_eq!(
            batch.crud[0].data.as_ref().unwrap(),
            json!({"description": "first", "done": 0})
                .as_object()
                .unwrap()
        );
        assert_eq!(
            batch.crud[1].data.as_ref().unwrap(),
            json!({"done": 1}).as_object().unwrap()
        );
        assert_eq!(batch.crud[2].data, None);
        assert_eq!(
            batch.crud[0].transaction_id, batch.crud[1].transaction_id,
            "core {v}: one transaction"
        );
        assert_ne!(
            batch.crud[1].transaction_id, batch.crud[2].transaction_id,
            "core {v}"
        );
        assert!(!batch.has_more);

        let drafts: Vec<String> = db
            .query("SELECT body FROM drafts", [], |r| r.get(0))
            .await
            .unwrap();
        assert_eq!(drafts, ["local only"], "core {v}");
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn cores_from_0_3_13_record_previous_values_and_metadata() {
    for core in common::cores()
        .into_iter()
        .filter(|c| c.version().at_least(0, 3, 13))
    {
        let v = core.version().to_string();
        let (_dir, db) = common::open_temp(core).await;
        db.execute(
            "INSERT INTO items(id, name, qty, _metadata) VALUES ('i1', 'apple', 1, 'm-insert')",
            [],
        )
        .await
        .unwrap();
        db.execute(
            "UPDATE items SET qty = 2, _metadata = 'm-update' WHERE id = 'i1'",
            [],
        )
        .await
        .unwrap();
        let batch = db.crud_batch(10).await.unwrap().unwrap();
        assert_eq!(batch.crud.len(), 2, "core {v}");
        assert_eq!(
            batch.crud[0].metadata.as_deref(),
            Some("m-insert"),
            "core {v}"
        );
        let patch = &batch.crud[1];
        assert_eq!(patch.op, UpdateType::Patch);
        assert_eq!(patch.metadata.as_deref(), Some("m-update"), "core {v}");
        assert_eq!(patch.data.as_ref().unwrap()["qty"], json!(2), "core {v}");
        assert_eq!(patch.old.as_ref().unwrap()["qty"], json!(1), "core {v}");
        assert_eq!(
            patch.old.as_ref().unwrap()["name"],
            json!("apple"),
            "core {v}"
        );
    }
}

#[tokio::test]
async fn tracking_options_on_an_older_core_are_a_typed_error() {
    let core = common::core("0.3.11");
    let schema = Schema::new(vec![
        Table::new("items", vec![Column::text("name")]).include_old(IncludeOld::All, false),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let err = PowerSyncDatabase::open(&path, &schema, common::options(core))
        .await
        .unwrap_err();
    let Error::UnsupportedByCore { needs, found, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*needs, "0.3.13");
    assert_eq!(found, core.version());
    assert!(!path.exists(), "nothing touched the database");
}

#[tokio::test]
async fn an_invalid_schema_is_rejected_before_the_database_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    let schema = Schema::new(vec![Table::new("t", vec![Column::text("id")])]);
    let err = PowerSyncDatabase::open(&path, &schema, common::options(common::default_core()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSchema(_)), "{err:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn a_changed_schema_is_applied_on_reopen_and_keeps_data() {
    let core = common::default_core();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evolve.db");
    let db = PowerSyncDatabase::open(&path, &common::schema(core), common::options(core))
        .await
        .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t1', 'kept')",
        [],
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let wider = Schema::new(vec![Table::new(
        "todos",
        vec![
            Column::text("description"),
            Column::integer("done"),
            Column::real("priority"),
        ],
    )]);
    let db = PowerSyncDatabase::open(&path, &wider, common::options(core))
        .await
        .unwrap();
    let rows: Vec<(String, Option<f64>)> = db
        .query("SELECT description, priority FROM todos", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .await
        .unwrap();
    assert_eq!(rows, [("kept".to_string(), None)]);
}

#[tokio::test]
async fn a_failing_write_transaction_rolls_back_and_queues_nothing() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let err = db
        .write_transaction(|tx| {
            tx.execute("INSERT INTO todos(id, description) VALUES ('t1', 'x')", [])?;
            Err::<(), _>(Error::InvalidSchema("caller gave up".into()))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSchema(_)));
    let panicked = tokio::spawn({
        let db = db.clone();
        async move {
            db.write_transaction(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO todos(id, description) VALUES ('t2', 'y')", [])?;
                panic!("closure panics mid-transaction");
            })
            .await
        }
    })
    .await;
    assert!(
        panicked.unwrap_err().is_panic(),
        "the panic reaches the caller"
    );
    let count: Vec<i64> = db
        .query("SELECT count(*) FROM todos", [], |r| r.get(0))
        .await
        .unwrap();
    assert_eq!(count, [0]);
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 0);
    // The writer still works after both.
    db.execute("INSERT INTO todos(id, description) VALUES ('t3', 'z')", [])
        .await
        .unwrap();
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
}

#[tokio::test]
async fn a_reader_sees_committed_data_and_survives_a_panicking_closure() {
    let core = common::default_core();
    let (_dir, db) = common::open_temp(core).await;
    db.execute("INSERT INTO todos(id, description) VALUES ('t1', 'x')", [])
        .await
        .unwrap();
    for _ in 0..8 {
        let r = tokio::spawn({
            let db = db.clone();
            async move {
                db.read_transaction(|_tx| -> Result<(), Error> { panic!("reader closure panics") })
                    .await
            }
        })
        .await;
        assert!(r.unwrap_err().is_panic());
    }
    // All readers went back to the pool.
    let counts = futures_util::future::join_all(
        (0..8).map(|_| db.query("SELECT count(*) FROM todos", [], |r| r.get::<_, i64>(0))),
    )
    .await;
    for c in counts {
        assert_eq!(c.unwrap(), [1]);
    }
    let err = db
        .read_transaction(|tx| Ok::<_, Error>(tx.execute("DELETE FROM todos", [])?))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("readonly"),
        "readers are read-only: {err}"
    );
}
