//! PostgreSQL with the latest era's `mww` table (keys 0..99, `id` = the key as text, `v = -1`)
//! and, for `--endpoint powersync`, the stand-in sync service with `SELECT * FROM mww`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

use super::backend::private_jwk_base64;
use super::{Endpoint, Workdir};

/// The latest era's `init-scripts/migrations.sql`, for 100 keys.
pub const MWW_SQL: &str = "
CREATE TABLE IF NOT EXISTS public.mww (id TEXT NOT NULL, k INTEGER NOT NULL UNIQUE,
                  v INTEGER NOT NULL, CONSTRAINT mww_pkey PRIMARY KEY (id));
BEGIN;
DELETE FROM mww;
INSERT INTO mww (id, k, v) SELECT k::text, k, -1 FROM generate_series(0, 99) AS k;
COMMIT;
CREATE PUBLICATION powersync FOR TABLE mww;";

/// PostgreSQL with `mww`, and the stand-in over it when syncing.
pub struct MwwBackend {
    pub pg: TestPostgres,
    pub client: tokio_postgres::Client,
    standin: Option<StandIn>,
}

impl MwwBackend {
    /// PostgreSQL and the stand-in.
    pub async fn start() -> Self {
        let mut backend = Self::postgres_only().await;
        let rules = SyncRules::parse(
            "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM mww\n",
        )
        .unwrap();
        let mut config = Config::new(&backend.pg.uri(), rules, TestKey::primary().jwks());
        config.poll_interval = Duration::from_millis(10);
        backend.standin = Some(StandIn::start(config).await.unwrap());
        backend
    }

    /// PostgreSQL only (for `--endpoint postgresql`).
    pub async fn postgres_only() -> Self {
        let pg = TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let client = pg.client().await.unwrap();
        client.batch_execute(MWW_SQL).await.unwrap();
        Self {
            pg,
            client,
            standin: None,
        }
    }

    /// The latest-era command line for `endpoint` (`powersync` or `postgresql`).
    pub fn args(&self, endpoint: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "--endpoint",
            endpoint,
            "--httpPort",
            "0",
            "-l",
            "INFO",
            "--PG_DATABASE_HOST",
            "127.0.0.1",
            "--PG_DATABASE_NAME",
            "postgres",
            "--PG_DATABASE_USER",
            "postgres",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--PG_DATABASE_PORT={}", self.pg.port()));
        if let Some(standin) = &self.standin {
            args.push(format!("--POWERSYNC_URL={}", standin.url()));
        }
        args
    }

    /// Starts `--endpoint powersync` in `wd` (database `wd/data/http.sqlite3`); `env` is added
    /// to the key.
    pub fn powersync_endpoint(&self, wd: &Workdir, env: &[(&str, &str)]) -> Endpoint {
        let key = private_jwk_base64();
        let mut all = vec![("JWKS_PRIVATE_KEY", key.as_str())];
        all.extend_from_slice(env);
        let args = self.args("powersync");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wd.start_exactly(&all, &args)
    }

    /// Starts `--endpoint postgresql` in `wd`.
    pub fn postgresql_endpoint(&self, wd: &Workdir) -> Endpoint {
        let args = self.args("postgresql");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wd.start_exactly(&[], &args)
    }

    /// PostgreSQL's `mww` values by key.
    pub async fn values(&self) -> BTreeMap<i64, i64> {
        self.client
            .query("SELECT k, v FROM mww", &[])
            .await
            .unwrap()
            .into_iter()
            .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
            .collect()
    }

    /// Waits until PostgreSQL holds `expected` for the keys given.
    pub async fn wait_for(&self, expected: &[(i64, i64)]) -> BTreeMap<i64, i64> {
        testkit::eventually_async(
            format!("PostgreSQL to reach {expected:?}"),
            Duration::from_secs(30),
            || async {
                let values = self.values().await;
                if expected.iter().all(|(k, v)| values.get(k) == Some(v)) {
                    Ok(values)
                } else {
                    Err(format!("has {values:?}"))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.standin.take() {
            s.shutdown().await;
        }
    }
}

/// A `/sql-txn` body: `readAll` then `writeSome` of `writes`, with operation `f`.
pub fn mww_txn(f: &str, writes: &[(i64, i64)]) -> String {
    let v: serde_json::Map<String, Value> = writes
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"type": "invoke", "f": f, "value": [
        {"f": "readAll", "k": null, "v": {}},
        {"f": "writeSome", "k": null, "v": v},
    ]})
    .to_string()
}

/// `readAll`'s map of a reply, as integers.
pub fn read_all(reply: &Value) -> BTreeMap<i64, i64> {
    reply["value"][0]["v"]
        .as_object()
        .unwrap_or_else(|| panic!("no readAll map in {reply}"))
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_i64().unwrap()))
        .collect()
}

/// `writeSome`'s map of a reply, as integers.
pub fn written(reply: &Value) -> BTreeMap<i64, i64> {
    reply["value"][1]["v"]
        .as_object()
        .unwrap_or_else(|| panic!("no writeSome map in {reply}"))
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_i64().unwrap()))
        .collect()
}

/// Asserts that the log has none of the words the latest harness greps for (case-sensitive
/// `(SEVERE)|(ERROR)`).
pub fn assert_no_severe_or_error(log: &str) {
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("SEVERE"))
        .collect();
    assert!(hits.is_empty(), "the log has:\n{}", hits.join("\n"));
    assert!(
        log.contains("listening on"),
        "the log is incomplete:\n{log}"
    );
}
