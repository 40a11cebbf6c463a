//! A fast, conservative proof that a list-append history has no anomaly at all.
//!
//! adya's analysis is what checking a big history spends its time on (about 30 s of a
//! 1M-transaction history), and most histories a healthy run records have no anomaly. For
//! them, [`proves_valid`] shows in a fraction of that time that adya would report nothing,
//! at any model, and the checker answers `valid` without running adya. The proof is
//! conservative: on an anomaly, or on anything it does not model, it declines, and adya gives
//! the exact report.
//!
//! It succeeds when all of these hold, each standing for the adya check named beside it:
//! - only appends and list reads, and no `(key, element)` appended by two invocations or by
//!   two ok/info completions (`unexpected-txn-micro-op-types`, `duplicate-appends`);
//! - per key, every non-empty read of an ok or info transaction is a prefix of the longest
//!   (the version order), which repeats no element (`incompatible-order`,
//!   `duplicate-elements`), and every element of it was appended by an ok or info
//!   transaction (`G1a`, `dirty-update`, and reads of elements nobody appended);
//! - no ok read ends in another transaction's intermediate append (`G1b`); every ok
//!   transaction's reads agree with its own earlier reads and appends and never show an
//!   element it appends later (`internal`, `future-read`);
//! - adya's ww, wr and rw edges, computed as adya computes them, are not none at all (else
//!   adya answers `empty-transaction-graph`), and with real-time order added they form an
//!   acyclic graph. Every cycle adya looks for, at every model, is a cycle in that graph
//!   (snapshot isolation's "plus one rw hop" edges are paths in it), so there is none.
//!
//! Two parts of adya's analysis need nothing of their own. Process order is part of real-time order
//! once no process has two invocations open at a time (the proof declines if one does).
//! And a `lost-update` (two ok transactions read one state of a key, then both append to
//! it) is a cycle: of the two appends, at most one can directly follow the state read, so
//! the other transaction has an rw edge to the writer of the element after that state and a
//! path of ww edges from that writer back to its own append. (`G1b` is not always a cycle:
//! a version order may put a transaction's later append before its earlier one, so it is
//! checked on its own.)
//!
//! Real-time order is added through barrier vertices, so that it costs edges linear in the
//! history: the ok completions since the last barrier point to a new barrier, which points to
//! every transaction invoked after it, and each barrier points to the next. A path runs from
//! an ok transaction to every transaction invoked after it completed, and to no other.

use adya::history::{History, Id, Mop, Op, OpType, ReadValue};
use rustc_hash::{FxHashMap, FxHashSet};

/// No vertex, or no position.
const NONE: u32 = u32::MAX;

/// Edges from readers of a key's last observed state to the appends nobody observed (adya
/// adds one for every such pair), per operation of the history, above which the proof
/// declines rather than add them all.
const TAIL_EDGES_PER_OP: usize = 4;

/// Whether `h` provably has none of the anomalies adya's list-append analysis finds, at any
/// model. `false` means "not proven": adya must decide.
pub(super) fn proves_valid(h: &History) -> bool {
    prove(h).is_some()
}

/// What the proof knows of one appended element.
struct Element {
    /// The ok or info completion that appended it, or [`NONE`] for a failed one.
    writer: u32,
    /// Its position in its key's version order, or [`NONE`] if no read observed it.
    position: u32,
    /// Whether its writer appended to the same key again afterwards.
    intermediate: bool,
}

/// A key's version order and the transactions around its last observed state.
#[derive(Default)]
struct KeyOrder {
    /// The longest read of the key, as `(op, mop, length)`.
    longest: Option<(usize, usize, usize)>,
    /// The elements in version order.
    order: Vec<Id>,
    /// Appends to the key by ok or info completions, and the last of them.
    appends: u32,
    last_append: Id,
    /// Readers of the last observed state, and appenders of elements no read observed.
    tail_readers: Vec<u32>,
    tail_appenders: Vec<u32>,
}

fn possible(op: &Op) -> bool {
    matches!(op.kind, OpType::Ok | OpType::Info)
}

/// The list an ok or info completion's read observed, treating an ok `nil` as empty; `None`
/// for an info `nil` (a read that may never have happened, which adya ignores).
fn observed<'a>(op: &Op, value: &'a ReadValue) -> Option<&'a [Id]> {
    match value {
        ReadValue::List(xs) => Some(xs),
        ReadValue::Nil if op.kind == OpType::Ok => Some(&[]),
        ReadValue::Nil | ReadValue::Scalar(_) => None,
    }
}

