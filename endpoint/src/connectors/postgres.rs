//! The PostgreSQL side of uploads: one lazily (re)opened connection, error classification, the
//! seed's `lww` statements, and the ledger that makes re-uploads idempotent.

use std::time::Duration;

use powersync::{ConnectorError, CrudEntry, UpdateType};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::config::PostgresConfig;

/// The seed's PostgreSQL connection, opened on first use and reopened after it broke.
pub struct Postgres {
    config: tokio_postgres::Config,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

/// Creates the ledger of applied client transactions (not in the `powersync` publication).
const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS powersync_endpoint_uploads (
    client_id TEXT NOT NULL,
    tx_id BIGINT NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, tx_id)
)";

impl Postgres {
    /// From the endpoint's `PG_DATABASE_*` settings (no TLS, as the seed).
    pub fn new(pg: &PostgresConfig) -> Self {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&pg.host)
            .port(pg.port)
            .dbname(&pg.name)
            .user(&pg.user)
            .password(pg.password.expose())
            .connect_timeout(Duration::from_secs(5))
            .application_name("powersync_endpoint");
        Self {
            config,
            client: Mutex::new(None),
        }
    }

    /// The open connection (opening it first if needed), locked for the caller's upload.
    pub async fn lock(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, ConnectorError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self.config.connect(NoTls).await.map_err(classify)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("PostgreSQL connection closed: {e}");
                }
            });
            create_ledger(&client).await?;
            *guard = Some(client);
        }
        Ok(guard)
    }
}

/// Creates the upload ledger unless it exists. Several endpoints starting together race inside
/// PostgreSQL's catalog on `CREATE TABLE IF NOT EXISTS` (a unique violation on `pg_type`,
/// `duplicate_table` or `duplicate_object` for the row type); each means another endpoint created
/// it, which is success.
async fn create_ledger(client: &Client) -> Result<(), ConnectorError> {
    match client.batch_execute(CREATE_LEDGER).await {
        Ok(()) => Ok(()),
        Err(e)
            if [
                SqlState::UNIQUE_VIOLATION,
                SqlState::DUPLICATE_TABLE,
                SqlState::DUPLICATE_OBJECT,
            ]
            .iter()
            .any(|c| e.code() == Some(c)) =>
        {
            tracing::debug!("the upload ledger was created concurrently: {e}");
            Ok(())
        }
        Err(e) => Err(classify(e)),
    }
}

/// Whether a PostgreSQL error is worth retrying. Lost connections and server shutdowns (class
/// 08, 57P01–57P03), serialization failures and deadlocks are retryable; data exceptions (22),
/// integrity violations (23), insufficient privilege (42501) and other FATAL/PANIC errors are
/// not: they mean the upload itself is wrong, and the endpoint must stop.
pub fn classify(e: tokio_postgres::Error) -> ConnectorError {
    let Some(db) = e.as_db_error() else {
        return ConnectorError::retryable(format!("PostgreSQL unreachable: {e}")).with_source(e);
    };
    let code = db.code().code();
    let retryable = code.starts_with("08")
        || matches!(db.code(), c if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN || *c == SqlState::CANNOT_CONNECT_NOW)
        || is_serialization_failure(&e);
    let fatal_class = code.starts_with("22") || code.starts_with("23") || code == "42501";
    let fatal_severity = matches!(
        db.parsed_severity(),
        Some(Severity::Fatal | Severity::Panic)
    );
    let message = format!("PostgreSQL {code}: {}", db.message());
    if !retryable && (fatal_class || fatal_severity) {
        ConnectorError::fatal(message).with_source(e)
    } else {
        ConnectorError::retryable(message).with_source(e)
    }
}

