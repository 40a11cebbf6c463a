//! Shared helpers of the stand-in's integration tests: a throwaway PostgreSQL with a
//! publication, a stand-in configuration with test keys, and an NDJSON line reader.

#![allow(dead_code)]

pub mod core_client;

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;
use standin::{Config, SyncRules};
use testkit::{TestKey, TestPostgres};

use core_client::CoreClient;

/// Default sync rules: one global bucket over `lww`.
pub const LWW_RULES: &str =
    "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n";

/// The `lww` table of the seed's Jepsen test, as most tests create it.
pub const LWW: &str =
    "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL)";

/// Every row of PostgreSQL's `lww` table: id → (k, v).
pub async fn table_rows(
    db: &tokio_postgres::Client,
) -> std::collections::BTreeMap<String, (i64, i64)> {
    db.query("SELECT id, k, v FROM lww", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                (i64::from(r.get::<_, i32>(1)), i64::from(r.get::<_, i32>(2))),
            )
        })
        .collect()
}

/// Starts PostgreSQL, runs `setup_sql` and creates publication `powersync` for all tables
/// in `public`.
pub async fn postgres(setup_sql: &str) -> (TestPostgres, tokio_postgres::Client) {
    let pg = TestPostgres::start().expect("start PostgreSQL");
    let client = pg.client().await.expect("connect");
    client.batch_execute(setup_sql).await.expect("setup SQL");
    client
        .batch_execute("CREATE PUBLICATION powersync FOR TABLES IN SCHEMA public")
        .await
        .expect("publication");
    (pg, client)
}

/// A stand-in configuration over `pg` with the primary test key and fast polling.
pub fn config(pg: &TestPostgres, rules: &str) -> Config {
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(rules).expect("rules"),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    config
}

/// A valid token for `sub` (5 minutes).
pub fn token(sub: &str) -> String {
    TestKey::primary().token(sub, 300).expect("sign")
}

/// The `Accept` header of the SDKs (BSON preferred).
pub const SDK_ACCEPT: &str =
    "application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8";

/// Opens `/sync/stream` with `body`, asking for NDJSON, and returns the response.
pub async fn open_stream(url: &str, token: &str, body: &Value) -> reqwest::Response {
    open_stream_accepting(url, token, body, "application/x-ndjson").await
}

/// Opens `/sync/stream` with `body` and the given `Accept` header.
pub async fn open_stream_accepting(
    url: &str,
    token: &str,
    body: &Value,
    accept: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/sync/stream"))
        .header("Authorization", format!("Token {token}"))
        .header("Content-Type", "application/json")
        .header("Accept", accept)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

/// Reads NDJSON lines from a streaming response.
pub struct Lines {
    stream: ByteStream,
    buf: Vec<u8>,
}

impl Lines {
    /// Wraps a 200 NDJSON response.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-ndjson",
            "NDJSON framing"
        );
        Lines {
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// Wraps a 200 BSON response (read with [`Lines::next_document`]).
    pub fn new_bson(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.powersync.bson-stream",
            "BSON framing"
        );
        Lines {
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// The next whole BSON document (length prefix included), `None` at the end of the
    /// stream. Panics after `timeout`.
    pub async fn next_document(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let len = usize::try_from(len).expect("document length");
                assert!(len >= 5, "document length {len}");
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for a sync document");
            match chunk {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => panic!("stream error: {e}"),
                None => {
                    assert!(self.buf.is_empty(), "partial document at end of stream");
                    return None;
                }
            }
        }
    }

    /// The next raw line, `None` when the stream ended. Panics after `timeout`.
    pub async fn next_raw(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(String::from_utf8(line[..line.len() - 1].to_vec()).expect("UTF-8"));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for a sync line");
            match chunk {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => panic!("stream error: {e}"),
                None => {
                    assert!(self.buf.is_empty(), "partial line at end of stream");
                    return None;
                }
            }
        }
    }

    /// The next line parsed as JSON; panics on end of stream or timeout.
    pub async fn next(&mut self) -> Value {
        let raw = self
            .next_raw(Duration::from_secs(20))
            .await
            .expect("stream ended");
        serde_json::from_str(&raw).expect("line is JSON")
    }

    /// Lines up to and including the next `checkpoint_complete`, skipping keepalives.
    pub async fn until_complete(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let line = self.next().await;
            if line.get("token_expires_in").is_some() {
                continue;
            }
            let done = line.get("checkpoint_complete").is_some();
            out.push(line);
            if done {
                return out;
            }
        }
    }
}

/// The ops of all `data` lines in `lines`.
pub fn ops(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| l.get("data"))
        .flat_map(|d| d["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// `last_op_id` of the `checkpoint_complete` in `lines`.
pub fn completed(lines: &[Value]) -> u64 {
    lines
        .iter()
        .find_map(|l| l.get("checkpoint_complete"))
        .and_then(|c| c["last_op_id"].as_str())
        .expect("checkpoint_complete")
        .parse()
        .expect("numeric op id")
}

/// Bucket entry `name` from a `checkpoint` or `checkpoint_diff` line.
pub fn bucket<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    let (key, list) = if let Some(c) = line.get("checkpoint") {
        (c, "buckets")
    } else {
        (line.get("checkpoint_diff")?, "updated_buckets")
    };
    key[list].as_array()?.iter().find(|b| b["bucket"] == name)
}

/// Field `name` of every op, as strings.
pub fn strs(ops: &[Value], name: &str) -> Vec<String> {
    ops.iter()
        .map(|o| o[name].as_str().expect("string field").to_owned())
        .collect()
}

/// Starts a sync iteration against the stand-in and returns the open line reader.
pub async fn connect(client: &mut CoreClient, url: &str, token: &str) -> Lines {
    let request = client.start();
    let response = open_stream(url, token, &request).await;
    assert_eq!(response.status(), 200);
    client.control("connection", Some("established"));
    Lines::new(response)
}

/// Feeds lines until `done` holds after a line; every line is checked with `each`.
pub async fn feed_until(
    client: &mut CoreClient,
    lines: &mut Lines,
    mut each: impl FnMut(&CoreClient),
    done: impl Fn(&CoreClient) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(client) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; rows {:?}",
            client.rows()
        );
        let line = lines
            .next_raw(Duration::from_secs(20))
            .await
            .expect("stream ended early");
        let out = client.control("line_text", Some(&line));
        assert!(
            !out.iter().any(|i| i.get("CloseSyncStream").is_some()),
            "core closed the stream: {out:?}"
        );
        each(client);
    }
}

/// Holds an `EXCLUSIVE` lock on the stand-in's op log in an open transaction of the returned
/// connection (until it commits): every persist of ops waits for it.
pub async fn lock_op_log(pg: &TestPostgres) -> tokio_postgres::Client {
    let locker = pg.client().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE powersync_standin.ops IN EXCLUSIVE MODE")
        .await
        .unwrap();
    locker
}

/// Feeds lines until the client's rows are PostgreSQL's `lww` rows as they are now.
pub async fn feed_until_table(
    client: &mut CoreClient,
    lines: &mut Lines,
    db: &tokio_postgres::Client,
) {
    let want = table_rows(db).await;
    feed_until(client, lines, |_| {}, |c| c.rows() == want).await;
}
