//! The stand-in's durability rules, driven through the real core against real PostgreSQL:
//!
//! - `checkpoint_complete` only for durable checkpoints (a persist blocked by a lock, then
//!   failed by killing its backend);
//! - an ambiguous commit (PostgreSQL committed, the reply was lost: a proxy swallows the
//!   `COMMIT` reply) reloads the committed ops into the store;
//! - a new snapshot (slot lost, sync rules changed) gets new bucket ids, so clients switch
//!   over without a checksum failure.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use serde_json::Value;
use standin::StandIn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `query` (one boolean) until it is true.
async fn wait_for_sql(db: &tokio_postgres::Client, query: &str, what: &str) {
    let waited = testkit::eventually_async(what, Duration::from_secs(30), || async {
        db.query_one(query, &[]).await.unwrap().get::<_, bool>(0)
    })
    .await;
    if let Err(e) = waited {
        let activity: Vec<String> = db
            .query(
                "SELECT coalesce(wait_event_type, '') || ' ' || state || ' ' || query \
                 FROM pg_stat_activity WHERE backend_type = 'client backend'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        panic!("{e}; sessions: {activity:#?}");
    }
}

const LOCK_WAITER: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
     WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid())";

/// Feeds lines to the core until the first keepalive after the data line that holds `id`;
/// returns every line read. Panics if the stream ends first.
async fn feed_past_data_of(client: &mut CoreClient, lines: &mut Lines, id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut data_seen = false;
    loop {
        let raw = lines
            .next_raw(Duration::from_secs(20))
            .await
            .expect("stream ended");
        client.control("line_text", Some(&raw));
        let line: Value = serde_json::from_str(&raw).unwrap();
        let keepalive = line.get("token_expires_in").is_some();
        if ops(std::slice::from_ref(&line))
            .iter()
            .any(|op| op["object_id"] == id)
        {
            data_seen = true;
        }
        seen.push(line);
        if data_seen && keepalive {
            return seen;
        }
    }
}

#[tokio::test]
async fn checkpoint_complete_waits_until_the_checkpoint_is_durable() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let mut config = config(&pg, LWW_RULES);
    config.keepalive_interval = Duration::from_millis(300);
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    let durable_before = standin.checkpoint();

    // Block the stand-in's persist: its COPY into the op log waits for this lock.
    let locker = pg.client().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE powersync_standin.ops IN EXCLUSIVE MODE")
        .await
        .unwrap();
    db.batch_execute("INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    // The staged data is streamed, but up to a keepalive after it nothing completes.
    let seen = feed_past_data_of(&mut client, &mut lines, "b").await;
    assert!(
        !seen.iter().any(|l| l.get("checkpoint_complete").is_some()),
        "checkpoint_complete for a checkpoint that is not durable: {seen:?}"
    );
    assert_eq!(standin.checkpoint(), durable_before, "persist is blocked");
    assert!(!client.rows().contains_key("b"), "nothing applied");

    // The persist fails (its backend is killed while it waits): the stand-in rolls back,
    // reconnects and replays the same transaction, which blocks on the lock again.
    // (Polled on another connection: pg_stat_activity is a snapshot inside a transaction.)
    wait_for_sql(&db, LOCK_WAITER, "the persist waits for the lock").await;
    db.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    wait_for_sql(&db, LOCK_WAITER, "the replayed persist waits again").await;
    let seen = loop {
        // Still nothing completes while the replay is blocked.
        let raw = lines.next_raw(Duration::from_secs(20)).await.unwrap();
        client.control("line_text", Some(&raw));
        let line: Value = serde_json::from_str(&raw).unwrap();
        if line.get("token_expires_in").is_some() {
            break line;
        }
        assert!(
            line.get("checkpoint_complete").is_none(),
            "complete while the replay is blocked: {line}"
        );
    };
    assert!(seen.get("token_expires_in").is_some());
    assert_eq!(standin.checkpoint(), durable_before);

    // Released: the replay commits, the checkpoint completes, the client matches PostgreSQL.
    locker.batch_execute("COMMIT").await.unwrap();
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    assert!(standin.checkpoint() > durable_before);
    drop(lines);
    standin.shutdown().await;
}

/// A TCP proxy to PostgreSQL that, once armed, swallows the next `CommandComplete` of a
/// `COMMIT` sent to the client and closes that connection: the transaction is committed,
/// but the client never learns it (an ambiguous commit).
struct CommitEater {
    port: u16,
    armed: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitEater {
    async fn start(pg_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (a, f) = (armed.clone(), fired.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (a, f) = (a.clone(), f.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", pg_port)).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    // Server to client, message by message: type byte + i32 length.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    'conn: loop {
                        while buf.len() >= 5 {
                            let len =
                                i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize + 1;
                            if buf.len() < len {
                                break;
                            }
                            let message: Vec<u8> = buf.drain(..len).collect();
                            if message[0] == b'C'
                                && message[5..].starts_with(b"COMMIT\0")
                                && a.swap(false, Ordering::SeqCst)
                            {
                                f.store(true, Ordering::SeqCst);
                                break 'conn;
                            }
                            if client_write.write_all(&message).await.is_err() {
                                break 'conn;
                            }
                        }
                        match server_read.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    upstream.abort();
                });
            }
        });
        CommitEater {
            port,
            armed,
            fired,
            task,
        }
    }
}

