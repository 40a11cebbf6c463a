//! Sync test support: a throwaway PostgreSQL with a `todos` table, the stand-in in front of it,
//! and a connector that uploads to PostgreSQL and hands out tokens the test chooses.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use powersync::schema::{Column, Schema, Table};
use powersync::{
    BackendConnector, Backoff, ConnectorError, CoreLibrary, DatabaseOptions, PowerSyncCredentials,
    PowerSyncDatabase, SyncOptions, UpdateType, UploadOptions,
};
use serde_json::Value;
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

/// id -> (description, done).
pub type Rows = BTreeMap<String, (String, Option<i64>)>;

pub const RULES: &str = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM todos\n";

/// The service docs' todo-list tables with owners: `lists (owner_id, name)` and
/// `todos (list_id, description)`, for the per-user and Sync Streams tests.
pub fn owned_lists_and_todos() -> Vec<Table> {
    vec![
        Table::new(
            "lists",
            vec![Column::text("owner_id"), Column::text("name")],
        ),
        Table::new(
            "todos",
            vec![Column::text("list_id"), Column::text("description")],
        ),
    ]
}

pub fn schema() -> Schema {
    Schema::new(vec![Table::new(
        "todos",
        vec![Column::text("description"), Column::integer("done")],
    )])
}

pub async fn postgres() -> (TestPostgres, tokio_postgres::Client) {
    let pg = TestPostgres::start().expect("start PostgreSQL (apt-get install -y postgresql)");
    let client = pg.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE todos (id TEXT PRIMARY KEY, description TEXT NOT NULL, done BIGINT NOT NULL DEFAULT 0);
             CREATE PUBLICATION powersync FOR TABLE todos;",
        )
        .await
        .unwrap();
    (pg, client)
}

/// A throwaway PostgreSQL whose `todos` hold the rows of `seed` (SQL), and the stand-in in
/// front of it.
pub async fn postgres_with_standin(seed: &str) -> (TestPostgres, tokio_postgres::Client, StandIn) {
    let (pg, client) = postgres().await;
    client.batch_execute(seed).await.unwrap();
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    (pg, client, standin)
}

pub fn standin_config(pg: &TestPostgres) -> Config {
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(RULES).unwrap(),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    config.keepalive_interval = Duration::from_secs(1);
    config
}

/// Hands out credentials; called with the 0-based number of the fetch.
pub type TokenSource = Arc<
    dyn Fn(usize) -> BoxFuture<'static, Result<PowerSyncCredentials, ConnectorError>> + Send + Sync,
>;

/// A token source minting a fresh token of `lifetime_secs` for `user` at every fetch.
pub fn fresh_tokens(endpoint: &str, user: &str, lifetime_secs: i64) -> TokenSource {
    let endpoint = endpoint.to_string();
    let user = user.to_string();
    Arc::new(move |_| {
        let credentials = mint(&endpoint, &user, lifetime_secs);
        Box::pin(async move { credentials })
    })
}

/// One token from the test key.
pub fn mint(
    endpoint: &str,
    user: &str,
    lifetime_secs: i64,
) -> Result<PowerSyncCredentials, ConnectorError> {
    let token = TestKey::primary()
        .token(user, lifetime_secs)
        .map_err(|e| ConnectorError::retryable(e.to_string()))?;
    Ok(PowerSyncCredentials {
        endpoint: endpoint.to_string(),
        token,
    })
}

/// Uploads each CRUD batch to PostgreSQL in one transaction, then completes it.
#[derive(Clone)]
pub struct PgConnector {
    pub pg_uri: String,
    pub tokens: TokenSource,
    pub fetches: Arc<AtomicUsize>,
}

impl PgConnector {
    pub fn new(endpoint: &str, pg: &TestPostgres, user: &str) -> Self {
        Self::with_tokens(pg, fresh_tokens(endpoint, user, 300))
    }

    pub fn with_tokens(pg: &TestPostgres, tokens: TokenSource) -> Self {
        Self {
            pg_uri: pg.uri(),
            tokens,
            fetches: Arc::default(),
        }
    }
}

fn retryable(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::retryable(e.to_string())
}

