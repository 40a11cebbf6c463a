//! The pipelined drain of the transactional connectors: many PostgreSQL transactions per round
//! trip, each committed in order, the local queue completed only for what PostgreSQL committed.
//!
//! A *window* of up to [`WINDOW_GROUPS`] groups (each group: whole client transactions, one
//! PostgreSQL transaction) is sent on the one connection before any answer is awaited: for each
//! group `BEGIN`, the ledger statement, the upload statements and `COMMIT`. PostgreSQL runs them
//! in the order sent, one transaction after the other, so the window costs one round trip
//! instead of four per group. While the answers come back, the previous window's committed
//! groups are completed locally (one SQLite write for all of them) and the next window is read.
//!
//! Order and exactly-once across the window rest on the ledger statement
//! ([`record_new_uploads`]): it fails (and so rolls its transaction back) when one of the group's
//! client transactions is already recorded (23505: uploaded before) or when the previous group's
//! last client transaction is *not* recorded (23502: the previous group did not commit). A group
//! therefore commits only if every group before it is in PostgreSQL, and never applies a client
//! transaction twice. Without the ledger (`--failure-policy` other than `forgiving`) no such
//! guard exists, and a window holds one group.
//!
//! When a group fails, the groups answered before it are completed and the failed group is
//! handed to [`Shared::apply_transactions`] (the careful path: the ledger answers which client
//! transactions are new, conflicts are retried), or its error is returned; the upload loop then
//! calls the connector again for the rest of the queue.

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;

use powersync::{ConnectorError, CrudTransaction, CrudTransactions, PowerSyncDatabase};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::postgres::record_new_uploads;
use super::{RetryPolicy, Shared};
use crate::config::{FailurePolicy, TestFailpoints};
use crate::model::{Model, Upload};
use crate::pg::PgFailure;

/// The most groups (PostgreSQL transactions) sent before their answers are awaited.
pub(crate) const WINDOW_GROUPS: usize = 64;

/// Starts each group's PostgreSQL transaction, as [`Shared::apply_transactions`] does.
const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ";

/// The statements of one PostgreSQL transaction, sent in order: each is sent when it is
/// [`send`](Self::send)-ed (tokio-postgres writes a request before its first await), so the
/// server runs them in the order sent while none of the answers has been awaited yet.
#[derive(Default)]
pub(crate) struct Pipeline<'a> {
    pending: Vec<Upload<'a>>,
    failed: Option<PgFailure>,
}

impl<'a> Pipeline<'a> {
    /// Sends `statement` (polls it once). One that fails before it is sent (an entry the model
    /// refuses) is the pipeline's failure; nothing more should then be sent but `ROLLBACK`.
    pub(crate) async fn send(
        &mut self,
        statement: impl Future<Output = Result<(), PgFailure>> + Send + 'a,
    ) {
        let mut statement: Upload<'a> = Box::pin(statement);
        match std::future::poll_fn(|cx| Poll::Ready(statement.as_mut().poll(cx))).await {
            Poll::Ready(Err(e)) if self.failed.is_none() => self.failed = Some(e),
            Poll::Ready(_) => {}
            Poll::Pending => self.pending.push(statement),
        }
    }

    /// Whether a statement failed before it was sent.
    pub(crate) fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Awaits every answer in order; the first failure is the pipeline's (later statements of
    /// the same transaction then fail as "in failed transaction", their answers are dropped).
    pub(crate) async fn finish(self) -> Result<(), PgFailure> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        for answer in self.pending {
            answer.await?;
        }
        Ok(())
    }
}

/// A simple-query statement as a pipeline statement.
async fn simple(client: &Client, sql: &'static str) -> Result<(), PgFailure> {
    Ok(client.batch_execute(sql).await?)
}

/// Entries read from the local queue in one query.
const READ_ENTRIES: usize = 1000;

/// Reads the queue ahead, many whole client transactions per query, and cuts them into groups.
struct Reader {
    cursor: CrudTransactions,
    read: VecDeque<CrudTransaction>,
    end: bool,
}

impl Reader {
    fn new(db: &PowerSyncDatabase) -> Self {
        Self {
            cursor: db.crud_transactions(),
            read: VecDeque::new(),
            end: false,
        }
    }

    /// The next whole client transactions, up to `max_entries` CRUD entries in all but at least
    /// one transaction (a larger one still goes whole); empty at the queue's end.
    async fn group(&mut self, max_entries: usize) -> Result<Vec<CrudTransaction>, ConnectorError> {
        let mut group = Vec::new();
        let mut entries = 0;
        while entries < max_entries {
            if self.read.is_empty() && !self.end {
                let read = self.cursor.next_many(READ_ENTRIES.max(max_entries)).await?;
                self.end = read.is_empty();
                self.read.extend(read);
            }
            let Some(transaction) = self.read.pop_front() else {
                break;
            };
            entries += transaction.crud.len();
            group.push(transaction);
        }
        Ok(group)
    }

    /// The next window: up to `groups` groups of [`group`](Self::group); empty at the queue's
    /// end.
    async fn window(
        &mut self,
        max_entries: usize,
        groups: usize,
    ) -> Result<Vec<Vec<CrudTransaction>>, ConnectorError> {
        let mut window = Vec::new();
        while window.len() < groups {
            let group = self.group(max_entries).await?;
            if group.is_empty() {
                break;
            }
            window.push(group);
        }
        Ok(window)
    }
}