impl Drop for CommitEater {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn an_ambiguous_commit_reloads_the_committed_ops() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let proxy = CommitEater::start(pg.port()).await;
    let mut config = config(&pg, LWW_RULES);
    config.postgres_uri = pg
        .uri()
        .replace(&format!(":{}/", pg.port()), &format!(":{}/", proxy.port));
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;

    // The persist of this transaction commits, but its reply is lost.
    proxy.armed.store(true, Ordering::SeqCst);
    db.batch_execute("INSERT INTO lww VALUES ('x', 2, 2)")
        .await
        .unwrap();
    testkit::eventually_async(
        "the proxy to see the COMMIT",
        Duration::from_secs(30),
        || async { proxy.fired.load(Ordering::SeqCst) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let persisted: i64 = db
        .query_one("SELECT last_op_id FROM powersync_standin.state", &[])
        .await
        .unwrap()
        .get(0);
    // After the stand-in reconnects, a later change arrives; the client must then hold
    // both, with every checksum matching.
    db.batch_execute("INSERT INTO lww VALUES ('y', 3, 3)")
        .await
        .unwrap();
    feed_until(
        &mut client,
        &mut lines,
        |_| {},
        |c| c.rows().contains_key("y"),
    )
    .await;
    assert_eq!(
        client.rows(),
        table_rows(&db).await,
        "the client holds what PostgreSQL holds"
    );
    assert!(standin.checkpoint() > persisted as u64);
    drop(lines);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_new_snapshot_gets_new_bucket_ids() {
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, g FROM generate_series(1, 5) g"
    ))
    .await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    assert_eq!(standin.bucket("global"), "1#global[]");
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    drop(lines);
    standin.shutdown().await;

    // The slot is lost while the stand-in is down, and rows change meanwhile.
    db.batch_execute(
        "SELECT pg_drop_replication_slot('powersync_standin'); \
         UPDATE lww SET v = v + 100 WHERE id = 'r1'; DELETE FROM lww WHERE id = 'r2'",
    )
    .await
    .unwrap();
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    assert_eq!(standin.bucket("global"), "2#global[]");
    let request = client.start();
    assert_eq!(
        request["buckets"][0]["name"], "1#global[]",
        "the client asks for its old bucket: {request}"
    );
    let response = open_stream(&standin.url(), &token("u1"), &request).await;
    client.control("connection", Some("established"));
    let mut lines = Lines::new(response);
    // CoreClient panics on a checksum failure; the old bucket is dropped, the new one synced.
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    drop(lines);
    standin.shutdown().await;

    // Changed sync rules: a new snapshot with new ids, not a mix of two rule sets.
    let rules =
        "bucket_definitions:\n  global:\n    priority: 1\n    data:\n      - SELECT * FROM lww\n";
    let standin = StandIn::start(config(&pg, rules)).await.unwrap();
    assert_eq!(standin.bucket("global"), "3#global[]");
    let request = client.start();
    let response = open_stream(&standin.url(), &token("u1"), &request).await;
    client.control("connection", Some("established"));
    let mut lines = Lines::new(response);
    let first: Value = lines.next().await;
    assert_eq!(
        bucket(&first, "3#global[]").expect("new bucket")["priority"],
        1
    );
    client.control("line_text", Some(&first.to_string()));
    db.batch_execute("INSERT INTO lww VALUES ('z', 9, 9)")
        .await
        .unwrap();
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    drop(lines);
    standin.shutdown().await;
}
