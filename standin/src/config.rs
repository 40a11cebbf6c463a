//! Configuration of the stand-in: the YAML file of the binary and the [`Config`] that tests
//! build in code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::rules::SyncRules;

/// Everything the stand-in needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (see [`crate::StandIn::url`]).
    pub listen: SocketAddr,
    /// URI of the source PostgreSQL database (superuser or REPLICATION role). The stand-in also
    /// keeps its own state there, in schema [`Config::storage_schema`].
    pub postgres_uri: String,
    /// The parsed sync rules.
    pub sync_rules: SyncRules,
    /// The static JWKS (`{"keys":[...]}`) tokens are verified against.
    pub jwks: serde_json::Value,
    /// Accepted audiences; a token's `aud` must intersect this list. Empty rejects every token.
    pub audience: Vec<String>,
    /// Largest accepted `exp - iat` (the self-hosted service's default is 1 day).
    pub max_token_lifetime: Duration,
    /// Name of the logical replication slot the stand-in creates and consumes.
    pub slot_name: String,
    /// Schema in the source database holding the stand-in's persistent state.
    pub storage_schema: String,
    /// How changes are read from the slot (streaming by default).
    pub replication: crate::replication::ReplicationMode,
    /// Interval between polls of the replication slot while idle
    /// ([`crate::replication::ReplicationMode::Polling`] only).
    pub poll_interval: Duration,
    /// Interval between `token_expires_in` keepalive lines (±10 % jitter is applied).
    pub keepalive_interval: Duration,
    /// A warning keepalive is sent this long before the token expires.
    pub expire_warning: Duration,
    /// Maximum number of ops in one `data` line.
    pub data_chunk_ops: usize,
    /// Compact the buckets this often ([`crate::StandIn::compact`]); `None` (the default):
    /// only when asked.
    pub compact_interval: Option<Duration>,
    /// Serve `POST /sync/checkpoint-request` (the service has since 1.24.0; the default).
    /// `false` answers it 404, as an older service does.
    pub checkpoint_requests: bool,
    /// Buckets one connection may have; more end its stream with the service's "Too many
    /// buckets" error (the service's default is 1000).
    pub max_buckets: usize,
}

impl Config {
    /// A configuration with the service's defaults, listening on `127.0.0.1:0`.
    pub fn new(postgres_uri: &str, sync_rules: SyncRules, jwks: serde_json::Value) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            postgres_uri: postgres_uri.to_owned(),
            sync_rules,
            jwks,
            audience: vec!["powersync-dev".to_owned(), "powersync".to_owned()],
            max_token_lifetime: Duration::from_secs(86_400),
            slot_name: "powersync_standin".to_owned(),
            storage_schema: "powersync_standin".to_owned(),
            replication: Default::default(),
            poll_interval: Duration::from_millis(20),
            keepalive_interval: Duration::from_secs(20),
            expire_warning: Duration::from_secs(20),
            data_chunk_ops: 1000,
            compact_interval: None,
            checkpoint_requests: true,
            max_buckets: crate::stream::MAX_BUCKETS,
        }
    }

    /// Reads the YAML configuration file of the binary. Relative paths in it are resolved
    /// against the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        let file: ConfigFile = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.resolve(base)
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

