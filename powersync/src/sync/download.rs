//! The download loop: drives the core's `powersync_control` state machine with the sync
//! service's stream, and handles everything else that must go through it in order (completed
//! uploads with their write checkpoints, refreshed credentials).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::control::{Instruction, Payload};
use super::credentials::CredentialsCache;
use super::status_map::apply_core_status;
use super::stream::{self, Line, LineStream};
use super::{CheckpointMode, SyncOptions};
use crate::connector::BackendConnector;
use crate::crud::{MAX_OP_ID, set_write_checkpoint_target};
use crate::db::WeakDatabase;
use crate::db::pool::PoolEvents;
use crate::error::{Error, Result};
use crate::sync::coordinator::SyncShared;
use powersync_sys::{CoreCapabilities, TimeUnit, WriteCheckpoint};

/// Everything the sync task owns.
pub(crate) struct DownloadContext<C> {
    /// Held weakly: dropping the last database handle ends the sync tasks.
    pub(crate) db: WeakDatabase,
    pub(crate) shared: Arc<SyncShared>,
    pub(crate) events: Arc<PoolEvents>,
    /// What the loaded core can do (probed, not inferred from its version).
    pub(crate) caps: &'static CoreCapabilities,
    pub(crate) credentials: Arc<CredentialsCache<C>>,
    pub(crate) client: reqwest::Client,
    pub(crate) options: SyncOptions,
    /// The `schema` of the `start` request: present when the schema has raw tables.
    pub(crate) start_schema: Option<Value>,
}

/// What the instructions of one `powersync_control` call asked for.
#[derive(Default)]
struct Step {
    establish: Option<Value>,
    /// Requests mode: the checkpoint request that seeds the core's counter for this connection.
    checkpoint_request: Option<Value>,
    close: Option<bool>,
    completed_sync: bool,
    prefetch_credentials: bool,
    /// `FetchCredentials { did_expire: true }`: the cached token must not be presented again.
    credentials_expired: bool,
}

/// How an iteration ended.
enum Iteration {
    Stopped,
    Reconnect {
        immediately: bool,
        error: Option<Error>,
        synced: bool,
    },
}

