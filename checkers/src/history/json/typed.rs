//! Decoding a JSON line straight into an [`Op`], without a `serde_json::Value` in between.
//!
//! Only the common shape is taken: integer keys, a list-append value (or none), and fields of
//! the types [`op_from_json`](super::op_from_json) expects. Anything else (named keys,
//! max-write-wins or nemesis values, a field of another type, a malformed micro-op) makes
//! [`decode`] answer `None`, and the caller decodes the line through a `Value` instead, which
//! gives the result or the error for every other line. So when this succeeds it must build
//! exactly the operation the `Value` path would.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::NO_PROCESS;
use crate::history::{Element, Key, ListAppendMop, Op, OpType, Process, Value};

/// The operation on `line` if it has the common shape, else `None`.
pub(super) fn decode(position: usize, line: &str) -> Option<Op> {
    let raw: RawOp = serde_json::from_str(line).ok()?;
    let value = match (&raw.process, raw.value) {
        (Process::Client(_), Some(mops)) => Value::ListAppend(mops),
        _ => Value::None,
    };
    Some(Op {
        index: raw.index.unwrap_or(position as u64),
        time: raw.time.unwrap_or(0),
        op_type: raw.op_type?,
        process: raw.process,
        f: raw.f.unwrap_or_default(),
        value,
        node: raw.node,
        final_read: raw.final_read.unwrap_or(false),
        error: raw.error,
    })
}

/// An operation's fields as read; absent fields get their defaults in [`decode`].
struct RawOp {
    index: Option<u64>,
    time: Option<i64>,
    op_type: Option<OpType>,
    process: Process,
    f: Option<String>,
    /// A list-append transaction; `None` for `null` or no value.
    value: Option<Vec<ListAppendMop>>,
    node: Option<String>,
    final_read: Option<bool>,
    error: Option<String>,
}

/// The type of a failure that only sends the line to the `Value` path.
fn other<E: de::Error>() -> E {
    E::custom("not the common shape")
}

impl<'de> de::Deserialize<'de> for RawOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawOpVisitor)
    }
}

struct RawOpVisitor;

impl<'de> Visitor<'de> for RawOpVisitor {
    type Value = RawOp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an operation")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOp, A::Error> {
        let mut op = RawOp {
            index: None,
            time: None,
            op_type: None,
            process: Process::Client(NO_PROCESS),
            f: None,
            value: None,
            node: None,
            final_read: None,
            error: None,
        };
        // A repeated field overwrites the earlier one, as in a `serde_json::Map`.
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Index => op.index = Some(map.next_value()?),
                Field::Time => op.time = Some(map.next_value()?),
                Field::Type => op.op_type = Some(map.next_value::<TypeName>()?.0),
                Field::Process => op.process = map.next_value::<RawProcess>()?.0,
                Field::F => op.f = map.next_value()?,
                Field::Value => {
                    op.value = map
                        .next_value::<Option<Vec<RawMop>>>()?
                        .map(|ms| ms.into_iter().map(|m| m.0).collect())
                }
                Field::Node => op.node = map.next_value()?,
                Field::FinalRead => op.final_read = map.next_value()?,
                Field::Error => op.error = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(op)
    }
}

/// The fields an operation's map may hold.
enum Field {
    Index,
    Time,
    Type,
    Process,
    F,
    Value,
    Node,
    FinalRead,
    Error,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(match name {
            "index" => Field::Index,
            "time" => Field::Time,
            "type" => Field::Type,
            "process" => Field::Process,
            "f" => Field::F,
            "value" => Field::Value,
            "node" => Field::Node,
            "final-read?" => Field::FinalRead,
            "error" => Field::Error,
            _ => Field::Other,
        })
    }
}

/// `"invoke"`, `"ok"`, `"fail"` or `"info"`.
struct TypeName(OpType);

impl<'de> de::Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TypeName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an operation type")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<TypeName, E> {
                OpType::from_name(name).map(TypeName).ok_or_else(other)
            }
        }
        d.deserialize_str(V)
    }
}

/// A client number, a process name, or `null` (no process).
struct RawProcess(Process);

impl<'de> de::Deserialize<'de> for RawProcess {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawProcess;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawProcess, E> {
                Ok(RawProcess(Process::Client(n)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<RawProcess, E> {
                Ok(RawProcess(Process::Named(name.to_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawProcess, E> {
                Ok(RawProcess(Process::Client(NO_PROCESS)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list-append micro-op with an integer key: `["append", k, v]`, `["r", k, null]`,
/// `["r", k, [v ...]]` or Elle's `["r", k]`.
struct RawMop(ListAppendMop);

impl<'de> de::Deserialize<'de> for RawMop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(MopVisitor)
    }
}

struct MopVisitor;

impl<'de> Visitor<'de> for MopVisitor {
    type Value = RawMop;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list-append micro-op")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawMop, A::Error> {
        let append = seq.next_element::<MopName>()?.ok_or_else(other)?.0;
        let key: Key = seq.next_element()?.ok_or_else(other)?;
        let mop = if append {
            let element: Element = seq.next_element()?.ok_or_else(other)?;
            ListAppendMop::Append { key, element }
        } else {
            // `["r", k]` reads as `["r", k, null]`.
            let list: Option<Option<Vec<Element>>> = seq.next_element()?;
            ListAppendMop::Read {
                key,
                list: list.flatten(),
            }
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(other());
        }
        Ok(RawMop(mop))
    }
}

/// `"append"` (true) or `"r"` (false).
struct MopName(bool);

impl<'de> de::Deserialize<'de> for MopName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MopName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("append or r")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<MopName, E> {
                match name {
                    "append" => Ok(MopName(true)),
                    "r" => Ok(MopName(false)),
                    _ => Err(other()),
                }
            }
        }
        d.deserialize_str(V)
    }
}
