//! Endpoint log checks, as the seed's `:logs-ps-client` checker: lines containing `ERROR`.
//!
//! The seed greps endpoint logs case-sensitively for `ERROR` (shelf prints `ERROR - <ts>` and
//! `[ERROR]` when a handler throws); the latest era also flags `SEVERE`. [`check`] takes the
//! patterns to look for, so both are covered.

use std::path::Path;

use serde_json::json;

use super::{Anomaly, Verdict};
use crate::error::{Error, Result};

/// The seed's pattern.
pub const SEED_PATTERNS: &[&str] = &["ERROR"];
/// The latest era's patterns (`(SEVERE)|(ERROR)`).
pub const LATEST_PATTERNS: &[&str] = &["SEVERE", "ERROR"];

/// One log line that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMatch {
    /// The log's name (e.g. its file name or node).
    pub log: String,
    /// 1-based line number.
    pub line: usize,
    /// The whole line.
    pub text: String,
}

/// The lines of `text` containing any of `patterns` (case-sensitive substrings).
pub fn matches(log: &str, text: &str, patterns: &[&str]) -> Vec<LogMatch> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| patterns.iter().any(|p| l.contains(p)))
        .map(|(i, l)| LogMatch {
            log: log.to_owned(),
            line: i + 1,
            text: l.to_owned(),
        })
        .collect()
}

/// Checks named logs (`(name, contents)`): valid when no line matches. The verdict's
/// `log-matches` anomaly lists every match; its detail holds the `count`.
pub fn check<'a>(logs: impl IntoIterator<Item = (&'a str, &'a str)>, patterns: &[&str]) -> Verdict {
    let found: Vec<LogMatch> = logs
        .into_iter()
        .flat_map(|(name, text)| matches(name, text, patterns))
        .collect();
    let anomalies = if found.is_empty() {
        Vec::new()
    } else {
        vec![Anomaly {
            kind: "log-matches".into(),
            ops: Vec::new(),
            explanation: format!(
                "{} log line(s) contain {}",
                found.len(),
                patterns.join(" or ")
            ),
            detail: json!({
                "count": found.len(),
                "matches": found
                    .iter()
                    .map(|m| json!({"log": m.log, "line": m.line, "text": m.text}))
                    .collect::<Vec<_>>(),
            }),
        }]
    };
    Verdict::from_anomalies("logs", anomalies)
}

/// Reads log files and checks them (see [`check`]).
pub fn check_files(paths: &[&Path], patterns: &[&str]) -> Result<Verdict> {
    let texts = paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|source| Error::Io {
                    path: p.to_path_buf(),
                    source,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(check(
        texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        patterns,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "INFO started\n\
                       [ERROR] 2024-06-27 POST /sql-txn 500\n\
                       ERROR - 2024-06-27 Error thrown by handler.\n\
                       SEVERE: upload queue stuck\n\
                       an error in lower case\n";

    #[test]
    fn finds_error_lines() {
        let v = check([("n1", LOG), ("n2", "all fine\n")], SEED_PATTERNS);
        assert!(!v.is_valid());
        let a = &v.anomalies["log-matches"][0];
        assert_eq!(a.detail["count"], 2);
        assert_eq!(a.detail["matches"][0]["line"], 2);
        assert_eq!(a.detail["matches"][1]["log"], "n1");
        assert_eq!(
            check([("n1", LOG)], LATEST_PATTERNS).anomalies["log-matches"][0].detail["count"],
            3
        );
    }

    #[test]
    fn clean_logs_are_valid() {
        assert!(check([("n1", "INFO ok\nerror lower\n")], SEED_PATTERNS).is_valid());
    }

    #[test]
    fn reads_files() {
        let dir = std::env::temp_dir().join(format!("harness-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("client.log");
        std::fs::write(&f, LOG).unwrap();
        let v = check_files(&[f.as_path()], SEED_PATTERNS).unwrap();
        assert_eq!(v.anomalies["log-matches"][0].detail["count"], 2);
        let missing = dir.join("missing.log");
        assert!(matches!(
            check_files(&[missing.as_path()], SEED_PATTERNS),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
