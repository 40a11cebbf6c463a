//! The run's PostgreSQL: a `testkit::TestPostgres` cluster holding a data model's table
//! (the seed's `lww` or the latest era's `mww`, see [`crate::model`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use testkit::TestPostgres;

use crate::error::{Error, Result};
use crate::history::Key;
use crate::model::Model;

/// A data model's table in PostgreSQL: how to create it and seed its keys.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The table's name (published as `powersync`).
    pub table: &'static str,
    /// `CREATE TABLE IF NOT EXISTS ...`.
    pub create: &'static str,
    /// Inserts the keys `0..$1` with their never-written value (`$1`: the key count).
    pub seed: &'static str,
}

/// A throwaway PostgreSQL cluster, shared between the run and the nemesis (which restarts it).
#[derive(Debug, Clone)]
pub struct Database {
    pg: Arc<Mutex<TestPostgres>>,
    port: u16,
}

impl Database {
    /// Starts a cluster, creates `schema`'s table with keys `0..key_count` seeded and
    /// `CREATE PUBLICATION powersync FOR TABLE <table>`.
    pub async fn start(schema: &Schema, key_count: i64) -> Result<Database> {
        let n = i32::try_from(key_count)
            .map_err(|_| Error::Options(format!("key count {key_count} too large")))?;
        let pg = tokio::task::spawn_blocking(TestPostgres::start_durable)
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let port = pg.port();
        let db = Database {
            pg: Arc::new(Mutex::new(pg)),
            port,
        };
        let client = db.client().await?;
        client.batch_execute(schema.create).await?;
        client
            .execute(&format!("DELETE FROM {}", schema.table), &[])
            .await?;
        client.execute(schema.seed, &[&n]).await?;
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION powersync FOR TABLE {}",
                schema.table
            ))
            .await?;
        Ok(db)
    }

    /// PostgreSQL's state of model `M`'s table: key → value, read as text and parsed by the
    /// model.
    pub async fn state<M: Model>(&self) -> Result<BTreeMap<Key, M::Value>> {
        let client = self.client().await?;
        let sql = format!("SELECT k, v::text FROM {} ORDER BY k", M::SCHEMA.table);
        let rows = client.query(&sql, &[]).await?;
        let mut state = BTreeMap::new();
        for row in rows {
            let k: i32 = row.try_get(0)?;
            let v: String = row.try_get(1)?;
            state.insert(Key::from(k), M::parse_value(&v)?);
        }
        Ok(state)
    }

    /// The port on 127.0.0.1 (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URI of the `postgres` database.
    pub fn uri(&self) -> String {
        self.uri_on_port(self.port)
    }

    /// The connection URI of the `postgres` database as reached on `port` of 127.0.0.1 (a
    /// [`Link`](crate::link::Link) to it).
    pub fn uri_on_port(&self, port: u16) -> String {
        format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
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
}
