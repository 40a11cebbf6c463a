//! The workloads: the seed's (reference A.11, list-append over `lww`) and the latest era's
//! (reference B.11, `readAll`/`writeSome` over the max-write-wins `mww` table): which endpoint
//! mode they run, which clients do what, the transactions they generate and the checkers that
//! judge them.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use clap::ValueEnum;

use crate::check::list_append;
use std::collections::BTreeMap;

use crate::history::{Element, Key, ListAppendMop, MwwMop};

/// A workload, named as in the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Plain SQLite endpoints (`sqlite3-local` mode), list-append transactions.
    #[value(name = "sqlite3-local")]
    Sqlite3Local,
    /// One PowerSync endpoint with a local-only table (`powersync-local` mode).
    #[value(name = "powersync-single")]
    PowersyncSingle,
    /// Synced PowerSync endpoints, list-append transactions on every node.
    #[value(name = "powersync")]
    Powersync,
    /// PostgreSQL clients append, PowerSync nodes read.
    #[value(name = "ps-ro-pg-wo")]
    PsRoPgWo,
    /// PowerSync nodes append, PostgreSQL clients read.
    #[value(name = "ps-wo-pg-ro")]
    PsWoPgRo,
    /// Latest era (mww): every client reads all keys and writes some.
    #[value(name = "ps-rw-pg-rw")]
    PsRwPgRw,
    /// Latest era (mww): PowerSync nodes only read, PostgreSQL clients read and write.
    #[value(name = "ps-ro-pg-rw")]
    PsRoPgRw,
    /// Latest era (mww): PowerSync nodes read and write, PostgreSQL clients only read.
    #[value(name = "ps-rw-pg-ro")]
    PsRwPgRo,
    /// Latest era (mww): `ps-rw-pg-rw` judged by strong convergence only.
    #[value(name = "convergence")]
    Convergence,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Sqlite3Local => "sqlite3-local",
            Workload::PowersyncSingle => "powersync-single",
            Workload::Powersync => "powersync",
            Workload::PsRoPgWo => "ps-ro-pg-wo",
            Workload::PsWoPgRo => "ps-wo-pg-ro",
            Workload::PsRwPgRw => "ps-rw-pg-rw",
            Workload::PsRoPgRw => "ps-ro-pg-rw",
            Workload::PsRwPgRo => "ps-rw-pg-ro",
            Workload::Convergence => "convergence",
        })
    }
}

/// What a client thread generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Elle list-append transactions (`f = txn`).
    Txn,
    /// Append the same new element to several distinct keys (`f = append-only`).
    AppendOnly,
    /// Read several distinct keys (`f = read-only`).
    ReadOnly,
}

impl Role {
    /// The operation's `f`.
    pub fn f(self) -> &'static str {
        match self {
            Role::Txn => "txn",
            Role::AppendOnly => "append-only",
            Role::ReadOnly => "read-only",
        }
    }
}

impl Workload {
    /// The endpoint's `ENDPOINT_MODE`.
    pub fn endpoint_mode(self) -> &'static str {
        match self {
            Workload::Sqlite3Local => "sqlite3-local",
            Workload::PowersyncSingle => "powersync-local",
            _ => "powersync",
        }
    }

    /// Whether this is a latest-era workload: `mww` table, endpoints started with
    /// `--endpoint powersync|postgresql`, `readAll`/`writeSome` transactions.
    pub fn is_mww(self) -> bool {
        matches!(
            self,
            Workload::PsRwPgRw | Workload::PsRoPgRw | Workload::PsRwPgRo | Workload::Convergence
        )
    }

    /// Latest era: whether the clients of a PowerSync node (`postgres = false`) or of a
    /// PostgreSQL node write (else their `writeSome` is empty).
    pub fn mww_writes(self, postgres: bool) -> bool {
        !matches!(
            (self, postgres),
            (Workload::PsRoPgRw, false) | (Workload::PsRwPgRo, true)
        )
    }

    /// Latest era: whether the causal checker runs (all but `convergence`).
    pub fn mww_causal(self) -> bool {
        self.is_mww() && self != Workload::Convergence
    }

    /// Whether the endpoints sync through the stand-in with PostgreSQL.
    pub fn is_synced(self) -> bool {
        self.endpoint_mode() == "powersync"
    }

    /// Whether the nodes hold independent databases, so only one node makes sense.
    pub fn single_node(self) -> bool {
        !self.is_synced()
    }

    /// What the clients of an endpoint (`postgres = false`) or of PostgreSQL generate.
    pub fn role(self, postgres: bool) -> Role {
        match (self, postgres) {
            (Workload::PsRoPgWo, true) | (Workload::PsWoPgRo, false) => Role::AppendOnly,
            (Workload::PsRoPgWo, false) | (Workload::PsWoPgRo, true) => Role::ReadOnly,
            _ => Role::Txn,
        }
    }

    /// The list-append check of this workload (seed table A.11):
    /// strict-serializable for the single-node stores, repeatable-read for `ps-ro-pg-wo`,
    /// causal (`strong-session-PL-2`) with intermediate reads (`G1b`) named for `powersync`, and
    /// for `ps-wo-pg-ro` monotonic-atomic-view with fractured reads (`G-single-item`) named,
    /// since Elle's monotonic-atomic-view alone forbids only what read-committed forbids.
    pub fn list_append_opts(self) -> list_append::Opts {
        let (model, anomalies): (&str, &[&str]) = match self {
            Workload::Sqlite3Local | Workload::PowersyncSingle => ("strict-serializable", &[]),
            Workload::PsRoPgWo => ("repeatable-read", &[]),
            // The mww workloads are not list-append; their checkers are the causal and
            // convergence ones.
            Workload::Powersync
            | Workload::PsRwPgRw
            | Workload::PsRoPgRw
            | Workload::PsRwPgRo
            | Workload::Convergence => ("strong-session-PL-2", &["G1b"]),
            Workload::PsWoPgRo => ("monotonic-atomic-view", &["G-single-item", "G1b"]),
        };
        list_append::Opts {
            anomalies: anomalies.iter().map(|a| (*a).to_owned()).collect(),
            ..list_append::Opts::new(model)
        }
    }

    /// Whether the log check ignores case: the seed's sqlite3 workloads grep `(?i)ERROR`, the
    /// others `ERROR`.
    pub fn log_case_insensitive(self) -> bool {
        self == Workload::Sqlite3Local
    }
}

