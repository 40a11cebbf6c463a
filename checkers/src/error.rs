//! The checkers' one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading histories or checking them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a JSON-lines history is not valid JSON.
    #[error("line {line}: invalid JSON: {source}")]
    Json {
        /// 1-based line number (1 for a single document).
        line: usize,
        /// What serde_json reported.
        source: serde_json::Error,
    },
    /// EDN text could not be parsed.
    #[error("line {line}: invalid EDN: {reason}")]
    Edn {
        /// 1-based line number where the problem was found.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A parsed value is not a well-formed Jepsen operation.
    #[error("operation {position}: {reason}")]
    Op {
        /// 0-based position of the operation in the file.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// A micro-operation is malformed (wrong arity, unknown function, bad types).
    #[error("invalid micro-op {mop}: {reason}")]
    Mop {
        /// The micro-op as text.
        mop: String,
        /// What was wrong.
        reason: String,
    },
    /// A stored list is not the seed's encoding (space-separated integers).
    #[error("stored list {text:?} holds {token:?}")]
    List {
        /// The stored text.
        text: String,
        /// The token that is not an integer.
        token: String,
    },
    /// The consistency model name is not one the checker knows.
    #[error("unknown consistency model {0:?}")]
    UnknownModel(String),
    /// The anomaly name is not one the list-append checker detects.
    #[error("unknown anomaly type {0:?}")]
    UnknownAnomaly(String),
    /// The history holds operations of a different workload than requested.
    #[error("operation {index} does not belong to the {expected} workload")]
    WrongWorkload {
        /// The operation's `index`.
        index: u64,
        /// The workload the checker expected.
        expected: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

/// The checkers' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
