//! Backend connectors: how local writes reach PostgreSQL, and the service credentials.
//!
//! - [`NoOpConnector`] (`powersync-local`): nothing may ever be uploaded; if something is, the
//!   endpoint logs it and exits non-zero, as the seed does.
//! - [`CrudBatchConnector`]: one CRUD batch per call, one autocommit statement per entry, as in
//!   the seed, each sent with the round trips of the seed's Dart driver
//!   (`model::statement::Statement::DartDriver`). Kept on
//!   purpose: it shows non-atomic uploads (a PostgreSQL reader can see part of a client
//!   transaction).
//! - [`CrudTransactionConnector`]: each client transaction in one REPEATABLE READ PostgreSQL
//!   transaction, retrying serialization failures and deadlocks, draining the queue eagerly.
//! - [`CrudMultiTransactionConnector`]: several whole client transactions in one PostgreSQL
//!   transaction, never splitting one.
//!
//! The transactional connectors record `(client_id, tx_id)` in `powersync_endpoint_uploads`
//! inside the same PostgreSQL transaction and skip transactions already recorded, so a process
//! killed after the PostgreSQL commit but before `complete()` does not apply a transaction twice.

pub mod mww;
mod pipeline;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use powersync::{
    BackendConnector, ConnectorError, CrudTransaction, PowerSyncCredentials, PowerSyncDatabase,
};
use tokio::sync::OnceCell;
use tokio_postgres::IsolationLevel;

use crate::auth::TokenSigner;
use crate::config::{FailurePolicy, TestFailpoints};
use crate::model::{Lww, Model};
use crate::pg::{PgClass, PgFailure};
use pipeline::Pipeline;
use postgres::{Postgres, record_uploads};

/// The most CRUD entries the multi-transaction connector puts in one PostgreSQL transaction
/// (one client transaction larger than this still goes whole).
const MULTI_MAX_ENTRIES: usize = 1000;

/// How an upload retries PostgreSQL conflicts within one upload call, before the upload loop's
/// own backoff takes over: one value per era.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one PostgreSQL transaction.
    pub max_attempts: u32,
    /// 57014 (query canceled) is retried like a conflict.
    pub retry_canceled: bool,
    /// The delays between attempts.
    pub backoff: BackoffKind,
    /// Conflicts that persist through every attempt are fatal (otherwise retryable).
    pub exhausted_is_fatal: bool,
    /// The Dart endpoint's exit code for an upload error ([`FailurePolicy::Dart`]).
    pub dart_exit: i32,
    /// The Dart endpoint's exit code when the conflict retries are exhausted.
    pub dart_exit_exhausted: i32,
}

impl RetryPolicy {
    /// The seed era: 40001/40P01 up to 10 attempts, jittered exponential delays; then the
    /// upload loop retries the call.
    pub const SEED: Self = Self {
        max_attempts: 10,
        retry_canceled: false,
        backoff: BackoffKind::Jittered,
        exhausted_is_fatal: false,
        dart_exit: 127,
        dart_exit_exhausted: 127,
    };

    /// The latest era's Dart `_txWithRetries`: 40001/40P01/57014 up to 64 attempts with the
    /// Dart backoff; then the upload is given up (fatal).
    pub const LATEST: Self = Self {
        max_attempts: 64,
        retry_canceled: true,
        backoff: BackoffKind::Dart,
        exhausted_is_fatal: true,
        dart_exit: 50,
        dart_exit_exhausted: 32,
    };

    fn retries(&self, e: &tokio_postgres::Error) -> bool {
        match PgClass::of(e) {
            PgClass::Conflict => true,
            PgClass::Canceled => self.retry_canceled,
            _ => false,
        }
    }
}

/// The delays of a [`RetryPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffKind {
    /// 5–10 ms doubled per attempt (at most 64 times that).
    Jittered,
    /// The Dart `BackOff`: doubles from 16 ms and wraps back to 16 ms after 512 ms.
    Dart,
}

/// The delays between attempts of one upload.
#[derive(Debug)]
pub struct Backoff {
    kind: BackoffKind,
    attempt: u32,
    delay_ms: u64,
}

