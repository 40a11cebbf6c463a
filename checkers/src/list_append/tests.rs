//! Hand-made histories, one per anomaly the harness relies on, checked at each model it reports.

use super::*;
use crate::history::edn;

/// Builds a history from `(process, type, mops)` transactions written in EDN. With
/// `concurrent`, all invocations come first, then all completions (no real-time order between
/// the transactions); otherwise each transaction completes before the next is invoked.
fn history(concurrent: bool, txns: &[(u64, &str, &str)]) -> History {
    let mut lines = Vec::new();
    let invoke = |(p, _, mops): &(u64, &str, &str)| {
        let h = edn::read_history(&format!(
            "{{:type :ok, :process {p}, :f :txn, :value {mops}}}"
        ))
        .unwrap();
        let mut op = h.ops[0].clone();
        op.op_type = OpType::Invoke;
        if let Value::ListAppend(ms) = &mut op.value {
            for m in ms {
                if let ListAppendMop::Read { list, .. } = m {
                    *list = None;
                }
            }
        }
        op
    };
    let complete = |(p, t, mops): &(u64, &str, &str)| {
        edn::read_history(&format!(
            "{{:type :{t}, :process {p}, :f :txn, :value {mops}}}"
        ))
        .unwrap()
        .ops[0]
            .clone()
    };
    if concurrent {
        for t in txns {
            lines.push(invoke(t));
        }
        for t in txns {
            lines.push(complete(t));
        }
    } else {
        for t in txns {
            lines.push(invoke(t));
            lines.push(complete(t));
        }
    }
    for (i, op) in lines.iter_mut().enumerate() {
        op.index = i as u64;
        op.time = i as i64 * 1_000_000;
    }
    History::new(lines)
}

fn verdict(h: &History, model: &str) -> Verdict {
    check(h, model).unwrap()
}

/// Asserts the history is invalid at `model` and that `anomaly` is among those reported.
#[track_caller]
fn assert_invalid(h: &History, model: &str, anomaly: &str) {
    let v = verdict(h, model);
    assert_eq!(v.valid, Validity::Invalid, "{model}: {v:#?}");
    assert!(
        v.anomaly_types.iter().any(|t| t == anomaly),
        "{model}: expected {anomaly}, got {:?}",
        v.anomaly_types
    );
}

#[track_caller]
fn assert_valid(h: &History, model: &str) {
    let v = verdict(h, model);
    assert_eq!(v.valid, Validity::Valid, "{model}: {v:#?}");
    assert!(v.anomaly_types.is_empty());
}

const MODELS: [&str; 6] = [
    "read-committed",
    "monotonic-atomic-view",
    "repeatable-read",
    "snapshot-isolation",
    "serializable",
    "strict-serializable",
];

#[test]
fn serial_history_is_valid_at_every_model() {
    let h = history(
        false,
        &[
            (0, "ok", "[[:append 1 1] [:r 1 [1]]]"),
            (1, "ok", "[[:r 1 [1]] [:append 2 1] [:append 1 2]]"),
            (0, "ok", "[[:r 1 [1 2]] [:r 2 [1]]]"),
            (1, "fail", "[[:append 3 1]]"),
            (0, "ok", "[[:r 3 nil] [:r 2 [1]]]"),
        ],
    );
    for m in MODELS
        .iter()
        .chain(&["strong-session-serializable", "read-uncommitted"])
    {
        assert_valid(&h, m);
    }
}

#[test]
fn g0_write_cycle() {
    // x's order says T1 before T2, y's order says T2 before T1.
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:append 2 1]]"),
            (1, "ok", "[[:append 1 2] [:append 2 2]]"),
            (2, "ok", "[[:r 1 [1 2]] [:r 2 [2 1]]]"),
        ],
    );
    assert_invalid(&h, "read-uncommitted", "G0");
    for m in MODELS {
        assert_invalid(&h, m, "G0");
    }
}