fn prove(h: &History) -> Option<()> {
    u32::try_from(h.ops.len()).ok().filter(|&n| n < NONE / 2)?;
    let (mut elements, mut keys) = index(h)?;
    version_orders(h, &mut elements, &mut keys)?;
    let mut edges = Edges::default();
    for (i, op) in h.ops.iter().enumerate() {
        if possible(op) {
            transaction(h, i as u32, &elements, &mut keys, &mut edges)?;
        }
    }
    for op in h.ops.iter().filter(|op| op.kind == OpType::Ok) {
        own_view(op, &elements)?;
    }
    let mut budget = h.ops.len().saturating_mul(TAIL_EDGES_PER_OP);
    for key in keys.values() {
        let pairs = key
            .tail_readers
            .len()
            .saturating_mul(key.tail_appenders.len());
        budget = budget.checked_sub(pairs)?;
        for &r in &key.tail_readers {
            for &a in key.tail_appenders.iter().filter(|&&a| a != r) {
                edges.data(r, a);
            }
        }
    }
    if edges.data == 0 {
        return None;
    }
    let vertices = order_edges(h, &mut edges)?;
    acyclic(vertices, &edges.list).then_some(())
}

/// Every element a completion appended and every key, with the checks that need only one
/// pass: micro-op types, unique appends, intermediate appends.
type Index = (FxHashMap<(Id, Id), Element>, FxHashMap<Id, KeyOrder>);

fn index(h: &History) -> Option<Index> {
    let mut elements: FxHashMap<(Id, Id), Element> = FxHashMap::default();
    let mut keys: FxHashMap<Id, KeyOrder> = FxHashMap::default();
    let mut invoked: FxHashSet<(Id, Id)> = FxHashSet::default();
    for (i, op) in h.ops.iter().enumerate() {
        for (j, m) in op.value.iter().enumerate() {
            match *m {
                Mop::Write { .. }
                | Mop::Read {
                    value: ReadValue::Scalar(_),
                    ..
                } => return None,
                Mop::Append { key, value } if op.kind == OpType::Invoke => {
                    if !invoked.insert((key, value)) {
                        return None;
                    }
                }
                Mop::Append { key, value } => {
                    let later = op.value[j + 1..]
                        .iter()
                        .any(|m| matches!(*m, Mop::Append { key: k, .. } if k == key));
                    let element = Element {
                        writer: if possible(op) { i as u32 } else { NONE },
                        position: NONE,
                        intermediate: later,
                    };
                    if elements.insert((key, value), element).is_some() {
                        return None;
                    }
                    let k = keys.entry(key).or_default();
                    if possible(op) {
                        k.appends += 1;
                        k.last_append = value;
                    }
                }
                Mop::Read {
                    key,
                    value: ReadValue::List(ref xs),
                } if possible(op) && !xs.is_empty() => {
                    let k = keys.entry(key).or_default();
                    if xs.len() > k.longest.map_or(0, |(_, _, len)| len) {
                        k.longest = Some((i, j, xs.len()));
                    }
                }
                Mop::Read { .. } => {}
            }
        }
    }
    Some((elements, keys))
}

/// Each key's version order: its longest read, or its one append if it has no read (adya:
/// "a key appended exactly once needs no read"). Every element in it must have an ok or info
/// writer and appear once.
fn version_orders(
    h: &History,
    elements: &mut FxHashMap<(Id, Id), Element>,
    keys: &mut FxHashMap<Id, KeyOrder>,
) -> Option<()> {
    for (&key, k) in keys.iter_mut() {
        k.order = match k.longest {
            Some((op, mop, _)) => match &h.ops[op].value[mop] {
                Mop::Read {
                    value: ReadValue::List(xs),
                    ..
                } => xs.clone(),
                _ => return None,
            },
            None if k.appends == 1 => vec![k.last_append],
            None => Vec::new(),
        };
        for (p, &e) in k.order.iter().enumerate() {
            let element = elements.get_mut(&(key, e))?;
            if element.writer == NONE || element.position != NONE {
                return None;
            }
            element.position = p as u32;
        }
    }
    Some(())
}

/// The edges of the graph: `(from, to)` vertices, op positions or barriers after them.
#[derive(Default)]
struct Edges {
    list: Vec<(u32, u32)>,
    /// How many of them are ww, wr or rw edges.
    data: usize,
}

impl Edges {
    fn data(&mut self, from: u32, to: u32) {
        self.list.push((from, to));
        self.data += 1;
    }
}

/// One ok or info completion's reads (each a prefix of its key's version order) and appends,
/// with adya's ww, wr and rw edges into and out of it.
fn transaction(
    h: &History,
    i: u32,
    elements: &FxHashMap<(Id, Id), Element>,
    keys: &mut FxHashMap<Id, KeyOrder>,
    edges: &mut Edges,
) -> Option<()> {
    let op = &h.ops[i as usize];
    for m in &op.value {
        match *m {
            Mop::Read { key, ref value } => {
                let Some(xs) = observed(op, value) else {
                    continue;
                };
                let k = keys.entry(key).or_default();
                if !k.order.starts_with(xs) {
                    return None;
                }
                if let Some(&last) = xs.last() {
                    let e = elements.get(&(key, last))?;
                    if op.kind == OpType::Ok && e.intermediate && e.writer != i {
                        return None;
                    }
                    if e.writer != i {
                        edges.data(e.writer, i);
                    }
                }
                match k.order.get(xs.len()) {
                    Some(&next) => {
                        let w = elements.get(&(key, next))?.writer;
                        if w != i {
                            edges.data(i, w);
                        }
                    }
                    None => k.tail_readers.push(i),
                }
            }
            Mop::Append { key, value } => {
                let e = elements.get(&(key, value))?;
                let k = keys.get_mut(&key)?;
                let prev = match e.position {
                    NONE => {
                        k.tail_appenders.push(i);
                        k.order.last()
                    }
                    0 => None,
                    p => k.order.get(p as usize - 1),
                };
                if let Some(&prev) = prev {
                    let w = elements.get(&(key, prev))?.writer;
                    if w != i {
                        edges.data(w, i);
                    }
                }
            }
            Mop::Write { .. } => return None,
        }
    }
    Some(())
}

