use super::*;
use crate::history::edn;

/// An `ok` transaction of `process`: reads then writes, as EDN map bodies.
fn txn(index: u64, process: u64, reads: &str, writes: &str) -> String {
    format!(
        "{{:index {index} :type :ok :process {process} :f :txn :value [[:readAll nil {{{reads}}}] [:writeSome nil {{{writes}}}]]}}"
    )
}

fn check_txns(txns: &[(u64, &str, &str)]) -> Verdict {
    let lines: Vec<String> = txns
        .iter()
        .enumerate()
        .map(|(i, (p, r, w))| txn(i as u64, *p, r, w))
        .collect();
    let h = edn::read_history(&lines.join("\n")).unwrap();
    check(&h, &Opts { key_count: Some(2) })
}

fn types(v: &Verdict) -> Vec<&str> {
    v.anomaly_types.iter().map(String::as_str).collect()
}

#[test]
fn causal_history_is_valid() {
    let v = check_txns(&[
        (0, "0 -1, 1 -1", "0 0"),
        (1, "0 0, 1 -1", "1 1"),
        (2, "0 0, 1 1", ""),
        (0, "0 0, 1 1", "0 3"),
        (2, "0 3, 1 1", ""),
    ]);
    assert!(v.is_valid(), "{v:#?}");
}

#[test]
fn read_your_writes() {
    let ok = check_txns(&[(0, "0 -1, 1 -1", "0 0"), (0, "0 0, 1 -1", "")]);
    assert!(ok.is_valid(), "{ok:#?}");
    let v = check_txns(&[(0, "0 -1, 1 -1", "0 0"), (0, "0 -1, 1 -1", "")]);
    assert_eq!(types(&v), ["read-your-writes"]);
    assert_eq!(v.anomalies["read-your-writes"][0].ops, [0, 1]);
}

#[test]
fn monotonic_reads() {
    let history = |second: &'static str| {
        check_txns(&[
            (1, "0 -1, 1 -1", "0 0"),
            (1, "0 0, 1 -1", "0 1"),
            (0, "0 1, 1 -1", ""),
            (0, second, ""),
        ])
    };
    assert!(history("0 1, 1 -1").is_valid());
    assert_eq!(types(&history("0 0, 1 -1")), ["monotonic-reads"]);
}

#[test]
fn monotonic_reads_dart_case() {
    // The endpoint fuzzer's test: a client reads {0:2,1:1,2:0} then {0:1,1:0,2:-1}.
    let lines = [
        "{:index 0 :type :ok :process 1 :f :txn :value [[:readAll nil {0 -1, 1 -1, 2 -1}] [:writeSome nil {0 0, 1 0, 2 0}]]}",
        "{:index 1 :type :ok :process 1 :f :txn :value [[:readAll nil {0 0, 1 0, 2 0}] [:writeSome nil {0 1, 1 1}]]}",
        "{:index 2 :type :ok :process 1 :f :txn :value [[:readAll nil {0 1, 1 1, 2 0}] [:writeSome nil {0 2}]]}",
        "{:index 3 :type :ok :process 2 :f :txn :value [[:readAll nil {0 2, 1 1, 2 0}] [:writeSome nil {}]]}",
        "{:index 4 :type :ok :process 2 :f :txn :value [[:readAll nil {0 1, 1 0, 2 -1}] [:writeSome nil {}]]}",
    ];
    let h = edn::read_history(&lines.join("\n")).unwrap();
    let v = check(&h, &Opts::default());
    assert_eq!(types(&v), ["monotonic-reads"]);
    assert_eq!(v.anomalies["monotonic-reads"].len(), 3);
    let valid = edn::read_history(&lines[..4].join("\n")).unwrap();
    assert!(check(&valid, &Opts::default()).is_valid());
}

#[test]
fn monotonic_writes() {
    // Process 0 writes key 0, then key 1. Whoever sees the second write must see the first.
    let history = |reader: &'static str| {
        check_txns(&[
            (0, "0 -1, 1 -1", "0 0"),
            (0, "0 0, 1 -1", "1 1"),
            (1, reader, ""),
        ])
    };
    assert!(history("0 0, 1 1").is_valid());
    assert!(history("0 -1, 1 -1").is_valid());
    let v = history("0 -1, 1 1");
    assert_eq!(types(&v), ["monotonic-writes"]);
    assert_eq!(v.anomalies["monotonic-writes"][0].detail["because-of"], 1);
}

