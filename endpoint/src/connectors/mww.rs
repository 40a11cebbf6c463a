//! The latest era's upload connector for the `mww` model (`CrudTransactionConnector` of
//! `b77a3d0`): each client transaction in one REPEATABLE READ PostgreSQL transaction, PATCHes
//! applied max-write-wins with `GREATEST`, conflicts (40001, 40P01, 57014) retried with the Dart
//! backoff (16, 32, … 512 ms, then 16 again) up to 64 attempts ([`RetryPolicy::LATEST`]);
//! anything else is classified as in [`crate::pg::connector_error`]. Each transaction is recorded
//! in the idempotency ledger, so a re-upload after a crash between the commit and `complete()` is
//! skipped.
//!
//! A test-only broken variant ([`crate::config::TestFailpoints::drop_every_second_upload`])
//! completes every second client transaction WITHOUT uploading it, so the harness's checkers can
//! be shown to catch a lost update. Never set it outside tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use powersync::{BackendConnector, ConnectorError, PowerSyncCredentials, PowerSyncDatabase};

use super::{RetryPolicy, Shared};
use crate::config::{FailurePolicy, TestFailpoints};
use crate::model::Mww;

/// The test-only fault: drops every second client transaction.
#[derive(Debug, Default)]
pub struct BrokenDrop {
    seen: AtomicU64,
}

impl BrokenDrop {
    /// `Some` when the failpoint is on.
    pub fn when(failpoints: TestFailpoints) -> Option<Arc<Self>> {
        failpoints
            .drop_every_second_upload
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
    /// Transaction ids uploaded by this process (the Dart endpoint exits 30 on a repeat).
    seen: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

impl MwwTransactionConnector {
    /// A connector over `shared`; `broken` is the test-only fault (see [`BrokenDrop`]).
    pub fn new(
        shared: Arc<Shared>,
        broken: Option<Arc<BrokenDrop>>,
        seen: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    ) -> Self {
        Self {
            shared,
            broken,
            seen,
        }
    }

    /// Under the Dart policy, a client transaction id uploaded before by this process is the
    /// Dart endpoint's exit 30.
    fn check_new(&self, tx_id: Option<i64>) {
        let Some(tx_id) = tx_id else { return };
        let repeated = !self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tx_id);
        if repeated && self.shared.failure_policy == FailurePolicy::Dart {
            tracing::error!(
                "client transaction {tx_id} is uploaded a second time by this process; exiting 30 \
                 as the Dart endpoint does"
            );
            std::process::exit(30);
        }
    }
}

impl BackendConnector for MwwTransactionConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.shared.credentials()
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let result: Result<(), ConnectorError> = async {
            let client_id = self.shared.client_id(db).await?;
            while let Some(transaction) = db.next_crud_transaction().await? {
                self.check_new(transaction.transaction_id);
                if self.broken.as_ref().is_some_and(|b| b.drop_next()) {
                    tracing::warn!(
                        "TEST-ONLY broken connector ({}=drop): dropping client transaction {:?} ({} \
                         entries) without uploading it",
                        TestFailpoints::BROKEN_CONNECTOR_ENV,
                        transaction.transaction_id,
                        transaction.crud.len()
                    );
                } else {
                    self.shared
                        .apply_transactions::<Mww>(
                            &client_id,
                            std::slice::from_ref(&transaction),
                            RetryPolicy::LATEST,
                        )
                        .await?;
                }
                transaction.complete().await?;
            }
            Ok(())
        }
        .await;
        self.shared.settle(RetryPolicy::LATEST.dart_exit, result)
    }
}

#[cfg(test)]
mod test {
    use super::super::{Backoff, BackoffKind};
    use super::*;

    #[test]
    fn backoff_follows_the_dart_sequence() {
        let mut b = Backoff::new(BackoffKind::Dart);
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
