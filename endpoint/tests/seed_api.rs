//! The seed-era HTTP API over real HTTP against the real binary (`sqlite3-local` mode).

mod common;

use std::collections::HashSet;

use common::{Workdir, assert_no_error_in_log, stored_list};
use serde_json::{Value, json};

#[tokio::test]
async fn list_append_transactions_read_their_own_appends() {
    let wd = Workdir::new();
    let ep = wd.start(&[], &[]);

    let body = r#"{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":1},{"f":"r","k":3,"v":null}]}"#;
    let reply = ep.post("/sql-txn", body).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{reply:?}"
    );
    assert_eq!(
        reply.text,
        r#"{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":1},{"f":"r","k":3,"v":"[1]"}],"type":"ok"}"#
    );

    let reply = ep
        .txn(r#"{"value":[{"f":"append","k":3,"v":2},{"f":"append","k":5,"v":9},{"f":"r","k":3,"v":null},{"f":"r","k":5,"v":null},{"f":"r","k":6,"v":null}]}"#)
        .await;
    assert_eq!(
        reply,
        json!({"value":[{"f":"append","k":3,"v":2},{"f":"append","k":5,"v":9},{"f":"r","k":3,"v":"[1 2]"},{"f":"r","k":5,"v":"[9]"},{"f":"r","k":6,"v":null}],"type":"ok"})
    );

    // The leading-space storage of the seed, visible in /db/list.
    let rows = ep.rows().await;
    assert_eq!(rows[3]["v"], " 1 2");
    assert_eq!(rows[5]["v"], " 9");
    assert_no_error_in_log(&wd.log());
}

#[tokio::test]
async fn keys_0_to_99_are_seeded_and_listed() {
    let wd = Workdir::new();
    let ep = wd.start(&[], &[]);
    let rows = ep.rows().await;
    assert_eq!(rows.len(), 100);
    for (i, row) in rows.iter().enumerate() {
        let object = row.as_object().unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["id", "k", "v"], "{row}");
        assert_eq!(row["k"], i as i64);
        assert_eq!(row["v"], "");
    }
    let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 100, "ids are distinct");
    // Key 99 is the last seeded key: reading and appending both work.
    let reply = ep.txn(r#"{"value":[{"f":"append","k":99,"v":4},{"f":"r","k":99,"v":null},{"f":"r","k":0,"v":null}]}"#).await;
    assert_eq!(reply["value"][1]["v"], "[4]");
    assert_eq!(reply["value"][2]["v"], Value::Null);
}

