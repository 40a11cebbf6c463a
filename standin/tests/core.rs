//! The stand-in against the real PowerSync core (libpowersync.so through powersync-sys):
//! the stream's lines are fed into `powersync_control` exactly as an SDK does.

mod common;

use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use rusqlite::OptionalExtension;
use serde_json::{Value, json};
use standin::StandIn;
use testkit::TestKey;

const MAX_OP_ID: i64 = i64::MAX;

#[tokio::test]
async fn snapshot_and_whole_transactions_reach_the_core() {
    let (pg, db) = postgres(&format!(
        "{LWW}; INSERT INTO lww SELECT 'r' || g, g, 10 FROM generate_series(1, 20) g; \
         INSERT INTO lww VALUES ('t0', 0, 0)"
    ))
    .await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &standin.url(), &token("u1")).await;

    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    assert!(
        client
            .instructions
            .iter()
            .any(|i| i.get("DidCompleteSync").is_some())
    );

    // Transfers between rows keep sum(v) at 200 in every committed state; an insert and a
    // delete in the same transactions keep the row count at 21. A client that ever applied part of a
    // transaction would see another sum or count.
    let writer_uri = pg.uri();
    let writer = tokio::spawn(async move {
        let (w, conn) = tokio_postgres::connect(&writer_uri, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        for i in 1..=60 {
            let (from, to) = (i % 20 + 1, (i * 7 + 3) % 20 + 1);
            w.batch_execute(&format!(
                "BEGIN; UPDATE lww SET v = v - 3 WHERE id = 'r{from}'; \
                 UPDATE lww SET v = v + 3 WHERE id = 'r{to}'; \
                 INSERT INTO lww VALUES ('t{i}', {i}, 0); DELETE FROM lww WHERE id = 't{}'; \
                 UPDATE lww SET k = k + 1 WHERE id = 'r1'; COMMIT",
                i - 1
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    let mut checks = 0;
    let check = |c: &CoreClient| {
        let rows = c.rows();
        let sum: i64 = rows.values().map(|(_, v)| v).sum();
        assert_eq!(sum, 200, "partial transaction visible: {rows:?}");
        assert_eq!(rows.len(), 21, "partial transaction visible: {rows:?}");
    };
    writer.await.unwrap();
    let want = table_rows(&db).await;
    feed_until(
        &mut client,
        &mut lines,
        |c| {
            checks += 1;
            check(c)
        },
        |c| c.rows() == want,
    )
    .await;
    assert!(checks > 0);

    // Deletes reach the client too.
    db.batch_execute("DELETE FROM lww WHERE id IN ('r1', 'r2')")
        .await
        .unwrap();
    let want = table_rows(&db).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows() == want).await;
    assert_eq!(client.rows().len(), 19);
    drop(lines);
    standin.shutdown().await;
}

#[tokio::test]
async fn write_checkpoint_makes_an_uploaded_change_visible() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let mut client = CoreClient::open();
    let mut lines = connect(&mut client, &url, &token("u1")).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows().len() == 1).await;

    // A local write: it lands in ps_crud and sets the target to MAX_OP_ID.
    client
        .conn
        .execute("INSERT INTO lww (id, k, v) VALUES ('mine', 5, 1)", [])
        .unwrap();
    client.conn.execute_batch("BEGIN").unwrap();
    let target: Option<i64> = client
        .conn
        .query_row(
            "SELECT powersync_control('target_checkpoint_request_id', NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    client.conn.execute_batch("COMMIT").unwrap();
    assert_eq!(target, Some(MAX_OP_ID));
    let seq: i64 = client
        .conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'ps_crud'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
        .expect("ps_crud sequence");

    // The "backend" applies the upload with its own twist (v = 100) and another change, so the
    // server state differs visibly from the local one.
    db.batch_execute(
        "INSERT INTO lww VALUES ('mine', 5, 100); UPDATE lww SET v = 7 WHERE id = 'a'",
    )
    .await
    .unwrap();
    let client_id: String = client
        .conn
        .query_row("SELECT powersync_client_id()", [], |r| r.get(0))
        .unwrap();
    let body: Value = reqwest::Client::new()
        .get(format!(
            "{url}/write-checkpoint2.json?client_id={client_id}"
        ))
        .header("Authorization", format!("Token {}", token("u1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wcp = body["data"]["write_checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wcp, "1");

    // Until the write checkpoint arrives the local state stays: mine=1, a=1.
    assert_eq!(client.rows()["mine"], (5, 1));
    assert_eq!(client.rows()["a"], (1, 1));

    // Upload complete: clear ps_crud, set the target, tell the iteration.
    client.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    client.conn.execute("DELETE FROM ps_crud", []).unwrap();
    let seq_now: i64 = client
        .conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'ps_crud'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq_now, seq);
    client
        .conn
        .query_row(
            "SELECT powersync_control('target_checkpoint_request_id', ?1)",
            [&wcp],
            |_| Ok(()),
        )
        .unwrap();
    client.conn.execute_batch("COMMIT").unwrap();
    client.control("completed_upload", None);

    feed_until(
        &mut client,
        &mut lines,
        |_| {},
        |c| c.applied_request_ids().contains(&"1".to_owned()),
    )
    .await;
    let rows = client.rows();
    assert_eq!(rows["mine"], (5, 100), "server state applied");
    assert_eq!(rows["a"], (1, 7));
    assert_eq!(rows, table_rows(&db).await);
    drop(lines);
    standin.shutdown().await;
}

#[tokio::test]
async fn token_expiry_and_bad_tokens_with_the_core_request() {
    let (pg, _db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let mut client = CoreClient::open();

    // The core's own request with an expired or foreign token: 401.
    let request = client.start();
    let now = testkit::keys::now_secs();
    let expired = TestKey::primary()
        .sign(&testkit::TokenClaims {
            iat: Some(now - 600),
            exp: Some(now - 120),
            ..testkit::TokenClaims::new("u1", "powersync-dev", 0)
        })
        .unwrap();
    for bad in [expired, TestKey::other().token("u1", 300).unwrap()] {
        let response = open_stream(&url, &bad, &request).await;
        assert_eq!(response.status(), 401);
    }
    client.control("stop", None);

    // A token that expires in 3 s: the stream ends with token_expires_in 0, which makes the
    // core ask for new credentials and close the stream.
    let short = TestKey::primary().token("u1", 3).unwrap();
    let mut lines = connect(&mut client, &url, &short).await;
    let mut closed = false;
    while let Some(line) = lines.next_raw(Duration::from_secs(10)).await {
        let out = client.control("line_text", Some(&line));
        if out.iter().any(|i| i.get("CloseSyncStream").is_some()) {
            closed = true;
            assert!(
                out.iter()
                    .any(|i| i["FetchCredentials"]["did_expire"] == json!(true)),
                "{out:?}"
            );
        }
    }
    assert!(closed, "core closed the stream at expiry");
    assert_eq!(client.rows().len(), 1, "data synced before expiry");
    standin.shutdown().await;
}

#[tokio::test]
async fn checkpoint_request_mode_makes_an_uploaded_change_visible() {
    let (pg, db) = postgres(&format!("{LWW}; INSERT INTO lww VALUES ('a', 1, 1)")).await;
    let standin = StandIn::start(config(&pg, LWW_RULES)).await.unwrap();
    let url = standin.url();
    let http = reqwest::Client::new();
    let auth = format!("Token {}", token("u1"));
    let mut client = CoreClient::open();
    let establish = client.start_in("requests");
    let response = open_stream(&url, &token("u1"), &establish["request"]).await;
    client.control("connection", Some("established"));
    let mut lines = Lines::new(response);
    // Seed the core's counter from the service.
    let seed = &establish["checkpoint_request"];
    assert!(
        seed.is_object(),
        "core 0.5 sends a checkpoint request: {establish}"
    );
    let seeded: Value = http
        .post(format!("{url}/sync/checkpoint-request"))
        .header("Authorization", &auth)
        .body(seed.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seeded_id = seeded["data"]["checkpoint_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    client
        .conn
        .query_row(
            "SELECT powersync_control('seed_checkpoint_request_id', ?1)",
            [&seeded_id],
            |_| Ok(()),
        )
        .unwrap();
    client.conn.execute_batch("COMMIT").unwrap();
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows().len() == 1).await;

    // Local write, "uploaded" with a server-side twist.
    client
        .conn
        .execute("INSERT INTO lww (id, k, v) VALUES ('mine', 5, 1)", [])
        .unwrap();
    db.batch_execute("INSERT INTO lww VALUES ('mine', 5, 100)")
        .await
        .unwrap();
    client.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let next: i64 = client
        .conn
        .query_row(
            "SELECT powersync_control('next_checkpoint_request_id', NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    client.conn.execute_batch("COMMIT").unwrap();
    let client_id: String = client
        .conn
        .query_row("SELECT powersync_client_id()", [], |r| r.get(0))
        .unwrap();
    let answer: Value = http
        .post(format!("{url}/sync/checkpoint-request"))
        .header("Authorization", &auth)
        .body(
            json!({"client_id": client_id, "checkpoint_request_id": next.to_string()}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["data"]["checkpoint_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(id, next.to_string());
    client.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    client.conn.execute("DELETE FROM ps_crud", []).unwrap();
    client
        .conn
        .query_row(
            "SELECT powersync_control('target_checkpoint_request_id', ?1)",
            [&id],
            |_| Ok(()),
        )
        .unwrap();
    client.conn.execute_batch("COMMIT").unwrap();
    client.control("completed_upload", None);
    assert_eq!(
        client.rows()["mine"],
        (5, 1),
        "local state until the checkpoint arrives"
    );
    feed_until(
        &mut client,
        &mut lines,
        |_| {},
        |c| c.applied_request_ids().contains(&id),
    )
    .await;
    assert_eq!(client.rows()["mine"], (5, 100));
    drop(lines);
    standin.shutdown().await;
}
