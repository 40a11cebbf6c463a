//! Row data as the service maps it (arrays as JSON, floats in exponent form, ±infinity and
//! BC timestamps, edition 2's `timestamps_iso8601`) against real PostgreSQL, with checksum
//! vectors computed independently from the service's formula by `fixtures/checksum-vectors.js`
//! (`node standin/tests/fixtures/checksum-vectors.js`; Node's crypto, as the service's
//! `hashData`). The first vector also matches the service-fidelity audit's Python value.

mod common;

use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use serde_json::Value;
use standin::StandIn;

const THINGS: &str = "CREATE TABLE things (id text PRIMARY KEY, tags text[], nums int4[], \
     big float8, tiny float8, d date, ts timestamptz, bc timestamptz); \
     INSERT INTO things VALUES ('a', '{a,\"b c\",NULL}', '{{1,2},{3,4}}', 1e21, 1.5e-7, \
     'infinity', 'infinity', '0044-03-15 12:00:00+00 BC')";

const LEGACY_DATA: &str = r#"{"id":"a","tags":"[\"a\",\"b c\",null]","nums":"[[1,2],[3,4]]","big":1e+21,"tiny":1.5e-7,"d":"9999-12-31","ts":"9999-12-31 23:59:59Z","bc":null}"#;
const LEGACY_CHECKSUM: u64 = 551811188;
const ISO_DATA: &str = r#"{"id":"a","tags":"[\"a\",\"b c\",null]","nums":"[[1,2],[3,4]]","big":1e+21,"tiny":1.5e-7,"d":"9999-12-31","ts":"9999-12-31T23:59:59.000000Z","bc":null}"#;
const ISO_CHECKSUM: u64 = 1395134690;

#[test]
fn the_audits_vector_matches() {
    let data = r#"{"id":"t1","description":"x","done":1,"score":1.5,"created_at":"2024-01-02 03:04:05.123456Z","meta":"{\"x\": 1}"}"#;
    assert_eq!(
        standin::checksum::put_checksum("todos", "t1", data),
        647017985
    );
}

async fn first_put(rules: &str) -> Value {
    let (pg, _db) = postgres(THINGS).await;
    let standin = StandIn::start(config(&pg, rules)).await.unwrap();
    // The core accepts the lines and their checksums.
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;
    let mut seen = Vec::new();
    loop {
        let raw = lines.next_raw(Duration::from_secs(20)).await.unwrap();
        client.control("line_text", Some(&raw));
        let line: Value = serde_json::from_str(&raw).unwrap();
        let done = line.get("checkpoint_complete").is_some();
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        client
            .instructions
            .iter()
            .any(|i| i.get("DidCompleteSync").is_some()),
        "the core applied the checkpoint"
    );
    drop(lines);
    standin.shutdown().await;
    ops(&seen).into_iter().next().expect("one op")
}

#[tokio::test]
async fn legacy_mapping_and_checksum() {
    let op =
        first_put("bucket_definitions:\n  g:\n    data:\n      - SELECT * FROM things\n").await;
    assert_eq!(op["data"], LEGACY_DATA);
    assert_eq!(op["checksum"], LEGACY_CHECKSUM);
}

#[tokio::test]
async fn edition_2_timestamps_and_checksum() {
    let op = first_put(
        "config:\n  edition: 2\nbucket_definitions:\n  g:\n    data:\n      - SELECT * FROM things\n",
    )
    .await;
    assert_eq!(op["data"], ISO_DATA);
    assert_eq!(op["checksum"], ISO_CHECKSUM);
}
