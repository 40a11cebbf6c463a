//! List-append isolation checking at a chosen consistency model (Elle's list-append checker).
//!
//! The analysis is delegated to the `adya` crate (a Rust implementation of Elle's list-append
//! checker): the harness's [`History`] is translated into adya's history, checked for the
//! requested model, and adya's report becomes a [`Verdict`].
//!
//! Differences from adya's own file readers, on purpose:
//! - every client operation whose value is a list-append transaction is checked, whatever its
//!   `f`: adya's readers keep only `f = txn`, which would drop the seed's `r-final` reads;
//! - model names also accept Elle's `PL-*` names and `strong-session-PL-1`/`-PL-2`.
//!
//! Where adya was found wrong or incomplete (see the tests in `list_append/tests.rs`), the
//! harness works around it here:
//! - **unique appends**: adya checks that each `(key, element)` is appended once only on
//!   invocations, so a file of completions alone with a duplicated append was judged valid.
//!   The harness checks completions itself and answers `unknown` with `duplicate-appends`, as
//!   Elle does;
//! - **unfinished invocations**: an invocation with no completion (a client still waiting when
//!   the history ended) was dropped by adya, so its writes, if observed, had no writer and the
//!   graph lost edges. Jepsen records such operations as `info`; the harness appends an `info`
//!   completion (same value, reads unknown) for each before checking;
//! - **edges with several relations**: adya types an edge by its strongest relation only, so a
//!   G0/G1c cycle needing an edge that is both rw and process (or real-time) order is reported
//!   only as `strong-session-PL-2-cycle-exists` (still invalid) with no cycle. `cycles` finds
//!   and explains the concrete `G1c-process` / `G0-process` / `-realtime` cycle, as Elle does.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use adya::history as ah;

use super::{Anomaly, Validity, Verdict};
use crate::error::{Error, Result};
use crate::history::{History, ListAppendMop, Op, OpType, Process, Value};

/// Options for a list-append check.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The consistency model the history must satisfy (Elle's names).
    pub model: String,
    /// Anomalies to treat as failures besides those the model proscribes (Elle's
    /// `:anomalies`), e.g. `G-single-item` next to `strong-session-PL-2`, as the seed's causal
    /// checker did. Elle's `monotonic-atomic-view`, like Elle's, proscribes only what
    /// read-committed does, so a fractured read (`G-single-item`) needs this or a stronger model.
    pub anomalies: Vec<String>,
    /// Budget for the cycle search in each strongly connected component (Elle: 1 s).
    pub cycle_search_timeout: Duration,
}

/// The anomaly types the list-append checker detects (and accepts in [`Opts::anomalies`]).
pub const ANOMALY_TYPES: &[&str] = &[
    "G0",
    "G1",
    "G1a",
    "G1b",
    "G1c",
    "G-single",
    "G-single-item",
    "G-nonadjacent",
    "G-nonadjacent-item",
    "G2",
    "G2-item",
    "internal",
    "future-read",
    "incompatible-order",
    "duplicate-elements",
    "dirty-update",
    "lost-update",
];

/// Whether `name` is a detected anomaly type, possibly with a `-process` / `-realtime` suffix.
fn known_anomaly(name: &str) -> bool {
    let base = name
        .strip_suffix("-process")
        .or_else(|| name.strip_suffix("-realtime"))
        .filter(|b| b.starts_with('G'))
        .unwrap_or(name);
    ANOMALY_TYPES.contains(&base)
}

impl Opts {
    /// Options for `model` with the default cycle-search budget.
    pub fn new(model: &str) -> Opts {
        Opts {
            model: model.to_owned(),
            anomalies: Vec::new(),
            cycle_search_timeout: Duration::from_secs(1),
        }
    }
}

