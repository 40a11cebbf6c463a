//! `disconnect_and_clear` resets the sync status, the per-priority entries included: after
//! a priority-0 bucket synced against the stand-in (over real PostgreSQL, with the real
//! core), clearing the database must not leave `status_for_priority(0)` reporting a sync of
//! data that has just been deleted.

mod common;

use std::time::Duration;

use powersync::schema::{Column, Schema, Table};
use powersync::{
    BackendConnector, ConnectorError, DatabaseOptions, PowerSyncCredentials, PowerSyncDatabase,
    SyncOptions,
};
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

const PRIORITY_RULES: &str = "bucket_definitions:\n  urgent:\n    priority: 0\n    data:\n      \
     - SELECT * FROM alerts\n  global:\n    data:\n      - SELECT * FROM todos\n";

/// Hands out tokens and refuses every upload, so a local change keeps the queue non-empty
/// and only priority 0 syncs.
struct Refusing {
    endpoint: String,
}

impl BackendConnector for Refusing {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Ok(PowerSyncCredentials {
            endpoint: self.endpoint.clone(),
            token: TestKey::primary()
                .token("u1", 300)
                .map_err(|e| ConnectorError::retryable(e.to_string()))?,
        })
    }

    async fn upload_data(&self, _db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        Err(ConnectorError::retryable("the backend is down (test)"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_clear_resets_the_priority_status() {
    let pg = TestPostgres::start().expect("start PostgreSQL (apt-get install -y postgresql)");
    let pgc = pg.client().await.unwrap();
    pgc.batch_execute(
        "CREATE TABLE todos (id TEXT PRIMARY KEY, description TEXT NOT NULL);
         CREATE TABLE alerts (id TEXT PRIMARY KEY, message TEXT NOT NULL);
         CREATE PUBLICATION powersync FOR TABLE todos, alerts;
         INSERT INTO alerts VALUES ('a1', 'first'); INSERT INTO todos VALUES ('t1', 'server');",
    )
    .await
    .unwrap();
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(PRIORITY_RULES).unwrap(),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    let standin = StandIn::start(config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new(vec![
        Table::new("todos", vec![Column::text("description")]),
        Table::new("alerts", vec![Column::text("message")]),
    ]);
    let db = PowerSyncDatabase::open(
        dir.path().join("client.db"),
        &schema,
        DatabaseOptions::default().with_core(common::default_core()),
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO todos (id, description) VALUES ('local', 'pending')",
        [],
    )
    .await
    .unwrap();
    db.connect(
        Refusing {
            endpoint: standin.url(),
        },
        SyncOptions::default(),
    )
    .await
    .unwrap();
    db.wait_for_first_sync_at(0, Duration::from_secs(60))
        .await
        .unwrap();
    let before = db.status();
    assert_eq!(
        before.status_for_priority(0).has_synced,
        Some(true),
        "{before:?}"
    );
    assert!(!before.priority_status.is_empty(), "{before:?}");

    db.disconnect_and_clear(false).await.unwrap();
    let after = db.status();
    assert!(after.priority_status.is_empty(), "{after:?}");
    assert_eq!(after.has_synced, Some(false), "{after:?}");
    let urgent = after.status_for_priority(0);
    assert_eq!(urgent.has_synced, Some(false), "{after:?}");
    assert_eq!(urgent.last_synced_at, None, "{after:?}");
    let alerts: i64 = db
        .query("SELECT count(*) FROM alerts", [], |r| r.get(0))
        .await
        .unwrap()[0];
    assert_eq!(alerts, 0, "the synced rows are gone");
    standin.shutdown().await;
}
