//! List-append isolation checking at a chosen consistency model (Elle's list-append checker).
//!
//! The analysis is delegated to the `adya` crate (a Rust implementation of Elle's list-append
//! checker): the harness's [`History`] is translated into adya's history, checked for the
//! requested model, and adya's report becomes a [`Verdict`]. [`check_file`] does the same for
//! a stored history, translating each operation as it is read, so that a large file is never
//! held twice (as a [`History`] and as adya's history).
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
//!
//! Before adya runs, a proof (`list_append/proof.rs`) tries to show quickly that the history
//! has no anomaly at all (what a healthy run records); when it can, the verdict is `valid`
//! without adya's analysis, which takes most of the time on a big history. It declines on
//! anything else, and adya decides. [`Opts::full_analysis`] skips the proof.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use adya::history as ah;

use super::{Anomaly, Validity, Verdict};
use crate::error::{Error, Result};
use crate::history::reader::for_each_op_in_file;
use crate::history::{Element, History, Key, ListAppendMop, Op, OpType, Process, Value};

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
    /// Run adya's analysis even when the fast proof of validity succeeds (the verdict is the
    /// same; for benchmarks and cross-checks).
    pub full_analysis: bool,
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
            full_analysis: false,
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
    let mut adya = Translation::default();
    history.ops.iter().for_each(|op| adya.push(op));
    adya.check(model, opts)
}

