//! Download sync end to end: a throwaway PostgreSQL, the stand-in sync service over real HTTP,
//! and clients that upload through a connector writing to PostgreSQL.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg::{Rows, client_rows, fast, open_client, pg_rows, postgres, standin_config};
use powersync::{
    BackendConnector, ConnectorError, Error, PowerSyncCredentials, PowerSyncDatabase, SyncOptions,
};
use standin::StandIn;
use testkit::{TestKey, TestPostgres};

/// Uploads each CRUD batch to PostgreSQL in one transaction, then completes it.
#[derive(Clone)]
struct PgConnector {
    endpoint: Arc<Mutex<String>>,
    pg_uri: String,
    user: String,
    token_lifetime: i64,
    fetches: Arc<AtomicUsize>,
}

impl PgConnector {
    fn new(endpoint: &str, pg: &TestPostgres, user: &str) -> Self {
        Self {
            endpoint: Arc::new(Mutex::new(endpoint.to_string())),
            pg_uri: pg.uri(),
            user: user.to_string(),
            token_lifetime: 300,
            fetches: Arc::default(),
        }
    }
}

fn retryable(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::retryable(e.to_string())
}

impl BackendConnector for PgConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let token = TestKey::primary()
            .token(&self.user, self.token_lifetime)
            .map_err(retryable)?;
        let endpoint = self.endpoint.lock().unwrap().clone();
        Ok(PowerSyncCredentials { endpoint, token })
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        pg::upload_todos(&self.pg_uri, db).await
    }
}

