//! Replication lag: PostgreSQL commit → row applied on a connected client. A writer commits
//! one-row transactions at a fixed rate (100, then 1,000 commits/s); a client core connected
//! to the stand-in over HTTP applies the stream's lines as an SDK does. A row's lag is the
//! time from sending its committing statement (so the figure includes the commit's own round
//! trip) to the `checkpoint_complete` after which the client's table holds it.
//!
//! Both replication modes run in the same run, each over its own PostgreSQL: streaming (the
//! default, `START_REPLICATION`) and, as the baseline, polling the slot every
//! `poll_interval_ms` (20 ms, the default), which bounds the lag from below on average by half
//! of it. The last lines give streaming's figures as ratios of polling's.
//!
//! Run: `cargo bench -p standin --bench lag` (release profile). `SECONDS=N` sets each rate's
//! duration (default 10), `RATES=100,1000` the rates, `MODES=streaming,polling` the modes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/common/core_client.rs"]
mod core_client;
#[allow(dead_code)]
mod support;

use core_client::CoreClient;
use standin::replication::ReplicationMode;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The figures of one rate: (rate, rows, achieved commits/s, p50, p99, max in ms).
type Figures = (u64, usize, f64, f64, f64, f64);

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rates: Vec<u64> = std::env::var("RATES")
        .unwrap_or_else(|_| "100,1000".to_owned())
        .split(',')
        .map(|r| r.trim().parse().expect("RATES: numbers"))
        .collect();
    let modes: Vec<String> = std::env::var("MODES")
        .unwrap_or_else(|_| "streaming,polling".to_owned())
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    println!("lag bench: one-row commits, client core over HTTP");
    println!(
        "{:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "mode", "commit/s", "rows", "achieved", "p50 ms", "p99 ms", "max ms"
    );
    let mut results: Vec<(String, Vec<Figures>)> = Vec::new();
    for mode in &modes {
        let replication = match mode.as_str() {
            "streaming" => ReplicationMode::Streaming,
            "polling" => ReplicationMode::Polling,
            other => panic!("MODES: streaming or polling, not {other:?}"),
        };
        let figures = measure(replication, &rates, seconds).await;
        results.push((mode.clone(), figures));
    }
    if let (Some((_, streaming)), Some((_, polling))) = (
        results.iter().find(|(m, _)| m == "streaming"),
        results.iter().find(|(m, _)| m == "polling"),
    ) {
        println!("streaming / polling (same run):");
        for (s, p) in streaming.iter().zip(polling) {
            println!(
                "{:>10} {:>8} {:>8} {:>9} {:>9.2} {:>9.2} {:>9.2}",
                "ratio",
                s.0,
                "",
                "",
                s.3 / p.3,
                s.4 / p.4,
                s.5 / p.5
            );
        }
    }
}

/// Runs every rate against a fresh PostgreSQL and stand-in in `mode`; prints and returns the
/// figures.
async fn measure(mode: ReplicationMode, rates: &[u64], seconds: u64) -> Vec<Figures> {
    let (pg, _db, standin, poll) =
        support::lww_standin_with(|config| config.replication = mode).await;
    let mut client = CoreClient::open();
    let mut lines = support::connect(&standin, &mut client).await;
    loop {
        let line = lines.next().await;
        client.control("line_text", Some(&line));
        if line.starts_with("{\"checkpoint_complete\"") {
            break;
        }
    }
    let label = match mode {
        ReplicationMode::Streaming => "streaming".to_owned(),
        ReplicationMode::Polling => format!("poll {}ms", poll.as_millis()),
    };
    let mut out = Vec::new();
    let mut next_k: i64 = 1;
    for &rate in rates {
        let count = (rate * seconds) as usize;
        let first = next_k;
        next_k += count as i64;
        // sent[i]: when the committing statement of row first + i was sent.
        let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
        let writer = {
            let sent = sent.clone();
            let (w, connection) = tokio_postgres::connect(&pg.uri(), tokio_postgres::NoTls)
                .await
                .expect("writer");
            tokio::spawn(connection);
            tokio::spawn(async move {
                let insert = w
                    .prepare("INSERT INTO lww VALUES ($1, $2, 0)")
                    .await
                    .expect("prepare");
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let start = Instant::now();
                for i in 0..count {
                    tick.tick().await;
                    let k = first + i as i64;
                    sent.lock().expect("sent")[i] = Some(Instant::now());
                    w.execute(&insert, &[&format!("r{k}"), &(k as i32)])
                        .await
                        .expect("insert");
                }
                start.elapsed()
            })
        };
        let mut applied: Vec<Option<Instant>> = vec![None; count];
        let mut done = 0usize;
        while done < count {
            let line = lines.next().await;
            client.control("line_text", Some(&line));
            if !line.starts_with("{\"checkpoint_complete\"") {
                continue;
            }
            let now = Instant::now();
            let max_k: i64 = client
                .conn
                .query_row("SELECT coalesce(max(k), 0) FROM lww", [], |r| r.get(0))
                .expect("max k");
            let upto = ((max_k - first + 1).max(0) as usize).min(count);
            for slot in &mut applied[done..upto] {
                *slot = Some(now);
            }
            done = done.max(upto);
        }
        let took = writer.await.expect("writer");
        let sent = sent.lock().expect("sent").clone();
        let mut lags: Vec<Duration> = sent
            .iter()
            .zip(&applied)
            .map(|(s, a)| {
                let (s, a) = (s.expect("sent"), a.expect("applied"));
                a.saturating_duration_since(s)
            })
            .collect();
        lags.sort();
        let ms = |p: f64| percentile(&lags, p).as_secs_f64() * 1e3;
        let figures = (
            rate,
            count,
            count as f64 / took.as_secs_f64(),
            ms(0.5),
            ms(0.99),
            ms(1.0),
        );
        println!(
            "{:>10} {:>8} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>9.2}",
            label, figures.0, figures.1, figures.2, figures.3, figures.4, figures.5
        );
        out.push(figures);
    }
    drop(lines);
    standin.shutdown().await;
    drop(pg);
    out
}
