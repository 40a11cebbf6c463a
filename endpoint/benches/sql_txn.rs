//! Throughput and latency of `POST /sql-txn` with N concurrent keep-alive clients.
//!
//! ```text
//! cargo bench -p endpoint --bench sql_txn -- [--mode sqlite3-local,powersync-local | --url http://host:port]
//!                                            [--clients 10] [--seconds 10] [--warmup 1]
//! ```
//!
//! With `--mode` (a comma-separated list, default `sqlite3-local,powersync-local`; the first is
//! the baseline of the ratio column) the bench starts the endpoint binary built with it in each
//! mode in turn, on a fresh database in a temporary directory, at log level INFO, and kills it at
//! the end. With `--url` it drives an endpoint that is already running (any mode). Each client
//! has its own HTTP/1.1 keep-alive connection and sends, back to back, transactions of four
//! micro-ops `[r a] [append a n] [r b] [append b n]` on random keys `a`, `b` in 0..100 with
//! globally unique `n`. Requests of the warm-up are not counted. Printed: transactions per
//! second and the p50/p99/p99.9/max latency of the measured requests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Workdir;

struct Options {
    url: Option<String>,
    mode: String,
    clients: u64,
    seconds: f64,
    warmup: f64,
}

fn options() -> Options {
    let mut o = Options {
        url: None,
        mode: "sqlite3-local,powersync-local".into(),
        clients: 10,
        seconds: 10.0,
        warmup: 1.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => o.url = Some(value()),
            "--mode" => o.mode = value(),
            "--clients" => o.clients = value().parse().expect("--clients N"),
            "--seconds" => o.seconds = value().parse().expect("--seconds S"),
            "--warmup" => o.warmup = value().parse().expect("--warmup S"),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// xorshift64*: a small deterministic generator for the keys.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

async fn client(id: u64, url: String, warm_until: Instant, stop_at: Instant) -> Vec<Duration> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (id + 1);
    let mut latencies = Vec::new();
    for i in 0_u64.. {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let (a, b, n) = (
            next(&mut rng) % 100,
            next(&mut rng) % 100,
            id * 1_000_000_000 + i,
        );
        let body = format!(
            r#"{{"value":[{{"f":"r","k":{a},"v":null}},{{"f":"append","k":{a},"v":{n}}},{{"f":"r","k":{b},"v":null}},{{"f":"append","k":{b},"v":{n}}}]}}"#
        );
        let response = http.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        if now >= warm_until {
            latencies.push(now.elapsed());
        }
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One measured run: transactions, seconds, and the sorted latencies.
struct Run {
    target: String,
    txns: usize,
    secs: f64,
    latencies: Vec<Duration>,
}

fn measure(runtime: &tokio::runtime::Runtime, target: String, base: &str, o: &Options) -> Run {
    let url = format!("{}/sql-txn", base.trim_end_matches('/'));
    let (mut latencies, measured) = runtime.block_on(async {
        let start = Instant::now();
        let warm_until = start + Duration::from_secs_f64(o.warmup);
        let stop_at = warm_until + Duration::from_secs_f64(o.seconds);
        let tasks: Vec<_> = (0..o.clients)
            .map(|id| tokio::spawn(client(id, url.clone(), warm_until, stop_at)))
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        (all, Instant::now().saturating_duration_since(warm_until))
    });
    latencies.sort();
    Run {
        target,
        txns: latencies.len(),
        secs: measured.as_secs_f64(),
        latencies,
    }
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runs = Vec::new();
    if let Some(url) = &o.url {
        runs.push(measure(&runtime, url.clone(), url, &o));
    } else {
        // Each mode: the endpoint binary on a fresh database in a temporary directory, killed
        // (and the directory removed) after its run. The first mode is the baseline.
        for mode in o.mode.split(',') {
            let workdir = Workdir::new();
            let endpoint = workdir.start(
                &[("ENDPOINT_MODE", mode), ("ENDPOINT_LOG_LEVEL", "INFO")],
                &[],
            );
            runs.push(measure(&runtime, mode.to_owned(), &endpoint.url(""), &o));
        }
    }
    println!(
        "sql_txn bench: {} clients, {:.1} s measured per target, 4 micro-ops per transaction",
        o.clients, o.seconds
    );
    println!(
        "{:<18} {:>8} {:>10} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "target", "txns", "txn/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "ratio"
    );
    let baseline = runs.first().map_or(1.0, |r| r.txns as f64 / r.secs);
    for run in &runs {
        let rate = run.txns as f64 / run.secs;
        let ms = |p: f64| {
            if run.latencies.is_empty() {
                0.0
            } else {
                percentile(&run.latencies, p).as_secs_f64() * 1e3
            }
        };
        println!(
            "{:<18} {:>8} {:>10.0} {:>9.3} {:>9.3} {:>10.3} {:>9.3} {:>7.2}",
            run.target,
            run.txns,
            rate,
            ms(0.50),
            ms(0.99),
            ms(0.999),
            ms(1.0),
            rate / baseline
        );
    }
}
