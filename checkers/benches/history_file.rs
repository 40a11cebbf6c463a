//! Benchmark: checking a large stored history file, as `harness check FILE` does
//! (`History::read_file`, then the list-append checker), in a process of its own so that its
//! peak memory is only what reading and checking need.
//!
//! The parent generates a history (default 1,000,000 transactions of 4 micro-ops, 100 active
//! keys, 100 appends per key, 10 processes; a strict-serializable store), writes it to a
//! temporary file as JSON lines (or EDN with `--edn`) one operation at a time, then runs itself
//! as a child on that file. The child reads the file (streaming: the reader holds only the
//! operations), checks it at `strict-serializable`, and reports its wall-clock time per step
//! and its peak resident set size (`VmHWM`). The parent prints them beside the targets
//! (< 30 s, < 2 GiB) and the file's size, whose ratio to the peak RSS shows how much of the
//! file the reader keeps. The temporary file is removed, also when the child fails.
//!
//! Run with `cargo bench -p checkers --bench history_file [-- TXNS] [-- --edn]`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use checkers::history::generate::{self, GenOpts};
use checkers::history::{History, edn, json};
use checkers::list_append;

mod support;
use support::proc_status_mib;

/// The targets for a 1M-transaction file (release build).
const TARGET_SECONDS: f64 = 30.0;
const TARGET_RSS_MIB: f64 = 2048.0;

/// The child: read and check `path`, print one `key=value` line per figure.
fn child(path: &Path) -> ExitCode {
    let t = Instant::now();
    let history = match History::read_file(path) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("reading {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let read_s = t.elapsed().as_secs_f64();
    let read_rss = proc_status_mib("VmHWM").unwrap_or(f64::NAN);
    let t = Instant::now();
    let verdict = match list_append::check(&history, "strict-serializable") {
        Ok(v) => v,
        Err(e) => {
            eprintln!("checking: {e}");
            return ExitCode::from(2);
        }
    };
    let check_s = t.elapsed().as_secs_f64();
    println!("ops={}", history.ops.len());
    println!("read_s={read_s:.3}");
    println!("read_peak_mib={read_rss:.0}");
    println!("check_s={check_s:.3}");
    println!("valid={}", verdict.is_valid());
    println!(
        "peak_mib={:.0}",
        proc_status_mib("VmHWM").unwrap_or(f64::NAN)
    );
    ExitCode::SUCCESS
}

/// Writes `history` to `path` one operation per line (JSON) or form (EDN).
fn write(history: &History, path: &Path, edn_form: bool) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for op in &history.ops {
        if edn_form {
            writeln!(out, "{}", edn::op_to_edn(op))?;
        } else {
            writeln!(out, "{}", json::op_to_json(op))?;
        }
    }
    out.flush()
}

fn figure<'a>(lines: &'a str, key: &str) -> Option<&'a str> {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return match args.get(i + 1) {
            Some(path) => child(Path::new(path)),
            None => {
                eprintln!("--child needs a file");
                ExitCode::from(2)
            }
        };
    }
    let edn_form = args.iter().any(|a| a == "--edn");
    // `cargo bench` passes `--bench`; the first bare number is the transaction count.
    let txns = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1_000_000);

    let t = Instant::now();
    let history = generate::list_append(&GenOpts {
        txns,
        ..GenOpts::default()
    });
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    let path = dir.path().join(if edn_form {
        "history.edn"
    } else {
        "history.jsonl"
    });
    if let Err(e) = write(&history, &path, edn_form) {
        eprintln!("writing {}: {e}", path.display());
        return ExitCode::from(2);
    }
    drop(history);
    let size_mib = std::fs::metadata(&path).map_or(f64::NAN, |m| m.len() as f64 / 1048576.0);
    println!(
        "generated and wrote {txns} txns as {} ({size_mib:.0} MiB) in {:.1} s",
        if edn_form { "EDN" } else { "JSON lines" },
        t.elapsed().as_secs_f64()
    );

    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("current executable: {e}");
            return ExitCode::from(2);
        }
    };
    let t = Instant::now();
    let output = match Command::new(exe).arg("--child").arg(&path).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("running the child: {e}");
            return ExitCode::from(2);
        }
    };
    let wall = t.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        eprintln!(
            "child failed ({}): {}{}",
            output.status,
            out,
            String::from_utf8_lossy(&output.stderr)
        );
        return ExitCode::from(2);
    }
    let num = |k: &str| figure(&out, k).and_then(|v| v.parse::<f64>().ok());
    let (Some(read_s), Some(check_s), Some(peak)) =
        (num("read_s"), num("check_s"), num("peak_mib"))
    else {
        eprintln!("child printed no figures: {out}");
        return ExitCode::from(2);
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "child: {} ops; read {read_s:.1} s (peak RSS {} MiB), check strict-serializable \
         {check_s:.1} s, valid? {}",
        figure(&out, "ops").unwrap_or("?"),
        figure(&out, "read_peak_mib").unwrap_or("?"),
        figure(&out, "valid").unwrap_or("?"),
    );
    println!(
        "read + check {:.1} s (process wall {wall:.1} s), target < {TARGET_SECONDS} s: {:.2} of it",
        read_s + check_s,
        (read_s + check_s) / TARGET_SECONDS
    );
    println!(
        "peak RSS {peak:.0} MiB = {:.2}x the file, target < {TARGET_RSS_MIB} MiB: {:.2} of it",
        peak / size_mib,
        peak / TARGET_RSS_MIB
    );
    println!("load average: {}", load.trim());
    ExitCode::SUCCESS
}
