//! The upload loop against in-process connectors: retries, fatal errors, concurrent writes,
//! a stuck connector, disconnect.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use powersync::{
    BackendConnector, Backoff, ConnectorError, Error, PowerSyncCredentials, PowerSyncDatabase,
    SyncOptions, UploadOptions,
};
use tokio::sync::Mutex;

fn fast_options() -> SyncOptions {
    SyncOptions::upload_only().with_upload(UploadOptions {
        throttle: Duration::from_millis(1),
        retry: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            jitter: 0.5,
        },
    })
}

/// A backend that stores what it receives; fails the first `fail_first` calls.
#[derive(Clone, Default)]
struct RecordingBackend {
    received: Arc<Mutex<Vec<String>>>,
    calls: Arc<AtomicUsize>,
    /// When each call returned.
    returned: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    fail_first: usize,
    fatal: bool,
    write_during_upload: bool,
    complete: bool,
}

impl BackendConnector for RecordingBackend {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Err(ConnectorError::fatal(
            "upload-only test connector has no service",
        ))
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.fail_first {
            return Err(if self.fatal {
                ConnectorError::fatal(format!("backend refuses (call {call})"))
            } else {
                ConnectorError::retryable(format!("backend unavailable (call {call})"))
            });
        }
        let Some(batch) = db
            .crud_batch(5)
            .await
            .map_err(|e| ConnectorError::retryable(e.to_string()))?
        else {
            return Ok(());
        };
        if self.write_during_upload && call.is_multiple_of(3) {
            db.execute(
                "INSERT INTO todos(id, description) VALUES (uuid(), 'during upload')",
                [],
            )
            .await
            .map_err(|e| ConnectorError::fatal(e.to_string()))?;
        }
        if !self.complete {
            self.returned
                .lock()
                .unwrap()
                .push(std::time::Instant::now());
            return Ok(());
        }
        let mut received = self.received.lock().await;
        received.extend(batch.crud.iter().map(|e| e.id.clone()));
        drop(received);
        batch
            .complete()
            .await
            .map_err(|e| ConnectorError::fatal(e.to_string()))
    }
}

async fn write_rows(db: &PowerSyncDatabase, prefix: &str, transactions: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for t in 0..transactions {
        let pair = vec![format!("{prefix}{t}a"), format!("{prefix}{t}b")];
        ids.extend(pair.clone());
        db.write_transaction(move |tx| {
            for id in &pair {
                tx.execute("INSERT INTO todos(id, description) VALUES (?1, 'x')", [id])?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }
    ids
}

async fn wait_until_empty(db: &PowerSyncDatabase) {
    testkit::eventually_async(
        "the upload queue to drain and the upload to finish",
        Duration::from_secs(20),
        || async { db.upload_queue_stats().await.unwrap().count == 0 && !db.status().uploading },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn retryable_failures_are_retried_and_every_entry_arrives_once_in_order() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let backend = RecordingBackend {
        fail_first: 4,
        complete: true,
        ..Default::default()
    };
    let before = write_rows(&db, "pre", 3).await;
    db.connect(backend.clone(), fast_options()).await.unwrap();
    let during = write_rows(&db, "live", 10).await;
    wait_until_empty(&db).await;
    let received = backend.received.lock().await.clone();
    assert_eq!(
        received,
        [before, during].concat(),
        "exactly once, in queue order"
    );
    assert!(backend.calls.load(Ordering::SeqCst) > 4);
    assert_eq!(
        db.status().upload_error,
        None,
        "cleared by the successful uploads"
    );
    db.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_fatal_error_stops_the_loop_is_reported_and_loses_nothing() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let backend = RecordingBackend {
        fail_first: usize::MAX,
        fatal: true,
        complete: true,
        ..Default::default()
    };
    let ids = write_rows(&db, "f", 2).await;
    db.connect(backend.clone(), fast_options()).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), db.fatal_upload_error())
        .await
        .expect("reported");
    assert!(
        err.is_fatal() && err.message.contains("backend refuses"),
        "{err}"
    );
    assert!(
        db.status()
            .upload_error
            .unwrap()
            .contains("backend refuses")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        1,
        "no call after the fatal error"
    );
    assert_eq!(
        db.upload_queue_stats().await.unwrap().count as usize,
        ids.len(),
        "queue intact"
    );
    db.disconnect().await.unwrap();
}

#[tokio::test]
async fn local_writes_made_during_uploads_are_uploaded_too() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let backend = RecordingBackend {
        write_during_upload: true,
        complete: true,
        ..Default::default()
    };
    db.connect(backend.clone(), fast_options()).await.unwrap();
    let ids = write_rows(&db, "w", 15).await;
    wait_until_empty(&db).await;
    let received = backend.received.lock().await.clone();
    let extra: Vec<_> = received.iter().filter(|id| !ids.contains(id)).collect();
    assert!(!extra.is_empty(), "the connector wrote during uploads");
    let mut uploaded_test_rows: Vec<_> = received
        .iter()
        .filter(|id| ids.contains(id))
        .cloned()
        .collect();
    assert_eq!(uploaded_test_rows, ids, "in order");
    uploaded_test_rows.sort();
    uploaded_test_rows.dedup();
    assert_eq!(uploaded_test_rows.len(), ids.len(), "no duplicates");
    let local: Vec<i64> = db
        .query("SELECT count(*) FROM todos", [], |r| r.get(0))
        .await
        .unwrap();
    assert_eq!(
        local[0] as usize,
        received.len(),
        "every local row was uploaded exactly once"
    );
    db.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_connector_that_completes_nothing_is_retried_with_backoff_not_in_a_busy_loop() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let backend = RecordingBackend {
        complete: false,
        ..Default::default()
    };
    write_rows(&db, "s", 1).await;
    let options = SyncOptions::upload_only().with_upload(UploadOptions {
        throttle: Duration::from_millis(1),
        retry: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            jitter: 0.0,
        },
    });
    db.connect(backend.clone(), options).await.unwrap();
    testkit::eventually_async(
        "the loop to retry (4 calls)",
        Duration::from_secs(30),
        || async { backend.returned.lock().unwrap().len() >= 4 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    db.disconnect().await.unwrap();
    // Each retry waits at least the backoff delay after the previous call returned (a lower
    // bound, which load can only lengthen); a busy loop would call again at once.
    let returned = backend.returned.lock().unwrap().clone();
    for pair in returned.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(50), "retried after {gap:?}");
    }
    assert_eq!(
        db.upload_queue_stats().await.unwrap().count,
        2,
        "nothing completed, nothing lost"
    );
}

#[tokio::test]
async fn after_disconnect_nothing_is_uploaded_and_reconnect_resumes() {
    let (_dir, db) = common::open_temp(common::default_core()).await;
    let backend = RecordingBackend {
        complete: true,
        ..Default::default()
    };
    db.connect(backend.clone(), fast_options()).await.unwrap();
    let first = write_rows(&db, "a", 2).await;
    wait_until_empty(&db).await;
    db.disconnect().await.unwrap();
    db.disconnect().await.unwrap();
    let second = write_rows(&db, "b", 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*backend.received.lock().await, first);
    db.connect(backend.clone(), fast_options()).await.unwrap();
    wait_until_empty(&db).await;
    assert_eq!(*backend.received.lock().await, [first, second].concat());
    db.close().await.unwrap();
    assert!(matches!(db.upload_queue_stats().await, Err(Error::Closed)));
}
