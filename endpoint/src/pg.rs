//! PostgreSQL, once for the whole endpoint: connection settings, the one classification of
//! PostgreSQL errors, and the one failure type of a PostgreSQL transaction.

use std::time::Duration;

use powersync::ConnectorError;
use tokio_postgres::error::{Severity, SqlState};

use crate::config::PostgresConfig;
use crate::error::Error;

/// The connection settings of `PG_DATABASE_*` (no TLS, as the seed; 5 s connect timeout).
pub fn client_config(pg: &PostgresConfig) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&pg.host)
        .port(pg.port)
        .dbname(&pg.name)
        .user(&pg.user)
        .password(pg.password.expose())
        .connect_timeout(Duration::from_secs(5))
        .application_name("powersync_endpoint");
    config
}

/// What a PostgreSQL error means to the endpoint. Every decision about a PostgreSQL error (retry
/// an upload, stop the endpoint, answer `fail`) is made from this one classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgClass {
    /// No answer from the server (unreachable, connection lost): the outcome of a commit in
    /// flight is unknown.
    NoAnswer,
    /// 40001 (serialization failure) or 40P01 (deadlock): the transaction was rolled back and
    /// may be retried as a whole.
    Conflict,
    /// 57014 (query canceled): rolled back; the latest era retries it like a conflict.
    Canceled,
    /// The server is going away or the connection broke (class 08, 57P01–57P03): retryable.
    ConnectionLost,
    /// Data exception (22), integrity violation (23) or insufficient privilege (42501): the
    /// statement itself is wrong.
    BadStatement,
    /// Any other error the server answered with.
    Other,
}

impl PgClass {
    /// Classifies `e`.
    pub fn of(e: &tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return Self::NoAnswer;
        };
        let code = db.code();
        let name = code.code();
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            Self::Conflict
        } else if *code == SqlState::QUERY_CANCELED {
            Self::Canceled
        } else if name.starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            Self::ConnectionLost
        } else if name.starts_with("22") || name.starts_with("23") || name == "42501" {
            Self::BadStatement
        } else {
            Self::Other
        }
    }
}

/// Whether the server reported `e` with severity FATAL or PANIC (the session is gone).
pub fn is_fatal_severity(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        )
    })
}

/// `PostgreSQL <code>: <message>` for a server error, the error's text otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL unreachable: {e}"),
    }
}

/// An upload's PostgreSQL error as the connector error the upload loop understands. Lost
/// connections, server shutdowns, conflicts and cancellations are retryable; a wrong statement
/// (22, 23, 42501) and other FATAL/PANIC errors are fatal: the upload itself is wrong, and the
/// endpoint must stop.
pub fn connector_error(e: tokio_postgres::Error) -> ConnectorError {
    let message = describe(&e);
    let fatal = match PgClass::of(&e) {
        PgClass::BadStatement => true,
        PgClass::Other => is_fatal_severity(&e),
        PgClass::NoAnswer | PgClass::Conflict | PgClass::Canceled | PgClass::ConnectionLost => {
            false
        }
    };
    if fatal {
        ConnectorError::fatal(message).with_source(e)
    } else {
        ConnectorError::retryable(message).with_source(e)
    }
}

/// Why a PostgreSQL transaction failed: PostgreSQL itself, or the data (an upload entry that
/// cannot be written, a table that lacks the model's keys).
#[derive(Debug)]
pub enum PgFailure {
    /// PostgreSQL (or the connection to it) reported an error.
    Pg(tokio_postgres::Error),
    /// The data is not what the model requires.
    Data(Error),
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl PgFailure {
    /// As the connector error the upload loop understands (data problems are fatal).
    pub fn into_connector_error(self) -> ConnectorError {
        match self {
            Self::Pg(e) => connector_error(e),
            Self::Data(e) => ConnectorError::fatal(e.to_string()),
        }
    }

    /// As the endpoint's error (for the PostgreSQL endpoint's replies).
    pub fn into_error(self) -> Error {
        match self {
            Self::Pg(e) => Error::Postgres(e),
            Self::Data(e) => e,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_no_answer_and_retryable() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=x connect_timeout=5"),
            tokio_postgres::NoTls,
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert_eq!(PgClass::of(&e), PgClass::NoAnswer);
        assert!(!connector_error(e).is_fatal());
    }
}
