//! Generated histories from simulated stores, for tests and benchmarks: list-append
//! ([`list_append`]) and max-write-wins ([`mww`]).
//!
//! `concurrency` client processes each run one transaction at a time. At every step a random
//! process either invokes a new transaction or completes its pending one; a transaction takes
//! effect atomically when it completes, which lies between its invocation and completion, so
//! the history is strict serializable. Each transaction has `mops_per_txn` micro-ops, each an
//! append or a read (even odds) of one of `active_keys` keys; like Elle's generator, a key is
//! retired for a fresh one after `max_writes_per_key` appends, which keeps reads short.
//!
//! With `snapshot_reads`, the store is broken on purpose: a transaction reads the keys it
//! touches as they were when it was invoked (plus its own appends) but applies its appends at
//! completion, i.e. snapshot isolation without the first-committer-wins rule. Its reads do not
//! fit one order per key (incompatible-order) and its appends' orders contradict each other
//! (G0 and more); the benchmark uses such histories to time the checker on anomalies.

use std::collections::HashMap;

use std::collections::BTreeMap;

use super::{History, ListAppendMop, MwwMop, Op, OpType, Process, Value};

/// Parameters of a generated history.
#[derive(Debug, Clone)]
pub struct GenOpts {
    /// Number of transactions.
    pub txns: usize,
    /// Micro-ops per transaction.
    pub mops_per_txn: usize,
    /// Keys in play at any time.
    pub active_keys: usize,
    /// Appends after which a key is retired.
    pub max_writes_per_key: usize,
    /// Client processes.
    pub concurrency: usize,
    /// Random seed.
    pub seed: u64,
    /// Break the store: reads see the state as of invocation (see the module docs).
    pub snapshot_reads: bool,
}

impl Default for GenOpts {
    fn default() -> GenOpts {
        GenOpts {
            txns: 1000,
            mops_per_txn: 4,
            active_keys: 100,
            max_writes_per_key: 100,
            concurrency: 10,
            seed: 1,
            snapshot_reads: false,
        }
    }
}

/// A small deterministic random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Generates a strict-serializable list-append history (see the module docs).
pub fn list_append(opts: &GenOpts) -> History {
    let mut rng = Rng::new(opts.seed);
    let concurrency = opts.concurrency.max(1);
    // Key slots: each slot holds the key in play and how many appends it has had.
    let mut next_key = opts.active_keys as i64;
    let mut slots: Vec<(i64, usize)> = (0..opts.active_keys.max(1) as i64)
        .map(|k| (k, 0))
        .collect();
    let mut lists: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut next_element = 0i64;
    type Snapshot = HashMap<i64, Vec<i64>>;
    let mut pending: Vec<Option<(Vec<ListAppendMop>, Option<Snapshot>)>> = vec![None; concurrency];
    let mut ops = Vec::with_capacity(opts.txns * 2);
    let mut invoked = 0;
    let mut completed = 0;
    let push = |ops: &mut Vec<Op>, op_type, process: usize, value| {
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time: index as i64 * 1000,
            op_type,
            process: Process::Client(process as u64),
            f: "txn".into(),
            value: Value::ListAppend(value),
            node: None,
            final_read: false,
            error: None,
        });
    };
    while completed < opts.txns {
        let p = rng.below(concurrency);
        match pending[p].take() {
            None if invoked < opts.txns => {
                let mops: Vec<ListAppendMop> = (0..opts.mops_per_txn)
                    .map(|_| {
                        let slot = rng.below(slots.len());
                        let key = slots[slot].0;
                        if rng.below(2) == 0 {
                            ListAppendMop::Read { key, list: None }
                        } else {
                            next_element += 1;
                            ListAppendMop::Append {
                                key,
                                element: next_element,
                            }
                        }
                    })
                    .collect();
                push(&mut ops, OpType::Invoke, p, mops.clone());
                let snapshot = opts.snapshot_reads.then(|| {
                    mops.iter()
                        .map(|m| (m.key(), lists.get(&m.key()).cloned().unwrap_or_default()))
                        .collect()
                });
                pending[p] = Some((mops, snapshot));
                invoked += 1;
            }
            None => {}
            Some((mops, mut snapshot)) => {
                let done: Vec<ListAppendMop> = mops
                    .into_iter()
                    .map(|m| match m {
                        ListAppendMop::Append { key, element } => {
                            lists.entry(key).or_default().push(element);
                            if let Some(view) = snapshot.as_mut() {
                                view.entry(key).or_default().push(element);
                            }
                            ListAppendMop::Append { key, element }
                        }
                        ListAppendMop::Read { key, .. } => {
                            let list = match &snapshot {
                                Some(view) => view.get(&key).filter(|l| !l.is_empty()),
                                None => lists.get(&key),
                            };
                            ListAppendMop::Read {
                                key,
                                list: list.cloned(),
                            }
                        }
                    })
                    .collect();
                for m in &done {
                    if let ListAppendMop::Append { key, .. } = m
                        && let Some(slot) = slots.iter_mut().find(|s| s.0 == *key)
                    {
                        slot.1 += 1;
                        if slot.1 >= opts.max_writes_per_key {
                            *slot = (next_key, 0);
                            next_key += 1;
                        }
                    }
                }
                push(&mut ops, OpType::Ok, p, done);
                completed += 1;
            }
        }
    }
    History::new(ops)
}