#[test]
fn g1a_aborted_read() {
    let h = history(
        true,
        &[
            (0, "fail", "[[:append 1 1]]"),
            (1, "ok", "[[:r 1 [1]] [:append 2 1]]"),
            (2, "ok", "[[:r 2 [1]]]"),
        ],
    );
    for m in MODELS {
        assert_invalid(&h, m, "G1a");
    }
    assert_valid(&h, "read-uncommitted");
}

#[test]
fn info_writes_are_not_aborted() {
    // The same shape with an indeterminate writer: reading its append is fine.
    let h = history(
        true,
        &[
            (0, "info", "[[:append 1 1]]"),
            (1, "ok", "[[:r 1 [1]] [:append 2 1]]"),
            (2, "ok", "[[:r 2 [1]]]"),
        ],
    );
    for m in MODELS {
        assert_valid(&h, m);
    }
}

#[test]
fn g1b_intermediate_read() {
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:append 1 2]]"),
            (1, "ok", "[[:r 1 [1]]]"),
        ],
    );
    for m in MODELS {
        assert_invalid(&h, m, "G1b");
    }
    assert_valid(&h, "read-uncommitted");
}

#[test]
fn g1c_circular_information_flow() {
    // Elle's README example.
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:r 2 [1]]]"),
            (1, "ok", "[[:append 1 2] [:append 2 1]]"),
            (2, "ok", "[[:r 1 [1 2]]]"),
        ],
    );
    for m in MODELS {
        assert_invalid(&h, m, "G1c");
    }
    assert_valid(&h, "read-uncommitted");
}

#[test]
fn g_single_item_fractured_read() {
    // The seed's PowerSync-to-PostgreSQL shape: a reader sees one of a transaction's writes
    // but not the other.
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:append 2 1]]"),
            (1, "ok", "[[:r 1 [1]] [:r 2 nil]]"),
        ],
    );
    assert_valid(&h, "read-committed");
    for m in [
        "consistent-view",
        "repeatable-read",
        "snapshot-isolation",
        "serializable",
        "strict-serializable",
    ] {
        assert_invalid(&h, m, "G-single-item");
    }
}

#[test]
fn extra_anomalies_make_a_weak_model_strict_about_them() {
    // Elle's monotonic-atomic-view forbids only what read-committed forbids, so a fractured
    // read passes it unless G-single-item is named, as the seed's causal checker did.
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:append 2 1]]"),
            (1, "ok", "[[:r 1 [1]] [:r 2 nil]]"),
        ],
    );
    assert_valid(&h, "monotonic-atomic-view");
    let opts = Opts {
        anomalies: vec!["G-single-item".into()],
        ..Opts::new("monotonic-atomic-view")
    };
    let v = check_with(&h, &opts).unwrap();
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomaly_types, ["G-single-item"]);
    assert_eq!(v.model.as_deref(), Some("monotonic-atomic-view"));
    let bad = Opts {
        anomalies: vec!["G-cursor".into()],
        ..Opts::new("serializable")
    };
    assert!(matches!(
        check_with(&h, &bad),
        Err(Error::UnknownAnomaly(_))
    ));
    let process = Opts {
        anomalies: vec!["G-single-item-process".into()],
        ..Opts::new("strong-session-PL-2")
    };
    assert!(check_with(&h, &process).is_ok());
}

#[test]
fn g2_item_write_skew() {
    let h = history(
        true,
        &[
            (0, "ok", "[[:r 1 nil] [:r 2 nil] [:append 1 1]]"),
            (1, "ok", "[[:r 1 nil] [:r 2 nil] [:append 2 1]]"),
        ],
    );
    assert_valid(&h, "snapshot-isolation");
    assert_valid(&h, "read-committed");
    for m in ["repeatable-read", "serializable", "strict-serializable"] {
        assert_invalid(&h, m, "G2-item");
    }
}

#[test]
fn internal_inconsistency() {
    let h = history(true, &[(0, "ok", "[[:append 1 1] [:r 1 []]]")]);
    for m in [
        "serializable",
        "snapshot-isolation",
        "strict-serializable",
        "read-atomic",
    ] {
        assert_invalid(&h, m, "internal");
    }
    // Elle's 2026 fix: a nil read then a non-empty read of the same key.
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1]]"),
            (1, "ok", "[[:r 1 nil] [:r 1 [1]]]"),
        ],
    );
    assert_invalid(&h, "serializable", "internal");
}