#[test]
fn atomic_visibility_of_one_transaction() {
    // One transaction writes both keys; a reader sees only one of them.
    let v = check_txns(&[(0, "0 -1, 1 -1", "0 0, 1 0"), (1, "0 0, 1 -1", "")]);
    assert_eq!(types(&v), ["monotonic-writes"]);
}

#[test]
fn writes_follow_reads() {
    // Process 1 read process 0's write before writing key 1: a reader of that write must
    // also see what process 1 had read.
    let history = |reader: &'static str| {
        check_txns(&[
            (0, "0 -1, 1 -1", "0 0"),
            (1, "0 0, 1 -1", "1 1"),
            (2, reader, ""),
        ])
    };
    assert!(history("0 0, 1 1").is_valid());
    let v = history("0 -1, 1 1");
    assert_eq!(types(&v), ["writes-follow-reads"]);
}

#[test]
fn no_read_of_a_never_written_value() {
    let v = check_txns(&[(0, "0 -1, 1 -1", "0 0"), (1, "0 0, 1 5", "")]);
    assert_eq!(types(&v), ["read-unwritten-value"]);
    let v = check_txns(&[(1, "0 -2, 1 -1", "")]);
    assert_eq!(types(&v), ["read-unwritten-value"]);
    // An indeterminate write may have happened.
    let lines = [
        "{:index 0 :type :info :process 0 :f :txn :value [[:readAll nil {}] [:writeSome nil {1 5}]]}".to_owned(),
        txn(1, 1, "0 -1, 1 5", ""),
    ];
    let h = edn::read_history(&lines.join("\n")).unwrap();
    assert!(check(&h, &Opts { key_count: Some(2) }).is_valid());
}

#[test]
fn shape_keys_and_unique_writes() {
    let v = check_txns(&[(0, "0 -1", "")]);
    assert_eq!(types(&v), ["read-missing-keys"]);
    let v = check_txns(&[(0, "0 -1, 1 -1", "0 0"), (1, "0 -1, 1 -1", "0 0")]);
    assert_eq!(types(&v), ["duplicate-writes"]);
    let v = check_txns(&[(0, "0 -1, 1 -1", "0 3"), (0, "0 3, 1 -1", "0 2")]);
    assert_eq!(types(&v), ["write-below-observed"]);
    let h = edn::read_history(
        "{:index 0 :type :ok :process 0 :f :txn :value [[:writeSome nil {0 1}] [:readAll nil {0 1, 1 -1}]]}",
    )
    .unwrap();
    assert_eq!(types(&check(&h, &Opts::default())), ["malformed-txn"]);
}

#[test]
fn generated_serial_store_history_is_causal_and_converges() {
    use crate::convergence;
    use crate::history::generate::{self, MwwGenOpts};
    let (h, store) = generate::mww(&MwwGenOpts::default());
    let v = check(
        &h,
        &Opts {
            key_count: Some(10),
        },
    );
    assert!(v.is_valid(), "{v:#?}");
    let v = convergence::mww(&h, Some(&store));
    assert!(v.is_valid(), "{v:#?}");

    // A node that ends behind on key 0: it diverges, and its process goes back on what it saw.
    let mut bad = h.clone();
    let last = bad.ops.iter_mut().rev().find(|op| op.final_read).unwrap();
    if let Value::Mww(mops) = &mut last.value
        && let MwwMop::ReadAll(kv) = &mut mops[0]
    {
        kv.insert(0, MWW_NIL);
    }
    let v = convergence::mww(&bad, Some(&store));
    assert!(
        v.anomaly_types
            .contains(&"divergent-final-reads".to_owned()),
        "{v:#?}"
    );
    let v = check(
        &bad,
        &Opts {
            key_count: Some(10),
        },
    );
    assert!(!v.is_valid());
    let causal = [
        "monotonic-reads",
        "read-your-writes",
        "monotonic-writes",
        "writes-follow-reads",
    ];
    assert!(
        v.anomaly_types.iter().all(|t| causal.contains(&t.as_str())),
        "{v:#?}"
    );
}
