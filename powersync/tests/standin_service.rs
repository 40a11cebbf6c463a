//! The client against the stand-in's service behaviour that the friendly path never shows:
//! BSON framing (what the service answers our `Accept` with) through `LineStream` and the
//! real core, and bucket priorities (`partial_checkpoint_complete`), whose priority-0 data
//! the core applies while local changes still wait in the upload queue.

mod common;

use std::time::Duration;

use powersync::schema::{Column, Schema, Table};
use powersync::{
    BackendConnector, Backoff, ConnectorError, DatabaseOptions, PowerSyncCredentials,
    PowerSyncDatabase, SyncOptions, UpdateType, UploadOptions,
};
use serde_json::Value;
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

fn schema() -> Schema {
    Schema::new(vec![
        Table::new(
            "todos",
            vec![Column::text("description"), Column::integer("done")],
        ),
        Table::new("alerts", vec![Column::text("message")]),
    ])
}

async fn postgres() -> (TestPostgres, tokio_postgres::Client) {
    let pg = TestPostgres::start().expect("start PostgreSQL (apt-get install -y postgresql)");
    let client = pg.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE todos (id TEXT PRIMARY KEY, description TEXT NOT NULL, done BIGINT NOT NULL DEFAULT 0);
             CREATE TABLE alerts (id TEXT PRIMARY KEY, message TEXT NOT NULL);
             CREATE PUBLICATION powersync FOR TABLE todos, alerts;",
        )
        .await
        .unwrap();
    (pg, client)
}

fn standin_config(pg: &TestPostgres, rules: &str) -> Config {
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(rules).unwrap(),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    config
}

fn fast() -> SyncOptions {
    SyncOptions::default()
        .with_retry(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            jitter: 0.5,
        })
        .with_upload(UploadOptions {
            throttle: Duration::from_millis(5),
            retry: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                jitter: 0.5,
            },
        })
}

/// Uploads `todos` changes to PostgreSQL, or (with `refuse`) fails every upload, so the
/// queue stays non-empty.
#[derive(Clone)]
struct Connector {
    endpoint: String,
    pg_uri: String,
    refuse: bool,
}

fn retryable(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::retryable(e.to_string())
}

impl BackendConnector for Connector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Ok(PowerSyncCredentials {
            endpoint: self.endpoint.clone(),
            token: TestKey::primary().token("u1", 300).map_err(retryable)?,
        })
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        if self.refuse {
            return Err(ConnectorError::retryable("the backend is down (test)"));
        }
        let Some(batch) = db.crud_batch(100).await.map_err(retryable)? else {
            return Ok(());
        };
        let (mut client, connection) = tokio_postgres::connect(&self.pg_uri, tokio_postgres::NoTls)
            .await
            .map_err(retryable)?;
        tokio::spawn(connection);
        let tx = client.transaction().await.map_err(retryable)?;
        for entry in &batch.crud {
            let data = entry.data.clone().unwrap_or_default();
            let description = data
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let done = data.get("done").and_then(Value::as_i64).unwrap_or(0);
            match entry.op {
                UpdateType::Put | UpdateType::Patch => tx
                    .execute(
                        "INSERT INTO todos (id, description, done) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, done = EXCLUDED.done",
                        &[&entry.id, &description, &done],
                    )
                    .await
                    .map_err(retryable)?,
                UpdateType::Delete => tx
                    .execute("DELETE FROM todos WHERE id = $1", &[&entry.id])
                    .await
                    .map_err(retryable)?,
            };
        }
        tx.commit().await.map_err(retryable)?;
        batch
            .complete()
            .await
            .map_err(|e| ConnectorError::fatal(e.to_string()))
    }
}

async fn open_client() -> (tempfile::TempDir, PowerSyncDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = PowerSyncDatabase::open(
        dir.path().join("client.db"),
        &schema(),
        DatabaseOptions::default().with_core(common::default_core()),
    )
    .await
    .unwrap();
    (dir, db)
}

async fn ids(db: &PowerSyncDatabase, table: &str) -> Vec<String> {
    db.query(&format!("SELECT id FROM {table} ORDER BY id"), [], |r| {
        r.get(0)
    })
    .await
    .unwrap()
}

