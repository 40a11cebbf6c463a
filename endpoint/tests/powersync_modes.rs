//! The PowerSync modes end to end: the real binary over HTTP; for the synced mode a throwaway
//! PostgreSQL with the seed's `lww` table and the stand-in sync service.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::backend::{Backend, append_txn, wait_for_postgres};
use common::{Endpoint, Workdir, assert_no_error_in_log, stored_list, unused_port};
use serde_json::json;

#[tokio::test]
async fn powersync_local_runs_list_append_transactions_and_never_uploads() {
    let wd = Workdir::new();
    let ep = wd.start(
        &[
            ("ENDPOINT_MODE", "powersync-local"),
            ("ENDPOINT_LOG_LEVEL", "ALL"),
        ],
        &[],
    );
    let reply = ep
        .txn(r#"{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":7},{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":8}]}"#)
        .await;
    assert_eq!(
        reply,
        json!({"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":7},{"f":"r","k":3,"v":"[7]"},{"f":"append","k":3,"v":8}],"type":"ok"})
    );
    let reply = ep.txn(r#"{"value":[{"f":"r","k":3,"v":null}]}"#).await;
    assert_eq!(reply["value"][0]["v"], "[7 8]");
    let rows = ep.rows().await;
    assert_eq!(rows.len(), 100, "keys 0..99 seeded");
    let status = ep.get("/powersync").await.json();
    assert_eq!(status["db.runtimeType"], "PowerSyncDatabase");
    assert_eq!(status["env.LOCAL_ONLY"], "true");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ep = ep;
    assert!(
        ep.wait_exit(Duration::from_millis(10)).is_none(),
        "still running: nothing was uploaded"
    );
    drop(ep);
    assert_no_error_in_log(&wd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_appends_reach_postgres_and_postgres_appends_reach_the_endpoint() {
    let backend = Backend::start().await;
    for connector in [
        "CrudTransactionConnector",
        "CrudBatchConnector",
        "CrudMultiTransactionConnector",
    ] {
        let wd = Workdir::new();
        let ep = backend.endpoint(&wd, connector, &[]);
        let value = match connector {
            "CrudTransactionConnector" => 1,
            "CrudBatchConnector" => 2,
            _ => 3,
        };
        // Keys beyond the seeded 0..99 get their row on the first append, locally and (through
        // every connector) in PostgreSQL.
        let (new_key, top_key) = (1000 * value, i64::from(i32::MAX) - value);
        ep.txn(&append_txn(&[10, 11, new_key], value)).await;
        ep.txn(&append_txn(&[11, top_key, new_key], value * 10))
            .await;
        testkit::eventually_async(
            format!("{connector}: the uploads to reach PostgreSQL"),
            Duration::from_secs(30),
            || async {
                let lists = backend.lists().await;
                if lists[&10].contains(&value)
                    && lists[&11].ends_with(&[value, value * 10])
                    && lists.get(&new_key) == Some(&vec![value, value * 10])
                    && lists.get(&top_key) == Some(&vec![value * 10])
                {
                    Ok(())
                } else {
                    Err(format!("uploads missing: {lists:?}"))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // A PostgreSQL write comes down to the endpoint.
        backend
            .client
            .execute(
                "UPDATE lww SET v = concat_ws(' ', v, $1::text) WHERE k = 20",
                &[&(100 + value).to_string()],
            )
            .await
            .unwrap();
        testkit::eventually_async(
            format!("{connector}: the PostgreSQL write to arrive at the endpoint"),
            Duration::from_secs(30),
            || async {
                let reply = ep.txn(r#"{"value":[{"f":"r","k":20,"v":null}]}"#).await;
                if reply["value"][0]["v"]
                    .as_str()
                    .is_some_and(|v| v.contains(&(100 + value).to_string()))
                {
                    Ok(())
                } else {
                    Err(format!("read: {reply}"))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let status = ep.get("/powersync").await.json();
        assert_eq!(status["status.connected"], true, "{status}");
        assert!(status["status.lastSyncedAt"].is_string(), "{status}");
        drop(ep);
        assert_no_error_in_log(&wd.log());
    }
    backend.shutdown().await;
}

/// How many PostgreSQL snapshots saw a client transaction partially: some of its keys hold its
/// value and others do not.
async fn partial_reads(backend: &Backend, ep: &Endpoint, keys: &[i64], txns: i64) -> usize {
    let reader = backend.pg.client().await.unwrap();
    let writer = async {
        for value in 1..=txns {
            ep.txn(&append_txn(keys, value)).await;
        }
    };
    let watcher = async {
        let mut partial = 0;
        let mut quiet = 0;
        loop {
            let rows = reader
                .query(
                    "SELECT k, v FROM lww WHERE k = ANY($1)",
                    &[&keys.iter().map(|&k| k as i32).collect::<Vec<_>>()],
                )
                .await
                .unwrap();
            let lists: Vec<BTreeSet<i64>> = rows
                .iter()
                .map(|r| stored_list(r.get::<_, &str>(1)).into_iter().collect())
                .collect();
            let all: BTreeSet<i64> = lists.iter().flatten().copied().collect();
            if all.iter().any(|v| !lists.iter().all(|l| l.contains(v))) {
                partial += 1;
            }
            if lists.iter().all(|l| l.len() as i64 == txns) {
                quiet += 1;
                if quiet > 5 {
                    return partial;
                }
            }
            tokio::task::yield_now().await;
        }
    };
    let ((), partial) = tokio::join!(
        writer,
        tokio::time::timeout(Duration::from_secs(60), watcher)
    );
    partial.expect("every transaction reached PostgreSQL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_finding_batch_uploads_are_observably_non_atomic_transaction_uploads_are_not() {
    let backend = Backend::start().await;
    let keys: Vec<i64> = (30..45).collect();
    let wd = Workdir::new();
    let ep = backend.endpoint(&wd, "CrudBatchConnector", &[]);
    let partial = partial_reads(&backend, &ep, &keys, 40).await;
    assert!(
        partial > 0,
        "CrudBatchConnector: a PostgreSQL reader should see part of a client transaction"
    );
    drop(ep);

    let keys: Vec<i64> = (50..65).collect();
    for connector in ["CrudTransactionConnector", "CrudMultiTransactionConnector"] {
        let wd = Workdir::new();
        let ep = backend.endpoint(&wd, connector, &[]);
        let partial = partial_reads(&backend, &ep, &keys, 40).await;
        assert_eq!(
            partial, 0,
            "{connector}: a PostgreSQL reader must never see part of a client transaction"
        );
        drop(ep);
        backend
            .client
            .execute("UPDATE lww SET v = '' WHERE k >= 50 AND k < 65", &[])
            .await
            .unwrap();
        assert_no_error_in_log(&wd.log());
    }
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_postgres_commit_and_complete_does_not_apply_twice() {
    let backend = Backend::start().await;
    let wd = Workdir::new();
    // The first upload commits in PostgreSQL, then the process exits before complete().
    let ep = backend.endpoint(
        &wd,
        "CrudTransactionConnector",
        &[
            ("ENDPOINT_TEST_EXIT_AFTER_PG_COMMIT", "1"),
            ("ENDPOINT_FAILURE_POLICY", "forgiving"),
        ],
    );
    ep.txn(&append_txn(&[70], 1)).await;
    let mut ep = ep;
    let status = ep
        .wait_exit(Duration::from_secs(20))
        .expect("the failpoint exits");
    assert_eq!(status.code(), Some(86));
    drop(ep);
    assert_eq!(
        backend.lists().await[&70],
        [1],
        "committed before the crash"
    );
    // A PostgreSQL writer appends after the crash: a second application of the old upload would
    // overwrite it (the upload sets the whole list).
    backend
        .client
        .execute("UPDATE lww SET v = v || ' 2' WHERE k = 70", &[])
        .await
        .unwrap();
    let ep = backend.endpoint(
        &wd,
        "CrudTransactionConnector",
        &[("ENDPOINT_FAILURE_POLICY", "forgiving")],
    );
    ep.txn(&append_txn(&[71], 3)).await;
    wait_for_postgres(&backend, &BTreeMap::from([(71, vec![3])])).await;
    assert_eq!(
        backend.lists().await[&70],
        [1, 2],
        "the re-upload was skipped, not applied again"
    );
    drop(ep);
    assert!(
        wd.log()
            .contains("was uploaded before; not applying it again"),
        "{}",
        wd.log()
    );
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_then_restart_every_acknowledged_append_reaches_postgres_once() {
    let backend = Backend::start().await;
    let wd = Workdir::new();
    let mut acknowledged: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut value = 0;
    for _round in 0..3 {
        let ep = backend.endpoint(
            &wd,
            "CrudTransactionConnector",
            &[("ENDPOINT_FAILURE_POLICY", "forgiving")],
        );
        let until = Instant::now() + Duration::from_millis(fastrand::u64(300..1200));
        while Instant::now() < until {
            value += 1;
            let keys = [80 + value % 5, 85 + value % 7];
            let reply = ep.post("/sql-txn", append_txn(&keys, value)).await;
            if reply.status == 200 {
                for k in keys {
                    acknowledged.entry(k).or_default().push(value);
                }
            }
        }
        ep.signal(nix::sys::signal::Signal::SIGKILL);
        drop(ep);
    }
    let _ep = backend.endpoint(
        &wd,
        "CrudTransactionConnector",
        &[("ENDPOINT_FAILURE_POLICY", "forgiving")],
    );
    let lists = wait_for_postgres(&backend, &acknowledged).await;
    for (k, values) in &acknowledged {
        assert_eq!(
            &lists[k], values,
            "key {k}: every acknowledged append exactly once, in order"
        );
    }
    backend.shutdown().await;
}

/// Several client transactions in one PostgreSQL transaction keep their order: the connector
/// sends their statements pipelined (all before any answer), so each later PATCH of a row must
/// still be the one that stays. A lock the test holds on `lww` stops the first upload at its
/// first write, so the transactions queue up and go up together; the ledger rows' `xmin` shows
/// that some PostgreSQL transaction carried more than one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_uploaded_together_keep_their_order_in_postgres() {
    let backend = Backend::start().await;
    let wd = Workdir::new();
    // The forgiving policy keeps the ledger whose rows show the grouping.
    let ep = backend.endpoint(
        &wd,
        "CrudMultiTransactionConnector",
        &[("ENDPOINT_FAILURE_POLICY", "forgiving")],
    );
    let keys = [70, 71];
    let txns = 30;
    let mut locker = backend.pg.client().await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE lww IN EXCLUSIVE MODE")
        .await
        .unwrap();
    for v in 1..=txns {
        let reply = ep.txn(&append_txn(&keys, v)).await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    lock.rollback().await.unwrap();
    let all: Vec<i64> = (1..=txns).collect();
    let expected: BTreeMap<i64, Vec<i64>> = keys.iter().map(|&k| (k, all.clone())).collect();
    wait_for_postgres(&backend, &expected).await;
    let row = backend
        .client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text) FROM powersync_endpoint_uploads",
            &[],
        )
        .await
        .unwrap();
    let (recorded, pg_txns): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(recorded, txns, "every client transaction recorded once");
    assert!(
        pg_txns < recorded,
        "{recorded} client transactions in {pg_txns} PostgreSQL transactions: none went up together"
    );
    drop(ep);
    assert_no_error_in_log(&wd.log());
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_in_a_pipelined_upload_lets_none_after_it_commit_first() {
    let backend = Backend::start().await;
    // The PostgreSQL transaction that writes value 10 fails once with a serialization failure
    // (the sequence counts outside the rolled-back transactions, so it fails only once).
    backend
        .client
        .batch_execute(
            "CREATE SEQUENCE fail_once;
             CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.v LIKE '% 10' AND nextval('fail_once') = 1 THEN
                 RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'serialization_failure';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER fail_once BEFORE UPDATE ON lww FOR EACH ROW EXECUTE FUNCTION fail_once();",
        )
        .await
        .unwrap();
    let wd = Workdir::new();
    // 30 client transactions queued while PostgreSQL is unreachable, so that the restarted
    // endpoint sends them in one window: 11 to 30 are sent before 10's answer.
    let dead_port = unused_port().to_string();
    let ep = backend.endpoint(
        &wd,
        "CrudTransactionConnector",
        &[
            ("ENDPOINT_FAILURE_POLICY", "forgiving"),
            ("PG_DATABASE_PORT", dead_port.as_str()),
        ],
    );
    let key = 72;
    for v in 1..=30 {
        let reply = ep.txn(&append_txn(&[key], v)).await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    let mut ep = ep;
    ep.signal(nix::sys::signal::Signal::SIGKILL);
    ep.wait_exit(Duration::from_secs(10))
        .expect("the endpoint exits on SIGKILL");
    drop(ep);
    let restarted_at = wd.log().len();
    let ep = backend.endpoint(
        &wd,
        "CrudTransactionConnector",
        &[("ENDPOINT_FAILURE_POLICY", "forgiving")],
    );
    let expected = BTreeMap::from([(key, (1..=30).collect::<Vec<i64>>())]);
    wait_for_postgres(&backend, &expected).await;
    let failed: bool = backend
        .client
        .query_one("SELECT is_called FROM fail_once", &[])
        .await
        .unwrap()
        .get(0);
    assert!(failed, "the injected failure happened");
    let recorded: i64 = backend
        .client
        .query_one("SELECT count(*) FROM powersync_endpoint_uploads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 30, "every client transaction recorded once");
    let local: Vec<i64> = ep
        .rows()
        .await
        .iter()
        .filter(|r| r["k"] == key)
        .map(|r| stored_list(r["v"].as_str().unwrap()))
        .next()
        .unwrap();
    assert_eq!(local, expected[&key]);
    drop(ep);
    assert_no_error_in_log(&wd.log()[restarted_at..]);
    backend.shutdown().await;
}
