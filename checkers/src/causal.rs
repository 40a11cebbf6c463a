//! Causal consistency of max-write-wins registers (the latest-era `mww` workload).
//!
//! The algorithm of jepsen-causal-consistency's `causal.checker.mww.causal-consistency` and of
//! the endpoint fuzzer's online `CausalChecker`, run post hoc over `ok` operations in history
//! order. Values are a global counter that only grows, so "causally later" means "not smaller":
//!
//! - each process keeps, per key, the smallest value it may still read, and why: its own last
//!   read (**monotonic reads**), its own last write (**read-your-writes**);
//! - each write `(k, v)` stores a snapshot of its process's state right after the transaction.
//!   Whoever reads `(k, v)` must afterwards see, for every key, at least what the writer had
//!   written (**monotonic writes**, including the writer's other writes in the same
//!   transaction) or read (**writes-follow-reads**). The snapshots of all values a `readAll`
//!   returns are merged before any of its reads is checked: a transaction's reads are one view;
//! - a read below the expected value violates the property that set the expectation;
//! - **no read of a never-written value**: every value read (other than `-1`, never written)
//!   must have been written by an `ok` or `info` operation;
//! - also: `readAll` returns every key (`read-missing-keys`), each `(k, v)` is written once
//!   (`duplicate-writes`), a write is above what its process had already seen
//!   (`write-below-observed`), and each transaction is `[readAll, writeSome]`
//!   (`malformed-txn`).
//!
//! A write whose completion comes after its reader's in the history has no snapshot yet when
//! the reader is checked; that read then constrains nothing (no false alarms, fewer checks).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use serde_json::json;

use super::{Anomaly, Verdict};
use crate::history::{History, Key, MWW_NIL, MwwMop, OpType, Value};

/// Options for the causal checker.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// The number of keys every `readAll` must return (keys `0..key_count`). `None`: every key
    /// any `ok` `readAll` returned.
    pub key_count: Option<usize>,
}

/// Why a process expects at least some value for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Initial,
    MonotonicReads,
    ReadYourWrites,
    MonotonicWrites,
    WritesFollowReads,
}

impl Why {
    fn property(self) -> &'static str {
        match self {
            Why::Initial => "read-unwritten-value",
            Why::MonotonicReads => "monotonic-reads",
            Why::ReadYourWrites => "read-your-writes",
            Why::MonotonicWrites => "monotonic-writes",
            Why::WritesFollowReads => "writes-follow-reads",
        }
    }
}

/// The smallest value a process may read for a key, why, and the operation that set it.
#[derive(Debug, Clone, Copy)]
struct Expect {
    value: i64,
    why: Why,
    since: Option<u64>,
}

const INITIAL: Expect = Expect {
    value: MWW_NIL,
    why: Why::Initial,
    since: None,
};

/// One process's expectations, per key slot.
struct ProcessState {
    expect: Vec<Expect>,
    /// Per slot, the value whose writer's snapshot was last merged (`-1`: none).
    merged: Vec<i64>,
}

impl ProcessState {
    fn new(slots: usize) -> ProcessState {
        ProcessState {
            expect: vec![INITIAL; slots],
            merged: vec![MWW_NIL; slots],
        }
    }
}

/// A writer's state right after its transaction: per slot, the value and whether the writer
/// wrote it itself (else it had read it).
struct Snapshot {
    writer: u64,
    values: Vec<i64>,
    written: Vec<bool>,
}

