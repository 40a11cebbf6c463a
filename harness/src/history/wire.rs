//! The endpoint's HTTP wire format for `POST /sql-txn`, to and from micro-operations.
//!
//! Seed era (list-append): the request is `{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":7}]}`
//! and the response echoes it with reads filled in as EDN vector **strings** (`"[1 4 6 7]"`) or
//! `null`, e.g. `{"value":[{"f":"r","k":3,"v":"[1 4 6 7]"},{"f":"append","k":3,"v":7}],"type":"ok"}`.
//! Like the Clojure client, the response's `type` is not trusted: a decoded 200 response is `ok`.
//!
//! Latest era (mww): `{"type":"invoke","f":"txn","value":[{"f":"readAll","k":null,"v":{}},
//! {"f":"writeSome","k":null,"v":{"17":42}}]}`; the response carries `type` (`ok` or `fail`) and
//! the full `readAll` map and the filtered `writeSome` map, keys as strings.

use serde_json::{Value as Json, json};

use super::edn;
use super::json::decode_int_map;
use super::{Element, ListAppendMop, MwwMop, OpType};
use crate::error::{Error, Result};

/// The seed-era request body for a list-append transaction.
pub fn list_append_request(mops: &[ListAppendMop]) -> Json {
    let value: Vec<Json> = mops
        .iter()
        .map(|m| match m {
            ListAppendMop::Append { key, element } => {
                json!({"f": "append", "k": key, "v": element})
            }
            ListAppendMop::Read { key, .. } => json!({"f": "r", "k": key, "v": null}),
        })
        .collect();
    json!({ "value": value })
}

fn wire_error(reason: impl Into<String>) -> Error {
    Error::Wire(reason.into())
}

/// The `value` array of micro-op objects `{f, k, v}` in a response body.
fn mop_objects(body: &str) -> Result<(Json, Vec<Json>)> {
    let doc: Json =
        serde_json::from_str(body).map_err(|source| checkers::Error::Json { line: 1, source })?;
    let mops = doc
        .get("value")
        .and_then(Json::as_array)
        .cloned()
        .ok_or_else(|| wire_error("no \"value\" array"))?;
    Ok((doc, mops))
}

/// Decodes a seed-era `/sql-txn` response body into completed list-append micro-ops.
pub fn list_append_response(body: &str) -> Result<Vec<ListAppendMop>> {
    let (_, mops) = mop_objects(body)?;
    mops.iter().map(list_append_mop).collect()
}

fn list_append_mop(m: &Json) -> Result<ListAppendMop> {
    let f = m.get("f").and_then(Json::as_str).unwrap_or("");
    let key = m
        .get("k")
        .and_then(Json::as_i64)
        .ok_or_else(|| wire_error(format!("key is not an integer in {m}")))?;
    let v = m.get("v").unwrap_or(&Json::Null);
    match f {
        "append" => Ok(ListAppendMop::Append {
            key,
            element: v
                .as_i64()
                .ok_or_else(|| wire_error(format!("append of a non-integer in {m}")))?,
        }),
        "r" => Ok(ListAppendMop::Read {
            key,
            list: match v {
                Json::Null => None,
                Json::String(s) => Some(edn_ints(s)?),
                Json::Array(_) => {
                    Some(ints(v).ok_or_else(|| wire_error(format!("bad read in {m}")))?)
                }
                _ => return Err(wire_error(format!("bad read value in {m}"))),
            },
        }),
        other => Err(wire_error(format!("unknown micro-op function {other:?}"))),
    }
}

/// Parses an EDN vector string such as `"[1 4 6 7]"`.
fn edn_ints(s: &str) -> Result<Vec<Element>> {
    let v = edn::parse_one(s)?;
    ints(&v).ok_or_else(|| wire_error(format!("read {s:?} is not a vector of integers")))
}

fn ints(v: &Json) -> Option<Vec<Element>> {
    v.as_array()?.iter().map(Json::as_i64).collect()
}

