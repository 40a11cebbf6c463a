//! Configuration: command-line flags, `./.env` and the process environment.
//!
//! Every setting has a flag and a key with the seed's spelling (`ENDPOINT_PORT`, ...). Precedence,
//! highest first: a flag on the command line, then `./.env` (in the working directory), then the
//! process environment, then the seed's default. `.env` beats the environment because the Dart
//! endpoint loads it with `DotEnv(includePlatformEnvironment: true)..load()`, where the file's
//! entries are added after (over) the platform environment.
//!
//! `.env` entries are applied by turning each known key into its `--flag=value` placed before the
//! real arguments (flags override themselves, the last one wins), so a value from `.env` is parsed
//! and checked exactly like the same value given as a flag. Unknown `.env` keys are ignored.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use tracing::level_filters::LevelFilter;

use crate::error::{Error, Result};

/// The file read for `.env` settings, relative to the working directory.
pub const DOTENV_FILE: &str = ".env";

/// Where transactions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Plain SQLite, no PowerSync (the seed's `sqlite3-local` workload).
    #[value(name = "sqlite3-local")]
    Sqlite3Local,
    /// A PowerSync database whose `lww` table is local-only (`LOCAL_ONLY=true`), no sync.
    #[value(name = "powersync-local")]
    PowersyncLocal,
    /// A PowerSync database synced with the PowerSync service, uploads through the connector.
    #[value(name = "powersync")]
    Powersync,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Sqlite3Local => "sqlite3-local",
            Mode::PowersyncLocal => "powersync-local",
            Mode::Powersync => "powersync",
        })
    }
}

/// How local writes are uploaded to PostgreSQL (`BACKEND_CONNECTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendConnector {
    /// One whole local transaction per PostgreSQL transaction (the seed's default).
    #[value(name = "CrudTransactionConnector")]
    Transaction,
    /// One CRUD batch per call, entry by entry in autocommit.
    #[value(name = "CrudBatchConnector")]
    Batch,
    /// Several whole local transactions per PostgreSQL transaction, never splitting one.
    #[value(name = "CrudMultiTransactionConnector")]
    MultiTransaction,
}

impl fmt::Display for BackendConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendConnector::Transaction => "CrudTransactionConnector",
            BackendConnector::Batch => "CrudBatchConnector",
            BackendConnector::MultiTransaction => "CrudMultiTransactionConnector",
        })
    }
}

/// What the endpoint does when an upload or an invariant fails (`--failure-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FailurePolicy {
    /// The Dart endpoint's: log `ERROR` and exit with its code. Seed era (47f845d): 127 on any
    /// upload error, also after its 10 serialization retries. Latest era (b77a3d0): 12 stuck
    /// upload queue, 20/22 invalid SQLite/PostgreSQL data, 30 duplicate transaction id in one
    /// process, 32 conflict retries exhausted, 40 database API timeout, 50 any other PostgreSQL
    /// or connection error. Re-uploads are applied again (no ledger), as in Dart.
    #[default]
    #[value(name = "dart")]
    Dart,
    /// This endpoint's forgiving policy: lost connections and other retryable errors are retried
    /// by the upload loop, re-uploads after a crash are skipped through the
    /// `powersync_endpoint_uploads` ledger, invariant failures become 5xx replies with `ERROR`;
    /// only fatal upload errors exit (127 seed, 32 latest).
    #[value(name = "forgiving")]
    Forgiving,
}

/// SQLite's `synchronous` on every connection of the endpoint's database (`--synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: a transaction is acknowledged only after its commit reached stable
    /// storage (the WAL is fsynced at every commit), so a power loss loses nothing acknowledged.
    #[default]
    #[value(name = "full")]
    Full,
    /// `synchronous=NORMAL`: WAL commits are fsynced only at checkpoints (the Dart SDK's
    /// default, through sqlite_async), so a power loss may lose the last acknowledged
    /// transactions; the database is never corrupted.
    #[value(name = "normal")]
    Normal,
}

impl Durability {
    /// The `synchronous` value of the `powersync` crate.
    pub fn synchronous(self) -> powersync::Synchronous {
        match self {
            Durability::Full => powersync::Synchronous::Full,
            Durability::Normal => powersync::Synchronous::Normal,
        }
    }

    /// The pragma's value, for plain SQLite connections.
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }

    /// Database options with this durability (every other option the default).
    pub fn database_options(self) -> powersync::DatabaseOptions {
        let mut options = powersync::DatabaseOptions::default();
        options.pragmas.synchronous = self.synchronous();
        options
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        })
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailurePolicy::Dart => "dart",
            FailurePolicy::Forgiving => "forgiving",
        })
    }
}

