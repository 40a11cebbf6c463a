//! The run's PostgreSQL: a `testkit::TestPostgres` cluster holding the seed's `lww` table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use testkit::TestPostgres;

use crate::error::{Error, Result};
use crate::history::{Element, Key, parse_list};

/// The seed's table (reference A.5).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.lww (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    k INTEGER NOT NULL UNIQUE,
    v TEXT NOT NULL,
    CONSTRAINT lww_pkey PRIMARY KEY (id)
)";

/// The latest era's table (reference B.6, `init-scripts/migrations.sql`): `id` is the key as
/// text, `v = -1` means never written.
const CREATE_MWW_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.mww (
    id TEXT NOT NULL,
    k INTEGER NOT NULL UNIQUE,
    v INTEGER NOT NULL,
    CONSTRAINT mww_pkey PRIMARY KEY (id)
)";

/// A throwaway PostgreSQL cluster, shared between the run and the nemesis (which restarts it).
#[derive(Debug, Clone)]
pub struct Database {
    pg: Arc<Mutex<TestPostgres>>,
    port: u16,
}

impl Database {
    /// Starts a cluster, creates `lww` with keys `0..key_count` seeded with `''` (uuid ids) and
    /// `CREATE PUBLICATION powersync FOR TABLE lww`.
    pub async fn start(key_count: i64) -> Result<Database> {
        let pg = tokio::task::spawn_blocking(TestPostgres::start)
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let port = pg.port();
        let db = Database {
            pg: Arc::new(Mutex::new(pg)),
            port,
        };
        let client = db.client().await?;
        client.batch_execute(CREATE_TABLE).await?;
        client.execute("DELETE FROM lww", &[]).await?;
        let insert = client
            .prepare("INSERT INTO lww (k, v) VALUES ($1, '')")
            .await?;
        for k in 0..key_count {
            let k = i32::try_from(k).map_err(|_| Error::Options(format!("key {k} too large")))?;
            client.execute(&insert, &[&k]).await?;
        }
        client
            .batch_execute("CREATE PUBLICATION powersync FOR TABLE lww")
            .await?;
        Ok(db)
    }

    /// Starts a cluster with the latest era's `mww` table, keys `0..key_count` seeded with `-1`
    /// (`id` = the key as text), and `CREATE PUBLICATION powersync FOR TABLE mww`.
    pub async fn start_mww(key_count: i64) -> Result<Database> {
        let pg = tokio::task::spawn_blocking(TestPostgres::start)
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let port = pg.port();
        let db = Database {
            pg: Arc::new(Mutex::new(pg)),
            port,
        };
        let client = db.client().await?;
        client.batch_execute(CREATE_MWW_TABLE).await?;
        client.execute("DELETE FROM mww", &[]).await?;
        let n = i32::try_from(key_count)
            .map_err(|_| Error::Options(format!("key count {key_count} too large")))?;
        client
            .execute(
                "INSERT INTO mww (id, k, v) SELECT k::text, k, -1 FROM generate_series(0, $1 - 1) AS k",
                &[&n],
            )
            .await?;
        client
            .batch_execute("CREATE PUBLICATION powersync FOR TABLE mww")
            .await?;
        Ok(db)
    }

    /// PostgreSQL's `mww` state: key → value (`-1`: never written).
    pub async fn mww_state(&self) -> Result<BTreeMap<Key, i64>> {
        let client = self.client().await?;
        let rows = client.query("SELECT k, v FROM mww ORDER BY k", &[]).await?;
        let mut state = BTreeMap::new();
        for row in rows {
            let k: i32 = row.try_get(0)?;
            let v: i32 = row.try_get(1)?;
            state.insert(Key::from(k), i64::from(v));
        }
        Ok(state)
    }

    /// The port on 127.0.0.1 (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URI of the `postgres` database.
    pub fn uri(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A new connection; its task runs on the current runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.uri(), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`).
    pub async fn stop(&self) -> Result<()> {
        let pg = Arc::clone(&self.pg);
        tokio::task::spawn_blocking(move || {
            pg.lock()
                .map_err(|_| Error::Task("PostgreSQL handle poisoned".into()))?
                .stop()
                .map_err(Error::from)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Starts the server again on the same port (a no-op stop first if it is running).
    pub async fn restart(&self) -> Result<()> {
        let pg = Arc::clone(&self.pg);
        tokio::task::spawn_blocking(move || {
            pg.lock()
                .map_err(|_| Error::Task("PostgreSQL handle poisoned".into()))?
                .restart()
                .map_err(Error::from)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// PostgreSQL's state: key → list (the seed's leading-space text, split on whitespace).
    pub async fn final_state(&self) -> Result<BTreeMap<Key, Vec<Element>>> {
        let client = self.client().await?;
        let rows = client.query("SELECT k, v FROM lww ORDER BY k", &[]).await?;
        let mut state = BTreeMap::new();
        for row in rows {
            let k: i32 = row.try_get(0)?;
            let v: String = row.try_get(1)?;
            state.insert(Key::from(k), parse_list(&v)?);
        }
        Ok(state)
    }
}
