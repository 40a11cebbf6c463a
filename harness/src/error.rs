//! The harness's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while running a test (reading and checking histories: the
/// [`checkers`] crate's error, wrapped).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint response does not have the documented wire shape.
    #[error("invalid endpoint response: {0}")]
    Wire(String),
    /// A history or a wire response could not be parsed (its JSON or EDN is invalid), or a
    /// history could not be checked.
    #[error(transparent)]
    Checkers(#[from] checkers::Error),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A binary the run needs was not found.
    #[error("{name} not found (looked in {looked}); build it with `{build}`")]
    BinaryMissing {
        /// The binary's file name.
        name: String,
        /// Where the harness looked.
        looked: String,
        /// The cargo command that builds it.
        build: String,
    },
    /// A child process could not be spawned or signalled.
    #[error("process {name}: {reason}")]
    Process {
        /// The process (node name, `standin`, ...).
        name: String,
        /// What failed.
        reason: String,
    },
    /// A latency link could not listen.
    #[error("link to {target}: {source}")]
    Link {
        /// Where the link leads.
        target: std::net::SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// A node's network namespace could not be set up, partitioned or healed (the `ip`
    /// command and its stderr).
    #[error("network: {0}")]
    Network(String),
    /// The lost-writes filesystem could not be mounted or served.
    #[error("lazy filesystem at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A process did not become healthy.
    #[error("{name} did not start: {reason}; log tail:\n{log_tail}")]
    Startup {
        /// The process (node name, `standin`, ...).
        name: String,
        /// What was observed.
        reason: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The throwaway PostgreSQL failed.
    #[error("test PostgreSQL: {0}")]
    TestPostgres(#[from] testkit::Error),
    /// A PostgreSQL client operation of the harness itself (setup, final state) failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The HTTP client could not be built or a harness request (not a client op) failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The run's options are inconsistent.
    #[error("invalid options: {0}")]
    Options(String),
    /// A background task failed or panicked.
    #[error("task failed: {0}")]
    Task(String),
    /// The latency plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// The run was interrupted (Ctrl-C / SIGTERM); everything was torn down.
    #[error("interrupted")]
    Interrupted,
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
