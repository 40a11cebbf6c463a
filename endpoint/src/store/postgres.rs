//! `--endpoint postgresql`: mww transactions straight against PostgreSQL at REPEATABLE READ, no
//! retry. A serialization failure or any other non-fatal PostgreSQL error means the transaction
//! was rolled back, and is answered `type: fail` (as the Dart `pg_endpoint.dart`). Unlike the
//! Dart endpoint (one connection, transactions queued on it) this store keeps a small pool, so
//! concurrent requests are concurrent PostgreSQL transactions.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tokio::sync::Mutex;
use tokio_postgres::{Client, IsolationLevel, NoTls};

use crate::config::PostgresConfig;
use crate::error::{Error, Result};
use crate::model::mww::{self, MwwOp};
use crate::pg::{PgClass, PgFailure, describe, is_fatal_severity};
use crate::store::{DbAction, MwwOutcome, MwwStore};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// The PostgreSQL endpoint's store.
pub struct PostgresStore {
    config: tokio_postgres::Config,
    host: String,
    port: u16,
    idle: Mutex<Vec<Client>>,
    keys: i64,
    closed: AtomicBool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects once (so a wrong setting fails at start-up) and checks that `mww` holds every key.
    pub async fn open(pg: &PostgresConfig, keys: i64) -> Result<Self> {
        let store = Self {
            config: crate::pg::client_config(pg),
            host: pg.host.clone(),
            port: pg.port,
            idle: Mutex::new(Vec::new()),
            keys,
            closed: AtomicBool::new(false),
        };
        let client = store.client().await?;
        mww::read_all_postgres(&client, keys)
            .await
            .map_err(PgFailure::into_error)?;
        store.release(client).await;
        Ok(store)
    }

    async fn client(&self) -> Result<Client> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::StoreClosed);
        }
        if let Some(client) = self.idle.lock().await.pop()
            && !client.is_closed()
        {
            return Ok(client);
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Error::PostgresUnavailable {
                context: format!("{}:{}: {e}{cause}", self.host, self.port),
                source: e,
            }
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection closed: {e}");
            }
        });
        Ok(client)
    }

    async fn release(&self, client: Client) {
        let mut idle = self.idle.lock().await;
        if !client.is_closed() && idle.len() < MAX_IDLE && !self.closed.load(Ordering::Acquire) {
            idle.push(client);
        }
    }

    async fn select_all(&self) -> Result<serde_json::Value> {
        let client = self.client().await?;
        let read = mww::read_all_postgres(&client, self.keys).await;
        self.release(client).await;
        let read = read.map_err(PgFailure::into_error)?;
        Ok(mww::to_json(&read))
    }
}

impl MwwStore for PostgresStore {
    fn client_type(&self) -> &'static str {
        "pg"
    }

    async fn run_txn(&self, ops: Vec<MwwOp>) -> Result<MwwOutcome> {
        let mut client = self.client().await?;
        let result: Result<Vec<MwwOp>, PgFailure> = async {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .start()
                .await?;
            let out = mww::apply_postgres(&tx, ops, self.keys).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await;
        self.release(client).await;
        match result {
            Ok(out) => Ok(MwwOutcome::Ok(out)),
            Err(PgFailure::Data(e)) => Err(e),
            // No server answer: the commit's outcome is unknown, so not a `fail`.
            Err(PgFailure::Pg(e)) if PgClass::of(&e) == PgClass::NoAnswer => {
                Err(Error::PostgresUnavailable {
                    context: e.to_string(),
                    source: e,
                })
            }
            Err(PgFailure::Pg(e)) if is_fatal_severity(&e) => Err(Error::Postgres(e)),
            Err(PgFailure::Pg(e)) => {
                let reason = describe(&e);
                tracing::info!("{reason} (transaction rolled back, answering fail)");
                Ok(MwwOutcome::Fail(reason))
            }
        }
    }

    async fn db_api(&self, action: DbAction) -> Result<serde_json::Value> {
        Ok(match action {
            DbAction::Connect | DbAction::Disconnect => json!({"pg": "always-connected"}),
            DbAction::Close => {
                self.close().await?;
                json!({"pg": "closed"})
            }
            DbAction::UploadQueueCount | DbAction::UploadQueueWait => json!({"pg": "no-queue"}),
            DbAction::DownloadingWait => json!({"pg": "no-downloading"}),
            DbAction::SelectAll => self.select_all().await?,
        })
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().await.clear();
        Ok(())
    }
}
