//! Initial sync of a big table (issue #17): PostgreSQL already holds `ROWS` rows when a fresh
//! client connects; the time until the client reports `has_synced`, the client's peak RSS and
//! the stand-in's, against the client-side ceiling measured in the same run.
//!
//! Run: `cargo bench -p powersync --bench initial_sync` (release profile). `ROWS` is a
//! comma-separated list of sizes (default `100000,1000000`), each run on its own PostgreSQL and
//! stand-in, so that the client's memory can be compared across sizes.
//!
//! Per size:
//! 1. PostgreSQL gets `ROWS` rows in `lww (id, k, v)` before the stand-in starts, so the
//!    stand-in's initial snapshot holds them all. The stand-in runs in a child process (this
//!    binary again, with `--serve-standin`), so its peak RSS (`VmHWM`) is its own.
//! 2. Warm-up and recording: one raw sync stream (the request a core 0.5 makes, NDJSON) is
//!    read until its `checkpoint_complete`, its lines written to a temporary file (so that
//!    recording holds no memory).
//! 3. End to end: a fresh `PowerSyncDatabase` (file, WAL, `synchronous=FULL`: the defaults)
//!    connects through the crate's sync client; timed from `connect` until `has_synced`. The
//!    process's peak RSS is reset (`/proc/self/clear_refs`) before and read after.
//! 4. Ceiling: the recorded lines fed straight into `powersync_control` (`start`, then each
//!    line in its own transaction, as the sync client does) on another fresh database with the
//!    same options: no HTTP, no stand-in, no async.
//!
//! Printed: rows, seconds and rows/s for both, the ratio (target ≥ 0.8), the client's peak RSS
//! growth over its RSS before connecting, the stand-in's peak RSS, and the load average.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use powersync::schema::{Column, Schema, Table};
use powersync::{
    BackendConnector, ConnectorError, DatabaseOptions, PowerSyncCredentials, PowerSyncDatabase,
    SyncOptions,
};
use standin::{Config, StandIn, SyncRules};
use testkit::{ChildGuard, TestKey, TestPostgres};

const RULES: &str = "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n";

fn schema() -> Schema {
    Schema::new(vec![Table::new(
        "lww",
        vec![Column::integer("k"), Column::integer("v")],
    )])
}

/// Credentials for the stand-in; nothing to upload.
struct BenchConnector {
    url: String,
}

impl BackendConnector for BenchConnector {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        Ok(PowerSyncCredentials {
            endpoint: self.url.clone(),
            token: token(),
        })
    }

    async fn upload_data(&self, _db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        Ok(())
    }
}

fn token() -> String {
    TestKey::primary()
        .token("bench", 3600)
        .expect("test key token")
}

/// `VmHWM` or `VmRSS` of `/proc/<pid>/status`, in MiB.
fn proc_mib(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The child: serves the stand-in over `postgres_uri` until its stdin closes.
async fn serve_standin(postgres_uri: &str) {
    let config = Config::new(
        postgres_uri,
        SyncRules::parse(RULES).expect("rules"),
        TestKey::primary().jwks(),
    );
    let standin = StandIn::start(config).await.expect("stand-in");
    println!("{}", standin.url());
    std::io::stdout().flush().expect("stdout");
    // The parent closes our stdin (or dies) when it is done.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .expect("stdin");
    standin.shutdown().await;
}

/// Reads one sync stream from `url` until its first `checkpoint_complete`, writing its lines
/// to `path`; returns the number of lines.
async fn record(url: &str, path: &std::path::Path) -> usize {
    let body = serde_json::json!({
        "buckets": [], "include_checksum": true, "raw_data": true, "client_id": "recorder"
    });
    let response = reqwest::Client::new()
        .post(format!("{url}/sync/stream"))
        .header("Authorization", format!("Token {}", token()))
        .header("Accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .expect("sync/stream");
    assert_eq!(response.status(), 200);
    let mut out = BufWriter::new(std::fs::File::create(path).expect("record file"));
    let mut stream = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut lines = 0;
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.expect("body"));
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.write_all(&line).expect("write");
            lines += 1;
            if line.starts_with(b"{\"checkpoint_complete\"") {
                out.flush().expect("flush");
                return lines;
            }
        }
    }
    panic!("the stream ended before its checkpoint_complete");
}

