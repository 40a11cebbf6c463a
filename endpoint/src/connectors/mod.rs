//! Backend connectors: how local writes reach PostgreSQL, and the service credentials.
//!
//! - [`NoOpConnector`] (`powersync-local`): nothing may ever be uploaded; if something is, the
//!   endpoint logs it and exits non-zero, as the seed does.
//! - [`CrudBatchConnector`]: one CRUD batch per call, one autocommit statement per entry, as in
//!   the seed. Kept on purpose: it shows non-atomic uploads (a PostgreSQL reader can see part of a
//!   client transaction).
//! - [`CrudTransactionConnector`]: each client transaction in one REPEATABLE READ PostgreSQL
//!   transaction, retrying serialization failures and deadlocks, draining the queue eagerly.
//! - [`CrudMultiTransactionConnector`]: several whole client transactions in one PostgreSQL
//!   transaction, never splitting one.
//!
//! The transactional connectors record `(client_id, tx_id)` in `powersync_endpoint_uploads`
//! inside the same PostgreSQL transaction and skip transactions already recorded, so a process
//! killed after the PostgreSQL commit but before `complete()` does not apply a transaction twice.

pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use powersync::{
    BackendConnector, ConnectorError, CrudTransaction, PowerSyncCredentials, PowerSyncDatabase,
};
use tokio::sync::OnceCell;
use tokio_postgres::IsolationLevel;

use crate::auth::TokenSigner;
use postgres::{Postgres, UploadFailure, apply_entry, record_upload};

/// Serialization failures and deadlocks are retried this many times within one upload call
/// before the upload loop's own backoff takes over.
const MAX_ATTEMPTS: u32 = 10;

/// The most CRUD entries the multi-transaction connector puts in one PostgreSQL transaction
/// (one client transaction larger than this still goes whole).
const MULTI_MAX_ENTRIES: usize = 100;

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
    /// Test-only failpoint (`ENDPOINT_TEST_EXIT_AFTER_PG_COMMIT=1`): exit right after the first
    /// PostgreSQL commit, before `complete()`, to test idempotent re-upload.
    exit_after_commit: bool,
}

/// The environment variable of the test-only failpoint (see [`Shared`]).
pub const EXIT_AFTER_COMMIT_ENV: &str = "ENDPOINT_TEST_EXIT_AFTER_PG_COMMIT";

/// The exit status of the failpoint.
pub const EXIT_AFTER_COMMIT_STATUS: i32 = 86;

impl Shared {
    /// Bundles the connectors' dependencies.
    pub fn new(
        pg: Postgres,
        signer: Option<TokenSigner>,
        powersync_url: String,
        user_id: String,
    ) -> Arc<Self> {
        let exit_after_commit = std::env::var(EXIT_AFTER_COMMIT_ENV).is_ok_and(|v| v == "1");
        Arc::new(Self {
            pg,
            signer,
            powersync_url,
            user_id,
            client_id: OnceCell::new(),
            exit_after_commit,
        })
    }

    fn credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            ConnectorError::fatal("JWKS_PRIVATE_KEY is not configured: cannot sign service tokens")
        })?;
        Ok(PowerSyncCredentials {
            endpoint: self.powersync_url.clone(),
            token: signer.token(&self.user_id),
        })
    }

    async fn client_id(&self, db: &PowerSyncDatabase) -> Result<String, ConnectorError> {
        self.client_id
            .get_or_try_init(|| async {
                db.client_id()
                    .await
                    .map_err(|e| ConnectorError::retryable(e.to_string()))
            })
            .await
            .cloned()
    }

    /// Applies `transactions` in one REPEATABLE READ PostgreSQL transaction (each recorded in
    /// the ledger, already-recorded ones skipped), retrying serialization failures.
    async fn apply_transactions(
        &self,
        client_id: &str,
        transactions: &[CrudTransaction],
    ) -> Result<(), ConnectorError> {
        let mut attempt = 0;
        loop {
            let mut guard = self.pg.lock().await?;
            let Some(client) = guard.as_mut() else {
                return Err(ConnectorError::retryable(
                    "PostgreSQL connection unavailable",
                ));
            };
            let result: Result<(), UploadFailure> = async {
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .start()
                    .await?;
                for transaction in transactions {
                    if let Some(tx_id) = transaction.transaction_id
                        && !record_upload(&tx, client_id, tx_id).await?
                    {
                        tracing::info!(
                            "client transaction {tx_id} was uploaded before; not applying it again"
                        );
                        continue;
                    }
                    for entry in &transaction.crud {
                        apply_entry(&tx, entry, true).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            .await;
            match result {
                Ok(()) if self.exit_after_commit => {
                    tracing::warn!(
                        "test failpoint {EXIT_AFTER_COMMIT_ENV}: exiting after the PostgreSQL commit"
                    );
                    std::process::exit(EXIT_AFTER_COMMIT_STATUS);
                }
                Ok(()) => return Ok(()),
                Err(e) if e.is_serialization_failure() && attempt + 1 < MAX_ATTEMPTS => {
                    drop(guard);
                    attempt += 1;
                    let delay = Duration::from_millis(fastrand::u64(5..10) << attempt.min(6));
                    tracing::debug!(
                        "PostgreSQL serialization failure, retry {attempt} in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if client.is_closed() {
                        *guard = None;
                    }
                    return Err(e.into_connector_error());
                }
            }
        }
    }
}

fn local(e: powersync::Error) -> ConnectorError {
    ConnectorError::retryable(format!("local database: {e}")).with_source(e)
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
        let Some(batch) = db.crud_batch(100).await.map_err(local)? else {
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
                if let Err(e) = apply_entry(&*client, entry, false).await {
                    if client.is_closed() {
                        *guard = None;
                    }
                    return Err(e.into_connector_error());
                }
            }
        }
        batch.complete().await.map_err(local)
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
        let client_id = self.0.client_id(db).await?;
        while let Some(transaction) = db.next_crud_transaction().await.map_err(local)? {
            self.0
                .apply_transactions(&client_id, std::slice::from_ref(&transaction))
                .await?;
            transaction.complete().await.map_err(local)?;
        }
        Ok(())
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
        let client_id = self.0.client_id(db).await?;
        loop {
            let mut cursor = db.crud_transactions();
            let mut group = Vec::new();
            let mut entries = 0;
            while entries < MULTI_MAX_ENTRIES {
                let Some(transaction) = cursor.next().await.map_err(local)? else {
                    break;
                };
                entries += transaction.crud.len();
                group.push(transaction);
            }
            if group.is_empty() {
                return Ok(());
            }
            self.0.apply_transactions(&client_id, &group).await?;
            let batch = CrudTransaction::into_batch(group)
                .ok_or_else(|| ConnectorError::fatal("empty group"))?;
            batch.complete().await.map_err(local)?;
        }
    }
}
