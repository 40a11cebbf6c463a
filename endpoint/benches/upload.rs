//! Upload throughput of the three connectors: client transactions per second that reach
//! PostgreSQL, end to end (HTTP `/sql-txn` → local commit → upload loop → connector →
//! PostgreSQL), with a throwaway PostgreSQL and the stand-in sync service on this machine.
//!
//! ```text
//! cargo bench -p endpoint --bench upload -- [--txns 2000] [--clients 10]
//! ```
//!
//! For each connector a fresh endpoint gets `--txns` transactions (each appends one unique
//! value to one random key) from `--clients` concurrent keep-alive clients; the clock stops
//! when PostgreSQL holds every value. `CrudTransactionConnector` is the baseline of the ratio
//! column.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Workdir;
use common::backend::{Backend, append_txn};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
}

async fn values_in_postgres(backend: &Backend) -> i64 {
    backend
        .client
        .query_one(
            "SELECT coalesce(sum(cardinality(string_to_array(btrim(v), ' '))), 0)::bigint FROM lww WHERE btrim(v) <> ''",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let txns = arg("--txns", 2000);
    let clients = arg("--clients", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = Backend::start().await;
        println!("{txns} transactions from {clients} clients per connector; each appends 1 value");
        println!(
            "{:<32} {:>10} {:>10} {:>8}",
            "connector", "seconds", "txn/s", "ratio"
        );
        let mut baseline = None;
        for connector in [
            "CrudTransactionConnector",
            "CrudBatchConnector",
            "CrudMultiTransactionConnector",
        ] {
            backend
                .client
                .execute("UPDATE lww SET v = ''", &[])
                .await
                .unwrap();
            let wd = Workdir::new();
            let ep = std::sync::Arc::new(backend.endpoint(&wd, connector, &[]));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let ep = ep.clone();
                tasks.push(tokio::spawn(async move {
                    let mut value = c;
                    while value < txns {
                        let reply = ep
                            .post(
                                "/sql-txn",
                                append_txn(&[(value % 100) as i64], value as i64),
                            )
                            .await;
                        assert_eq!(reply.status, 200, "{reply:?}");
                        value += clients;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(300);
            while values_in_postgres(&backend).await < txns as i64 {
                assert!(
                    Instant::now() < deadline,
                    "{connector}: uploads did not finish"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let secs = start.elapsed().as_secs_f64();
            let rate = txns as f64 / secs;
            let base = *baseline.get_or_insert(rate);
            println!(
                "{connector:<32} {secs:>10.2} {rate:>10.0} {:>8.2}",
                rate / base
            );
        }
        backend.shutdown().await;
    });
}
