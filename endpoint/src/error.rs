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
    /// A store does not hold the model's keys as it must (the Dart endpoint exits 20/22).
    #[error("{store} holds {found} mww rows where exactly keys 0..{expected} are required")]
    IncompleteData {
        /// `sqlite3` or `postgresql`.
        store: &'static str,
        /// The number of keys required (`--keys`), or 1 for a single-row update.
        expected: i64,
        /// What was found.
        found: usize,
    },
    /// PostgreSQL cannot be reached (the PostgreSQL endpoint); the transaction's outcome is
    /// unknown to the client.
    #[error("PostgreSQL unavailable: {context}")]
    PostgresUnavailable {
        /// Where and what (host, port, the error and its cause).
        context: String,
        /// The PostgreSQL client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL reported an error the PostgreSQL endpoint cannot turn into a `fail`.
    #[error("PostgreSQL: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// A local change cannot be uploaded as it is (an upload connector's fatal error).
    #[error("{0}")]
    InvalidUpload(String),
    /// A database API call did not answer in time (the Dart endpoint exits 40).
    #[error("{0} did not answer within {1:?}")]
    ApiTimeout(&'static str, std::time::Duration),
    /// `uploadQueueWait`: the upload queue kept the same non-zero count for too long (the Dart
    /// endpoint exits 12).
    #[error("upload queue stuck at {count} entries for {seconds} s")]
    UploadQueueStuck {
        /// The unchanged count.
        count: u64,
        /// How long it stayed unchanged.
        seconds: u64,
    },
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

    /// The SQLSTATE of a PostgreSQL error the server answered with.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Self::Postgres(e) | Self::PostgresUnavailable { source: e, .. } => e.code(),
            _ => None,
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
