//! Benchmark: list-append checker time and peak memory on a generated 100k-transaction history
//! (4 micro-ops per transaction, 100 active keys, 100 appends per key, 10 processes).
//!
//! Run with `cargo bench -p checkers --bench list_append_checker` (release profile). Prints the
//! wall-clock time of each step and the process's peak resident set size (`VmHWM` from
//! `/proc/self/status`, which includes the generated history itself). Optional arguments:
//! the number of transactions, then the models to check; `--broken` generates from a store
//! with snapshot reads and no write-conflict check instead (many anomalies, so the cycle search
//! does real work).

use std::time::Instant;

use checkers::history::generate::{self, GenOpts};
use checkers::list_append;

mod support;
use support::proc_status_mib;

fn show(field: &str) -> String {
    proc_status_mib(field).map_or_else(|| "n/a".into(), |m| format!("{m:.0} MiB"))
}

fn main() {
    // `cargo bench` passes `--bench`; ignore flags.
    let broken = std::env::args().any(|a| a == "--broken");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let txns = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let models: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec!["strict-serializable".into(), "serializable".into()]
    };

    let t = Instant::now();
    let history = generate::list_append(&GenOpts {
        txns,
        snapshot_reads: broken,
        ..GenOpts::default()
    });
    println!(
        "generated {}{txns} txns ({} ops) in {:.2} s; RSS {}",
        if broken { "broken-store " } else { "" },
        history.ops.len(),
        t.elapsed().as_secs_f64(),
        show("VmRSS")
    );
    for model in &models {
        let t = Instant::now();
        match list_append::check(&history, model) {
            Ok(v) => println!(
                "check {model}: {:.2} s, valid? {:?}, anomalies {:?}; peak RSS so far {}",
                t.elapsed().as_secs_f64(),
                v.valid,
                v.anomaly_types,
                show("VmHWM")
            ),
            Err(e) => {
                eprintln!("check {model}: {e}");
                std::process::exit(2);
            }
        }
    }
}