/// What an ok transaction expects a key to hold, from its own earlier micro-ops: exactly
/// `base` then `tail` if it read the key (`base` is that read), else something ending with
/// `tail`.
struct Expect<'a> {
    key: Id,
    base: Option<&'a [Id]>,
    tail: Vec<Id>,
}

/// adya's `internal` and `future-read` checks of one ok transaction, whose reads are known
/// to be prefixes of their keys' version orders.
fn own_view(op: &Op, elements: &FxHashMap<(Id, Id), Element>) -> Option<()> {
    let mut state: Vec<Expect<'_>> = Vec::new();
    let mut read: Vec<(Id, usize)> = Vec::new();
    for m in &op.value {
        match *m {
            Mop::Append { key, value } => {
                let position = elements.get(&(key, value))?.position as usize;
                if read.iter().any(|&(k, len)| k == key && position < len) {
                    return None;
                }
                match state.iter_mut().find(|s| s.key == key) {
                    Some(s) => s.tail.push(value),
                    None => state.push(Expect {
                        key,
                        base: None,
                        tail: vec![value],
                    }),
                }
            }
            Mop::Read { key, ref value } => {
                let xs = observed(op, value)?;
                read.push((key, xs.len()));
                let s = match state.iter_mut().position(|s| s.key == key) {
                    Some(s) => &mut state[s],
                    None => {
                        state.push(Expect {
                            key,
                            base: Some(xs),
                            tail: Vec::new(),
                        });
                        continue;
                    }
                };
                let agrees = match s.base {
                    Some(base) => {
                        xs.len() == base.len() + s.tail.len()
                            && xs.starts_with(base)
                            && xs.ends_with(&s.tail)
                    }
                    None => xs.ends_with(&s.tail),
                };
                if !agrees {
                    return None;
                }
                s.base = Some(xs);
                s.tail.clear();
            }
            Mop::Write { .. } => return None,
        }
    }
    Some(())
}

/// Adds real-time order (through barriers) to `edges`; returns the number of vertices, or
/// `None` if a process has two invocations open at once (then process order is not part of
/// real-time order).
fn order_edges(h: &History, edges: &mut Edges) -> Option<u32> {
    let mut vertices = h.ops.len() as u32;
    let mut open: FxHashSet<i64> = FxHashSet::default();
    let mut since: Vec<u32> = Vec::new();
    let mut barrier = NONE;
    for (i, op) in h.ops.iter().enumerate() {
        let i = i as u32;
        match op.kind {
            OpType::Ok => since.push(i),
            OpType::Invoke => {
                if let Some(p) = op.process
                    && !open.insert(p)
                {
                    return None;
                }
                let Some(c) = h.pair[i as usize] else {
                    continue;
                };
                if !possible(&h.ops[c]) {
                    continue;
                }
                if !since.is_empty() {
                    let next = vertices;
                    vertices += 1;
                    if barrier != NONE {
                        edges.list.push((barrier, next));
                    }
                    edges.list.extend(since.drain(..).map(|s| (s, next)));
                    barrier = next;
                }
                if barrier != NONE {
                    edges.list.push((barrier, c as u32));
                }
            }
            OpType::Fail | OpType::Info => {}
        }
        if op.kind != OpType::Invoke
            && let Some(p) = op.process
        {
            open.remove(&p);
        }
    }
    Some(vertices)
}

/// Whether the graph of `vertices` vertices and `edges` has no cycle (Kahn's algorithm).
fn acyclic(vertices: u32, edges: &[(u32, u32)]) -> bool {
    let n = vertices as usize;
    let mut start = vec![0usize; n + 1];
    let mut indegree = vec![0u32; n];
    for &(from, to) in edges {
        start[from as usize + 1] += 1;
        indegree[to as usize] += 1;
    }
    for v in 0..n {
        start[v + 1] += start[v];
    }
    let mut fill = start.clone();
    let mut targets = vec![0u32; edges.len()];
    for &(from, to) in edges {
        targets[fill[from as usize]] = to;
        fill[from as usize] += 1;
    }
    drop(fill);
    let mut ready: Vec<u32> = (0..vertices)
        .filter(|&v| indegree[v as usize] == 0)
        .collect();
    let mut done = 0usize;
    while let Some(v) = ready.pop() {
        done += 1;
        for &w in &targets[start[v as usize]..start[v as usize + 1]] {
            indegree[w as usize] -= 1;
            if indegree[w as usize] == 0 {
                ready.push(w);
            }
        }
    }
    done == n
}

#[cfg(test)]
mod tests;