/// Shapes of the generated transactions.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorOpts {
    /// Micro-ops per `txn` transaction (the seed's txn-generator: 4).
    pub txn_length: usize,
    /// Keys per append-only transaction (the seed: 10).
    pub append_keys: usize,
    /// Keys per read-only transaction (the seed: 10).
    pub read_keys: usize,
}

/// Generates transactions; elements are unique across the run, so every append is unique per
/// key as Elle requires.
#[derive(Debug)]
pub struct Generator {
    key_count: i64,
    opts: GeneratorOpts,
    next: AtomicI64,
}

impl Generator {
    /// A generator over keys `0..key_count` with the given shapes.
    pub fn new(key_count: i64, opts: GeneratorOpts) -> Generator {
        Generator {
            key_count,
            opts,
            next: AtomicI64::new(1),
        }
    }

    fn element(&self) -> Element {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn key(&self, rng: &mut fastrand::Rng) -> Key {
        rng.i64(0..self.key_count.max(1))
    }

    fn distinct_keys(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<Key> {
        let n = n.min(usize::try_from(self.key_count).unwrap_or(0));
        let mut keys: Vec<Key> = Vec::with_capacity(n);
        while keys.len() < n {
            let k = self.key(rng);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    /// The next transaction for a client of `role`.
    pub fn next(&self, role: Role, rng: &mut fastrand::Rng) -> Vec<ListAppendMop> {
        match role {
            Role::Txn => (0..self.opts.txn_length)
                .map(|_| {
                    let key = self.key(rng);
                    if rng.bool() {
                        ListAppendMop::Append {
                            key,
                            element: self.element(),
                        }
                    } else {
                        ListAppendMop::Read { key, list: None }
                    }
                })
                .collect(),
            Role::AppendOnly => {
                let element = self.element();
                self.distinct_keys(rng, self.opts.append_keys)
                    .into_iter()
                    .map(|key| ListAppendMop::Append { key, element })
                    .collect()
            }
            Role::ReadOnly => self
                .distinct_keys(rng, self.opts.read_keys)
                .into_iter()
                .map(|key| ListAppendMop::Read { key, list: None })
                .collect(),
        }
    }
}

/// The latest era's `readAll-writeSome` generator (reference B.11): values come from one
/// counter shared by every client (0, 1, 2, ...), so they are unique and increase in invocation
/// order; each transaction writes that value to `keys_txn` random distinct keys.
#[derive(Debug)]
pub struct MwwGenerator {
    key_count: i64,
    keys_txn: usize,
    next: AtomicI64,
}

impl MwwGenerator {
    /// A generator over keys `0..key_count`, `keys_txn` keys per write.
    pub fn new(key_count: i64, keys_txn: usize) -> MwwGenerator {
        MwwGenerator {
            key_count,
            keys_txn,
            next: AtomicI64::new(0),
        }
    }

    /// `[readAll {}] [writeSome {k n ...}]`, or with an empty `writeSome` when `!writes`.
    pub fn next(&self, writes: bool, rng: &mut fastrand::Rng) -> Vec<MwwMop> {
        let mut w = BTreeMap::new();
        if writes {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let want = self
                .keys_txn
                .min(usize::try_from(self.key_count).unwrap_or(0));
            while w.len() < want {
                w.insert(rng.i64(0..self.key_count.max(1)), n);
            }
        }
        vec![MwwMop::ReadAll(BTreeMap::new()), MwwMop::WriteSome(w)]
    }

    /// The final read: `[readAll {}] [writeSome {}]`.
    pub fn final_read() -> Vec<MwwMop> {
        vec![
            MwwMop::ReadAll(BTreeMap::new()),
            MwwMop::WriteSome(BTreeMap::new()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator() -> Generator {
        Generator::new(
            100,
            GeneratorOpts {
                txn_length: 4,
                append_keys: 10,
                read_keys: 10,
            },
        )
    }

    #[test]
    fn append_only_writes_one_new_element_to_distinct_keys() {
        let g = generator();
        let mut rng = fastrand::Rng::with_seed(7);
        let a = g.next(Role::AppendOnly, &mut rng);
        let b = g.next(Role::AppendOnly, &mut rng);
        assert_eq!(a.len(), 10);
        let keys: std::collections::HashSet<Key> = a.iter().map(ListAppendMop::key).collect();
        assert_eq!(keys.len(), 10);
        let elements = |t: &[ListAppendMop]| -> std::collections::HashSet<Element> {
            t.iter()
                .filter_map(|m| match m {
                    ListAppendMop::Append { element, .. } => Some(*element),
                    ListAppendMop::Read { .. } => None,
                })
                .collect()
        };
        assert_eq!(elements(&a).len(), 1);
        assert!(elements(&a).is_disjoint(&elements(&b)));
    }

    #[test]
    fn txns_have_the_configured_length_and_keys_in_range() {
        let g = generator();
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let t = g.next(Role::Txn, &mut rng);
            assert_eq!(t.len(), 4);
            assert!(t.iter().all(|m| (0..100).contains(&m.key())));
        }
        let r = g.next(Role::ReadOnly, &mut rng);
        assert!(
            r.iter()
                .all(|m| matches!(m, ListAppendMop::Read { list: None, .. }))
        );
    }

    #[test]
    fn mww_values_are_shared_unique_and_increasing() {
        let g = MwwGenerator::new(100, 4);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut last = -1;
        for _ in 0..50 {
            let t = g.next(true, &mut rng);
            let [MwwMop::ReadAll(r), MwwMop::WriteSome(w)] = t.as_slice() else {
                panic!("shape {t:?}");
            };
            assert!(r.is_empty());
            assert_eq!(w.len(), 4);
            let vals: std::collections::BTreeSet<i64> = w.values().copied().collect();
            assert_eq!(vals.len(), 1);
            let v = *w.values().next().expect("a write");
            assert!(v > last, "{v} after {last}");
            last = v;
            assert!(w.keys().all(|k| (0..100).contains(k)));
        }
        let ro = g.next(false, &mut rng);
        assert_eq!(ro, MwwGenerator::final_read());
        // Read-only transactions take no value.
        let t = g.next(true, &mut rng);
        let [_, MwwMop::WriteSome(w)] = t.as_slice() else {
            panic!("shape {t:?}");
        };
        assert_eq!(w.values().next().copied(), Some(last + 1));
    }

    #[test]
    fn mww_roles_follow_the_latest_table() {
        assert!(Workload::PsRwPgRw.mww_writes(false) && Workload::PsRwPgRw.mww_writes(true));
        assert!(!Workload::PsRoPgRw.mww_writes(false) && Workload::PsRoPgRw.mww_writes(true));
        assert!(Workload::PsRwPgRo.mww_writes(false) && !Workload::PsRwPgRo.mww_writes(true));
        assert!(Workload::Convergence.is_mww() && !Workload::Convergence.mww_causal());
        assert!(Workload::PsRwPgRw.mww_causal() && !Workload::PsWoPgRo.is_mww());
    }

    #[test]
    fn roles_follow_the_seed_table() {
        assert_eq!(Workload::PsRoPgWo.role(true), Role::AppendOnly);
        assert_eq!(Workload::PsRoPgWo.role(false), Role::ReadOnly);
        assert_eq!(Workload::PsWoPgRo.role(false), Role::AppendOnly);
        assert_eq!(Workload::PsWoPgRo.role(true), Role::ReadOnly);
        assert_eq!(Workload::Powersync.role(false), Role::Txn);
        assert!(!Workload::PowersyncSingle.is_synced());
        assert!(Workload::PsWoPgRo.is_synced());
    }
}
