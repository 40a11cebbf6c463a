//! A workload across vendored core builds, one run each (up to `jobs` at a time), summarised in
//! one table and one machine-readable file (`<store>/matrix.json`).
//!
//! Which cores can run a workload is read from the core itself
//! ([`powersync_sys::CoreLibrary::capabilities`]), not from version numbers: synced workloads need download sync
//! (`powersync_control` with the `connection` op, core 0.4.6 on), so cores without it are
//! `n/a` with the probed reason; `sqlite3-local` loads no core, so every row is `n/a` there.

use std::path::PathBuf;
use std::sync::Arc;

use powersync_sys::VendoredCore;
use serde::Serialize;

use crate::runner::{self, RunOpts};
use crate::workload::Workload;

/// Which cores a matrix (or bisection) covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSet {
    /// The manifest's test set (`vendor/fetch-cores --test-set`).
    TestSet,
    /// Every distinct build the manifest lists.
    All,
    /// These versions, in release order.
    Versions(Vec<String>),
}

impl CoreSet {
    /// Parses `--cores`: `all`, `test-set`, or comma-separated versions.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        match s {
            "all" => Ok(Self::All),
            "test-set" => Ok(Self::TestSet),
            list => {
                let mut versions = Vec::new();
                for v in list.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                    VendoredCore::find(v).map_err(|e| crate::Error::Options(e.to_string()))?;
                    versions.push(v.to_string());
                }
                if versions.is_empty() {
                    return Err(crate::Error::Options(
                        "--cores needs `all`, `test-set` or versions".into(),
                    ));
                }
                Ok(Self::Versions(versions))
            }
        }
    }

    /// The cores, in release order.
    pub fn cores(&self) -> Vec<&'static VendoredCore> {
        VendoredCore::all()
            .iter()
            .filter(|c| match self {
                Self::TestSet => c.in_test_set,
                Self::All => true,
                Self::Versions(v) => v.contains(&c.version),
            })
            .collect()
    }
}

/// How one core fared.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CoreResult {
    /// The run completed.
    Ran {
        /// Every checker valid.
        valid: bool,
        /// Each checker's verdict (`valid`, `invalid`, `unknown`).
        checkers: Vec<(String, String)>,
        /// Completions of the main phase.
        ops: u64,
        /// Their rate.
        ops_per_sec: f64,
        /// Checkers that were not valid, with their anomaly types.
        failed: Vec<String>,
        /// The run directory.
        store: PathBuf,
    },
    /// The core cannot run this workload (why, from the probe).
    NotApplicable {
        /// Why.
        reason: String,
    },
    /// The run could not be carried out.
    Error {
        /// What went wrong.
        error: String,
    },
}

impl CoreResult {
    /// Passed: ran and every checker was valid.
    pub fn passed(&self) -> bool {
        matches!(self, CoreResult::Ran { valid: true, .. })
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The core version.
    pub core: String,
    /// Every `@powersync/node` version shipping this build.
    pub npm_versions: Vec<String>,
    /// How it fared.
    #[serde(flatten)]
    pub result: CoreResult,
}

/// Why `core` cannot run `workload`, if it cannot (from the core's probed capabilities).
pub fn not_applicable(workload: Workload, core: &VendoredCore) -> Option<String> {
    if workload == Workload::Sqlite3Local {
        return Some("sqlite3-local loads no PowerSync core".into());
    }
    if !workload.is_synced() {
        return None;
    }
    let caps = match core.load().and_then(|c| c.capabilities()) {
        Ok(caps) => caps,
        Err(e) => return Some(format!("cannot load or probe: {e}")),
    };
    if caps.can_download_sync() {
        return None;
    }
    let missing: Vec<&str> = powersync_sys::DOWNLOAD_SYNC_OPS
        .iter()
        .copied()
        .filter(|op| !caps.has_control_op(op))
        .collect();
    Some(match caps.control_ops {
        None => "no download sync: the core has no powersync_control (probed)".into(),
        Some(_) => format!(
            "no download sync: powersync_control lacks {} (probed)",
            missing.join(", ")
        ),
    })
}

/// Runs `base` once on `core`, in `<base.store>/<core>/` (or `<base.store>/<core>-<repeat>` for
/// repeats after the first).
pub async fn run_core(base: &RunOpts, core: &VendoredCore, repeat: usize) -> CoreResult {
    if !core.is_fetched() {
        return CoreResult::Error {
            error: format!(
                "not fetched: run `vendor/fetch-cores {}` ({})",
                core.version,
                core.path().display()
            ),
        };
    }
    if let Some(reason) = not_applicable(base.workload, core) {
        return CoreResult::NotApplicable { reason };
    }
    let dir = if repeat == 0 {
        core.version.clone()
    } else {
        format!("{}-{repeat}", core.version)
    };
    let opts = RunOpts {
        core_version: Some(core.version.clone()),
        store: base.store.join(dir),
        ..base.clone()
    };
    match runner::run(&opts).await {
        Ok(outcome) => CoreResult::Ran {
            valid: outcome.valid(),
            checkers: outcome
                .verdicts
                .iter()
                .map(|v| {
                    let verdict = serde_json::to_value(v.valid)
                        .ok()
                        .and_then(|j| j.as_str().map(String::from))
                        .unwrap_or_else(|| format!("{:?}", v.valid));
                    (v.checker.clone(), verdict)
                })
                .collect(),
            ops: outcome.stats.count,
            ops_per_sec: outcome.stats.ops_per_sec,
            failed: outcome
                .verdicts
                .iter()
                .filter(|v| !v.is_valid())
                .map(|v| format!("{} {:?}", v.checker, v.anomaly_types))
                .collect(),
            store: outcome.store,
        },
        Err(e) => CoreResult::Error {
            error: e.to_string(),
        },
    }
}

/// Runs `base` once per core of `cores`, up to `jobs` runs at a time (each run has its own
/// PostgreSQL cluster, stand-in and endpoints on free ports). Rows are in release order.
pub async fn run(base: &RunOpts, cores: &CoreSet, jobs: usize) -> Vec<Row> {
    let limit = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let cores = cores.cores();
    for (i, core) in cores.iter().copied().enumerate() {
        let mut opts = base.clone();
        // Parallel runs must not share one terminal progress bar.
        opts.progress = base.progress && jobs <= 1;
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, run_core(&opts, core, 0).await)
        });
    }
    let mut results: Vec<Option<CoreResult>> = vec![None; cores.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => results[i] = Some(result),
            Err(e) => {
                // A panicking run: name it on every row still missing.
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(CoreResult::Error {
                        error: format!("run task failed: {e}"),
                    });
                }
            }
        }
    }
    cores
        .iter()
        .zip(results)
        .map(|(core, result)| Row {
            core: core.version.clone(),
            npm_versions: core.npm_builds().map(|b| b.npm_version.clone()).collect(),
            result: result.unwrap_or(CoreResult::Error {
                error: "no result".into(),
            }),
        })
        .collect()
}

