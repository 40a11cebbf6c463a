//! The transaction dependency graph over the causal version order, and its cycles.
//!
//! Edges, between `ok` transactions:
//! - **process**: each process's successive transactions;
//! - **wr**: the writer of a version to the first transaction of each process that read it
//!   (later ones follow by process order);
//! - **ww**: the writers of each pair of versions ordered by the causal version order (across
//!   keys);
//! - **rw**: from a transaction's final external read of a key to the writers of the versions
//!   that immediately follow it in that key's causal order. Inferred for one process at a time:
//!   the causal order is partial, so a version "after" the one read is only known to be unseen
//!   by the reader under each process's own view. Each process's graph is searched separately.
//!
//! An edge with several relations is explained, as the seed's combined explainer does, by the
//! first of process, wr, ww, rw that holds, and the cycle search uses that relation: the search
//! is the `adya` crate's typed search (the one the list-append checker uses), fed one relation
//! per edge.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ::adya::graph::{self as ag, CycleSpec, PROCESS, RW, RwMode, Search, Step, WR, WW};
use serde_json::json;

use super::Txn;
use super::versions::{Order, Version, external_reads};
use crate::Anomaly;
use crate::history::{Element, Key, ListAppendMop};

/// Why an edge holds.
#[derive(Debug, Clone, Copy)]
enum Why {
    Process(u64),
    Wr(Key, Element),
    Ww(Version, Version),
    Rw(Version, Version),
}

/// Edges with every relation that holds, and one witness per relation.
#[derive(Default)]
struct Edges {
    rels: HashMap<(u32, u32), u8>,
    why: HashMap<(u32, u32, u8), Why>,
}

impl Edges {
    fn link(&mut self, a: u32, b: u32, rel: u8, why: Why) {
        if a != b {
            *self.rels.entry((a, b)).or_insert(0) |= rel;
            self.why.entry((a, b, rel)).or_insert(why);
        }
    }
}

/// The seed's explainer order: process, then wr, ww, rw.
fn explained(rels: u8) -> u8 {
    [PROCESS, WR, WW, RW]
        .into_iter()
        .find(|r| rels & r != 0)
        .unwrap_or(0)
}

const fn spec(name: &'static str, allowed: u8, rw: RwMode, need_wr: bool, need: u8) -> CycleSpec {
    CycleSpec {
        name,
        allowed,
        rw,
        need_wr,
        need,
    }
}

/// The cycles without rw edges the seed's settings proscribe, most severe first.
const WITHOUT_RW: [CycleSpec; 4] = [
    spec("G0", WW, RwMode::None, false, 0),
    spec("G1c", WW | WR, RwMode::None, true, 0),
    spec("G0-process", WW | PROCESS, RwMode::None, false, PROCESS),
    spec(
        "G1c-process",
        WW | WR | PROCESS,
        RwMode::None,
        true,
        PROCESS,
    ),
];

/// The cycles with one rw edge the seed's settings proscribe. (`G-single` without `-item`
/// needs predicate reads, which list-append has not.)
const WITH_RW: [CycleSpec; 2] = [
    spec("G-single-item", WW | WR, RwMode::Single, false, 0),
    spec(
        "G-single-item-process",
        WW | WR | PROCESS,
        RwMode::Single,
        false,
        PROCESS,
    ),
];

/// The dependency graph of the `ok` transactions.
pub(super) struct Dependencies<'t, 'h> {
    txns: &'t [Txn<'h>],
    base: Edges,
    /// Per process, its rw edges.
    rw: BTreeMap<u64, Edges>,
    /// Versions appended twice by one transaction in an order the version order contradicts.
    pub(super) cyclic_in_txn: Vec<Anomaly>,
}

