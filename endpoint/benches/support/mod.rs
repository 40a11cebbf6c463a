//! What the `upload` and `drain` benches share: the connectors in the order of the table (the
//! first is the baseline), argument parsing, the PostgreSQL value count and reset, the core
//! library the endpoint must load, and the machine's load.

#![allow(
    dead_code,
    reason = "each bench binary uses a different part of these helpers"
)]

#[path = "../../tests/common/mod.rs"]
pub mod common;

use std::time::Duration;

use common::backend::Backend;

/// The connectors, baseline first.
pub const CONNECTORS: [&str; 3] = [
    "CrudTransactionConnector",
    "CrudBatchConnector",
    "CrudMultiTransactionConnector",
];

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
}

/// `cargo bench` lists targets with `--list`: print nothing and run nothing.
pub fn listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// The benches' multi-thread tokio runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `POWERSYNC_LIB` for the endpoint: the vendored default core, by its full path (an endpoint
/// built in `target/release/` finds no library beside itself).
pub fn core_lib() -> String {
    let core = powersync_sys::VendoredCore::default();
    let path = core.path();
    assert!(
        path.is_file(),
        "vendored core {} not fetched: {} (run vendor/fetch-cores)",
        core.version,
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

/// How many appended values PostgreSQL's `lww` lists hold in all.
pub async fn values_in_postgres(backend: &Backend) -> i64 {
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

/// Waits (polling every 10 ms, at most `timeout`) until PostgreSQL holds `values` values.
pub async fn wait_for_values(backend: &Backend, values: i64, timeout: Duration, what: &str) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let held = values_in_postgres(backend).await;
        if held >= values {
            assert_eq!(held, values, "{what}: more values than written");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: PostgreSQL holds {held} of {values} values after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Empties every list (the seeded keys stay) and the upload ledger, for the next connector.
pub async fn reset(backend: &Backend) {
    backend
        .client
        .batch_execute(
            "UPDATE lww SET v = '';
             DO $$ BEGIN
               IF to_regclass('powersync_endpoint_uploads') IS NOT NULL THEN
                 TRUNCATE powersync_endpoint_uploads;
               END IF;
             END $$;",
        )
        .await
        .unwrap();
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}