/// The YAML configuration file of the `standin` binary.
///
/// ```yaml
/// port: 8080                       # optional, default 8080; 0 = any free port
/// host: 127.0.0.1                  # optional
/// postgres_uri: postgresql://postgres@127.0.0.1:5432/postgres
/// sync_rules:
///   path: sync_rules.yaml          # or `content: |` with the rules inline
/// client_auth:
///   jwks_path: jwks.json           # or `jwks: {keys: [...]}` inline
///   audience: [powersync-dev, powersync]
///   max_token_lifetime_secs: 86400 # optional
/// slot_name: powersync_standin     # optional
/// storage_schema: powersync_standin # optional
/// replication: streaming         # optional; or `polling`
/// poll_interval_ms: 20             # optional; polling only
/// keepalive_interval_secs: 20      # optional
/// compact_interval_secs: 300       # optional; no periodic compaction without it
/// max_buckets_per_connection: 1000 # optional
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    port: Option<u16>,
    host: Option<std::net::IpAddr>,
    postgres_uri: String,
    sync_rules: SyncRulesSource,
    client_auth: ClientAuth,
    slot_name: Option<String>,
    storage_schema: Option<String>,
    replication: Option<crate::replication::ReplicationMode>,
    poll_interval_ms: Option<u64>,
    keepalive_interval_secs: Option<u64>,
    compact_interval_secs: Option<u64>,
    max_buckets_per_connection: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRulesSource {
    path: Option<PathBuf>,
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientAuth {
    jwks: Option<serde_json::Value>,
    jwks_path: Option<PathBuf>,
    #[serde(default)]
    audience: Vec<String>,
    max_token_lifetime_secs: Option<u64>,
}

impl ConfigFile {
    fn resolve(self, base: &Path) -> Result<Config, Error> {
        let rules_text = match (self.sync_rules.path, self.sync_rules.content) {
            (Some(p), None) => read(&base.join(p))?,
            (None, Some(c)) => c,
            _ => {
                return Err(Error::Config(
                    "sync_rules needs exactly one of `path` or `content`".to_owned(),
                ));
            }
        };
        let jwks = match (self.client_auth.jwks, self.client_auth.jwks_path) {
            (Some(j), None) => j,
            (None, Some(p)) => {
                let text = read(&base.join(p))?;
                serde_json::from_str(&text).map_err(|e| Error::Jwks(e.to_string()))?
            }
            _ => {
                return Err(Error::Config(
                    "client_auth needs exactly one of `jwks` or `jwks_path`".to_owned(),
                ));
            }
        };
        let mut config = Config::new(&self.postgres_uri, SyncRules::parse(&rules_text)?, jwks);
        config.listen = SocketAddr::new(
            self.host.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            self.port.unwrap_or(8080),
        );
        config.audience = self.client_auth.audience;
        if let Some(secs) = self.client_auth.max_token_lifetime_secs {
            config.max_token_lifetime = Duration::from_secs(secs);
        }
        if let Some(slot) = self.slot_name {
            config.slot_name = slot;
        }
        if let Some(schema) = self.storage_schema {
            config.storage_schema = schema;
        }
        if let Some(mode) = self.replication {
            config.replication = mode;
        }
        if let Some(ms) = self.poll_interval_ms {
            config.poll_interval = Duration::from_millis(ms.max(1));
        }
        if let Some(secs) = self.keepalive_interval_secs {
            config.keepalive_interval = Duration::from_secs(secs.max(1));
        }
        if let Some(secs) = self.compact_interval_secs {
            config.compact_interval = Some(Duration::from_secs(secs.max(1)));
        }
        if let Some(limit) = self.max_buckets_per_connection {
            config.max_buckets = limit;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_config_file_with_relative_paths() {
        let dir = std::env::temp_dir().join(format!("standin-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rules.yaml"),
            "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n",
        )
        .unwrap();
        std::fs::write(dir.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
        std::fs::write(
            dir.join("standin.yaml"),
            "port: 0\npostgres_uri: postgresql://x@127.0.0.1/db\nsync_rules:\n  path: rules.yaml\n\
             client_auth:\n  jwks_path: jwks.json\n  audience: [a]\npoll_interval_ms: 5\n\
             compact_interval_secs: 60\n",
        )
        .unwrap();
        let config = Config::from_file(&dir.join("standin.yaml")).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.audience, vec!["a".to_owned()]);
        assert_eq!(config.poll_interval, Duration::from_millis(5));
        assert_eq!(config.compact_interval, Some(Duration::from_secs(60)));
        assert_eq!(config.sync_rules.buckets()[0].name, "global[]");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = serde_yaml_ng::from_str::<ConfigFile>("bogus: 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
