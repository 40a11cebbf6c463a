//! Strong convergence: after quiescence every node ends in the same state, PostgreSQL's, and
//! that state holds everything that was acknowledged.
//!
//! Final reads are the `ok` completions marked `final-read?`. They are grouped by node (the
//! operation's `node`, or `process N` when no node was recorded; then only processes that made
//! a final read are expected, since Jepsen gives crashed clients new process numbers).
//!
//! List-append ([`list_append`], the seed's `final-reads` checker plus acknowledged appends):
//! - `missing-final-reads`: a node has no final read of a key that some node, PostgreSQL or an
//!   acknowledged append knows;
//! - `divergent-final-reads`: nodes (and PostgreSQL) disagree on a key's final list;
//! - `lost-acknowledged-writes`: a final list lacks an element an `ok` operation appended;
//! - `read-unwritten-element`: a final list holds an element no `ok`/`info` operation appended.
//!
//! Max-write-wins ([`mww`], after jepsen-causal-consistency's `strong-convergence`):
//! - `missing-final-reads`: a node has no final read, or its final `readAll` lacks a key;
//! - `invalid-reads`: any `ok` read of a value no `ok`/`info` operation may have written;
//! - `non-monotonic-reads`: a process read a key's value decrease;
//! - `divergent-final-reads`: a final value differs from `max-observed` (the largest value
//!   written by an `ok` operation or read by any `ok` operation, if possibly written) or from
//!   PostgreSQL's;
//! - `lost-acknowledged-writes`: a final value is below a value an `ok` operation wrote.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::json;

use super::{Anomaly, Verdict};
use crate::history::{
    Element, History, Key, ListAppendMop, MWW_NIL, MwwMop, Op, OpType, Process, Value,
};

/// For one node: key → each distinct final list read → the indices of the reads.
type FinalLists = BTreeMap<Key, BTreeMap<Vec<Element>, Vec<u64>>>;

/// A node's final `readAll` (key → value) and the index of the read.
type FinalRead = (BTreeMap<Key, i64>, u64);

/// The name PostgreSQL's final state goes by among the nodes.
pub const POSTGRES: &str = "postgres";

/// The node an operation's final read speaks for.
fn node_of(op: &Op) -> String {
    match (&op.node, &op.process) {
        (Some(n), _) => n.clone(),
        (None, Process::Client(p)) => format!("process {p}"),
        (None, Process::Named(n)) => n.clone(),
    }
}

/// Nodes that ran client operations (only when nodes are recorded).
fn expected_nodes(history: &History) -> BTreeSet<String> {
    history
        .ops
        .iter()
        .filter(|op| op.client().is_some())
        .filter_map(|op| op.node.clone())
        .collect()
}

fn final_reads(history: &History) -> impl Iterator<Item = &Op> {
    history
        .ops
        .iter()
        .filter(|op| op.final_read && op.op_type == OpType::Ok && op.client().is_some())
}

