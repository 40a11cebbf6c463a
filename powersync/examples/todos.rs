//! A todo list that syncs and prints itself live through `watch`.
//!
//! `cargo run -p powersync --example todos` starts a throwaway PostgreSQL (as the `postgres`
//! user, like the tests) and the stand-in sync service, adds todos locally and in PostgreSQL,
//! and prints the list every time it changes, until both kinds have arrived.
//!
//! `cargo run -p powersync --example todos -- URL TOKEN` syncs with a real PowerSync service
//! instead (its sync rules must put a `todos` table with `description` in a bucket the token's
//! user gets). There is no backend to upload to in that mode: local writes are printed as
//! they would be uploaded and completed. Stop it with Ctrl-C.

use futures_util::StreamExt;
use powersync::schema::{Column, Schema, Table};
use powersync::{
    BackendConnector, ConnectorError, DatabaseOptions, PowerSyncCredentials, PowerSyncDatabase,
    SyncOptions, UpdateType, WatchOptions,
};
use serde_json::Value;

/// Hands out the credentials; uploads to PostgreSQL when there is one, else prints.
struct Connector {
    credentials: PowerSyncCredentials,
    postgres: Option<String>,
}

fn retry(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::retryable(e.to_string())
}

impl BackendConnector for Connector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Ok(self.credentials.clone())
    }

    async fn upload_data(&self, db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        let Some(batch) = db.crud_batch(100).await.map_err(retry)? else {
            return Ok(());
        };
        match &self.postgres {
            Some(uri) => {
                let (client, connection) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
                    .await
                    .map_err(retry)?;
                tokio::spawn(connection);
                for entry in &batch.crud {
                    let description = entry
                        .data
                        .as_ref()
                        .and_then(|d| d.get("description"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let done = match entry.op {
                        UpdateType::Delete => {
                            client
                                .execute("DELETE FROM todos WHERE id = $1", &[&entry.id])
                                .await
                        }
                        _ => {
                            client
                                .execute(
                                    "INSERT INTO todos (id, description) VALUES ($1, $2)
                                     ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description",
                                    &[&entry.id, &description],
                                )
                                .await
                        }
                    };
                    done.map_err(retry)?;
                }
            }
            None => {
                for entry in &batch.crud {
                    println!(
                        "  (would upload {:?} {} {:?})",
                        entry.op, entry.id, entry.data
                    );
                }
            }
        }
        batch.complete().await.map_err(retry)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let schema = Schema::new(vec![Table::new("todos", vec![Column::text("description")])]);
    let dir = tempfile::tempdir()?;
    let db = PowerSyncDatabase::open(
        dir.path().join("todos.db"),
        &schema,
        DatabaseOptions::default(),
    )
    .await?;

    // Either a real service from the command line, or PostgreSQL + the stand-in here.
    let mut local = None;
    let connector = match args.as_slice() {
        [url, token] => Connector {
            credentials: PowerSyncCredentials {
                endpoint: url.clone(),
                token: token.clone(),
            },
            postgres: None,
        },
        [] => {
            let pg = testkit::TestPostgres::start()?;
            let client = pg.client().await?;
            client
                .batch_execute(
                    "CREATE TABLE todos (id TEXT PRIMARY KEY, description TEXT NOT NULL);
                     CREATE PUBLICATION powersync FOR TABLE todos;",
                )
                .await?;
            let rules = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM todos\n";
            let key = testkit::TestKey::primary();
            let standin = standin::StandIn::start(standin::Config::new(
                &pg.uri(),
                standin::SyncRules::parse(rules)?,
                key.jwks(),
            ))
            .await?;
            println!("stand-in at {} over PostgreSQL {}", standin.url(), pg.uri());
            let connector = Connector {
                credentials: PowerSyncCredentials {
                    endpoint: standin.url(),
                    // The public test key's token (a test fixture, not a secret).
                    token: key.token("todo-user", 3600)?,
                },
                postgres: Some(pg.uri()),
            };
            local = Some((pg, client, standin));
            connector
        }
        _ => return Err("usage: todos [URL TOKEN]".into()),
    };
    db.connect(connector, SyncOptions::default()).await?;

    let mut list = db.watch(
        "SELECT description FROM todos ORDER BY description",
        vec![],
        WatchOptions::default(),
        |row| row.get::<_, String>(0),
    );
    db.execute(
        "INSERT INTO todos(id, description) VALUES (uuid(), 'written locally')",
        [],
    )
    .await?;
    if let Some((_, client, _)) = &local {
        client
            .execute(
                "INSERT INTO todos (id, description) VALUES ('pg-1', 'written in PostgreSQL')",
                &[],
            )
            .await?;
    }
    while let Some(todos) = list.next().await {
        let todos = todos?;
        println!("todos ({}): {todos:?}", todos.len());
        if local.is_some() && todos.len() == 2 {
            break;
        }
    }
    db.close().await?;
    if let Some((_pg, _client, standin)) = local {
        standin.shutdown().await;
    }
    Ok(())
}