/// Checks the causal consistency of a max-write-wins history.
pub fn check(history: &History, opts: &Opts) -> Verdict {
    let mut found = Vec::new();
    let oks: Vec<_> = history
        .completions()
        .filter(|op| op.op_type == OpType::Ok)
        .filter_map(|op| match &op.value {
            Value::Mww(mops) => Some((op, mops)),
            _ => None,
        })
        .collect();
    let keys: BTreeSet<Key> = match opts.key_count {
        Some(n) => (0..n as Key).collect(),
        None => oks
            .iter()
            .flat_map(|(_, mops)| mops.iter())
            .filter_map(|m| match m {
                MwwMop::ReadAll(kv) => Some(kv.keys().copied()),
                MwwMop::WriteSome(_) => None,
            })
            .flatten()
            .collect(),
    };
    let possible: HashSet<(Key, i64)> = history
        .completions()
        .filter(|op| matches!(op.op_type, OpType::Ok | OpType::Info))
        .filter_map(|op| match &op.value {
            Value::Mww(mops) => Some(mops),
            _ => None,
        })
        .flatten()
        .filter_map(|m| match m {
            MwwMop::WriteSome(kv) => Some(kv.iter().map(|(k, v)| (*k, *v))),
            MwwMop::ReadAll(_) => None,
        })
        .flatten()
        .collect();

    // Dense slots for every key any ok transaction touches (so `slot[&k]` below always finds
    // the keys of the transactions it is used on).
    let slot_keys: BTreeSet<Key> = keys
        .iter()
        .copied()
        .chain(oks.iter().flat_map(|(_, mops)| {
            mops.iter().flat_map(|m| match m {
                MwwMop::ReadAll(kv) | MwwMop::WriteSome(kv) => kv.keys().copied(),
            })
        }))
        .collect();
    let slot: HashMap<Key, usize> = slot_keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let n = slot.len();

    let mut processes: HashMap<u64, ProcessState> = HashMap::new();
    let mut snapshots: HashMap<(Key, i64), Rc<Snapshot>> = HashMap::new();
    for (op, mops) in oks {
        let Some(process) = op.client() else { continue };
        let (reads, writes) = match mops.as_slice() {
            [MwwMop::ReadAll(r), MwwMop::WriteSome(w)] => (r, w),
            _ => {
                found.push(Anomaly {
                    kind: "malformed-txn".into(),
                    ops: vec![op.index],
                    explanation: "an ok transaction must be exactly [readAll, writeSome]".into(),
                    detail: json!({"index": op.index}),
                });
                continue;
            }
        };
        let missing: Vec<Key> = keys
            .iter()
            .filter(|k| !reads.contains_key(k))
            .copied()
            .collect();
        if !missing.is_empty() {
            found.push(Anomaly {
                kind: "read-missing-keys".into(),
                ops: vec![op.index],
                explanation: format!("readAll did not return keys {missing:?}"),
                detail: json!({"missing": missing}),
            });
        }
        let ps = processes
            .entry(process)
            .or_insert_with(|| ProcessState::new(n));
        // 1. What the writers of everything read had seen or written. States only grow, so a
        //    snapshot this process merged before changes nothing and is skipped.
        for (&k, &v) in reads {
            let s = slot[&k];
            if v == MWW_NIL || ps.merged[s] == v {
                continue;
            }
            let Some(snap) = snapshots.get(&(k, v)) else {
                continue;
            };
            ps.merged[s] = v;
            for (i, &value) in snap.values.iter().enumerate() {
                if value > ps.expect[i].value {
                    ps.expect[i] = Expect {
                        value,
                        why: if snap.written[i] {
                            Why::MonotonicWrites
                        } else {
                            Why::WritesFollowReads
                        },
                        since: Some(snap.writer),
                    };
                }
            }
        }
        // 2. Check the reads, then remember them.
        for (&k, &v) in reads {
            let s = slot[&k];
            let expect = ps.expect[s];
            if v < MWW_NIL || (v != MWW_NIL && !possible.contains(&(k, v))) {
                found.push(Anomaly {
                    kind: "read-unwritten-value".into(),
                    ops: vec![op.index],
                    explanation: format!(
                        "process {process} read {v} from key {k}, a value no ok or info operation wrote"
                    ),
                    detail: json!({"process": process, "key": k, "read": v}),
                });
            } else if v < expect.value {
                let mut ops: Vec<u64> = expect.since.into_iter().collect();
                ops.push(op.index);
                found.push(Anomaly {
                    kind: expect.why.property().into(),
                    ops,
                    explanation: format!(
                        "process {process} read {v} from key {k}, but {} requires at least {}{}",
                        expect.why.property(),
                        expect.value,
                        expect
                            .since
                            .map(|i| format!(" (because of operation {i})"))
                            .unwrap_or_default()
                    ),
                    detail: json!({"process": process, "key": k, "read": v,
                                   "expected": expect.value, "because-of": expect.since}),
                });
            }
            // A process reading its own write still counts it as written (for monotonic
            // writes); any other read it made itself is what it must not go back on.
            if v > expect.value || (v == expect.value && expect.why != Why::ReadYourWrites) {
                ps.expect[s] = Expect {
                    value: v,
                    why: Why::MonotonicReads,
                    since: Some(op.index),
                };
            }
        }
        // 3. Writes: unique, above what this process has seen; then they are what it expects.
        for (&k, &v) in writes {
            let s = slot[&k];
            if let Some(first) = snapshots.get(&(k, v)) {
                found.push(Anomaly {
                    kind: "duplicate-writes".into(),
                    ops: vec![first.writer, op.index],
                    explanation: format!("{v} was written to key {k} twice"),
                    detail: json!({"key": k, "value": v}),
                });
            }
            let expect = ps.expect[s];
            if v <= expect.value {
                found.push(Anomaly {
                    kind: "write-below-observed".into(),
                    ops: vec![op.index],
                    explanation: format!(
                        "process {process} wrote {v} to key {k} after seeing {}",
                        expect.value
                    ),
                    detail: json!({"process": process, "key": k, "write": v, "seen": expect.value}),
                });
            }
        }
        for (&k, &v) in writes {
            let s = slot[&k];
            if v >= ps.expect[s].value {
                ps.expect[s] = Expect {
                    value: v,
                    why: Why::ReadYourWrites,
                    since: Some(op.index),
                };
            }
        }
        if !writes.is_empty() {
            let snap = Rc::new(Snapshot {
                writer: op.index,
                values: ps.expect.iter().map(|e| e.value).collect(),
                written: ps
                    .expect
                    .iter()
                    .map(|e| e.why == Why::ReadYourWrites)
                    .collect(),
            });
            for (&k, &v) in writes {
                snapshots.entry((k, v)).or_insert_with(|| Rc::clone(&snap));
            }
        }
    }
    Verdict::from_anomalies("causal-consistency", found)
}

#[cfg(test)]
mod tests;
