//! Jepsen histories: what clients asked of the system under test and what came back.
//!
//! A [`History`] is a sequence of [`Op`]s. Each client process is single-threaded: an
//! [`OpType::Invoke`] is followed, on the same process, by its completion (`ok`, `fail` or
//! `info`). Values are transactions of micro-operations:
//!
//! - list-append ([`ListAppendMop`]): `[append k v]` and `[r k list]`; a read is `nil` on the
//!   invocation and the whole list (or `nil` for a key never written) on completion;
//! - max-write-wins `mww` ([`MwwMop`]): `[readAll nil {k v ...}]` then
//!   `[writeSome nil {k v ...}]`, where `-1` means "never written".
//!
//! Two textual forms are read and written: JSON lines ([`json`], the form Elle-compatible tools
//! such as `elle-cli` read) and EDN ([`edn`], Jepsen's `history.edn`). [`parse_list`] reads the
//! seed's stored list encoding; [`generate`] simulates stores for tests and benchmarks.

pub mod edn;
pub mod generate;
pub mod json;
pub mod reader;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// A key of the data model (the seed's tables use integer keys 0..99).
pub type Key = i64;
/// An appended element or a register value.
pub type Element = i64;

/// Whether an operation is a request or its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpType {
    /// The client is about to perform the operation.
    Invoke,
    /// The operation definitely took place.
    Ok,
    /// The operation definitely did not take place.
    Fail,
    /// Indeterminate: the operation may or may not have taken place.
    Info,
}

impl OpType {
    /// Jepsen's name for the type (`"invoke"`, `"ok"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// Parses Jepsen's name for the type.
    pub fn from_name(name: &str) -> Option<OpType> {
        match name {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }
}

/// Who performed an operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process (Jepsen numbers them from 0; a client that times out gets a new number).
    Client(u64),
    /// A named, non-client process such as Jepsen's `:nemesis`.
    Named(String),
}

/// A list-append micro-operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListAppendMop {
    /// Append a unique element to the list at `key`.
    Append {
        /// The list's key.
        key: Key,
        /// The appended element.
        element: Element,
    },
    /// Read the list at `key`: `None` on invocation, or when the key was never written.
    Read {
        /// The list's key.
        key: Key,
        /// The list read, if known.
        list: Option<Vec<Element>>,
    },
}

impl ListAppendMop {
    /// The key this micro-operation touches.
    pub fn key(&self) -> Key {
        match self {
            ListAppendMop::Append { key, .. } | ListAppendMop::Read { key, .. } => *key,
        }
    }
}

/// A max-write-wins micro-operation (the latest-era `mww` workload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MwwMop {
    /// Read every key: key → value, `-1` for never written. Empty on invocation.
    ReadAll(BTreeMap<Key, i64>),
    /// Write some keys: key → value. On completion, only the writes that were performed.
    WriteSome(BTreeMap<Key, i64>),
}

/// The value of a register that was never written.
pub const MWW_NIL: i64 = -1;

/// An operation's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// No value (e.g. nemesis operations), or a value the harness does not interpret.
    None,
    /// A list-append transaction.
    ListAppend(Vec<ListAppendMop>),
    /// A max-write-wins transaction.
    Mww(Vec<MwwMop>),
    /// A nemesis operation's targets: each node it acted on with what happened there, as
    /// Jepsen records a completed fault (`{"n1" :killed, "n2" :killed}`; a clock bump's
    /// `{"n1" 60000}`, the offset in ms).
    Nodes(BTreeMap<String, NodeResult>),
}

/// What a nemesis operation did on one node ([`Value::Nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeResult {
    /// A keyword such as `killed`, `paused`, `stopped` or `started` (JSON: a string).
    Keyword(String),
    /// A number such as a clock offset in milliseconds.
    Int(i64),
}

/// One Jepsen operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Position in the history (Jepsen's `:index`).
    pub index: u64,
    /// Nanoseconds since the start of the test.
    pub time: i64,
    /// Invocation or completion type.
    pub op_type: OpType,
    /// The process that performed the operation.
    pub process: Process,
    /// The function: `txn`, `r-final`, or a nemesis function.
    pub f: String,
    /// The transaction.
    pub value: Value,
    /// The node (`n1`, ...) the client talked to, when recorded.
    pub node: Option<String>,
    /// Set on the final reads after quiescence (Jepsen's `:final-read?`).
    pub final_read: bool,
    /// The error recorded for a failed or indeterminate operation, as text.
    pub error: Option<String>,
}

impl Op {
    /// The client process number, if this is a client operation.
    pub fn client(&self) -> Option<u64> {
        match self.process {
            Process::Client(p) => Some(p),
            Process::Named(_) => None,
        }
    }
}

/// A whole history, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The operations, in the order they happened.
    pub ops: Vec<Op>,
    /// The names of named keys (EDN keywords or strings) by the id they were given; empty when
    /// every key is an integer.
    pub key_names: BTreeMap<Key, String>,
}

impl History {
    /// Wraps operations into a history.
    pub fn new(ops: Vec<Op>) -> History {
        History {
            ops,
            key_names: BTreeMap::new(),
        }
    }

    /// Wraps operations whose named keys were numbered by `keys`.
    pub fn with_keys(ops: Vec<Op>, keys: json::Keys) -> History {
        History {
            ops,
            key_names: keys.names,
        }
    }

    /// Parses a history in either textual form (see [`reader::read`]).
    pub fn parse(text: &str) -> Result<History> {
        reader::read(text.as_bytes())
    }

    /// Reads and parses a history file, streaming (see [`reader::read`]).
    pub fn read_file(path: &Path) -> Result<History> {
        let mut ops = Vec::new();
        let key_names = reader::for_each_op_in_file(path, |op| {
            ops.push(op);
            Ok(())
        })?;
        Ok(History { ops, key_names })
    }

    /// The client completions (`ok`, `fail`, `info`), in order.
    pub fn completions(&self) -> impl Iterator<Item = &Op> {
        self.ops
            .iter()
            .filter(|op| op.op_type != OpType::Invoke && op.client().is_some())
    }
}

/// Parses the seed's stored text (`" 1 2 3"`) into a list, as the seed's PostgreSQL client does:
/// trim, split on whitespace, parse integers. Blank text is the empty list.
pub fn parse_list(text: &str) -> Result<Vec<Element>> {
    text.split_whitespace()
        .map(|t| {
            t.parse::<Element>().map_err(|_| Error::List {
                text: text.to_owned(),
                token: t.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_encoding() {
        assert_eq!(parse_list("").unwrap(), Vec::<Element>::new());
        assert_eq!(parse_list(" 7").unwrap(), vec![7]);
        assert_eq!(parse_list(" 7 8  9").unwrap(), vec![7, 8, 9]);
        assert!(parse_list(" 7 x").is_err());
    }
}