impl Backoff {
    /// A fresh sequence.
    pub fn new(kind: BackoffKind) -> Self {
        Self {
            kind,
            attempt: 0,
            delay_ms: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        match self.kind {
            BackoffKind::Jittered => {
                Duration::from_millis(fastrand::u64(5..10) << self.attempt.min(6))
            }
            BackoffKind::Dart => {
                self.delay_ms *= 2;
                if self.delay_ms == 0 || self.delay_ms > 512 {
                    self.delay_ms = 16;
                }
                Duration::from_millis(self.delay_ms)
            }
        }
    }
}

/// What every connector needs: PostgreSQL, and credentials for the service.
#[derive(Debug)]
pub struct Shared {
    /// The PostgreSQL connection.
    pub pg: Postgres,
    /// Signs service tokens; `None` when no `JWKS_PRIVATE_KEY` is configured.
    pub signer: Option<TokenSigner>,
    /// `POWERSYNC_URL`.
    pub powersync_url: String,
    /// `USER_ID`: the tokens' `sub`.
    pub user_id: String,
    client_id: OnceCell<String>,
    /// The test-only faults (see [`TestFailpoints`]).
    failpoints: TestFailpoints,
    /// `--failure-policy`.
    pub failure_policy: FailurePolicy,
}

impl Shared {
    /// Bundles the connectors' dependencies.
    pub fn new(
        pg: Postgres,
        signer: Option<TokenSigner>,
        powersync_url: String,
        user_id: String,
        failpoints: TestFailpoints,
        failure_policy: FailurePolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            pg,
            signer,
            powersync_url,
            user_id,
            client_id: OnceCell::new(),
            failpoints,
            failure_policy,
        })
    }

    /// The dependencies the configuration names: PostgreSQL, `POWERSYNC_URL`, `USER_ID`, the
    /// test failpoints and the failure policy, with `signer`.
    pub fn from_config(config: &crate::config::Config, signer: Option<TokenSigner>) -> Arc<Self> {
        Self::new(
            Postgres::new(&config.postgres),
            signer,
            config.powersync_url.clone(),
            config.user_id.clone(),
            config.test_failpoints,
            config.failure_policy,
        )
    }

    /// Under [`FailurePolicy::Dart`], an upload error ends the process with the Dart code (after
    /// an `ERROR` line), as the Dart endpoint's `exit(...)`; otherwise the error goes back to the
    /// upload loop.
    pub(crate) fn settle(
        &self,
        code: i32,
        result: Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        match result {
            Err(e) if self.failure_policy == FailurePolicy::Dart => self.dart_exit(code, &e),
            other => other,
        }
    }

    fn dart_exit(&self, code: i32, e: &dyn std::fmt::Display) -> ! {
        tracing::error!(
            "upload failed: {e}; exiting {code} as the Dart endpoint does (--failure-policy \
             forgiving retries instead)"
        );
        std::process::exit(code);
    }

    pub(crate) fn credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            ConnectorError::fatal("JWKS_PRIVATE_KEY is not configured: cannot sign service tokens")
        })?;
        Ok(PowerSyncCredentials {
            endpoint: self.powersync_url.clone(),
            token: signer.token(&self.user_id),
        })
    }

    pub(crate) async fn client_id(&self, db: &PowerSyncDatabase) -> Result<String, ConnectorError> {
        self.client_id
            .get_or_try_init(|| async { Ok::<_, ConnectorError>(db.client_id().await?) })
            .await
            .cloned()
    }

    /// THE upload loop of both eras: applies `transactions` in one REPEATABLE READ PostgreSQL
    /// transaction with model `M`'s statements, each recorded in the ledger (already-recorded
    /// ones skipped), retrying conflicts as `policy` says.
    pub(crate) async fn apply_transactions<M: Model>(
        &self,
        client_id: &str,
        transactions: &[CrudTransaction],
        policy: RetryPolicy,
    ) -> Result<(), ConnectorError> {
        let mut backoff = Backoff::new(policy.backoff);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut guard = self.pg.lock().await?;
            let Some(client) = guard.as_mut() else {
                return Err(ConnectorError::retryable(
                    "PostgreSQL connection unavailable",
                ));
            };
            let result: Result<(), PgFailure> = async {
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .start()
                    .await?;
                let ledger = self.failure_policy == FailurePolicy::Forgiving;
                let tx_ids: Vec<i64> = transactions
                    .iter()
                    .filter_map(|t| t.transaction_id.filter(|_| ledger))
                    .collect();
                // One ledger statement for the whole group; each id recorded now is applied
                // once (taken out of the set), any other was applied before.
                let mut fresh = record_uploads(&tx, client_id, &tx_ids).await?;
                let mut entries = Vec::new();
                for transaction in transactions {
                    if let Some(tx_id) = transaction.transaction_id.filter(|_| ledger)
                        && !fresh.remove(&tx_id)
                    {
                        tracing::info!(
                            "client transaction {tx_id} was uploaded before; not applying it again"
                        );
                        continue;
                    }
                    entries.extend(&transaction.crud);
                }
                let mut pipeline = Pipeline::default();
                for entry in entries {
                    if pipeline.failed() {
                        break;
                    }
                    pipeline.send(M::upload_entry(&tx, entry)).await;
                }
                pipeline.finish().await?;
                tx.commit().await?;
                Ok(())
            }
            .await;
            let failure = match result {
                Ok(()) if self.failpoints.exit_after_pg_commit => {
                    tracing::warn!(
                        "test failpoint {}: exiting after the PostgreSQL commit",
                        TestFailpoints::EXIT_AFTER_PG_COMMIT_ENV
                    );
                    std::process::exit(TestFailpoints::EXIT_AFTER_PG_COMMIT_STATUS);
                }
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let conflict = matches!(&failure, PgFailure::Pg(e) if policy.retries(e));
            if conflict && attempt < policy.max_attempts {
                drop(guard);
                let delay = backoff.next_delay();
                tracing::debug!(
                    "PostgreSQL conflict, attempt {attempt} of {}, retry in {delay:?}",
                    policy.max_attempts
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            if client.is_closed() {
                *guard = None;
            }
            if conflict && self.failure_policy == FailurePolicy::Dart {
                self.dart_exit(
                    policy.dart_exit_exhausted,
                    &format!(
                        "PostgreSQL conflicts persisted through {} attempts",
                        policy.max_attempts
                    ),
                );
            }
            if conflict && policy.exhausted_is_fatal {
                return Err(ConnectorError::fatal(format!(
                    "client transaction {:?}: PostgreSQL conflicts persisted through {} attempts",
                    transactions.first().and_then(|t| t.transaction_id),
                    policy.max_attempts
                )));
            }
            return Err(failure.into_connector_error());
        }
    }
}

/// `powersync-local`: never uploads.
#[derive(Debug, Default)]
pub struct NoOpConnector;

impl BackendConnector for NoOpConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Err(ConnectorError::fatal("powersync-local has no sync service"))
    }

    async fn upload_data(&self, _db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        Err(ConnectorError::fatal(
            "localOnly:true should never uploadData!",
        ))
    }
}

