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

    /// The sync service answered with an error status, could not be reached, or sent
    /// something unreadable. The HTTP status (when there was a response) and the underlying
    /// error (reqwest's, JSON's) are kept: see [`Error::http_status`] and `source()`.
    #[error("sync service: {message}")]
    Service {
        /// What failed.
        message: String,
        /// The HTTP status of the service's answer, if it answered.
        status: Option<u16>,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The sync service rejected the credentials (HTTP 401); see [`Error::is_unauthorized`].
    #[error("sync service rejected the credentials: {body}")]
    Unauthorized {
        /// The start of the service's answer.
        body: String,
    },

    /// The connector could not provide credentials.
    #[error("fetching credentials failed: {0}")]
    Credentials(Arc<crate::connector::ConnectorError>),

    /// The database was closed.
    #[error("the database is closed")]
    Closed,

    /// A blocking SQLite task could not be run (the runtime is shutting down).
    #[error("SQLite task failed")]
    Task(#[source] tokio::task::JoinError),

    /// The connector failed to upload, fatally; the upload loop stopped.
    #[error("upload failed fatally: {0}")]
    UploadFatal(Arc<crate::connector::ConnectorError>),

    /// The database could not be opened with its encryption key: the key is wrong (or the
    /// file is not encrypted), or the crate was built without the `sqlcipher` feature.
    #[error("encryption: {0}")]
    Encryption(String),

    /// An argument is out of its range (for example a stream priority above 3); nothing was
    /// changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Waiting for something (for example the first sync) took longer than allowed.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Service`] without status or source.
    pub(crate) fn service(message: impl Into<String>) -> Self {
        Self::Service {
            message: message.into(),
            status: None,
            source: None,
        }
    }

    /// A [`Error::Service`] caused by `source`.
    pub(crate) fn service_caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Service {
            message: message.into(),
            status: None,
            source: Some(Box::new(source)),
        }
    }

    /// The error and its sources, joined with ": " (for logs and the status, where `Display`
    /// alone would drop the cause).
    pub(crate) fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    /// True when the sync service rejected the credentials (HTTP 401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    /// The HTTP status the sync service answered with, when the error is its answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Service { status, .. } => *status,
            _ => None,
        }
    }

    /// SQLite's primary result code, when the error came from SQLite.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Self::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn service_errors_keep_their_status_and_source() {
        let e = Error::service_caused(
            "write checkpoint response",
            serde_json::from_str::<i64>("x").unwrap_err(),
        );
        assert!(e.source().is_some(), "the JSON error is the source");
        assert_eq!(e.http_status(), None);
        assert!(!e.is_unauthorized());
        let e = Error::Service {
            message: "HTTP 503".into(),
            status: Some(503),
            source: None,
        };
        assert_eq!(e.http_status(), Some(503));
        let e = Error::Unauthorized {
            body: "expired".into(),
        };
        assert!(e.is_unauthorized());
        assert_eq!(e.http_status(), Some(401));
    }
}
