//! The workloads: the seed's (list-append over `lww`) and the latest era's
//! (`readAll`/`writeSome` over the max-write-wins `mww` table): which endpoint
//! mode they run, which clients do what, the transactions they generate and the checkers that
//! judge them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
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
    pub fn endpoint_mode(self) -> endpoint::Mode {
        match self {
            Workload::Sqlite3Local => endpoint::Mode::Sqlite3Local,
            Workload::PowersyncSingle => endpoint::Mode::PowersyncLocal,
            _ => endpoint::Mode::Powersync,
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
        self.endpoint_mode() == endpoint::Mode::Powersync
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

/// How Elle's generator picks a key from the active pool (`--key-dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyDist {
    /// Every active key is equally likely.
    Uniform,
    /// Key `i` of the pool is `2^i` times as likely as the first (Elle's default, base 2).
    Exponential,
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Exponential => "exponential",
        })
    }
}

/// The options of Elle's list-append generator (`elle.list-append/gen`).
#[derive(Debug, Clone, Copy)]
pub struct ElleOpts {
    /// How keys are picked from the active pool.
    pub key_dist: KeyDist,
    /// Keys in the active pool at any time (Elle: 10 exponential, 3 uniform).
    pub key_count: i64,
    /// Writes a key takes at most before it is retired (Elle: 256). Each pool slot draws its
    /// own limit, 1 + a Zipf-distributed number below this.
    pub max_writes_per_key: u64,
    /// Fewest micro-ops per transaction (Elle: 1).
    pub min_txn_length: usize,
    /// Most micro-ops per transaction (Elle: 4).
    pub max_txn_length: usize,
}

/// Shapes of the generated transactions.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorOpts {
    /// `txn` transactions: Elle's generator.
    pub elle: ElleOpts,
    /// Keys per append-only transaction (the seed: 10).
    pub append_keys: usize,
    /// Keys per read-only transaction (the seed: 10).
    pub read_keys: usize,
}

/// The state of Elle's generator, shared by every client as Elle's one lazy sequence is.
#[derive(Debug)]
struct Pool {
    /// The active keys.
    active: Vec<Key>,
    /// How many writes each slot of `active` allows its key.
    max_writes: Vec<u64>,
    /// Writes made to each key so far.
    writes: HashMap<Key, u64>,
    /// Retired keys, oldest first: once the endpoint's keys have all been used, a retirement
    /// brings back the one retired longest ago.
    retired: std::collections::VecDeque<Key>,
}

/// Generates transactions. `txn` transactions follow Elle's list-append generator: 1..N reads
/// or appends (even odds) of keys from a small active pool, picked by `key_dist`; the
/// elements appended to a key are 1, 2, 3, ... (unique per key, as Elle requires); a key that
/// has taken its slot's write limit is retired and replaced by a fresh key one above the
/// largest active key. The endpoint accepts keys `0..key_limit` only, so once those have all
/// been used a retirement brings back the key retired longest ago (its list goes on from
/// where it stopped: elements stay unique per key). Without that, the few active keys would
/// take every later write and their lists, read whole by every read, would grow without
/// bound: a history quadratic in the run's length (a 1000 s run at rate 150 outgrew 24 GiB).
/// Append-only and read-only transactions (the seed's `ps-*-pg-*` generators) use distinct
/// uniform keys of `0..key_limit`, and one new element per append-only transaction, unique
/// across the run.
#[derive(Debug)]
pub struct Generator {
    key_limit: i64,
    opts: GeneratorOpts,
    /// Cumulative weights of Jepsen's `rand/zipf` over `0..max_writes_per_key`.
    zipf_cdf: Vec<f64>,
    pool: Mutex<Pool>,
    next: AtomicI64,
}

/// Jepsen's Zipf skew (`jepsen.random/zipf` default).
const ZIPF_SKEW: f64 = 1.0001;

