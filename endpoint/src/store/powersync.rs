//! The PowerSync modes: a `powersync` database whose `lww` table is local-only
//! (`powersync-local`, no service, a no-op connector) or synced with the PowerSync service,
//! uploading through the configured connector (`powersync`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use powersync::schema::{Column, Index, Schema, Table};
use powersync::{DatabaseOptions, PowerSyncDatabase, SyncOptions};

use crate::auth::TokenSigner;
use crate::config::{BackendConnector, Config, Mode};
use crate::connectors::postgres::Postgres;
use crate::connectors::{
    CrudBatchConnector, CrudMultiTransactionConnector, CrudTransactionConnector, NoOpConnector,
    Shared,
};
use crate::error::{Error, Result};
use crate::model::lww::{self, KEY_COUNT, LwwRow, MicroOp};
use crate::store::{StoreStatus, TxnStore};

/// How long the synced mode waits for the first complete sync (and every seeded key) before it
/// gives up and exits.
pub const FIRST_SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// The seed's schema: `lww(k INTEGER, v TEXT)` with index `lww_k`, local-only in
/// `powersync-local`.
pub fn schema(local_only: bool) -> Schema {
    let table = Table::new("lww", vec![Column::integer("k"), Column::text("v")])
        .index(Index::new("lww_k", ["k"]));
    Schema::new(vec![if local_only {
        table.local_only()
    } else {
        table
    }])
}

/// A PowerSync mode's store.
#[derive(Debug)]
pub struct PowerSyncStore {
    db: PowerSyncDatabase,
    closed: AtomicBool,
}

impl PowerSyncStore {
    /// Opens the database at `SQLITE3_PATH` (the core is found as `powersync_sys` documents:
    /// `POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`, the vendored default), then:
    /// - `powersync-local`: seeds the missing keys and starts the upload loop with the no-op
    ///   connector;
    /// - `powersync`: connects with the configured connector and waits for the first sync and
    ///   every seeded key.
    pub async fn open(config: &Config) -> Result<Arc<Self>> {
        let local_only = config.mode == Mode::PowersyncLocal;
        // Configuration first: a bad key must not leave a half-initialised database behind.
        let signer = match (&config.jwks_private_key, local_only) {
            (Some(secret), false) => Some(TokenSigner::from_secret(secret)?),
            (None, false) => {
                return Err(Error::config(
                    "JWKS_PRIVATE_KEY",
                    "is required in mode powersync",
                ));
            }
            (_, true) => None,
        };
        let db = PowerSyncDatabase::open(
            &config.sqlite3_path,
            &schema(local_only),
            DatabaseOptions::default(),
        )
        .await?;
        tracing::info!(
            "PowerSync core {} from {}, database {}",
            db.core_version(),
            db.core().path().display(),
            config.sqlite3_path.display()
        );
        let store = Arc::new(Self {
            db: db.clone(),
            closed: AtomicBool::new(false),
        });
        if local_only {
            db.write_transaction(|tx| lww::seed_missing_keys(tx))
                .await?;
            db.connect(NoOpConnector, SyncOptions::upload_only())
                .await?;
        } else {
            let shared = Shared::new(
                Postgres::new(&config.postgres),
                signer,
                config.powersync_url.clone(),
                config.user_id.clone(),
            );
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
            store.wait_until_synced().await?;
        }
        // A fatal upload error ends the process, as the seed's `exit(127)`: the connector
        // cannot go on, and the harness must see it.
        let watched = db.clone();
        tokio::spawn(async move {
            let e = watched.fatal_upload_error().await;
            tracing::error!("unrecoverable upload error, exiting: {e}");
            std::process::exit(127);
        });
        Ok(store)
    }

    async fn wait_until_synced(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + FIRST_SYNC_TIMEOUT;
        tokio::time::timeout_at(deadline, async {
            self.db.wait_for_first_sync(FIRST_SYNC_TIMEOUT).await?;
            loop {
                let present: Vec<i64> = self
                    .db
                    .query(
                        "SELECT count(DISTINCT k) FROM lww WHERE k >= 0 AND k < ?1",
                        [KEY_COUNT],
                        |r| r.get(0),
                    )
                    .await?;
                if present.first() == Some(&KEY_COUNT) {
                    return Ok::<_, Error>(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .map_err(|_| Error::FirstSyncTimeout(FIRST_SYNC_TIMEOUT))??;
        tracing::info!("first sync complete, all {KEY_COUNT} keys present");
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::StoreClosed)
        } else {
            Ok(())
        }
    }
}

impl TxnStore for PowerSyncStore {
    async fn run_txn(&self, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>> {
        self.check_open()?;
        self.db
            .write_transaction(move |tx| lww::apply(tx, ops))
            .await
    }

    async fn list(&self) -> Result<Vec<LwwRow>> {
        self.check_open()?;
        self.db.read_transaction(|tx| lww::list(tx)).await
    }

    async fn status(&self) -> StoreStatus {
        let status = self.db.status();
        StoreStatus {
            closed: self.closed.load(Ordering::Acquire),
            connected: status.connected,
            runtime_type: "PowerSyncDatabase",
            status_connected: status.connected,
            last_synced_at: status
                .last_synced_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        }
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.db.close().await?;
        Ok(())
    }
}
