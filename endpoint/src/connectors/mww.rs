//! The latest era's upload connector for the `mww` model (`CrudTransactionConnector` of
//! `b77a3d0`): each client transaction in one REPEATABLE READ PostgreSQL transaction, PATCHes
//! applied max-write-wins with `GREATEST`, conflicts (40001, 40P01, 57014) retried with the Dart
//! backoff (16, 32, … 512 ms, then 16 again) up to 64 attempts; anything else is classified as
//! in [`super::postgres::classify`]. Each transaction is recorded in the idempotency ledger, so
//! a re-upload after a crash between the commit and `complete()` is skipped.
//!
//! A test-only broken variant (environment `ENDPOINT_TEST_BROKEN_CONNECTOR=drop`) completes every
//! second client transaction WITHOUT uploading it, so the harness's checkers can be shown to
//! catch a lost update. Never set it outside tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use powersync::{
    BackendConnector, ConnectorError, CrudEntry, CrudTransaction, PowerSyncCredentials,
    PowerSyncDatabase, UpdateType,
};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, IsolationLevel};

use super::postgres::{UploadFailure, record_upload};
use super::{Shared, local};
use crate::model::mww::{PG_UPLOAD_DELETE, PG_UPLOAD_PATCH, PG_UPLOAD_PUT};

/// Attempts per client transaction before the upload is given up (fatal), as the Dart
/// `_txWithRetries`.
pub const MAX_ATTEMPTS: u32 = 64;

/// The environment variable that turns on the test-only broken connector.
pub const BROKEN_CONNECTOR_ENV: &str = "ENDPOINT_TEST_BROKEN_CONNECTOR";

/// The Dart `BackOff`: doubles from 16 ms and wraps back to 16 ms after 512 ms.
#[derive(Debug, Default)]
pub struct Backoff {
    delay_ms: u64,
}

impl Backoff {
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.delay_ms *= 2;
        if self.delay_ms == 0 || self.delay_ms > 512 {
            self.delay_ms = 16;
        }
        Duration::from_millis(self.delay_ms)
    }
}

/// 40001 (serialization failure), 40P01 (deadlock) or 57014 (query canceled): retry the whole
/// PostgreSQL transaction.
pub fn is_retryable_conflict(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::QUERY_CANCELED
    })
}

/// The test-only fault: drops every second client transaction.
#[derive(Debug, Default)]
pub struct BrokenDrop {
    seen: AtomicU64,
}

impl BrokenDrop {
    /// `Some` when [`BROKEN_CONNECTOR_ENV`] is `drop`.
    pub fn from_env() -> Option<Arc<Self>> {
        std::env::var(BROKEN_CONNECTOR_ENV)
            .is_ok_and(|v| v == "drop")
            .then(|| Arc::new(Self::default()))
    }

    /// Whether the next client transaction is dropped (the 2nd, 4th, …).
    fn drop_next(&self) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed) % 2 == 1
    }
}

/// Uploads `mww` client transactions (see the module documentation).
#[derive(Debug)]
pub struct MwwTransactionConnector {
    shared: Arc<Shared>,
    broken: Option<Arc<BrokenDrop>>,
}

impl MwwTransactionConnector {
    /// A connector over `shared`; `broken` is the test-only fault (see [`BrokenDrop`]).
    pub fn new(shared: Arc<Shared>, broken: Option<Arc<BrokenDrop>>) -> Self {
        Self { shared, broken }
    }
}

impl BackendConnector for MwwTransactionConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.shared.credentials()
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let client_id = self.shared.client_id(db).await?;
        while let Some(transaction) = db.next_crud_transaction().await.map_err(local)? {
            if self.broken.as_ref().is_some_and(|b| b.drop_next()) {
                tracing::warn!(
                    "TEST-ONLY broken connector ({BROKEN_CONNECTOR_ENV}=drop): dropping client \
                     transaction {:?} ({} entries) without uploading it",
                    transaction.transaction_id,
                    transaction.crud.len()
                );
            } else {
                upload_with_retries(&self.shared, &client_id, &transaction).await?;
            }
            transaction.complete().await.map_err(local)?;
        }
        Ok(())
    }
}

async fn upload_with_retries(
    shared: &Shared,
    client_id: &str,
    transaction: &CrudTransaction,
) -> Result<(), ConnectorError> {
    let mut backoff = Backoff::default();
    for attempt in 1..=MAX_ATTEMPTS {
        let mut guard = shared.pg.lock().await?;
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
            if let Some(tx_id) = transaction.transaction_id
                && !record_upload(&tx, client_id, tx_id).await?
            {
                tracing::info!(
                    "client transaction {tx_id} was uploaded before; not applying it again"
                );
                return Ok(());
            }
            for entry in &transaction.crud {
                apply_entry(&tx, entry).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(UploadFailure::Pg(e)) if is_retryable_conflict(&e) => {
                drop(guard);
                let delay = backoff.next_delay();
                tracing::debug!(
                    "PostgreSQL conflict ({:?}), attempt {attempt} of {MAX_ATTEMPTS}, retry in {delay:?}",
                    e.code().map(SqlState::code)
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
    Err(ConnectorError::fatal(format!(
        "client transaction {:?}: PostgreSQL conflicts persisted through {MAX_ATTEMPTS} attempts",
        transaction.transaction_id
    )))
}

fn invalid(entry: &CrudEntry, what: &str) -> UploadFailure {
    UploadFailure::Invalid(format!(
        "cannot upload {:?} {} of table {}: {what}",
        entry.op, entry.id, entry.table
    ))
}

fn int_field(entry: &CrudEntry, name: &str) -> Result<Option<i32>, UploadFailure> {
    match entry.data.as_ref().and_then(|d| d.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(entry, &format!("{name} is not an INTEGER"))),
    }
}

/// Applies one `mww` CRUD entry; the statement must affect exactly one row (the Dart `.single`).
async fn apply_entry(client: &impl GenericClient, entry: &CrudEntry) -> Result<(), UploadFailure> {
    if entry.table != "mww" {
        return Err(invalid(entry, "only the mww table is synced"));
    }
    let rows = match entry.op {
        UpdateType::Patch => {
            // Only `v` is uploaded (local writes are plain UPDATEs of `v`).
            let Some(v) = int_field(entry, "v")? else {
                return Ok(());
            };
            client.execute(PG_UPLOAD_PATCH, &[&v, &entry.id]).await?
        }
        UpdateType::Put => {
            let k = int_field(entry, "k")?.ok_or_else(|| invalid(entry, "no k"))?;
            let v = int_field(entry, "v")?.ok_or_else(|| invalid(entry, "no v"))?;
            client.execute(PG_UPLOAD_PUT, &[&entry.id, &k, &v]).await?
        }
        UpdateType::Delete => client.execute(PG_UPLOAD_DELETE, &[&entry.id]).await?,
    };
    if rows != 1 {
        return Err(invalid(
            entry,
            &format!("expected exactly one affected row, got {rows}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn backoff_follows_the_dart_sequence() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8)
            .map(|_| u64::try_from(b.next_delay().as_millis()).unwrap())
            .collect();
        assert_eq!(got, [16, 32, 64, 128, 256, 512, 16, 32]);
    }

    #[test]
    fn broken_drop_drops_every_second_transaction() {
        let b = BrokenDrop::default();
        let got: Vec<bool> = (0..4).map(|_| b.drop_next()).collect();
        assert_eq!(got, [false, true, false, true]);
    }
}