#[tokio::test]
async fn powersync_status_reports_the_store() {
    let wd = Workdir::new();
    let ep = wd.start(&[], &[]);
    let reply = ep.get("/powersync").await;
    assert_eq!(reply.status, 200);
    let status = reply.json();
    assert_eq!(status["env.LOCAL_ONLY"], "true");
    assert_eq!(status["db.closed"], false);
    assert_eq!(status["db.connected"], false);
    assert_eq!(status["db.runtimeType"], "Sqlite3Store");
    assert_eq!(status["status.connected"], false);
    assert_eq!(status["status.lastSyncedAt"], Value::Null);
    assert_eq!(status["endpoint.mode"], "sqlite3-local");
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_leaves_the_database_untouched() {
    let wd = Workdir::new();
    let ep = wd.start(&[], &[]);
    ep.txn(r#"{"value":[{"f":"append","k":1,"v":10}]}"#).await;
    let before = ep.rows().await;

    let ok_mop = r#"{"f":"append","k":2,"v":5}"#;
    let with_ok = |bad: &str| format!(r#"{{"value":[{ok_mop},{bad}]}}"#);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "not valid JSON"),
        ("".into(), 400, "not valid JSON"),
        ("\u{1}\u{2}".into(), 400, "not valid JSON"),
        ("[1,2]".into(), 400, "JSON object"),
        (r#"{"values":[]}"#.into(), 400, "missing field \"value\""),
        (r#"{"value":"r"}"#.into(), 400, "must be an array"),
        (with_ok("7"), 400, "value[1] must be an object"),
        (
            with_ok(r#"{"k":1,"v":null}"#),
            400,
            "value[1]: missing field \"f\"",
        ),
        (
            with_ok(r#"{"f":"r","v":null}"#),
            400,
            "value[1]: missing field \"k\"",
        ),
        (
            with_ok(r#"{"f":"append","k":1}"#),
            400,
            "value[1]: missing field \"v\"",
        ),
        (
            with_ok(r#"{"f":"write","k":1,"v":1}"#),
            400,
            "unknown micro-op function \"write\"",
        ),
        (
            with_ok(r#"{"f":"r","k":"1","v":null}"#),
            400,
            "value[1].k must be an integer",
        ),
        (
            with_ok(r#"{"f":"r","k":1.5,"v":null}"#),
            400,
            "value[1].k must be an integer",
        ),
        (
            with_ok(r#"{"f":"append","k":1,"v":"x"}"#),
            400,
            "value[1].v of an append must be an integer",
        ),
        (
            with_ok(r#"{"f":"append","k":1,"v":2.5}"#),
            400,
            "value[1].v of an append must be an integer",
        ),
        (
            with_ok(r#"{"f":"r","k":-1,"v":null}"#),
            400,
            "value[1].k = -1 is outside the keys",
        ),
        (
            with_ok(r#"{"f":"append","k":2147483648,"v":1}"#),
            400,
            "value[1].k = 2147483648 is outside the keys 0..=2147483647",
        ),
        (
            format!(r#"{{"value":[{ok_mop}],"pad":"{}"}}"#, "x".repeat(70_000)),
            413,
            "length limit exceeded",
        ),
    ];
    for (body, status, needle) in &cases {
        let reply = ep.post("/sql-txn", body.clone()).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(reply.status, *status, "{shown} -> {reply:?}");
        assert!(
            reply.content_type.starts_with("application/json"),
            "{shown} -> {reply:?}"
        );
        let json = reply.json();
        let message = json["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{shown}: {message:?} should contain {needle:?}"
        );
        assert!(json["error"].is_string(), "{json}");
    }

    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/db/drop", 404),
        ("GET", "/sql-txn", 405),
        ("POST", "/powersync", 405),
    ] {
        let reply = match method {
            "GET" => ep.get(path).await,
            _ => ep.post(path, "{}").await,
        };
        assert_eq!(reply.status, status, "{method} {path} -> {reply:?}");
        assert!(
            reply.json()["message"].as_str().unwrap().contains(path),
            "{reply:?}"
        );
    }

    assert_eq!(
        ep.rows().await,
        before,
        "no bad request changed the database"
    );
    // And it still serves.
    let reply = ep.txn(r#"{"value":[{"f":"r","k":1,"v":null}]}"#).await;
    assert_eq!(reply["value"][0]["v"], "[10]");
}

#[tokio::test]
async fn concurrent_transactions_are_atomic_and_lose_nothing() {
    let wd = Workdir::new();
    let ep = std::sync::Arc::new(wd.start(&[("ENDPOINT_LOG_LEVEL", "INFO")], &[]));
    let mut tasks = Vec::new();
    for client in 0..10_i64 {
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let n = client * 100 + i;
                // Two appends in one transaction: both or neither, adjacent in both lists.
                let body = format!(
                    r#"{{"value":[{{"f":"append","k":7,"v":{n}}},{{"f":"append","k":8,"v":{n}}},{{"f":"r","k":7,"v":null}}]}}"#
                );
                let reply = ep.txn(&body).await;
                let read = reply["value"][2]["v"].as_str().unwrap().to_owned();
                assert!(read.ends_with(&format!(" {n}]")) || read == format!("[{n}]"), "{read}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = ep.rows().await;
    let (k7, k8) = (
        stored_list(rows[7]["v"].as_str().unwrap()),
        stored_list(rows[8]["v"].as_str().unwrap()),
    );
    assert_eq!(k7.len(), 200);
    assert_eq!(
        k7, k8,
        "transactions are serialized in the same order on both keys"
    );
    assert_eq!(
        k7.iter().collect::<HashSet<_>>().len(),
        200,
        "every append exactly once"
    );
}