/// Elle's model name for `name`, accepting the aliases the harness's users write.
pub fn canonical_model(name: &str) -> Result<&'static str> {
    let name = match name {
        "strong-session-PL-1" => "strong-session-read-uncommitted",
        "strong-session-PL-2" => "strong-session-read-committed",
        "strong-PL-1" => "strong-read-uncommitted",
        "strong-PL-2" => "strong-read-committed",
        other => other,
    };
    adya::model::canonical(name).ok_or_else(|| Error::UnknownModel(name.to_owned()))
}

/// Checks a list-append history against `model` with default options.
pub fn check(history: &History, model: &str) -> Result<Verdict> {
    check_with(history, &Opts::new(model))
}

/// Checks that `opts` names a known model and known anomalies (what [`check_with`] would
/// refuse), so that a run can refuse them before it starts.
pub fn validate(opts: &Opts) -> Result<&'static str> {
    let model = canonical_model(&opts.model)?;
    if let Some(bad) = opts.anomalies.iter().find(|a| !known_anomaly(a)) {
        return Err(Error::UnknownAnomaly(bad.clone()));
    }
    Ok(model)
}

/// Checks a list-append history with the given options.
pub fn check_with(history: &History, opts: &Opts) -> Result<Verdict> {
    let model = validate(opts)?;
    let unfinished = unfinished_invocations(history);
    if let Some(mut dup) = duplicate_append(history, &unfinished) {
        dup.model = Some(model.to_owned());
        return Ok(dup);
    }
    let h = to_adya(history, &unfinished)?;
    let adya_opts = adya::Opts {
        models: vec![model.to_owned()],
        anomalies: opts.anomalies.clone(),
        timeout: opts.cycle_search_timeout,
        ..adya::Opts::default()
    };
    let report = adya::check(&h, adya::Workload::ListAppend, &adya_opts);
    let mut verdict = from_report(report);
    verdict.model = Some(model.to_owned());
    make_cycles_concrete(&h, &mut verdict, opts.cycle_search_timeout);
    Ok(verdict)
}

/// Replaces the cycle-exists anomalies [`cycles`] handles with concrete cycles.
fn make_cycles_concrete(h: &ah::History, verdict: &mut Verdict, budget: Duration) {
    let kinds: Vec<String> = verdict
        .anomaly_types
        .iter()
        .filter(|k| cycles::handles(k))
        .cloned()
        .collect();
    if kinds.is_empty() {
        return;
    }
    let deps = cycles::Dependencies::new(h);
    for kind in kinds {
        let Some(scc) = verdict.anomalies.get(&kind).and_then(|v| v.first()) else {
            continue;
        };
        if let Some(a) = deps.concrete(&kind, &scc.ops, budget) {
            verdict.anomalies.remove(&kind);
            verdict.anomalies.entry(a.kind.clone()).or_default().push(a);
        }
    }
    verdict.anomaly_types = verdict.anomalies.keys().cloned().collect();
    let types: Vec<&str> = verdict.anomaly_types.iter().map(String::as_str).collect();
    let (not, also_not) = adya::model::boundary(&types);
    verdict.not = not.into_iter().collect();
    verdict.also_not = also_not.into_iter().collect();
}

/// Positions of client invocations that have no completion.
fn unfinished_invocations(history: &History) -> Vec<usize> {
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if let Some(p) = op.client() {
            if op.op_type == OpType::Invoke {
                pending.insert(p, i);
            } else {
                pending.remove(&p);
            }
        }
    }
    let mut unfinished: Vec<usize> = pending.into_values().collect();
    unfinished.sort_unstable();
    unfinished
}