/// Checks a list-append history file with the given options, streaming: each operation is
/// translated into adya's history as it is read and then dropped, so the file's [`History`]
/// is never held. The verdict is that of [`History::read_file`] then [`check_with`]; the
/// options are validated before the file is read. Decoding runs on a thread of its own, beside
/// the translation.
pub fn check_file(path: &Path, opts: &Opts) -> Result<Verdict> {
    const BATCH: usize = 1024;
    let model = validate(opts)?;
    let mut adya = Translation::default();
    std::thread::scope(|scope| {
        let (decoded, batches) = std::sync::mpsc::sync_channel::<Vec<Op>>(16);
        let reader = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let read = for_each_op_in_file(path, |op| {
                batch.push(op);
                if batch.len() == BATCH {
                    // The receiver only hangs up when it panicked, which the join reports.
                    let _ = decoded.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
                Ok(())
            });
            let _ = decoded.send(batch);
            read
        });
        for batch in batches {
            batch.iter().for_each(|op| adya.push(op));
        }
        match reader.join() {
            Ok(read) => read.map(drop),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    adya.check(model, opts)
}

/// The list-append client operations of a history translated into adya's history, one
/// operation at a time, with what adya would get wrong found on the way: the invocations
/// that have no completion (so far) and the first duplicated append.
#[derive(Default)]
struct Translation {
    interner: ah::Interner,
    ops: Vec<ah::Op>,
    /// Each key's id and the longest list read of it so far, with its elements' ids.
    keys: HashMap<Key, KeyIds>,
    /// Each client process's invocation that has no completion yet.
    pending: HashMap<u64, Pending>,
    /// Operations seen.
    position: usize,
    /// One more than the largest `index` seen.
    first_free: u64,
    /// The last operation's time.
    end: i64,
    /// The completion that first appended each `(key, element)`, by `index`.
    appended: HashMap<(Key, Element), u64>,
    duplicate: Option<Verdict>,
    /// The first operation of another workload.
    wrong_workload: Option<Error>,
}

/// A key's adya id, and the longest list read of it so far with its elements' adya ids: the
/// reads of a key are almost always prefixes of each other, so most reads take their ids from
/// here instead of interning each element again.
struct KeyIds {
    id: ah::Id,
    list: Vec<Element>,
    ids: Vec<ah::Id>,
}

/// A client invocation without a completion (yet).
struct Pending {
    position: usize,
    index: u64,
    /// Its appends, if its value is a list-append transaction.
    appends: Option<Vec<(Key, Element)>>,
    /// Its position in the translated operations, if it was translated.
    translated: Option<usize>,
}

impl Translation {
    /// Takes the next operation of the history.
    fn push(&mut self, op: &Op) {
        self.first_free = self.first_free.max(op.index.saturating_add(1));
        self.end = op.time;
        let position = self.position;
        self.position += 1;
        let Process::Client(process) = op.process else {
            return;
        };
        let mops = match &op.value {
            Value::ListAppend(mops) => Some(mops),
            Value::None | Value::Nodes(_) => None,
            Value::Mww(_) => {
                self.wrong_workload.get_or_insert(Error::WrongWorkload {
                    index: op.index,
                    expected: "list-append",
                });
                None
            }
        };
        if op.op_type != OpType::Invoke
            && let Some(mops) = mops
        {
            self.check_unique(op.index, appends(mops));
        }
        let translated = match mops {
            Some(mops) if self.wrong_workload.is_none() => {
                let value = mops.iter().map(|m| self.mop(m)).collect();
                self.ops.push(ah::Op {
                    index: op.index,
                    kind: adya_type(op.op_type),
                    process: i64::try_from(process).ok(),
                    value,
                    time: Some(op.time),
                });
                Some(self.ops.len() - 1)
            }
            _ => None,
        };
        if op.op_type == OpType::Invoke {
            let pending = Pending {
                position,
                index: op.index,
                appends: mops.map(|m| appends(m).collect()),
                translated,
            };
            self.pending.insert(process, pending);
        } else {
            self.pending.remove(&process);
        }
    }

    /// Elle's precondition: every `(key, element)` appended by at most one transaction.
    /// Records the first violation as a `duplicate-appends` verdict.
    fn check_unique(&mut self, index: u64, appends: impl Iterator<Item = (Key, Element)>) {
        if self.duplicate.is_some() {
            return;
        }
        let mut own = HashSet::new();
        for (key, element) in appends {
            let first = *self.appended.entry((key, element)).or_insert(index);
            if first != index || !own.insert((key, element)) {
                let a = Anomaly {
                    kind: "duplicate-appends".into(),
                    ops: vec![first, index],
                    explanation: format!(
                        "element {element} was appended to key {key} more than once, so reads \
                         cannot tell the appends apart and the history cannot be analysed"
                    ),
                    detail: serde_json::json!({"key": key, "element": element}),
                };
                let mut v = Verdict::from_anomalies("list-append", vec![a]);
                v.valid = Validity::Unknown;
                self.duplicate = Some(v);
                return;
            }
        }
    }

    /// Translates a micro-op, interning keys and elements in the order they appear.
    fn mop(&mut self, m: &ListAppendMop) -> ah::Mop {
        let interner = &mut self.interner;
        let key = m.key();
        let k = self.keys.entry(key).or_insert_with(|| KeyIds {
            id: interner.intern(ah::Scalar::Int(key)),
            list: Vec::new(),
            ids: Vec::new(),
        });
        match m {
            ListAppendMop::Append { element, .. } => ah::Mop::Append {
                key: k.id,
                value: interner.intern(ah::Scalar::Int(*element)),
            },
            ListAppendMop::Read { list: None, .. } => ah::Mop::Read {
                key: k.id,
                value: ah::ReadValue::Nil,
            },
            ListAppendMop::Read { list: Some(xs), .. } => {
                let shared = xs.iter().zip(&k.list).take_while(|(x, y)| x == y).count();
                let mut ids = Vec::with_capacity(xs.len());
                ids.extend_from_slice(&k.ids[..shared]);
                ids.extend(
                    xs[shared..]
                        .iter()
                        .map(|x| interner.intern(ah::Scalar::Int(*x))),
                );
                if shared == k.list.len() && xs.len() > shared {
                    k.list.extend_from_slice(&xs[shared..]);
                    k.ids.extend_from_slice(&ids[shared..]);
                }
                ah::Mop::Read {
                    key: k.id,
                    value: ah::ReadValue::List(ids),
                }
            }
        }
    }

    /// Completes the translation and checks it: valid if [`proof`] shows there is no anomaly,
    /// else adya's verdict.
    fn check(self, model: &str, opts: &Opts) -> Result<Verdict> {
        let h = match self.finish(model)? {
            Ok(h) => h,
            Err(verdict) => return Ok(verdict),
        };
        if !opts.full_analysis && proof::proves_valid(&h) {
            let mut verdict = Verdict::from_anomalies("list-append", Vec::new());
            verdict.model = Some(model.to_owned());
            return Ok(verdict);
        }
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

    /// Completes the translation: an `info` completion at the end, with the same value, for
    /// each invocation that has none, as Jepsen records them. A history that cannot be
    /// analysed gives its verdict instead (`Err`), one of another workload an error.
    fn finish(mut self, model: &str) -> Result<std::result::Result<ah::History, Verdict>> {
        let mut unfinished: Vec<Pending> =
            std::mem::take(&mut self.pending).into_values().collect();
        unfinished.sort_unstable_by_key(|p| p.position);
        for p in &unfinished {
            if let Some(appends) = &p.appends {
                self.check_unique(p.index, appends.iter().copied());
            }
        }
        if let Some(mut dup) = self.duplicate {
            dup.model = Some(model.to_owned());
            return Ok(Err(dup));
        }
        if let Some(e) = self.wrong_workload {
            return Err(e);
        }
        drop(self.appended);
        drop(self.keys);
        for (p, index) in unfinished.iter().zip(self.first_free..) {
            if let Some(i) = p.translated {
                let mut op = self.ops[i].clone();
                op.kind = ah::OpType::Info;
                op.index = index;
                op.time = Some(self.end);
                self.ops.push(op);
            }
        }
        Ok(Ok(ah::History::from_ops(self.ops, self.interner)))
    }
}

fn adya_type(t: OpType) -> ah::OpType {
    match t {
        OpType::Invoke => ah::OpType::Invoke,
        OpType::Ok => ah::OpType::Ok,
        OpType::Fail => ah::OpType::Fail,
        OpType::Info => ah::OpType::Info,
    }
}

fn appends(mops: &[ListAppendMop]) -> impl Iterator<Item = (Key, Element)> + '_ {
    mops.iter().filter_map(|m| match *m {
        ListAppendMop::Append { key, element } => Some((key, element)),
        ListAppendMop::Read { .. } => None,
    })
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
mod proof;

#[cfg(test)]
mod tests;
