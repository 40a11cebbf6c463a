//! Connecting a database to its backend: the upload loop and the download stream.

mod control;
pub(crate) mod coordinator;
mod credentials;
mod download;
mod priority;
pub(crate) mod status_map;
mod stream;
pub(crate) mod streams;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::connector::{BackendConnector, ConnectorError};
use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};
use crate::upload::{UploadContext, UploadExit, UploadOptions, upload_loop};
use coordinator::SyncHandle;
use credentials::CredentialsCache;
use download::{DownloadContext, checkpoint_loop, download_loop};

/// How to connect.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Download from the sync service (needs core 0.4.6+). `false`: upload only; the service
    /// is never contacted.
    pub download: bool,
    /// Client parameters sent to the service (`parameters` of the sync request).
    pub params: Option<Value>,
    /// Metadata about the application sent with the sync request (`app_metadata`, e.g. the
    /// app's version), which the service logs; needs core 0.4.10. Empty: none is sent.
    pub app_metadata: BTreeMap<String, String>,
    /// Delays between reconnects of the sync stream, after an error or a stream that ended
    /// (a reconnect the core asks for, e.g. after a token refresh, is immediate). Default:
    /// [`SyncOptions::DEFAULT_RECONNECT`], 1 s doubling to 30 s, each delay jittered down by up
    /// to half; the count resets once a checkpoint was synced. The official SDKs wait a fixed
    /// 5 s; use `Backoff { initial, max: initial, jitter: 0.0 }` for that.
    pub retry: Backoff,
    /// Upload loop pacing.
    pub upload: UploadOptions,
    /// How a write checkpoint is obtained after an upload drained the queue.
    pub checkpoint_mode: CheckpointMode,
    /// Request the sync config's default streams (`auto_subscribe: true` and bucket
    /// definitions) besides the explicit subscriptions (`include_defaults`; default `true`).
    pub include_default_streams: bool,
}

/// How a write checkpoint is obtained after the upload loop drained the CRUD queue, so that
/// the uploaded changes come back from the service before local data gives way to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointMode {
    /// `GET /write-checkpoint2.json`: the service hands out the next id (every core and
    /// service; the SDKs' default).
    #[default]
    Legacy,
    /// Checkpoint requests (core 0.5.0, service 1.24.0): the core hands out the ids, the
    /// client posts each to `POST /sync/checkpoint-request` (once per connection to seed the
    /// counter, then after each upload). `connect` refuses it on older cores; a service
    /// without the route makes each connection fail with an error naming it.
    Requests,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            download: true,
            params: None,
            app_metadata: BTreeMap::new(),
            retry: Self::DEFAULT_RECONNECT,
            upload: UploadOptions::default(),
            checkpoint_mode: CheckpointMode::Legacy,
            include_default_streams: true,
        }
    }
}

impl SyncOptions {
    /// The default reconnect delays: 1 s doubling to 30 s, jittered by up to half. A fleet of
    /// clients that lost a struggling service comes back spread out and at most about twice a
    /// minute each, not every 100 ms.
    pub const DEFAULT_RECONNECT: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        jitter: 0.5,
    };

    /// Upload only: the upload loop runs, the sync service is never contacted.
    pub fn upload_only() -> Self {
        Self {
            download: false,
            ..Self::default()
        }
    }

    /// Sets the upload loop's pacing.
    pub fn with_upload(mut self, upload: UploadOptions) -> Self {
        self.upload = upload;
        self
    }

    /// Sends client parameters with the sync request (`parameters`: a JSON object, read by
    /// sync rules as `request.parameters()`).
    pub fn with_params(mut self, params: Value) -> Self {
        self.params = Some(params);
        self
    }

    /// Sends `app_metadata` with the sync request.
    pub fn with_app_metadata<K: Into<String>, V: Into<String>>(
        mut self,
        metadata: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.app_metadata = metadata
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Sets how write checkpoints are obtained ([`CheckpointMode`]).
    pub fn with_checkpoint_mode(mut self, mode: CheckpointMode) -> Self {
        self.checkpoint_mode = mode;
        self
    }

    /// Sets [`include_default_streams`](Self::include_default_streams).
    pub fn with_default_streams(mut self, include: bool) -> Self {
        self.include_default_streams = include;
        self
    }

    /// Sets the reconnect delays (first delay and cap).
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }
}

