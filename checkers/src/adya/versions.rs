//! The causal version order ("<hb") of jepsen-causal-consistency's generation-1 checker.
//!
//! A version is a key with an element, or the key's initial state (`None`, Elle's `nil`).
//! Each source of order gives two graphs: one across keys (used for ww edges and for
//! `cyclic-versions`) and one per key (used for rw edges). The sources, per process:
//!
//! - **initial state**: `nil` precedes the first element a process observes of each key (the
//!   first of its first non-empty external read);
//! - **read prefixes**: a read `[a b c]` orders `a < b < c`;
//! - **monotonic writes**: a process's successive appends, across keys (per key for the
//!   per-key graph; a process's first append follows the key's `nil`);
//! - **writes follow reads**: every version a process read (every element of each read, or
//!   `nil`) since its last append precedes its next append (per key: the reads of that key);
//! - **monotonic reads**: a process's successive observations of a key (its reads' last
//!   elements, its own appends). Only for `cyclic-versions`, not for the order the dependency
//!   edges use: the checker's README explains that a read of an older version is what the
//!   cycles should expose, not what should build the order.
//!
//! The sources are added one at a time, in that order; a source that is cyclic alone, or that
//! would make the combination cyclic, is left out and its cycles are reported.

use std::collections::{HashMap, HashSet};

use ::adya::graph::GraphBuilder;

use super::Txn;
use crate::history::{Element, Key, ListAppendMop};

/// A key's element, or its initial state (`None`).
pub(super) type Version = (Key, Option<Element>);

/// A version graph.
#[derive(Debug, Clone, Default)]
pub(super) struct Graph {
    pub(super) edges: HashSet<(Version, Version)>,
}

impl Graph {
    fn link(&mut self, a: Version, b: Version) {
        self.edges.insert((a, b));
    }

    fn union(&self, other: &Graph) -> Graph {
        let mut edges = self.edges.clone();
        edges.extend(other.edges.iter().copied());
        Graph { edges }
    }

    /// The cyclic strongly connected components, each sorted, including a version that
    /// precedes itself.
    pub(super) fn cycles(&self) -> Vec<Vec<Version>> {
        let mut id: HashMap<Version, u32> = HashMap::new();
        let mut names = Vec::new();
        let mut builder = GraphBuilder::default();
        let mut self_loops = Vec::new();
        for &(a, b) in &self.edges {
            let mut vertex = |v: Version| {
                *id.entry(v).or_insert_with(|| {
                    names.push(v);
                    (names.len() - 1) as u32
                })
            };
            let (x, y) = (vertex(a), vertex(b));
            if x == y {
                self_loops.push(a);
            }
            builder.link(x, y, 1);
        }
        let g = builder.finish(names.len());
        let nodes: Vec<u32> = (0..names.len() as u32).collect();
        let mut out: Vec<Vec<Version>> = g
            .sccs(&nodes, |_| true)
            .into_iter()
            .map(|scc| scc.into_iter().map(|v| names[v as usize]).collect())
            .collect();
        for v in self_loops {
            if !out.iter().any(|scc| scc.contains(&v)) {
                out.push(vec![v]);
            }
        }
        for scc in &mut out {
            scc.sort_unstable();
        }
        out.sort();
        out
    }
}

/// One source of version order.
struct Source {
    name: &'static str,
    all: Graph,
    per_key: Graph,
}

/// Versions found in a cycle, and the sources whose combination made it.
#[derive(Debug, Clone)]
pub(super) struct CyclicVersions {
    pub(super) sources: Vec<&'static str>,
    pub(super) sccs: Vec<Vec<Version>>,
}

/// A combined version order.
#[derive(Debug, Default)]
pub(super) struct Order {
    /// Across keys.
    pub(super) all: Graph,
    /// Per key: version → the versions it immediately precedes.
    pub(super) next: HashMap<Version, Vec<Version>>,
    /// What could not be combined.
    pub(super) cyclic: Vec<CyclicVersions>,
}

/// The versions a read mop observed: every element, or `nil` for a `nil` read.
pub(super) fn read_versions(key: Key, list: &Option<Vec<Element>>) -> Vec<Version> {
    match list {
        None => vec![(key, None)],
        Some(xs) => xs.iter().map(|x| (key, Some(*x))).collect(),
    }
}

/// A transaction's final external read of each key: reads after the transaction's own append
/// to the key are internal, and an append hides the reads of its key before it (the process
/// may have been replicated into between the two).
pub(super) fn external_reads(mops: &[ListAppendMop]) -> HashMap<Key, &Option<Vec<Element>>> {
    let mut reads = HashMap::new();
    let mut written = HashSet::new();
    for m in mops {
        match m {
            ListAppendMop::Append { key, .. } => {
                reads.remove(key);
                written.insert(*key);
            }
            ListAppendMop::Read { key, list } => {
                if !written.contains(key) {
                    reads.insert(*key, list);
                }
            }
        }
    }
    reads
}

