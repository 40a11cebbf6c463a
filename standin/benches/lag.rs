//! Replication lag: PostgreSQL commit → row applied on a connected client. A writer commits
//! one-row transactions at a fixed rate (100, then 1,000 commits/s); a client core connected
//! to the stand-in over HTTP applies the stream's lines as an SDK does. A row's lag is the
//! time from sending its committing statement (so the figure includes the commit's own round
//! trip) to the `checkpoint_complete` after which the client's table holds it.
//!
//! The stand-in polls the replication slot every `poll_interval_ms` (20 ms by default, used
//! here), so that interval bounds the lag from below on average by half of it.
//!
//! Run: `cargo bench -p standin --bench lag` (release profile). `SECONDS=N` sets each rate's
//! duration (default 10), `RATES=100,1000` the rates.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/common/core_client.rs"]
mod core_client;
mod support;

use core_client::CoreClient;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

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
    let (pg, _db, standin, poll) = support::lww_standin(None).await;
    let mut client = CoreClient::open();
    let mut lines = support::connect(&standin, &mut client).await;
    loop {
        let line = lines.next().await;
        client.control("line_text", Some(&line));
        if line.starts_with("{\"checkpoint_complete\"") {
            break;
        }
    }

    println!(
        "lag bench: one-row commits, client core over HTTP, stand-in polling every {} ms",
        poll.as_millis()
    );
    println!(
        "{:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "commit/s", "rows", "achieved", "p50 ms", "p99 ms", "max ms"
    );
    let mut next_k: i64 = 1;
    for rate in rates {
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
        println!(
            "{:>8} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>9.2}",
            rate,
            count,
            count as f64 / took.as_secs_f64(),
            ms(0.5),
            ms(0.99),
            ms(1.0)
        );
    }
    standin.shutdown().await;
}
