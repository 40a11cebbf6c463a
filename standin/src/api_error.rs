//! The service's JSON error body: `{"error":{"name","code","status","description"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Service error code, e.g. `PSYNC_S2101`.
    pub code: &'static str,
    /// Error name (the service's error class).
    pub name: &'static str,
    /// Human-readable description.
    pub description: String,
}

impl ApiError {
    /// A 401 `AuthorizationError`.
    pub fn unauthorized(code: &'static str, description: &str) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code,
            name: "AuthorizationError",
            description: description.to_owned(),
        }
    }

    /// A 400 validation error (`PSYNC_S2001`).
    pub fn validation(details: &str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "PSYNC_S2001",
            name: "ValidationError",
            description: format!("Validation failed: {details}"),
        }
    }

    /// 404 for unknown routes (`PSYNC_S2002`).
    pub fn not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "PSYNC_S2002",
            name: "RouteNotFound",
            description: "Route not found".to_owned(),
        }
    }

    /// 500 `PSYNC_S2302` while the initial snapshot is not complete.
    pub fn no_sync_rules() -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "PSYNC_S2302",
            name: "ServiceError",
            description: "No sync config available".to_owned(),
        }
    }

    /// 503 for a failing dependency (e.g. the source database is unreachable).
    pub fn unavailable(description: &str) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "PSYNC_S2003",
            name: "ServiceError",
            description: description.to_owned(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "name": self.name,
            "code": self.code,
            "status": self.status.as_u16(),
            "description": self.description,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
