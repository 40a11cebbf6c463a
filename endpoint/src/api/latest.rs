//! The latest era's HTTP API (`b77a3d0`, selected by `--endpoint`): `POST /sql-txn` with mww
//! `readAll`/`writeSome` transactions and `GET /db-api/<action>`.
//!
//! The API follows the configured era (as the Dart endpoints: the latest one is mww-only). A
//! seed-era body (`r`/`append`) sent here is refused with a 400 that says so. Unlike the Dart
//! endpoint, malformed input is a 4xx naming the problem (Dart: a 500 and `ERROR` lines), an
//! unknown action is a 404 (Dart: 500), and `selectAll` works (Dart: always 500).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::api::seed::{AppState, body_rejection, brief, brief_str, finish, micro_ops};
use crate::config::FailurePolicy;
use crate::error::{Error, RequestProblem, Result};
use crate::model::mww::MwwOp;
use crate::store::{DbAction, MwwOutcome, MwwStore};

/// The latest era's settings: the key count and the failure policy.
#[derive(Debug, Clone, Copy)]
pub struct LatestSettings {
    keys: i64,
    policy: FailurePolicy,
}

/// The router of the latest-era API over `store`, with keys `0..keys`.
/// Under the Dart [`FailurePolicy`], an invariant failure exits the process with the Dart code.
pub fn router<S: MwwStore>(store: Arc<S>, keys: i64, policy: FailurePolicy) -> Router {
    let routes = Router::new()
        .route("/sql-txn", post(sql_txn::<S>))
        .route("/db-api/{action}", get(db_api::<S>));
    let settings = LatestSettings { keys, policy };
    finish(routes, AppState { store, settings })
}

/// A parsed `/sql-txn` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRequest {
    /// The operation's `f` (`txn`, `r-final`, …), echoed unchanged.
    pub f: String,
    /// The micro-ops.
    pub ops: Vec<MwwOp>,
}

/// The reply of `POST /sql-txn`; fields in the Dart endpoint's (sorted) order.
#[derive(Debug, Serialize)]
pub struct TxnReply {
    /// `ps` or `pg`.
    #[serde(rename = "clientType")]
    pub client_type: &'static str,
    /// The request's `f`.
    pub f: String,
    /// `ok` or `fail`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The micro-ops: filled in for `ok`, as requested for `fail`.
    pub value: Vec<MwwOp>,
}

async fn sql_txn<S: MwwStore>(
    State(state): State<AppState<S, LatestSettings>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<TxnReply>> {
    let body = body.map_err(body_rejection)?;
    let request = parse_txn_request(&body, state.settings.keys)?;
    tracing::debug!(?request, "sql-txn request");
    let outcome = state
        .store
        .run_txn(request.ops.clone())
        .await
        .map_err(|e| state.settings.policy.check(e))?;
    let reply = match outcome {
        MwwOutcome::Ok(value) => TxnReply {
            client_type: state.store.client_type(),
            f: request.f,
            kind: "ok",
            value,
        },
        MwwOutcome::Fail(reason) => {
            tracing::info!("sql-txn fail: {reason}");
            TxnReply {
                client_type: state.store.client_type(),
                f: request.f,
                kind: "fail",
                value: request.ops,
            }
        }
    };
    tracing::debug!(?reply, "sql-txn reply");
    Ok(Json(reply))
}

async fn db_api<S: MwwStore>(
    State(state): State<AppState<S, LatestSettings>>,
    Path(action): Path<String>,
) -> Result<Json<Value>> {
    let Some(parsed) = DbAction::parse(&action) else {
        let known: Vec<&str> = DbAction::ALL.iter().map(|(n, _)| *n).collect();
        return Err(Error::InvalidRequest {
            kind: RequestProblem::NotFound,
            problem: format!(
                "unknown db-api action {}; known: {}",
                brief_str(&action),
                known.join(", ")
            ),
        });
    };
    let body = state
        .store
        .db_api(parsed)
        .await
        .map_err(|e| state.settings.policy.check(e))?;
    tracing::info!("db-api {action}: {body}");
    Ok(Json(body))
}

/// Parses and checks a `/sql-txn` body; every problem is an [`Error::InvalidRequest`] naming the
/// field. Writes must name keys `0..keys` and values that fit PostgreSQL's INTEGER.
pub fn parse_txn_request(body: &[u8], keys: i64) -> Result<TxnRequest> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| Error::malformed(format!("body is not valid JSON: {e}")))?;
    let object = doc
        .as_object()
        .ok_or_else(|| Error::malformed("body must be a JSON object {\"type\",\"f\",\"value\"}"))?;
    let f = object
        .get("f")
        .ok_or_else(|| Error::malformed("missing field \"f\" (e.g. \"txn\")"))?;
    let f = f
        .as_str()
        .ok_or_else(|| Error::malformed(format!("\"f\" must be a string, got {}", brief(f))))?
        .to_owned();
    let mops = micro_ops(object)?;
    let ops = mops
        .iter()
        .enumerate()
        .map(|(i, mop)| parse_micro_op(&format!("value[{i}]"), mop, keys))
        .collect::<Result<Vec<_>>>()?;
    Ok(TxnRequest { f, ops })
}

