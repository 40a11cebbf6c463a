//! Shared set-up of the stand-in benches: PostgreSQL with the `lww` table published, the
//! stand-in over it with one global bucket, and a client core connected over HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

use crate::core_client::CoreClient;

/// PostgreSQL with `lww (id, k, v)` in publication `powersync`, a client of it, the stand-in
/// serving `SELECT * FROM lww` in one global bucket with its configuration adjusted by
/// `configure`, and the interval it polls at if it polls.
pub async fn lww_standin_with(
    configure: impl FnOnce(&mut Config),
) -> (TestPostgres, tokio_postgres::Client, StandIn, Duration) {
    let pg = TestPostgres::start().expect("PostgreSQL");
    let db = pg.client().await.expect("connect");
    db.batch_execute(
        "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL);
         CREATE PUBLICATION powersync FOR TABLE lww;",
    )
    .await
    .expect("setup");
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse("bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n")
            .expect("rules"),
        TestKey::primary().jwks(),
    );
    configure(&mut config);
    let poll = config.poll_interval;
    let standin = StandIn::start(config).await.expect("stand-in");
    (pg, db, standin, poll)
}

/// The lines of a sync stream, one at a time.
pub struct Lines {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>>>>,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line, without its newline.
    pub async fn next(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return String::from_utf8(line[..line.len() - 1].to_vec()).expect("utf-8");
            }
            let chunk = self.body.next().await.expect("stream open").expect("body");
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// Starts `client`'s sync (legacy checkpoints), opens its stream on `standin` as user
/// `bench`, and tells the core the connection is established.
pub async fn connect(standin: &StandIn, client: &mut CoreClient) -> Lines {
    let token = TestKey::primary().token("bench", 3600).expect("token");
    let request = client.start();
    let response = reqwest::Client::new()
        .post(format!("{}/sync/stream", standin.url()))
        .header("Authorization", format!("Token {token}"))
        .header("Content-Type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .expect("sync/stream");
    assert_eq!(response.status(), 200);
    client.control("connection", Some("established"));
    Lines {
        body: Box::pin(response.bytes_stream()),
        buf: Vec::new(),
    }
}
