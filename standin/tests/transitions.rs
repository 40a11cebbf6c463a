//! Checkpoints that do not simply complete, followed by the real core: compaction (MOVE and
//! CLEAR ops, persisted) against real PostgreSQL, and supersession and compaction
//! invalidation mid-download, driven deterministically through one stream task whose
//! consumer (this test) sets the pace.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use serde_json::Value;
use standin::StandIn;
use standin::checksum::{put_checksum, remove_checksum, subkey};
use standin::store::{Definition, Op, OpKind, Store};
use standin::stream::StreamContext;
use tokio::sync::{mpsc, watch};

/// Syncs a fresh core client to `want`; returns every line it read.
async fn fresh_client_sync(url: &str, want: &BTreeMap<String, (i64, i64)>) -> Vec<Value> {
    let mut client = CoreClient::open();
    let request = client.start();
    let response = open_stream(url, &token("u2"), &request).await;
    client.control("connection", Some("established"));
    let mut lines = Lines::new(response);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while &client.rows() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            client.rows()
        );
        let raw = lines.next_raw(Duration::from_secs(20)).await.unwrap();
        client.control("line_text", Some(&raw));
        seen.push(serde_json::from_str(&raw).unwrap());
    }
    seen
}

fn op_kinds(lines: &[Value]) -> Vec<String> {
    ops(lines)
        .iter()
        .map(|o| o["op"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn clients_follow_a_persisted_compaction() {
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, 0 FROM generate_series(1, 10) g"
    ))
    .await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut a = CoreClient::open();
    let mut lines = connect(&mut a, &standin.url(), &token("u1")).await;
    // A row that stays: the ops before it fold into a CLEAR, the superseded ones after it
    // become MOVEs.
    db.batch_execute("INSERT INTO lww VALUES ('keep', 100, 0)")
        .await
        .unwrap();
    for round in 1..=3 {
        db.batch_execute(&format!("UPDATE lww SET v = {round} WHERE id <> 'keep'"))
            .await
            .unwrap();
    }
    db.batch_execute("DELETE FROM lww WHERE k <= 5")
        .await
        .unwrap();
    let want = table_rows(&db).await;
    feed_until(&mut a, &mut lines, |_| {}, |c| c.rows() == want).await;

    let stats = standin.compact().await.unwrap();
    assert!(stats.moved > 0 && stats.cleared > 0, "{stats:?}");
    // More changes after the compaction; client A keeps following (CoreClient panics on a
    // checksum failure).
    db.batch_execute("UPDATE lww SET v = 100 WHERE k = 7; INSERT INTO lww VALUES ('n', 0, 0)")
        .await
        .unwrap();
    let want = table_rows(&db).await;
    feed_until(&mut a, &mut lines, |_| {}, |c| c.rows() == want).await;
    drop(lines);

    // A new client downloads the compacted log.
    let seen = fresh_client_sync(&standin.url(), &want).await;
    let kinds = op_kinds(&seen);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("CLEAR"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "MOVE"), "{kinds:?}");
    let clear = ops(&seen)[0].clone();
    assert!(clear.get("object_id").is_none() && clear.get("data").is_none());
    standin.shutdown().await;

    // Persisted: the op log holds the MOVE and CLEAR ops, and after a restart the compacted
    // log is served again.
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE op = 'MOVE'), count(*) FILTER (WHERE op = 'CLEAR') \
             FROM powersync_standin.ops",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) > 0 && row.get::<_, i64>(1) == 1);
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let seen = fresh_client_sync(&standin.url(), &want).await;
    assert_eq!(op_kinds(&seen).first().map(String::as_str), Some("CLEAR"));
    standin.shutdown().await;
}

const BUCKET: &str = "1#global[]";

fn put(op_id: u64, id: &str, v: i64) -> Op {
    let data = format!("{{\"id\":\"{id}\",\"k\":1,\"v\":{v}}}");
    Op {
        op_id,
        bucket: BUCKET.into(),
        kind: OpKind::Put,
        object_type: "lww".into(),
        object_id: id.into(),
        checksum: put_checksum("lww", id, &data),
        data: Some(data),
        target_op: None,
    }
}

fn remove(op_id: u64, id: &str) -> Op {
    Op {
        op_id,
        bucket: BUCKET.into(),
        kind: OpKind::Remove,
        object_type: "lww".into(),
        object_id: id.into(),
        data: None,
        checksum: remove_checksum(&subkey("lww", id)),
        target_op: None,
    }
}

/// A store with one bucket and a stream task over it whose lines go through a channel of
/// one line: the stream is never more than a line or two ahead of the test.
struct Paced {
    store: Arc<Store>,
    rx: mpsc::Receiver<standin::stream::Line>,
    _stop: (watch::Sender<bool>, watch::Sender<u64>),
}

impl Paced {
    fn start(initial: Vec<Op>, checkpoint: u64) -> Self {
        let store = Arc::new(Store::new());
        store.set_definitions(
            1,
            vec![Definition {
                name: "global".into(),
                prefix: "global".into(),
                priority: 3,
                global: true,
            }],
        );
        store.apply(initial, checkpoint, 1);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (disconnect, disconnect_rx) = watch::channel(0);
        let rules = standin::SyncRules::parse(LWW_RULES).unwrap();
        let ctx = StreamContext {
            store: store.clone(),
            rules: Arc::new(rules),
            claims: serde_json::json!({"sub": "u"}),
            parameters: serde_json::json!({}),
            streams: standin::rules::StreamsRequest::defaults(),
            max_buckets: standin::stream::MAX_BUCKETS,
            user_key: "u".into(),
            positions: Default::default(),
            exp: testkit::keys::now_secs() + 300,
            keepalive: Duration::from_secs(60),
            expire_warning: Duration::from_secs(20),
            chunk_ops: 1000,
            bson: false,
            shutdown: shutdown_rx,
            disconnect: disconnect_rx,
        };
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(ctx.run(tx));
        Paced {
            store,
            rx,
            _stop: (shutdown, disconnect),
        }
    }