impl FailurePolicy {
    /// Under the Dart policy, the Dart endpoint's exit code for `e` (an invariant of the latest
    /// era's API), if it has one.
    pub fn dart_exit_code(self, e: &Error) -> Option<i32> {
        if self != FailurePolicy::Dart {
            return None;
        }
        match e {
            Error::UploadQueueStuck { .. } => Some(12),
            Error::IncompleteData { store, .. } if *store == "sqlite3" => Some(20),
            Error::IncompleteData { .. } => Some(22),
            Error::ApiTimeout(..) => Some(40),
            Error::Postgres(_) => Some(50),
            _ => None,
        }
    }

    /// Under the Dart policy, logs `e` at ERROR and exits with the Dart code; otherwise `e`.
    pub fn check(self, e: Error) -> Error {
        if let Some(code) = self.dart_exit_code(&e) {
            tracing::error!(
                "{e}; exiting {code} as the Dart endpoint does (--failure-policy forgiving answers \
                 a 5xx instead)"
            );
            std::process::exit(code);
        }
        e
    }
}

/// The latest era's `--endpoint`: which store the mww transactions run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LatestEndpoint {
    /// A PowerSync database synced with the service (the latest era's `ps` client).
    #[value(name = "powersync")]
    Powersync,
    /// PostgreSQL directly, at REPEATABLE READ (the latest era's `pg` client).
    #[value(name = "postgresql")]
    Postgresql,
}

impl fmt::Display for LatestEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LatestEndpoint::Powersync => "powersync",
            LatestEndpoint::Postgresql => "postgresql",
        })
    }
}

/// Which Jepsen era the endpoint serves, with what only that era has, so that an illegal
/// combination (a latest-era store with a seed-era mode, say) cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// The seed era (`lww` list-append, `/sql-txn` with `r`/`append`, `/powersync`, `/db/list`).
    Seed {
        /// Where transactions run.
        mode: Mode,
    },
    /// The latest era (`--endpoint`: `mww`, `readAll`/`writeSome`, `/db-api/*`).
    Latest {
        /// Which store.
        endpoint: LatestEndpoint,
        /// `--keys`: keys `0..keys`.
        keys: i64,
    },
}

/// The latest era's default `--keys` (the Dart endpoint's 100).
pub const MWW_DEFAULT_KEYS: i64 = 100;

/// `ENDPOINT_LOG_LEVEL`: the Dart `logging` level names, or the `tracing` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub LevelFilter);

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let level = match s.to_ascii_uppercase().as_str() {
            "OFF" => LevelFilter::OFF,
            "ALL" | "FINEST" | "FINER" | "TRACE" => LevelFilter::TRACE,
            "FINE" | "CONFIG" | "DEBUG" => LevelFilter::DEBUG,
            "INFO" => LevelFilter::INFO,
            "WARNING" | "WARN" => LevelFilter::WARN,
            "SEVERE" | "SHOUT" => LevelFilter::ERROR,
            _ => {
                return Err(format!(
                    "unknown level {s:?}; expected one of OFF, FINEST, FINER, FINE, CONFIG, INFO, \
                     WARNING, SEVERE, ALL (or trace, debug, info, warn)"
                ));
            }
        };
        Ok(Self(level))
    }
}

