//! The seed era's HTTP API: `POST /sql-txn`, `GET /powersync`, `GET /db/list`.
//!
//! `/sql-txn` takes `{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":7}]}` and answers
//! `{"value":[...same micro-ops, reads filled with EDN vector text or null...],"type":"ok"}`.
//! Unlike the Dart endpoint, a malformed request is refused with a 4xx naming the problem (the
//! Dart endpoint echoed unknown functions and silently lost appends to unseeded keys).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::config::Mode;
use crate::error::{Error, RequestProblem, Result};
use crate::model::lww::{LwwRow, MicroOp};
use crate::store::TxnStore;

/// Largest accepted request body, in bytes (a Jepsen transaction is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most micro-ops accepted in one transaction.
pub const MAX_MICRO_OPS: usize = 1024;

/// What the handlers of either era share: the store and the era's settings `C`.
pub struct AppState<S, C> {
    pub(crate) store: Arc<S>,
    pub(crate) settings: C,
}

impl<S, C: Copy> Clone for AppState<S, C> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            settings: self.settings,
        }
    }
}

/// The seed era's settings: what `GET /powersync` reports.
#[derive(Debug, Clone, Copy)]
pub struct SeedSettings {
    mode: Mode,
    local_only: bool,
}

/// Both eras' routers end the same way: 404/405 fallbacks, the body limit, the request log and
/// the state.
pub(crate) fn finish<S: Send + Sync + 'static, C: Copy + Send + Sync + 'static>(
    routes: Router<AppState<S, C>>,
    state: AppState<S, C>,
) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The router of the seed-era API over `store`.
pub fn router<S: TxnStore>(store: Arc<S>, mode: Mode, local_only: bool) -> Router {
    let routes = Router::new()
        .route("/sql-txn", post(sql_txn::<S>))
        .route("/powersync", get(powersync_status::<S>))
        .route("/db/{action}", get(db_action::<S>));
    let settings = SeedSettings { mode, local_only };
    finish(routes, AppState { store, settings })
}

/// The reply of `POST /sql-txn`: `value` first, `type` last, as the Dart endpoint writes it.
#[derive(Debug, Serialize)]
pub struct TxnReply {
    /// The micro-ops with reads filled in.
    pub value: Vec<MicroOp>,
    /// Always `"ok"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

async fn sql_txn<S: TxnStore>(
    State(state): State<AppState<S, SeedSettings>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<TxnReply>> {
    let body = body.map_err(body_rejection)?;
    let ops = parse_txn_request(&body)?;
    tracing::debug!(?ops, "sql-txn request");
    let value = state.store.run_txn(ops).await?;
    tracing::debug!(?value, "sql-txn reply");
    Ok(Json(TxnReply { value, kind: "ok" }))
}

/// The reply of `GET /powersync`, with the Dart endpoint's keys.
#[derive(Debug, Serialize)]
pub struct StatusReply {
    /// `LOCAL_ONLY` as a string, like the Dart `env.LOCAL_ONLY`.
    #[serde(rename = "env.LOCAL_ONLY")]
    pub local_only: String,
    /// The database has been closed.
    #[serde(rename = "db.closed")]
    pub closed: bool,
    /// A sync connection is established.
    #[serde(rename = "db.connected")]
    pub connected: bool,
    /// The store implementation.
    #[serde(rename = "db.runtimeType")]
    pub runtime_type: &'static str,
    /// The sync status says connected.
    #[serde(rename = "status.connected")]
    pub status_connected: bool,
    /// Time of the last completed sync.
    #[serde(rename = "status.lastSyncedAt")]
    pub last_synced_at: Option<String>,
    /// The endpoint's mode (not in the Dart reply).
    #[serde(rename = "endpoint.mode")]
    pub mode: String,
}

async fn powersync_status<S: TxnStore>(
    State(state): State<AppState<S, SeedSettings>>,
) -> Json<StatusReply> {
    let status = state.store.status().await;
    Json(StatusReply {
        local_only: state.settings.local_only.to_string(),
        closed: status.closed,
        connected: status.connected,
        runtime_type: status.runtime_type,
        status_connected: status.status_connected,
        last_synced_at: status.last_synced_at,
        mode: state.settings.mode.to_string(),
    })
}

async fn db_action<S: TxnStore>(
    State(state): State<AppState<S, SeedSettings>>,
    Path(action): Path<String>,
) -> Result<Json<Vec<LwwRow>>> {
    match action.as_str() {
        "list" => Ok(Json(state.store.list().await?)),
        other => Err(Error::InvalidRequest {
            kind: RequestProblem::NotFound,
            problem: format!(
                "unknown db action {} (GET /db/{}); the only one is \"list\"",
                brief_str(other),
                cut(other.to_owned())
            ),
        }),
    }
}

pub(crate) async fn not_found(request: Request) -> Error {
    Error::InvalidRequest {
        kind: RequestProblem::NotFound,
        problem: format!(
            "no route {} {}",
            request.method(),
            brief_str(request.uri().path())
        ),
    }
}

pub(crate) async fn method_not_allowed(request: Request) -> Error {
    Error::InvalidRequest {
        kind: RequestProblem::MethodNotAllowed,
        problem: format!(
            "method {} is not allowed on {}",
            request.method(),
            brief_str(request.uri().path())
        ),
    }
}

/// One debug line per request, like shelf's `logRequests()`.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        "{method} {path} [{}] {:.3} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3
    );
    response
}

