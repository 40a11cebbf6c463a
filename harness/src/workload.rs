//! The seed's workloads (reference A.11): which endpoint mode they run, which clients do what,
//! the transactions they generate and the checkers that judge them.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use clap::ValueEnum;

use crate::check::list_append;
use crate::history::{Element, Key, ListAppendMop};

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
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Sqlite3Local => "sqlite3-local",
            Workload::PowersyncSingle => "powersync-single",
            Workload::Powersync => "powersync",
            Workload::PsRoPgWo => "ps-ro-pg-wo",
            Workload::PsWoPgRo => "ps-wo-pg-ro",
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
            Workload::Powersync => ("strong-session-PL-2", &["G1b"]),
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
    /// Keys are `0..key_count` (the seed seeds 100).
    pub key_count: i64,
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
    opts: GeneratorOpts,
    next: AtomicI64,
}

impl Generator {
    /// A generator with the given shapes.
    pub fn new(opts: GeneratorOpts) -> Generator {
        Generator {
            opts,
            next: AtomicI64::new(1),
        }
    }

    fn element(&self) -> Element {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn key(&self, rng: &mut fastrand::Rng) -> Key {
        rng.i64(0..self.opts.key_count.max(1))
    }

    fn distinct_keys(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<Key> {
        let n = n.min(usize::try_from(self.opts.key_count).unwrap_or(0));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn generator() -> Generator {
        Generator::new(GeneratorOpts {
            key_count: 100,
            txn_length: 4,
            append_keys: 10,
            read_keys: 10,
        })
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