async fn pg_ids(pg: &tokio_postgres::Client, table: &str) -> Vec<String> {
    pg.query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Polls `check` until it holds (45 s); panics naming `what`.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testkit::eventually_async(what, Duration::from_secs(45), check)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

const TODOS_RULES: &str =
    "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM todos\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_syncs_over_bson_framing() {
    let (pg, pgc) = postgres().await;
    pgc.batch_execute(
        "INSERT INTO todos SELECT 'seed' || g, 'row ' || g, g FROM generate_series(1, 20) g",
    )
    .await
    .unwrap();
    // Some of these op checksums are at least 2^31: js-bson sends them as doubles.
    let high = (1..=20)
        .map(|g| {
            standin::checksum::put_checksum(
                "todos",
                &format!("seed{g}"),
                &format!("{{\"id\":\"seed{g}\",\"description\":\"row {g}\",\"done\":{g}}}"),
            )
        })
        .filter(|c| *c >= 1 << 31)
        .count();
    assert!(high > 0, "the data exercises double checksums");
    let standin = StandIn::start(standin_config(&pg, TODOS_RULES))
        .await
        .unwrap();
    let (_dir, db) = open_client().await;
    db.connect(
        Connector {
            endpoint: standin.url(),
            pg_uri: pg.uri(),
            refuse: false,
        },
        fast(),
    )
    .await
    .unwrap();
    db.wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ids(&db, "todos").await, pg_ids(&pgc, "todos").await);

    // A local write goes up and comes back through a write checkpoint (absent, i.e. BSON
    // null, in the checkpoints before it).
    db.execute(
        "INSERT INTO todos (id, description, done) VALUES ('mine', 'local', 1)",
        [],
    )
    .await
    .unwrap();
    pgc.batch_execute("DELETE FROM todos WHERE id = 'seed1'")
        .await
        .unwrap();
    eventually("the client converges with PostgreSQL", || async {
        db.upload_queue_stats().await.unwrap().count == 0
            && ids(&db, "todos").await == pg_ids(&pgc, "todos").await
    })
    .await;
    assert!(ids(&db, "todos").await.contains(&"mine".to_owned()));
    let (ndjson, bson) = standin.streams_served();
    assert!(bson >= 1, "served as BSON");
    assert_eq!(ndjson, 0, "the client's Accept prefers BSON");
    db.disconnect().await.unwrap();
    standin.shutdown().await;
}

const PRIORITY_RULES: &str = "bucket_definitions:\n  urgent:\n    priority: 0\n    data:\n      \
     - SELECT * FROM alerts\n  global:\n    data:\n      - SELECT * FROM todos\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_0_data_arrives_while_the_upload_queue_is_not_empty() {
    let (pg, pgc) = postgres().await;
    pgc.batch_execute(
        "INSERT INTO alerts VALUES ('a1', 'first'); INSERT INTO todos VALUES ('t1', 'server', 0)",
    )
    .await
    .unwrap();
    let standin = StandIn::start(standin_config(&pg, PRIORITY_RULES))
        .await
        .unwrap();
    let (_dir, db) = open_client().await;
    // A local change that never uploads: the backend refuses.
    db.execute(
        "INSERT INTO todos (id, description, done) VALUES ('local', 'pending', 0)",
        [],
    )
    .await
    .unwrap();
    db.connect(
        Connector {
            endpoint: standin.url(),
            pg_uri: pg.uri(),
            refuse: true,
        },
        fast(),
    )
    .await
    .unwrap();
    db.wait_for_first_sync_at(0, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ids(&db, "alerts").await, ["a1"], "priority 0 applied");
    // The full checkpoint waits for the queue (read-your-writes): t1 is not there.
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    assert_eq!(ids(&db, "todos").await, ["local"]);
    let status = db.status();
    assert_ne!(status.has_synced, Some(true), "{status:?}");
    assert_ne!(status.status_for_priority(3).has_synced, Some(true));
    assert_eq!(status.status_for_priority(0).priority, 0);
    assert!(status.status_for_priority(0).last_synced_at.is_some());

    // A later checkpoint with changes in both priorities: its priority-0 part is applied
    // (partial_checkpoint_complete) while the queue is still pending. (A checkpoint that
    // changes only priority-0 buckets ends with checkpoint_complete alone, as the service
    // sends it, and waits for the queue like any full checkpoint.)
    pgc.batch_execute(
        "BEGIN; INSERT INTO alerts VALUES ('a2', 'second'); \
         INSERT INTO todos VALUES ('t2', 'server', 0); COMMIT",
    )
    .await
    .unwrap();
    eventually("a2 arrives", || async {
        ids(&db, "alerts").await == ["a1", "a2"]
    })
    .await;
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    assert_eq!(ids(&db, "todos").await, ["local"]);
    assert_ne!(
        db.status().has_synced,
        Some(true),
        "no full sync while the queue is pending"
    );
    db.disconnect().await.unwrap();
    standin.shutdown().await;
}
