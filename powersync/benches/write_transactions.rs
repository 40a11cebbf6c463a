//! Local write transactions per second in the Jepsen list-append shape (4 micro-ops per
//! transaction, each a read by key or an append to a text value, on a 100-row PowerSync table),
//! through the wrapper (`PowerSyncDatabase::write_transaction`, from async code) against the same
//! SQL on a bare rusqlite connection with the same core and pragmas, in one process. Rounds of
//! the two alternate; the medians and their ratio are printed for `synchronous=NORMAL` and
//! `FULL`.
//!
//! Run: `cargo bench -p powersync --bench write_transactions` (release build). Environment:
//! `BENCH_TXNS` transactions per round (default 2000), `BENCH_ROUNDS` (default 5), `BENCH_SYNC`
//! (`NORMAL` or `FULL`; default both). The variant that runs first alternates between rounds.

use std::time::Instant;

use powersync::rusqlite::{Connection, Transaction, TransactionBehavior};
use powersync::schema::{Column, Schema, Table};
use powersync::{CoreLibrary, DatabaseOptions, Error, PowerSyncDatabase, Pragmas, Synchronous};

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
        "{:<10} {:>14} {:>14} {:>8}",
        "synchronous", "bare txn/s", "wrapper txn/s", "ratio"
    );
    let syncs = match std::env::var("BENCH_SYNC").as_deref() {
        Ok("NORMAL") => vec![Synchronous::Normal],
        Ok("FULL") => vec![Synchronous::Full],
        _ => vec![Synchronous::Normal, Synchronous::Full],
    };
    for sync in syncs {
        let dir = tempfile::tempdir().unwrap();
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
        let (mut bare_rates, mut wrapper_rates) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which variant goes first, so that drift in the machine's load or the
            // disk's state does not favour one of them.
            let mut run_bare = || {
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
            };
            let run_wrapper = || {
                let start = Instant::now();
                rt.block_on(async {
                    for _ in 0..txns {
                        let ops = random_ops();
                        db.write_transaction(move |tx| txn(tx, &ops)).await.unwrap();
                    }
                });
                txns as f64 / start.elapsed().as_secs_f64()
            };
            if round % 2 == 0 {
                bare_rates.push(run_bare());
                wrapper_rates.push(run_wrapper());
            } else {
                wrapper_rates.push(run_wrapper());
                bare_rates.push(run_bare());
            }
        }
        let (b, w) = (median(bare_rates), median(wrapper_rates));
        println!(
            "{:<10} {:>14.0} {:>14.0} {:>8.3}",
            format!("{sync:?}"),
            b,
            w,
            w / b
        );
        rt.block_on(db.close()).unwrap();
    }
}
