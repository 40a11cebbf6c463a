//! Benchmark: causal-consistency and strong-convergence checker time and peak memory on a
//! generated 100k-transaction max-write-wins history (100 keys, 4 writes per transaction,
//! 10 processes on 5 nodes).
//!
//! Run with `cargo bench -p checkers --bench mww_checkers [-- <txns>]`. Prints wall-clock times
//! and the peak resident set size (`VmHWM` from `/proc/self/status`).

use std::time::Instant;

use checkers::history::generate::{self, MwwGenOpts};
use checkers::{causal, convergence};

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM"))?.to_owned();
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} MiB", kb / 1024.0))
        })
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let txns = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let opts = MwwGenOpts {
        txns,
        key_count: 100,
        keys_per_txn: 4,
        concurrency: 10,
        nodes: 5,
        seed: 7,
    };
    let t = Instant::now();
    let (history, store) = generate::mww(&opts);
    println!(
        "generated {txns} mww txns ({} ops) in {:.2} s; peak RSS {}",
        history.ops.len(),
        t.elapsed().as_secs_f64(),
        peak_rss()
    );
    let t = Instant::now();
    let v = causal::check(
        &history,
        &causal::Opts {
            key_count: Some(100),
        },
    );
    println!(
        "causal-consistency: {:.2} s, valid? {:?}; peak RSS {}",
        t.elapsed().as_secs_f64(),
        v.valid,
        peak_rss()
    );
    let t = Instant::now();
    let v = convergence::mww(&history, Some(&store));
    println!(
        "strong-convergence: {:.2} s, valid? {:?}; peak RSS {}",
        t.elapsed().as_secs_f64(),
        v.valid,
        peak_rss()
    );
}