/// One CRUD batch per call, entry by entry in autocommit (non-atomic, as the seed).
#[derive(Debug)]
pub struct CrudBatchConnector(pub Arc<Shared>);

impl BackendConnector for CrudBatchConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.0.credentials()
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let result: Result<(), ConnectorError> = async {
            let Some(batch) = db.crud_batch(100).await? else {
                return Ok(());
            };
            {
                let mut guard = self.0.pg.lock().await?;
                let Some(client) = guard.as_mut() else {
                    return Err(ConnectorError::retryable(
                        "PostgreSQL connection unavailable",
                    ));
                };
                for entry in &batch.crud {
                    if let Err(e) = crate::model::lww::upload_entry(
                        &*client,
                        entry,
                        false,
                        crate::model::statement::Statement::DartDriver,
                    )
                    .await
                    {
                        if client.is_closed() {
                            *guard = None;
                        }
                        return Err(e.into_connector_error());
                    }
                }
            }
            batch.complete().await?;
            Ok(())
        }
        .await;
        self.0.settle(RetryPolicy::SEED.dart_exit, result)
    }
}

/// Each client transaction in its own PostgreSQL transaction, draining the queue.
#[derive(Debug)]
pub struct CrudTransactionConnector(pub Arc<Shared>);

impl BackendConnector for CrudTransactionConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.0.credentials()
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let result = self.0.drain_queue::<Lww>(db, 1).await;
        self.0.settle(RetryPolicy::SEED.dart_exit, result)
    }
}

/// Several whole client transactions per PostgreSQL transaction, draining the queue.
#[derive(Debug)]
pub struct CrudMultiTransactionConnector(pub Arc<Shared>);

impl BackendConnector for CrudMultiTransactionConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.0.credentials()
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let result = self.0.drain_queue::<Lww>(db, MULTI_MAX_ENTRIES).await;
        self.0.settle(RetryPolicy::SEED.dart_exit, result)
    }
}
