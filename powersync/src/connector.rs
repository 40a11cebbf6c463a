//! The application's side of sync: credentials for the service and uploading local changes.

use std::fmt;
use std::future::Future;

use crate::db::PowerSyncDatabase;

/// Where the sync service is and the token to present to it.
#[derive(Clone, PartialEq, Eq)]
pub struct PowerSyncCredentials {
    /// The service's base URL, e.g. `http://localhost:8080`.
    pub endpoint: String,
    /// A JWT the service accepts.
    pub token: String,
}

impl fmt::Debug for PowerSyncCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerSyncCredentials")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Whether a failed connector call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Try again later (network trouble, a serialization conflict, a busy backend).
    Retryable,
    /// Retrying cannot help (the data is unacceptable, the backend refuses it); the upload loop
    /// stops and reports it.
    Fatal,
}

/// An error a [`BackendConnector`] returns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    /// Retryable or fatal.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectorError {
    /// A retryable error.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: message.into(),
            source: None,
        }
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// True for [`ErrorKind::Fatal`].
    pub fn is_fatal(&self) -> bool {
        self.kind == ErrorKind::Fatal
    }
}

/// Connects a database to the application's backend.
pub trait BackendConnector: Send + Sync + 'static {
    /// Credentials for the sync service. Called when a sync stream is opened, when the core
    /// asks for fresh ones, and after the service rejected a token.
    fn fetch_credentials(
        &self,
    ) -> impl Future<Output = Result<PowerSyncCredentials, ConnectorError>> + Send;

    /// Uploads queued local changes to the backend: read them with
    /// [`PowerSyncDatabase::crud_batch`], [`PowerSyncDatabase::next_crud_transaction`] or
    /// [`PowerSyncDatabase::crud_transactions`], write them, then `complete()` what was
    /// written. Called again while the queue is not empty.
    fn upload_data(
        &self,
        db: &PowerSyncDatabase,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send;
}

impl From<crate::Error> for ConnectorError {
    /// A local-database error inside a connector: retryable, unless retrying cannot help (the
    /// core cannot be used, the schema or a queue entry is wrong, the upload queue was
    /// acknowledged out of order, or an upload already failed fatally).
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        let fatal = matches!(
            e,
            E::Core(_)
                | E::InvalidSchema(_)
                | E::UnsupportedByCore { .. }
                | E::Decode { .. }
                | E::AlreadyCompleted { .. }
                | E::NotQueuePrefix { .. }
                | E::UploadFatal(_)
        );
        let message = format!("local database: {e}");
        if fatal {
            Self::fatal(message).with_source(e)
        } else {
            Self::retryable(message).with_source(e)
        }
    }
}