/// Checks strong convergence of a list-append history. `postgres` is PostgreSQL's final state
/// (key → list; absent keys were never written), when it was read.
pub fn list_append(history: &History, postgres: Option<&BTreeMap<Key, Vec<Element>>>) -> Verdict {
    let mut acked: BTreeMap<Key, BTreeSet<Element>> = BTreeMap::new();
    let mut possible: HashSet<(Key, Element)> = HashSet::new();
    for op in history.completions() {
        let Value::ListAppend(mops) = &op.value else {
            continue;
        };
        for m in mops {
            if let ListAppendMop::Append { key, element } = *m {
                match op.op_type {
                    OpType::Ok => {
                        acked.entry(key).or_default().insert(element);
                        possible.insert((key, element));
                    }
                    OpType::Info => {
                        possible.insert((key, element));
                    }
                    _ => {}
                }
            }
        }
    }
    // node -> key -> distinct final lists read (with the op indices that read them).
    let mut finals: BTreeMap<String, FinalLists> = BTreeMap::new();
    for node in expected_nodes(history) {
        finals.entry(node).or_default();
    }
    for op in final_reads(history) {
        let Value::ListAppend(mops) = &op.value else {
            continue;
        };
        let node = finals.entry(node_of(op)).or_default();
        for m in mops {
            if let ListAppendMop::Read { key, list } = m {
                let list = list.clone().unwrap_or_default();
                node.entry(*key)
                    .or_default()
                    .entry(list)
                    .or_default()
                    .push(op.index);
            }
        }
    }
    if let Some(pg) = postgres {
        let node = finals.entry(POSTGRES.into()).or_default();
        for (k, list) in pg {
            node.entry(*k).or_default().insert(list.clone(), Vec::new());
        }
    }
    let mut keys: BTreeSet<Key> = acked.keys().copied().collect();
    for per_key in finals.values() {
        keys.extend(per_key.keys().copied());
    }

    let mut found = Vec::new();
    for k in keys {
        // Every node's lists for k; PostgreSQL's absent key means the empty list.
        let mut values: BTreeMap<Vec<Element>, BTreeSet<String>> = BTreeMap::new();
        let mut ops = Vec::new();
        for (node, per_key) in &finals {
            match per_key.get(&k) {
                Some(lists) => {
                    for (list, idx) in lists {
                        values.entry(list.clone()).or_default().insert(node.clone());
                        ops.extend(idx);
                    }
                }
                None if node == POSTGRES => {
                    values.entry(Vec::new()).or_default().insert(node.clone());
                }
                None => found.push(Anomaly {
                    kind: "missing-final-reads".into(),
                    ops: Vec::new(),
                    explanation: format!("node {node} has no final read of key {k}"),
                    detail: json!({"node": node, "key": k}),
                }),
            }
        }
        if values.len() > 1 {
            found.push(Anomaly {
                kind: "divergent-final-reads".into(),
                ops: ops.clone(),
                explanation: format!(
                    "key {k} has {} different final values across nodes",
                    values.len()
                ),
                detail: json!({"key": k, "values": values.iter().map(|(v, n)| json!({"value": v, "nodes": n})).collect::<Vec<_>>()}),
            });
        }
        for (list, nodes) in &values {
            let have: HashSet<Element> = list.iter().copied().collect();
            let missing: Vec<Element> = acked
                .get(&k)
                .into_iter()
                .flatten()
                .filter(|e| !have.contains(e))
                .copied()
                .collect();
            if !missing.is_empty() {
                found.push(Anomaly {
                    kind: "lost-acknowledged-writes".into(),
                    ops: ops.clone(),
                    explanation: format!(
                        "the final value of key {k} on {nodes:?} lacks acknowledged appends {missing:?}"
                    ),
                    detail: json!({"key": k, "nodes": nodes, "value": list, "missing": missing}),
                });
            }
            let unwritten: Vec<Element> = list
                .iter()
                .filter(|e| !possible.contains(&(k, **e)))
                .copied()
                .collect();
            if !unwritten.is_empty() {
                found.push(Anomaly {
                    kind: "read-unwritten-element".into(),
                    ops: ops.clone(),
                    explanation: format!(
                        "the final value of key {k} on {nodes:?} holds {unwritten:?}, which no ok or info operation appended"
                    ),
                    detail: json!({"key": k, "nodes": nodes, "value": list, "unwritten": unwritten}),
                });
            }
        }
    }
    Verdict::from_anomalies("strong-convergence", found)
}