/// A secret string: never printed, neither by `Debug` nor in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The command line; each flag falls back to its environment variable, then to the default.
#[derive(Debug, Parser)]
#[command(
    name = "powersync_endpoint",
    version,
    about = "HTTP endpoint for the jepsen-powersync tests (seed era: lww list-append)",
    args_override_self = true
)]
struct Args {
    /// Latest era (mww): `powersync` or `postgresql`. Selects the latest-era API and model; without
    /// it the endpoint runs the seed era (lww).
    #[arg(long, value_enum)]
    endpoint: Option<LatestEndpoint>,
    /// Latest era: the number of keys (`0..keys`), also the expected `readAll` size.
    #[arg(short = 'k', long, default_value_t = MWW_DEFAULT_KEYS, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    keys: i64,
    /// The synced stores (`--endpoint powersync`, mode `powersync`): how long to wait for the
    /// first complete sync with every key before exiting (e.g. `120s`, `2m`). Unset: wait as long
    /// as it takes, as the Dart endpoint does, saying so at INFO every 10 s.
    #[arg(long, env = "FIRST_SYNC_TIMEOUT", value_parser = humantime::parse_duration)]
    first_sync_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    #[allow(dead_code, reason = "accepted for compatibility, never read")]
    fuzz: FuzzArgs,
    /// Where transactions run. Default: `powersync-local` if LOCAL_ONLY=true, else `powersync`.
    #[arg(long, env = "ENDPOINT_MODE", value_enum)]
    mode: Option<Mode>,
    /// HTTP port on 0.0.0.0 (0 picks a free port, logged at start-up).
    #[arg(
        long,
        alias = "httpPort",
        env = "ENDPOINT_PORT",
        default_value_t = 8089
    )]
    port: u16,
    /// Log level: OFF, FINEST, FINER, FINE, CONFIG, INFO, WARNING, SEVERE, ALL.
    #[arg(
        short = 'l',
        long,
        alias = "logLevel",
        env = "ENDPOINT_LOG_LEVEL",
        default_value = "ALL"
    )]
    log_level: LogLevel,
    /// `lww` is a local-only PowerSync table (true or false); selects `powersync-local`.
    #[arg(long, env = "LOCAL_ONLY", action = ArgAction::Set)]
    local_only: Option<bool>,
    /// URL of the PowerSync service.
    #[arg(
        long,
        alias = "POWERSYNC_URL",
        env = "POWERSYNC_URL",
        default_value = "http://powersync:8080"
    )]
    powersync_url: String,
    /// The SQLite database file. Default: ./powersync.sqlite3.
    #[arg(long, env = "SQLITE3_PATH")]
    sqlite3_path: Option<PathBuf>,
    /// The JWT `sub` of this client.
    #[arg(long, env = "USER_ID", default_value = "userId")]
    user_id: String,
    /// CrudTransactionConnector or CrudBatchConnector.
    #[arg(
        long,
        env = "BACKEND_CONNECTOR",
        value_enum,
        default_value = "CrudTransactionConnector"
    )]
    backend_connector: BackendConnector,
    /// PostgreSQL host.
    #[arg(
        long,
        alias = "PG_DATABASE_HOST",
        env = "PG_DATABASE_HOST",
        default_value = "pg-db"
    )]
    pg_database_host: String,
    /// PostgreSQL port.
    #[arg(
        long,
        alias = "PG_DATABASE_PORT",
        env = "PG_DATABASE_PORT",
        default_value_t = 5432
    )]
    pg_database_port: u16,
    /// PostgreSQL database name.
    #[arg(
        long,
        alias = "PG_DATABASE_NAME",
        env = "PG_DATABASE_NAME",
        default_value = "postgres"
    )]
    pg_database_name: String,
    /// PostgreSQL user.
    #[arg(
        long,
        alias = "PG_DATABASE_USER",
        env = "PG_DATABASE_USER",
        default_value = "postgres"
    )]
    pg_database_user: String,
    /// PostgreSQL password.
    #[arg(
        long,
        alias = "PG_DATABASE_PASSWORD",
        env = "PG_DATABASE_PASSWORD",
        default_value = "mypassword",
        hide_env_values = true,
        hide_default_value = true
    )]
    pg_database_password: Secret,
    /// What a failed upload or invariant does: `dart` (the Dart endpoint's exit codes) or
    /// `forgiving` (retry, skip re-uploads through a ledger, answer 5xx). See `FailurePolicy`.
    #[arg(long, env = "ENDPOINT_FAILURE_POLICY", value_enum, default_value_t = FailurePolicy::Dart)]
    failure_policy: FailurePolicy,
    /// SQLite's `synchronous` for the endpoint's database: `full` (every acknowledged
    /// transaction survives a power loss) or `normal` (the Dart SDK's default: the last
    /// ones may not). See `Durability`.
    #[arg(long, env = "ENDPOINT_SYNCHRONOUS", value_enum, default_value_t = Durability::Full)]
    synchronous: Durability,
    /// Keep the database file of a previous run. Only for the `sqlite3_endpoint` program name
    /// (argv[0]), which otherwise starts each run from an empty database as the Dart
    /// `sqlite3_endpoint` does.
    #[arg(long, env = "KEEP_DATABASE", action = ArgAction::SetTrue)]
    keep_database: bool,
    /// The RSA private JWK (base64 JSON) that signs the PowerSync tokens. Secret. Unset: the
    /// public development key built into jepsen-powersync's Dart endpoint (a WARN says so).
    #[arg(long, env = "JWKS_PRIVATE_KEY", hide_env_values = true)]
    jwks_private_key: Option<Secret>,
}

/// The latest era's fuzzer flags (`lib/args.dart` is shared by both Dart binaries): accepted so a
/// latest-era command line parses, and ignored (this endpoint has no in-process fuzzer).
#[derive(Debug, clap::Args)]
#[allow(dead_code, reason = "accepted for compatibility, never read")]
struct FuzzArgs {
    #[arg(short = 'c', long, hide = true)]
    clients: Option<String>,
    #[arg(long, hide = true, overrides_with = "no_postgresql")]
    postgresql: bool,
    #[arg(long = "no-postgresql", hide = true)]
    no_postgresql: bool,
    #[arg(short = 'r', long, hide = true)]
    rate: Option<String>,
    #[arg(short = 't', long, hide = true)]
    time: Option<String>,
    #[arg(long = "maxTxnLen", hide = true)]
    max_txn_len: Option<String>,
    #[arg(long, hide = true)]
    disconnect: Option<String>,
    #[arg(long, hide = true, overrides_with = "no_stop")]
    stop: bool,
    #[arg(long = "no-stop", hide = true)]
    no_stop: bool,
    #[arg(long, hide = true, overrides_with = "no_kill")]
    kill: bool,
    #[arg(long = "no-kill", hide = true)]
    no_kill: bool,
    #[arg(long, hide = true)]
    partition: Option<String>,
    #[arg(long, hide = true, overrides_with = "no_pause")]
    pause: bool,
    #[arg(long = "no-pause", hide = true)]
    no_pause: bool,
    #[arg(short = 'i', long, hide = true)]
    interval: Option<String>,
}