pub(crate) fn body_rejection(rejection: BytesRejection) -> Error {
    let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        RequestProblem::TooLarge
    } else {
        RequestProblem::Malformed
    };
    Error::InvalidRequest {
        kind,
        problem: format!(
            "request body: {} (limit {MAX_BODY_BYTES} bytes)",
            rejection.body_text()
        ),
    }
}

/// Parses and checks a `/sql-txn` body into micro-ops; every problem is an
/// [`Error::InvalidRequest`] naming the field (`value[1].k`, ...). Other top-level fields are
/// ignored.
pub fn parse_txn_request(body: &[u8]) -> Result<Vec<MicroOp>> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| Error::malformed(format!("body is not valid JSON: {e}")))?;
    let object = doc
        .as_object()
        .ok_or_else(|| Error::malformed("body must be a JSON object with a \"value\" array"))?;
    let mops = micro_ops(object)?;
    mops.iter()
        .enumerate()
        .map(|(i, mop)| parse_micro_op(&format!("value[{i}]"), mop))
        .collect()
}

/// The `value` array of micro-ops of a `/sql-txn` body (both eras), at most [`MAX_MICRO_OPS`].
pub(crate) fn micro_ops(object: &serde_json::Map<String, Value>) -> Result<&Vec<Value>> {
    let mops = object
        .get("value")
        .ok_or_else(|| Error::malformed("missing field \"value\""))?
        .as_array()
        .ok_or_else(|| Error::malformed("\"value\" must be an array of micro-ops"))?;
    if mops.len() > MAX_MICRO_OPS {
        return Err(Error::malformed(format!(
            "\"value\" has {} micro-ops; at most {MAX_MICRO_OPS} are accepted",
            mops.len()
        )));
    }
    Ok(mops)
}

fn parse_micro_op(at: &str, mop: &Value) -> Result<MicroOp> {
    let object = mop.as_object().ok_or_else(|| {
        Error::malformed(format!(
            "{at} must be an object {{\"f\",\"k\",\"v\"}}, got {}",
            brief(mop)
        ))
    })?;
    let field = |name: &str| {
        object
            .get(name)
            .ok_or_else(|| Error::malformed(format!("{at}: missing field \"{name}\"")))
    };
    let (f, k, v) = (field("f")?, field("k")?, field("v")?);
    let f = f
        .as_str()
        .ok_or_else(|| Error::malformed(format!("{at}.f must be a string, got {}", brief(f))))?;
    let key = k
        .as_i64()
        .ok_or_else(|| Error::malformed(format!("{at}.k must be an integer, got {}", brief(k))))?;
    if !(0..=crate::model::lww::MAX_KEY).contains(&key) {
        return Err(Error::malformed(format!(
            "{at}.k = {key} is outside the keys 0..={} (non-negative, and PostgreSQL's lww.k is \
             an INTEGER)",
            crate::model::lww::MAX_KEY
        )));
    }
    match f {
        "r" if v.is_null() => Ok(MicroOp::Read { key, value: None }),
        "r" => Err(Error::malformed(format!(
            "{at}.v of a read must be null, got {}",
            brief(v)
        ))),
        "append" => v
            .as_i64()
            .map(|value| MicroOp::Append { key, value })
            .ok_or_else(|| {
                Error::malformed(format!(
                    "{at}.v of an append must be an integer, got {}",
                    brief(v)
                ))
            }),
        other => Err(Error::malformed(format!(
            "{at}.f: unknown micro-op function {}; expected \"r\" or \"append\"",
            brief_str(other)
        ))),
    }
}

