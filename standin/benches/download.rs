//! Download throughput: a 100k-row bulk insert in PostgreSQL until a client core has applied
//! every row (stand-in + HTTP + `powersync_control`), against the ceiling of feeding the very
//! same sync lines straight into `powersync_control` without HTTP or replication.
//!
//! Both replication modes run in the same run, each over its own PostgreSQL: streaming (the
//! default) and polling the slot every 10 ms.
//!
//! Run: `cargo bench -p standin --bench download` (release profile). `ROWS=N` changes the size;
//! `MODES=streaming` or `MODES=polling` runs one mode.

use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/common/core_client.rs"]
mod core_client;
mod support;

use core_client::CoreClient;
use standin::replication::ReplicationMode;

/// One mode's figures: end to end and ceiling, in ops/s.
struct Figures {
    end_to_end: f64,
    ceiling: f64,
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    let modes: Vec<String> = std::env::var("MODES")
        .unwrap_or_else(|_| "streaming,polling".to_owned())
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    let mut results = Vec::new();
    for mode in &modes {
        let replication = match mode.as_str() {
            "streaming" => ReplicationMode::Streaming,
            "polling" => ReplicationMode::Polling,
            other => panic!("MODES: streaming or polling, not {other:?}"),
        };
        println!("{mode}:");
        results.push((mode.clone(), measure(replication, rows).await));
    }
    if let (Some((_, s)), Some((_, p))) = (
        results.iter().find(|(m, _)| m == "streaming"),
        results.iter().find(|(m, _)| m == "polling"),
    ) {
        println!(
            "streaming / polling (same run): end to end {:.2}, ceiling {:.2}",
            s.end_to_end / p.end_to_end,
            s.ceiling / p.ceiling
        );
    }
}

/// Measures one mode over a fresh PostgreSQL and stand-in; prints its figures.
async fn measure(mode: ReplicationMode, rows: usize) -> Figures {
    let (_pg, db, standin, _) = support::lww_standin_with(|config| {
        config.replication = mode;
        config.poll_interval = Duration::from_millis(10);
    })
    .await;

    // End to end: client connected and idle, then the bulk insert.
    let mut conn = CoreClient::open();
    let mut lines = support::connect(&standin, &mut conn).await;
    let mut recorded = Vec::new();
    let mut started: Option<Instant> = None;
    let mut insert_done = None;
    let mut ops = 0usize;
    let mut first_line: Option<Duration> = None;
    loop {
        let line = lines.next().await;
        conn.control("line_text", Some(&line));
        let complete = line.starts_with("{\"checkpoint_complete\"");
        if let Some(t0) = started {
            first_line.get_or_insert_with(|| t0.elapsed());
            if line.starts_with("{\"data\"") {
                ops += line.matches("\"op_id\"").count();
            }
            recorded.push(line);
            if complete && conn.count() == rows {
                break;
            }
        } else if complete {
            // Initial (empty) checkpoint applied: now insert.
            started = Some(Instant::now());
            let sql = format!(
                "INSERT INTO lww SELECT 'row' || g, g, g FROM generate_series(1, {rows}) g"
            );
            db.batch_execute(&sql).await.expect("bulk insert");
            insert_done = started.map(|s| s.elapsed());
        }
    }
    let e2e = started.expect("started").elapsed();
    assert_eq!(conn.count(), rows);

    // Ceiling: the same lines, straight into a fresh core (no HTTP, no replication).
    let mut fresh = CoreClient::open();
    fresh.start();
    let empty_checkpoint = r#"{"checkpoint":{"last_op_id":"0","buckets":[{"bucket":"1#global[]","checksum":0,"count":0,"priority":3}]}}"#;
    fresh.control("line_text", Some(empty_checkpoint));
    fresh.control(
        "line_text",
        Some(r#"{"checkpoint_complete":{"last_op_id":"0"}}"#),
    );
    let t = Instant::now();
    for line in &recorded {
        fresh.control("line_text", Some(line));
    }
    let ceiling = t.elapsed();
    assert_eq!(fresh.count(), rows);

    let rate = |d: Duration| ops as f64 / d.as_secs_f64();
    println!("rows/ops: {rows} / {ops}, sync lines: {}", recorded.len());
    println!(
        "end to end (INSERT .. until applied): {:>8.3} s  {:>10.0} ops/s  (bulk INSERT itself {:.3} s)",
        e2e.as_secs_f64(),
        rate(e2e),
        insert_done.unwrap_or_default().as_secs_f64()
    );
    println!(
        "  first sync line after {:.3} s (replication latency: decode + staging)",
        first_line.unwrap_or_default().as_secs_f64()
    );
    println!(
        "ceiling (powersync_control only):     {:>8.3} s  {:>10.0} ops/s",
        ceiling.as_secs_f64(),
        rate(ceiling)
    );
    println!(
        "ratio end to end / ceiling: {:.2}",
        rate(e2e) / rate(ceiling)
    );
    standin.shutdown().await;
    Figures {
        end_to_end: rate(e2e),
        ceiling: rate(ceiling),
    }
}
