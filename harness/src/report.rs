//! What a run shows and keeps: the progress bar, summary figures, the verdict table and the run
//! directory (`history.jsonl`, `history.edn`, `results.json`, `latency-raw.png`, `rate.png`, and the
//! processes' own directories and logs).

mod plot;

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::check::Verdict;
use crate::error::{Error, Result};
use crate::history::{History, OpType, edn, json as jsonl};
use crate::recorder::Counts;
use crate::runner::{Era, RunOpts};

pub use plot::{latency_plot, rate_plot};

/// The progress bar of the main phase (stderr; hidden when stderr is not a terminal).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `time_limit` (seconds), or nothing when `show` is false.
    pub fn new(show: bool, time_limit: Duration) -> Progress {
        let bar = show.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(time_limit.as_secs().max(1)),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress { bar }
    }

    /// Updates the bar with the elapsed time and the counts so far.
    pub fn tick(&self, counts: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_position(bar.elapsed().as_secs());
            let (ok, fail, info) = counts.get();
            bar.set_message(format!("ok {ok}  fail {fail}  info {info}"));
        }
    }

    /// Ends the bar.
    pub fn finish(&self, counts: &Counts) {
        self.tick(counts);
        if let Some(bar) = &self.bar {
            bar.finish();
            if !bar.is_hidden() {
                // The bar's line has no newline of its own; the verdict table follows on stdout.
                eprintln!();
            }
        }
    }
}

/// Summary figures of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stats {
    /// Client completions of the main phase (final reads excluded).
    pub count: u64,
    /// `ok` completions of the main phase.
    pub ok_count: u64,
    /// `fail` completions of the main phase.
    pub fail_count: u64,
    /// `info` completions of the main phase.
    pub info_count: u64,
    /// Final reads that completed `ok`.
    pub final_read_count: u64,
    /// Nemesis operations recorded.
    pub nemesis_count: u64,
    /// Main-phase completions per second of the time limit.
    pub ops_per_sec: f64,
    /// Median latency of `ok` main-phase operations, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile latency of `ok` main-phase operations, ms.
    pub latency_p99_ms: f64,
    /// 99.9th percentile latency of `ok` main-phase operations, ms.
    pub latency_p999_ms: f64,
    /// Largest latency of an `ok` main-phase operation, ms.
    pub latency_max_ms: f64,
    /// Wall time from the first to the last operation, s.
    pub duration_secs: f64,
    /// Synced workloads: whether every node agreed with PostgreSQL before the final reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiesced: Option<bool>,
    /// Synced workloads: how long reaching agreement (or giving up) took, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiesce_secs: Option<f64>,
    /// Latest-era workloads: how long the final connect and barriers (`uploadQueueWait`,
    /// `downloadingWait` on every PowerSync node) took, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barrier_secs: Option<f64>,
}

impl Stats {
    /// Figures of `history`, whose main phase lasted `time_limit`.
    pub fn of(history: &History, time_limit: Duration) -> Stats {
        let mut s = Stats {
            count: 0,
            ok_count: 0,
            fail_count: 0,
            info_count: 0,
            final_read_count: 0,
            nemesis_count: 0,
            ops_per_sec: 0.0,
            latency_p50_ms: 0.0,
            latency_p99_ms: 0.0,
            latency_p999_ms: 0.0,
            latency_max_ms: 0.0,
            duration_secs: 0.0,
            quiesced: None,
            quiesce_secs: None,
            barrier_secs: None,
        };
        for op in &history.ops {
            if op.client().is_none() {
                s.nemesis_count += 1;
                continue;
            }
            if op.final_read {
                if op.op_type == OpType::Ok {
                    s.final_read_count += 1;
                }
                continue;
            }
            match op.op_type {
                OpType::Invoke => continue,
                OpType::Ok => s.ok_count += 1,
                OpType::Fail => s.fail_count += 1,
                OpType::Info => s.info_count += 1,
            }
            s.count += 1;
        }
        let mut latencies: Vec<f64> = plot::latencies(history)
            .into_iter()
            .filter(|l| l.op_type == OpType::Ok && !l.final_read)
            .map(|l| l.latency_ms)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() - 1) as f64 * p).round() as usize;
            latencies[i.min(latencies.len() - 1)]
        };
        s.latency_p50_ms = pct(0.5);
        s.latency_p99_ms = pct(0.99);
        s.latency_p999_ms = pct(0.999);
        s.latency_max_ms = pct(1.0);
        s.ops_per_sec = s.count as f64 / time_limit.as_secs_f64().max(1e-9);
        if let (Some(first), Some(last)) = (history.ops.first(), history.ops.last()) {
            s.duration_secs = (last.time - first.time) as f64 / 1e9;
        }
        s
    }
}

/// The verdict table printed at the end of a run.
pub fn table(verdicts: &[Verdict], stats: &Stats) -> String {
    let mut out = format!(
        "ops {} (ok {}, fail {}, info {}) at {:.1}/s, p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms; final reads {}; nemesis ops {}\n\n",
        stats.count,
        stats.ok_count,
        stats.fail_count,
        stats.info_count,
        stats.ops_per_sec,
        stats.latency_p50_ms,
        stats.latency_p99_ms,
        stats.latency_p999_ms,
        stats.latency_max_ms,
        stats.final_read_count,
        stats.nemesis_count,
    );
    if let (Some(agreed), Some(secs)) = (stats.quiesced, stats.quiesce_secs) {
        out.insert_str(
            out.len() - 1,
            &format!(
                "quiescence: {} after {secs:.1} s\n",
                if agreed {
                    "every node agreed with PostgreSQL"
                } else {
                    "nodes still differed from PostgreSQL"
                }
            ),
        );
    }
    if let Some(secs) = stats.barrier_secs {
        out.insert_str(
            out.len() - 1,
            &format!("final barriers (upload queues empty, not downloading): {secs:.1} s\n"),
        );
    }
    out.push_str(&verdict_table(verdicts, abbreviate));
    let valid = verdicts.iter().all(Verdict::is_valid);
    out.push_str(&format!(
        "\n{}\n",
        if valid {
            "Everything looks good! ヽ(‘ー`)ノ"
        } else {
            "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻"
        }
    ));
    out
}

