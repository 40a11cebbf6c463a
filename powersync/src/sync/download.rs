//! The download loop: drives the core's `powersync_control` state machine with the sync
//! service's stream, and handles everything else that must go through it in order (completed
//! uploads with their write checkpoints, refreshed credentials).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::SyncOptions;
use super::control::{Instruction, Payload};
use super::credentials::CredentialsCache;
use super::status_map::apply_core_status;
use super::stream::{self, Line, LineStream};
use crate::connector::BackendConnector;
use crate::crud::{MAX_OP_ID, set_write_checkpoint_target};
use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};

/// Everything the sync task owns.
pub(crate) struct DownloadContext<C> {
    pub(crate) db: PowerSyncDatabase,
    pub(crate) credentials: Arc<CredentialsCache<C>>,
    pub(crate) client: reqwest::Client,
    pub(crate) options: SyncOptions,
}

/// What the instructions of one `powersync_control` call asked for.
#[derive(Default)]
struct Step {
    establish: Option<Value>,
    close: Option<bool>,
    completed_sync: bool,
    prefetch_credentials: bool,
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

impl<C: BackendConnector> DownloadContext<C> {
    fn core_0_5(&self) -> bool {
        self.db.core_version().at_least(0, 5, 0)
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
                    let micros = self.core_0_5();
                    self.db
                        .inner
                        .status
                        .send_modify(|s| apply_core_status(s, &status, micros));
                }
                Instruction::EstablishSyncStream { request } => step.establish = Some(request),
                Instruction::FetchCredentials { did_expire } => {
                    if did_expire {
                        // A CloseSyncStream follows; the next iteration fetches new credentials.
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
                    self.db
                        .inner
                        .status
                        .send_modify(|s| s.download_error = None);
                }
                Instruction::Unknown(tag) => {
                    tracing::debug!("ignoring unknown core instruction {tag}")
                }
            }
        }
    }

    async fn control(&self, op: &'static str, payload: Payload, step: &mut Step) -> Result<()> {
        let instructions = self.db.control(op, payload).await?;
        self.apply(instructions, step);
        Ok(())
    }

    fn start_payload(&self) -> String {
        json!({ "parameters": self.options.params }).to_string()
    }

    /// One iteration: `start`, open the stream, feed it line by line until it closes.
    async fn iteration(
        &self,
        stop: &mut watch::Receiver<bool>,
        drained: &mut mpsc::UnboundedReceiver<()>,
        refreshed: &mut mpsc::UnboundedReceiver<()>,
        refreshed_tx: &mpsc::UnboundedSender<()>,
    ) -> Iteration {
        let failed = |e: Error| Iteration::Reconnect {
            immediately: false,
            error: Some(e),
            synced: false,
        };
        let mut step = Step::default();
        if let Err(e) = self
            .control("start", Payload::Text(self.start_payload()), &mut step)
            .await
        {
            return failed(e);
        }
        let Some(request) = step.establish.take() else {
            return failed(Error::Service(
                "the core did not ask for a sync stream".into(),
            ));
        };
        let credentials = match self.credentials.get().await {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        let mut lines: LineStream = match stream::open(&self.client, &credentials, &request).await {
            Ok(lines) => lines,
            Err(e) => {
                if matches!(e, Error::Unauthorized(_)) {
                    self.credentials.invalidate().await;
                }
                return failed(e);
            }
        };
        if self.db.core_version().at_least(0, 4, 6)
            && let Err(e) = self
                .control("connection", Payload::Text("established".into()), &mut step)
                .await
        {
            return failed(e);
        }
        // Uploads may have waited for a connection.
        self.db.inner.local_write.notify_one();
        let mut synced = false;
        loop {
            if step.prefetch_credentials {
                step.prefetch_credentials = false;
                let credentials = self.credentials.clone();
                let refreshed_tx = refreshed_tx.clone();
                tokio::spawn(async move {
                    match credentials.refresh().await {
                        Ok(()) => {
                            let _ = refreshed_tx.send(());
                        }
                        Err(e) => tracing::warn!("prefetching credentials failed: {e}"),
                    }
                });
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
                Some(()) = drained.recv() => self.after_upload_round(true, &mut step).await,
                Some(()) = refreshed.recv() => self.control("refreshed_token", Payload::Null, &mut step).await,
                line = lines.next() => match line {
                    Ok(Some(Line::Text(text))) => self.control("line_text", Payload::Text(text), &mut step).await,
                    Ok(Some(Line::Binary(blob))) => self.control("line_binary", Payload::Binary(blob), &mut step).await,
                    Ok(None) => {
                        if self.db.core_version().at_least(0, 4, 6)
                            && let Err(e) = self.control("connection", Payload::Text("end".into()), &mut step).await
                        {
                            return failed(e);
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

    /// After the upload loop drained the queue: request a write checkpoint if local writes are
    /// pending (target = MAX), set it as the target unless new writes arrived meanwhile, then
    /// tell the active iteration (`completed_upload`).
    async fn after_upload_round(&self, iteration_active: bool, step: &mut Step) -> Result<()> {
        if let Err(e) = self.request_write_checkpoint().await {
            tracing::warn!("could not request a write checkpoint: {e}");
            if matches!(e, Error::Unauthorized(_)) {
                self.credentials.invalidate().await;
            }
        }
        if iteration_active {
            self.control("completed_upload", Payload::Null, step)
                .await?;
        }
        Ok(())
    }

    async fn request_write_checkpoint(&self) -> Result<()> {
        let core_0_5 = self.core_0_5();
        let db = &self.db;
        let pending: Option<i64> = db
            .internal_write_transaction(move |tx| -> Result<Option<i64>> {
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
                Ok(tx
                    .query_row(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'ps_crud'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await?;
        let Some(seq_before) = pending else {
            return Ok(());
        };
        let credentials = self.credentials.get().await?;
        let client_id = db.client_id().await?;
        let checkpoint = stream::write_checkpoint(&self.client, &credentials, &client_id).await?;
        let applied = db
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

/// The sync task: iterations with reconnects until `stop`.
pub(crate) async fn download_loop<C: BackendConnector>(
    ctx: DownloadContext<C>,
    mut stop: watch::Receiver<bool>,
    mut drained: mpsc::UnboundedReceiver<()>,
) {
    let (refreshed_tx, mut refreshed) = mpsc::unbounded_channel();
    let mut failures: u32 = 0;
    loop {
        let stopped = *stop.borrow();
        if stopped {
            break;
        }
        ctx.db.inner.status.send_modify(|s| s.connecting = true);
        match ctx
            .iteration(&mut stop, &mut drained, &mut refreshed, &refreshed_tx)
            .await
        {
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
                    tracing::warn!("sync stream failed, reconnecting: {e}");
                    let message = e.to_string();
                    ctx.db.inner.status.send_modify(|s| {
                        s.download_error = Some(message);
                        s.connected = false;
                    });
                }
                if immediately && error.is_none() {
                    continue;
                }
                let delay = ctx.options.retry.delay(failures);
                failures = failures.saturating_add(1);
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        _ = crate::upload::stopped(&mut stop) => break,
                        Some(()) = drained.recv() => {
                            let mut step = Step::default();
                            if let Err(e) = ctx.after_upload_round(false, &mut step).await {
                                tracing::warn!("after upload: {e}");
                            }
                        }
                    }
                }
            }
        }
    }
    let mut step = Step::default();
    if let Err(e) = ctx.control("stop", Payload::Null, &mut step).await {
        tracing::debug!("stopping the sync iteration: {e}");
    }
}
