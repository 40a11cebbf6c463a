//! Bisection over the vendored core builds: which core first fails a workload.
//!
//! The cores from `good` to `bad` (inclusive) are put in release order, oriented from `good`
//! towards `bad` (so `good` may be newer than `bad`, e.g. to find where a capability appeared),
//! and searched by halving, assuming the change is monotone along that line. A core *fails* when
//! any of its `repeats` runs is not valid, cannot be carried out, or the workload is not
//! applicable to it (a core that cannot run a synced workload fails it). `good` must pass and
//! `bad` must fail, or the bisection stops and says so.

use std::path::PathBuf;

use powersync_sys::VendoredCore;
use serde::Serialize;

use crate::matrix::{self, CoreResult};
use crate::runner::RunOpts;

/// One core tried during the bisection.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The core version.
    pub core: String,
    /// Whether every repeat passed.
    pub passed: bool,
    /// Each repeat's result (up to the first failure).
    pub results: Vec<CoreResult>,
}

/// What the bisection found.
#[derive(Debug, Clone, Serialize)]
pub struct Bisection {
    /// The first failing core on the way from `good` to `bad`.
    pub first_failing: String,
    /// The core just before it, the last one that passed.
    pub last_passing: String,
    /// How the first failing core failed: the run directory of its failing history, or why it
    /// has none (not applicable, or the run could not be carried out).
    pub failure: Failure,
    /// Every core tried, in the order tried.
    pub steps: Vec<Step>,
}

/// How a core failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// A checker found the history invalid; the run directory holds it.
    Invalid {
        /// The run directory.
        store: PathBuf,
        /// The failed checkers.
        failed: Vec<String>,
    },
    /// The workload is not applicable to the core.
    NotApplicable(String),
    /// The run could not be carried out.
    Error(String),
}

/// The cores from `good` to `bad` inclusive, in release order, oriented from `good` to `bad`.
pub fn line(good: &str, bad: &str) -> Result<Vec<&'static VendoredCore>, crate::Error> {
    let find = |v: &str| VendoredCore::find(v).map_err(|e| crate::Error::Options(e.to_string()));
    let (g, b) = (find(good)?, find(bad)?);
    if g.version == b.version {
        return Err(crate::Error::Options(format!(
            "--good and --bad are the same core {good}"
        )));
    }
    let all = VendoredCore::all();
    let index = |c: &VendoredCore| all.iter().position(|x| x.version == c.version);
    let (gi, bi) = (index(g).unwrap_or(0), index(b).unwrap_or(0));
    Ok(if gi < bi {
        all[gi..=bi].iter().collect()
    } else {
        all[bi..=gi].iter().rev().collect()
    })
}

async fn try_core(base: &RunOpts, core: &'static VendoredCore, repeats: usize) -> Step {
    let mut results = Vec::new();
    for repeat in 0..repeats.max(1) {
        let result = matrix::run_core(base, core, repeat).await;
        let passed = result.passed();
        results.push(result);
        if !passed {
            break;
        }
    }
    Step {
        core: core.version.clone(),
        passed: results.iter().all(CoreResult::passed),
        results,
    }
}

/// Bisects between `good` and `bad` with `repeats` runs per core (see the module
/// documentation).
pub async fn run(
    base: &RunOpts,
    good: &str,
    bad: &str,
    repeats: usize,
) -> Result<Bisection, crate::Error> {
    let cores = line(good, bad)?;
    let mut steps = Vec::new();
    let first = try_core(base, cores[0], repeats).await;
    let first_passed = first.passed;
    steps.push(first);
    if !first_passed {
        return Err(crate::Error::Options(format!(
            "the good core {good} fails: {}",
            describe(steps.last())
        )));
    }
    let last = try_core(base, cores[cores.len() - 1], repeats).await;
    let last_passed = last.passed;
    steps.push(last);
    if last_passed {
        return Err(crate::Error::Options(format!(
            "the bad core {bad} passes; nothing to bisect"
        )));
    }
    // Invariant: cores[lo] passes, cores[hi] fails.
    let (mut lo, mut hi) = (0, cores.len() - 1);
    let mut failing = steps.len() - 1;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let step = try_core(base, cores[mid], repeats).await;
        let passed = step.passed;
        steps.push(step);
        if passed {
            lo = mid;
        } else {
            hi = mid;
            failing = steps.len() - 1;
        }
    }
    let failed_step = &steps[failing];
    let failure = match failed_step.results.last() {
        Some(CoreResult::Ran { store, failed, .. }) => Failure::Invalid {
            store: store.clone(),
            failed: failed.clone(),
        },
        Some(CoreResult::NotApplicable { reason }) => Failure::NotApplicable(reason.clone()),
        Some(CoreResult::Error { error }) => Failure::Error(error.clone()),
        None => Failure::Error("no result".into()),
    };
    Ok(Bisection {
        first_failing: cores[hi].version.clone(),
        last_passing: cores[lo].version.clone(),
        failure,
        steps,
    })
}

fn describe(step: Option<&Step>) -> String {
    match step.and_then(|s| s.results.last()) {
        Some(CoreResult::Ran { failed, store, .. }) => {
            format!("{} (run {})", failed.join("; "), store.display())
        }
        Some(CoreResult::NotApplicable { reason }) => format!("not applicable: {reason}"),
        Some(CoreResult::Error { error }) => error.clone(),
        None => "no result".into(),
    }
}

/// The report printed by `harness bisect`.
pub fn report(b: &Bisection) -> String {
    let mut out = String::new();
    for s in &b.steps {
        out.push_str(&format!(
            "tried {:<8} {}\n",
            s.core,
            if s.passed {
                "pass".to_string()
            } else {
                format!("FAIL {}", describe(Some(s)))
            }
        ));
    }
    out.push_str(&format!(
        "first failing core: {} (last passing: {})\n",
        b.first_failing, b.last_passing
    ));
    out.push_str(&match &b.failure {
        Failure::Invalid { store, failed } => format!(
            "failing history: {} ({})\n",
            store.display(),
            failed.join("; ")
        ),
        Failure::NotApplicable(why) => format!("no history: not applicable ({why})\n"),
        Failure::Error(e) => format!("no history: the run failed ({e})\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_runs_from_good_to_bad_in_release_order() {
        let versions = |g, b| -> Vec<String> {
            line(g, b)
                .unwrap()
                .iter()
                .map(|c| c.version.clone())
                .collect()
        };
        assert_eq!(
            versions("0.4.6", "0.4.12"),
            ["0.4.6", "0.4.10", "0.4.11", "0.4.12"]
        );
        assert_eq!(
            versions("0.4.12", "0.4.6"),
            ["0.4.12", "0.4.11", "0.4.10", "0.4.6"]
        );
        assert!(line("0.4.6", "0.4.6").is_err());
        assert!(line("0.4.6", "9.9.9").is_err());
    }
}
