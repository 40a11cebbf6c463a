//! `harness`: runs Jepsen-style tests of the PowerSync endpoint and checks histories.
//!
//! - `harness run --workload W [options]` starts PostgreSQL, the stand-in and endpoints, runs the
//!   workload (with faults), checks the history and stores the run; exit 0 only when every
//!   checker is valid (1: a checker is not, 2: the run could not be carried out).
//! - `harness matrix --workload W [--cores all|test-set|V,..] [--jobs N] [options]`: the same
//!   across vendored core builds, one table plus `<store>/matrix.json`.
//! - `harness bisect --workload W --good C --bad C [--repeats N] [options]`: the first core that
//!   fails, on the way from the good to the bad one in release order.
//! - `harness diff-cores --a C --b C [--script FILE] [--json]`: the same deterministic script on
//!   two cores; exit 1 when tables, CRUD queue or instructions differ.
//! - `harness check <history.jsonl|.edn> --model strict-serializable [--workload list-append|mww]`
//!   prints a verdict table and exits 0 only when every checker found the history valid
//!   (1: invalid or unknown, 2: the history could not be read or the options are wrong).

mod cli;
mod cores_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use harness::check::{Verdict, causal, convergence, list_append};
use harness::history::{History, Value};
use harness::workload::Workload;

use crate::cli::RunArgs;

#[derive(Parser)]
#[command(
    name = "harness",
    about = "Jepsen-style checks of PowerSync endpoint histories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Re-check a stored history (JSON lines or EDN).
    Check {
        /// The history file.
        history: PathBuf,
        /// The consistency model list-append histories must satisfy (Elle's names).
        #[arg(long, default_value = "strict-serializable")]
        model: String,
        /// Check each of these models instead (comma-separated; Jepsen's option).
        #[arg(long, value_delimiter = ',')]
        consistency_models: Vec<String>,
        /// Milliseconds the cycle search may take in each strongly connected component.
        #[arg(long, default_value_t = 1000)]
        cycle_search_timeout: u64,
        /// list-append: anomalies to reject besides the model's (comma-separated Elle names).
        #[arg(long, value_delimiter = ',')]
        anomalies: Vec<String>,
        /// The workload; detected from the history when omitted.
        #[arg(long, value_enum)]
        workload: Option<WorkloadArg>,
        /// mww: the number of keys every readAll must return (default: every key seen).
        #[arg(long)]
        key_count: Option<usize>,
        /// list-append: also judge the history with the seed's `causal.checker.adya`, as the
        /// seed did for its `powersync`, `ps-ro-pg-wo` and `ps-wo-pg-ro` runs. The default
        /// follows the `workload` in the `results.json` next to the history, if there is one.
        #[arg(long)]
        adya: Option<bool>,
        /// Print the verdicts as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a workload against real processes, check the history and store the run.
    Run(RunArgs),
    /// Run a workload once per vendored core build (`--cores all|test-set|V,...`, `--jobs N`),
    /// print one table and write `<store>/matrix.json`.
    Matrix(cores_cli::MatrixArgs),
    /// Find the first core between `--good` and `--bad` (release order) that fails a workload.
    Bisect(cores_cli::BisectArgs),
    /// Run the same script of sync lines and local writes on two cores and report what differs
    /// (tables, CRUD queue, powersync_control instructions).
    DiffCores(cores_cli::DiffArgs),
}

/// The workloads the checker knows.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// Elle list-append transactions.
    ListAppend,
    /// Max-write-wins readAll/writeSome transactions.
    Mww,
}

fn detect(history: &History) -> Option<WorkloadArg> {
    history.completions().find_map(|op| match &op.value {
        Value::ListAppend(m) if !m.is_empty() => Some(WorkloadArg::ListAppend),
        Value::Mww(_) => Some(WorkloadArg::Mww),
        _ => None,
    })
}

/// Whether the run stored next to `history` is of a workload the seed judged with
/// `causal.checker.adya` (its `results.json` names the workload).
fn stored_run_uses_adya(history: &Path) -> bool {
    let Some(results) = history.parent().map(|d| d.join("results.json")) else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(results) else {
        return false;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    json.get("workload")
        .and_then(|w| w.as_str())
        .and_then(|w| Workload::from_str(w, false).ok())
        .is_some_and(harness::model::runs_adya)
}

/// The verdicts of the history at `path`, already read as `history` (which this drops).
/// List-append histories: the other checkers run on `history`, which is then dropped, and the
/// list-append checks stream the file again ([`list_append::check_file`]), so the history and
/// the list-append checker's own copy of it are never in memory together.
fn verdicts(
    path: &Path,
    history: History,
    workload: WorkloadArg,
    opts: &[list_append::Opts],
    key_count: Option<usize>,
    adya: bool,
) -> checkers::Result<Vec<Verdict>> {
    let has_final_reads = history.ops.iter().any(|op| op.final_read);
    Ok(match workload {
        WorkloadArg::ListAppend => {
            let mut others = Vec::new();
            if adya {
                others.push(checkers::adya::check(&history)?);
            }
            if has_final_reads {
                others.push(convergence::list_append(&history, None));
            }
            drop(history);
            let mut v = opts
                .iter()
                .map(|o| list_append::check_file(path, o))
                .collect::<checkers::Result<Vec<_>>>()?;
            v.extend(others);
            v
        }
        WorkloadArg::Mww => {
            let mut v = vec![causal::check(&history, &causal::Opts { key_count })];
            if has_final_reads {
                v.push(convergence::mww(&history, None));
            }
            v
        }
    })
}

fn table(verdicts: &[Verdict]) -> String {
    harness::report::verdict_table(verdicts, str::to_string)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            history,
            model,
            consistency_models,
            cycle_search_timeout,
            anomalies,
            workload,
            key_count,
            adya,
            json,
        } => {
            let models = if consistency_models.is_empty() {
                vec![model]
            } else {
                consistency_models
            };
            let opts: Vec<list_append::Opts> = models
                .iter()
                .map(|m| list_append::Opts {
                    anomalies: anomalies.clone(),
                    cycle_search_timeout: std::time::Duration::from_millis(cycle_search_timeout),
                    ..list_append::Opts::new(m)
                })
                .collect();
            let adya = adya.unwrap_or_else(|| stored_run_uses_adya(&history));
            check(history, &opts, workload, key_count, adya, json)
        }
        Command::Run(args) => cli::run(args),
        Command::Matrix(args) => cores_cli::matrix(args),
        Command::Bisect(args) => cores_cli::bisect(args),
        Command::DiffCores(args) => cores_cli::diff_cores(args),
    }
}

fn check(
    history: PathBuf,
    opts: &[list_append::Opts],
    workload: Option<WorkloadArg>,
    key_count: Option<usize>,
    adya: bool,
    json: bool,
) -> ExitCode {
    let result = History::read_file(&history).and_then(|h| {
        let workload = workload
            .or_else(|| detect(&h))
            .unwrap_or(WorkloadArg::ListAppend);
        if !h.key_names.is_empty() && !json {
            // Named keys (Elle's `:x`) are checked as ids; say which is which.
            let names: Vec<String> = h
                .key_names
                .iter()
                .map(|(id, name)| format!("{name} = {id}"))
                .collect();
            println!("keys: {}", names.join(", "));
        }
        verdicts(&history, h, workload, opts, key_count, adya)
    });
    match result {
        Ok(vs) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&vs).unwrap_or_default());
            } else {
                print!("{}", table(&vs));
            }
            cli::verdict_code(vs.iter().all(Verdict::is_valid))
        }
        Err(e) => cli::failed(&e),
    }
}