/// PostgreSQL connection settings (`PG_DATABASE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `PG_DATABASE_HOST`.
    pub host: String,
    /// `PG_DATABASE_PORT`.
    pub port: u16,
    /// `PG_DATABASE_NAME`.
    pub name: String,
    /// `PG_DATABASE_USER`.
    pub user: String,
    /// `PG_DATABASE_PASSWORD`.
    pub password: Secret,
}

/// Which program the binary was started as (the file name of `argv[0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Program {
    /// `powersync_endpoint`, `powersync_http` or any other name: the defaults described here.
    #[default]
    PowersyncEndpoint,
    /// `sqlite3_endpoint` (the seed's `sqlite3_endpoint/bin/sqlite3_endpoint.exe`): mode
    /// `sqlite3-local` by default, database `./sqlite3_endpoint.sqlite3`, emptied at every start
    /// unless `--keep-database`.
    Sqlite3Endpoint,
}

impl Program {
    /// The program named by `argv0` (a path; only its file name counts).
    pub fn from_argv0(argv0: &std::ffi::OsStr) -> Self {
        let name = Path::new(argv0)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("sqlite3_endpoint") {
            Self::Sqlite3Endpoint
        } else {
            Self::PowersyncEndpoint
        }
    }
}

/// TEST ONLY: faults a test switches on through the environment, read once at start-up by
/// [`Config::load`] (never deeper in the code). Nothing outside tests may set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestFailpoints {
    /// [`TestFailpoints::EXIT_AFTER_PG_COMMIT_ENV`]`=1`: an upload connector exits with status
    /// [`TestFailpoints::EXIT_AFTER_PG_COMMIT_STATUS`] right after its first PostgreSQL commit,
    /// before `complete()` (to test idempotent re-upload).
    pub exit_after_pg_commit: bool,
    /// [`TestFailpoints::BROKEN_CONNECTOR_ENV`]`=drop`: the latest era's connector completes every
    /// second client transaction WITHOUT uploading it (so checkers can be shown to catch a lost
    /// update).
    pub drop_every_second_upload: bool,
}

impl TestFailpoints {
    /// The variable of [`TestFailpoints::exit_after_pg_commit`].
    pub const EXIT_AFTER_PG_COMMIT_ENV: &str = "ENDPOINT_TEST_EXIT_AFTER_PG_COMMIT";
    /// The exit status of [`TestFailpoints::exit_after_pg_commit`].
    pub const EXIT_AFTER_PG_COMMIT_STATUS: i32 = 86;
    /// The variable of [`TestFailpoints::drop_every_second_upload`] (value `drop`).
    pub const BROKEN_CONNECTOR_ENV: &str = "ENDPOINT_TEST_BROKEN_CONNECTOR";

    /// Reads both variables from the process environment.
    pub fn from_env() -> Self {
        Self {
            exit_after_pg_commit: std::env::var(Self::EXIT_AFTER_PG_COMMIT_ENV)
                .is_ok_and(|v| v == "1"),
            drop_every_second_upload: std::env::var(Self::BROKEN_CONNECTOR_ENV)
                .is_ok_and(|v| v == "drop"),
        }
    }
}

/// The endpoint's resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The era, with its mode or latest-era endpoint.
    pub era: Era,
    /// `FIRST_SYNC_TIMEOUT`; `None`: no limit.
    pub first_sync_timeout: Option<std::time::Duration>,
    /// `ENDPOINT_PORT`.
    pub port: u16,
    /// `ENDPOINT_LOG_LEVEL`.
    pub log_level: LogLevel,
    /// `LOCAL_ONLY` as effective for the mode (true unless the mode syncs).
    pub local_only: bool,
    /// `POWERSYNC_URL`.
    pub powersync_url: String,
    /// `SQLITE3_PATH`.
    pub sqlite3_path: PathBuf,
    /// `USER_ID`.
    pub user_id: String,
    /// `BACKEND_CONNECTOR`.
    pub backend_connector: BackendConnector,
    /// `PG_DATABASE_*`.
    pub postgres: PostgresConfig,
    /// `JWKS_PRIVATE_KEY`.
    pub jwks_private_key: Option<Secret>,
    /// The `.env` file that was read, if there was one.
    pub dotenv_file: Option<PathBuf>,
    /// TEST ONLY faults (see [`TestFailpoints`]).
    pub test_failpoints: TestFailpoints,
    /// Which program this is (`argv[0]`).
    pub program: Program,
    /// `--failure-policy`.
    pub failure_policy: FailurePolicy,
    /// `--synchronous`.
    pub synchronous: Durability,
    /// Start from an empty database file (the `sqlite3_endpoint` program without
    /// `--keep-database`).
    pub fresh_database: bool,
}

