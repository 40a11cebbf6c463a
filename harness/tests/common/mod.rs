//! What the endpoint-level fault tests share: the binaries, a seed-era endpoint configuration,
//! and PostgreSQL with the stand-in in front of it.
#![allow(dead_code)] // each test file uses part of it

use std::path::Path;

use base64::Engine;
use harness::model::{Lww, Model};
use harness::runner;
use harness::topology::{Binaries, Database, EndpointConfig, Standin};

pub fn binaries() -> Binaries {
    Binaries::locate(None, None).unwrap_or_else(|e| panic!("{e}"))
}

/// A seed-era endpoint of node `name` in `mode`, on 127.0.0.1, without a sync service.
pub fn seed_config(name: &str, mode: endpoint::Mode) -> EndpointConfig {
    EndpointConfig {
        name: name.to_owned(),
        mode,
        connector: endpoint::BackendConnector::Transaction,
        failure_policy: endpoint::FailurePolicy::Forgiving,
        synchronous: endpoint::Durability::Full,
        powersync_url: None,
        pg_host: std::net::Ipv4Addr::LOCALHOST,
        pg_port: None,
        jwks_private_key: None,
        powersync_lib: None,
        latest: None,
        env: Vec::new(),
    }
}

/// PostgreSQL with the seed's `lww` table and the stand-in (in `dir/standin`) in front of it.
pub struct SyncServices {
    pub database: Database,
    pub standin: Standin,
    /// The seed's `JWKS_PRIVATE_KEY`: the public test key A as base64 private JWK.
    pub jwks_private_key: String,
}

pub async fn sync_services(dir: &Path) -> SyncServices {
    let database = Database::start(&Lww::SCHEMA, runner::ENDPOINT_KEYS)
        .await
        .expect("PostgreSQL starts");
    let standin = Standin::start(
        &binaries().standin,
        &dir.join("standin"),
        &database.uri(),
        testkit::TestKey::primary().jwks(),
        Lww::STANDIN,
    )
    .await
    .expect("stand-in starts");
    let private = testkit::keys::primary_private_jwk()
        .expect("key")
        .to_string();
    SyncServices {
        database,
        standin,
        jwks_private_key: base64::engine::general_purpose::STANDARD.encode(private),
    }
}