fn initial_state(txns: &[Txn<'_>]) -> Source {
    let mut g = Graph::default();
    let mut observed = HashSet::new();
    for t in txns {
        for (k, list) in external_reads(t.mops) {
            if let Some(&first) = list.as_ref().and_then(|l| l.first())
                && observed.insert((t.process, k))
            {
                g.link((k, None), (k, Some(first)));
            }
        }
    }
    Source {
        name: "init-nil",
        per_key: g.clone(),
        all: g,
    }
}

fn read_prefixes(txns: &[Txn<'_>]) -> Source {
    let mut g = Graph::default();
    for t in txns {
        for m in t.mops {
            if let ListAppendMop::Read {
                key,
                list: Some(xs),
            } = m
            {
                for w in xs.windows(2) {
                    g.link((*key, Some(w[0])), (*key, Some(w[1])));
                }
            }
        }
    }
    Source {
        name: "read-prefix",
        per_key: g.clone(),
        all: g,
    }
}

fn monotonic_writes(txns: &[Txn<'_>]) -> Source {
    let (mut all, mut per_key) = (Graph::default(), Graph::default());
    let mut last: HashMap<u64, Version> = HashMap::new();
    let mut last_of_key: HashMap<(u64, Key), Version> = HashMap::new();
    for t in txns {
        for m in t.mops {
            if let ListAppendMop::Append { key, element } = *m {
                let this = (key, Some(element));
                let nil = (key, None);
                all.link(last.insert(t.process, this).unwrap_or(nil), this);
                per_key.link(
                    last_of_key.insert((t.process, key), this).unwrap_or(nil),
                    this,
                );
            }
        }
    }
    Source {
        name: "monotonic-writes",
        all,
        per_key,
    }
}

fn writes_follow_reads(txns: &[Txn<'_>]) -> Source {
    let (mut all, mut per_key) = (Graph::default(), Graph::default());
    let mut read: HashMap<u64, HashSet<Version>> = HashMap::new();
    let mut read_of_key: HashMap<(u64, Key), HashSet<Version>> = HashMap::new();
    for t in txns {
        for m in t.mops {
            match m {
                ListAppendMop::Read { key, list } => {
                    let vs = read_versions(*key, list);
                    read.entry(t.process).or_default().extend(&vs);
                    read_of_key.entry((t.process, *key)).or_default().extend(vs);
                }
                ListAppendMop::Append { key, element } => {
                    let this = (*key, Some(*element));
                    for v in read.remove(&t.process).unwrap_or_default() {
                        all.link(v, this);
                    }
                    for v in read_of_key.remove(&(t.process, *key)).unwrap_or_default() {
                        per_key.link(v, this);
                    }
                }
            }
        }
    }
    Source {
        name: "writes-follow-reads",
        all,
        per_key,
    }
}

fn monotonic_reads(txns: &[Txn<'_>]) -> Source {
    let mut g = Graph::default();
    let mut observed: HashMap<(u64, Key), Version> = HashMap::new();
    for t in txns {
        for m in t.mops {
            match m {
                ListAppendMop::Append { key, element } => {
                    observed.insert((t.process, *key), (*key, Some(*element)));
                }
                ListAppendMop::Read { key, list } => {
                    let this = (*key, list.as_ref().and_then(|l| l.last().copied()));
                    let before = observed.insert((t.process, *key), this);
                    let before = before.unwrap_or((*key, None));
                    if before != this {
                        g.link(before, this);
                    }
                }
            }
        }
    }
    Source {
        name: "monotonic-reads",
        per_key: g.clone(),
        all: g,
    }
}

/// Sources combined so far.
#[derive(Clone, Default)]
struct Combination {
    all: Graph,
    per_key: Graph,
    used: Vec<&'static str>,
    cyclic: Vec<CyclicVersions>,
}

impl Combination {
    /// Adds a source, unless it is cyclic or would make the combination cyclic; then its
    /// cycles are recorded instead.
    fn add(&mut self, s: &Source) {
        let alone = s.all.cycles();
        if !alone.is_empty() {
            self.cyclic.push(CyclicVersions {
                sources: vec![s.name],
                sccs: alone,
            });
            return;
        }
        let combined = self.all.union(&s.all);
        let sccs = combined.cycles();
        if !sccs.is_empty() {
            let mut sources = self.used.clone();
            sources.push(s.name);
            self.cyclic.push(CyclicVersions { sources, sccs });
            return;
        }
        self.all = combined;
        self.per_key = self.per_key.union(&s.per_key);
        self.used.push(s.name);
    }

    fn order(self) -> Order {
        let mut next: HashMap<Version, Vec<Version>> = HashMap::new();
        for (a, b) in self.per_key.edges {
            next.entry(a).or_default().push(b);
        }
        for n in next.values_mut() {
            n.sort_unstable();
        }
        Order {
            all: self.all,
            next,
            cyclic: self.cyclic,
        }
    }
}

/// The causal version order (every source but monotonic reads), whose edges give the
/// dependency graph, and the observed one (all sources, added in the order above), whose
/// cycles are reported.
pub(super) fn orders(txns: &[Txn<'_>]) -> (Order, Order) {
    let mut causal = Combination::default();
    for s in [
        initial_state(txns),
        read_prefixes(txns),
        monotonic_writes(txns),
        writes_follow_reads(txns),
    ] {
        causal.add(&s);
    }
    let mut observed = causal.clone();
    observed.add(&monotonic_reads(txns));
    (causal.order(), observed.order())
}