impl Config {
    /// The latest era's `--endpoint`; `None` in the seed era.
    pub fn endpoint(&self) -> Option<LatestEndpoint> {
        match self.era {
            Era::Latest { endpoint, .. } => Some(endpoint),
            Era::Seed { .. } => None,
        }
    }

    /// The latest era's key count (`--keys`); the seed era's [`crate::LWW_KEY_COUNT`].
    pub fn keys(&self) -> i64 {
        match self.era {
            Era::Latest { keys, .. } => keys,
            Era::Seed { .. } => crate::LWW_KEY_COUNT,
        }
    }

    /// The mode (resolved from `ENDPOINT_MODE` and `LOCAL_ONLY`); the latest era syncs
    /// ([`Mode::Powersync`]).
    pub fn mode(&self) -> Mode {
        match self.era {
            Era::Seed { mode } => mode,
            Era::Latest { .. } => Mode::Powersync,
        }
    }

    /// Loads the configuration from the command line, `./.env` and the environment. Prints
    /// clap's message and exits for `--help`, `--version` and unparseable values.
    pub fn load() -> Result<Self> {
        let dotenv_path = Path::new(DOTENV_FILE);
        let dotenv = read_dotenv(dotenv_path)?;
        let program = std::env::args_os()
            .next()
            .map(|argv0| Program::from_argv0(&argv0))
            .unwrap_or_default();
        let argv = with_dotenv(std::env::args_os(), &dotenv);
        let args = parse_args(argv).unwrap_or_else(|e| e.exit());
        let cwd = std::env::current_dir()?;
        let mut config = resolve(args, &cwd, program)?;
        config.dotenv_file = dotenv.is_some().then(|| cwd.join(dotenv_path));
        config.test_failpoints = TestFailpoints::from_env();
        Ok(config)
    }
}

impl fmt::Display for Config {
    /// One line for the start-up log; secrets show only whether they are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "endpoint={} keys={} first_sync_timeout={:?} mode={} port={} log_level={} LOCAL_ONLY={} POWERSYNC_URL={} SQLITE3_PATH={} \
             USER_ID={} BACKEND_CONNECTOR={} failure_policy={} synchronous={} PG_DATABASE={}@{}:{}/{} JWKS_PRIVATE_KEY={} .env={}",
            self.endpoint()
                .map_or_else(|| "<seed era>".to_owned(), |e| e.to_string()),
            self.keys(),
            self.first_sync_timeout,
            self.mode(),
            self.port,
            self.log_level.0,
            self.local_only,
            self.powersync_url,
            self.sqlite3_path.display(),
            self.user_id,
            self.backend_connector,
            self.failure_policy,
            self.synchronous,
            self.postgres.user,
            self.postgres.host,
            self.postgres.port,
            self.postgres.name,
            if self.jwks_private_key.is_some() {
                "<set>"
            } else {
                "<unset>"
            },
            self.dotenv_file
                .as_deref()
                .map_or_else(|| "<none>".into(), |p| p.display().to_string()),
        )
    }
}

/// Reads `path` as a `.env` file; `None` when there is no such file.
fn read_dotenv(path: &Path) -> Result<Option<Vec<(String, String)>>> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::config(
                "ENV_FILE",
                format!("{}: {e}", path.display()),
            ));
        }
    };
    iter.map(|item| item.map_err(|e| Error::config("ENV_FILE", format!("{}: {e}", path.display()))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The command line with the known `.env` entries inserted as flags before the real arguments.
fn with_dotenv(
    argv: impl IntoIterator<Item = OsString>,
    dotenv: &Option<Vec<(String, String)>>,
) -> Vec<OsString> {
    let command = Args::command();
    let mut argv = argv.into_iter();
    let mut out: Vec<OsString> = argv.next().into_iter().collect();
    for (key, value) in dotenv.iter().flatten() {
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == key.as_str()))
            .and_then(|arg| arg.get_long());
        if let Some(long) = flag {
            out.push(format!("--{long}={value}").into());
        }
    }
    out.extend(argv);
    out
}

fn parse_args(argv: Vec<OsString>) -> std::result::Result<Args, clap::Error> {
    let matches = Args::command().try_get_matches_from(argv)?;
    Args::from_arg_matches(&matches)
}