impl<'t, 'h> Dependencies<'t, 'h> {
    /// Builds the edges. `writer` maps each appended version to its transaction.
    pub(super) fn new(
        txns: &'t [Txn<'h>],
        writer: &HashMap<(Key, Element), u32>,
        order: &Order,
    ) -> Dependencies<'t, 'h> {
        let mut base = Edges::default();
        let mut cyclic_in_txn = Vec::new();
        let mut last: HashMap<u64, u32> = HashMap::new();
        for (i, t) in txns.iter().enumerate() {
            if let Some(prev) = last.insert(t.process, i as u32) {
                base.link(prev, i as u32, PROCESS, Why::Process(t.process));
            }
        }
        // wr: the first reader of each written version in each process, not the writer.
        let mut first_reader: HashMap<(Key, Element), BTreeMap<u64, u32>> = HashMap::new();
        for (i, t) in txns.iter().enumerate() {
            for m in t.mops {
                if let ListAppendMop::Read {
                    key,
                    list: Some(xs),
                } = m
                {
                    for &x in xs {
                        if writer.get(&(*key, x)) == Some(&(i as u32)) {
                            continue;
                        }
                        first_reader
                            .entry((*key, x))
                            .or_default()
                            .entry(t.process)
                            .or_insert(i as u32);
                    }
                }
            }
        }
        for (kv, readers) in &first_reader {
            if let Some(&w) = writer.get(kv) {
                for &r in readers.values() {
                    base.link(w, r, WR, Why::Wr(kv.0, kv.1));
                }
            }
        }
        // ww: the initial state has no writer and nothing precedes it in the causal order.
        for &(a, b) in &order.all.edges {
            let (Some(va), Some(vb)) = (a.1, b.1) else {
                continue;
            };
            let (Some(&wa), Some(&wb)) = (writer.get(&(a.0, va)), writer.get(&(b.0, vb))) else {
                continue; // A version nobody appended: not an edge.
            };
            if wa != wb {
                base.link(wa, wb, WW, Why::Ww(a, b));
            } else if append_position(&txns[wa as usize], a)
                > append_position(&txns[wa as usize], b)
            {
                cyclic_in_txn.push(in_txn_anomaly(&txns[wa as usize], a, b));
            }
        }
        let mut rw: BTreeMap<u64, Edges> = BTreeMap::new();
        for (i, t) in txns.iter().enumerate() {
            for (k, list) in external_reads(t.mops) {
                let read = (k, list.as_ref().and_then(|l| l.last().copied()));
                for &next in order.next.get(&read).into_iter().flatten() {
                    let Some(&w) = next.1.and_then(|v| writer.get(&(k, v))) else {
                        continue;
                    };
                    rw.entry(t.process)
                        .or_default()
                        .link(i as u32, w, RW, Why::Rw(read, next));
                }
            }
        }
        Dependencies {
            txns,
            base,
            rw,
            cyclic_in_txn,
        }
    }

    /// Searches every process's graph for the proscribed cycles: one of each type per strongly
    /// connected component, skipping types a cycle found there already implies, and a
    /// `cycle-search-timeout` anomaly for each component whose search ran out of `budget`.
    pub(super) fn cycles(&self, budget: Duration) -> Vec<Anomaly> {
        let mut found = self.search(&self.base.rels, &[&self.base], &WITHOUT_RW, budget);
        for edges in self.rw.values() {
            let mut rels = self.base.rels.clone();
            for (&pair, &r) in &edges.rels {
                *rels.entry(pair).or_insert(0) |= r;
            }
            found.extend(self.search(&rels, &[&self.base, edges], &WITH_RW, budget));
        }
        found
    }

    /// Searches the graph of `rels` (edges with all their relations; `parts` hold the
    /// witnesses) for `specs`.
    fn search(
        &self,
        rels: &HashMap<(u32, u32), u8>,
        parts: &[&Edges],
        specs: &[CycleSpec],
        budget: Duration,
    ) -> Vec<Anomaly> {
        let mut builder = ag::GraphBuilder::default();
        for (&(a, b), &rels) in rels {
            builder.link(a, b, explained(rels));
        }
        let g = builder.finish(self.txns.len());
        let nodes: Vec<u32> = (0..self.txns.len() as u32).collect();
        let mut out = Vec::new();
        for scc in g.sccs(&nodes, |_| true) {
            let deadline = Instant::now() + budget;
            let mut implied = std::collections::BTreeSet::new();
            for s in specs {
                if implied.contains(s.name) {
                    continue;
                }
                match ag::find_cycle(&g, &scc, s, deadline) {
                    Search::Found(steps) => {
                        implied.extend(::adya::model::implied(&[s.name]));
                        out.push(self.anomaly(parts, &steps));
                    }
                    Search::NotFound => {}
                    Search::TimedOut => {
                        out.push(self.timeout(&scc, s.name, budget));
                        break;
                    }
                }
            }
        }
        out
    }

    fn index(&self, v: u32) -> u64 {
        self.txns[v as usize].op.index
    }

    fn timeout(&self, scc: &[u32], kind: &str, budget: Duration) -> Anomaly {
        Anomaly {
            kind: "cycle-search-timeout".into(),
            ops: scc.iter().map(|&v| self.index(v)).collect(),
            explanation: format!(
                "the search for {kind} in a strongly connected component of {} transactions \
                 took longer than {} ms",
                scc.len(),
                budget.as_millis()
            ),
            detail: json!({"anomaly-spec-type": kind, "scc-size": scc.len()}),
        }
    }

    /// Elle's classification of a cycle and its step-by-step explanation.
    fn anomaly(&self, parts: &[&Edges], steps: &[Step]) -> Anomaly {
        let mut text = String::from("Then:\n");
        let mut detail = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let to = steps[(i + 1) % steps.len()].from;
            let (a, b) = (
                format!("T{}", self.index(s.from)),
                format!("T{}", self.index(to)),
            );
            let why = parts
                .iter()
                .find_map(|p| p.why.get(&(s.from, to, s.rel)))
                .map_or_else(String::new, |w| because(w, &a, &b));
            let last = i + 1 == steps.len();
            text.push_str(&format!(
                "  - {}{a} < {b}, because {why}{}\n",
                if last { "However, " } else { "" },
                if last { ": a contradiction!" } else { "." }
            ));
            detail.push(json!({"from": self.index(s.from), "to": self.index(to),
                               "rel": ag::rel_name(s.rel), "why": why}));
        }
        Anomaly {
            kind: ag::classify(steps),
            ops: steps.iter().map(|s| self.index(s.from)).collect(),
            explanation: text,
            detail: json!({ "steps": detail }),
        }
    }
}

