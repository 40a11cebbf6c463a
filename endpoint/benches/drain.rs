//! Drain rate of the three connectors: how fast a full upload queue reaches PostgreSQL once the
//! endpoint can reach it again (issue #17). Unlike the `upload` bench, which is bounded by the
//! rate of local writes, this times the connector's upload path alone.
//!
//! ```text
//! cargo bench -p endpoint --bench drain -- [--txns 10000] [--clients 10]
//! ```
//!
//! For each connector, on a fresh database in a temporary directory:
//! 1. the endpoint starts with `--failure-policy forgiving` (uploads that fail are retried, not
//!    fatal, and the ledger of uploaded transactions is kept) and `PG_DATABASE_PORT` pointed at a
//!    port nothing listens on (its uploads fail with "connection refused" and back off; the
//!    stand-in stays reachable, which the endpoint's start-up needs for its first sync), and `--clients` keep-alive clients write
//!    `--txns` Jepsen list-append transactions `[r a] [append a 2n] [r b] [append b 2n+1]`
//!    (random keys `a`, `b` in 0..100, unique values) through `/sql-txn`; PostgreSQL must then
//!    hold none of their values;
//! 2. the endpoint is killed with SIGKILL (so the queue also has to survive a crash);
//! 3. the clock starts, the endpoint restarts on the same database file with the real
//!    PostgreSQL port, and PostgreSQL is polled (a count of the values in `lww`) until it holds
//!    all `2 × txns` values; the clock stops;
//! 4. PostgreSQL's lists must equal the endpoint's local lists key by key (nothing lost,
//!    duplicated or reordered).
//!
//! Printed per connector: seconds and txn/s drained, the ratio against
//! `CrudTransactionConnector` in this run, the issue's target, the endpoint process's CPU time
//! over the drain as a share of one core and of the machine (2 cores here: where the time goes),
//! and for the ledger-keeping connectors how many client transactions each PostgreSQL
//! transaction carried (distinct `uploaded_at` = transaction start times in the ledger).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::common::backend::Backend;
use support::common::{Endpoint, Workdir, stored_list, unused_port};
use support::{CONNECTORS, arg, core_lib, load_average, reset, values_in_postgres};

/// xorshift64*: a small deterministic generator for the keys.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Transaction `n`: `[r a] [append a 2n] [r b] [append b 2n+1]`.
fn list_append_txn(rng: &mut u64, n: u64) -> String {
    let (a, b) = (next(rng) % 100, next(rng) % 100);
    let (x, y) = (2 * n, 2 * n + 1);
    format!(
        r#"{{"value":[{{"f":"r","k":{a},"v":null}},{{"f":"append","k":{a},"v":{x}}},{{"f":"r","k":{b},"v":null}},{{"f":"append","k":{b},"v":{y}}}]}}"#
    )
}