/// Elle's precondition: every `(key, element)` appended by at most one transaction. Checked on
/// completions and on invocations that never completed.
fn duplicate_append(history: &History, unfinished: &[usize]) -> Option<Verdict> {
    let mut seen: HashMap<(i64, i64), u64> = HashMap::new();
    let completions = history.completions();
    for op in completions.chain(unfinished.iter().map(|&i| &history.ops[i])) {
        let Value::ListAppend(mops) = &op.value else {
            continue;
        };
        let mut own = HashSet::new();
        for m in mops {
            let ListAppendMop::Append { key, element } = *m else {
                continue;
            };
            let first = *seen.entry((key, element)).or_insert(op.index);
            if first != op.index || !own.insert((key, element)) {
                let a = Anomaly {
                    kind: "duplicate-appends".into(),
                    ops: vec![first, op.index],
                    explanation: format!(
                        "element {element} was appended to key {key} more than once, so reads \
                         cannot tell the appends apart and the history cannot be analysed"
                    ),
                    detail: serde_json::json!({"key": key, "element": element}),
                };
                let mut v = Verdict::from_anomalies("list-append", vec![a]);
                v.valid = Validity::Unknown;
                return Some(v);
            }
        }
    }
    None
}

/// Translates the list-append client operations of a history into adya's history, with an
/// `info` completion at the end for each unfinished invocation.
fn to_adya(history: &History, unfinished: &[usize]) -> Result<ah::History> {
    let mut interner = ah::Interner::default();
    let mut ops = Vec::with_capacity(history.ops.len() + unfinished.len());
    let first_free = history.ops.iter().map(|o| o.index + 1).max().unwrap_or(0);
    let end = history.ops.last().map_or(0, |o| o.time);
    let synthetic: Vec<Op> = unfinished
        .iter()
        .zip(first_free..)
        .map(|(&i, index)| {
            let mut op = history.ops[i].clone();
            op.op_type = OpType::Info;
            op.index = index;
            op.time = end;
            op
        })
        .collect();
    for op in history.ops.iter().chain(&synthetic) {
        let Process::Client(process) = op.process else {
            continue;
        };
        let mops = match &op.value {
            Value::ListAppend(mops) => mops,
            Value::None | Value::Nodes(_) => continue,
            Value::Mww(_) => {
                return Err(Error::WrongWorkload {
                    index: op.index,
                    expected: "list-append",
                });
            }
        };
        let mut int = |x: i64| interner.intern(ah::Scalar::Int(x));
        let value = mops
            .iter()
            .map(|m| match m {
                ListAppendMop::Append { key, element } => ah::Mop::Append {
                    key: int(*key),
                    value: int(*element),
                },
                ListAppendMop::Read { key, list } => ah::Mop::Read {
                    key: int(*key),
                    value: match list {
                        None => ah::ReadValue::Nil,
                        Some(xs) => ah::ReadValue::List(xs.iter().map(|x| int(*x)).collect()),
                    },
                },
            })
            .collect();
        ops.push(ah::Op {
            index: op.index,
            kind: match op.op_type {
                OpType::Invoke => ah::OpType::Invoke,
                OpType::Ok => ah::OpType::Ok,
                OpType::Fail => ah::OpType::Fail,
                OpType::Info => ah::OpType::Info,
            },
            process: i64::try_from(process).ok(),
            value,
            time: Some(op.time),
        });
    }
    Ok(ah::History::from_ops(ops, interner))
}

fn from_report(report: adya::Report) -> Verdict {
    Verdict {
        checker: "list-append".into(),
        valid: match report.valid {
            adya::Valid::True => Validity::Valid,
            adya::Valid::False => Validity::Invalid,
            adya::Valid::Unknown => Validity::Unknown,
        },
        anomaly_types: report.anomaly_types,
        anomalies: report
            .anomalies
            .into_iter()
            .map(|(k, v)| {
                let v = v
                    .into_iter()
                    .map(|a| Anomaly {
                        kind: a.kind,
                        ops: a.ops,
                        explanation: a.explanation,
                        detail: a.detail,
                    })
                    .collect();
                (k, v)
            })
            .collect(),
        not: report.not,
        also_not: report.also_not,
        model: None,
    }
}

mod cycles;

#[cfg(test)]
mod tests;