fn version_text((k, v): Version) -> String {
    match v {
        Some(v) => format!("{v} of key {k}"),
        None => format!("the initial state of key {k}"),
    }
}

fn because(why: &Why, a: &str, b: &str) -> String {
    match *why {
        Why::Process(p) => format!("process {p} executed {a} before {b}"),
        Why::Wr(k, v) => format!("{b} observed {a}'s append of {v} to key {k}"),
        Why::Ww(x, y) => format!(
            "{a} appended {}, which precedes {b}'s append of {} in the causal version order",
            version_text(x),
            version_text(y)
        ),
        Why::Rw(x, y) => format!(
            "{a} read {}, which precedes the append of {} by {b} in the causal version order",
            version_text(x),
            version_text(y)
        ),
    }
}

/// Where a transaction appended a version.
fn append_position(t: &Txn<'_>, (k, v): Version) -> Option<usize> {
    t.mops.iter().position(
        |m| matches!(m, ListAppendMop::Append { key, element } if *key == k && Some(*element) == v),
    )
}

fn in_txn_anomaly(t: &Txn<'_>, a: Version, b: Version) -> Anomaly {
    Anomaly {
        kind: "cyclic-versions".into(),
        ops: vec![t.op.index],
        explanation: format!(
            "T{} appended {} after {}, but the causal version order puts {} first",
            t.op.index,
            version_text(a),
            version_text(b),
            version_text(a)
        ),
        detail: json!({"versions": [[a.0, a.1], [b.0, b.1]], "sources": ["ww"]}),
    }
}