#[test]
fn duplicate_elements() {
    let h = history(
        true,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:r 1 [1 1]]]")],
    );
    assert_invalid(&h, "read-uncommitted", "duplicate-elements");
    for m in MODELS {
        assert_invalid(&h, m, "duplicate-elements");
    }
}

#[test]
fn incompatible_order() {
    let h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1]]"),
            (1, "ok", "[[:append 1 2]]"),
            (2, "ok", "[[:r 1 [1 2]]]"),
            (3, "ok", "[[:r 1 [2 1]]]"),
        ],
    );
    for m in MODELS {
        assert_invalid(&h, m, "incompatible-order");
    }
}

#[test]
fn stale_read_is_serializable_but_not_strict() {
    // T1 completes its append before T2 is invoked, yet T2 reads the empty list.
    let h = history(
        false,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:r 1 nil]]")],
    );
    assert_valid(&h, "serializable");
    assert_invalid(&h, "strict-serializable", "G-single-item-realtime");
}

#[test]
fn read_your_writes_violation_needs_a_session_model() {
    let h = history(
        false,
        &[(0, "ok", "[[:append 1 1]]"), (0, "ok", "[[:r 1 nil]]")],
    );
    // Process 0's second transaction misses its first: only session models see it...
    let concurrent = history(
        true,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:r 1 nil]]")],
    );
    assert_valid(&concurrent, "strong-session-serializable");
    assert_invalid(&h, "strong-session-serializable", "G-single-item-process");
    assert_invalid(&h, "strict-serializable", "G-single-item-realtime");
}

#[test]
fn lost_update() {
    let h = history(
        true,
        &[
            (0, "ok", "[[:r 1 [5]] [:append 1 1]]"),
            (1, "ok", "[[:r 1 [5]] [:append 1 2]]"),
            (2, "ok", "[[:append 1 5]]"),
            (3, "ok", "[[:r 1 [5 1 2]]]"),
        ],
    );
    assert_invalid(&h, "repeatable-read", "lost-update");
    assert_valid(&h, "read-committed");
}

#[test]
fn final_reads_are_checked_too() {
    // The seed's final reads use f = r-final; they must not be dropped.
    let mut h = history(
        true,
        &[
            (0, "ok", "[[:append 1 1] [:append 1 2]]"),
            (1, "ok", "[[:r 1 [1]]]"),
        ],
    );
    for op in &mut h.ops {
        if op.client() == Some(1) {
            op.f = "r-final".into();
            op.final_read = true;
        }
    }
    assert_invalid(&h, "read-committed", "G1b");
}

#[test]
fn unknown_models_and_wrong_workloads_are_errors() {
    let h = history(true, &[(0, "ok", "[[:append 1 1]]")]);
    assert!(matches!(check(&h, "bogus"), Err(Error::UnknownModel(_))));
    assert_eq!(canonical_model("PL-2").unwrap(), "read-committed");
    assert_eq!(
        canonical_model("strong-session-PL-2").unwrap(),
        "strong-session-read-committed"
    );
    let mww =
        edn::read_history("{:type :ok, :process 0, :f :txn, :value [[:readAll nil {}]]}").unwrap();
    assert!(matches!(
        check(&mww, "serializable"),
        Err(Error::WrongWorkload { .. })
    ));
}

#[test]
fn a_process_edge_that_is_also_rw_still_rules_out_session_models() {
    // Process 0 reads T2's append to 1 before T2 runs, and misses T2's append to 2: the edge
    // T1 -> T2 is both process order and rw, T2 -> T1 is wr: a G1c-process cycle.
    let h = history(
        false,
        &[
            (0, "ok", "[[:r 1 [1]] [:r 2 nil]]"),
            (0, "ok", "[[:append 1 1] [:append 2 1]]"),
        ],
    );
    assert_valid(&h, "read-committed");
    // adya alone says only "strong-session-PL-2-cycle-exists"; Elle names the cycle.
    assert_invalid(&h, "strong-session-read-committed", "G1c-process");
    let v = verdict(&h, "strong-session-read-committed");
    assert_eq!(v.anomaly_types, ["G1c-process"]);
    assert_eq!(v.not, ["strong-session-read-committed"]);
    let steps = &v.anomalies["G1c-process"][0].detail["steps"];
    let rels: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels.len(), 2);
    assert!(
        rels.contains(&"wr") && rels.contains(&"process"),
        "{rels:?}"
    );
}