    async fn line(&mut self) -> String {
        let bytes = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("a line")
            .expect("stream open")
            .expect("stream not failed");
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .trim_end()
            .to_owned()
    }
}

/// Feeds paced lines to the core until a `checkpoint_complete`; returns the lines.
async fn feed_until_complete(paced: &mut Paced, client: &mut CoreClient) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let raw = paced.line().await;
        client.control("line_text", Some(&raw));
        let line: Value = serde_json::from_str(&raw).unwrap();
        let done = line.get("checkpoint_complete").is_some();
        seen.push(line);
        if done {
            return seen;
        }
    }
}

fn key(line: &Value) -> &str {
    line.as_object()
        .and_then(|o| o.keys().next())
        .map(String::as_str)
        .unwrap_or("")
}

#[tokio::test]
async fn a_newer_checkpoint_supersedes_one_after_1000_ops() {
    // Checkpoint 5000: 5000 rows, sent in chunks of 1000.
    let initial: Vec<Op> = (1..=5000).map(|i| put(i, &format!("r{i}"), 0)).collect();
    let mut paced = Paced::start(initial, 5000);
    let mut client = CoreClient::open();
    client.start();
    client.control("connection", Some("established"));
    let first = paced.line().await;
    assert_eq!(key(&serde_json::from_str(&first).unwrap()), "checkpoint");
    client.control("line_text", Some(&first));
    let chunk = paced.line().await;
    client.control("line_text", Some(&chunk));
    // 1000 ops were sent; now a newer checkpoint: r1 changes, r2 is removed.
    paced
        .store
        .apply(vec![put(5001, "r1", 7), remove(5002, "r2")], 5002, 2);
    let seen = feed_until_complete(&mut paced, &mut client).await;
    let keys: Vec<&str> = seen.iter().map(key).collect();
    let diff_at = keys
        .iter()
        .position(|k| *k == "checkpoint_diff")
        .expect("a checkpoint_diff mid-download");
    assert!(
        keys[..diff_at].iter().all(|k| *k == "data"),
        "no complete for the superseded checkpoint: {keys:?}"
    );
    assert!(
        diff_at < 4,
        "superseded before its data was all sent: {keys:?}"
    );
    assert_eq!(
        seen.last().unwrap()["checkpoint_complete"]["last_op_id"],
        "5002"
    );
    let rows = client.rows();
    assert_eq!(rows.len(), 4999);
    assert_eq!(rows["r1"], (1, 7));
    assert!(!rows.contains_key("r2"));
}

#[tokio::test]
async fn a_compacted_op_beyond_the_checkpoint_invalidates_it() {
    // Checkpoint 3000; then 3000 updates supersede every row (checkpoint 6000), compacted
    // while the stream is still sending checkpoint 3000.
    let initial: Vec<Op> = (1..=3000).map(|i| put(i, &format!("r{i}"), 0)).collect();
    let mut paced = Paced::start(initial, 3000);
    let mut client = CoreClient::open();
    client.start();
    client.control("connection", Some("established"));
    for _ in 0..2 {
        let raw = paced.line().await; // checkpoint, first chunk
        client.control("line_text", Some(&raw));
    }
    let updates: Vec<Op> = (1..=3000)
        .map(|i| put(3000 + i, &format!("r{i}"), 1))
        .collect();
    paced.store.apply(updates, 6000, 2);
    let log = paced.store.ops_through(BUCKET, 6000);
    let (compacted, stats) = standin::compact::compact_bucket(&log);
    assert_eq!(stats.moved, 3000);
    paced.store.replace_through(BUCKET, 6000, compacted);
    let seen = feed_until_complete(&mut paced, &mut client).await;
    let completes: Vec<&Value> = seen
        .iter()
        .filter_map(|l| l.get("checkpoint_complete"))
        .collect();
    assert_eq!(completes.len(), 1, "only the newer checkpoint completes");
    assert_eq!(completes[0]["last_op_id"], "6000");
    assert!(
        seen.iter().any(|l| l.get("checkpoint_diff").is_some()),
        "the invalidated checkpoint is followed by a diff"
    );
    let rows = client.rows();
    assert_eq!(rows.len(), 3000);
    assert!(rows.values().all(|&(_, v)| v == 1), "the newest values");
}

#[tokio::test]
async fn compaction_runs_on_its_interval() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let mut config = config(&pg, LWW_RULES);
    config.compact_interval = Some(Duration::from_millis(200));
    let standin = StandIn::start(config).await.unwrap();
    db.batch_execute("UPDATE lww SET v = 2; UPDATE lww SET v = 3")
        .await
        .unwrap();
    testkit::eventually_async(
        "a compaction (one CLEAR op)",
        Duration::from_secs(30),
        || async {
            let cleared: i64 = db
                .query_one(
                    "SELECT count(*) FROM powersync_standin.ops WHERE op = 'CLEAR'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            cleared == 1
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let want = table_rows(&db).await;
    let seen = fresh_client_sync(&standin.url(), &want).await;
    assert_eq!(op_kinds(&seen), ["CLEAR", "PUT"]);
    standin.shutdown().await;
}
