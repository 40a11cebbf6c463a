//! Causal consistency of last-write-wins list-append histories: the seed's
//! `causal.checker.adya` (jepsen-causal-consistency, generation 1), which jepsen-powersync at
//! `470f1ac` ran on its `powersync`, `ps-ro-pg-wo` and `ps-wo-pg-ro` workloads besides Elle.
//!
//! Elle's list-append checker orders each key's versions by its longest read, which assumes one
//! total order per key. Under causal consistency with last-write-wins merges there is none, so
//! this checker builds a **causal version order** instead (module `versions`): from each process's
//! view (the initial state before its first observation, read prefixes, monotonic writes,
//! writes-follow-reads). It then builds Adya's dependency graph over the `ok` transactions
//! from that order, with process order and with anti-dependencies inferred one process at a
//! time (module `txns`), and looks for the cycles the seed's options proscribe.
//!
//! Reported, as by the seed's options (`strong-session-PL-2` and the anomalies in
//! [`SEED_ANOMALIES`], expanded by Elle's implications):
//! - `G0`, `G1c`, `G0-process`, `G1c-process`: cycles of ww / wr (and process) edges;
//! - `G-single-item`, `G-single-item-process`: cycles with one rw edge. Read-your-writes,
//!   monotonic-writes, monotonic-reads and writes-follow-reads violations show up as these;
//! - `cyclic-versions`: versions the sources (monotonic reads included) order in a cycle, or
//!   one transaction's two appends in the opposite order;
//! - `G1a` (a read ending in a failed append), `G1b` (a read ending in another transaction's
//!   intermediate append), `internal` and `future-read` (Elle's checks inside a transaction);
//! - `unknown`: `cycle-search-timeout`, or `duplicate-appends` (the seed's checker stopped with
//!   an error on those).
//!
//! The seed's list also names `G-single`, `G-single-process`, `G1-process`, `G-cursor`,
//! `G-monotonic` and `cyclic-transactions`: nothing produces them for list-append (`G-single`
//! without `-item` needs predicate reads; `G1-process` is what `G1`/`G1c-process` imply; Elle
//! computes neither `G-cursor`, `G-monotonic` nor `cyclic-transactions`), so a history is judged
//! on the types above. Only `ok` operations are analysed (the seed's too: info operations'
//! effects are unknown), except that G1a uses the `fail` ones.
//!
//! Differences from the seed's code, on purpose: a nil read and an empty read are the same
//! state for `internal`; a cycle of any type is searched on the edges as explained (Elle
//! searches on every relation of an edge, then drops a cycle whose explanation has another
//! type, which can miss one); `cyclic-versions` also keeps the in-transaction order conflicts
//! when the version graph has cycles (the seed kept only the latter).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use super::{Anomaly, Validity, Verdict};
use crate::error::{Error, Result};
use crate::history::{Element, History, Key, ListAppendMop, Op, OpType, Value};

mod txns;
mod versions;

/// The checker's name in verdicts.
pub const CHECKER: &str = "causal-adya";

/// The consistency model of the seed's options (`causal.checker.opts/causal-opts`).
pub const SEED_MODEL: &str = "strong-session-PL-2";

/// The anomalies the seed's options name besides the model's.
pub const SEED_ANOMALIES: &[&str] = &[
    "G-cursor",
    "G-monotonic",
    "G-single",
    "G-single-item",
    "G-single-item-process",
    "G-single-process",
    "G1-process",
    "internal",
    "cyclic-transactions",
];

/// Anomalies that make the verdict unknown rather than invalid.
const UNKNOWN: &[&str] = &["cycle-search-timeout", "duplicate-appends"];

/// Options for the check.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Budget for the cycle search in each strongly connected component (the seed: 10 s).
    pub cycle_search_timeout: Duration,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            cycle_search_timeout: Duration::from_secs(10),
        }
    }
}

/// An `ok` list-append transaction.
struct Txn<'h> {
    op: &'h Op,
    process: u64,
    mops: &'h [ListAppendMop],
}

/// Checks a list-append history with the seed's options.
pub fn check(history: &History) -> Result<Verdict> {
    check_with(history, &Opts::default())
}

/// Checks a list-append history.
pub fn check_with(history: &History, opts: &Opts) -> Result<Verdict> {
    let mut txns = Vec::new();
    let mut failed: HashMap<(Key, Element), u64> = HashMap::new();
    for op in history.completions() {
        let (Some(process), Value::ListAppend(mops)) = (op.client(), &op.value) else {
            if let Value::Mww(_) = op.value {
                return Err(Error::WrongWorkload {
                    index: op.index,
                    expected: "list-append",
                });
            }
            continue;
        };
        match op.op_type {
            OpType::Ok => txns.push(Txn { op, process, mops }),
            OpType::Fail => {
                for (k, v) in appends(mops) {
                    failed.insert((k, v), op.index);
                }
            }
            _ => {}
        }
    }
    let writer = match writers(&txns) {
        Ok(w) => w,
        Err(dup) => return Ok(verdict(vec![dup])),
    };
    let mut found = Vec::new();
    for t in &txns {
        found.extend(internal(t));
        found.extend(future_read(t));
    }
    found.extend(aborted_reads(&txns, &failed));
    found.extend(intermediate_reads(&txns));
    let (causal, observed) = versions::orders(&txns);
    for c in &observed.cyclic {
        found.push(cyclic_versions(c, &writer, &txns));
    }
    let deps = txns::Dependencies::new(&txns, &writer, &causal);
    found.extend(deps.cyclic_in_txn.iter().cloned());
    found.extend(deps.cycles(opts.cycle_search_timeout));
    Ok(verdict(found))
}