#[test]
fn g0_process_through_an_rw_and_process_edge() {
    // Process 0 runs T1 then T2, yet key 1's order puts T2's append before T1's (ww T2 -> T1).
    // The process edge T1 -> T2 is also rw (T1 read key 3 empty, T2 created it), so adya types
    // it rw and its G0-process search cannot use it.
    let h = history(
        false,
        &[
            (0, "ok", "[[:append 1 2] [:r 3 nil]]"),
            (0, "ok", "[[:append 1 1] [:append 3 1]]"),
            (1, "ok", "[[:r 1 [1 2]]]"),
        ],
    );
    assert_valid(&h, "read-uncommitted");
    let v = verdict(&h, "strong-session-read-uncommitted");
    assert_eq!(v.valid, Validity::Invalid, "{v:#?}");
    assert_eq!(v.anomaly_types, ["G0-process"]);
    assert!(
        v.anomalies["G0-process"][0]
            .explanation
            .contains("process 0 executed")
    );
}

#[test]
fn duplicate_appends_make_the_verdict_unknown() {
    // adya checks unique appends only on invocations; a completions-only file slipped through.
    let h = History::new(
        history(
            true,
            &[
                (0, "ok", "[[:append 1 1]]"),
                (1, "ok", "[[:append 1 1]]"),
                (2, "ok", "[[:r 1 [1]]]"),
            ],
        )
        .ops
        .into_iter()
        .filter(|o| o.op_type != OpType::Invoke)
        .collect(),
    );
    let v = verdict(&h, "serializable");
    assert_eq!(v.valid, Validity::Unknown, "{v:#?}");
    assert_eq!(v.anomaly_types, ["duplicate-appends"]);
}

#[test]
fn invocations_without_completion_are_indeterminate() {
    // T0 never completes, but T1 observed its append: T0 must count as possibly committed.
    let mut h = history(
        true,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:r 1 [1]]]")],
    );
    h.ops.remove(2);
    assert_valid(&h, "serializable");
    // And an in-flight append nobody saw, next to a committed read, changes nothing.
    let mut h = history(
        true,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:r 1 nil]] ")],
    );
    h.ops.remove(2);
    assert_valid(&h, "serializable");
}

#[test]
fn generated_strict_serializable_history_is_valid_and_a_corruption_is_caught() {
    use crate::history::generate::{self, GenOpts};
    let h = generate::list_append(&GenOpts {
        txns: 1000,
        ..GenOpts::default()
    });
    for m in MODELS {
        assert_valid(&h, m);
    }
    // Let a transaction whose append someone read fail instead: an aborted read.
    let read_elements: HashSet<(i64, i64)> = h
        .completions()
        .flat_map(|op| match &op.value {
            Value::ListAppend(ms) => ms.clone(),
            _ => Vec::new(),
        })
        .flat_map(|m| match m {
            ListAppendMop::Read { key, list } => list
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (key, e))
                .collect(),
            ListAppendMop::Append { .. } => Vec::new(),
        })
        .collect();
    let mut bad = h.clone();
    let writer = bad
        .ops
        .iter_mut()
        .find(|op| {
            op.op_type == OpType::Ok
                && matches!(&op.value, Value::ListAppend(ms) if ms.iter().any(|m| matches!(m, ListAppendMop::Append { key, element } if read_elements.contains(&(*key, *element)))))
        })
        .unwrap();
    writer.op_type = OpType::Fail;
    assert_invalid(&bad, "read-committed", "G1a");
    // The same history survives both textual forms.
    assert_eq!(
        crate::history::json::read_history(&crate::history::json::write_history(&h)).unwrap(),
        h
    );
    assert_eq!(edn::read_history(&edn::write_history(&h)).unwrap(), h);
}

