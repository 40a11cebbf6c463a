use super::*;
use crate::history::edn;

fn h(lines: &[&str]) -> History {
    edn::read_history(&lines.join("\n")).unwrap()
}

fn types(v: &Verdict) -> Vec<&str> {
    v.anomaly_types.iter().map(String::as_str).collect()
}

const LA: [&str; 5] = [
    r#"{:index 0 :type :ok :process 0 :node "n1" :f :txn :value [[:append 1 1]]}"#,
    r#"{:index 1 :type :ok :process 1 :node "n2" :f :txn :value [[:append 1 2] [:r 2 nil]]}"#,
    r#"{:index 2 :type :fail :process 1 :node "n2" :f :txn :value [[:append 1 3]]}"#,
    r#"{:index 3 :type :ok :process 0 :node "n1" :f :r-final :final-read? true :value [[:r 1 [1 2]]]}"#,
    r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:r 1 [1 2]]]}"#,
];

fn with(base: &[&str], replace: usize, line: &str) -> History {
    let mut lines = base.to_vec();
    lines[replace] = line;
    h(&lines)
}

#[test]
fn list_append_converged_is_valid() {
    let pg: BTreeMap<Key, Vec<Element>> = [(1, vec![1, 2])].into_iter().collect();
    let v = list_append(&h(&LA), Some(&pg));
    assert!(v.is_valid(), "{v:#?}");
    // An indeterminate append may or may not be there.
    let v = list_append(
        &with(
            &LA,
            2,
            r#"{:index 2 :type :info :process 1 :node "n2" :f :txn :value [[:append 1 3]]}"#,
        ),
        Some(&pg),
    );
    assert!(v.is_valid(), "{v:#?}");
}

#[test]
fn list_append_divergence_between_nodes() {
    let v = list_append(
        &with(
            &LA,
            4,
            r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:r 1 [2 1]]]}"#,
        ),
        None,
    );
    assert_eq!(types(&v), ["divergent-final-reads"]);
}

#[test]
fn list_append_divergence_from_postgres() {
    let pg: BTreeMap<Key, Vec<Element>> = [(1, vec![1])].into_iter().collect();
    let v = list_append(&h(&LA), Some(&pg));
    assert_eq!(
        types(&v),
        ["divergent-final-reads", "lost-acknowledged-writes"]
    );
    assert_eq!(
        v.anomalies["lost-acknowledged-writes"][0].detail["nodes"],
        json!([POSTGRES])
    );
    // PostgreSQL knows a key no node read at the end, holding an element nobody appended.
    let pg: BTreeMap<Key, Vec<Element>> = [(1, vec![1, 2]), (2, vec![1])].into_iter().collect();
    let v = list_append(&h(&LA), Some(&pg));
    assert_eq!(types(&v), ["missing-final-reads", "read-unwritten-element"]);
}

#[test]
fn list_append_lost_acknowledged_append() {
    let lines = [
        LA[0],
        LA[1],
        LA[2],
        r#"{:index 3 :type :ok :process 0 :node "n1" :f :r-final :final-read? true :value [[:r 1 [1]]]}"#,
        r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:r 1 [1]]]}"#,
    ];
    let v = list_append(&h(&lines), None);
    assert_eq!(types(&v), ["lost-acknowledged-writes"]);
    assert_eq!(
        v.anomalies["lost-acknowledged-writes"][0].detail["missing"],
        json!([2])
    );
}

#[test]
fn list_append_unwritten_element_and_missing_node() {
    let v = list_append(
        &with(
            &LA,
            4,
            r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:r 1 [1 2 3]]]}"#,
        ),
        None,
    );
    assert!(types(&v).contains(&"read-unwritten-element"), "{v:#?}");
    let v = list_append(&h(&LA[..4]), None);
    assert_eq!(types(&v), ["missing-final-reads"]);
}

const MWW: [&str; 5] = [
    r#"{:index 0 :type :ok :process 0 :node "n1" :f :txn :value [[:readAll nil {0 -1, 1 -1}] [:writeSome nil {0 0, 1 0}]]}"#,
    r#"{:index 1 :type :ok :process 1 :node "n2" :f :txn :value [[:readAll nil {0 0, 1 -1}] [:writeSome nil {1 1}]]}"#,
    r#"{:index 2 :type :info :process 2 :node "n2" :f :txn :value [[:readAll nil {}] [:writeSome nil {0 2}]]}"#,
    r#"{:index 3 :type :ok :process 0 :node "n1" :f :r-final :final-read? true :value [[:readAll nil {0 2, 1 1}] [:writeSome nil {}]]}"#,
    r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:readAll nil {0 2, 1 1}] [:writeSome nil {}]]}"#,
];

#[test]
fn mww_converged_is_valid() {
    let pg: BTreeMap<Key, i64> = [(0, 2), (1, 1)].into_iter().collect();
    let v = mww(&h(&MWW), Some(&pg));
    assert!(v.is_valid(), "{v:#?}");
}

#[test]
fn mww_divergence_and_lost_write() {
    // n2 ends with key 1 at 0 although an ok write of 1 was acknowledged.
    let v = mww(
        &with(
            &MWW,
            4,
            r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:readAll nil {0 2, 1 0}] [:writeSome nil {}]]}"#,
        ),
        None,
    );
    assert_eq!(
        types(&v),
        ["divergent-final-reads", "lost-acknowledged-writes"]
    );
}

#[test]
fn mww_postgres_disagrees() {
    let pg: BTreeMap<Key, i64> = [(0, 0), (1, 1)].into_iter().collect();
    let v = mww(&h(&MWW), Some(&pg));
    assert_eq!(types(&v), ["divergent-final-reads"]);
}

#[test]
fn mww_nodes_agree_below_max_observed() {
    // Both nodes end at 0 for key 0, but n2 had read the info write 2 before: not converged to
    // max-observed.
    let lines = [
        MWW[0],
        MWW[1],
        MWW[2],
        r#"{:index 3 :type :ok :process 3 :node "n2" :f :txn :value [[:readAll nil {0 2, 1 1}] [:writeSome nil {}]]}"#,
        r#"{:index 4 :type :ok :process 0 :node "n1" :f :r-final :final-read? true :value [[:readAll nil {0 0, 1 1}] [:writeSome nil {}]]}"#,
        r#"{:index 5 :type :ok :process 3 :node "n2" :f :r-final :final-read? true :value [[:readAll nil {0 0, 1 1}] [:writeSome nil {}]]}"#,
    ];
    let v = mww(&h(&lines), None);
    assert_eq!(types(&v), ["divergent-final-reads", "non-monotonic-reads"]);
}

#[test]
fn mww_invalid_read_and_missing_final_reads() {
    let v = mww(
        &with(
            &MWW,
            4,
            r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:readAll nil {0 2, 1 7}] [:writeSome nil {}]]}"#,
        ),
        None,
    );
    assert!(types(&v).contains(&"invalid-reads"), "{v:#?}");
    let v = mww(&h(&MWW[..4]), None);
    assert_eq!(types(&v), ["missing-final-reads"]);
    let v = mww(
        &with(
            &MWW,
            4,
            r#"{:index 4 :type :ok :process 1 :node "n2" :f :r-final :final-read? true :value [[:readAll nil {0 2}] [:writeSome nil {}]]}"#,
        ),
        None,
    );
    assert_eq!(types(&v), ["missing-final-reads"]);
}