/// The anomaly types the seed's options make a failure.
pub fn proscribed() -> BTreeSet<String> {
    let mut out = ::adya::model::implying(SEED_ANOMALIES);
    // strong-session-PL-2 is Elle's strong-session-read-committed.
    out.extend(::adya::model::prohibited_by(&[
        "strong-session-read-committed",
    ]));
    out
}

/// The verdict on the anomalies found: proscribed ones make it invalid, unknown ones unknown;
/// the seed's result map reports no others.
fn verdict(found: Vec<Anomaly>) -> Verdict {
    let proscribed = proscribed();
    let found: Vec<Anomaly> = found
        .into_iter()
        .filter(|a| proscribed.contains(&a.kind) || UNKNOWN.contains(&a.kind.as_str()))
        .collect();
    let mut v = Verdict::from_anomalies(CHECKER, found);
    if !v.anomaly_types.is_empty()
        && v.anomaly_types
            .iter()
            .all(|k| UNKNOWN.contains(&k.as_str()))
    {
        v.valid = Validity::Unknown;
    }
    let types: Vec<&str> = v.anomaly_types.iter().map(String::as_str).collect();
    let (not, also_not) = ::adya::model::boundary(&types);
    v.not = not.into_iter().collect();
    v.also_not = also_not.into_iter().collect();
    v.model = Some(SEED_MODEL.to_owned());
    v
}

fn appends(mops: &[ListAppendMop]) -> impl Iterator<Item = (Key, Element)> + '_ {
    mops.iter().filter_map(|m| match *m {
        ListAppendMop::Append { key, element } => Some((key, element)),
        ListAppendMop::Read { .. } => None,
    })
}

/// Reads with their key and list, as read (`None`: nil).
fn reads(mops: &[ListAppendMop]) -> impl Iterator<Item = (usize, Key, &Option<Vec<Element>>)> {
    mops.iter().enumerate().filter_map(|(i, m)| match m {
        ListAppendMop::Read { key, list } => Some((i, *key, list)),
        ListAppendMop::Append { .. } => None,
    })
}

