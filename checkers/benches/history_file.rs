//! Benchmark: checking a large stored history file at `strict-serializable`, each way in a
//! process of its own so that its peak memory is only what reading and checking need:
//!
//! - **streaming** (`list_append::check_file`): each operation is translated into adya's
//!   history as it is read, and the harness's `History` is never held; then the fast proof
//!   that the history has no anomaly (adya's analysis runs only if it declines);
//! - **streaming, full analysis**: the same with `Opts::full_analysis`, so adya's analysis
//!   always runs (what `check_file` did before the proof; the baseline of the proof's gain);
//! - **whole history** (`History::read_file`, then `list_append::check_with`, full analysis):
//!   the history and adya's copy of it in memory together (`harness check FILE` runs its
//!   other checkers on the `History` and drops it before it streams the list-append checks).
//!
//! The parent generates a history (default 1,000,000 transactions of 4 micro-ops, 100 active
//! keys, 100 appends per key, 10 processes; a strict-serializable store), writes it to a
//! temporary file as JSON lines (or EDN with `--edn`) one operation at a time, then runs itself
//! as a child on that file once per way. Each child reports its wall-clock time per step and its
//! peak resident set size (`VmHWM`). The parent prints them beside the targets
//! (< 30 s, < 2 GiB) and the file's size, whose ratio to the peak RSS shows how much of the
//! file a way keeps, and the whole-history way's figures as the baseline of the streaming
//! way's. The temporary file is removed, also when a child fails; `--file PATH` writes it to
//! PATH instead (or reuses PATH if it exists) and keeps it.
//!
//! Run with `cargo bench -p checkers --bench history_file [-- TXNS] [-- --edn] [-- --file PATH]`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
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

