//! Local write transactions per second in the Jepsen list-append shape (4 micro-ops per
//! transaction, each a read by key or an append to a text value, on a 100-row PowerSync table),
//! through the wrapper (`PowerSyncDatabase::write_transaction`, from async code) against the same
//! SQL on a bare rusqlite connection with the same core and pragmas, in one process.
//!
//! The wrapper also runs with a change subscriber on the written table, draining its stream in
//! a task of the same runtime while the transactions run: a `watch` of the whole table (default
//! options: re-run at most every 30 ms on a reader) and a `table_updates` stream (woken by every
//! commit). Their rates are compared with the wrapper's without any subscriber, which is the cost
//! of change notifications to a writer.
//!
//! Rounds of the four variants alternate (the variant that goes first rotates), each from the
//! same database state. Printed for
//! `synchronous=NORMAL` and `FULL`: each variant's median rate, and each ratio as the median
//! of the ratios within a round (variants measured back to back, so the disk's fsync times,
//! which drift by more than these ratios from minute to minute on a VM, cancel out), with the
//! lowest and highest round's ratio beside it.
//!
//! Run: `cargo bench -p powersync --bench write_transactions` (release build). Environment:
//! `BENCH_TXNS` transactions per round (default 2000), `BENCH_ROUNDS` (default 5), `BENCH_SYNC`
//! (`NORMAL` or `FULL`; default both), `BENCH_DIR` the directory the databases are made in
//! (default the system's temp dir; `/dev/shm`, a tmpfs, takes the disk out of the figures, so
//! the ratios are the CPU cost alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use powersync::rusqlite::{Connection, Transaction, TransactionBehavior};
use powersync::schema::{Column, Schema, Table};
use powersync::{
    CoreLibrary, DatabaseOptions, Error, PowerSyncDatabase, Pragmas, Synchronous, WatchOptions,
};
use tokio::runtime::Runtime;

const KEYS: i64 = 100;

fn schema() -> Schema {
    Schema::new(vec![Table::new(
        "lww",
        vec![Column::integer("k"), Column::text("v")],
    )])
}

/// One list-append transaction: 4 micro-ops, each a read or an append on a random key.
fn txn(tx: &Transaction<'_>, ops: &[(bool, i64, i64)]) -> Result<(), Error> {
    let mut read = tx.prepare_cached("SELECT v FROM lww WHERE k = ?1")?;
    let mut append =
        tx.prepare_cached("UPDATE lww SET v = coalesce(v || ' ', '') || ?2 WHERE k = ?1")?;
    for &(is_read, k, v) in ops {
        if is_read {
            let _: Option<String> = read.query_row([k], |r| r.get(0))?;
        } else {
            append.execute((k, v.to_string()))?;
        }
    }
    Ok(())
}

fn random_ops() -> Vec<(bool, i64, i64)> {
    (0..4)
        .map(|_| {
            (
                fastrand::bool(),
                fastrand::i64(0..KEYS),
                fastrand::i64(0..1_000_000),
            )
        })
        .collect()
}

fn seed(tx: &Transaction<'_>) -> Result<(), Error> {
    for k in 0..KEYS {
        tx.execute(
            "INSERT INTO lww(id, k, v) VALUES (CAST(?1 AS TEXT), ?1, NULL)",
            [k],
        )?;
    }
    Ok(())
}

/// Puts a database back in the state every round starts from: the seeded rows with empty
/// values, an empty upload queue, the WAL checkpointed. Appends make values and queued
/// entries grow, so without it each round would write more than the one before, and the
/// wrapper's database (three variants' rounds) would grow faster than the bare one.
fn reset(conn: &Connection) {
    conn.execute_batch(
        "BEGIN IMMEDIATE; UPDATE lww SET v = NULL; DELETE FROM ps_crud; COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

fn pragmas(sync: Synchronous) -> Pragmas {
    Pragmas {
        synchronous: sync,
        ..Pragmas::default()
    }
}

fn bare_connection(core: &CoreLibrary, path: &std::path::Path, sync: Synchronous) -> Connection {
    let mut conn = Connection::open(path).unwrap();
    core.load_into(&conn).unwrap();
    let p = pragmas(sync);
    conn.busy_timeout(p.busy_timeout).unwrap();
    let sync_sql = match sync {
        Synchronous::Normal => "NORMAL",
        _ => "FULL",
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync_sql}; PRAGMA journal_size_limit = {};",
        p.journal_size_limit
    ))
    .unwrap();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    tx.query_row("SELECT powersync_init()", [], |_| Ok(()))
        .unwrap();
    tx.query_row(
        "SELECT powersync_replace_schema(?1)",
        [schema().to_json().unwrap()],
        |_| Ok(()),
    )
    .unwrap();
    seed(&tx).unwrap();
    tx.commit().unwrap();
    conn
}

/// What listens to the wrapper's commits while it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscriber {
    None,
    /// `watch("SELECT k, v FROM lww ORDER BY k")` with the default options.
    Watch,
    /// `table_updates()`.
    TableUpdates,
}

/// One of the measured variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Bare,
    Wrapper(Subscriber),
}

const VARIANTS: [Variant; 4] = [
    Variant::Bare,
    Variant::Wrapper(Subscriber::None),
    Variant::Wrapper(Subscriber::Watch),
    Variant::Wrapper(Subscriber::TableUpdates),
];

fn run_bare(bare: &mut Connection, txns: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..txns {
        let ops = random_ops();
        let tx = bare
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        txn(&tx, &ops).unwrap();
        tx.commit().unwrap();
    }
    txns as f64 / start.elapsed().as_secs_f64()
}

