//! Supersession and compaction invalidation mid-download against real PostgreSQL: the
//! stand-in replicates a real database, its stream task (`StandIn::paced_stream`, the task a
//! `/sync/stream` response runs, through a channel of one line) is held after a given line
//! until a newer checkpoint committed in PostgreSQL is durable in the stand-in, and the real
//! core (`powersync_control`) follows the lines to the rows PostgreSQL holds.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use serde_json::Value;
use standin::StandIn;
use tokio::sync::mpsc;

async fn line(rx: &mut mpsc::Receiver<standin::stream::Line>) -> Value {
    let bytes = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a line within 60 s")
        .expect("stream open")
        .expect("stream not failed");
    serde_json::from_slice(&bytes).unwrap()
}

fn key(line: &Value) -> &str {
    line.as_object()
        .and_then(|o| o.keys().next())
        .map(String::as_str)
        .unwrap_or("")
}

fn feed(client: &mut CoreClient, line: &Value) {
    client.control("line_text", Some(&line.to_string()));
}

/// Feeds lines to the core until a `checkpoint_complete` for `checkpoint`; returns them.
async fn feed_until_complete_of(
    rx: &mut mpsc::Receiver<standin::stream::Line>,
    client: &mut CoreClient,
    checkpoint: u64,
) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let next = line(rx).await;
        feed(client, &next);
        let done = next["checkpoint_complete"]["last_op_id"].as_str()
            == Some(checkpoint.to_string().as_str());
        seen.push(next);
        if done {
            return seen;
        }
    }
}

/// Waits (condition, not time) until the stand-in's durable checkpoint passes `after`.
async fn durable_after(standin: &StandIn, after: u64) -> u64 {
    testkit::eventually::eventually_async(
        format!("a durable checkpoint after {after}"),
        Duration::from_secs(60),
        || async { Some(standin.checkpoint()).filter(|&c| c > after) },
    )
    .await
    .unwrap()
}

/// The keys of the lines other than keepalives.
fn keys(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(key)
        .filter(|k| *k != "token_expires_in")
        .collect()
}

#[tokio::test]
async fn a_checkpoint_committed_in_postgres_supersedes_a_download_after_1000_ops() {
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, 0 FROM generate_series(1, 5000) g"
    ))
    .await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let first = standin.checkpoint();
    let mut rx = standin.paced_stream("u1/c1", HashMap::new(), testkit::keys::now_secs() + 600);
    let mut client = CoreClient::open();
    client.start();
    client.control("connection", Some("established"));
    let checkpoint = line(&mut rx).await;
    assert_eq!(
        checkpoint["checkpoint"]["last_op_id"],
        first.to_string(),
        "{checkpoint}"
    );
    feed(&mut client, &checkpoint);
    let chunk = line(&mut rx).await;
    assert_eq!(chunk["data"]["data"].as_array().map(Vec::len), Some(1000));
    feed(&mut client, &chunk);

    // 1000 ops of the 5000 were read; the stream task is at most two lines ahead (one in the
    // channel, one waiting to be sent). A newer checkpoint is committed in PostgreSQL and
    // replicated before the reader goes on.
    db.batch_execute("UPDATE lww SET v = 7 WHERE id = 'r1'; DELETE FROM lww WHERE id = 'r2'")
        .await
        .unwrap();
    let newer = durable_after(&standin, first).await;
    let seen = feed_until_complete_of(&mut rx, &mut client, newer).await;
    let keys = keys(&seen);
    let diff_at = keys
        .iter()
        .position(|k| *k == "checkpoint_diff")
        .unwrap_or_else(|| panic!("no checkpoint_diff mid-download: {keys:?}"));
    assert!(
        keys[..diff_at].iter().all(|k| *k == "data"),
        "the superseded checkpoint must not complete: {keys:?}"
    );
    assert!(
        diff_at <= 2,
        "superseded before the rest of its 5000 ops was sent: {keys:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|l| l.get("checkpoint_complete").is_some())
            .count(),
        1,
        "{keys:?}"
    );
    assert_eq!(client.rows(), table_rows(&db).await);
    drop(rx);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_compaction_in_postgres_invalidates_the_checkpoint_being_sent() {
    // 500 rows in chunks of 100: the whole checkpoint is under the 1000 ops after which a
    // newer checkpoint would supersede it, so only the compaction can abandon it.
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, 0 FROM generate_series(1, 500) g"
    ))
    .await;
    let mut config = config(&pg, LWW_RULES);
    config.data_chunk_ops = 100;
    let standin = StandIn::start(config).await.unwrap();
    let first = standin.checkpoint();
    let mut rx = standin.paced_stream("u1/c1", HashMap::new(), testkit::keys::now_secs() + 600);
    let mut client = CoreClient::open();
    client.start();
    client.control("connection", Some("established"));
    let checkpoint = line(&mut rx).await;
    assert_eq!(checkpoint["checkpoint"]["last_op_id"], first.to_string());
    feed(&mut client, &checkpoint);

    // The task holds at most the first two chunks. Every row is updated in PostgreSQL and
    // the stand-in compacts: the ops the later chunks of `first` hold become MOVE/CLEAR ops
    // whose target lies beyond `first`.
    db.batch_execute("UPDATE lww SET v = 1").await.unwrap();
    let newer = durable_after(&standin, first).await;
    let stats = standin.compact().await.unwrap();
    assert!(stats.moved + stats.cleared > 0, "{stats:?}");
    let seen = feed_until_complete_of(&mut rx, &mut client, newer).await;
    let keys = keys(&seen);
    assert!(keys.contains(&"checkpoint_diff"), "{keys:?}");
    let completes: Vec<&Value> = seen
        .iter()
        .filter_map(|l| l.get("checkpoint_complete"))
        .collect();
    assert_eq!(
        completes.len(),
        1,
        "the invalidated checkpoint must not complete: {keys:?}"
    );
    assert!(
        seen.iter()
            .flat_map(|l| l["data"]["data"].as_array().cloned().unwrap_or_default())
            .any(|op| op["op"] == "MOVE" || op["op"] == "CLEAR"),
        "the download met the compaction: {keys:?}"
    );
    assert_eq!(client.rows(), table_rows(&db).await);
    drop(rx);
    standin.shutdown().await;
}