/// Parameters of a generated max-write-wins history.
#[derive(Debug, Clone)]
pub struct MwwGenOpts {
    /// Number of transactions before the final reads.
    pub txns: usize,
    /// Keys `0..key_count`.
    pub key_count: usize,
    /// Distinct keys written per transaction.
    pub keys_per_txn: usize,
    /// Client processes.
    pub concurrency: usize,
    /// Nodes; process `p` talks to node `n{p % nodes + 1}`.
    pub nodes: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for MwwGenOpts {
    fn default() -> MwwGenOpts {
        MwwGenOpts {
            txns: 1000,
            key_count: 10,
            keys_per_txn: 4,
            concurrency: 6,
            nodes: 3,
            seed: 1,
        }
    }
}

/// Generates a max-write-wins history from one serial store (so it is causal and converges),
/// in the latest era's shape: each transaction `[readAll, writeSome]` writes the global
/// counter's value, taken at invocation, to random keys; at completion it reads every key and
/// keeps only the writes not below what it read, as the endpoint does. Then every process
/// makes a final read. Returns the history and the store's final state.
pub fn mww(opts: &MwwGenOpts) -> (History, BTreeMap<i64, i64>) {
    let mut rng = Rng::new(opts.seed);
    let concurrency = opts.concurrency.max(1);
    let keys = opts.key_count.max(1);
    let mut store: BTreeMap<i64, i64> = (0..keys as i64).map(|k| (k, super::MWW_NIL)).collect();
    let mut pending: Vec<Option<BTreeMap<i64, i64>>> = vec![None; concurrency];
    let mut ops: Vec<Op> = Vec::with_capacity(opts.txns * 2 + concurrency * 2);
    let push = |ops: &mut Vec<Op>, op_type, p: usize, f: &str, mops: Vec<MwwMop>| {
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time: index as i64 * 1000,
            op_type,
            process: Process::Client(p as u64),
            f: f.into(),
            value: Value::Mww(mops),
            node: Some(format!("n{}", p % opts.nodes.max(1) + 1)),
            final_read: f == "r-final",
            error: None,
        });
    };
    let (mut invoked, mut completed, mut next_value) = (0, 0, 0i64);
    let mut step = |ops: &mut Vec<Op>, p: usize, writes: BTreeMap<i64, i64>, f: &str| {
        let read = store.clone();
        let kept: BTreeMap<i64, i64> = writes
            .into_iter()
            .filter(|(k, v)| store.get(k).is_none_or(|cur| v >= cur))
            .collect();
        store.extend(&kept);
        push(
            ops,
            OpType::Ok,
            p,
            f,
            vec![MwwMop::ReadAll(read), MwwMop::WriteSome(kept)],
        );
    };
    while completed < opts.txns {
        let p = rng.below(concurrency);
        match pending[p].take() {
            None if invoked < opts.txns => {
                let mut writes = BTreeMap::new();
                while writes.len() < opts.keys_per_txn.min(keys) {
                    writes.insert(rng.below(keys) as i64, next_value);
                }
                next_value += 1;
                let request = vec![
                    MwwMop::ReadAll(BTreeMap::new()),
                    MwwMop::WriteSome(writes.clone()),
                ];
                push(&mut ops, OpType::Invoke, p, "txn", request);
                pending[p] = Some(writes);
                invoked += 1;
            }
            None => {}
            Some(writes) => {
                step(&mut ops, p, writes, "txn");
                completed += 1;
            }
        }
    }
    for p in 0..concurrency {
        let request = vec![
            MwwMop::ReadAll(BTreeMap::new()),
            MwwMop::WriteSome(BTreeMap::new()),
        ];
        push(&mut ops, OpType::Invoke, p, "r-final", request);
        step(&mut ops, p, BTreeMap::new(), "r-final");
    }
    (History::new(ops), store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_shape() {
        let h = list_append(&GenOpts {
            txns: 500,
            ..GenOpts::default()
        });
        assert_eq!(h.ops.len(), 1000);
        assert_eq!(h.completions().count(), 500);
        assert!(
            h.ops
                .iter()
                .all(|op| matches!(&op.value, Value::ListAppend(m) if m.len() == 4))
        );
        assert_eq!(
            h,
            list_append(&GenOpts {
                txns: 500,
                ..GenOpts::default()
            })
        );
    }
}
