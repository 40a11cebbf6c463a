//! The pure checkers of the PowerSync Jepsen harness, usable and benchmarkable alone: no
//! processes, no HTTP, no plotting.
//!
//! - [`history`]: [`History`], [`Op`] and their JSON-lines / EDN forms, and generated
//!   histories for tests and benchmarks ([`history::generate`]);
//! - [`list_append`]: list-append isolation anomalies (Elle's checker, through `adya`);
//! - [`adya`]: causal consistency of last-write-wins list-append (the seed's `causal.checker.adya`);
//! - [`causal`]: causal consistency of max-write-wins registers;
//! - [`convergence`]: strong convergence of the final reads;
//! - [`stats`]: Jepsen's `stats` checker; [`logs`]: patterns in the endpoints' logs.
//!
//! Every checker returns a [`Verdict`]: whether the history is valid, which anomaly types were
//! found, and for each an example with a human explanation. Verdicts serialise to JSON in the
//! shape of Jepsen's checker results (`valid?`, `anomaly-types`, `anomalies`, `not`,
//! `also-not`).

pub mod adya;
pub mod causal;
pub mod convergence;
pub mod error;
pub mod history;
pub mod list_append;
pub mod logs;
pub mod stats;

pub use error::{Error, Result};
pub use history::{History, Op, OpType};

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

/// Jepsen's three-valued validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// No proscribed anomaly was found.
    Valid,
    /// At least one proscribed anomaly was found.
    Invalid,
    /// The checker could not decide (e.g. cycle search timed out, nothing to analyse).
    Unknown,
}

impl Serialize for Validity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// One anomaly: its type, the operations involved, why it is an anomaly, and details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The anomaly type, in Elle's / Jepsen's words (`G-single-item`, `divergent-final-reads`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The `index` of each operation involved.
    pub ops: Vec<u64>,
    /// A human explanation.
    pub explanation: String,
    /// Machine-readable details.
    pub detail: Json,
}

/// A checker's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Verdict {
    /// Which checker produced this verdict (`list-append`, `strong-convergence`, ...).
    pub checker: String,
    /// The consistency model checked, for checkers that take one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Valid, invalid or unknown.
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// The anomaly types found, sorted.
    pub anomaly_types: Vec<String>,
    /// Examples of each anomaly type.
    pub anomalies: BTreeMap<String, Vec<Anomaly>>,
    /// The weakest consistency models the anomalies rule out (list-append only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not: Vec<String>,
    /// Every stronger model, also ruled out (list-append only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_not: Vec<String>,
}

impl Verdict {
    /// A verdict from the anomalies found: valid if there are none, else invalid.
    pub fn from_anomalies(checker: &str, found: Vec<Anomaly>) -> Verdict {
        let mut anomalies: BTreeMap<String, Vec<Anomaly>> = BTreeMap::new();
        for a in found {
            anomalies.entry(a.kind.clone()).or_default().push(a);
        }
        Verdict {
            checker: checker.to_owned(),
            valid: if anomalies.is_empty() {
                Validity::Valid
            } else {
                Validity::Invalid
            },
            anomaly_types: anomalies.keys().cloned().collect(),
            anomalies,
            not: Vec::new(),
            also_not: Vec::new(),
            model: None,
        }
    }

    /// Whether this verdict is exactly valid (not invalid, not unknown).
    pub fn is_valid(&self) -> bool {
        self.valid == Validity::Valid
    }
}