/// Runs `txns` wrapper transactions with `subscriber` draining its stream in a task; returns
/// the rate and how many items the subscriber received. The clock starts once the subscriber is
/// subscribed (a watch: after its first result).
fn run_wrapper(
    rt: &Runtime,
    db: &PowerSyncDatabase,
    txns: usize,
    subscriber: Subscriber,
) -> (f64, usize) {
    rt.block_on(async {
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let task = match subscriber {
            Subscriber::None => None,
            Subscriber::Watch => {
                let mut rows = db.watch(
                    "SELECT k, v FROM lww ORDER BY k",
                    vec![],
                    WatchOptions::default(),
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
                );
                rows.next().await.unwrap().unwrap();
                Some(tokio::spawn(async move {
                    while let Some(result) = rows.next().await {
                        result.unwrap();
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }))
            }
            Subscriber::TableUpdates => {
                let mut updates = db.table_updates();
                Some(tokio::spawn(async move {
                    while let Some(tables) = updates.next().await {
                        assert!(tables.contains("lww"), "{tables:?}");
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }))
            }
        };
        let start = Instant::now();
        for _ in 0..txns {
            let ops = random_ops();
            db.write_transaction(move |tx| txn(tx, &ops)).await.unwrap();
        }
        let rate = txns as f64 / start.elapsed().as_secs_f64();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        (rate, received.load(Ordering::Relaxed))
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let txns = env_usize("BENCH_TXNS", 2000);
    let rounds = env_usize("BENCH_ROUNDS", 5);
    let core = CoreLibrary::load().expect("a core (run vendor/fetch-cores)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "core {}, {txns} transactions x {rounds} rounds per variant, 4 micro-ops each",
        core.version()
    );
    println!(
        "{:<10} {:>10} {:>10} {:>6} {:>10} {:>6} {:>8} {:>10} {:>6} {:>8}",
        "sync",
        "bare/s",
        "wrapper/s",
        "ratio",
        "+watch/s",
        "ratio",
        "items",
        "+updates/s",
        "ratio",
        "items"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>6} {:>10} {:>6} {:>8} {:>10} {:>6} {:>8}",
        "", "", "", "/bare", "", "/wrap", "/round", "", "/wrap", "/round"
    );
    let syncs = match std::env::var("BENCH_SYNC").as_deref() {
        Ok("NORMAL") => vec![Synchronous::Normal],
        Ok("FULL") => vec![Synchronous::Full],
        _ => vec![Synchronous::Normal, Synchronous::Full],
    };
    for sync in syncs {
        let dir = match std::env::var_os("BENCH_DIR") {
            Some(parent) => tempfile::tempdir_in(parent).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let mut bare = bare_connection(core, &dir.path().join("bare.db"), sync);
        let db = rt.block_on(async {
            let options = DatabaseOptions::default()
                .with_core(core)
                .with_pragmas(pragmas(sync));
            let db = PowerSyncDatabase::open(dir.path().join("wrapper.db"), &schema(), options)
                .await
                .unwrap();
            db.write_transaction(seed).await.unwrap();
            db
        });
        // Per variant: the rates of the rounds and the subscriber's items per round.
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        let mut items: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        for round in 0..rounds {
            // Rotate which variant goes first, so that drift in the machine's load or the
            // disk's state does not favour one of them.
            for i in 0..VARIANTS.len() {
                let v = (round + i) % VARIANTS.len();
                let (rate, received) = match VARIANTS[v] {
                    Variant::Bare => {
                        reset(&bare);
                        (run_bare(&mut bare, txns), 0)
                    }
                    Variant::Wrapper(subscriber) => {
                        rt.block_on(async { reset(&db.writer().await.unwrap()) });
                        run_wrapper(&rt, &db, txns, subscriber)
                    }
                };
                rates[v].push(rate);
                items[v].push(received as f64);
            }
        }
        let index = |v: Variant| VARIANTS.iter().position(|x| *x == v).unwrap();
        let rate = |v: Variant| {
            let i = index(v);
            (median(rates[i].clone()), median(items[i].clone()))
        };
        // The median, lowest and highest of `v`'s rate over `of`'s, round by round.
        let ratio = |v: Variant, of: Variant| {
            let (a, b) = (&rates[index(v)], &rates[index(of)]);
            let xs: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(0.0, f64::max);
            (median(xs), lo, hi)
        };
        let (b, _) = rate(Variant::Bare);
        let (w, _) = rate(Variant::Wrapper(Subscriber::None));
        let (watch, watch_items) = rate(Variant::Wrapper(Subscriber::Watch));
        let (updates, update_items) = rate(Variant::Wrapper(Subscriber::TableUpdates));
        let none = Variant::Wrapper(Subscriber::None);
        let ratios = [
            ratio(none, Variant::Bare),
            ratio(Variant::Wrapper(Subscriber::Watch), none),
            ratio(Variant::Wrapper(Subscriber::TableUpdates), none),
        ];
        println!(
            "{:<10} {:>10.0} {:>10.0} {:>6.3} {:>10.0} {:>6.3} {:>8.0} {:>10.0} {:>6.3} {:>8.0}",
            format!("{sync:?}"),
            b,
            w,
            ratios[0].0,
            watch,
            ratios[1].0,
            watch_items,
            updates,
            ratios[2].0,
            update_items
        );
        println!(
            "{:<10} round ratios (lowest-highest): wrapper/bare {:.3}-{:.3}, +watch {:.3}-{:.3}, \
             +updates {:.3}-{:.3}",
            "", ratios[0].1, ratios[0].2, ratios[1].1, ratios[1].2, ratios[2].1, ratios[2].2
        );
        rt.block_on(db.close()).unwrap();
    }
}