impl BackendConnector for PgConnector {
    fn fetch_credentials(
        &self,
    ) -> impl Future<Output = Result<PowerSyncCredentials, ConnectorError>> + Send {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        (self.tokens)(n)
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        upload_todos(&self.pg_uri, db).await
    }
}

/// Uploads one CRUD batch of `todos` to PostgreSQL in one transaction, then completes it.
pub async fn upload_todos(pg_uri: &str, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
    let Some(batch) = db.crud_batch(100).await.map_err(retryable)? else {
        return Ok(());
    };
    let (mut client, connection) = tokio_postgres::connect(pg_uri, tokio_postgres::NoTls)
        .await
        .map_err(retryable)?;
    tokio::spawn(connection);
    let tx = client.transaction().await.map_err(retryable)?;
    for entry in &batch.crud {
        let data = entry.data.clone().unwrap_or_default();
        let description = data
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let done = data.get("done").and_then(Value::as_i64);
        match entry.op {
            UpdateType::Put => tx
                .execute(
                    "INSERT INTO todos (id, description, done) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, done = EXCLUDED.done",
                    &[&entry.id, &description.unwrap_or_default(), &done.unwrap_or(0)],
                )
                .await
                .map_err(retryable)?,
            UpdateType::Patch => tx
                .execute(
                    "UPDATE todos SET description = coalesce($2, description), done = coalesce($3, done) WHERE id = $1",
                    &[&entry.id, &description, &done],
                )
                .await
                .map_err(retryable)?,
            UpdateType::Delete => tx
                .execute("DELETE FROM todos WHERE id = $1", &[&entry.id])
                .await
                .map_err(retryable)?,
        };
    }
    tx.commit().await.map_err(retryable)?;
    batch
        .complete()
        .await
        .map_err(|e| ConnectorError::fatal(e.to_string()))
}

/// Short delays, so that tests do not wait for the non-hammering defaults.
pub fn fast() -> SyncOptions {
    SyncOptions::default()
        .with_retry(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            jitter: 0.5,
        })
        .with_upload(UploadOptions {
            throttle: Duration::from_millis(5),
            retry: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                jitter: 0.5,
            },
        })
}

pub async fn open_client(core: &'static CoreLibrary) -> (tempfile::TempDir, PowerSyncDatabase) {
    open_client_with(core, &schema()).await
}

/// A client database with `schema` in a temporary directory.
pub async fn open_client_with(
    core: &'static CoreLibrary,
    schema: &Schema,
) -> (tempfile::TempDir, PowerSyncDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = PowerSyncDatabase::open(
        dir.path().join("client.db"),
        schema,
        DatabaseOptions::default().with_core(core),
    )
    .await
    .unwrap();
    (dir, db)
}

pub async fn client_rows(db: &PowerSyncDatabase) -> Rows {
    rows_of(db, "SELECT id, description, done FROM todos").await
}

/// The rows `sql` selects as `id, description, done`.
pub async fn rows_of(db: &PowerSyncDatabase, sql: &str) -> Rows {
    db.query(sql, [], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .await
        .unwrap()
        .into_iter()
        .collect()
}

pub async fn pg_rows(pg: &tokio_postgres::Client) -> Rows {
    pg.query("SELECT id, description, done FROM todos", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), Some(r.get(2)))))
        .collect()
}

/// Polls `check` until it returns true; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testkit::eventually_async(what, timeout, check)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until every client holds exactly PostgreSQL's rows and has nothing left to upload.
pub async fn converge_within(
    timeout: Duration,
    pg: &tokio_postgres::Client,
    clients: &[&PowerSyncDatabase],
) -> Rows {
    testkit::eventually_async(
        "every client to hold PostgreSQL's rows with an empty upload queue",
        timeout,
        || async {
            let expected = pg_rows(pg).await;
            let mut all = true;
            for db in clients {
                all &= db.upload_queue_stats().await.unwrap().count == 0
                    && client_rows(db).await == expected;
            }
            if all && pg_rows(pg).await == expected {
                return Ok(expected);
            }
            let got =
                futures_util::future::join_all(clients.iter().map(|db| client_rows(db))).await;
            Err(format!("PostgreSQL {expected:?}, clients {got:?}"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("no convergence: {e}"))
}

/// A shared slot tests use to hold values across connector calls.
pub type Shared<T> = Arc<Mutex<T>>;
