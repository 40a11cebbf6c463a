//! Protocol-level tests of the stand-in over a real PostgreSQL and real HTTP.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use standin::StandIn;
use testkit::{TestKey, TokenClaims, keys::now_secs};

const LWW_TABLE: &str =
    "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL)";

fn request(buckets: Value) -> Value {
    json!({"buckets": buckets, "include_checksum": true, "raw_data": true, "binary_data": true,
           "client_id": "client-1", "parameters": null,
           "streams": {"include_defaults": true, "subscriptions": []}})
}

#[tokio::test]
async fn snapshot_transactions_and_checksums_match_the_service() {
    let (pg, db) = postgres(&format!("{LWW_TABLE}; INSERT INTO lww VALUES ('a', 1, 2)")).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);

    // Initial snapshot: one PUT whose checksum is the service's test vector.
    let first = lines.until_complete().await;
    let cp = &first[0]["checkpoint"];
    assert_eq!(cp["last_op_id"], "1");
    assert!(cp.get("write_checkpoint").is_none());
    assert_eq!(
        bucket(&first[0], "1#global[]").unwrap(),
        &json!({"bucket": "1#global[]", "checksum": 213352229, "count": 1, "priority": 3,
                "subscriptions": [{"default": 0}]})
    );
    assert_eq!(
        cp["streams"],
        json!([{"name": "global", "is_default": true, "errors": []}])
    );
    assert_eq!(
        ops(&first),
        vec![
            json!({"op_id": "1", "op": "PUT", "object_type": "lww", "object_id": "a",
                    "subkey": "lww/a", "data": "{\"id\":\"a\",\"k\":1,\"v\":2}",
                    "checksum": 213352229u32})
        ]
    );
    assert_eq!(first[1]["data"]["after"], "0");
    assert_eq!(first[1]["data"]["next_after"], "1");
    assert_eq!(first[1]["data"]["has_more"], false);

    // One source transaction: update a, insert b, delete b again, then a second row c.
    db.batch_execute(
        "BEGIN; UPDATE lww SET v = 10 WHERE id = 'a'; INSERT INTO lww VALUES ('b', 5, 5); \
         DELETE FROM lww WHERE id = 'b'; INSERT INTO lww VALUES ('c', 3, 3); COMMIT",
    )
    .await
    .unwrap();
    let second = lines.until_complete().await;
    let diff = &second[0]["checkpoint_diff"];
    assert_eq!(
        diff["last_op_id"], "5",
        "the whole transaction in one checkpoint: {second:?}"
    );
    assert_eq!(diff["removed_buckets"], json!([]));
    let got: Vec<(String, String, String)> = ops(&second)
        .iter()
        .map(|o| {
            (
                o["op_id"].as_str().unwrap().to_owned(),
                o["op"].as_str().unwrap().to_owned(),
                o["object_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("2", "PUT", "a"),
        ("3", "PUT", "b"),
        ("4", "REMOVE", "b"),
        ("5", "PUT", "c"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
    let all = [ops(&first), ops(&second)].concat();
    assert_eq!(all[1]["checksum"], 658235363u32, "PUT a v=10 vector");
    let sum = all.iter().fold(0u32, |acc, o| {
        acc.wrapping_add(o["checksum"].as_u64().unwrap() as u32)
    });
    let announced = bucket(&second[0], "1#global[]").unwrap();
    assert_eq!(announced["checksum"].as_i64().unwrap() as i32 as u32, sum);
    assert_eq!(announced["count"], 5);

    // Delete a: the REMOVE checksum is the vector of delete.lww/a.
    db.batch_execute("DELETE FROM lww WHERE id = 'a'")
        .await
        .unwrap();
    let third = lines.until_complete().await;
    assert_eq!(ops(&third)[0]["checksum"], 726350553u32);
    assert_eq!(ops(&third)[0]["op"], "REMOVE");

    // TRUNCATE removes every remaining row.
    db.batch_execute("TRUNCATE lww").await.unwrap();
    let fourth = lines.until_complete().await;
    let removed = strs(&ops(&fourth), "object_id");
    assert_eq!(removed, ["c"]);

    // A client that reconnects with its position only gets newer ops.
    let mut again = Lines::new(
        open_stream(
            &standin.url(),
            &token("u1"),
            &request(json!([{"name": "1#global[]", "after": "5"}])),
        )
        .await,
    );
    let resumed = again.until_complete().await;
    let ids = strs(&ops(&resumed), "op_id");
    assert_eq!(ids, ["6", "7"]);
    standin.shutdown().await;
}

#[tokio::test]
async fn types_multiple_tables_and_chunking() {
    let (pg, db) = postgres(
        "CREATE TABLE items (id uuid PRIMARY KEY, n bigint, f double precision, ok boolean, \
         doc jsonb, price numeric, at timestamptz, raw bytea, note text);
         CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL);
         INSERT INTO lww SELECT 'r' || g, g, g FROM generate_series(1, 25) g;",
    )
    .await;
    let rules = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n      \
                 - SELECT * FROM items AS things\n  lww_only:\n    data:\n      - SELECT * FROM lww\n";
    let mut cfg = config(&pg, rules);
    cfg.data_chunk_ops = 10;
    let standin = StandIn::start(cfg).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    let first = lines.until_complete().await;
    // 25 rows in two buckets, chunks of at most 10 ops.
    assert_eq!(ops(&first).len(), 50);
    let chunks: Vec<(usize, bool)> = first
        .iter()
        .filter_map(|l| l.get("data"))
        .map(|d| {
            (
                d["data"].as_array().unwrap().len(),
                d["has_more"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chunks,
        [
            (10, true),
            (10, true),
            (5, false),
            (10, true),
            (10, true),
            (5, false)
        ]
    );

    db.batch_execute(
        "INSERT INTO items VALUES ('1b4e28ba-2fa1-11d2-883f-0016541e4c5a', 9007199254740993, 1.5, true, \
         '{\"a\": [1, 2]}', 12.50, '2024-01-02 03:04:05.25+00', '\\x0102', 'line\nbreak \"q\"')",
    )
    .await
    .unwrap();
    let second = lines.until_complete().await;
    let op = &ops(&second)[0];
    assert_eq!(op["object_type"], "things");
    assert_eq!(op["object_id"], "1b4e28ba-2fa1-11d2-883f-0016541e4c5a");
    assert_eq!(
        op["data"],
        "{\"id\":\"1b4e28ba-2fa1-11d2-883f-0016541e4c5a\",\"n\":9007199254740993,\"f\":1.5,\"ok\":1,\
         \"doc\":\"{\\\"a\\\": [1, 2]}\",\"price\":\"12.50\",\"at\":\"2024-01-02 03:04:05.25Z\",\
         \"note\":\"line\\nbreak \\\"q\\\"\"}"
    );
    assert!(
        bucket(&second[0], "lww_only[]").is_none(),
        "unchanged bucket not in the diff"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn primary_key_change_and_toasted_values() {
    let (pg, db) = postgres(
        "CREATE TABLE docs (id text PRIMARY KEY, body text, n int);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await;
    let rules = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM docs\n";
    let standin = StandIn::start(config(&pg, rules)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    lines.until_complete().await;
    let big = "x".repeat(10_000);
    db.execute("INSERT INTO docs VALUES ('a', $1, 1)", &[&big])
        .await
        .unwrap();
    lines.until_complete().await;
    // The body is TOASTed and unchanged: pgoutput sends it as 'u'; the stand-in fills it in.
    db.batch_execute("UPDATE docs SET n = 2 WHERE id = 'a'")
        .await
        .unwrap();
    let upd = ops(&lines.until_complete().await);
    let data: Value = serde_json::from_str(upd[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["body"].as_str().unwrap().len(), 10_000);
    assert_eq!(data["n"], 2);
    // A key change is a REMOVE of the old id and a PUT of the new one.
    db.batch_execute("UPDATE docs SET id = 'b' WHERE id = 'a'")
        .await
        .unwrap();
    let moved = ops(&lines.until_complete().await);
    let got: Vec<(&str, &str)> = moved
        .iter()
        .map(|o| (o["op"].as_str().unwrap(), o["object_id"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("REMOVE", "a"), ("PUT", "b")]);
    standin.shutdown().await;
}

#[tokio::test]
async fn op_ids_stay_monotonic_across_an_in_process_restart() {
    let (pg, db) = postgres(&format!("{LWW_TABLE}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    assert_eq!(standin.checkpoint(), 1);
    db.batch_execute("INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    let mut seen = lines.until_complete().await;
    while completed(&seen) < 2 {
        seen = lines.until_complete().await;
    }
    standin.shutdown().await;

    // Changes while the stand-in is down are not lost.
    db.batch_execute("INSERT INTO lww VALUES ('c', 3, 3); UPDATE lww SET v = 9 WHERE id = 'a'")
        .await
        .unwrap();
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    let mut all = lines.until_complete().await;
    while completed(&all) < 4 {
        all = lines.until_complete().await;
    }
    let full = Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await)
        .until_complete()
        .await;
    let ids = strs(&ops(&full), "op_id");
    assert_eq!(ids, ["1", "2", "3", "4"], "no op id reused, none lost");
    standin.shutdown().await;
}

#[tokio::test]
async fn write_checkpoints_follow_replication() {
    let (pg, db) = postgres(LWW_TABLE).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let mut lines = Lines::new(open_stream(&url, &token("u1"), &request(json!([]))).await);
    let first = lines.until_complete().await;
    assert!(first[0]["checkpoint"].get("write_checkpoint").is_none());

    let http = reqwest::Client::new();
    let get_wcp = |client_id: &str, sub: &str| {
        http.get(format!(
            "{url}/write-checkpoint2.json?client_id={client_id}"
        ))
        .header("Authorization", format!("Token {}", token(sub)))
        .send()
    };
    // An "uploaded" write, then a write checkpoint: the checkpoint that carries the write
    // checkpoint id must already contain the write.
    db.batch_execute("INSERT INTO lww VALUES ('up', 1, 1)")
        .await
        .unwrap();
    let resp = get_wcp("client-1", "u1").await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"data": {"write_checkpoint": "1"}}));
    let mut seen_ops = Vec::new();
    let carrying = loop {
        let batch = lines.until_complete().await;
        seen_ops.extend(ops(&batch));
        let header = batch[0].get("checkpoint_diff").expect("diff");
        if header.get("write_checkpoint").is_some() {
            break batch;
        }
    };
    assert_eq!(carrying[0]["checkpoint_diff"]["write_checkpoint"], "1");
    assert!(
        seen_ops.iter().any(|o| o["object_id"] == "up"),
        "write visible by then"
    );

    // Nothing changes in the data: a diff with only the new write checkpoint.
    let body: Value = get_wcp("client-1", "u1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["write_checkpoint"], "2");
    let only_wcp = lines.until_complete().await;
    assert_eq!(only_wcp[0]["checkpoint_diff"]["write_checkpoint"], "2");
    assert_eq!(only_wcp[0]["checkpoint_diff"]["updated_buckets"], json!([]));

    // Counters are per user and client.
    let body: Value = get_wcp("client-2", "u1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["write_checkpoint"], "1");
    let body: Value = get_wcp("client-1", "u2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["write_checkpoint"], "1");

    // Ids survive a restart of the stand-in.
    drop(lines);
    standin.shutdown().await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let body: Value = http
        .get(format!("{url}/write-checkpoint2.json?client_id=client-1"))
        .header("Authorization", format!("Token {}", token("u1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["write_checkpoint"], "3");
    standin.shutdown().await;
}

async fn expect_401(response: reqwest::Response, code: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["status"], 401);
    assert!(
        body["error"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn bad_tokens_get_401_with_the_service_error_body() {
    let (pg, _db) = postgres(LWW_TABLE).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let key = TestKey::primary();
    let now = now_secs();
    let signed = |claims: TokenClaims| key.sign(&claims).unwrap();
    let base = TokenClaims::new("u1", "powersync-dev", 300);
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "PSYNC_S2106"),
        (Some("Basic abc".into()), "PSYNC_S2106"),
        (Some("Token".into()), "PSYNC_S2106"),
        (Some("Token not.a.jwt".into()), "PSYNC_S2101"),
        // Same kid, different key: bad signature.
        (
            Some(format!(
                "Token {}",
                TestKey::other()
                    .with_kid("testkit-key-a")
                    .token("u1", 300)
                    .unwrap()
            )),
            "PSYNC_S2101",
        ),
        // Unknown kid.
        (
            Some(format!(
                "Token {}",
                TestKey::other().token("u1", 300).unwrap()
            )),
            "PSYNC_S2101",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    iat: Some(now - 600),
                    exp: Some(now - 300),
                    ..base.clone()
                })
            )),
            "PSYNC_S2103",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    exp: Some(now + 200_000),
                    ..base.clone()
                })
            )),
            "PSYNC_S2104",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    aud: Some(json!("someone-else")),
                    ..base.clone()
                })
            )),
            "PSYNC_S2105",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    aud: None,
                    ..base.clone()
                })
            )),
            "PSYNC_S2105",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    sub: None,
                    ..base.clone()
                })
            )),
            "PSYNC_S2101",
        ),
        (
            Some(format!(
                "Token {}",
                signed(TokenClaims {
                    exp: None,
                    ..base.clone()
                })
            )),
            "PSYNC_S2101",
        ),
    ];
    let http = reqwest::Client::new();
    for (auth, code) in &cases {
        let mut stream = http
            .post(format!("{url}/sync/stream"))
            .body(request(json!([])).to_string());
        let mut wcp = http.get(format!("{url}/write-checkpoint2.json?client_id=c"));
        if let Some(a) = auth {
            stream = stream.header("Authorization", a);
            wcp = wcp.header("Authorization", a);
        }
        expect_401(stream.send().await.unwrap(), code).await;
        expect_401(wcp.send().await.unwrap(), code).await;
    }
    // Control: the valid token and an array audience are accepted; Bearer works too.
    let ok = signed(TokenClaims {
        aud: Some(json!(["x", "powersync"])),
        ..base.clone()
    });
    let resp = http
        .get(format!("{url}/write-checkpoint2.json?client_id=c"))
        .header("Authorization", format!("Bearer {ok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    standin.shutdown().await;
}

#[tokio::test]
async fn probes_unknown_routes_bad_bodies_and_token_expiry() {
    let (pg, _db) = postgres(LWW_TABLE).await;
    let mut cfg = config(&pg, LWW_RULES);
    cfg.keepalive_interval = Duration::from_millis(500);
    let standin = StandIn::start(cfg).await.unwrap();
    let url = standin.url();
    let http = reqwest::Client::new();
    let live = http
        .get(format!("{url}/probes/liveness"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let missing = http.get(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PSYNC_S2002");

    for bad in [
        "not json",
        r#"{"buckets": 5}"#,
        r#"{"buckets": [{"name": "1#global[]", "after": "x"}]}"#,
    ] {
        let resp = http
            .post(format!("{url}/sync/stream"))
            .header("Authorization", format!("Token {}", token("u1")))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "PSYNC_S2001");
    }

    // A token that expires in 3 s: keepalives count down, then {"token_expires_in":0} ends it.
    let short = TestKey::primary().token("u1", 3).unwrap();
    let mut lines = Lines::new(open_stream(&url, &short, &request(json!([]))).await);
    lines.until_complete().await;
    let mut keepalives = Vec::new();
    while let Some(raw) = lines.next_raw(Duration::from_secs(10)).await {
        let v: Value = serde_json::from_str(&raw).unwrap();
        keepalives.push(v["token_expires_in"].as_i64().expect("only keepalives"));
    }
    assert_eq!(keepalives.last(), Some(&0), "{keepalives:?}");
    assert!(
        keepalives.len() >= 3,
        "keepalives every ~0.5 s: {keepalives:?}"
    );
    assert!(
        keepalives.windows(2).all(|w| w[0] >= w[1]),
        "{keepalives:?}"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn survives_a_postgres_crash_restart() {
    let (mut pg, db) = postgres(&format!("{LWW_TABLE}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    drop(db);
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    assert_eq!(completed(&lines.until_complete().await), 1);

    pg.restart().unwrap();
    let db = pg.client().await.unwrap();
    db.batch_execute("INSERT INTO lww VALUES ('b', 2, 2)")
        .await
        .unwrap();
    // The replicator reconnects and resumes; the open stream gets the change.
    let next = lines.until_complete().await;
    assert_eq!(strs(&ops(&next), "object_id"), ["b"]);
    assert_eq!(completed(&next), 2);
    standin.shutdown().await;
}

#[tokio::test]
async fn checkpoint_requests_keep_the_maximum() {
    let (pg, _db) = postgres(LWW_TABLE).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let mut lines = Lines::new(open_stream(&url, &token("u1"), &request(json!([]))).await);
    lines.until_complete().await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{url}/sync/checkpoint-request"))
            .header("Authorization", format!("Token {}", token("u1")))
            .body(body.to_string())
            .send()
    };
    let body: Value = post(json!({"client_id": "client-1", "checkpoint_request_id": "5"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"data": {"checkpoint_request_id": "5"}}));
    let diff = lines.until_complete().await;
    assert_eq!(diff[0]["checkpoint_diff"]["write_checkpoint"], "5");
    // A stale id is a no-op that returns the stored one; numbers are accepted too.
    let body: Value = post(json!({"client_id": "client-1", "checkpoint_request_id": 3}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["checkpoint_request_id"], "5");
    for bad in [
        json!({"client_id": "c", "checkpoint_request_id": "x"}),
        json!({"client_id": "c", "checkpoint_request_id": -1}),
        json!({"client_id": "c"}),
    ] {
        let resp = post(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    standin.shutdown().await;
}

#[tokio::test]
async fn replica_identity_full_and_integer_ids() {
    let (pg, db) = postgres(
        "CREATE TABLE counters (id integer PRIMARY KEY, label text);
         ALTER TABLE counters REPLICA IDENTITY FULL;
         INSERT INTO counters VALUES (1, 'one'), (2, NULL);",
    )
    .await;
    let rules = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM counters\n";
    let standin = StandIn::start(config(&pg, rules)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    let first = ops(&lines.until_complete().await);
    assert_eq!(strs(&first, "object_id"), ["1", "2"]);
    assert_eq!(first[1]["data"], r#"{"id":2,"label":null}"#);
    db.batch_execute(
        "UPDATE counters SET label = 'uno' WHERE id = 1; DELETE FROM counters WHERE id = 2",
    )
    .await
    .unwrap();
    let mut changes = Vec::new();
    while changes.len() < 2 {
        changes.extend(ops(&lines.until_complete().await));
    }
    assert_eq!(strs(&changes, "op"), ["PUT", "REMOVE"]);
    assert_eq!(changes[0]["data"], r#"{"id":1,"label":"uno"}"#);
    assert_eq!(changes[1]["object_id"], "2");
    assert_eq!(changes[1]["subkey"], "counters/2");
    standin.shutdown().await;
}

#[tokio::test]
async fn disconnect_streams_ends_open_streams_only() {
    let (pg, db) = postgres(LWW_TABLE).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut lines =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    lines.until_complete().await;
    standin.disconnect_streams();
    assert_eq!(
        lines.next_raw(Duration::from_secs(10)).await,
        None,
        "stream ended"
    );
    // A reconnecting client is served as usual, and stays connected for later changes.
    let mut again =
        Lines::new(open_stream(&standin.url(), &token("u1"), &request(json!([]))).await);
    assert_eq!(completed(&again.until_complete().await), 0);
    db.batch_execute("INSERT INTO lww VALUES ('a', 1, 1)")
        .await
        .unwrap();
    let next = again.until_complete().await;
    assert_eq!(completed(&next), 1);
    assert_eq!(strs(&ops(&next), "object_id"), ["a"]);
    standin.shutdown().await;
}
