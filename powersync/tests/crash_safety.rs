//! Crash safety: a child process writes transactions and reports each one after its commit
//! returned; it is killed with SIGKILL at a random moment, several times. After reopening, every
//! acknowledged transaction is present with its CRUD entries, and no transaction is
//! half-present.
//!
//! This test binary is its own child (`--child DB`), so it runs without a test harness and
//! reports in the plain `N passed, N failed` form.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use powersync::schema::{Column, Schema, Table};
use powersync::{DatabaseOptions, Error, PowerSyncDatabase};

fn schema() -> Schema {
    Schema::new(vec![Table::new(
        "todos",
        vec![Column::text("description"), Column::integer("txn")],
    )])
}

fn options() -> DatabaseOptions {
    let default = powersync_sys::VendoredCore::default();
    DatabaseOptions::default().with_core(default.load().expect("run vendor/fetch-cores"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The child: writes transaction after transaction, printing `ack N` after each commit.
fn child(db_path: &Path) {
    runtime().block_on(async {
        let db = PowerSyncDatabase::open(db_path, &schema(), options())
            .await
            .expect("child opens");
        let start: i64 = db
            .query("SELECT coalesce(max(txn) + 1, 0) FROM todos", [], |r| {
                r.get(0)
            })
            .await
            .expect("read start")[0];
        let mut out = std::io::stdout().lock();
        for txn in start.. {
            db.write_transaction(move |tx| {
                for part in ["a", "b", "c"] {
                    tx.execute(
                        "INSERT INTO todos(id, description, txn) VALUES (?1, ?2, ?3)",
                        (format!("{txn}-{part}"), "x".repeat(200), txn),
                    )?;
                }
                Ok::<_, Error>(())
            })
            .await
            .expect("write");
            writeln!(out, "ack {txn}")
                .and_then(|()| out.flush())
                .expect("report");
        }
    });
}

fn run_round(exe: &Path, db_path: &Path, acked: &mut BTreeSet<i64>) -> Result<(), String> {
    let mut child = Command::new(exe)
        .arg("--child")
        .arg(db_path)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let kill_after = Duration::from_millis(fastrand::u64(150..900));
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<i64>().ok()))
            .collect::<Vec<i64>>()
    });
    let started = Instant::now();
    while started.elapsed() < kill_after {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("child exited early: {status}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().map_err(|e| format!("SIGKILL: {e}"))?;
    child.wait().map_err(|e| format!("wait: {e}"))?;
    let acks = reader.join().map_err(|_| "reader thread panicked")?;
    acked.extend(acks);
    Ok(())
}

fn verify(db_path: &Path, acked: &BTreeSet<i64>) -> Result<usize, String> {
    runtime().block_on(async {
        let db = PowerSyncDatabase::open(db_path, &schema(), options())
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<(i64, String)> = db
            .query("SELECT txn, id FROM todos", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut per_txn: BTreeMap<i64, usize> = BTreeMap::new();
        for (txn, _) in &rows {
            *per_txn.entry(*txn).or_default() += 1;
        }
        let mut crud_per_tx: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut cursor = db.crud_transactions();
        while let Some(tx) = cursor.next().await.map_err(|e| e.to_string())? {
            let id = tx
                .transaction_id
                .ok_or("CRUD entry without a transaction id")?;
            crud_per_tx.insert(id, tx.crud.iter().map(|e| e.id.clone()).collect());
        }
        for txn in acked {
            if per_txn.get(txn) != Some(&3) {
                return Err(format!(
                    "acknowledged transaction {txn} has {:?} of 3 rows",
                    per_txn.get(txn)
                ));
            }
        }
        if let Some((txn, n)) = per_txn.iter().find(|(_, n)| **n != 3) {
            return Err(format!("transaction {txn} is half-present: {n} of 3 rows"));
        }
        if crud_per_tx.len() != per_txn.len() {
            return Err(format!(
                "{} transactions but {} CRUD transactions",
                per_txn.len(),
                crud_per_tx.len()
            ));
        }
        for (tx_id, ids) in &crud_per_tx {
            let txns: BTreeSet<&str> = ids
                .iter()
                .map(|id| id.split('-').next().unwrap_or(""))
                .collect();
            if ids.len() != 3 || txns.len() != 1 {
                return Err(format!(
                    "CRUD transaction {tx_id} holds {ids:?}: not one whole local transaction"
                ));
            }
        }
        db.close().await.map_err(|e| e.to_string())?;
        Ok(per_txn.len())
    })
}

fn parent() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db_path = dir.path().join("crash.db");
    let mut acked = BTreeSet::new();
    for round in 0..6 {
        run_round(&exe, &db_path, &mut acked)?;
        let present = verify(&db_path, &acked)?;
        println!(
            "round {round}: {} acknowledged, {present} present, none half-present",
            acked.len()
        );
    }
    if acked.len() < 10 {
        return Err(format!(
            "only {} transactions were acknowledged: the child barely ran",
            acked.len()
        ));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[pos + 1]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("crash_safety: test");
        return;
    }
    println!("running 1 test");
    match parent() {
        Ok(()) => {
            println!("test acknowledged_transactions_survive_sigkill ... ok\n\n1 passed, 0 failed")
        }
        Err(e) => {
            println!(
                "test acknowledged_transactions_survive_sigkill ... FAILED\n{e}\n\n0 passed, 1 failed"
            );
            std::process::exit(1);
        }
    }
}
