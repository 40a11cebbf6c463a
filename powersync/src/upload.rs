//! The upload loop: while the CRUD queue is not empty, ask the connector to upload it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::connector::{BackendConnector, ConnectorError};
use crate::db::WeakDatabase;
use crate::db::pool::PoolEvents;
use crate::sync::coordinator::SyncShared;

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

/// What the upload task holds: the database only weakly, so that dropping the last handle
/// ends the loop.
pub(crate) struct UploadContext<C> {
    pub(crate) db: WeakDatabase,
    pub(crate) shared: Arc<SyncShared>,
    pub(crate) events: Arc<PoolEvents>,
    pub(crate) connector: Arc<C>,
    pub(crate) options: UploadOptions,
}

/// What one step of draining the queue asks the loop to do next.
enum Next {
    Drained,
    Upload,
    Pause(Duration),
    Stop(UploadExit),
}

impl<C: BackendConnector> UploadContext<C> {
    /// One upload: read the head, call the connector once. Holds the database only meanwhile.
    async fn step(&self, failures: &mut u32, last_head: &mut Option<i64>) -> Next {
        let Some(db) = self.db.upgrade() else {
            return Next::Stop(UploadExit::Stopped);
        };
        let retry = &self.options.retry;
        let head = match db.crud_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return Next::Drained,
            Err(e) => {
                tracing::warn!("upload loop cannot read the upload queue: {e}");
                let delay = retry.delay(*failures);
                *failures = failures.saturating_add(1);
                return Next::Pause(delay);
            }
        };
        if *last_head == Some(head) {
            let remaining = db.upload_queue_stats().await.map(|s| s.count).unwrap_or(0);
            tracing::warn!(
                "upload_data returned without completing anything; {remaining} entries remain \
                 (potentially previously uploaded CRUD entry {head}); retrying after a delay"
            );
            let delay = retry.delay(*failures);
            *failures = failures.saturating_add(1);
            *last_head = None;
            return Next::Pause(delay);
        } else if last_head.is_some() {
            // The previous upload completed something: progress resets the backoff.
            *failures = 0;
        }
        self.shared.status.send_modify(|s| s.uploading = true);
        match self.connector.upload_data(&db).await {
            Ok(()) => {
                *last_head = Some(head);
                self.shared.status.send_modify(|s| s.upload_error = None);
                Next::Upload
            }
            Err(e) if e.is_fatal() => {
                tracing::error!("upload failed fatally, the upload loop stops: {e}");
                let e = Arc::new(e);
                self.shared.status.send_modify(|s| {
                    s.uploading = false;
                    s.upload_error = Some(e.to_string());
                });
                Next::Stop(UploadExit::Fatal(e))
            }
            Err(e) => {
                let delay = retry.delay(*failures);
                tracing::warn!("upload failed, retrying in {delay:?}: {e}");
                *last_head = None;
                self.shared
                    .status
                    .send_modify(|s| s.upload_error = Some(e.to_string()));
                *failures = failures.saturating_add(1);
                Next::Pause(delay)
            }
        }
    }
}

/// Runs until `stop` turns true (or its sender is dropped with the database) or the connector
/// fails fatally. Never drops or reorders entries: it only calls the connector, which reads
/// and completes the queue's head. After every drain (queue empty) it sends on `drained`, where
/// the sync client requests a write checkpoint.
pub(crate) async fn upload_loop<C: BackendConnector>(
    ctx: UploadContext<C>,
    mut stop: watch::Receiver<bool>,
    drained: Option<mpsc::UnboundedSender<()>>,
) -> UploadExit {
    let mut failures: u32 = 0;
    let mut last_head: Option<i64> = None;
    loop {
        // Drain the queue.
        loop {
            if is_stopped(&stop) {
                return UploadExit::Stopped;
            }
            match ctx.step(&mut failures, &mut last_head).await {
                Next::Drained => break,
                Next::Upload => {}
                Next::Pause(delay) => {
                    if pause(&mut stop, delay).await {
                        return UploadExit::Stopped;
                    }
                }
                Next::Stop(exit) => return exit,
            }
        }
        last_head = None;
        ctx.shared
            .status
            .send_if_modified(|s| std::mem::replace(&mut s.uploading, false));
        if let Some(drained) = &drained {
            let _ = drained.send(());
        }
        // Wait for the next local write (a write during the drain left a permit).
        tokio::select! {
            _ = ctx.events.app_commit.notified() => {}
            _ = stopped(&mut stop) => return UploadExit::Stopped,
        }
        if pause(&mut stop, ctx.options.throttle).await {
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
    stopped || is_stopped(stop)
}

/// Whether `stop` is true or its sender is gone (the database was dropped).
pub(crate) fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