/// A JSON value for an error message, cut to a readable length.
pub(crate) fn brief(value: &Value) -> String {
    cut(value.to_string())
}

/// A client's string for an error message, quoted and cut to a readable length.
pub(crate) fn brief_str(s: &str) -> String {
    cut(format!("{s:?}"))
}

fn cut(mut text: String) -> String {
    const MAX: usize = 40;
    if let Some((i, _)) = text.char_indices().nth(MAX) {
        text.truncate(i);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod test {
    use super::*;

    fn problem(body: &str) -> String {
        match parse_txn_request(body.as_bytes()) {
            Err(Error::InvalidRequest {
                kind: RequestProblem::Malformed,
                problem,
            }) => problem,
            other => panic!("expected a malformed-request error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_jepsen_request() {
        let ops = parse_txn_request(
            br#"{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":99,"v":7}],"type":"invoke"}"#,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                MicroOp::Read {
                    key: 3,
                    value: None
                },
                MicroOp::Append { key: 99, value: 7 }
            ]
        );
    }

    #[test]
    fn names_each_problem() {
        assert!(problem("{").contains("not valid JSON"));
        assert!(problem("[]").contains("JSON object"));
        assert!(problem("{}").contains("missing field \"value\""));
        assert!(problem(r#"{"value":{}}"#).contains("must be an array"));
        assert!(problem(r#"{"value":[3]}"#).contains("value[0] must be an object"));
        assert!(
            problem(r#"{"value":[{"k":1,"v":null}]}"#).contains("value[0]: missing field \"f\"")
        );
        assert!(problem(r#"{"value":[{"f":"r","v":null}]}"#).contains("missing field \"k\""));
        assert!(problem(r#"{"value":[{"f":"r","k":1}]}"#).contains("missing field \"v\""));
        assert!(
            problem(r#"{"value":[{"f":1,"k":1,"v":null}]}"#)
                .contains("value[0].f must be a string")
        );
        let p = problem(r#"{"value":[{"f":"r","k":1,"v":null},{"f":"w","k":1,"v":2}]}"#);
        assert!(
            p.contains("value[1].f") && p.contains("unknown micro-op function \"w\""),
            "{p}"
        );
        assert!(
            problem(r#"{"value":[{"f":"r","k":"3","v":null}]}"#)
                .contains("value[0].k must be an integer")
        );
        assert!(
            problem(r#"{"value":[{"f":"r","k":3.5,"v":null}]}"#).contains("must be an integer")
        );
        assert!(parse_txn_request(br#"{"value":[{"f":"r","k":100,"v":null}]}"#).is_ok());
        assert!(problem(r#"{"value":[{"f":"r","k":-1,"v":null}]}"#).contains("outside"));
        assert!(
            problem(r#"{"value":[{"f":"append","k":1,"v":"7"}]}"#)
                .contains("append must be an integer")
        );
        assert!(
            problem(r#"{"value":[{"f":"append","k":1,"v":1e40}]}"#)
                .contains("append must be an integer")
        );
        assert!(problem(r#"{"value":[{"f":"r","k":1,"v":[1]}]}"#).contains("read must be null"));
    }

    #[test]
    fn long_client_strings_are_cut() {
        let long = "x".repeat(500);
        let p = problem(&format!(r#"{{"value":[{{"f":"{long}","k":1,"v":1}}]}}"#));
        assert!(p.len() < 150, "{p}");
    }

    #[test]
    fn too_many_micro_ops_are_refused() {
        let mop = r#"{"f":"r","k":1,"v":null}"#;
        let body = format!(
            r#"{{"value":[{}]}}"#,
            vec![mop; MAX_MICRO_OPS + 1].join(",")
        );
        assert!(problem(&body).contains("at most"));
    }

    #[test]
    fn reply_has_value_first_and_type_last() {
        let reply = TxnReply {
            value: vec![MicroOp::Read {
                key: 3,
                value: Some("[1 4 6 7]".into()),
            }],
            kind: "ok",
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"value":[{"f":"r","k":3,"v":"[1 4 6 7]"}],"type":"ok"}"#
        );
    }
}