/// Aborts a spawned task when dropped: a credentials prefetch does not outlive its iteration.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<C: BackendConnector> DownloadContext<C> {
    /// The write-checkpoint target goes through `powersync_control` (0.5+) rather than
    /// `ps_buckets.$local`.
    fn checkpoint_request_ops(&self) -> bool {
        self.caps.write_checkpoint == WriteCheckpoint::CheckpointRequestOps
    }

    /// `last_synced_at` in the core's status is in microseconds (0.5+) rather than seconds.
    fn micros(&self) -> bool {
        self.caps.last_synced_at == Some(TimeUnit::Microseconds)
    }

    /// Applies instructions: logs, status, and what the loop must do next.
    fn apply(&self, instructions: Vec<Instruction>, step: &mut Step) {
        for instruction in instructions {
            match instruction {
                Instruction::LogLine { severity, line } => match severity.as_str() {
                    "WARNING" => tracing::warn!(target: "powersync::core", "{line}"),
                    "INFO" => tracing::info!(target: "powersync::core", "{line}"),
                    _ => tracing::debug!(target: "powersync::core", "{line}"),
                },
                Instruction::UpdateSyncStatus { status } => {
                    let micros = self.micros();
                    self.shared
                        .status
                        .send_modify(|s| apply_core_status(s, &status, micros));
                }
                Instruction::EstablishSyncStream {
                    request,
                    checkpoint_request,
                } => {
                    step.establish = Some(request);
                    step.checkpoint_request = checkpoint_request;
                }
                Instruction::FetchCredentials { did_expire } => {
                    if did_expire {
                        // A CloseSyncStream follows; the next iteration must fetch new
                        // credentials instead of presenting the expired token again.
                        step.credentials_expired = true;
                        step.prefetch_credentials = false;
                    } else {
                        step.prefetch_credentials = true;
                    }
                }
                Instruction::CloseSyncStream { hide_disconnect } => {
                    step.close = Some(hide_disconnect)
                }
                Instruction::DidCompleteSync => {
                    step.completed_sync = true;
                    self.shared.status.send_modify(|s| s.download_error = None);
                }
                Instruction::Unknown(tag) => {
                    tracing::debug!("ignoring unknown core instruction {tag}")
                }
            }
        }
    }

    async fn control(&self, op: &'static str, payload: Payload, step: &mut Step) -> Result<()> {
        // The database is held for this call only.
        let instructions = self.db.get()?.control(op, payload).await?;
        self.apply(instructions, step);
        Ok(())
    }

    fn start_payload(&self) -> String {
        let mut start = json!({ "parameters": self.options.params });
        if !self.options.app_metadata.is_empty() {
            start["app_metadata"] = json!(self.options.app_metadata);
        }
        if let Some(schema) = &self.start_schema {
            start["schema"] = schema.clone();
        }
        if self.options.checkpoint_mode == CheckpointMode::Requests {
            start["checkpoint_mode"] = json!("requests");
        }
        if self.caps.has_control_op("subscriptions") {
            start["include_defaults"] = json!(self.options.include_default_streams);
            start["active_streams"] = self.shared.streams.active_json();
        }
        start.to_string()
    }

    /// One iteration: `start`, open the stream, feed it line by line until it closes. Nothing
    /// slow runs on this path: the credentials fetch and the stream request race `stop`, the
    /// write-checkpoint request runs in [`checkpoint_loop`], and prefetches run in their own
    /// task whose result only this iteration can receive.
    async fn iteration(
        self: &Arc<Self>,
        stop: &mut watch::Receiver<bool>,
        checkpointed: &mut mpsc::UnboundedReceiver<()>,
    ) -> Iteration {
        let failed = |e: Error| Iteration::Reconnect {
            immediately: false,
            error: Some(e),
            synced: false,
        };
        let mut step = Step::default();
        // Subscriptions that change from here on reach this iteration as
        // `update_subscriptions`; `start` carries the ones held now.
        let mut streams_changed = self.shared.streams.watch();
        let update_subscriptions = self.caps.has_control_op("update_subscriptions");
        if let Err(e) = self
            .control("start", Payload::Text(self.start_payload()), &mut step)
            .await
        {
            return failed(e);
        }
        let Some(request) = step.establish.take() else {
            return failed(Error::service("the core did not ask for a sync stream"));
        };
        let credentials = tokio::select! {
            _ = crate::upload::stopped(stop) => return Iteration::Stopped,
            c = self.credentials.get() => match c {
                Ok(c) => c,
                Err(e) => return failed(e),
            },
        };
        let opened = tokio::select! {
            _ = crate::upload::stopped(stop) => return Iteration::Stopped,
            opened = stream::open(&self.client, &credentials, &request) => opened,
        };
        let mut lines: LineStream = match opened {
            Ok(lines) => lines,
            Err(e) => {
                if e.is_unauthorized() {
                    self.credentials.invalidate();
                }
                return failed(e);
            }
        };
        if self.caps.has_control_op("connection")
            && let Err(e) = self
                .control("connection", Payload::Text("established".into()), &mut step)
                .await
        {
            return failed(e);
        }
        // Requests mode: the service learns this connection's first id, the core continues
        // from what the service stored (an id it already handed out is never used again).
        if let Some(request) = step.checkpoint_request.take() {
            let seeded = tokio::select! {
                _ = crate::upload::stopped(stop) => return Iteration::Stopped,
                seeded = self.seed_checkpoint_requests(&credentials, &request) => seeded,
            };
            if let Err(e) = seeded {
                return failed(e);
            }
        }
        // Uploads may have waited for a connection.
        self.events.app_commit.notify_one();
        // Refreshed credentials reach only this iteration: the receiver dies with it, so a
        // prefetch that finishes late cannot send `refreshed_token` into the next one.
        let (refreshed_tx, mut refreshed) = mpsc::unbounded_channel::<()>();
        let mut prefetch: Option<AbortOnDrop> = None;
        let mut synced = false;
        loop {
            if std::mem::take(&mut step.credentials_expired) {
                self.credentials.invalidate();
            }
            if std::mem::take(&mut step.prefetch_credentials)
                && prefetch.as_ref().is_none_or(|p| p.0.is_finished())
            {
                let credentials = self.credentials.clone();
                let refreshed_tx = refreshed_tx.clone();
                prefetch = Some(AbortOnDrop(super::coordinator::spawn(async move {
                    match credentials.refresh().await {
                        Ok(()) => {
                            let _ = refreshed_tx.send(());
                        }
                        Err(e) => tracing::warn!("prefetching credentials failed: {}", e.report()),
                    }
                })));
            }
            synced |= std::mem::take(&mut step.completed_sync);
            if let Some(hide_disconnect) = step.close {
                return Iteration::Reconnect {
                    immediately: hide_disconnect,
                    error: None,
                    synced,
                };
            }
            let result = tokio::select! {
                biased;
                _ = crate::upload::stopped(stop) => return Iteration::Stopped,
                Some(()) = checkpointed.recv() => self.control("completed_upload", Payload::Null, &mut step).await,
                Some(()) = refreshed.recv() => self.control("refreshed_token", Payload::Null, &mut step).await,
                Ok(()) = streams_changed.changed(), if update_subscriptions => {
                    let active = self.shared.streams.active_json().to_string();
                    self.control("update_subscriptions", Payload::Text(active), &mut step).await
                }
                line = lines.next() => match line {
                    Ok(Some(Line::Text(text))) => self.control("line_text", Payload::Text(text), &mut step).await,
                    Ok(Some(Line::Binary(blob))) => self.control("line_binary", Payload::Binary(blob), &mut step).await,
                    Ok(None) => {
                        if self.caps.has_control_op("connection")
                            && let Err(e) = self.control("connection", Payload::Text("end".into()), &mut step).await
                        {
                            return failed(e);
                        }
                        if std::mem::take(&mut step.credentials_expired) {
                            self.credentials.invalidate();
                        }
                        return Iteration::Reconnect { immediately: step.close.unwrap_or(false), error: None, synced };
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                return Iteration::Reconnect {
                    immediately: false,
                    error: Some(e),
                    synced,
                };
            }
        }
    }

    /// Requests mode: posts the connection's checkpoint request and seeds the core's counter
    /// with the id the service stored.
    async fn seed_checkpoint_requests(
        &self,
        credentials: &crate::connector::PowerSyncCredentials,
        request: &Value,
    ) -> Result<()> {
        let id = stream::checkpoint_request(&self.client, credentials, request).await?;
        self.db
            .get()?
            .internal_write_transaction(move |tx| -> Result<()> {
                tx.query_row(
                    "SELECT powersync_control('seed_checkpoint_request_id', ?1)",
                    [id],
                    |_| Ok(()),
                )?;
                Ok(())
            })
            .await
    }

    /// Requests a write checkpoint if local writes are pending (target = MAX) and sets it as
    /// the target unless new writes arrived meanwhile.
    async fn request_write_checkpoint(&self) -> Result<()> {
        let core_0_5 = self.checkpoint_request_ops();
        let requests = self.options.checkpoint_mode == CheckpointMode::Requests;
        let (pending, client_id) = {
            // The database is held only around its own calls, not across the HTTP request.
            let db = self.db.get()?;
            let pending: Option<(i64, i64)> = db
                .internal_write_transaction(move |tx| -> Result<Option<(i64, i64)>> {
                    let target: Option<i64> = if core_0_5 {
                        tx.query_row(
                            "SELECT powersync_control('target_checkpoint_request_id', NULL)",
                            [],
                            |r| r.get(0),
                        )?
                    } else {
                        use rusqlite::OptionalExtension;
                        tx.query_row(
                            "SELECT target_op FROM ps_buckets WHERE name = '$local'",
                            [],
                            |r| r.get(0),
                        )
                        .optional()?
                        .flatten()
                    };
                    if target != Some(MAX_OP_ID) {
                        return Ok(None);
                    }
                    use rusqlite::OptionalExtension;
                    let seq: Option<i64> = tx
                        .query_row(
                            "SELECT seq FROM sqlite_sequence WHERE name = 'ps_crud'",
                            [],
                            |r| r.get(0),
                        )
                        .optional()?;
                    // Requests mode: the id comes from the core (it needs this connection's
                    // iteration and its seeded counter).
                    let id = if requests && seq.is_some() {
                        tx.query_row(
                            "SELECT powersync_control('next_checkpoint_request_id', NULL)",
                            [],
                            |r| r.get::<_, i64>(0),
                        )?
                    } else {
                        0
                    };
                    Ok(seq.map(|seq| (seq, id)))
                })
                .await?;
            (pending, db.client_id().await?)
        };
        let Some((seq_before, request_id)) = pending else {
            return Ok(());
        };
        let credentials = self.credentials.get().await?;
        let checkpoint = if requests {
            let body = json!({
                "client_id": client_id,
                "checkpoint_request_id": request_id.to_string(),
            });
            stream::checkpoint_request(&self.client, &credentials, &body).await?
        } else {
            stream::write_checkpoint(&self.client, &credentials, &client_id).await?
        };
        let applied = self
            .db
            .get()?
            .internal_write_transaction(move |tx| -> Result<bool> {
                let queued: bool =
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM ps_crud)", [], |r| r.get(0))?;
                let seq: Option<i64> = tx.query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'ps_crud'",
                    [],
                    |r| r.get(0),
                )?;
                if queued || seq != Some(seq_before) {
                    return Ok(false);
                }
                set_write_checkpoint_target(tx, core_0_5, checkpoint)?;
                Ok(true)
            })
            .await?;
        tracing::debug!(
            "write checkpoint {checkpoint} {}",
            if applied {
                "set"
            } else {
                "skipped: new local writes"
            }
        );
        Ok(())
    }
}