/// 40001 (serialization failure) or 40P01 (deadlock).
pub fn is_serialization_failure(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Why applying client transactions to PostgreSQL failed.
#[derive(Debug)]
pub enum UploadFailure {
    /// PostgreSQL (or the connection to it) failed.
    Pg(tokio_postgres::Error),
    /// The entry cannot be uploaded as it is (fatal).
    Invalid(String),
}

impl From<tokio_postgres::Error> for UploadFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl UploadFailure {
    /// 40001 or 40P01: retry the whole PostgreSQL transaction.
    pub fn is_serialization_failure(&self) -> bool {
        matches!(self, Self::Pg(e) if is_serialization_failure(e))
    }

    /// As the connector error the upload loop understands.
    pub fn into_connector_error(self) -> ConnectorError {
        match self {
            Self::Pg(e) => classify(e),
            Self::Invalid(message) => ConnectorError::fatal(message),
        }
    }
}

fn field<'a>(entry: &'a CrudEntry, name: &str) -> Option<&'a Value> {
    entry.data.as_ref().and_then(|d| d.get(name))
}

fn invalid(entry: &CrudEntry, what: &str) -> UploadFailure {
    UploadFailure::Invalid(format!(
        "cannot upload {:?} {} of table {}: {what}",
        entry.op, entry.id, entry.table
    ))
}

/// Applies one CRUD entry to PostgreSQL with the seed's SQL. With `exactly_one`, the statement
/// must affect exactly one row (the seed's `RETURNING * ... .single`); otherwise it is fatal.
pub async fn apply_entry(
    client: &impl GenericClient,
    entry: &CrudEntry,
    exactly_one: bool,
) -> Result<(), UploadFailure> {
    if entry.table != "lww" {
        return Err(invalid(entry, "only the lww table is synced"));
    }
    let rows = match entry.op {
        UpdateType::Put => {
            let k = field(entry, "k")
                .and_then(Value::as_i64)
                .ok_or_else(|| invalid(entry, "no integer k"))?;
            let k = i32::try_from(k).map_err(|_| invalid(entry, "k is out of INTEGER range"))?;
            let v = field(entry, "v")
                .and_then(Value::as_str)
                .unwrap_or_default();
            client
                .execute(
                    "INSERT INTO lww (id, k, v) VALUES (CAST($1::text AS uuid), $2, $3)",
                    &[&entry.id, &k, &v],
                )
                .await?
        }
        UpdateType::Patch => {
            let Some(v) = field(entry, "v") else {
                return Ok(());
            };
            let v = v.as_str().ok_or_else(|| invalid(entry, "v is not text"))?;
            client
                .execute(
                    "UPDATE lww SET v = $1 WHERE id = CAST($2::text AS uuid)",
                    &[&v, &entry.id],
                )
                .await?
        }
        UpdateType::Delete => {
            client
                .execute(
                    "DELETE FROM lww WHERE id = CAST($1::text AS uuid)",
                    &[&entry.id],
                )
                .await?
        }
    };
    if exactly_one && rows != 1 {
        return Err(invalid(
            entry,
            &format!("expected exactly one affected row, got {rows}"),
        ));
    }
    Ok(())
}

/// Records `(client_id, tx_id)` in the ledger inside the caller's transaction. Returns false when
/// the transaction was applied before (a re-upload after a crash between the PostgreSQL commit
/// and `complete()`), in which case the caller must not apply it again.
pub async fn record_upload(
    client: &impl GenericClient,
    client_id: &str,
    tx_id: i64,
) -> Result<bool, UploadFailure> {
    let inserted = client
        .execute(
            "INSERT INTO powersync_endpoint_uploads (client_id, tx_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&client_id, &tx_id],
        )
        .await?;
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoints_starting_together_all_get_the_ledger() {
        let pg =
            testkit::TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let admin = pg.client().await.unwrap();
        let config = PostgresConfig {
            host: "127.0.0.1".into(),
            port: pg.port(),
            name: "postgres".into(),
            user: "postgres".into(),
            password: "unused".parse().unwrap(),
        };
        for _ in 0..5 {
            let endpoints: Vec<Postgres> = (0..8).map(|_| Postgres::new(&config)).collect();
            let results = futures_util::future::join_all(
                endpoints
                    .iter()
                    .map(|p| async { p.lock().await.map(|_| ()) }),
            )
            .await;
            for r in results {
                r.expect("every endpoint connects and finds the ledger");
            }
            let exists: bool = admin
                .query_one(
                    "SELECT to_regclass('powersync_endpoint_uploads') IS NOT NULL",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(exists);
            admin
                .batch_execute("DROP TABLE powersync_endpoint_uploads")
                .await
                .unwrap();
        }
    }
}