/// Resolves defaults that depend on other settings (and on the program name) and checks
/// combinations.
fn resolve(args: Args, cwd: &Path, program: Program) -> Result<Config> {
    if args.endpoint.is_some() {
        if let Some(mode) = args.mode.filter(|m| *m != Mode::Powersync) {
            return Err(Error::config(
                "ENDPOINT_MODE",
                format!("ENDPOINT_MODE={mode} contradicts --endpoint (the latest era syncs mww)"),
            ));
        }
        if args.local_only == Some(true) {
            return Err(Error::config(
                "LOCAL_ONLY",
                "LOCAL_ONLY=true contradicts --endpoint (the latest era syncs mww)",
            ));
        }
    }
    let mode = match (args.mode, args.local_only) {
        (Some(Mode::Powersync), Some(true)) => {
            return Err(Error::config(
                "LOCAL_ONLY",
                "LOCAL_ONLY=true contradicts ENDPOINT_MODE=powersync (which syncs)",
            ));
        }
        (Some(Mode::PowersyncLocal), Some(false)) => {
            return Err(Error::config(
                "LOCAL_ONLY",
                "LOCAL_ONLY=false contradicts ENDPOINT_MODE=powersync-local",
            ));
        }
        (Some(mode), _) => mode,
        (None, Some(true)) => Mode::PowersyncLocal,
        (None, _) if program == Program::Sqlite3Endpoint => Mode::Sqlite3Local,
        (None, _) => Mode::Powersync,
    };
    if !(args.powersync_url.starts_with("http://") || args.powersync_url.starts_with("https://")) {
        return Err(Error::config(
            "POWERSYNC_URL",
            format!("{:?} is not an http:// or https:// URL", args.powersync_url),
        ));
    }
    if args.user_id.is_empty() {
        return Err(Error::config("USER_ID", "must not be empty"));
    }
    let sqlite3_path = match args.sqlite3_path {
        Some(path) if path.as_os_str().is_empty() => {
            return Err(Error::config("SQLITE3_PATH", "must not be empty"));
        }
        Some(path) => cwd.join(path),
        None if args.endpoint.is_some() => cwd.join("data").join("http.sqlite3"),
        None if program == Program::Sqlite3Endpoint => cwd.join("sqlite3_endpoint.sqlite3"),
        None => cwd.join("powersync.sqlite3"),
    };
    let era = match args.endpoint {
        Some(endpoint) => Era::Latest {
            endpoint,
            keys: args.keys,
        },
        None => Era::Seed { mode },
    };
    Ok(Config {
        era,
        first_sync_timeout: args.first_sync_timeout,
        port: args.port,
        log_level: args.log_level,
        local_only: mode != Mode::Powersync,
        powersync_url: args.powersync_url,
        sqlite3_path,
        user_id: args.user_id,
        backend_connector: args.backend_connector,
        postgres: PostgresConfig {
            host: args.pg_database_host,
            port: args.pg_database_port,
            name: args.pg_database_name,
            user: args.pg_database_user,
            password: args.pg_database_password,
        },
        // An empty value (e.g. `JWKS_PRIVATE_KEY=` in compose) means unset.
        jwks_private_key: args.jwks_private_key.filter(|key| !key.0.is_empty()),
        dotenv_file: None,
        test_failpoints: TestFailpoints::default(),
        program,
        failure_policy: args.failure_policy,
        synchronous: args.synchronous,
        fresh_database: program == Program::Sqlite3Endpoint
            && mode == Mode::Sqlite3Local
            && !args.keep_database,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("powersync_endpoint")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn dotenv(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn config(args: &[&str], env: &Option<Vec<(String, String)>>) -> Result<Config> {
        let args = parse_args(with_dotenv(argv(args), env))
            .map_err(|e| Error::config("ARGS", e.to_string()))?;
        resolve(args, Path::new("/work"), Program::PowersyncEndpoint)
    }

    #[test]
    fn synchronous_defaults_to_full_and_takes_normal_from_a_flag_or_dotenv() {
        assert_eq!(config(&[], &None).unwrap().synchronous, Durability::Full);
        let c = config(&["--synchronous", "normal"], &None).unwrap();
        assert_eq!(c.synchronous, Durability::Normal);
        let c = config(&[], &dotenv(&[("ENDPOINT_SYNCHRONOUS", "normal")])).unwrap();
        assert_eq!(c.synchronous, Durability::Normal);
        let e = config(&["--synchronous", "off"], &None).unwrap_err();
        assert!(e.to_string().contains("--synchronous"), "{e}");
        assert_eq!(
            Durability::Normal.database_options().pragmas.synchronous,
            powersync::Synchronous::Normal
        );
    }

    #[test]
    fn latest_era_flags_map_onto_the_seed_settings() {
        let c = config(&["--endpoint", "postgresql"], &None).unwrap();
        assert_eq!(c.endpoint(), Some(LatestEndpoint::Postgresql));
        assert_eq!(c.keys(), 100);
        assert_eq!(c.sqlite3_path, Path::new("/work/data/http.sqlite3"));
        let c = config(
            &[
                "--endpoint=powersync",
                "-k",
                "7",
                "--httpPort",
                "9000",
                "-l",
                "INFO",
                "--PG_DATABASE_HOST",
                "db1",
                "--PG_DATABASE_PORT=6543",
                "--PG_DATABASE_PASSWORD",
                "pw",
                "--POWERSYNC_URL",
                "http://ps:1",
                "--clients",
                "3",
                "--no-postgresql",
                "--disconnect",
                "orderly",
            ],
            &dotenv(&[
                ("PG_DATABASE_HOST", "from-dotenv"),
                ("PG_DATABASE_NAME", "n2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.endpoint(), Some(LatestEndpoint::Powersync));
        assert_eq!(c.keys(), 7);
        assert_eq!(c.port, 9000);
        assert_eq!(c.log_level, LogLevel(LevelFilter::INFO));
        // A flag beats .env; .env still fills what the flags leave out.
        assert_eq!(c.postgres.host, "db1");
        assert_eq!(c.postgres.name, "n2");
        assert_eq!(c.postgres.port, 6543);
        assert_eq!(c.postgres.password.expose(), "pw");
        assert_eq!(c.powersync_url, "http://ps:1");
        assert!(config(&["--endpoint", "mysql"], &None).is_err());
        assert!(config(&["--endpoint", "powersync", "-k", "0"], &None).is_err());
        assert!(
            config(
                &["--endpoint", "powersync", "--mode", "sqlite3-local"],
                &None
            )
            .is_err()
        );
        assert!(
            config(
                &["--endpoint", "powersync"],
                &dotenv(&[("LOCAL_ONLY", "true")])
            )
            .is_err()
        );
        assert_eq!(config(&[], &None).unwrap().endpoint(), None);
    }

    #[test]
    fn the_sqlite3_endpoint_program_defaults_to_sqlite3_local_on_a_fresh_database() {
        for argv0 in [
            "/jepsen/jepsen-powersync/sqlite3_endpoint/bin/sqlite3_endpoint.exe",
            "sqlite3_endpoint",
        ] {
            assert_eq!(
                Program::from_argv0(argv0.as_ref()),
                Program::Sqlite3Endpoint
            );
        }
        for argv0 in ["powersync_endpoint", "bundle/bin/powersync_http", ""] {
            assert_eq!(
                Program::from_argv0(argv0.as_ref()),
                Program::PowersyncEndpoint
            );
        }
        let sqlite3 = |args: &[&str], env: &Option<Vec<(String, String)>>| {
            let args = parse_args(with_dotenv(argv(args), env)).unwrap();
            resolve(args, Path::new("/work"), Program::Sqlite3Endpoint).unwrap()
        };
        // The seed's sqlite3_endpoint/.env holds only ENDPOINT_PORT.
        let c = sqlite3(&[], &dotenv(&[("ENDPOINT_PORT", "8089")]));
        assert_eq!(c.mode(), Mode::Sqlite3Local);
        assert_eq!(c.sqlite3_path, Path::new("/work/sqlite3_endpoint.sqlite3"));
        assert!(c.fresh_database);
        assert!(!sqlite3(&["--keep-database"], &None).fresh_database);
        let c = sqlite3(&["--mode", "powersync-local"], &None);
        assert_eq!(c.mode(), Mode::PowersyncLocal);
        assert!(!c.fresh_database, "only sqlite3-local empties its database");
        assert!(!config(&[], &None).unwrap().fresh_database);
    }

    #[test]
    fn seed_defaults() {
        let c = config(&[], &None).unwrap();
        assert_eq!(c.mode(), Mode::Powersync);
        assert_eq!(c.port, 8089);
        assert_eq!(c.log_level, LogLevel(LevelFilter::TRACE));
        assert!(!c.local_only);
        assert_eq!(c.powersync_url, "http://powersync:8080");
        assert_eq!(c.sqlite3_path, Path::new("/work/powersync.sqlite3"));
        assert_eq!(c.user_id, "userId");
        assert_eq!(c.backend_connector, BackendConnector::Transaction);
        assert_eq!(c.postgres.host, "pg-db");
        assert_eq!(c.postgres.port, 5432);
        assert_eq!(c.postgres.password.expose(), "mypassword");
        assert_eq!(c.jwks_private_key, None);
        let c = config(&[], &dotenv(&[("JWKS_PRIVATE_KEY", "")])).unwrap();
        assert_eq!(c.jwks_private_key, None);
    }

    #[test]
    fn dotenv_applies_and_flags_override_it() {
        let env = dotenv(&[
            ("ENDPOINT_PORT", "9000"),
            ("SQLITE3_PATH", "a.db"),
            ("UNRELATED", "x"),
        ]);
        let c = config(&[], &env).unwrap();
        assert_eq!(
            (c.port, c.sqlite3_path.clone()),
            (9000, PathBuf::from("/work/a.db"))
        );
        let c = config(&["--port", "9001"], &env).unwrap();
        assert_eq!(c.port, 9001);
    }

    #[test]
    fn mode_follows_local_only_and_rejects_contradictions() {
        let c = config(&[], &dotenv(&[("LOCAL_ONLY", "true")])).unwrap();
        assert_eq!(c.mode(), Mode::PowersyncLocal);
        let c = config(&["--mode", "sqlite3-local"], &None).unwrap();
        assert_eq!((c.mode(), c.local_only), (Mode::Sqlite3Local, true));
        let err = config(&["--mode", "powersync", "--local-only", "true"], &None).unwrap_err();
        assert!(err.to_string().contains("LOCAL_ONLY"), "{err}");
        assert!(
            config(
                &["--mode", "powersync-local", "--local-only", "false"],
                &None
            )
            .is_err()
        );
        assert!(config(&["--mode", "nope"], &None).is_err());
    }

    #[test]
    fn unknown_values_are_errors() {
        let err = config(&[], &dotenv(&[("BACKEND_CONNECTOR", "FancyConnector")])).unwrap_err();
        assert!(err.to_string().contains("FancyConnector"), "{err}");
        assert!(config(&[], &dotenv(&[("ENDPOINT_LOG_LEVEL", "LOUD")])).is_err());
        assert!(config(&[], &dotenv(&[("LOCAL_ONLY", "yes")])).is_err());
        assert!(config(&[], &dotenv(&[("ENDPOINT_PORT", "70000")])).is_err());
        assert!(config(&[], &dotenv(&[("POWERSYNC_URL", "powersync:8080")])).is_err());
        let c = config(&[], &dotenv(&[("BACKEND_CONNECTOR", "CrudBatchConnector")])).unwrap();
        assert_eq!(c.backend_connector, BackendConnector::Batch);
    }

    #[test]
    fn a_seed_style_dotenv_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "ENDPOINT_LOG_LEVEL=ALL\nENDPOINT_PORT=8089\nLOCAL_ONLY=false\n\
             POWERSYNC_URL=http://powersync:8080\n# SQLITE3_PATH=/somewhere/else.sqlite3\n\
             USER_ID=userId\nBACKEND_CONNECTOR=CrudBatchConnector\nPG_DATABASE_HOST=pg-db\n\
             PG_DATABASE_PORT=5432\nPG_DATABASE_NAME=postgres\nPG_DATABASE_USER=postgres\n\
             PG_DATABASE_PASSWORD=mypassword\nJWKS_PRIVATE_KEY=\"eyJrIjoidiJ9\"\n",
        )
        .unwrap();
        let env = read_dotenv(&path).unwrap();
        assert_eq!(env.as_ref().map(Vec::len), Some(12));
        let c = config(&[], &env).unwrap();
        assert_eq!(c.mode(), Mode::Powersync);
        assert_eq!(c.backend_connector, BackendConnector::Batch);
        assert_eq!(c.sqlite3_path, Path::new("/work/powersync.sqlite3"));
        assert_eq!(
            c.jwks_private_key.as_ref().map(Secret::expose),
            Some("eyJrIjoidiJ9")
        );
        assert_eq!(read_dotenv(&dir.path().join("absent")).unwrap(), None);
        std::fs::write(&path, "NOT A LINE\n").unwrap();
        assert!(read_dotenv(&path).is_err());
    }

    #[test]
    fn log_levels_map_the_dart_names() {
        for (name, level) in [
            ("OFF", LevelFilter::OFF),
            ("finest", LevelFilter::TRACE),
            ("FINE", LevelFilter::DEBUG),
            ("CONFIG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("WARNING", LevelFilter::WARN),
            ("SEVERE", LevelFilter::ERROR),
        ] {
            assert_eq!(name.parse::<LogLevel>().unwrap().0, level, "{name}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_display() {
        let env = dotenv(&[
            ("JWKS_PRIVATE_KEY", "s3cr3t-jwk"),
            ("PG_DATABASE_PASSWORD", "pw-xyz"),
        ]);
        let c = config(&[], &env).unwrap();
        assert_eq!(
            c.jwks_private_key.as_ref().map(Secret::expose),
            Some("s3cr3t-jwk")
        );
        for text in [format!("{c:?}"), c.to_string()] {
            assert!(
                !text.contains("s3cr3t-jwk") && !text.contains("pw-xyz"),
                "{text}"
            );
        }
    }
}
