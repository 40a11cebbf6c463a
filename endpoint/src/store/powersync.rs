//! The PowerSync modes: a `powersync` database whose `lww` table is local-only
//! (`powersync-local`, no service, a no-op connector) or synced with the PowerSync service,
//! uploading through the configured connector (`powersync`).

use std::sync::Arc;

use powersync::{PowerSyncDatabase, SyncOptions};

use crate::config::{BackendConnector, Config, Mode};
use crate::connectors::{
    CrudBatchConnector, CrudMultiTransactionConnector, CrudTransactionConnector, NoOpConnector,
    Shared,
};
use crate::error::Result;
use crate::model::lww::{self, KEY_COUNT, LwwRow, MicroOp};
use crate::model::{Lww, Model};
use crate::store::{Closed, StoreStatus, TxnStore};

/// A PowerSync mode's store.
#[derive(Debug)]
pub struct PowerSyncStore {
    db: PowerSyncDatabase,
    closed: Closed,
}

impl PowerSyncStore {
    /// Opens the database at `SQLITE3_PATH` ([`crate::store::open_powersync`]), then:
    /// - `powersync-local`: seeds the missing keys and starts the upload loop with the no-op
    ///   connector;
    /// - `powersync`: connects with the configured connector and waits for the first sync and
    ///   every seeded key.
    pub async fn open(config: &Config) -> Result<Arc<Self>> {
        let local_only = config.mode() == Mode::PowersyncLocal;
        // Configuration first: a bad key must not leave a half-initialised database behind.
        let signer = if local_only {
            None
        } else {
            Some(crate::auth::signer(config.jwks_private_key.as_ref())?)
        };
        let db = crate::store::open_powersync(config, &Lww::schema(local_only)).await?;
        let store = Arc::new(Self {
            db: db.clone(),
            closed: Closed::default(),
        });
        if local_only {
            db.write_transaction(|tx| lww::seed_missing_keys(tx))
                .await?;
            db.connect(NoOpConnector, SyncOptions::upload_only())
                .await?;
        } else {
            let shared = Shared::from_config(config, signer);
            let options = SyncOptions::default();
            match config.backend_connector {
                BackendConnector::Batch => db.connect(CrudBatchConnector(shared), options).await?,
                BackendConnector::Transaction => {
                    db.connect(CrudTransactionConnector(shared), options)
                        .await?
                }
                BackendConnector::MultiTransaction => {
                    db.connect(CrudMultiTransactionConnector(shared), options)
                        .await?
                }
            }
            tracing::info!(
                "connected with {}; waiting for the first sync",
                config.backend_connector
            );
            crate::store::wait_until_synced(
                &db,
                "SELECT count(DISTINCT k) FROM lww WHERE k >= 0 AND k < ?1",
                KEY_COUNT,
                false,
                config.first_sync_timeout,
            )
            .await?;
            tracing::info!("first sync complete, all {KEY_COUNT} keys present");
        }
        // A fatal upload error ends the process, as the seed's `exit(127)`.
        crate::store::exit_on_fatal_upload_error(&db, 127);
        Ok(store)
    }
}

impl TxnStore for PowerSyncStore {
    async fn run_txn(&self, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>> {
        self.closed.check()?;
        self.db
            .write_transaction(move |tx| lww::apply(tx, ops))
            .await
    }

    async fn list(&self) -> Result<Vec<LwwRow>> {
        self.closed.check()?;
        self.db.read_transaction(|tx| lww::list(tx)).await
    }

    async fn status(&self) -> StoreStatus {
        let status = self.db.status();
        StoreStatus {
            closed: self.closed.is_closed(),
            connected: status.connected,
            runtime_type: "PowerSyncDatabase",
            status_connected: status.connected,
            last_synced_at: status
                .last_synced_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        }
    }

    async fn close(&self) -> Result<()> {
        self.closed.close();
        self.db.close().await?;
        Ok(())
    }
}