/// Requests write checkpoints after every drain of the upload queue, off the line-processing
/// path (the request may take up to 30 s against a struggling service), then tells the active
/// iteration (`completed_upload` through `checkpointed`). Drains that arrive during a request
/// are coalesced into the next one.
pub(crate) async fn checkpoint_loop<C: BackendConnector>(
    ctx: Arc<DownloadContext<C>>,
    mut stop: watch::Receiver<bool>,
    mut drained: mpsc::UnboundedReceiver<()>,
    checkpointed: mpsc::UnboundedSender<()>,
) {
    loop {
        tokio::select! {
            _ = crate::upload::stopped(&mut stop) => return,
            d = drained.recv() => if d.is_none() { return },
        }
        while drained.try_recv().is_ok() {}
        let result = tokio::select! {
            _ = crate::upload::stopped(&mut stop) => return,
            r = ctx.request_write_checkpoint() => r,
        };
        if let Err(e) = result {
            tracing::warn!("could not request a write checkpoint: {}", e.report());
            if e.is_unauthorized() {
                ctx.credentials.invalidate();
            }
        }
        if checkpointed.send(()).is_err() {
            return;
        }
    }
}

/// The sync task: iterations with reconnects until `stop`. Every iteration ends with
/// `powersync_control('stop')` (which ends an iteration the core still runs), and the status
/// shows the client disconnected while it waits to reconnect.
pub(crate) async fn download_loop<C: BackendConnector>(
    ctx: Arc<DownloadContext<C>>,
    mut stop: watch::Receiver<bool>,
    mut checkpointed: mpsc::UnboundedReceiver<()>,
) {
    let mut failures: u32 = 0;
    loop {
        if crate::upload::is_stopped(&stop) {
            break;
        }
        ctx.shared.status.send_modify(|s| s.connecting = true);
        let outcome = ctx.iteration(&mut stop, &mut checkpointed).await;
        let mut step = Step::default();
        if let Err(e) = ctx.control("stop", Payload::Null, &mut step).await {
            tracing::debug!("stopping the sync iteration: {e}");
        }
        match outcome {
            Iteration::Stopped => break,
            Iteration::Reconnect {
                immediately,
                error,
                synced,
            } => {
                if synced {
                    failures = 0;
                }
                if let Some(e) = &error {
                    let message = e.report();
                    tracing::warn!("sync stream failed, reconnecting: {message}");
                    ctx.shared.status.send_modify(|s| {
                        s.download_error = Some(message);
                        s.connected = false;
                        s.connecting = false;
                    });
                }
                if immediately && error.is_none() {
                    continue;
                }
                // An iteration the core ended itself (`CloseSyncStream`, e.g. an expired token)
                // is already idle in the core, so `stop` reported nothing: say it here.
                ctx.shared.status.send_if_modified(|s| {
                    let changed = s.connected || s.connecting || s.downloading;
                    s.connected = false;
                    s.connecting = false;
                    s.downloading = false;
                    changed
                });
                let delay = ctx.options.retry.delay(failures);
                failures = failures.saturating_add(1);
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        _ = crate::upload::stopped(&mut stop) => return,
                        // A write checkpoint completed while no stream is open: the next
                        // iteration's `start` reads the target from the database.
                        Some(()) = checkpointed.recv() => {}
                    }
                }
            }
        }
    }
}