#[test]
fn generated_history_from_a_store_without_write_conflicts_is_caught() {
    use crate::history::generate::{self, GenOpts};
    let h = generate::list_append(&GenOpts {
        txns: 300,
        active_keys: 5,
        snapshot_reads: true,
        ..GenOpts::default()
    });
    // Transactions append on top of stale snapshots: the reads no longer fit one order per key
    // and the appends' orders contradict each other.
    assert_invalid(&h, "read-committed", "incompatible-order");
    assert_invalid(&h, "read-uncommitted", "G0");
}

#[test]
fn reading_your_own_intermediate_state_is_fine() {
    let h = history(
        true,
        &[(
            0,
            "ok",
            "[[:append 1 1] [:r 1 [1]] [:append 1 2] [:r 1 [1 2]]]",
        )],
    );
    let v = verdict(&h, "serializable");
    assert!(
        !v.anomaly_types
            .iter()
            .any(|t| t == "G1b" || t == "internal"),
        "{v:#?}"
    );
}

#[test]
fn future_read() {
    // The transaction reads its own append before making it.
    let h = history(true, &[(0, "ok", "[[:r 1 [1]] [:append 1 1]]")]);
    assert_invalid(&h, "read-atomic", "future-read");
    assert_invalid(&h, "serializable", "future-read");
}

#[test]
fn dirty_update() {
    // A committed append builds on an aborted one.
    let h = history(
        true,
        &[
            (0, "fail", "[[:append 1 1]]"),
            (1, "ok", "[[:append 1 2]]"),
            (2, "ok", "[[:r 1 [1 2]]]"),
        ],
    );
    assert_invalid(&h, "read-committed", "dirty-update");
    assert_invalid(&h, "read-committed", "G1a");
}

#[test]
fn checking_a_file_streaming_gives_the_verdict_of_the_whole_history() {
    use crate::history::generate::{self, GenOpts};
    use crate::history::json;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let same = |h: &History, opts: &Opts| {
        std::fs::write(&path, json::write_history(h)).unwrap();
        let whole = check_with(&History::read_file(&path).unwrap(), opts);
        let streamed = check_file(&path, opts);
        match (whole, streamed) {
            (Ok(w), Ok(s)) => assert_eq!(w, s),
            (Err(w), Err(s)) => assert_eq!(w.to_string(), s.to_string()),
            (w, s) => panic!("whole {w:?}, streamed {s:?}"),
        }
    };
    let strict = Opts::new("strict-serializable");
    // Valid, with the last invocations left without completions.
    let mut h = generate::list_append(&GenOpts {
        txns: 300,
        ..GenOpts::default()
    });
    let completions: Vec<usize> = (0..h.ops.len())
        .filter(|&i| h.ops[i].op_type != OpType::Invoke)
        .collect();
    for &i in completions.iter().rev().take(3) {
        h.ops.remove(i);
    }
    same(&h, &strict);
    // Anomalies of every kind the snapshot store produces, at several models.
    let bad = generate::list_append(&GenOpts {
        txns: 300,
        active_keys: 5,
        snapshot_reads: true,
        ..GenOpts::default()
    });
    for model in ["read-committed", "serializable", "strict-serializable"] {
        same(&bad, &Opts::new(model));
    }
    // A duplicated append, and another workload.
    let dup = history(
        true,
        &[(0, "ok", "[[:append 1 1]]"), (1, "ok", "[[:append 1 1]]")],
    );
    same(&dup, &strict);
    let mww =
        edn::read_history("{:type :ok, :process 0, :f :txn, :value [[:readAll nil {}]]}").unwrap();
    same(&mww, &strict);
    // A file that cannot be read is the reader's error.
    let mut text = json::write_history(&h);
    text.push_str("{\"type\":\n");
    std::fs::write(&path, text).unwrap();
    let err = check_file(&path, &strict).unwrap_err();
    let line = h.ops.len() + 1;
    assert!(
        matches!(err, Error::Json { line: l, .. } if l == line),
        "{err}"
    );
}
