//! Reading the upload queue as batches and as whole transactions, and prefix acknowledgement.

mod common;

use powersync::{CrudTransaction, Error, MAX_OP_ID, PowerSyncDatabase};

/// Three local transactions: A writes 3 rows, B writes 1, C writes 2.
async fn three_transactions(db: &PowerSyncDatabase) {
    transactions(db, &[("a", 3), ("b", 1), ("c", 2)]).await;
}

/// One local transaction per `(name, n)`, writing rows `name0..name{n-1}`.
async fn transactions(db: &PowerSyncDatabase, spec: &[(&'static str, usize)]) {
    for &(name, n) in spec {
        db.write_transaction(move |tx| {
            for i in 0..n {
                tx.execute(
                    "INSERT INTO todos(id, description) VALUES (?1, ?2)",
                    (format!("{name}{i}"), name),
                )?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }
}

fn ids(crud: &[powersync::CrudEntry]) -> Vec<&str> {
    crud.iter().map(|e| e.id.as_str()).collect()
}

#[tokio::test]
async fn batches_ignore_transaction_boundaries_and_transactions_never_split() {
    for core in common::cores() {
        let (_dir, db) = common::open_temp(core).await;
        three_transactions(&db).await;

        let batch = db.crud_batch(2).await.unwrap().unwrap();
        assert_eq!(ids(&batch.crud), ["a0", "a1"]);
        assert!(batch.has_more);
        let all = db.crud_batch(6).await.unwrap().unwrap();
        assert_eq!(all.crud.len(), 6);
        assert!(!all.has_more);

        let next = db.next_crud_transaction().await.unwrap().unwrap();
        assert_eq!(
            ids(&next.crud),
            ["a0", "a1", "a2"],
            "core {}",
            core.version()
        );

        let mut cursor = db.crud_transactions();
        let mut seen = Vec::new();
        while let Some(tx) = cursor.next().await.unwrap() {
            assert!(
                tx.crud
                    .iter()
                    .all(|e| e.transaction_id == tx.transaction_id)
            );
            seen.push(ids(&tx.crud).join(","));
        }
        assert_eq!(seen, ["a0,a1,a2", "b0", "c0,c1"], "core {}", core.version());

        let stats = db.upload_queue_stats().await.unwrap();
        assert_eq!(stats.count, 6);
        assert!(stats.size > 6 * 20);
    }
}

#[tokio::test]
async fn several_whole_transactions_complete_together_as_one_batch() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    three_transactions(&db).await;
    let mut cursor = db.crud_transactions();
    let first_two = vec![
        cursor.next().await.unwrap().unwrap(),
        cursor.next().await.unwrap().unwrap(),
    ];
    let batch = CrudTransaction::into_batch(first_two).unwrap();
    assert_eq!(ids(&batch.crud), ["a0", "a1", "a2", "b0"]);
    batch.complete().await.unwrap();
    let rest = db.next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(ids(&rest.crud), ["c0", "c1"]);
}

#[tokio::test]
async fn completion_is_prefix_only_and_never_twice() {
    for core in common::cores() {
        let (_dir, db) = common::open_temp(core).await;
        three_transactions(&db).await;
        let mut cursor = db.crud_transactions();
        let a = cursor.next().await.unwrap().unwrap();
        let b = cursor.next().await.unwrap().unwrap();
        let a_again = db.next_crud_transaction().await.unwrap().unwrap();

        let err = b.complete().await.unwrap_err();
        assert!(matches!(err, Error::NotQueuePrefix { .. }), "{err:?}");
        assert_eq!(
            db.upload_queue_stats().await.unwrap().count,
            6,
            "a refused completion changes nothing"
        );

        a.complete().await.unwrap();
        let err = a_again.complete().await.unwrap_err();
        assert!(matches!(err, Error::AlreadyCompleted { .. }), "{err:?}");
        assert_eq!(db.upload_queue_stats().await.unwrap().count, 3);

        // A local write after reading does not get acknowledged with the batch.
        let batch = db.crud_batch(100).await.unwrap().unwrap();
        db.execute(
            "INSERT INTO todos(id, description) VALUES ('late', 'x')",
            [],
        )
        .await
        .unwrap();
        batch.complete().await.unwrap();
        let left = db.crud_batch(100).await.unwrap().unwrap();
        assert_eq!(ids(&left.crud), ["late"], "core {}", core.version());
    }
}

/// The write-checkpoint target, read the way the loaded core stores it.
async fn target(db: &PowerSyncDatabase) -> Option<i64> {
    if db.core_version().at_least(0, 5, 0) {
        db.write_transaction(|tx| {
            Ok::<_, Error>(tx.query_row(
                "SELECT powersync_control('target_checkpoint_request_id', NULL)",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?)
        })
        .await
        .unwrap()
    } else {
        db.query_optional(
            "SELECT target_op FROM ps_buckets WHERE name = '$local'",
            [],
            |r| r.get(0),
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn completing_with_a_checkpoint_sets_the_target_only_when_the_queue_empties() {
    for core in common::cores() {
        let v = core.version().to_string();
        let (_dir, db) = common::open_temp(core).await;
        three_transactions(&db).await;
        assert_eq!(
            target(&db).await,
            Some(MAX_OP_ID),
            "core {v}: a local write sets the gate"
        );

        let a = db.next_crud_transaction().await.unwrap().unwrap();
        a.complete_with_checkpoint(7).await.unwrap();
        assert_eq!(
            target(&db).await,
            Some(MAX_OP_ID),
            "core {v}: entries remain, so no custom target"
        );

        let rest = db.crud_batch(100).await.unwrap().unwrap();
        rest.complete_with_checkpoint(42).await.unwrap();
        assert_eq!(target(&db).await, Some(42), "core {v}: the queue is empty");
    }
}

#[tokio::test]
async fn transactions_read_many_at_a_time_are_those_read_one_at_a_time() {
    for core in common::cores() {
        let (_dir, db) = common::open_temp(core).await;
        three_transactions(&db).await;
        transactions(&db, &[("d", 3), ("e", 1), ("f", 2)]).await;
        let mut one_by_one = Vec::new();
        let mut cursor = db.crud_transactions();
        while let Some(tx) = cursor.next().await.unwrap() {
            one_by_one.push(ids(&tx.crud).join(","));
        }
        // Every budget: 1 and 2 are smaller than the first transaction (it comes whole alone), 4
        // ends inside a transaction (left for the next call), 100 reads everything at once.
        for max_entries in [1, 2, 3, 4, 5, 100] {
            let mut cursor = db.crud_transactions();
            let mut many = Vec::new();
            loop {
                let read = cursor.next_many(max_entries).await.unwrap();
                if read.is_empty() {
                    break;
                }
                let entries: usize = read.iter().map(|t| t.crud.len()).sum();
                assert!(
                    read.len() == 1 || entries <= max_entries,
                    "{max_entries}: {entries} entries in {} transactions",
                    read.len()
                );
                for tx in &read {
                    assert!(
                        tx.crud
                            .iter()
                            .all(|e| e.transaction_id == tx.transaction_id)
                    );
                    many.push(ids(&tx.crud).join(","));
                }
            }
            assert_eq!(many, one_by_one, "{max_entries}, core {}", core.version());
        }
        assert_eq!(one_by_one.len(), 6);
    }
}
