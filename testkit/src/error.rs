//! The one error type of the testkit crate.

use std::path::PathBuf;

/// Everything that can go wrong in a test helper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) were not found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin or PATH; install them with `apt-get install -y postgresql`"
    )]
    PostgresNotFound,
    /// A helper command could not be started or exited unsuccessfully.
    #[error("command `{command}` failed: {detail}")]
    Command {
        /// The command line, for the message.
        command: String,
        /// Exit status and captured output, or the spawn error.
        detail: String,
    },
    /// Filesystem or process I/O failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path (or resource) involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A user needed to run PostgreSQL as non-root is missing from /etc/passwd.
    #[error(
        "running as root, but system user `{0}` does not exist (PostgreSQL refuses to run as root)"
    )]
    MissingUser(String),
    /// A PostgreSQL client operation failed.
    #[error("PostgreSQL client error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Signing a test token failed.
    #[error("JWT signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// A committed fixture file is malformed.
    #[error("bad fixture: {0}")]
    Fixture(String),
    /// The server did not become ready in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// [`crate::eventually()`] gave up: the condition did not hold before the timeout.
    #[error(
        "timed out waiting for {what} after {waited:?} ({attempts} attempts){}",
        last.as_ref().map(|l| format!("; last: {l}")).unwrap_or_default()
    )]
    Eventually {
        /// What was awaited, as the caller named it.
        what: String,
        /// How long it waited.
        waited: std::time::Duration,
        /// How many times the condition was checked.
        attempts: u32,
        /// The last reason the check gave, if it gave any.
        last: Option<String>,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