/// The latest-era request body for a max-write-wins transaction (`f` is `txn` or `r-final`).
pub fn mww_request(f: &str, mops: &[MwwMop]) -> Json {
    let value: Vec<Json> = mops
        .iter()
        .map(|m| {
            let (name, kv) = match m {
                MwwMop::ReadAll(kv) => ("readAll", kv),
                MwwMop::WriteSome(kv) => ("writeSome", kv),
            };
            let v: serde_json::Map<String, Json> =
                kv.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            json!({"f": name, "k": null, "v": v})
        })
        .collect();
    json!({"type": "invoke", "f": f, "value": value})
}

/// Decodes a latest-era `/sql-txn` response into its type (`ok` or `fail`) and micro-ops.
pub fn mww_response(body: &str) -> Result<(OpType, Vec<MwwMop>)> {
    let (doc, mops) = mop_objects(body)?;
    let op_type = match doc.get("type").and_then(Json::as_str) {
        Some("ok") => OpType::Ok,
        Some("fail") => OpType::Fail,
        other => return Err(wire_error(format!("response type {other:?}"))),
    };
    let mops = mops
        .iter()
        .map(|m| {
            let kv = m
                .get("v")
                .and_then(decode_int_map)
                .ok_or_else(|| wire_error(format!("bad map in {m}")))?;
            match m.get("f").and_then(Json::as_str) {
                Some("readAll") => Ok(MwwMop::ReadAll(kv)),
                Some("writeSome") => Ok(MwwMop::WriteSome(kv)),
                other => Err(wire_error(format!("unknown micro-op function {other:?}"))),
            }
        })
        .collect::<Result<_>>()?;
    Ok((op_type, mops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_seed_response() {
        let body = r#"{"value":[{"f":"r","k":3,"v":"[1 4 6]"},{"f":"append","k":3,"v":7},{"f":"r","k":3,"v":"[1 4 6 7]"},{"f":"r","k":4,"v":null}],"type":"ok"}"#;
        assert_eq!(
            list_append_response(body).unwrap(),
            vec![
                ListAppendMop::Read {
                    key: 3,
                    list: Some(vec![1, 4, 6])
                },
                ListAppendMop::Append { key: 3, element: 7 },
                ListAppendMop::Read {
                    key: 3,
                    list: Some(vec![1, 4, 6, 7])
                },
                ListAppendMop::Read { key: 4, list: None },
            ]
        );
    }

    #[test]
    fn encodes_the_seed_request() {
        let req = list_append_request(&[
            ListAppendMop::Read { key: 3, list: None },
            ListAppendMop::Append { key: 3, element: 7 },
        ]);
        assert_eq!(
            req.to_string(),
            r#"{"value":[{"f":"r","k":3,"v":null},{"f":"append","k":3,"v":7}]}"#
        );
    }

    #[test]
    fn rejects_bad_seed_responses() {
        assert!(matches!(
            list_append_response("Internal Server Error"),
            Err(Error::Checkers(checkers::Error::Json { .. }))
        ));
        assert!(matches!(
            list_append_response(r#"{"type":"ok"}"#),
            Err(Error::Wire(_))
        ));
        assert!(matches!(
            list_append_response(r#"{"value":[{"f":"r","k":3,"v":"[1 x]"}]}"#),
            Err(Error::Wire(_))
        ));
        assert!(matches!(
            list_append_response(r#"{"value":[{"f":"r","k":3,"v":"[1 2"}]}"#),
            Err(Error::Checkers(checkers::Error::Edn { .. }))
        ));
    }

    #[test]
    fn round_trips_the_latest_era_format() {
        let body = r#"{"clientType":"ps","f":"txn","type":"ok","value":[{"f":"readAll","k":null,"v":{"0":-1,"1":12}},{"f":"writeSome","k":null,"v":{"17":42,"3":42}}]}"#;
        let (t, mops) = mww_response(body).unwrap();
        assert_eq!(t, OpType::Ok);
        assert_eq!(
            mops,
            vec![
                MwwMop::ReadAll([(0, -1), (1, 12)].into_iter().collect()),
                MwwMop::WriteSome([(3, 42), (17, 42)].into_iter().collect()),
            ]
        );
        let req = mww_request("txn", &mops);
        assert_eq!(req["value"][1]["v"]["17"], 42);
        let fail = r#"{"clientType":"pg","f":"txn","type":"fail","value":[]}"#;
        assert_eq!(mww_response(fail).unwrap().0, OpType::Fail);
    }
}