/// Completes `transactions` (consecutive, from the queue's head) in one local write.
async fn complete(transactions: Vec<CrudTransaction>) -> Result<(), ConnectorError> {
    if let Some(batch) = CrudTransaction::into_batch(transactions) {
        batch.complete().await?;
    }
    Ok(())
}

/// What PostgreSQL answered for a window: the leading groups it committed, and why the first
/// one it did not commit failed.
struct Outcome {
    committed: usize,
    failure: Option<PgFailure>,
}

impl Shared {
    /// Drains the upload queue in pipelined windows (see the [module](self)), model `M`'s
    /// statements, groups of whole client transactions of up to `max_entries` CRUD entries.
    pub(crate) async fn drain_queue<M: Model>(
        &self,
        db: &PowerSyncDatabase,
        max_entries: usize,
    ) -> Result<(), ConnectorError> {
        let client_id = self.client_id(db).await?;
        let ledger = self.failure_policy == FailurePolicy::Forgiving;
        let groups = if ledger { WINDOW_GROUPS } else { 1 };
        let mut reader = Reader::new(db);
        let mut window = reader.window(max_entries, groups).await?;
        let mut committed: Vec<CrudTransaction> = Vec::new();
        while !window.is_empty() {
            let (outcome, completed, next) = tokio::join!(
                self.send_window::<M>(&client_id, &window, ledger),
                complete(std::mem::take(&mut committed)),
                reader.window(max_entries, groups),
            );
            completed?;
            let outcome = outcome?;
            if outcome.committed > 0 && self.failpoints.exit_after_pg_commit {
                tracing::warn!(
                    "test failpoint {}: exiting after the PostgreSQL commit",
                    TestFailpoints::EXIT_AFTER_PG_COMMIT_ENV
                );
                std::process::exit(TestFailpoints::EXIT_AFTER_PG_COMMIT_STATUS);
            }
            let mut sent = window.into_iter();
            committed = sent.by_ref().take(outcome.committed).flatten().collect();
            if let Some(failure) = outcome.failure {
                complete(committed).await?;
                let group = sent.next().unwrap_or_default();
                return self.retry_group::<M>(&client_id, group, failure).await;
            }
            window = next?;
        }
        complete(committed).await
    }

    /// After `failure` of `group` in a window: the careful path for a conflict or a client
    /// transaction uploaded before, the error otherwise.
    async fn retry_group<M: Model>(
        &self,
        client_id: &str,
        group: Vec<CrudTransaction>,
        failure: PgFailure,
    ) -> Result<(), ConnectorError> {
        let policy = RetryPolicy::SEED;
        let careful = match &failure {
            PgFailure::Pg(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tracing::info!(
                    "a client transaction of this upload is in the ledger already; applying the \
                     upload with the ledger's answer"
                );
                true
            }
            PgFailure::Pg(e) => policy.retries(e),
            PgFailure::Data(_) => false,
        };
        if !careful {
            return Err(failure.into_connector_error());
        }
        self.apply_transactions::<M>(client_id, &group, policy)
            .await?;
        complete(group).await
    }

    /// Sends every group of `window` (each its own PostgreSQL transaction, each guarded by the
    /// ledger row of the group before it) before awaiting any answer.
    async fn send_window<M: Model>(
        &self,
        client_id: &str,
        window: &[Vec<CrudTransaction>],
        ledger: bool,
    ) -> Result<Outcome, ConnectorError> {
        let mut guard = self.pg.lock().await?;
        let Some(client) = guard.as_ref() else {
            return Err(ConnectorError::retryable(
                "PostgreSQL connection unavailable",
            ));
        };
        let mut sent = Vec::new();
        let mut previous: Option<i64> = None;
        for group in window {
            let tx_ids: Vec<i64> = group
                .iter()
                .filter_map(|t| t.transaction_id.filter(|_| ledger))
                .collect();
            let mut pipeline = Pipeline::default();
            pipeline.send(simple(client, BEGIN)).await;
            if !tx_ids.is_empty() {
                pipeline
                    .send(record_new_uploads(client, client_id, tx_ids, previous))
                    .await;
            }
            let entries = group.iter().flat_map(|t| &t.crud).collect();
            for upload in M::upload_entries(client, entries) {
                if pipeline.failed() {
                    break;
                }
                pipeline.send(upload).await;
            }
            let failed = pipeline.failed();
            let end = if failed { "ROLLBACK" } else { "COMMIT" };
            pipeline.send(simple(client, end)).await;
            sent.push(pipeline);
            // The next group is sent now only if its ledger statement can check that this one
            // committed.
            previous = match group.last().and_then(|t| t.transaction_id) {
                Some(id) if ledger && !failed => Some(id),
                _ => break,
            };
        }
        let mut outcome = Outcome {
            committed: 0,
            failure: None,
        };
        for pipeline in sent {
            match pipeline.finish().await {
                Ok(()) => outcome.committed += 1,
                Err(e) => {
                    outcome.failure = Some(e);
                    break;
                }
            }
        }
        if client.is_closed() {
            *guard = None;
        }
        Ok(outcome)
    }
}
