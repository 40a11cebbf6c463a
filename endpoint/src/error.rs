//! The endpoint's one error type.

/// Everything that can go wrong in the endpoint, from configuration to a client's request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing, malformed or contradicts another one.
    #[error("configuration: {key}: {message}")]
    Config {
        /// The configuration key (the seed's spelling, e.g. `BACKEND_CONNECTOR`).
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A client's request is malformed; answered with a 4xx and never touches the database.
    #[error("{problem}")]
    InvalidRequest {
        /// Which 4xx this is.
        kind: RequestProblem,
        /// A message naming the problem (e.g. the JSON path of the bad field).
        problem: String,
    },
    /// A key that should have been seeded has no row in the store.
    #[error("key {0} has no row in the lww table (not seeded or not yet synced)")]
    KeyNotPresent(i64),
    /// The store was closed (shutdown in progress).
    #[error("the store is closed")]
    StoreClosed,
    /// SQLite kept another journal mode when asked for WAL (e.g. an in-memory database).
    #[error("sqlite refused journal_mode=WAL (it reports {0:?})")]
    WalRefused(String),
    /// The PowerSync database failed (opening, the core, a transaction).
    #[error("powersync: {0}")]
    PowerSync(#[from] powersync::Error),
    /// The synced mode did not complete its first sync in time.
    #[error(
        "no complete first sync with every seeded key within {0:?}; is the PowerSync service reachable?"
    )]
    FirstSyncTimeout(std::time::Duration),
    /// SQLite reported a failure.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Operating-system I/O failed (binding the port, for example).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The kinds of client mistakes, each with its own HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestProblem {
    /// The body is not the expected JSON shape (400).
    Malformed,
    /// The body exceeds the size limit (413).
    TooLarge,
    /// No such route or action (404).
    NotFound,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
}

impl Error {
    /// A 400 for a malformed request body.
    pub fn malformed(problem: impl Into<String>) -> Self {
        Self::InvalidRequest {
            kind: RequestProblem::Malformed,
            problem: problem.into(),
        }
    }

    /// A configuration error for `key`.
    pub fn config(key: &'static str, message: impl Into<String>) -> Self {
        Self::Config {
            key,
            message: message.into(),
        }
    }
}

/// The endpoint's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