/// The transaction (position in `txns`) that appended each version, or a `duplicate-appends`
/// anomaly.
fn writers(txns: &[Txn<'_>]) -> Result<HashMap<(Key, Element), u32>, Anomaly> {
    let mut writer = HashMap::new();
    for (i, t) in txns.iter().enumerate() {
        for (k, v) in appends(t.mops) {
            if let Some(first) = writer.insert((k, v), i as u32) {
                return Err(Anomaly {
                    kind: "duplicate-appends".into(),
                    ops: vec![txns[first as usize].op.index, t.op.index],
                    explanation: format!(
                        "element {v} was appended to key {k} more than once, so reads cannot \
                         tell the appends apart"
                    ),
                    detail: json!({"key": k, "element": v}),
                });
            }
        }
    }
    Ok(writer)
}

fn mop_text(m: &ListAppendMop) -> String {
    match m {
        ListAppendMop::Append { key, element } => format!("[append {key} {element}]"),
        ListAppendMop::Read { key, list: None } => format!("[r {key} nil]"),
        ListAppendMop::Read {
            key,
            list: Some(xs),
        } => format!("[r {key} {xs:?}]"),
    }
}

/// What a transaction should read of a key after its own reads and appends.
#[derive(Clone)]
enum Expect {
    /// Exactly this list.
    Known(Vec<Element>),
    /// A list ending with these elements.
    Suffix(Vec<Element>),
}

/// Elle's `internal`: a read that disagrees with the transaction's own earlier read or
/// appends of the key.
fn internal(t: &Txn<'_>) -> Option<Anomaly> {
    let mut expect: HashMap<Key, Expect> = HashMap::new();
    for m in t.mops {
        match m {
            ListAppendMop::Append { key, element } => {
                let e = match expect.remove(key) {
                    Some(Expect::Known(mut xs)) => {
                        xs.push(*element);
                        Expect::Known(xs)
                    }
                    Some(Expect::Suffix(mut xs)) => {
                        xs.push(*element);
                        Expect::Suffix(xs)
                    }
                    None => Expect::Suffix(vec![*element]),
                };
                expect.insert(*key, e);
            }
            ListAppendMop::Read { key, list } => {
                let got = list.as_deref().unwrap_or_default();
                let ok = match expect.get(key) {
                    None => true,
                    Some(Expect::Known(xs)) => xs == got,
                    Some(Expect::Suffix(xs)) => got.ends_with(xs),
                };
                if !ok {
                    let expected = match &expect[key] {
                        Expect::Known(xs) => format!("{xs:?}"),
                        Expect::Suffix(xs) => format!("[... {xs:?}]"),
                    };
                    return Some(Anomaly {
                        kind: "internal".into(),
                        ops: vec![t.op.index],
                        explanation: format!(
                            "T{} read {} but its own earlier micro-ops imply {expected}",
                            t.op.index,
                            mop_text(m)
                        ),
                        detail: json!({"mop": mop_text(m), "expected": expected}),
                    });
                }
                expect.insert(*key, Expect::Known(got.to_vec()));
            }
        }
    }
    None
}

/// Elle's `future-read`: a transaction reads an element it appends later.
fn future_read(t: &Txn<'_>) -> Option<Anomaly> {
    let mut seen: HashSet<(Key, Element)> = HashSet::new();
    for m in t.mops {
        match m {
            ListAppendMop::Read {
                key,
                list: Some(xs),
            } => {
                seen.extend(xs.iter().map(|x| (*key, *x)));
            }
            ListAppendMop::Read { .. } => {}
            ListAppendMop::Append { key, element } => {
                if seen.contains(&(*key, *element)) {
                    return Some(Anomaly {
                        kind: "future-read".into(),
                        ops: vec![t.op.index],
                        explanation: format!(
                            "T{} read element {element} of key {key} before appending it",
                            t.op.index
                        ),
                        detail: json!({"key": key, "element": element}),
                    });
                }
            }
        }
    }
    None
}

/// G1a: an `ok` read whose last element was appended by a failed transaction.
fn aborted_reads(txns: &[Txn<'_>], failed: &HashMap<(Key, Element), u64>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for t in txns {
        for (i, k, list) in reads(t.mops) {
            let Some(&last) = list.as_ref().and_then(|l| l.last()) else {
                continue;
            };
            if let Some(&w) = failed.get(&(k, last)) {
                out.push(Anomaly {
                    kind: "G1a".into(),
                    ops: vec![w, t.op.index],
                    explanation: format!(
                        "T{} read {}, whose last element was appended by the failed T{w}",
                        t.op.index,
                        mop_text(&t.mops[i])
                    ),
                    detail: json!({"key": k, "element": last, "writer": w}),
                });
            }
        }
    }
    out
}

/// G1b: an `ok` read whose last element is another transaction's intermediate append (one
/// followed by another append to the same key in that transaction).
fn intermediate_reads(txns: &[Txn<'_>]) -> Vec<Anomaly> {
    let mut intermediate: HashMap<(Key, Element), (usize, Element)> = HashMap::new();
    for (i, t) in txns.iter().enumerate() {
        let mut last: HashMap<Key, Element> = HashMap::new();
        for (k, v) in appends(t.mops) {
            if let Some(prev) = last.insert(k, v) {
                intermediate.insert((k, prev), (i, v));
            }
        }
        // Point each intermediate append at the transaction's final one.
        for (k, v) in appends(t.mops) {
            if let Some(e) = intermediate.get_mut(&(k, v)) {
                e.1 = last[&k];
            }
        }
    }
    let mut out = Vec::new();
    for (ri, t) in txns.iter().enumerate() {
        for (i, k, list) in reads(t.mops) {
            let Some(&last) = list.as_ref().and_then(|l| l.last()) else {
                continue;
            };
            match intermediate.get(&(k, last)) {
                Some(&(wi, final_v)) if wi != ri => {
                    let w = txns[wi].op.index;
                    out.push(Anomaly {
                        kind: "G1b".into(),
                        ops: vec![w, t.op.index],
                        explanation: format!(
                            "T{} read {}, which ends in T{w}'s intermediate append of {last} \
                             (its final append to key {k} is {final_v})",
                            t.op.index,
                            mop_text(&t.mops[i])
                        ),
                        detail: json!({"key": k, "element": last, "final": final_v,
                                       "writer": w}),
                    });
                }
                _ => {}
            }
        }
    }
    out
}

fn cyclic_versions(
    c: &versions::CyclicVersions,
    writer: &HashMap<(Key, Element), u32>,
    txns: &[Txn<'_>],
) -> Anomaly {
    let mut ops: Vec<u64> = c
        .sccs
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.and_then(|v| writer.get(&(*k, v))))
        .map(|&w| txns[w as usize].op.index)
        .collect();
    ops.sort_unstable();
    ops.dedup();
    let text = |scc: &Vec<versions::Version>| {
        let vs: Vec<String> = scc
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("[{k} {v}]"),
                None => format!("[{k} nil]"),
            })
            .collect();
        vs.join(" ")
    };
    let cycles: Vec<String> = c.sccs.iter().map(text).collect();
    Anomaly {
        kind: "cyclic-versions".into(),
        ops,
        explanation: format!(
            "the version order from {} is cyclic: {}",
            c.sources.join(", "),
            cycles.join("; ")
        ),
        detail: json!({"sources": c.sources, "sccs": c.sccs}),
    }
}

#[cfg(test)]
mod tests;