fn parse_micro_op(at: &str, mop: &Value, keys: i64) -> Result<MwwOp> {
    let object = mop.as_object().ok_or_else(|| {
        Error::malformed(format!(
            "{at} must be an object {{\"f\",\"k\",\"v\"}}, got {}",
            brief(mop)
        ))
    })?;
    let f = object
        .get("f")
        .ok_or_else(|| Error::malformed(format!("{at}: missing field \"f\"")))?;
    let f = f
        .as_str()
        .ok_or_else(|| Error::malformed(format!("{at}.f must be a string, got {}", brief(f))))?;
    if let Some(k) = object.get("k").filter(|k| !k.is_null()) {
        return Err(Error::malformed(format!(
            "{at}.k must be null in the mww model, got {}",
            brief(k)
        )));
    }
    let v = object.get("v").unwrap_or(&Value::Null);
    match f {
        "readAll" => match v {
            Value::Null => Ok(MwwOp::ReadAll(None)),
            Value::Object(m) if m.is_empty() => Ok(MwwOp::ReadAll(None)),
            other => Err(Error::malformed(format!(
                "{at}.v of readAll must be {{}}, got {}",
                brief(other)
            ))),
        },
        "writeSome" => {
            let writes = v.as_object().ok_or_else(|| {
                Error::malformed(format!(
                    "{at}.v of writeSome must be an object {{\"<key>\": <value>}}, got {}",
                    brief(v)
                ))
            })?;
            let mut out = BTreeMap::new();
            for (key, value) in writes {
                let k: i64 = key
                    .parse()
                    .ok()
                    .filter(|k| (0..keys).contains(k))
                    .ok_or_else(|| {
                        Error::malformed(format!(
                            "{at}.v: key {} is not an integer in 0..={}",
                            brief_str(key),
                            keys - 1
                        ))
                    })?;
                let v = value
                    .as_i64()
                    .filter(|v| i32::try_from(*v).is_ok())
                    .ok_or_else(|| {
                        Error::malformed(format!(
                            "{at}.v[{key:?}] must be an integer that fits PostgreSQL's INTEGER, got {}",
                            brief(value)
                        ))
                    })?;
                out.insert(k, v);
            }
            Ok(MwwOp::WriteSome(out))
        }
        "r" | "append" => Err(Error::malformed(format!(
            "{at}.f: {f:?} is a seed-era (lww) micro-op, but this endpoint runs the latest era \
             (--endpoint, mww): expected \"readAll\" or \"writeSome\""
        ))),
        other => Err(Error::malformed(format!(
            "{at}.f: unknown micro-op function {}; expected \"readAll\" or \"writeSome\"",
            brief_str(other)
        ))),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn parse(body: &str) -> Result<TxnRequest> {
        parse_txn_request(body.as_bytes(), 100)
    }

    #[test]
    fn parses_the_harness_request() {
        let r = parse(r#"{"type":"invoke","f":"txn","value":[{"f":"readAll","k":null,"v":{}},{"f":"writeSome","k":null,"v":{"17":42,"3":42}}]}"#).unwrap();
        assert_eq!(r.f, "txn");
        assert_eq!(
            r.ops,
            vec![
                MwwOp::ReadAll(None),
                MwwOp::WriteSome([(3, 42), (17, 42)].into_iter().collect())
            ]
        );
        let r = parse(r#"{"f":"r-final","value":[{"f":"readAll","k":null,"v":{}},{"f":"writeSome","k":null,"v":{}}]}"#).unwrap();
        assert_eq!(r.f, "r-final");
    }

    #[test]
    fn names_each_problem() {
        let cases = [
            ("[1]", "JSON object"),
            (r#"{"value":[]}"#, "missing field \"f\""),
            (r#"{"f":1,"value":[]}"#, "\"f\" must be a string"),
            (r#"{"f":"txn"}"#, "missing field \"value\""),
            (
                r#"{"f":"txn","value":[{"f":"r","k":1,"v":null}]}"#,
                "k must be null",
            ),
            (
                r#"{"f":"txn","value":[{"f":"r","k":null,"v":null}]}"#,
                "seed-era",
            ),
            (
                r#"{"f":"txn","value":[{"f":"readSome","k":null,"v":{}}]}"#,
                "unknown micro-op",
            ),
            (
                r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"100":1}}]}"#,
                "key \"100\"",
            ),
            (
                r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"x":1}}]}"#,
                "key \"x\"",
            ),
            (
                r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"1":"2"}}]}"#,
                "fits",
            ),
            (
                r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":{"1":4294967296}}]}"#,
                "fits",
            ),
            (
                r#"{"f":"txn","value":[{"f":"writeSome","k":null,"v":[1]}]}"#,
                "must be an object",
            ),
            (
                r#"{"f":"txn","value":[{"f":"readAll","k":null,"v":{"1":2}}]}"#,
                "must be {}",
            ),
        ];
        for (body, expected) in cases {
            let e = parse(body).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidRequest {
                        kind: RequestProblem::Malformed,
                        ..
                    }
                ),
                "{body}: {e:?}"
            );
            assert!(e.to_string().contains(expected), "{body}: {e}");
        }
    }

    #[test]
    fn reply_keys_are_in_the_dart_order() {
        let reply = TxnReply {
            client_type: "ps",
            f: "txn".into(),
            kind: "ok",
            value: vec![MwwOp::WriteSome([(1, 2)].into_iter().collect())],
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"clientType":"ps","f":"txn","type":"ok","value":[{"f":"writeSome","k":null,"v":{"1":2}}]}"#
        );
    }
}
