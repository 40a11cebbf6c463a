//! The crate's one error type.

use std::sync::Arc;

use powersync_sys::CoreVersion;

/// Everything the wrapper can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Finding, loading or checking the native core failed.
    #[error(transparent)]
    Core(#[from] powersync_sys::Error),

    /// SQLite reported an error; the SQLite code is kept inside.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The schema is invalid; nothing was applied.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),

    /// The loaded core is too old for something that was asked of it.
    #[error("{feature} needs PowerSync core {needs} or later, but the loaded core is {found}")]
    UnsupportedByCore {
        /// What was asked.
        feature: &'static str,
        /// The first core version that can do it.
        needs: &'static str,
        /// The loaded core's version.
        found: CoreVersion,
    },

    /// A `ps_crud` row or a core response could not be decoded.
    #[error("could not decode {what}: {detail}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },

    /// `complete()` was called on entries that are no longer in the upload queue (completed
    /// twice, or completed by someone else).
    #[error("CRUD entries {first}..={last} were already completed")]
    AlreadyCompleted {
        /// First `ps_crud.id` of the completed range.
        first: i64,
        /// Last `ps_crud.id` of the completed range.
        last: i64,
    },

    /// `complete()` was called on entries that are not at the head of the upload queue: entries
    /// before them have not been completed. The queue is acknowledged as a prefix only.
    #[error("CRUD entries {first}..={last} are not the head of the upload queue (head is {head})")]
    NotQueuePrefix {
        /// First `ps_crud.id` of the range.
        first: i64,
        /// Last `ps_crud.id` of the range.
        last: i64,
        /// The queue's oldest entry.
        head: i64,
    },

    /// The sync service answered with an error status, or could not be reached.
    #[error("sync service: {0}")]
    Service(String),

    /// The sync service rejected the credentials (HTTP 401).
    #[error("sync service rejected the credentials: {0}")]
    Unauthorized(String),

    /// The connector could not provide credentials.
    #[error("fetching credentials failed: {0}")]
    Credentials(Arc<crate::connector::ConnectorError>),

    /// The database was closed.
    #[error("the database is closed")]
    Closed,

    /// A blocking SQLite task could not be run (the runtime is shutting down).
    #[error("SQLite task failed: {0}")]
    Task(String),

    /// The connector failed to upload, fatally; the upload loop stopped.
    #[error("upload failed fatally: {0}")]
    UploadFatal(Arc<crate::connector::ConnectorError>),

    /// Waiting for something (for example the first sync) took longer than allowed.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// SQLite's primary result code, when the error came from SQLite.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Self::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        }
    }
}
