//! The one error type of the stand-in.

/// Errors of the stand-in (start-up, configuration, replication, persistence).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration or sync rules are invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The sync rules use something the stand-in does not support.
    #[error("unsupported sync rules: {0}")]
    UnsupportedSyncRules(String),
    /// The JWKS is invalid.
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    /// A PostgreSQL operation failed.
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The source database is not set up for logical replication.
    #[error("source database not ready for replication: {0}")]
    Source(String),
    /// A pgoutput message could not be decoded.
    #[error("pgoutput decoding failed: {0}")]
    Decode(String),
    /// The replication connection failed (I/O).
    #[error("replication connection: {0}")]
    ReplicationIo(#[source] std::io::Error),
    /// PostgreSQL answered on the replication connection with an error.
    #[error("replication connection: PostgreSQL said {code}: {message}")]
    ReplicationServer {
        /// The SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The replication connection broke the protocol, or needs what the stand-in lacks.
    #[error("replication protocol: {0}")]
    ReplicationProtocol(String),
    /// The HTTP listener could not be bound or failed.
    #[error("HTTP server error: {0}")]
    Http(std::io::Error),
}
