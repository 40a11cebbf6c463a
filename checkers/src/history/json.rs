//! JSON forms of histories: one operation per line (JSON lines), as Elle-compatible tools read.
//!
//! An operation looks like
//! `{"index":0,"time":123,"type":"invoke","process":0,"f":"txn","value":[["append",3,7],["r",3,null]]}`.
//! Max-write-wins micro-ops are `["readAll",null,{"0":-1,"1":12}]` and
//! `["writeSome",null,{"17":42}]` (JSON object keys are strings). Optional fields: `node`,
//! `final-read?` (written only when true) and `error`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::{Element, History, Key, ListAppendMop, MwwMop, NodeResult, Op, OpType, Process, Value};
use crate::error::{Error, Result};

mod typed;

/// Renders an operation as a JSON object.
pub fn op_to_json(op: &Op) -> Json {
    let mut m = Map::new();
    m.insert("index".into(), json!(op.index));
    m.insert("time".into(), json!(op.time));
    m.insert("type".into(), json!(op.op_type.name()));
    m.insert(
        "process".into(),
        match &op.process {
            Process::Client(p) => json!(p),
            Process::Named(n) => json!(n),
        },
    );
    m.insert("f".into(), json!(op.f));
    m.insert("value".into(), value_to_json(&op.value));
    if let Some(node) = &op.node {
        m.insert("node".into(), json!(node));
    }
    if op.final_read {
        m.insert("final-read?".into(), json!(true));
    }
    if let Some(e) = &op.error {
        m.insert("error".into(), json!(e));
    }
    Json::Object(m)
}

fn value_to_json(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::ListAppend(mops) => Json::Array(
            mops.iter()
                .map(|m| match m {
                    ListAppendMop::Append { key, element } => json!(["append", key, element]),
                    ListAppendMop::Read { key, list } => json!(["r", key, list]),
                })
                .collect(),
        ),
        Value::Mww(mops) => Json::Array(
            mops.iter()
                .map(|m| match m {
                    MwwMop::ReadAll(kv) => json!(["readAll", null, map_to_json(kv)]),
                    MwwMop::WriteSome(kv) => json!(["writeSome", null, map_to_json(kv)]),
                })
                .collect(),
        ),
        Value::Nodes(nodes) => Json::Object(
            nodes
                .iter()
                .map(|(node, r)| {
                    let r = match r {
                        NodeResult::Keyword(k) => json!(k),
                        NodeResult::Int(i) => json!(i),
                    };
                    (node.clone(), r)
                })
                .collect(),
        ),
    }
}

/// A nemesis value `{"n1": "killed", "n2": 60000}` (strings and integers only), if it is one.
fn nodes_from_json(m: &Map<String, Json>) -> Option<Value> {
    m.iter()
        .map(|(node, r)| {
            let r = match r {
                Json::String(k) => NodeResult::Keyword(k.clone()),
                Json::Number(n) => NodeResult::Int(n.as_i64()?),
                _ => return None,
            };
            Some((node.clone(), r))
        })
        .collect::<Option<BTreeMap<_, _>>>()
        .map(Value::Nodes)
}

fn map_to_json(kv: &BTreeMap<Key, i64>) -> Json {
    Json::Object(kv.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

/// Renders a history as JSON lines (one operation per line, trailing newline).
pub fn write_history(h: &History) -> String {
    let mut out = String::new();
    for op in &h.ops {
        out.push_str(&op_to_json(op).to_string());
        out.push('\n');
    }
    out
}

/// Parses JSON lines, or a single JSON array of operations.
pub fn read_history(text: &str) -> Result<History> {
    let trimmed = text.trim_start();
    let values: Vec<Json> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|source| Error::Json { line: 1, source })?
    } else {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(serde_json::from_str(line).map_err(|source| Error::Json {
                line: i + 1,
                source,
            })?);
        }
        out
    };
    let mut keys = Keys::default();
    let ops = values
        .iter()
        .enumerate()
        .map(|(i, v)| op_from_json(i, v, &mut keys))
        .collect::<Result<Vec<_>>>()?;
    Ok(History::with_keys(ops, keys))
}

/// The first id given to a named key: integer keys keep their value, and real histories'
/// integer keys stay far below this.
pub const NAMED_KEY_BASE: Key = 1 << 32;

