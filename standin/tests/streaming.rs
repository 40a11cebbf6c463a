//! Streaming replication (`START_REPLICATION`, the default mode) against real PostgreSQL:
//!
//! - changes arrive without any poll: with a poll interval of an hour, a commit still reaches
//!   the client, the slot is held by a `walsender`, and no session peeks the slot;
//! - the flush position acknowledged to PostgreSQL never passes what is durable: the binary is
//!   SIGKILLed after it has received a transaction but before its persist could commit (held
//!   by a lock); the slot still holds that transaction, and the restarted stand-in delivers it
//!   once, with no op id lost or reused;
//! - polling (`replication: polling`) still works, as the fallback.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use standin::StandIn;
use standin::replication::ReplicationMode;
use testkit::{ChildGuard, TestKey};

/// Waits until the boolean `query` is true.
async fn until_sql(db: &tokio_postgres::Client, query: &str, what: &str) {
    testkit::eventually_async(what, Duration::from_secs(30), || async {
        db.query_one(query, &[]).await.unwrap().get::<_, bool>(0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The backend type of the session holding the stand-in's slot (none when inactive).
async fn slot_holder(db: &tokio_postgres::Client) -> Option<String> {
    db.query_opt(
        "SELECT a.backend_type FROM pg_replication_slots s \
         JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = 'powersync_standin'",
        &[],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

/// The number of other sessions matching `condition` (SQL over `pg_stat_activity`).
async fn other_sessions(db: &tokio_postgres::Client, condition: &str) -> i64 {
    db.query_one(
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE {condition} AND pid <> pg_backend_pid()"
        ),
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn commits_arrive_without_waiting_for_a_poll() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let mut config = config(&pg, LWW_RULES);
    assert_eq!(
        config.replication,
        ReplicationMode::Streaming,
        "the default"
    );
    // A poll now and then would never deliver within the test's time.
    config.poll_interval = Duration::from_secs(3600);
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    feed_until_table(&mut client, &mut lines, &db).await;

    for i in 0..3 {
        db.batch_execute(&format!("INSERT INTO lww VALUES ('s{i}', {i}, 0)"))
            .await
            .unwrap();
        feed_until_table(&mut client, &mut lines, &db).await;
    }
    assert_eq!(slot_holder(&db).await.as_deref(), Some("walsender"));
    let peeking = other_sessions(&db, "query ILIKE '%slot_peek%'").await;
    assert_eq!(peeking, 0, "no session peeks the slot");
    drop(lines);
    standin.shutdown().await;
    // The replication connection is closed on shutdown: the slot is free again.
    testkit::eventually_async(
        "the slot to be released",
        Duration::from_secs(30),
        || async { slot_holder(&db).await.is_none() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn polling_remains_available() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let mut config = config(&pg, LWW_RULES);
    config.replication = ReplicationMode::Polling;
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    db.batch_execute("INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    feed_until_table(&mut client, &mut lines, &db).await;
    // (A peek holds the slot while it runs, on an ordinary connection.)
    let walsenders = other_sessions(&db, "backend_type = 'walsender'").await;
    assert_eq!(walsenders, 0, "no replication connection");
    drop(lines);
    standin.shutdown().await;
}

/// The slot's confirmed flush position is at most `lsn`.
async fn confirmed_at_most(db: &tokio_postgres::Client, lsn: &str) -> bool {
    db.query_one(
        "SELECT confirmed_flush_lsn <= $1::text::pg_lsn FROM pg_replication_slots \
         WHERE slot_name = 'powersync_standin'",
        &[&lsn],
    )
    .await
    .unwrap()
    .get(0)
}

/// The `standin` binary on `config_path`, and its URL (first stdout line).
fn start_binary(config_path: &std::path::Path) -> (ChildGuard, String) {
    let mut child = ChildGuard::spawn(
        "standin",
        Command::new(env!("CARGO_BIN_EXE_standin"))
            .args(["--config".as_ref(), config_path.as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut first = String::new();
    BufReader::new(child.take_stdout().unwrap())
        .read_line(&mut first)
        .unwrap();
    match first.trim().strip_prefix("standin listening on ") {
        Some(url) => {
            let url = url.to_owned();
            (child, url)
        }
        None => panic!("the stand-in did not start: {first:?}"),
    }
}

#[tokio::test]
async fn the_acknowledged_position_never_passes_what_is_durable() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("standin.yaml");
    std::fs::write(dir.path().join("rules.yaml"), LWW_RULES).unwrap();
    std::fs::write(
        &config_path,
        format!(
            "port: 0\npostgres_uri: {}\nsync_rules:\n  path: rules.yaml\nclient_auth:\n  \
             jwks: {}\n  audience: [powersync-dev]\nreplication: streaming\n",
            pg.uri(),
            TestKey::primary().jwks()
        ),
    )
    .unwrap();
    let (mut child, url) = start_binary(&config_path);
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &url, &token("u1")).await;
    feed_until_table(&mut client, &mut lines, &db).await;
    drop(lines);

    // Hold the stand-in's persist: its COPY into the op log waits for this lock.
    let locker = lock_op_log(&pg).await;
    // `before`: the commit record of this transaction lies after it.
    db.batch_execute("BEGIN; INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    let before: String = db
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute("COMMIT").await.unwrap();
    // Received and being persisted: the persist waits for the lock.
    until_sql(
        &db,
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query ILIKE 'COPY%' AND pid <> pg_backend_pid())",
        "the persist of the new transaction to wait for the lock",
    )
    .await;
    assert!(
        confirmed_at_most(&db, &before).await,
        "the slot acknowledges a transaction that is not durable"
    );

    // Killed between receiving and persisting; the transaction stays in the slot.
    child.kill().unwrap();
    locker.batch_execute("COMMIT").await.unwrap();
    assert!(confirmed_at_most(&db, &before).await);
    db.batch_execute("INSERT INTO lww VALUES ('c', 3, 3)")
        .await
        .unwrap();

    let (_child, url) = start_binary(&config_path);
    let mut lines = connect(&mut client, &url, &token("u1")).await;
    let want = table_rows(&db).await;
    assert_eq!(want.len(), 3);
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    // One PUT per row, op ids 1..=3 without a gap: nothing lost, nothing stored twice.
    let ops: Vec<(i64, String)> = db
        .query(
            "SELECT op_id, object_id FROM powersync_standin.ops ORDER BY op_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        ops,
        [
            (1, "a".to_owned()),
            (2, "b".to_owned()),
            (3, "c".to_owned())
        ]
    );
    drop(lines);
}