/// Writes transactions `0..txns` from `clients` concurrent keep-alive clients.
async fn fill(endpoint: Arc<Endpoint>, txns: u64, clients: u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (c + 1);
                let mut n = c;
                while n < txns {
                    let reply = endpoint
                        .post("/sql-txn", list_append_txn(&mut rng, n))
                        .await;
                    assert_eq!(reply.status, 200, "{reply:?}");
                    n += clients;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// User plus system CPU time of process `pid` so far (`/proc/<pid>/stat`, in Linux's fixed
/// USER_HZ of 100 ticks per second).
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<u64> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// Busy and total jiffies of the whole machine (`/proc/stat`, first line).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    let idle = fields[3] + fields[4];
    (fields.iter().sum::<u64>() - idle, fields.iter().sum())
}

/// The endpoint's lists by key, as `/db/list` shows them.
async fn local_lists(endpoint: &Endpoint) -> BTreeMap<i64, Vec<i64>> {
    endpoint
        .rows()
        .await
        .iter()
        .map(|r| {
            (
                r["k"].as_i64().unwrap(),
                stored_list(r["v"].as_str().unwrap()),
            )
        })
        .collect()
}

/// Client transactions per PostgreSQL transaction, from the ledger; `None` without one.
async fn txns_per_pg_commit(backend: &Backend) -> Option<f64> {
    let row = backend
        .client
        .query_one(
            "SELECT count(*)::float8, count(DISTINCT uploaded_at)::float8 FROM powersync_endpoint_uploads",
            &[],
        )
        .await
        .ok()?;
    let (txns, commits): (f64, f64) = (row.get(0), row.get(1));
    (commits > 0.0).then(|| txns / commits)
}

/// The issue's target for `connector`, and whether `rate` (with `ratio`) meets it.
fn target(connector: &str, rate: f64, ratio: f64) -> (&'static str, bool) {
    match connector {
        "CrudTransactionConnector" => (">= 1000 txn/s", rate >= 1000.0),
        "CrudMultiTransactionConnector" => {
            (">= 10000 txn/s, >= 10x", rate >= 10_000.0 && ratio >= 10.0)
        }
        _ => ("none", true),
    }
}

fn main() {
    if support::listing() {
        return;
    }
    let txns = arg("--txns", 10_000);
    let clients = arg("--clients", 10);
    let values = i64::try_from(2 * txns).unwrap();
    let lib = core_lib();
    support::runtime().block_on(async {
        let backend = Backend::start().await;
        let dead_port = unused_port().to_string();
        println!(
            "drain bench: {txns} list-append transactions (2 appends each) queued from {clients} \
             clients while PostgreSQL is unreachable, then drained; load average before: {}",
            load_average()
        );
        println!(
            "{:<30} {:>6} {:>7} {:>8} {:>7} {:>6} {:>7} {:>8}  target",
            "connector", "fill s", "drain s", "txn/s", "ratio", "ep CPU", "machine", "txn/PGtx"
        );
        let mut baseline = None;
        for connector in CONNECTORS {
            reset(&backend).await;
            let wd = Workdir::new();

            let filling = Instant::now();
            let ep = Arc::new(backend.endpoint(
                &wd,
                connector,
                &[
                    ("POWERSYNC_LIB", lib.as_str()),
                    ("ENDPOINT_FAILURE_POLICY", "forgiving"),
                    ("PG_DATABASE_PORT", dead_port.as_str()),
                ],
            ));
            fill(ep.clone(), txns, clients).await;
            let fill_secs = filling.elapsed().as_secs_f64();
            assert_eq!(
                values_in_postgres(&backend).await,
                0,
                "{connector}: values reached PostgreSQL while it was unreachable"
            );
            let mut ep = Arc::into_inner(ep).unwrap();
            ep.signal(Signal::SIGKILL);
            ep.wait_exit(Duration::from_secs(10))
                .expect("the endpoint exits on SIGKILL");

            let start = Instant::now();
            let (busy0, total0) = machine_jiffies();
            let ep = backend.endpoint(
                &wd,
                connector,
                &[
                    ("POWERSYNC_LIB", lib.as_str()),
                    ("ENDPOINT_FAILURE_POLICY", "forgiving"),
                ],
            );
            support::wait_for_values(&backend, values, Duration::from_secs(600), connector).await;
            let secs = start.elapsed().as_secs_f64();
            // The process started with the clock: all its CPU time is the drain's.
            let cpu = cpu_time(ep.pid().as_raw());
            let (busy1, total1) = machine_jiffies();

            let pg = backend.lists().await;
            let local = local_lists(&ep).await;
            assert_eq!(pg, local, "{connector}: PostgreSQL differs from the endpoint");
            let per_commit = txns_per_pg_commit(&backend).await;
            drop(ep);

            let rate = txns as f64 / secs;
            let base = *baseline.get_or_insert(rate);
            let ratio = rate / base;
            let (goal, met) = target(connector, rate, ratio);
            println!(
                "{connector:<30} {fill_secs:>6.2} {secs:>7.2} {rate:>8.0} {ratio:>7.2} {:>5.0}% {:>6.0}% {:>8}  {goal}{}",
                cpu.as_secs_f64() / secs * 100.0,
                (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * 100.0,
                per_commit.map_or("-".to_owned(), |p| format!("{p:.1}")),
                if met { "" } else { " NOT MET" }
            );
        }
        println!("load average after: {}", load_average());
        backend.shutdown().await;
    });
}