/// The ceiling: `start`, then every recorded line, each `powersync_control` call in its own
/// transaction on the writer, as the sync client makes them.
async fn replay(db: &PowerSyncDatabase, path: &std::path::Path) {
    let mut writer = db.writer().await.expect("writer");
    let conn: &mut powersync::rusqlite::Connection = &mut writer;
    let mut control = |op: &str, payload: Option<&str>| {
        let tx = conn.transaction().expect("begin");
        tx.query_row(
            "SELECT powersync_control(?1, ?2)",
            (op, payload),
            |_| Ok(()),
        )
        .expect("powersync_control");
        tx.commit().expect("commit");
    };
    control("start", Some("{}"));
    for line in BufReader::new(std::fs::File::open(path).expect("record file")).lines() {
        control("line_text", Some(&line.expect("line")));
    }
}

async fn count(db: &PowerSyncDatabase) -> usize {
    let n: Vec<i64> = db
        .query("SELECT count(*) FROM lww", [], |r| r.get(0))
        .await
        .expect("count");
    n.first().copied().unwrap_or(0) as usize
}

async fn run(rows: usize) {
    let pg = TestPostgres::start().expect("PostgreSQL");
    let client = pg.client().await.expect("connect");
    client
        .batch_execute(&format!(
            "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL);
             CREATE PUBLICATION powersync FOR TABLE lww;
             INSERT INTO lww SELECT 'row' || g, g % 1000, g FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("setup");

    let exe = std::env::current_exe().expect("current exe");
    let mut child = ChildGuard::spawn(
        "stand-in",
        Command::new(exe)
            .args(["--serve-standin", &pg.uri()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )
    .expect("spawn the stand-in");
    let standin_pid = child.id().expect("pid").to_string();
    let mut url = String::new();
    BufReader::new(child.take_stdout().expect("stdout"))
        .read_line(&mut url)
        .expect("stand-in url");
    let url = url.trim().to_owned();

    let dir = tempfile::tempdir().expect("temp dir");
    let recorded = dir.path().join("lines.ndjson");
    let lines = record(&url, &recorded).await;

    // End to end through the crate.
    let db = PowerSyncDatabase::open(
        dir.path().join("e2e.db"),
        &schema(),
        DatabaseOptions::default(),
    )
    .await
    .expect("open");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_mib("self", "VmRSS:");
    let started = Instant::now();
    db.connect(BenchConnector { url: url.clone() }, SyncOptions::default())
        .await
        .expect("connect");
    db.wait_for_first_sync(Duration::from_secs(3600))
        .await
        .expect("first sync");
    let e2e = started.elapsed();
    let client_peak = proc_mib("self", "VmHWM:");
    db.disconnect().await.expect("disconnect");
    assert_eq!(count(&db).await, rows, "end to end: every row synced");
    db.close().await.expect("close");

    // Ceiling: the same lines, straight into powersync_control.
    let fresh = PowerSyncDatabase::open(
        dir.path().join("ceiling.db"),
        &schema(),
        DatabaseOptions::default(),
    )
    .await
    .expect("open");
    let started = Instant::now();
    replay(&fresh, &recorded).await;
    let ceiling = started.elapsed();
    assert_eq!(count(&fresh).await, rows, "ceiling: every row applied");
    fresh.close().await.expect("close");

    let standin_peak = proc_mib(&standin_pid, "VmHWM:");
    drop(child.take_stdin());
    let _ = child.wait();

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "rows {rows} ({lines} sync lines), load average {}",
        load_average()
    );
    println!(
        "  end to end (connect .. has_synced): {:>8.2} s {:>9.0} rows/s",
        e2e.as_secs_f64(),
        rate(e2e)
    );
    println!(
        "  ceiling (lines into powersync_control): {:>4.2} s {:>9.0} rows/s",
        ceiling.as_secs_f64(),
        rate(ceiling)
    );
    println!(
        "  ratio end to end / ceiling: {:.2} (target >= 0.8)",
        rate(e2e) / rate(ceiling)
    );
    println!(
        "  client peak RSS {client_peak:.0} MiB ({:+.0} MiB over {rss_before:.0} MiB before connecting); stand-in peak RSS {standin_peak:.0} MiB",
        client_peak - rss_before
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let [flag, uri] = args.as_slice()
        && flag == "--serve-standin"
    {
        runtime.block_on(serve_standin(uri));
        return;
    }
    let sizes: Vec<usize> = std::env::var("ROWS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ROWS: comma-separated row counts"))
        .collect();
    for rows in sizes {
        runtime.block_on(run(rows));
    }
}