/// The process of operations that have none (Elle's histories may omit `:process`): Jepsen
/// then pairs every invocation with the next completion, as of one process.
pub const NO_PROCESS: u64 = i64::MAX as u64;

/// The keys of a history as ids: integer keys are their own id; names (EDN keywords or
/// strings, e.g. Elle's `:x`) get ids from [`NAMED_KEY_BASE`] in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    ids: std::collections::HashMap<String, Key>,
    /// Each named key's id → its name.
    pub names: BTreeMap<Key, String>,
}

impl Keys {
    /// The id of key `k`, or `None` if it is neither an integer nor a name.
    pub fn id(&mut self, k: &Json) -> Option<Key> {
        match k {
            Json::Number(n) => n.as_i64(),
            Json::String(name) => {
                if let Some(id) = self.ids.get(name) {
                    return Some(*id);
                }
                let id = NAMED_KEY_BASE + self.ids.len() as Key;
                self.ids.insert(name.clone(), id);
                self.names.insert(id, name.clone());
                Some(id)
            }
            _ => None,
        }
    }
}

/// Decodes one line of JSON lines (the operation at `position`, 0-based, on line `line_no`,
/// 1-based): straight into the typed operation when it has the common shape (integer keys, a
/// list-append value or none), else through a `serde_json::Value` and [`op_from_json`]. Both
/// ways give the same operation, and the errors are those of the second.
pub fn op_from_line(position: usize, line_no: usize, line: &str, keys: &mut Keys) -> Result<Op> {
    if let Some(op) = typed::decode(position, line) {
        return Ok(op);
    }
    let v: Json = serde_json::from_str(line).map_err(|source| Error::Json {
        line: line_no,
        source,
    })?;
    op_from_json(position, &v, keys)
}

