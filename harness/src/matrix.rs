//! A workload across every vendored core version, one run each, summarised in one table.
//! Cores older than 0.4.6 cannot download-sync, so synced workloads report them as `n/a`;
//! `sqlite3-local` loads no core, so every row is `n/a` there.

use crate::runner::{self, RunOpts};

/// The first core version that can download-sync.
pub const FIRST_SYNCING_CORE: (u32, u32, u32) = (0, 4, 6);

/// How one core fared.
#[derive(Debug)]
pub enum CoreResult {
    /// The run completed; whether every checker was valid, and the summary.
    Ran {
        /// Every checker valid.
        valid: bool,
        /// Completions of the main phase.
        ops: u64,
        /// Their rate.
        ops_per_sec: f64,
        /// Checkers that were not valid.
        failed: Vec<String>,
    },
    /// Not applicable to this workload (why).
    NotApplicable(String),
    /// The run could not be carried out.
    Error(String),
}

/// One row of the matrix.
#[derive(Debug)]
pub struct Row {
    /// The core version.
    pub core: String,
    /// How it fared.
    pub result: CoreResult,
}

/// Parses `major.minor.patch`.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Runs `base` once per vendored core, each in `<base.store>/<core>/`.
pub async fn run(base: &RunOpts) -> Vec<Row> {
    let mut rows = Vec::new();
    for core in powersync_sys::vendored_cores() {
        let version = core.version.clone();
        let result = if base.workload == crate::workload::Workload::Sqlite3Local {
            CoreResult::NotApplicable("sqlite3-local loads no PowerSync core".into())
        } else if base.workload.is_synced()
            && parse_version(&version).is_some_and(|v| v < FIRST_SYNCING_CORE)
        {
            CoreResult::NotApplicable("no download sync before 0.4.6".into())
        } else {
            let opts = RunOpts {
                core_version: Some(version.clone()),
                store: base.store.join(&version),
                ..base.clone()
            };
            match runner::run(&opts).await {
                Ok(outcome) => CoreResult::Ran {
                    valid: outcome.valid(),
                    ops: outcome.stats.count,
                    ops_per_sec: outcome.stats.ops_per_sec,
                    failed: outcome
                        .verdicts
                        .iter()
                        .filter(|v| !v.is_valid())
                        .map(|v| format!("{} {:?}", v.checker, v.anomaly_types))
                        .collect(),
                },
                Err(crate::Error::Interrupted) => {
                    rows.push(Row {
                        core: version,
                        result: CoreResult::Error("interrupted".into()),
                    });
                    break;
                }
                Err(e) => CoreResult::Error(e.to_string()),
            }
        };
        rows.push(Row {
            core: version,
            result,
        });
    }
    rows
}

/// Whether no applicable core failed.
pub fn all_valid(rows: &[Row]) -> bool {
    rows.iter().all(|r| match &r.result {
        CoreResult::Ran { valid, .. } => *valid,
        CoreResult::NotApplicable(_) => true,
        CoreResult::Error(_) => false,
    })
}

/// The matrix table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:>6} {:>8}  notes\n",
        "core", "valid?", "ops", "ops/s"
    );
    for r in rows {
        let line = match &r.result {
            CoreResult::Ran {
                valid,
                ops,
                ops_per_sec,
                failed,
            } => format!(
                "{:<8} {:<8} {:>6} {:>8.1}  {}",
                r.core,
                valid,
                ops,
                ops_per_sec,
                failed.join("; ")
            ),
            CoreResult::NotApplicable(why) => {
                format!("{:<8} {:<8} {:>6} {:>8}  {why}", r.core, "n/a", "-", "-")
            }
            CoreResult::Error(e) => {
                let first = e.lines().next().unwrap_or("");
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
    fn versions_order_numerically() {
        assert!(parse_version("0.3.14").is_some_and(|v| v < FIRST_SYNCING_CORE));
        assert!(parse_version("0.4.11").is_some_and(|v| v >= FIRST_SYNCING_CORE));
        assert!(parse_version("0.4.6").is_some_and(|v| v >= FIRST_SYNCING_CORE));
        assert_eq!(parse_version("x"), None);
    }
}
