//! Connecting a database to its backend: the upload loop and, with a sync service, the
//! download stream.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connector::{BackendConnector, ConnectorError};
use crate::db::PowerSyncDatabase;
use crate::error::Result;
use crate::upload::{UploadExit, UploadOptions, upload_loop};

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Upload loop pacing.
    pub upload: UploadOptions,
}

/// The running tasks of one connection.
pub(crate) struct SyncHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PowerSyncDatabase {
    /// Connects to the backend: starts the upload loop (uploads run whenever the CRUD queue is
    /// not empty). Connecting again first disconnects.
    pub async fn connect<C: BackendConnector>(
        &self,
        connector: C,
        options: SyncOptions,
    ) -> Result<()> {
        self.disconnect().await?;
        let connector = Arc::new(connector);
        let (stop, stop_rx) = watch::channel(false);
        let (drained_tx, mut drained_rx) = mpsc::unbounded_channel::<()>();
        let db = self.clone();
        let upload = tokio::spawn(async move {
            if let UploadExit::Fatal(e) = upload_loop(
                db.clone(),
                connector,
                options.upload,
                stop_rx,
                Some(drained_tx),
            )
            .await
            {
                let _ = db.inner.fatal.send(Some(e));
            }
        });
        // Without a sync service there is nothing to do after a drain.
        let drain = tokio::spawn(async move { while drained_rx.recv().await.is_some() {} });
        *self.inner.sync.lock().await = Some(SyncHandle {
            stop,
            tasks: vec![upload, drain],
        });
        Ok(())
    }

    /// Stops the upload loop (after the upload in progress, if any) and the sync stream, and
    /// waits for them. Idempotent.
    pub async fn disconnect(&self) -> Result<()> {
        let handle = self.inner.sync.lock().await.take();
        if let Some(handle) = handle {
            let _ = handle.stop.send(true);
            for task in handle.tasks {
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        self.inner.status.send_if_modified(|s| {
            let changed = s.connected || s.connecting || s.uploading || s.downloading;
            s.connected = false;
            s.connecting = false;
            s.uploading = false;
            s.downloading = false;
            changed
        });
        Ok(())
    }

    /// Resolves with the connector's fatal upload error, once one happens. The upload loop has
    /// stopped by then.
    pub async fn fatal_upload_error(&self) -> Arc<ConnectorError> {
        let mut rx = self.inner.fatal.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