/// Decodes one operation from its JSON form. `position` (0-based) is used as the index when the
/// operation has none, and in error messages; named keys are numbered through `keys`.
pub fn op_from_json(position: usize, v: &Json, keys: &mut Keys) -> Result<Op> {
    let bad = |reason: String| Error::Op { position, reason };
    let obj = v
        .as_object()
        .ok_or_else(|| bad(format!("not an object: {v}")))?;
    let type_name = obj.get("type").and_then(Json::as_str).unwrap_or("");
    let op_type =
        OpType::from_name(type_name).ok_or_else(|| bad(format!("bad type {type_name:?}")))?;
    let process = match obj.get("process") {
        Some(Json::Number(n)) => {
            Process::Client(n.as_u64().ok_or_else(|| bad(format!("bad process {n}")))?)
        }
        Some(Json::String(s)) => Process::Named(s.clone()),
        None | Some(Json::Null) => Process::Client(NO_PROCESS),
        other => return Err(bad(format!("bad process {other:?}"))),
    };
    let f = match obj.get("f") {
        Some(Json::String(s)) => s.clone(),
        None | Some(Json::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let value = match (&process, obj.get("value")) {
        (Process::Client(_), Some(Json::Array(mops))) => decode_mops(mops, keys)?,
        (Process::Named(_), Some(Json::Object(m))) => nodes_from_json(m).unwrap_or(Value::None),
        _ => Value::None,
    };
    let index = match obj.get("index") {
        Some(i) => i.as_u64().ok_or_else(|| bad(format!("bad index {i}")))?,
        None => position as u64,
    };
    let time = match obj.get("time") {
        Some(t) => t.as_i64().ok_or_else(|| bad(format!("bad time {t}")))?,
        None => 0,
    };
    Ok(Op {
        index,
        time,
        op_type,
        process,
        f,
        value,
        node: obj.get("node").and_then(Json::as_str).map(str::to_owned),
        final_read: obj
            .get("final-read?")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        error: obj.get("error").and_then(|e| match e {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }),
    })
}

/// Decodes a transaction's micro-operations (`[f k v]` triples).
pub(crate) fn decode_mops(mops: &[Json], keys: &mut Keys) -> Result<Value> {
    if mops.is_empty() {
        return Ok(Value::ListAppend(Vec::new()));
    }
    let is_mww = mops
        .first()
        .and_then(Json::as_array)
        .and_then(|m| m.first())
        .and_then(Json::as_str)
        .is_some_and(|f| f == "readAll" || f == "writeSome");
    if is_mww {
        mops.iter()
            .map(decode_mww_mop)
            .collect::<Result<_>>()
            .map(Value::Mww)
    } else {
        mops.iter()
            .map(|m| decode_list_append_mop(m, keys))
            .collect::<Result<_>>()
            .map(Value::ListAppend)
    }
}

fn mop_error(m: &Json, reason: &str) -> Error {
    Error::Mop {
        mop: m.to_string(),
        reason: reason.to_owned(),
    }
}

fn triple(m: &Json) -> Result<(&str, &Json, &Json)> {
    match m.as_array().map(Vec::as_slice) {
        Some([f, k, v]) => Ok((
            f.as_str()
                .ok_or_else(|| mop_error(m, "function is not a name"))?,
            k,
            v,
        )),
        _ => Err(mop_error(m, "expected [f k v]")),
    }
}

fn decode_list_append_mop(m: &Json, keys: &mut Keys) -> Result<ListAppendMop> {
    // Elle writes reads' invocations as `[:r k]`, without the nil.
    let (f, k, v) = match m.as_array().map(Vec::as_slice) {
        Some([Json::String(f), k]) if f == "r" => ("r", k, &Json::Null),
        _ => triple(m)?,
    };
    let key = keys
        .id(k)
        .ok_or_else(|| mop_error(m, "key is neither an integer nor a name"))?;
    match f {
        "append" => Ok(ListAppendMop::Append {
            key,
            element: v
                .as_i64()
                .ok_or_else(|| mop_error(m, "element is not an integer"))?,
        }),
        "r" => Ok(ListAppendMop::Read {
            key,
            list: match v {
                Json::Null => None,
                Json::Array(xs) => Some(
                    xs.iter()
                        .map(|x| {
                            x.as_i64()
                                .ok_or_else(|| mop_error(m, "non-integer element"))
                        })
                        .collect::<Result<Vec<Element>>>()?,
                ),
                _ => return Err(mop_error(m, "read value is neither nil nor a list")),
            },
        }),
        _ => Err(mop_error(m, "expected append or r")),
    }
}

fn decode_mww_mop(m: &Json) -> Result<MwwMop> {
    let (f, _, v) = triple(m)?;
    let kv = decode_int_map(v).ok_or_else(|| mop_error(m, "value is not a map of integers"))?;
    match f {
        "readAll" => Ok(MwwMop::ReadAll(kv)),
        "writeSome" => Ok(MwwMop::WriteSome(kv)),
        _ => Err(mop_error(m, "expected readAll or writeSome")),
    }
}

/// Decodes `{"17": 42}` (string keys, as JSON needs) into key → value.
pub fn decode_int_map(v: &Json) -> Option<BTreeMap<Key, i64>> {
    match v {
        Json::Null => Some(BTreeMap::new()),
        Json::Object(o) => o
            .iter()
            .map(|(k, v)| Some((k.trim().parse().ok()?, v.as_i64()?)))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let op = |index, op_type, process, value| Op {
            index,
            time: 1000 * index as i64,
            op_type,
            process,
            f: "txn".into(),
            value,
            node: None,
            final_read: false,
            error: None,
        };
        let la = |read: Option<Vec<i64>>| {
            Value::ListAppend(vec![
                ListAppendMop::Append { key: 3, element: 7 },
                ListAppendMop::Read { key: 3, list: read },
            ])
        };
        let mww = |read: &[(i64, i64)]| {
            Value::Mww(vec![
                MwwMop::ReadAll(read.iter().copied().collect()),
                MwwMop::WriteSome([(17, 42), (3, 42)].into_iter().collect()),
            ])
        };
        let mut h = History::new(vec![
            op(0, OpType::Invoke, Process::Client(0), la(None)),
            op(1, OpType::Ok, Process::Client(0), la(Some(vec![1, 7]))),
            op(
                2,
                OpType::Info,
                Process::Named("nemesis".into()),
                Value::None,
            ),
            op(3, OpType::Invoke, Process::Client(5), mww(&[])),
            op(
                4,
                OpType::Fail,
                Process::Client(5),
                mww(&[(0, -1), (3, 12)]),
            ),
        ]);
        h.ops[1].node = Some("n1".into());
        h.ops[1].final_read = true;
        h.ops[4].error = Some("Connection refused".into());
        h
    }

    #[test]
    fn round_trips_through_json_lines() {
        let h = sample();
        let text = write_history(&h);
        assert_eq!(text.lines().count(), 5);
        assert_eq!(read_history(&text).unwrap(), h);
        assert_eq!(History::parse(&text).unwrap(), h);
    }

    #[test]
    fn reads_elle_style_json_lines() {
        let text = r#"{"index":0,"type":"invoke","process":0,"f":"txn","value":[["append",3,7],["r",3,null]]}
{"index":1,"type":"ok","process":0,"f":"txn","value":[["append",3,7],["r",3,[1,7]]]}"#;
        let h = read_history(text).unwrap();
        assert_eq!(
            h.ops[1].value,
            Value::ListAppend(vec![
                ListAppendMop::Append { key: 3, element: 7 },
                ListAppendMop::Read {
                    key: 3,
                    list: Some(vec![1, 7])
                },
            ])
        );
    }

    #[test]
    fn rejects_malformed_mops_with_typed_errors() {
        let err = read_history(r#"{"type":"ok","process":0,"value":[["append",3]]}"#).unwrap_err();
        assert!(matches!(err, Error::Mop { .. }), "{err}");
        let err = read_history(r#"{"type":"done","process":0,"value":[]}"#).unwrap_err();
        assert!(matches!(err, Error::Op { position: 0, .. }), "{err}");
        let err = read_history("{\"type\":\"ok\",\n").unwrap_err();
        assert!(matches!(err, Error::Json { line: 1, .. }), "{err}");
    }

    #[test]
    fn typed_decoding_gives_the_operation_of_the_value_path() {
        let common = [
            r#"{"index":0,"time":5,"type":"invoke","process":0,"f":"txn","value":[["append",3,7],["r",3,null]]}"#,
            r#"{"index":1,"time":6,"type":"ok","process":0,"f":"txn","value":[["append",3,7],["r",3,[1,7]]]}"#,
            r#"{"type":"ok","process":2,"value":[["r",-3],["r",4,[]]],"node":"n1","final-read?":true}"#,
            r#"{"type":"fail","process":null,"f":null,"value":[],"error":"Connection refused"}"#,
            r#"{"type":"info","process":"nemesis","f":"kill","value":[["r",1,[2]]],"extra":{"a":[1]}}"#,
            r#"{"type":"info","process":"nemesis","value":null,"type":"ok","node":null,"error":null}"#,
        ];
        let other = [
            r#"{"type":"ok","process":0,"value":[["append","x",1]]}"#,
            r#"{"type":"ok","process":0,"value":[["readAll",null,{"1":2}],["writeSome",null,{}]]}"#,
            r#"{"type":"info","process":"nemesis","value":{"n1":"killed","n2":60000}}"#,
            r#"{"type":"ok","process":0,"f":7,"value":7,"node":3,"error":{"a":1}}"#,
            r#"{"type":"ok","process":0,"value":[["r",1,[1.5]]]}"#,
            r#"{"type":"ok","process":0,"value":[["append",1]]}"#,
            r#"{"type":"ok","process":0,"value":[["r",1,null,4]]}"#,
            r#"{"type":"ok","process":-1,"value":[]}"#,
            r#"{"type":"done","process":0}"#,
            r#"{"process":0}"#,
            r#"{"type":"ok","index":-1}"#,
            r#"[1]"#,
        ];
        let by_value = |line: &str| {
            let v: Json = serde_json::from_str(line).unwrap();
            op_from_json(4, &v, &mut Keys::default()).map_err(|e| e.to_string())
        };
        for line in common {
            assert_eq!(
                typed::decode(4, line).ok_or(line),
                Ok(by_value(line).unwrap())
            );
        }
        for line in other {
            assert_eq!(typed::decode(4, line), None, "{line}");
            let from_line =
                op_from_line(4, 1, line, &mut Keys::default()).map_err(|e| e.to_string());
            assert_eq!(from_line, by_value(line), "{line}");
        }
    }
}