impl PowerSyncDatabase {
    /// Connects to the backend: starts the upload loop (uploads run whenever the CRUD queue is
    /// not empty) and, unless upload-only, the download stream from the sync service.
    /// Connecting again first disconnects. Download sync with a core older than 0.4.6 is
    /// [`Error::UnsupportedByCore`].
    pub async fn connect<C: BackendConnector>(
        &self,
        connector: C,
        options: SyncOptions,
    ) -> Result<()> {
        // The raw tables go into every `start` request; the schema cannot change while
        // connected.
        let start_schema = self
            .inner
            .schema
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_schema()?;
        if options.download && !self.capabilities()?.can_download_sync() {
            return Err(Error::UnsupportedByCore {
                feature: "download sync (powersync_control)",
                needs: "0.4.6",
                found: self.core_version().clone(),
            });
        }
        if options.checkpoint_mode == CheckpointMode::Requests
            && !self.core_version().at_least(0, 5, 0)
        {
            return Err(Error::UnsupportedByCore {
                feature: "checkpoint requests",
                needs: "0.5.0",
                found: self.core_version().clone(),
            });
        }
        if !options.app_metadata.is_empty() && !self.core_version().at_least(0, 4, 10) {
            return Err(Error::UnsupportedByCore {
                feature: "app_metadata",
                needs: "0.4.10",
                found: self.core_version().clone(),
            });
        }
        self.disconnect().await?;
        let shared = self.inner.sync.shared.clone();
        let _ = shared.fatal.send(None);
        let connector = Arc::new(connector);
        let (stop, stop_rx) = watch::channel(false);
        let (drained_tx, drained_rx) = mpsc::unbounded_channel::<()>();
        let upload = coordinator::spawn({
            let ctx = UploadContext {
                db: self.downgrade(),
                shared: shared.clone(),
                events: self.inner.pool.events.clone(),
                connector: connector.clone(),
                options: options.upload.clone(),
            };
            let stop = stop_rx.clone();
            let drained = options.download.then_some(drained_tx);
            let shared = shared.clone();
            async move {
                if let UploadExit::Fatal(e) = upload_loop(ctx, stop, drained).await {
                    let _ = shared.fatal.send(Some(e));
                }
            }
        });
        let mut tasks = vec![upload];
        if options.download {
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| Error::service_caused("cannot build the HTTP client", e))?;
            let ctx = Arc::new(DownloadContext {
                db: self.downgrade(),
                shared,
                events: self.inner.pool.events.clone(),
                caps: self.capabilities()?,
                credentials: Arc::new(CredentialsCache::new(connector)),
                client,
                options,
                start_schema,
            });
            let (checkpointed_tx, checkpointed_rx) = mpsc::unbounded_channel::<()>();
            tasks.push(coordinator::spawn(checkpoint_loop(
                ctx.clone(),
                stop_rx.clone(),
                drained_rx,
                checkpointed_tx,
            )));
            tasks.push(coordinator::spawn(download_loop(
                ctx,
                stop_rx,
                checkpointed_rx,
            )));
        }
        *self.inner.sync.running.lock().await = Some(SyncHandle { stop, tasks });
        Ok(())
    }

    /// Stops the upload loop (after the upload in progress, if any) and the sync stream
    /// (`powersync_control('stop')`), and waits for them. Idempotent.
    pub async fn disconnect(&self) -> Result<()> {
        self.inner.sync.stop().await;
        Ok(())
    }

    /// Disconnects, then deletes all synced data, the upload queue and the sync state
    /// (`powersync_clear`). With `clear_local`, local-only tables are emptied too. The status
    /// then reports no sync: `has_synced` false, no `last_synced_at`, no per-priority entries.
    pub async fn disconnect_and_clear(&self, clear_local: bool) -> Result<()> {
        self.disconnect().await?;
        let flags = i64::from(clear_local);
        self.internal_write_transaction(move |tx| -> Result<()> {
            tx.query_row("SELECT powersync_clear(?1)", [flags], |_| Ok(()))?;
            Ok(())
        })
        .await?;
        // `powersync_clear` empties tables with SQLite's truncate optimisation, which the
        // update hook does not see: every table may have changed.
        self.inner
            .pool
            .events
            .send(Arc::new(self.inner.tables.all_tables()));
        self.inner.sync.shared.status.send_modify(|s| {
            s.has_synced = Some(false);
            s.last_synced_at = None;
            // The per-priority entries describe data that was just deleted.
            s.priority_status.clear();
            // So do the stream subscriptions (`powersync_clear` deletes them).
            s.streams.clear();
        });
        Ok(())
    }

    /// Resolves with the connector's fatal upload error, once one happens. The upload loop has
    /// stopped by then.
    pub async fn fatal_upload_error(&self) -> Arc<ConnectorError> {
        let mut rx = self.inner.sync.shared.fatal.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The background tasks (upload, download, write checkpoints, credential prefetches) of
    /// every database in this process that have not ended yet; for tests that check that
    /// nothing outlives its database.
    #[doc(hidden)]
    pub fn background_tasks() -> usize {
        coordinator::tasks_alive()
    }

    /// Waits until a full checkpoint has been applied (`has_synced`), at most `timeout`.
    pub async fn wait_for_first_sync(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.watch_status();
        tokio::time::timeout(timeout, rx.wait_for(|s| s.has_synced == Some(true)))
            .await
            .map_err(|_| Error::Timeout(timeout, "the first sync"))?
            .map_err(|_| Error::Closed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_defaults_do_not_hammer_the_service() {
        let retry = SyncOptions::default().retry;
        assert_eq!(retry, SyncOptions::DEFAULT_RECONNECT);
        for _ in 0..100 {
            assert!(retry.delay(0) >= Duration::from_millis(500), "first delay");
        }
        assert!(retry.max >= Duration::from_secs(30), "cap");
        assert!(
            retry.delay(10) >= Duration::from_secs(15),
            "grows to the cap"
        );
    }
}