/// The whole-history child: read `path` into a `History`, then check it with adya's full
/// analysis; print one `key=value` line per figure.
fn child_whole(path: &Path) -> ExitCode {
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
    let verdict = match list_append::check_with(&history, &full("strict-serializable")) {
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

/// Options for `model` that always run adya's analysis.
fn full(model: &str) -> list_append::Opts {
    list_append::Opts {
        full_analysis: true,
        ..list_append::Opts::new(model)
    }
}

/// The streaming child: read and check `path` in one pass; print one `key=value` line per
/// figure.
fn child_streaming(path: &Path) -> ExitCode {
    streaming(path, &list_append::Opts::new("strict-serializable"))
}

/// The streaming child with adya's full analysis.
fn child_streaming_full(path: &Path) -> ExitCode {
    streaming(path, &full("strict-serializable"))
}

fn streaming(path: &Path, opts: &list_append::Opts) -> ExitCode {
    let t = Instant::now();
    let verdict = match list_append::check_file(path, opts) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("checking {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    println!("total_s={:.3}", t.elapsed().as_secs_f64());
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
    for (flag, child) in [
        ("--child-whole", child_whole as fn(&Path) -> ExitCode),
        ("--child-streaming", child_streaming),
        ("--child-streaming-full", child_streaming_full),
    ] {
        if let Some(i) = args.iter().position(|a| a == flag) {
            return match args.get(i + 1) {
                Some(path) => child(Path::new(path)),
                None => {
                    eprintln!("{flag} needs a file");
                    ExitCode::from(2)
                }
            };
        }
    }
    let edn_form = args.iter().any(|a| a == "--edn");
    // `cargo bench` passes `--bench`; the first bare number is the transaction count.
    let txns = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1_000_000);

    let kept = args
        .iter()
        .position(|a| a == "--file")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    let path = kept.clone().unwrap_or_else(|| {
        dir.path().join(if edn_form {
            "history.edn"
        } else {
            "history.jsonl"
        })
    });
    if kept.as_ref().is_some_and(|p| p.exists()) {
        println!("reusing {}", path.display());
    } else {
        let t = Instant::now();
        let history = generate::list_append(&GenOpts {
            txns,
            ..GenOpts::default()
        });
        if let Err(e) = write(&history, &path, edn_form) {
            eprintln!("writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
        println!(
            "generated and wrote {txns} txns as {} in {:.1} s",
            if edn_form { "EDN" } else { "JSON lines" },
            t.elapsed().as_secs_f64()
        );
    }
    let size_mib = std::fs::metadata(&path).map_or(f64::NAN, |m| m.len() as f64 / 1048576.0);
    println!("file: {size_mib:.0} MiB");
    println!("load average before: {}", load_average());

    let Some(whole) = run_child("--child-whole", &path) else {
        return ExitCode::from(2);
    };
    let Some(streaming_full) = run_child("--child-streaming-full", &path) else {
        return ExitCode::from(2);
    };
    let Some(streaming) = run_child("--child-streaming", &path) else {
        return ExitCode::from(2);
    };
    let num = |out: &str, k: &str| figure(out, k).and_then(|v| v.parse::<f64>().ok());
    let (Some(read_s), Some(check_s), Some(whole_peak)) = (
        num(&whole, "read_s"),
        num(&whole, "check_s"),
        num(&whole, "peak_mib"),
    ) else {
        eprintln!("the whole-history child printed no figures: {whole}");
        return ExitCode::from(2);
    };
    let (Some(total_s), Some(peak)) = (num(&streaming, "total_s"), num(&streaming, "peak_mib"))
    else {
        eprintln!("the streaming child printed no figures: {streaming}");
        return ExitCode::from(2);
    };
    let (Some(full_s), Some(full_peak)) = (
        num(&streaming_full, "total_s"),
        num(&streaming_full, "peak_mib"),
    ) else {
        eprintln!("the full-analysis streaming child printed no figures: {streaming_full}");
        return ExitCode::from(2);
    };
    let whole_s = read_s + check_s;
    println!(
        "whole history (History::read_file, then list_append::check_with, full analysis): \
         {} ops; read {read_s:.1} s (peak RSS {} MiB), check {check_s:.1} s, valid? {}; \
         {whole_s:.1} s, peak RSS {whole_peak:.0} MiB = {:.2}x the file",
        figure(&whole, "ops").unwrap_or("?"),
        figure(&whole, "read_peak_mib").unwrap_or("?"),
        figure(&whole, "valid").unwrap_or("?"),
        whole_peak / size_mib,
    );
    println!(
        "streaming, full analysis (list_append::check_file, Opts::full_analysis): \
         read and check {full_s:.1} s, valid? {}, peak RSS {full_peak:.0} MiB = {:.2}x the file",
        figure(&streaming_full, "valid").unwrap_or("?"),
        full_peak / size_mib,
    );
    println!(
        "streaming (list_append::check_file, the proof first): read and check {total_s:.1} s, \
         valid? {}, peak RSS {peak:.0} MiB = {:.2}x the file",
        figure(&streaming, "valid").unwrap_or("?"),
        peak / size_mib,
    );
    println!(
        "streaming vs streaming with full analysis: time {:.2}x, peak RSS {:.2}x",
        total_s / full_s,
        peak / full_peak
    );
    println!(
        "streaming vs whole history: time {:.2}x, peak RSS {:.2}x",
        total_s / whole_s,
        peak / whole_peak
    );
    println!(
        "streaming against the targets: {total_s:.1} s = {:.2} of < {TARGET_SECONDS} s; \
         {peak:.0} MiB = {:.2} of < {TARGET_RSS_MIB} MiB",
        total_s / TARGET_SECONDS,
        peak / TARGET_RSS_MIB
    );
    println!("load average after: {}", load_average());
    ExitCode::SUCCESS
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Runs this executable with `flag path` and returns what it printed, or `None` (reported)
/// if it failed.
fn run_child(flag: &str, path: &Path) -> Option<String> {
    let exe = std::env::current_exe()
        .map_err(|e| eprintln!("current executable: {e}"))
        .ok()?;
    let output = Command::new(exe)
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|e| eprintln!("running the {flag} child: {e}"))
        .ok()?;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        eprintln!(
            "the {flag} child failed ({}): {out}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    Some(out)
}