/// Whether no applicable core failed.
pub fn all_valid(rows: &[Row]) -> bool {
    rows.iter().all(|r| match &r.result {
        CoreResult::Ran { valid, .. } => *valid,
        CoreResult::NotApplicable { .. } => true,
        CoreResult::Error { .. } => false,
    })
}

/// Writes the rows as JSON to `<store>/matrix.json` and returns the path.
pub fn write_results(store: &std::path::Path, rows: &[Row]) -> Result<PathBuf, crate::Error> {
    std::fs::create_dir_all(store).map_err(|source| crate::Error::Io {
        path: store.to_path_buf(),
        source,
    })?;
    let path = store.join("matrix.json");
    let json =
        serde_json::to_string_pretty(rows).map_err(|e| crate::Error::Options(e.to_string()))?;
    std::fs::write(&path, json + "\n").map_err(|source| crate::Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The matrix table: one row per core, its checkers' verdicts and throughput.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:>6} {:>8}  checkers / notes\n",
        "core", "valid?", "ops", "ops/s"
    );
    for r in rows {
        let line = match &r.result {
            CoreResult::Ran {
                valid,
                ops,
                ops_per_sec,
                checkers,
                failed,
                ..
            } => {
                let verdicts: Vec<String> =
                    checkers.iter().map(|(c, v)| format!("{c}={v}")).collect();
                let mut notes = verdicts.join(" ");
                if !failed.is_empty() {
                    notes.push_str(&format!("; failed: {}", failed.join("; ")));
                }
                format!(
                    "{:<8} {:<8} {:>6} {:>8.1}  {notes}",
                    r.core, valid, ops, ops_per_sec
                )
            }
            CoreResult::NotApplicable { reason } => {
                format!("{:<8} {:<8} {:>6} {:>8}  {reason}", r.core, "n/a", "-", "-")
            }
            CoreResult::Error { error } => {
                let first = error.lines().next().unwrap_or("");
                format!(
                    "{:<8} {:<8} {:>6} {:>8}  {first}",
                    r.core, "error", "-", "-"
                )
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_sets_select_in_release_order() {
        assert_eq!(CoreSet::All.cores().len(), VendoredCore::all().len());
        let test: Vec<&str> = CoreSet::TestSet
            .cores()
            .iter()
            .map(|c| c.version.as_str())
            .collect();
        assert_eq!(
            test,
            ["0.3.11", "0.3.14", "0.4.6", "0.4.11", "0.5.2", "0.5.3"]
        );
        let picked = CoreSet::parse("0.5.3,0.4.10").unwrap();
        let picked: Vec<&str> = picked.cores().iter().map(|c| c.version.as_str()).collect();
        assert_eq!(picked, ["0.4.10", "0.5.3"]);
        assert!(CoreSet::parse("9.9.9").is_err());
        assert!(CoreSet::parse("").is_err());
    }

    #[test]
    fn applicability_comes_from_the_probe() {
        let old = VendoredCore::find("0.3.14").unwrap();
        let new = VendoredCore::find("0.4.6").unwrap();
        let why = not_applicable(Workload::PsRoPgWo, old).unwrap();
        assert!(why.contains("no powersync_control"), "{why}");
        assert_eq!(not_applicable(Workload::PsRoPgWo, new), None);
        assert!(not_applicable(Workload::Sqlite3Local, new).is_some());
        assert_eq!(not_applicable(Workload::PowersyncSingle, old), None);
    }
}
