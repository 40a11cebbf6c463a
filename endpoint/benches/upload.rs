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

mod support;

use std::time::{Duration, Instant};

use support::common::Workdir;
use support::common::backend::{Backend, append_txn};
use support::{CONNECTORS, arg, core_lib, reset, wait_for_values};

fn main() {
    if support::listing() {
        return;
    }
    let txns = arg("--txns", 2000);
    let clients = arg("--clients", 10);
    let lib = core_lib();
    support::runtime().block_on(async {
        let backend = Backend::start().await;
        println!("{txns} transactions from {clients} clients per connector; each appends 1 value");
        println!(
            "{:<32} {:>10} {:>10} {:>8}",
            "connector", "seconds", "txn/s", "ratio"
        );
        let mut baseline = None;
        for connector in CONNECTORS {
            reset(&backend).await;
            let wd = Workdir::new();
            let ep = std::sync::Arc::new(backend.endpoint(
                &wd,
                connector,
                &[("POWERSYNC_LIB", lib.as_str())],
            ));
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
            wait_for_values(&backend, txns as i64, Duration::from_secs(300), connector).await;
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
