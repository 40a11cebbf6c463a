//! The `standin` binary is killed with SIGKILL while PostgreSQL keeps changing, then
//! restarted: no change is lost, no op id is reused, and a fresh client converges to the
//! table's contents.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use testkit::{ChildGuard, TestKey};

fn spawn_standin(config_path: &std::path::Path) -> (ChildGuard, String) {
    let mut child = ChildGuard::spawn(
        "standin",
        Command::new(env!("CARGO_BIN_EXE_standin"))
            .arg("--config")
            .arg(config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let stdout = child.take_stdout().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("standin listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// Full sync from scratch: the ops in order, and the rows they leave.
async fn full_sync(url: &str) -> (Vec<u64>, BTreeMap<String, String>) {
    let body = json!({"buckets": [], "raw_data": true, "include_checksum": true, "client_id": "k"});
    let mut lines = Lines::new(open_stream(url, &token("u1"), &body).await);
    let batch = lines.until_complete().await;
    let all = ops(&batch);
    let ids: Vec<u64> = all
        .iter()
        .map(|o| o["op_id"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut rows = BTreeMap::new();
    let mut sum = 0u32;
    for op in &all {
        sum = sum.wrapping_add(op["checksum"].as_u64().unwrap() as u32);
        let id = op["object_id"].as_str().unwrap().to_owned();
        match op["op"].as_str().unwrap() {
            "PUT" => {
                rows.insert(id, op["data"].as_str().unwrap().to_owned());
            }
            _ => {
                rows.remove(&id);
            }
        }
    }
    let announced = bucket(&batch[0], "1#global[]").unwrap();
    assert_eq!(announced["checksum"].as_i64().unwrap() as i32 as u32, sum);
    assert_eq!(announced["count"].as_u64().unwrap() as usize, all.len());
    (ids, rows)
}

async fn table_rows(db: &tokio_postgres::Client) -> BTreeMap<String, String> {
    db.query("SELECT id, k, v FROM lww", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            let data = json!({"id": id, "k": r.get::<_, i32>(1), "v": r.get::<_, i32>(2)});
            (id, data.to_string())
        })
        .collect()
}

#[tokio::test]
async fn sigkill_and_restart_loses_nothing_and_reuses_no_op_id() {
    let (pg, db) = postgres(
        "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL);
         INSERT INTO lww VALUES ('a', 1, 1), ('b', 2, 2);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), LWW_RULES).unwrap();
    std::fs::write(
        dir.path().join("standin.yaml"),
        format!(
            "port: 0\npostgres_uri: {}\nsync_rules:\n  path: rules.yaml\nclient_auth:\n  \
             jwks: {}\n  audience: [powersync-dev]\npoll_interval_ms: 5\n",
            pg.uri(),
            TestKey::primary().jwks()
        ),
    )
    .unwrap();
    let config_path = dir.path().join("standin.yaml");
    let (mut child, url) = spawn_standin(&config_path);
    let (ids, _) = full_sync(&url).await;
    assert_eq!(ids, [1, 2]);

    // A writer keeps committing small transactions while the stand-in is killed.
    let writer_uri = pg.uri();
    let writer = tokio::spawn(async move {
        let (client, conn) = tokio_postgres::connect(&writer_uri, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        for i in 0..150 {
            client
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO lww VALUES ('w{i}', {i}, 0); \
                     UPDATE lww SET v = v + 1 WHERE id = 'a'; \
                     DELETE FROM lww WHERE id = 'w{}'; COMMIT",
                    i.max(3) - 3
                ))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    child.kill().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_child2, url2) = spawn_standin(&config_path);
    writer.await.unwrap();

    let want = table_rows(&db).await;
    let ids = testkit::eventually_async(
        "a full sync from the restarted stand-in to hold the table's rows",
        Duration::from_secs(30),
        || async {
            let (ids, rows) = full_sync(&url2).await;
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "op ids strictly increasing"
            );
            assert_eq!(ids.first(), Some(&1));
            if rows == want {
                Ok(ids)
            } else {
                Err(format!("did not converge: {rows:?} vs {want:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Op ids are handed out without gaps, so a lost or duplicated op would show as a count that
    // differs from the last id.
    let last = *ids.last().unwrap();
    assert_eq!(ids.len() as u64, last, "no gaps, no duplicates: {ids:?}");
}
