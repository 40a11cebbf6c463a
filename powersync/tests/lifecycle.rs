//! Lifecycle: dropping the last handle of a connected database ends everything it started.
//! Alone in its test binary, because it counts the crate's background tasks process-wide.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use std::time::Duration;

use pg::{PgConnector, eventually, fast, open_client, postgres, standin_config};
use powersync::PowerSyncDatabase;
use standin::StandIn;

const WAIT: Duration = Duration::from_secs(30);

/// Dropping every handle while connected ends the stream (the proxy in front of the stand-in
/// sees the connection close), closes the connections (SQLite removes the WAL file with the
/// last connection) and leaves no task behind (the crate counts its tasks; this test is alone in its binary,
/// so no other database counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_sync_and_closes_the_database() {
    let (pg, _pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let proxy = proxy::Proxy::start(standin.addr()).await;
    let (dir, db) = open_client(common::default_core()).await;
    let wal = dir.path().join("client.db-wal");
    assert_eq!(PowerSyncDatabase::background_tasks(), 0);
    db.connect(PgConnector::new(&proxy.url(), &pg, "drop"), fast())
        .await
        .unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('x', 'y')", [])
        .await
        .unwrap();
    eventually(WAIT, "the upload", || async {
        db.upload_queue_stats().await.unwrap().count == 0
    })
    .await;
    assert!(proxy.open_connections() >= 1);
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(
        PowerSyncDatabase::background_tasks(),
        3,
        "upload, download and write-checkpoint tasks run"
    );
    drop(db);
    eventually(WAIT, "the stream to close at the service", || async {
        proxy.open_connections() == 0
    })
    .await;
    eventually(WAIT, "the connections to close", || async { !wal.exists() }).await;
    eventually(WAIT, "no task left", || async {
        PowerSyncDatabase::background_tasks() == 0
    })
    .await;
    standin.shutdown().await;
}
