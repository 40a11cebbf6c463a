//! Jepsen's `stats` checker: every client function of the main phase had at least one `ok`.

use std::collections::BTreeMap;

use serde_json::json;

use crate::history::{History, OpType};
use crate::{Anomaly, Verdict};

/// Checks that the main phase completed operations and that every client function (`f`) had at
/// least one `ok` (final reads are not counted).
pub fn check(history: &History) -> Verdict {
    let mut per_f: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for op in history.completions().filter(|op| !op.final_read) {
        let e = per_f.entry(op.f.as_str()).or_default();
        e.0 += 1;
        if op.op_type == OpType::Ok {
            e.1 += 1;
        }
    }
    let mut found = Vec::new();
    if per_f.is_empty() {
        found.push(Anomaly {
            kind: "no-operations".into(),
            ops: Vec::new(),
            explanation: "the main phase completed no client operation".into(),
            detail: json!({}),
        });
    }
    for (f, (count, ok)) in &per_f {
        if *ok == 0 {
            found.push(Anomaly {
                kind: "no-ok-operations".into(),
                ops: Vec::new(),
                explanation: format!("none of the {count} {f} operations completed ok"),
                detail: json!({"f": f, "count": count}),
            });
        }
    }
    Verdict::from_anomalies("stats", found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::edn;

    #[test]
    fn a_function_without_ok_and_an_empty_history_are_flagged() {
        let h = edn::read_history(
            "{:index 0 :type :invoke :process 0 :f :txn :value [[:r 0 nil]]}\n\
             {:index 1 :type :fail :process 0 :f :txn :value [[:r 0 nil]]}",
        )
        .unwrap();
        assert_eq!(check(&h).anomaly_types, vec!["no-ok-operations"]);
        assert_eq!(
            check(&History::default()).anomaly_types,
            vec!["no-operations"]
        );
        let ok = edn::read_history(
            "{:index 0 :type :invoke :process 0 :f :txn :value [[:r 0 nil]]}\n\
             {:index 1 :type :ok :process 0 :f :txn :value [[:r 0 [1]]]}",
        )
        .unwrap();
        assert!(check(&ok).is_valid());
    }
}