/// Longest explanation line printed in the table; `results.json` has them whole.
const MAX_LINE: usize = 300;

/// Cuts long lines (transactions reading 100 keys) to [`MAX_LINE`] characters.
fn abbreviate(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.chars().count() > MAX_LINE {
                let cut: String = l.chars().take(MAX_LINE).collect();
                format!("{cut} … (whole in results.json)")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `history.jsonl`, `history.edn`, `results.json`, `latency-raw.png` and `rate.png`
/// into `dir`.
pub fn write_run(
    dir: &Path,
    opts: &RunOpts,
    history: &History,
    verdicts: &[Verdict],
    stats: &Stats,
    postgres: serde_json::Value,
) -> Result<()> {
    write(&dir.join("history.jsonl"), &jsonl::write_history(history))?;
    write(&dir.join("history.edn"), &edn::write_history(history))?;
    let (seed, latest) = match &opts.era {
        Era::Seed(s) => (Some(s), None),
        Era::Latest(l) => (None, Some(l)),
    };
    let results = json!({
        "valid?": verdicts.iter().all(Verdict::is_valid),
        "workload": opts.workload.to_string(),
        "options": {
            "rate": opts.rate,
            "time-limit-secs": opts.time_limit.as_secs_f64(),
            "nodes": opts.nodes,
            "postgres-nodes": opts.postgres_nodes,
            "concurrency": opts.concurrency,
            "connector": opts.connector.to_string(),
            "failure-policy": opts.failure_policy.to_string(),
            "synchronous": opts.synchronous.to_string(),
            "core-version": opts.core_version,
            "nemesis": opts.faults.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "nemesis-interval-secs": opts.nemesis_interval.as_secs_f64(),
            "nemesis-targets": opts.nemesis_targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "clock-bump-ms": opts.clock.bump_ms,
            "clock-strobe-ms": opts.clock.strobe_ms,
            "clock-strobe-period-ms": opts.clock.strobe_period.as_millis() as u64,
            "seed": opts.seed,
            "consistency-models": opts.checker.consistency_models,
            "anomalies": opts.checker.anomalies,
            "cycle-search-timeout-ms": opts.checker.cycle_search_timeout.as_millis() as u64,
            "client-timeout-secs": opts.client_timeout.map(|t| t.as_secs_f64()),
            "link-latency-ms": opts.link_latency.as_secs_f64() * 1000.0,
            "key-count": seed.map_or(opts.key_count, |s| s.generator.elle.key_count),
            "table-keys": opts.key_count,
            "key-dist": seed.map(|s| s.generator.elle.key_dist.to_string()),
            "max-writes-per-key": seed.map(|s| s.generator.elle.max_writes_per_key),
            "min-txn-length": seed.map(|s| s.generator.elle.min_txn_length),
            "max-txn-length": seed.map(|s| s.generator.elle.max_txn_length),
            "append-keys": seed.map(|s| s.generator.append_keys),
            "read-keys": seed.map(|s| s.generator.read_keys),
            "keys-txn": latest.map(|l| l.keys_txn),
            "final-quiesce-secs": latest.map(|l| l.final_quiesce.as_secs_f64()),
            "test-broken-connector": latest.and_then(|l| l.test_broken_connector.as_deref()),
        },
        "stats": stats,
        "checkers": verdicts,
        "postgres-final-state": postgres,
    });
    write(
        &dir.join("results.json"),
        &serde_json::to_string_pretty(&results).unwrap_or_default(),
    )?;
    let title = format!("{} {}", opts.workload, opts.nodes.join(","));
    latency_plot(history, &title, &dir.join("latency-raw.png"))?;
    rate_plot(history, &title, &dir.join("rate.png"))
}

/// The verdict table: one row per checker (validity, anomaly kinds with counts, what the history
/// is not), then one example of each anomaly kind, its explanation passed through `explain`.
pub fn verdict_table(verdicts: &[Verdict], explain: fn(&str) -> String) -> String {
    let mut out = format!("{:<46} {:<8} anomalies\n", "checker", "valid?");
    for v in verdicts {
        let checker = match &v.model {
            Some(m) => format!("{} ({m})", v.checker),
            None => v.checker.clone(),
        };
        let valid = serde_json::to_string(&v.valid).unwrap_or_default();
        let found: Vec<String> = v
            .anomalies
            .iter()
            .map(|(k, xs)| format!("{k} ({})", xs.len()))
            .collect();
        out.push_str(&format!(
            "{:<46} {:<8} {}\n",
            checker,
            valid.trim_matches('"'),
            found.join(", ")
        ));
        if !v.not.is_empty() {
            out.push_str(&format!("{:<55}not: {}\n", "", v.not.join(", ")));
        }
    }
    for v in verdicts {
        for (kind, xs) in &v.anomalies {
            if let Some(first) = xs.first() {
                out.push_str(&format!(
                    "\n{} / {kind}, e.g.:\n{}\n",
                    v.checker,
                    explain(&first.explanation)
                ));
            }
        }
    }
    out
}
