//! What the service sends that the friendly path never shows, through the real core: BSON
//! framing (negotiated from `Accept`, fed to `line_binary`), priority groups with
//! `partial_checkpoint_complete`, and token expiry in the middle of a download.

mod common;

use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use serde_json::Value;
use standin::StandIn;
use testkit::TestKey;

#[tokio::test]
async fn bson_when_preferred_ndjson_otherwise_and_the_core_applies_bson() {
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, g * 7 FROM generate_series(1, 30) g"
    ))
    .await;
    let high = (1..=30)
        .filter(|g| {
            standin::checksum::put_checksum(
                "lww",
                &format!("r{g}"),
                &format!("{{\"id\":\"r{g}\",\"k\":{g},\"v\":{}}}", g * 7),
            ) >= 1 << 31
        })
        .count();
    assert!(high > 0, "some op checksums are sent as BSON doubles");
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let mut client = CoreClient::open();
    let request = client.start();
    let response = open_stream_accepting(&url, &token("u1"), &request, SDK_ACCEPT).await;
    client.control("connection", Some("established"));
    let mut docs = Lines::new_bson(response);
    let want = table_rows(&db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.rows() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            client.rows()
        );
        let doc = docs.next_document(Duration::from_secs(20)).await.unwrap();
        let out = client.control_binary(&doc);
        assert!(
            !out.iter().any(|i| i.get("CloseSyncStream").is_some()),
            "core closed the stream: {out:?}"
        );
    }
    // A change and a write checkpoint (BSON null before, a string after) also apply.
    db.batch_execute("UPDATE lww SET v = -1 WHERE id = 'r3'")
        .await
        .unwrap();
    let want = table_rows(&db).await;
    while client.rows() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            client.rows()
        );
        let doc = docs.next_document(Duration::from_secs(20)).await.unwrap();
        client.control_binary(&doc);
    }
    drop(docs);
    for (accept, bson) in [
        ("application/x-ndjson", false),
        (
            "application/vnd.powersync.bson-stream;q=0.5, application/x-ndjson",
            false,
        ),
        ("*/*", false),
        ("application/vnd.powersync.bson-stream", true),
    ] {
        let response = open_stream_accepting(&url, &token("u1"), &request, accept).await;
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            content_type.contains("bson"),
            bson,
            "{accept}: {content_type}"
        );
    }
    assert_eq!(standin.streams_served(), (3, 2));
    standin.shutdown().await;
}

const PRIORITY_RULES: &str = "bucket_definitions:\n  urgent:\n    priority: 0\n    data:\n      \
     - SELECT * FROM alerts\n  global:\n    data:\n      - SELECT * FROM lww\n";

#[tokio::test]
async fn buckets_are_sent_by_priority_with_partial_completes() {
    let (pg, db) = postgres(&format!(
        "{LWW}; CREATE TABLE alerts (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL);
         INSERT INTO lww VALUES ('a', 1, 1); INSERT INTO alerts VALUES ('x', 2, 2)"
    ))
    .await;
    let standin = StandIn::start(config(&pg, PRIORITY_RULES)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &serde_json::json!({})).await);
    let first = lines.until_complete().await;
    let keys: Vec<String> = first
        .iter()
        .map(|l| l.as_object().unwrap().keys().next().unwrap().clone())
        .collect();
    assert_eq!(
        keys,
        [
            "checkpoint",
            "data",
            "partial_checkpoint_complete",
            "data",
            "checkpoint_complete"
        ]
    );
    assert_eq!(bucket(&first[0], "1#urgent[]").unwrap()["priority"], 0);
    assert_eq!(bucket(&first[0], "1#global[]").unwrap()["priority"], 3);
    assert_eq!(first[1]["data"]["bucket"], "1#urgent[]");
    assert_eq!(first[2]["partial_checkpoint_complete"]["priority"], 0);
    assert_eq!(
        first[2]["partial_checkpoint_complete"]["last_op_id"],
        first[4]["checkpoint_complete"]["last_op_id"]
    );
    // A change in the priority-0 bucket only: it is the lowest group, so no partial line.
    db.batch_execute("INSERT INTO alerts VALUES ('y', 3, 3)")
        .await
        .unwrap();
    let next = lines.until_complete().await;
    assert!(
        next.iter()
            .all(|l| l.get("partial_checkpoint_complete").is_none()),
        "{next:?}"
    );
    drop(lines);

    // The core applies the partial checkpoint while a local change is pending.
    let mut client = CoreClient::open();
    client.conn.execute_batch(
        "BEGIN; SELECT powersync_replace_schema('{\"tables\":[{\"name\":\"lww\",\"columns\":[{\"name\":\"k\",\"type\":\"INTEGER\"},{\"name\":\"v\",\"type\":\"INTEGER\"}]},{\"name\":\"alerts\",\"columns\":[{\"name\":\"k\",\"type\":\"INTEGER\"},{\"name\":\"v\",\"type\":\"INTEGER\"}]}]}'); COMMIT",
    ).unwrap();
    client
        .conn
        .execute("INSERT INTO lww (id, k, v) VALUES ('mine', 9, 9)", [])
        .unwrap();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    feed_until(
        &mut client,
        &mut lines,
        |_| {},
        |c| {
            c.instructions
                .iter()
                .any(|i| i["UpdateSyncStatus"]["status"]["priority_status"][0]["priority"] == 0)
        },
    )
    .await;
    let alerts: i64 = client
        .conn
        .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(alerts, 2, "priority 0 applied over pending CRUD");
    assert_eq!(
        client.rows().keys().collect::<Vec<_>>(),
        ["mine"],
        "priority 3 waits"
    );
    drop(lines);
    standin.shutdown().await;
}

#[tokio::test]
async fn keepalives_and_expiry_reach_a_download_in_progress() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let mut config = config(&pg, LWW_RULES);
    config.keepalive_interval = Duration::from_millis(300);
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let short = TestKey::primary().token("u1", 4).unwrap();
    let mut lines = connect(&mut client, &standin.url(), &short).await;
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    // A download that cannot complete: its persist waits for this lock.
    let locker = pg.client().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE powersync_standin.ops IN EXCLUSIVE MODE")
        .await
        .unwrap();
    db.batch_execute("INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    let mut after_data: Vec<Value> = Vec::new();
    let mut data_seen = false;
    let mut closed = false;
    while let Some(raw) = lines.next_raw(Duration::from_secs(20)).await {
        if !closed {
            let out = client.control("line_text", Some(&raw));
            closed = out.iter().any(|i| i.get("CloseSyncStream").is_some());
        }
        let line: Value = serde_json::from_str(&raw).unwrap();
        if data_seen {
            after_data.push(line.clone());
        }
        data_seen |= line.get("data").is_some();
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert!(data_seen, "the download started");
    assert!(
        after_data
            .iter()
            .any(|l| l["token_expires_in"].as_i64() > Some(0)),
        "keepalives mid-download: {after_data:?}"
    );
    assert_eq!(
        after_data.last().unwrap()["token_expires_in"],
        0,
        "the stream ends at expiry: {after_data:?}"
    );
    assert!(
        after_data
            .iter()
            .all(|l| l.get("checkpoint_complete").is_none())
    );
    assert!(closed, "the core closed the iteration at expiry");
    standin.shutdown().await;
}
