//! How errors become HTTP replies: a status and a JSON body naming the problem.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, RequestProblem};

/// The JSON body of every non-2xx reply.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// A stable kind, e.g. `malformed-request`.
    pub error: &'static str,
    /// What exactly is wrong.
    pub message: String,
}

impl Error {
    /// The HTTP status and stable kind of this error.
    pub fn http_status(&self) -> (StatusCode, &'static str) {
        match self {
            Error::InvalidRequest { kind, .. } => match kind {
                RequestProblem::Malformed => (StatusCode::BAD_REQUEST, "malformed-request"),
                RequestProblem::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
                RequestProblem::NotFound => (StatusCode::NOT_FOUND, "not-found"),
                RequestProblem::MethodNotAllowed => {
                    (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed")
                }
            },
            Error::KeyNotPresent(_) => (StatusCode::SERVICE_UNAVAILABLE, "key-not-present"),
            Error::StoreClosed | Error::PowerSync(powersync::Error::Closed) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store-closed")
            }
            Error::PostgresUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "postgres-unavailable")
            }
            Error::ApiTimeout(..) => (StatusCode::GATEWAY_TIMEOUT, "api-timeout"),
            Error::Config { .. }
            | Error::IncompleteData { .. }
            | Error::Postgres(_)
            | Error::InvalidUpload(_)
            | Error::UploadQueueStuck { .. }
            | Error::WalRefused(_)
            | Error::Sqlite(_)
            | Error::PowerSync(_)
            | Error::FirstSyncTimeout(_)
            | Error::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind) = self.http_status();
        let message = self.to_string();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), "request failed: {message}");
        } else {
            tracing::warn!(status = status.as_u16(), "request rejected: {message}");
        }
        (
            status,
            Json(ErrorBody {
                error: kind,
                message,
            }),
        )
            .into_response()
    }
}