/// Checks strong convergence of a max-write-wins history. `postgres` is PostgreSQL's final
/// state (key → value), when it was read.
pub fn mww(history: &History, postgres: Option<&BTreeMap<Key, i64>>) -> Verdict {
    let mut found = Vec::new();
    let mut possible: HashSet<(Key, i64)> = HashSet::new();
    let mut max_ok_write: BTreeMap<Key, (i64, u64)> = BTreeMap::new();
    for op in history.completions() {
        let Value::Mww(mops) = &op.value else {
            continue;
        };
        for m in mops {
            if let MwwMop::WriteSome(kv) = m {
                for (&k, &v) in kv {
                    if matches!(op.op_type, OpType::Ok | OpType::Info) {
                        possible.insert((k, v));
                    }
                    if op.op_type == OpType::Ok {
                        let e = max_ok_write.entry(k).or_insert((v, op.index));
                        if v > e.0 {
                            *e = (v, op.index);
                        }
                    }
                }
            }
        }
    }
    let mut max_observed: BTreeMap<Key, i64> =
        max_ok_write.iter().map(|(k, (v, _))| (*k, *v)).collect();
    let mut last_read: BTreeMap<(u64, Key), (i64, u64)> = BTreeMap::new();
    let mut finals: BTreeMap<String, Option<FinalRead>> = expected_nodes(history)
        .into_iter()
        .map(|n| (n, None))
        .collect();
    for op in history.completions().filter(|op| op.op_type == OpType::Ok) {
        let (Value::Mww(mops), Some(p)) = (&op.value, op.client()) else {
            continue;
        };
        for m in mops {
            let MwwMop::ReadAll(kv) = m else { continue };
            for (&k, &v) in kv {
                if v != MWW_NIL && !possible.contains(&(k, v)) {
                    found.push(Anomaly {
                        kind: "invalid-reads".into(),
                        ops: vec![op.index],
                        explanation: format!(
                            "read {v} of key {k}, which no ok or info operation wrote"
                        ),
                        detail: json!({"key": k, "value": v}),
                    });
                } else {
                    let m = max_observed.entry(k).or_insert(v);
                    *m = (*m).max(v);
                }
                if let Some((prev, at)) = last_read.insert((p, k), (v, op.index))
                    && v < prev
                {
                    found.push(Anomaly {
                        kind: "non-monotonic-reads".into(),
                        ops: vec![at, op.index],
                        explanation: format!("process {p} read key {k} as {prev}, then as {v}"),
                        detail: json!({"process": p, "key": k, "values": [prev, v]}),
                    });
                }
            }
            if op.final_read {
                finals.insert(node_of(op), Some((kv.clone(), op.index)));
            }
        }
    }
    let mut keys: BTreeSet<Key> = max_observed.keys().copied().collect();
    for (kv, _) in finals.values().flatten() {
        keys.extend(kv.keys().copied());
    }
    if let Some(pg) = postgres {
        keys.extend(pg.keys().copied());
    }
    for (node, fin) in &finals {
        if fin.is_none() {
            found.push(Anomaly {
                kind: "missing-final-reads".into(),
                ops: Vec::new(),
                explanation: format!("node {node} made no ok final read"),
                detail: json!({"node": node}),
            });
        }
    }
    for &k in &keys {
        let expected = max_observed.get(&k).copied().unwrap_or(MWW_NIL);
        let mut values: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        values
            .entry(expected)
            .or_default()
            .insert("max-observed".into());
        let mut ops = Vec::new();
        for (node, (kv, index)) in finals.iter().filter_map(|(n, f)| Some((n, f.as_ref()?))) {
            match kv.get(&k) {
                Some(&v) => {
                    values.entry(v).or_default().insert(node.clone());
                    ops.push(*index);
                }
                None => found.push(Anomaly {
                    kind: "missing-final-reads".into(),
                    ops: vec![*index],
                    explanation: format!("node {node}'s final read lacks key {k}"),
                    detail: json!({"node": node, "key": k}),
                }),
            }
        }
        if let Some(pg) = postgres {
            let v = pg.get(&k).copied().unwrap_or(MWW_NIL);
            values.entry(v).or_default().insert(POSTGRES.into());
        }
        if values.len() > 1 {
            found.push(Anomaly {
                kind: "divergent-final-reads".into(),
                ops: ops.clone(),
                explanation: format!(
                    "key {k} ends with different values: {}",
                    values
                        .iter()
                        .map(|(v, n)| format!("{v} on {}", n.iter().cloned().collect::<Vec<_>>().join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                detail: json!({"key": k, "values": values.iter().map(|(v, n)| json!({"value": v, "nodes": n})).collect::<Vec<_>>()}),
            });
        }
        if let Some(&(w, windex)) = max_ok_write.get(&k) {
            let lost: BTreeSet<&String> = values
                .iter()
                .filter(|(v, _)| **v < w)
                .flat_map(|(_, n)| n)
                .collect();
            if !lost.is_empty() {
                found.push(Anomaly {
                    kind: "lost-acknowledged-writes".into(),
                    ops: vec![windex],
                    explanation: format!(
                        "an ok operation wrote {w} to key {k}, but {lost:?} ended below it"
                    ),
                    detail: json!({"key": k, "write": w, "nodes": lost}),
                });
            }
        }
    }
    Verdict::from_anomalies("strong-convergence", found)
}

#[cfg(test)]
mod tests;
