//! The PostgreSQL side of uploads: one lazily (re)opened connection and the ledger that makes
//! re-uploads idempotent. (The models' upload statements are in [`crate::model`], the error
//! classification in [`crate::pg`].)

use std::collections::HashSet;

use powersync::ConnectorError;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::config::PostgresConfig;
use crate::pg::{PgFailure, connector_error};

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
        Self {
            config: crate::pg::client_config(pg),
            client: Mutex::new(None),
        }
    }

    /// The open connection (opening it first if needed), locked for the caller's upload.
    pub async fn lock(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, ConnectorError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self.config.connect(NoTls).await.map_err(connector_error)?;
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
        Err(e) => Err(connector_error(e)),
    }
}

/// Records `(client_id, tx_id)` for every id of `tx_ids` in the ledger inside the caller's
/// transaction, in one statement. Returns the ids recorded now; an id missing from the answer was
/// applied before (a re-upload after a crash between the PostgreSQL commit and `complete()`), and
/// the caller must not apply it again.
pub async fn record_uploads(
    client: &impl GenericClient,
    client_id: &str,
    tx_ids: &[i64],
) -> Result<HashSet<i64>, PgFailure> {
    if tx_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = client
        .query_typed(
            "INSERT INTO powersync_endpoint_uploads (client_id, tx_id) \
             SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING RETURNING tx_id",
            &[(&client_id, Type::TEXT), (&tx_ids, Type::INT8_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records `(client_id, tx_id)` for every id of `tx_ids` in the ledger inside the caller's
/// transaction, in one statement that fails (rolling the transaction back) unless the whole
/// group is new and its predecessor committed: 23505 (unique violation) when an id is recorded
/// already, 23502 (not-null violation) when `previous` (the last client transaction of the
/// PostgreSQL transaction sent before this one on the same connection) is not recorded. The
/// pipelined drain sends a transaction before the one before it has answered; this statement is
/// what keeps it from committing out of order or twice.
pub async fn record_new_uploads(
    client: &impl GenericClient,
    client_id: &str,
    tx_ids: Vec<i64>,
    previous: Option<i64>,
) -> Result<(), PgFailure> {
    client
        .execute_typed(
            "INSERT INTO powersync_endpoint_uploads (client_id, tx_id) \
             SELECT $1, CASE WHEN $3::bigint IS NULL OR EXISTS (\
                 SELECT 1 FROM powersync_endpoint_uploads WHERE client_id = $1 AND tx_id = $3\
             ) THEN t END \
             FROM unnest($2::bigint[]) AS t",
            &[
                (&client_id, Type::TEXT),
                (&tx_ids, Type::INT8_ARRAY),
                (&previous, Type::INT8),
            ],
        )
        .await?;
    Ok(())
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_uploads_answers_only_the_ids_not_recorded_before() {
        let pg =
            testkit::TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let mut client = pg.client().await.unwrap();
        create_ledger(&client).await.unwrap();
        let tx = client.transaction().await.unwrap();
        let first = record_uploads(&tx, "a", &[1, 2]).await.unwrap();
        assert_eq!(first, HashSet::from([1, 2]));
        // 2 was recorded above; the same id of another client is new.
        let second = record_uploads(&tx, "a", &[2, 3]).await.unwrap();
        assert_eq!(second, HashSet::from([3]));
        assert_eq!(
            record_uploads(&tx, "b", &[2]).await.unwrap(),
            HashSet::from([2])
        );
        assert!(record_uploads(&tx, "a", &[]).await.unwrap().is_empty());
        tx.commit().await.unwrap();
        let rows: i64 = client
            .query_one("SELECT count(*) FROM powersync_endpoint_uploads", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_new_uploads_fails_on_a_recorded_id_or_a_missing_predecessor() {
        let pg =
            testkit::TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let mut client = pg.client().await.unwrap();
        create_ledger(&client).await.unwrap();
        let code = |r: Result<(), PgFailure>| match r {
            Ok(()) => None,
            Err(PgFailure::Pg(e)) => e.code().cloned(),
            Err(other) => panic!("{other:?}"),
        };
        // Each attempt in its own transaction, as the pipelined drain sends them.
        let mut attempt = async |ids: Vec<i64>, previous: Option<i64>| {
            let tx = client.transaction().await.unwrap();
            let result = code(record_new_uploads(&tx, "a", ids, previous).await);
            if result.is_none() {
                tx.commit().await.unwrap();
            }
            result
        };
        assert_eq!(attempt(vec![1, 2], None).await, None);
        assert_eq!(attempt(vec![3], Some(2)).await, None, "2 is recorded");
        assert_eq!(
            attempt(vec![3, 4], Some(3)).await,
            Some(SqlState::UNIQUE_VIOLATION),
            "3 is recorded already"
        );
        assert_eq!(
            attempt(vec![5], Some(4)).await,
            Some(SqlState::NOT_NULL_VIOLATION),
            "4 did not commit"
        );
        assert_eq!(
            attempt(vec![5], Some(3)).await,
            None,
            "the failures recorded nothing"
        );
        let recorded: Vec<i64> = client
            .query(
                "SELECT tx_id FROM powersync_endpoint_uploads ORDER BY tx_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(recorded, [1, 2, 3, 5]);
    }
}
