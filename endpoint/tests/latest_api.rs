//! The latest era (`--endpoint powersync|postgresql`, mww) end to end: the real binary over
//! HTTP, a throwaway PostgreSQL with `mww` and, for `powersync`, the stand-in sync service.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mww::{MwwBackend, assert_no_severe_or_error, mww_txn, read_all, written};
use common::{Endpoint, Workdir};
use serde_json::{Value, json};

fn seeded() -> BTreeMap<i64, i64> {
    (0..100).map(|k| (k, -1)).collect()
}

/// Polls `readAll` until key `k` has value `v`.
async fn wait_read(ep: &Endpoint, k: i64, v: i64) {
    testkit::eventually_async(
        format!("key {k} to become {v}"),
        Duration::from_secs(30),
        || async {
            let reply = ep.txn(&mww_txn("txn", &[])).await;
            if read_all(&reply).get(&k) == Some(&v) {
                Ok(())
            } else {
                Err(format!("readAll: {reply}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn db_api(ep: &Endpoint, action: &str) -> Value {
    let reply = ep.get(&format!("/db-api/{action}")).await;
    assert_eq!(reply.status, 200, "{action}: {reply:?}");
    reply.json()
}

/// Every bad request gets a 4xx JSON error naming the problem; nothing is written.
async fn bad_inputs_are_4xx(ep: &Endpoint) {
    let cases: [(&str, &str, u16, &str); 6] = [
        ("POST", "not json", 400, "not valid JSON"),
        (
            "POST",
            r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"100":5}}]}"#,
            400,
            "key \"100\"",
        ),
        (
            "POST",
            r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"1":"x"}}]}"#,
            400,
            "integer",
        ),
        (
            "POST",
            r#"{"value":[{"f":"r","k":1,"v":null},{"f":"append","k":1,"v":5}]}"#,
            400,
            "missing field \"f\"",
        ),
        (
            "POST",
            r#"{"f":"txn","value":[{"f":"append","k":null,"v":5}]}"#,
            400,
            "seed-era",
        ),
        ("GET", "/db-api/dropTables", 404, "unknown db-api action"),
    ];
    for (method, body, status, message) in cases {
        let reply = if method == "POST" {
            ep.post("/sql-txn", body.to_owned()).await
        } else {
            ep.get(body).await
        };
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert!(reply.content_type.contains("json"), "{reply:?}");
        let message_text = reply.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message_text.contains(message), "{body}: {message_text}");
    }
    assert_eq!(ep.get("/sql-txn").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powersync_endpoint_serves_mww_transactions_and_the_db_api() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    let ep = backend.powersync_endpoint(&wd, &[]);
    assert!(
        wd.path().join("data/http.sqlite3").exists(),
        "the database lives in ./data/http.sqlite3"
    );

    // readAll sees every key at -1; writeSome writes and echoes.
    let reply = ep.txn(&mww_txn("txn", &[(17, 42), (3, 42)])).await;
    let keys: Vec<&String> = reply.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["clientType", "f", "type", "value"]);
    assert_eq!(reply["clientType"], "ps");
    assert_eq!(reply["f"], "txn");
    assert_eq!(reply["type"], "ok");
    assert_eq!(read_all(&reply), seeded());
    assert_eq!(written(&reply), BTreeMap::from([(3, 42), (17, 42)]));
    assert_eq!(reply["value"][1]["f"], "writeSome");
    assert_eq!(reply["value"][1]["k"], Value::Null);
    // The readAll map's keys come in numeric order in the reply text.
    let text = ep.post("/sql-txn", mww_txn("txn", &[])).await.text;
    assert!(
        text.contains(r#""v":{"0":-1,"1":-1,"2":-1,"3":42,"4":-1"#)
            && text.find(r#""9":-1"#) < text.find(r#""10":-1"#),
        "{text}"
    );

    // Only writes not lower than the value just read are made.
    let reply = ep.txn(&mww_txn("txn", &[(17, 40), (3, 50), (4, 1)])).await;
    assert_eq!(written(&reply), BTreeMap::from([(3, 50), (4, 1)]));
    let reply = ep.txn(&mww_txn("r-final", &[])).await;
    assert_eq!(reply["f"], "r-final");
    let read = read_all(&reply);
    assert_eq!((read[&3], read[&4], read[&17]), (50, 1, 42));
    assert_eq!(written(&reply), BTreeMap::new());

    // Uploads reach PostgreSQL; the queue then is empty.
    assert_eq!(
        db_api(&ep, "uploadQueueWait").await,
        json!({"db.uploadQueueStats.count": "queue-empty"})
    );
    let pg = backend.values().await;
    assert_eq!((pg[&3], pg[&4], pg[&17]), (50, 1, 42));
    assert_eq!(
        db_api(&ep, "uploadQueueCount").await,
        json!({"db.uploadQueueStats.count": 0})
    );

    // A PostgreSQL write comes down; downloadingWait answers with the Dart key.
    backend
        .client
        .execute("UPDATE mww SET v = 99 WHERE k = 5", &[])
        .await
        .unwrap();
    wait_read(&ep, 5, 99).await;
    assert_eq!(
        db_api(&ep, "downloadingWait").await,
        json!({"db.SyncStatus.downloading:": false})
    );
    let all = db_api(&ep, "selectAll").await;
    assert_eq!(all.as_object().unwrap().len(), 100);
    assert_eq!((all["5"].clone(), all["3"].clone()), (json!(99), json!(50)));

    bad_inputs_are_4xx(&ep).await;

    // disconnect stops both directions.
    assert_eq!(
        db_api(&ep, "disconnect").await,
        json!({"db": "disconnected"})
    );
    ep.txn(&mww_txn("txn", &[(60, 600), (62, 800)])).await;
    backend
        .client
        .batch_execute("UPDATE mww SET v = 610 WHERE k = 61; UPDATE mww SET v = 1000 WHERE k = 62")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        db_api(&ep, "uploadQueueCount").await,
        json!({"db.uploadQueueStats.count": 2}),
        "nothing uploads while disconnected"
    );
    assert_eq!(backend.values().await[&60], -1);
    let read = read_all(&ep.txn(&mww_txn("txn", &[])).await);
    assert_eq!(read[&61], -1, "nothing downloads while disconnected");
    // connect resumes both.
    assert_eq!(db_api(&ep, "connect").await, json!({"db": "connected"}));
    assert_eq!(
        db_api(&ep, "uploadQueueWait").await,
        json!({"db.uploadQueueStats.count": "queue-empty"})
    );
    let pg = backend.values().await;
    assert_eq!(pg[&60], 600);
    assert_eq!(pg[&62], 1000, "the upload is max-write-wins (GREATEST)");
    wait_read(&ep, 61, 610).await;
    wait_read(&ep, 62, 1000).await;

    // close: later calls fail without a 500.
    assert_eq!(db_api(&ep, "close").await, json!({"db": "closed"}));
    let reply = ep.post("/sql-txn", mww_txn("txn", &[])).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    drop(ep);
    assert_no_severe_or_error(&wd.log());
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powersync_endpoint_resumes_from_its_database_after_kill() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    let ep = backend.powersync_endpoint(&wd, &[]);
    ep.txn(&mww_txn("txn", &[(7, 70)])).await;
    drop(ep); // SIGKILL
    let ep = backend.powersync_endpoint(&wd, &[]);
    let read = read_all(&ep.txn(&mww_txn("txn", &[])).await);
    assert_eq!(read[&7], 70, "the acknowledged write survived the kill");
    db_api(&ep, "uploadQueueWait").await;
    backend.wait_for(&[(7, 70)]).await;
    drop(ep);
    assert!(wd.log().contains("exists, reusing it"));
    assert_no_severe_or_error(&wd.log());
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_connector_loses_every_second_upload() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    let ep = backend.powersync_endpoint(&wd, &[("ENDPOINT_TEST_BROKEN_CONNECTOR", "drop")]);
    for (k, v) in [(10, 100), (11, 110), (12, 120)] {
        let reply = ep.txn(&mww_txn("txn", &[(k, v)])).await;
        assert_eq!(written(&reply), BTreeMap::from([(k, v)]));
        db_api(&ep, "uploadQueueWait").await;
    }
    let pg = backend.values().await;
    assert_eq!(
        (pg[&10], pg[&11], pg[&12]),
        (100, -1, 120),
        "the second transaction was acknowledged but never reached PostgreSQL"
    );
    // The endpoint converges to PostgreSQL: its own acknowledged write is gone.
    wait_read(&ep, 11, -1).await;
    drop(ep);
    assert!(wd.log().contains("TEST-ONLY broken connector"));
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_endpoint_runs_repeatable_read_transactions() {
    let backend = MwwBackend::postgres_only().await;
    let wd = Workdir::new();
    let ep = backend.postgresql_endpoint(&wd);

    let reply = ep.txn(&mww_txn("txn", &[(1, 10), (2, 20)])).await;
    assert_eq!(reply["clientType"], "pg");
    assert_eq!(reply["type"], "ok");
    assert_eq!(read_all(&reply), seeded());
    assert_eq!(written(&reply), BTreeMap::from([(1, 10), (2, 20)]));
    let reply = ep.txn(&mww_txn("r-final", &[(1, 5), (2, 25)])).await;
    assert_eq!(reply["f"], "r-final");
    assert_eq!(written(&reply), BTreeMap::from([(2, 25)]));
    let pg = backend.values().await;
    assert_eq!((pg[&1], pg[&2]), (10, 25));

    for (action, body) in [
        ("connect", json!({"pg": "always-connected"})),
        ("disconnect", json!({"pg": "always-connected"})),
        ("uploadQueueCount", json!({"pg": "no-queue"})),
        ("uploadQueueWait", json!({"pg": "no-queue"})),
        ("downloadingWait", json!({"pg": "no-downloading"})),
    ] {
        assert_eq!(db_api(&ep, action).await, body, "{action}");
    }
    let all = db_api(&ep, "selectAll").await;
    assert_eq!(
        (all["1"].clone(), all["99"].clone()),
        (json!(10), json!(-1))
    );

    // A concurrent conflicting transaction: PostgreSQL holds key 5's row lock in another
    // transaction while the endpoint's transaction reads, then updates it -> 40001 -> fail.
    backend
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; UPDATE mww SET v = 500 WHERE k = 5")
        .await
        .unwrap();
    let request = mww_txn("txn", &[(5, 77)]);
    let pending = {
        let url = ep.url("/sql-txn");
        let body = request.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    testkit::eventually_async(
        "the endpoint to wait for the lock",
        Duration::from_secs(10),
        || async {
            let waiting: i64 = backend
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'powersync_endpoint' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            waiting == 1
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    backend.client.batch_execute("COMMIT").await.unwrap();
    let reply = pending.await.unwrap();
    assert_eq!(reply["type"], "fail", "{reply}");
    assert_eq!(reply["clientType"], "pg");
    let sent: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(reply["value"], sent["value"], "a fail echoes the request");
    assert_eq!(
        backend.values().await[&5],
        500,
        "the failed write is not applied"
    );
    // Without the conflict, the same write succeeds.
    let reply = ep.txn(&mww_txn("txn", &[(5, 777)])).await;
    assert_eq!(written(&reply), BTreeMap::from([(5, 777)]));

    bad_inputs_are_4xx(&ep).await;
    assert_eq!(db_api(&ep, "close").await, json!({"pg": "closed"}));
    assert_eq!(ep.post("/sql-txn", mww_txn("txn", &[])).await.status, 503);
    drop(ep);
    assert_no_severe_or_error(&wd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powersync_endpoint_never_listens_without_a_first_sync() {
    let backend = MwwBackend::postgres_only().await;
    // A port where nothing listens: the sync service is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wd = Workdir::new();
    let mut args = backend.args("powersync");
    args.push(format!("--POWERSYNC_URL=http://127.0.0.1:{port}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let key = common::backend::private_jwk_base64();
    let started = Instant::now();
    // run_to_exit blocks this worker; the other runs the PostgreSQL client.
    let (status, log) = wd.run_to_exit(
        &[
            ("JWKS_PRIVATE_KEY", key.as_str()),
            ("FIRST_SYNC_TIMEOUT", "2s"),
        ],
        &args,
    );
    assert!(!status.success(), "{status}: {log}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{log}");
    assert!(
        log.contains("no complete first sync with every seeded key within 2s"),
        "{log}"
    );
    assert!(!log.contains("listening on"), "{log}");
    assert!(
        !log.contains(key.as_str()),
        "the private key is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_converge_to_the_max_write_per_key() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    let ep = std::sync::Arc::new(backend.powersync_endpoint(&wd, &[]));
    let mut clients = Vec::new();
    for client in 0..4_i64 {
        let ep = std::sync::Arc::clone(&ep);
        clients.push(tokio::spawn(async move {
            let mut made: Vec<(i64, i64)> = Vec::new();
            for i in 0..15_i64 {
                // Unique values; keys overlap between clients so writes compete.
                let value = i * 10 + client;
                let keys = [(i + client) % 8, (i * 3 + client) % 8];
                let writes: Vec<(i64, i64)> = keys.iter().map(|k| (*k, value)).collect();
                let reply = ep.txn(&mww_txn("txn", &writes)).await;
                let read = read_all(&reply);
                for (k, v) in written(&reply) {
                    assert!(v >= read[&k], "a write below the value read: {reply}");
                    made.push((k, v));
                }
                for (k, v) in &writes {
                    if !written(&reply).contains_key(k) {
                        assert!(*v < read[k], "a dropped write was not lower: {reply}");
                    }
                }
            }
            made
        }));
    }
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for client in clients {
        for (k, v) in client.await.unwrap() {
            let entry = max.entry(k).or_insert(-1);
            *entry = (*entry).max(v);
        }
    }
    db_api(&ep, "uploadQueueWait").await;
    let expected: Vec<(i64, i64)> = max.iter().map(|(k, v)| (*k, *v)).collect();
    let pg = backend.wait_for(&expected).await;
    for (k, v) in &expected {
        wait_read(&ep, *k, *v).await;
        assert_eq!(pg[k], *v);
    }
    drop(ep);
    assert_no_severe_or_error(&wd.log());
    backend.shutdown().await;
}

#[test]
fn installed_as_powersync_http_it_finds_the_core_in_the_bundle_without_environment() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("powersync_http/bundle/bin");
    let lib_dir = dir.path().join("powersync_http/bundle/lib");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&lib_dir).unwrap();
    let bin = bin_dir.join("powersync_http");
    std::fs::copy(common::BIN, &bin).unwrap();
    let core = std::fs::canonicalize(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vendor/lib/default/libpowersync.so"
    ))
    .expect("the vendored default core (vendor/fetch-cores --default)");
    std::fs::copy(&core, lib_dir.join("libpowersync.so")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = common::backend::private_jwk_base64();
    let output = std::process::Command::new(&bin)
        .current_dir(dir.path())
        .env_clear()
        .env("JWKS_PRIVATE_KEY", &key)
        .env("FIRST_SYNC_TIMEOUT", "1s")
        .args([
            "--endpoint",
            "powersync",
            "--httpPort",
            "0",
            &format!("--POWERSYNC_URL=http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let expected = lib_dir.join("libpowersync.so");
    assert!(
        log.contains(&format!("from {}", expected.display())),
        "the core was not taken from the bundle:\n{log}"
    );
    assert!(dir.path().join("data/http.sqlite3").exists(), "{log}");
    assert!(!output.status.success(), "no sync service: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_queue_wait_reports_a_stuck_queue() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    // The forgiving policy answers 500; the Dart one exits 12 (next test).
    let ep = backend.powersync_endpoint(&wd, &[("ENDPOINT_FAILURE_POLICY", "forgiving")]);
    db_api(&ep, "disconnect").await;
    ep.txn(&mww_txn("txn", &[(30, 300)])).await;
    let started = Instant::now();
    let reply = ep.get("/db-api/uploadQueueWait").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_secs(11), "{reply:?}");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("upload queue stuck at 1 entries"),
        "{reply:?}"
    );
    // The harness's log checker sees it.
    assert!(wd.log().contains("ERROR"));
    db_api(&ep, "connect").await;
    assert_eq!(
        db_api(&ep, "uploadQueueWait").await,
        json!({"db.uploadQueueStats.count": "queue-empty"})
    );
    backend.wait_for(&[(30, 300)]).await;
    drop(ep);
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_default_dart_policy_a_stuck_upload_queue_exits_12() {
    let backend = MwwBackend::start().await;
    let wd = Workdir::new();
    let mut ep = backend.powersync_endpoint(&wd, &[]);
    assert!(wd.log().contains("failure_policy=dart"), "{}", wd.log());
    db_api(&ep, "disconnect").await;
    ep.txn(&mww_txn("txn", &[(31, 310)])).await;
    let url = format!("http://127.0.0.1:{}/db-api/uploadQueueWait", ep.port);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    let status = tokio::task::spawn_blocking(move || {
        let status = ep.wait_exit(Duration::from_secs(60));
        (status, ep)
    })
    .await
    .unwrap();
    assert_eq!(status.0.and_then(|s| s.code()), Some(12), "{}", wd.log());
    assert!(
        waiting.await.unwrap().is_err(),
        "the process ended the request"
    );
    let log = wd.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("exiting 12")),
        "{log}"
    );
    backend.shutdown().await;
}
