//! The upload loop: while the CRUD queue is not empty, ask the connector to upload it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::connector::{BackendConnector, ConnectorError};
use crate::db::PowerSyncDatabase;

/// How the upload loop paces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadOptions {
    /// Wait this long after a local write before uploading, so that a burst of writes goes up
    /// together. Default 10 ms (as the official SDKs).
    pub throttle: Duration,
    /// Delays between retries of failed uploads, and after an upload that completed nothing.
    pub retry: Backoff,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            throttle: Duration::from_millis(10),
            retry: Backoff::default(),
        }
    }
}

/// Why the loop ended.
#[derive(Debug)]
pub(crate) enum UploadExit {
    Stopped,
    Fatal(Arc<ConnectorError>),
}

/// Runs until `stop` turns true or the connector fails fatally. Never drops or reorders
/// entries: it only calls the connector, which reads and completes the queue's head. After
/// every drain (queue empty) it sends on `drained`, where the sync client requests a write
/// checkpoint.
pub(crate) async fn upload_loop<C: BackendConnector>(
    db: PowerSyncDatabase,
    connector: Arc<C>,
    options: UploadOptions,
    mut stop: watch::Receiver<bool>,
    drained: Option<mpsc::UnboundedSender<()>>,
) -> UploadExit {
    let mut failures: u32 = 0;
    let mut last_head: Option<i64> = None;
    loop {
        // Drain the queue.
        loop {
            if *stop.borrow() {
                return UploadExit::Stopped;
            }
            let head = match db.crud_head().await {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!("upload loop cannot read the upload queue: {e}");
                    if pause(&mut stop, options.retry.delay(failures)).await {
                        return UploadExit::Stopped;
                    }
                    failures = failures.saturating_add(1);
                    continue;
                }
            };
            let Some(head) = head else { break };
            if last_head == Some(head) {
                let remaining = db.upload_queue_stats().await.map(|s| s.count).unwrap_or(0);
                tracing::warn!(
                    "upload_data returned without completing anything; {remaining} entries remain \
                     (potentially previously uploaded CRUD entry {head}); retrying after a delay"
                );
                if pause(&mut stop, options.retry.delay(failures)).await {
                    return UploadExit::Stopped;
                }
                failures = failures.saturating_add(1);
            } else if last_head.is_some() {
                // The previous upload completed something: progress resets the backoff.
                failures = 0;
            }
            db.inner.status.send_modify(|s| s.uploading = true);
            match connector.upload_data(&db).await {
                Ok(()) => {
                    last_head = Some(head);
                    db.inner.status.send_modify(|s| s.upload_error = None);
                }
                Err(e) if e.is_fatal() => {
                    tracing::error!("upload failed fatally, the upload loop stops: {e}");
                    let e = Arc::new(e);
                    db.inner.status.send_modify(|s| {
                        s.uploading = false;
                        s.upload_error = Some(e.to_string());
                    });
                    return UploadExit::Fatal(e);
                }
                Err(e) => {
                    let delay = options.retry.delay(failures);
                    tracing::warn!("upload failed, retrying in {delay:?}: {e}");
                    last_head = None;
                    db.inner
                        .status
                        .send_modify(|s| s.upload_error = Some(e.to_string()));
                    failures = failures.saturating_add(1);
                    if pause(&mut stop, delay).await {
                        return UploadExit::Stopped;
                    }
                }
            }
        }
        last_head = None;
        db.inner
            .status
            .send_if_modified(|s| std::mem::replace(&mut s.uploading, false));
        if let Some(drained) = &drained {
            let _ = drained.send(());
        }
        // Wait for the next local write (a write during the drain left a permit).
        tokio::select! {
            _ = db.inner.local_write.notified() => {}
            _ = stopped(&mut stop) => return UploadExit::Stopped,
        }
        if pause(&mut stop, options.throttle).await {
            return UploadExit::Stopped;
        }
    }
}

/// Sleeps for `delay`; returns true if `stop` turned true meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stopped(stop) => true,
    };
    stopped || *stop.borrow()
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
