//! PostgreSQL with the seed's `lww` table and the stand-in sync service, for the PowerSync modes
//! tests and benches.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde_json::{Value, json};
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

use super::{Endpoint, Workdir, stored_list};

pub const SEED_SQL: &str = "
CREATE TABLE lww (id uuid NOT NULL DEFAULT gen_random_uuid(), k INTEGER NOT NULL UNIQUE, v TEXT NOT NULL,
                  CONSTRAINT lww_pkey PRIMARY KEY (id));
INSERT INTO lww (k, v) SELECT k, '' FROM generate_series(0, 99) AS k;
CREATE PUBLICATION powersync FOR TABLE lww;";

/// The primary test key as the base64 private JWK that `JWKS_PRIVATE_KEY` takes.
pub fn private_jwk_base64() -> String {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testkit/fixtures/test_key_a.pem"
    ))
    .unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let b =
        |n: &rsa::BigUint| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    let jwk = json!({
        "kty": "RSA", "alg": "RS256", "kid": TestKey::primary().kid(),
        "n": b(key.n()), "e": b(key.e()), "d": b(key.d()),
        "p": b(&key.primes()[0]), "q": b(&key.primes()[1]),
    });
    base64::engine::general_purpose::STANDARD.encode(jwk.to_string())
}

/// PostgreSQL with the seed's schema, and the stand-in over it.
pub struct Backend {
    pub pg: TestPostgres,
    pub client: tokio_postgres::Client,
    standin: Option<StandIn>,
}

impl Backend {
    pub async fn start() -> Self {
        let pg = TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let client = pg.client().await.unwrap();
        client.batch_execute(SEED_SQL).await.unwrap();
        let rules = SyncRules::parse(
            "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n",
        )
        .unwrap();
        let mut config = Config::new(&pg.uri(), rules, TestKey::primary().jwks());
        config.poll_interval = Duration::from_millis(10);
        let standin = StandIn::start(config).await.unwrap();
        Self {
            pg,
            client,
            standin: Some(standin),
        }
    }

    pub fn endpoint(&self, wd: &Workdir, connector: &str, extra: &[(&str, &str)]) -> Endpoint {
        let url = self.standin.as_ref().unwrap().url();
        let port = self.pg.port().to_string();
        let key = private_jwk_base64();
        let mut env = vec![
            ("ENDPOINT_MODE", "powersync"),
            ("BACKEND_CONNECTOR", connector),
            ("POWERSYNC_URL", url.as_str()),
            ("PG_DATABASE_HOST", "127.0.0.1"),
            ("PG_DATABASE_PORT", port.as_str()),
            ("PG_DATABASE_NAME", "postgres"),
            ("PG_DATABASE_USER", "postgres"),
            ("PG_DATABASE_PASSWORD", "unused"),
            ("JWKS_PRIVATE_KEY", key.as_str()),
            ("ENDPOINT_LOG_LEVEL", "INFO"),
        ];
        env.extend_from_slice(extra);
        wd.start(&env, &[])
    }

    /// PostgreSQL's lists by key.
    pub async fn lists(&self) -> BTreeMap<i64, Vec<i64>> {
        self.client
            .query("SELECT k, v FROM lww", &[])
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    i64::from(r.get::<_, i32>(0)),
                    stored_list(r.get::<_, &str>(1)),
                )
            })
            .collect()
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.standin.take() {
            s.shutdown().await;
        }
    }
}

pub fn append_txn(keys: &[i64], value: i64) -> String {
    let ops: Vec<Value> = keys
        .iter()
        .map(|k| json!({"f": "append", "k": k, "v": value}))
        .collect();
    json!({ "value": ops }).to_string()
}

/// Waits until PostgreSQL holds `expected` (value lists by key, for the keys given).
pub async fn wait_for_postgres(
    backend: &Backend,
    expected: &BTreeMap<i64, Vec<i64>>,
) -> BTreeMap<i64, Vec<i64>> {
    testkit::eventually_async(
        format!("PostgreSQL to reach {expected:?}"),
        Duration::from_secs(30),
        || async {
            let lists = backend.lists().await;
            if expected.iter().all(|(k, v)| lists.get(k) == Some(v)) {
                Ok(lists)
            } else {
                Err(format!("has {lists:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}