impl Generator {
    /// A generator over keys `0..key_limit` with the given shapes.
    pub fn new(key_limit: i64, opts: GeneratorOpts) -> Generator {
        let n = opts.elle.max_writes_per_key.max(1);
        let mut total = 0.0;
        let mut zipf_cdf: Vec<f64> = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(ZIPF_SKEW);
                total
            })
            .collect();
        for w in &mut zipf_cdf {
            *w /= total;
        }
        let pool_size = opts.elle.key_count.clamp(1, key_limit.max(1));
        let mut generator = Generator {
            key_limit,
            opts,
            zipf_cdf,
            pool: Mutex::new(Pool {
                active: (0..pool_size).collect(),
                max_writes: Vec::new(),
                writes: HashMap::new(),
                retired: std::collections::VecDeque::new(),
            }),
            next: AtomicI64::new(1),
        };
        // Slot limits are drawn from a fixed seed: the clients' seeds drive the rest.
        let mut rng = fastrand::Rng::with_seed(opts.elle.max_writes_per_key);
        let limits = (0..pool_size)
            .map(|_| generator.write_limit(&mut rng))
            .collect();
        generator
            .pool
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .max_writes = limits;
        generator
    }

    /// A slot's write limit: 1 + Zipf over `0..max_writes_per_key`.
    fn write_limit(&self, rng: &mut fastrand::Rng) -> u64 {
        let u = rng.f64();
        1 + self.zipf_cdf.partition_point(|&c| c < u) as u64
    }

    /// An index into a pool of `n` keys, by `key_dist`.
    fn key_index(&self, rng: &mut fastrand::Rng, n: usize) -> usize {
        match self.opts.elle.key_dist {
            KeyDist::Uniform => rng.usize(..n),
            KeyDist::Exponential => {
                // Elle's rand-key-i, base 2: floor(log2(u * scale + 2)) - 1 with
                // scale = 2 (2^n - 1), which makes index i 2^i times as likely as index 0.
                let scale = 2.0 * (2f64.powi(n as i32) - 1.0);
                let i = (rng.f64() * scale + 2.0).log2().floor() as usize - 1;
                i.min(n - 1)
            }
        }
    }

    /// One transaction of Elle's generator.
    fn elle_txn(&self, rng: &mut fastrand::Rng) -> Vec<ListAppendMop> {
        let ElleOpts {
            min_txn_length,
            max_txn_length,
            ..
        } = self.opts.elle;
        let length = rng.usize(min_txn_length..=max_txn_length.max(min_txn_length));
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut txn = Vec::with_capacity(length);
        while txn.len() < length {
            let append = rng.bool();
            let i = self.key_index(rng, pool.active.len());
            let key = pool.active[i];
            if !append {
                txn.push(ListAppendMop::Read { key, list: None });
                continue;
            }
            let element = pool.writes.get(&key).copied().unwrap_or(0) + 1;
            if element > pool.max_writes[i] {
                let fresh = pool.active.iter().copied().max().unwrap_or(0) + 1;
                let next = if fresh < self.key_limit {
                    Some(fresh)
                } else {
                    pool.retired.pop_front()
                };
                // No key to bring back when every key is active (a pool as large as the key
                // range): the slot keeps its key with a new limit.
                if let Some(next) = next {
                    pool.retired.push_back(key);
                    pool.active[i] = next;
                }
                pool.max_writes[i] = self.write_limit(rng);
                continue;
            }
            pool.writes.insert(key, element);
            txn.push(ListAppendMop::Append {
                key,
                element: element as Element,
            });
        }
        txn
    }

    fn distinct_keys(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<Key> {
        let n = n.min(usize::try_from(self.key_limit).unwrap_or(0));
        let mut keys: Vec<Key> = Vec::with_capacity(n);
        while keys.len() < n {
            let k = rng.i64(0..self.key_limit.max(1));
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    /// The next transaction for a client of `role`.
    pub fn next(&self, role: Role, rng: &mut fastrand::Rng) -> Vec<ListAppendMop> {
        match role {
            Role::Txn => self.elle_txn(rng),
            Role::AppendOnly => {
                let element = self.next.fetch_add(1, Ordering::Relaxed);
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

/// The latest era's `readAll-writeSome` generator (jepsen-powersync at `b77a3d0`): values come from one
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

    fn elle(key_dist: KeyDist, key_count: i64, max_writes_per_key: u64) -> ElleOpts {
        ElleOpts {
            key_dist,
            key_count,
            max_writes_per_key,
            min_txn_length: 4,
            max_txn_length: 4,
        }
    }

    fn generator_with(key_limit: i64, elle: ElleOpts) -> Generator {
        Generator::new(
            key_limit,
            GeneratorOpts {
                elle,
                append_keys: 10,
                read_keys: 10,
            },
        )
    }

    /// The 470f1ac shape: 4 micro-ops, uniform over all 100 keys, no retirement.
    fn generator() -> Generator {
        generator_with(100, elle(KeyDist::Uniform, 100, 1000))
    }

    /// How often each key is touched in `txns` transactions.
    fn key_counts(g: &Generator, txns: usize, seed: u64) -> BTreeMap<Key, usize> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut counts = BTreeMap::new();
        for _ in 0..txns {
            for m in g.next(Role::Txn, &mut rng) {
                *counts.entry(m.key()).or_default() += 1;
            }
        }
        counts
    }

    #[test]
    fn uniform_keys_are_equally_likely() {
        // No retirement: the pool already holds every key the endpoint would accept.
        let g = generator_with(5, elle(KeyDist::Uniform, 5, 256));
        let counts = key_counts(&g, 5000, 9);
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        // 20,000 micro-ops over 5 keys: 4,000 each, within 10%.
        for (k, n) in &counts {
            assert!((3600..=4400).contains(n), "key {k}: {n} of 20000");
        }
    }

    #[test]
    fn exponential_keys_double_in_likelihood_along_the_pool() {
        let g = generator_with(4, elle(KeyDist::Exponential, 4, 256));
        let counts: Vec<f64> = key_counts(&g, 10_000, 5)
            .values()
            .map(|n| *n as f64)
            .collect();
        assert_eq!(counts.len(), 4, "{counts:?}");
        // P(i) = 2^i / 15: 1/15, 2/15, 4/15, 8/15.
        let total: f64 = counts.iter().sum();
        for (i, n) in counts.iter().enumerate() {
            let expected = 2f64.powi(i as i32) / 15.0;
            let got = n / total;
            assert!(
                (got - expected).abs() < 0.02,
                "key {i}: {got:.3}, expected {expected:.3}"
            );
        }
    }

    #[test]
    fn keys_are_retired_after_their_writes_and_replaced_by_larger_ones() {
        // A limit of 1 write per key (Zipf over 0..1 is always 0): every key is appended
        // once, then replaced by one above the largest active key.
        let g = generator_with(1000, elle(KeyDist::Exponential, 3, 1));
        let mut rng = fastrand::Rng::with_seed(2);
        let mut appended: BTreeMap<Key, Vec<Element>> = BTreeMap::new();
        for _ in 0..100 {
            let t = g.next(Role::Txn, &mut rng);
            assert_eq!(t.len(), 4);
            for m in t {
                if let ListAppendMop::Append { key, element } = m {
                    appended.entry(key).or_default().push(element);
                }
            }
        }
        assert!(appended.values().all(|e| e == &[1]), "{appended:?}");
        // Far more keys than the pool of 3 were written, each one larger than the last.
        assert!(appended.len() > 50, "{}", appended.len());
        assert!(appended.keys().all(|k| *k < 1000));
        // With Elle's default limit a key takes several writes, each element one above the
        // last, and keys are still retired.
        let g = generator_with(100, elle(KeyDist::Exponential, 10, 256));
        let mut rng = fastrand::Rng::with_seed(3);
        let mut appended: BTreeMap<Key, Vec<Element>> = BTreeMap::new();
        for _ in 0..500 {
            for m in g.next(Role::Txn, &mut rng) {
                if let ListAppendMop::Append { key, element } = m {
                    appended.entry(key).or_default().push(element);
                }
            }
        }
        for (k, e) in &appended {
            let want: Vec<Element> = (1..=e.len() as Element).collect();
            assert_eq!(e, &want, "key {k}");
        }
        assert!(appended.keys().any(|k| *k >= 10), "no key was retired");
        assert!(appended.values().any(|e| e.len() > 1), "{appended:?}");
    }

    #[test]
    fn once_the_endpoint_keys_run_out_retired_keys_come_back_in_turn() {
        // 5 keys, a pool of 3, one write per slot: the pool runs out of fresh keys at once.
        let g = generator_with(5, elle(KeyDist::Uniform, 3, 1));
        let mut rng = fastrand::Rng::with_seed(4);
        let mut appended: BTreeMap<Key, Vec<Element>> = BTreeMap::new();
        for _ in 0..2000 {
            for m in g.next(Role::Txn, &mut rng) {
                if let ListAppendMop::Append { key, element } = m {
                    appended.entry(key).or_default().push(element);
                }
            }
        }
        assert_eq!(
            appended.keys().copied().collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        for (k, e) in &appended {
            // Elements stay unique per key across its returns: 1, 2, 3, ...
            assert_eq!(e, &(1..=e.len() as Element).collect::<Vec<_>>(), "key {k}");
        }
        // Writes spread over every key, not only the last ones active: no list runs away.
        let (min, max) = appended
            .values()
            .map(Vec::len)
            .fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
        assert!(max <= 2 * min, "lists {min}..{max} long");
    }

    #[test]
    fn txn_lengths_lie_between_min_and_max() {
        let g = generator_with(
            100,
            ElleOpts {
                min_txn_length: 2,
                max_txn_length: 5,
                ..elle(KeyDist::Exponential, 10, 256)
            },
        );
        let mut rng = fastrand::Rng::with_seed(6);
        let lengths: std::collections::BTreeSet<usize> = (0..500)
            .map(|_| g.next(Role::Txn, &mut rng).len())
            .collect();
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [2, 3, 4, 5]);
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