/// Waits until every client holds exactly PostgreSQL's rows and has nothing left to upload.
async fn converge(pg: &tokio_postgres::Client, clients: &[&PowerSyncDatabase]) -> Rows {
    testkit::eventually_async(
        "every client to hold PostgreSQL's rows with an empty upload queue",
        Duration::from_secs(45),
        || async {
            let expected = pg_rows(pg).await;
            let mut all = true;
            for db in clients {
                all &= db.upload_queue_stats().await.unwrap().count == 0
                    && client_rows(db).await == expected;
            }
            if all && pg_rows(pg).await == expected {
                return Ok(expected);
            }
            let got =
                futures_util::future::join_all(clients.iter().map(|db| client_rows(db))).await;
            Err(format!("PostgreSQL {expected:?}, clients {got:?}"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("no convergence: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_rows_and_postgres_writes_reach_two_clients() {
    let (pg, pgc) = postgres().await;
    pgc.batch_execute("INSERT INTO todos VALUES ('seed1', 'one', 0), ('seed2', 'two', 1)")
        .await
        .unwrap();
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let core = common::default_core();
    let (_a_dir, a) = open_client(core).await;
    let (_b_dir, b) = open_client(core).await;
    a.connect(PgConnector::new(&standin.url(), &pg, "a"), fast())
        .await
        .unwrap();
    b.connect(PgConnector::new(&standin.url(), &pg, "b"), fast())
        .await
        .unwrap();
    a.wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        client_rows(&a).await.len(),
        2,
        "the initial snapshot arrived before has_synced"
    );
    let status = a.status();
    assert!(
        status.connected && status.has_synced == Some(true) && status.last_synced_at.is_some(),
        "{status:?}"
    );

    pgc.batch_execute(
        "BEGIN; INSERT INTO todos VALUES ('pg1', 'from postgres', 0); UPDATE todos SET done = 7 WHERE id = 'seed1';
         DELETE FROM todos WHERE id = 'seed2'; COMMIT;",
    )
    .await
    .unwrap();
    let rows = converge(&pgc, &[&a, &b]).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows["seed1"].1, Some(7));
    a.close().await.unwrap();
    b.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_write_reaches_postgres_and_the_other_client_and_becomes_synced() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let core = common::default_core();
    let (_a_dir, a) = open_client(core).await;
    let (_b_dir, b) = open_client(core).await;
    a.connect(PgConnector::new(&standin.url(), &pg, "a"), fast())
        .await
        .unwrap();
    b.connect(PgConnector::new(&standin.url(), &pg, "b"), fast())
        .await
        .unwrap();
    a.wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();

    a.execute(
        "INSERT INTO todos(id, description, done) VALUES ('a1', 'written by a', 0)",
        [],
    )
    .await
    .unwrap();
    let rows = converge(&pgc, &[&a, &b]).await;
    assert_eq!(rows["a1"], ("written by a".to_string(), Some(0)));
    // A's row is no longer only local: it came back through the sync stream (the oplog holds
    // it), which the core applies only once the write checkpoint covering the upload arrived.
    testkit::eventually_async(
        "a1 to come back through sync (a ps_oplog row)",
        Duration::from_secs(20),
        || async {
            let synced: Vec<i64> = a
                .query(
                    "SELECT count(*) FROM ps_oplog WHERE row_id = 'a1'",
                    [],
                    |r| r.get(0),
                )
                .await
                .unwrap();
            synced[0] > 0
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    a.close().await.unwrap();
    b.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_connect_in_a_loop_while_everyone_writes_loses_nothing() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let core = common::default_core();
    let (_a_dir, a) = open_client(core).await;
    let (_b_dir, b) = open_client(core).await;
    let conn_a = PgConnector::new(&standin.url(), &pg, "a");
    let conn_b = PgConnector::new(&standin.url(), &pg, "b");
    a.connect(conn_a.clone(), fast()).await.unwrap();
    b.connect(conn_b.clone(), fast()).await.unwrap();
    for round in 0..8 {
        a.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'a')",
            [format!("a{round}")],
        )
        .await
        .unwrap();
        b.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'b')",
            [format!("b{round}")],
        )
        .await
        .unwrap();
        if round > 0 {
            a.execute(
                "UPDATE todos SET done = ?1 WHERE id = ?2",
                (round, format!("a{}", round - 1)),
            )
            .await
            .unwrap();
        }
        pgc.execute(
            "INSERT INTO todos (id, description) VALUES ($1, 'pg')",
            &[&format!("pg{round}")],
        )
        .await
        .unwrap();
        if round % 2 == 0 {
            a.disconnect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..100))).await;
            a.connect(conn_a.clone(), fast()).await.unwrap();
        } else {
            b.disconnect().await.unwrap();
            b.execute(
                "UPDATE todos SET done = 100 WHERE id = ?1",
                [format!("b{round}")],
            )
            .await
            .unwrap();
            b.connect(conn_b.clone(), fast()).await.unwrap();
        }
    }
    let rows = converge(&pgc, &[&a, &b]).await;
    assert_eq!(rows.len(), 24, "8 rounds x 3 writers: {rows:?}");
    assert_eq!(rows["a6"].1, Some(7));
    assert_eq!(rows["b7"].1, Some(100));
    a.close().await.unwrap();
    b.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_the_service_restarts_mid_stream() {
    let (pg, pgc) = postgres().await;
    let config = standin_config(&pg);
    let standin = StandIn::start(config.clone()).await.unwrap();
    let addr = standin.addr();
    let core = common::default_core();
    let (_dir, a) = open_client(core).await;
    a.connect(PgConnector::new(&standin.url(), &pg, "a"), fast())
        .await
        .unwrap();
    a.wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('before', 'x')",
        &[],
    )
    .await
    .unwrap();
    converge(&pgc, &[&a]).await;

    standin.shutdown().await;
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('while-down', 'x')",
        &[],
    )
    .await
    .unwrap();
    a.execute(
        "INSERT INTO todos(id, description) VALUES ('local-while-down', 'y')",
        [],
    )
    .await
    .unwrap();
    let mut restarted = config.clone();
    restarted.listen = addr;
    let standin = StandIn::start(restarted).await.unwrap();
    let rows = converge(&pgc, &[&a]).await;
    assert!(
        rows.contains_key("while-down") && rows.contains_key("local-while-down"),
        "{rows:?}"
    );
    a.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_and_sync_continues() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let core = common::default_core();
    let (_dir, a) = open_client(core).await;
    let mut connector = PgConnector::new(&standin.url(), &pg, "a");
    connector.token_lifetime = 4;
    let fetches = connector.fetches.clone();
    a.connect(connector, fast()).await.unwrap();
    a.wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    // Wait for the refresh itself, not for a fixed time.
    testkit::eventually_async(
        "credentials to be fetched again",
        Duration::from_secs(30),
        || async { fetches.load(Ordering::SeqCst) >= 2 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('after-expiry', 'x')",
        &[],
    )
    .await
    .unwrap();
    converge(&pgc, &[&a]).await;
    assert!(
        fetches.load(Ordering::SeqCst) >= 2,
        "credentials were fetched again"
    );
    a.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_sync_works_with_every_core_from_0_4_6_and_older_cores_get_a_typed_error() {
    let (pg, pgc) = postgres().await;
    pgc.batch_execute("INSERT INTO todos VALUES ('seed', 'x', 1)")
        .await
        .unwrap();
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    for core in common::cores() {
        let (_dir, db) = open_client(core).await;
        let connector = PgConnector::new(&standin.url(), &pg, "v");
        if !core.version().at_least(0, 4, 6) {
            let err = db.connect(connector.clone(), fast()).await.unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedByCore { needs: "0.4.6", .. }),
                "{err:?}"
            );
            // Upload-only still works with old cores.
            db.connect(connector, SyncOptions::upload_only())
                .await
                .unwrap();
            db.execute(
                "INSERT INTO todos(id, description) VALUES (?1, 'old core')",
                [format!("up-{}", core.version().semver())],
            )
            .await
            .unwrap();
        } else {
            db.connect(connector, fast()).await.unwrap();
            db.wait_for_first_sync(Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("core {}: {e}", core.version()));
            db.execute(
                "INSERT INTO todos(id, description) VALUES (?1, 'new core')",
                [format!("up-{}", core.version().semver())],
            )
            .await
            .unwrap();
        }
        testkit::eventually_async(
            format!("core {}: the upload queue to drain", core.version()),
            Duration::from_secs(30),
            || async { db.upload_queue_stats().await.unwrap().count == 0 },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        if core.version().at_least(0, 4, 6) {
            let rows = converge(&pgc, &[&db]).await;
            assert!(rows.contains_key("seed"), "core {}", core.version());
        }
        db.close().await.unwrap();
    }
    let rows = pg_rows(&pgc).await;
    assert_eq!(
        rows.len(),
        1 + common::cores().len(),
        "every core uploaded: {rows:?}"
    );
    standin.shutdown().await;
}
