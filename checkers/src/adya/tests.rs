//! Hand-made histories, one per anomaly the checker reports, most of them the scenarios of
//! jepsen-causal-consistency's `adya_test.clj` (the expected anomaly types are the seed
//! checker's), plus generated healthy and broken stores.

use super::*;
use crate::history::edn;
use crate::history::generate::{self, GenOpts};
use crate::list_append;

/// A history of `ok` (or `fail`) completions, `(process, type, mops)` in EDN, indexed 1, 3, 5...
fn history(txns: &[(u64, &str, &str)]) -> History {
    let text: Vec<String> = txns
        .iter()
        .enumerate()
        .map(|(i, (p, t, mops))| {
            format!(
                "{{:type :{t}, :process {p}, :f :txn, :value {mops}, :index {}, :time {i}}}",
                2 * i + 1
            )
        })
        .collect();
    edn::read_history(&text.join("\n")).unwrap()
}

fn ok(txns: &[(u64, &str)]) -> History {
    let t: Vec<(u64, &str, &str)> = txns.iter().map(|&(p, m)| (p, "ok", m)).collect();
    history(&t)
}

#[track_caller]
fn assert_valid(h: &History) {
    let v = check(h).unwrap();
    assert!(v.is_valid(), "{v:#?}");
    assert!(v.anomaly_types.is_empty());
}

/// Asserts the verdict is invalid with exactly these anomaly types.
#[track_caller]
fn assert_types(h: &History, types: &[&str]) -> Verdict {
    let v = check(h).unwrap();
    assert_eq!(v.valid, Validity::Invalid, "{v:#?}");
    assert_eq!(v.anomaly_types, types, "{v:#?}");
    v
}

#[test]
fn causally_consistent_histories_are_valid() {
    // Concurrent appends, seen in either order by processes that did not see them happen.
    assert_valid(&ok(&[
        (0, "[[:append :x 0]]"),
        (1, "[[:append :x 1]]"),
        (0, "[[:r :x [0 1]]]"),
    ]));
    assert_valid(&ok(&[
        (0, "[[:append :x 0]]"),
        (1, "[[:append :y 0]]"),
        (2, "[[:r :x [0]] [:r :y nil]]"),
        (3, "[[:r :x nil] [:r :y [0]]]"),
    ]));
    // Read your writes, monotonic writes, writes follow reads, all kept.
    assert_valid(&ok(&[
        (0, "[[:r :x nil]]"),
        (0, "[[:append :x 0]]"),
        (0, "[[:r :x [0]]]"),
    ]));
    assert_valid(&ok(&[
        (0, "[[:append :x 0]]"),
        (0, "[[:append :x 1]]"),
        (1, "[[:r :x [0]]]"),
        (1, "[[:r :x [0 1]]]"),
    ]));
    assert_valid(&ok(&[
        (0, "[[:append :y 0]]"),
        (1, "[[:r :y [0]]]"),
        (1, "[[:append :x 0]]"),
        (2, "[[:r :x nil]]"),
        (2, "[[:r :x [0]]]"),
        (2, "[[:r :y [0]]]"),
    ]));
    // Reads of the transaction's own appends.
    assert_valid(&ok(&[
        (0, "[[:append :x 0]]"),
        (1, "[[:r :x [0]] [:append :x 1] [:r :x [0 1]]]"),
        (2, "[[:append :x 2] [:r :x [0 2]]]"),
    ]));
}

#[test]
fn generated_strict_serializable_histories_with_concurrency_are_valid() {
    for seed in 1..=2 {
        let h = generate::list_append(&GenOpts {
            txns: 800,
            concurrency: 8,
            active_keys: 10,
            max_writes_per_key: 30,
            seed,
            ..GenOpts::default()
        });
        let concurrent = h
            .ops
            .windows(2)
            .any(|w| w[0].op_type == OpType::Invoke && w[1].op_type == OpType::Invoke);
        assert!(
            concurrent,
            "the generated history has concurrent transactions"
        );
        assert_valid(&h);
    }
}

#[test]
fn a_store_reading_stale_snapshots_is_flagged() {
    let h = generate::list_append(&GenOpts {
        txns: 600,
        concurrency: 8,
        active_keys: 5,
        max_writes_per_key: 30,
        snapshot_reads: true,
        ..GenOpts::default()
    });
    let v = check(&h).unwrap();
    assert_eq!(v.valid, Validity::Invalid, "{v:#?}");
}

#[test]
fn a_missed_dependency_of_an_observed_write_is_g_single_item() {
    // T3 read T1's x and appended y; T5 saw that y but not the x it depends on.
    let v = assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (1, "[[:r :x [0]] [:append :y 0]]"),
            (2, "[[:r :y [0]] [:r :x nil]]"),
        ]),
        &["G-single-item"],
    );
    let a = &v.anomalies["G-single-item"][0];
    assert_eq!(a.ops.len(), 3);
    assert!(
        a.explanation.contains("a contradiction"),
        "{}",
        a.explanation
    );
    assert_eq!(v.not, ["consistent-view", "repeatable-read"]);
}

#[test]
fn read_your_writes_violations_are_g_single_item_process() {
    assert_types(
        &ok(&[(0, "[[:append :x 0]]"), (0, "[[:r :x nil]]")]),
        &["G-single-item-process", "cyclic-versions"],
    );
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (0, "[[:append :x 1]]"),
            (0, "[[:r :x [0]]]"),
        ]),
        &["G-single-item-process", "cyclic-versions"],
    );
}

#[test]
fn monotonic_writes_violations_are_g_single_item_process() {
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (0, "[[:append :x 1]]"),
            (1, "[[:r :x [1]]]"),
            (1, "[[:r :x [0]]]"),
        ]),
        &["G-single-item-process", "cyclic-versions"],
    );
}

#[test]
fn monotonic_reads_violations_are_g_single_item_process() {
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (1, "[[:append :x 1]]"),
            (2, "[[:r :x [0]]]"),
            (2, "[[:r :x [0 1]]]"),
            (2, "[[:r :x [0]]]"),
        ]),
        &["G-single-item-process", "cyclic-versions"],
    );
}

#[test]
fn writes_follow_reads_violations() {
    // Across transactions of the reader: G-single-item-process.
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (1, "[[:r :x [0]]]"),
            (1, "[[:append :y 0]]"),
            (2, "[[:r :y [0]]]"),
            (2, "[[:r :x nil]]"),
        ]),
        &["G-single-item-process"],
    );
    // Within one transaction of the reader: G-single-item.
    assert_types(
        &ok(&[
            (0, "[[:append :x 0] [:append :y 0]]"),
            (1, "[[:r :y [0]] [:append :x 1]]"),
            (2, "[[:r :x [0 1]] [:r :y nil]]"),
        ]),
        &["G-single-item"],
    );
}

#[test]
fn writes_cycling_through_the_version_order_are_g0() {
    // T1 and T3 append to x and y in opposite orders, as readers of each key show.
    assert_types(
        &ok(&[
            (0, "[[:append :x 1] [:append :y 1]]"),
            (1, "[[:append :y 2] [:append :x 2]]"),
            (2, "[[:r :x [1 2]]]"),
            (3, "[[:r :y [2 1]]]"),
        ]),
        &["G0"],
    );
}

#[test]
fn writes_cycling_with_process_order_are_g0_process() {
    // Process 0 appended x, then y; readers put its y before T5's and T5's x before its x.
    assert_types(
        &ok(&[
            (0, "[[:append :x 1]]"),
            (0, "[[:append :y 1]]"),
            (1, "[[:append :y 0] [:append :x 0]]"),
            (2, "[[:r :y [1 0]]]"),
            (3, "[[:r :x [0 1]]]"),
        ]),
        &["G0-process", "cyclic-versions"],
    );
}

#[test]
fn each_reading_the_others_write_is_g1c() {
    assert_types(
        &ok(&[
            (0, "[[:append :x 1] [:r :y [2]]]"),
            (1, "[[:append :y 2] [:r :x [1]]]"),
        ]),
        &["G1c"],
    );
}

#[test]
fn a_process_reading_a_later_write_is_g1c_process() {
    assert_types(
        &ok(&[
            (0, "[[:r :x [0]]]"),
            (0, "[[:append :y 0]]"),
            (2, "[[:r :y [0]]]"),
            (2, "[[:append :x 0]]"),
        ]),
        &["G1c-process", "cyclic-versions"],
    );
    assert_types(
        &ok(&[(0, "[[:r :x [0]]]"), (0, "[[:append :x 0]]")]),
        &["G1c-process", "cyclic-versions"],
    );
}

#[test]
fn internal_and_future_reads() {
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (1, "[[:r :x [0]] [:append :x 1] [:r :x [0]]]"),
            (2, "[[:append :x 2] [:r :x [0 1]]]"),
        ]),
        &["cyclic-versions", "internal"],
    );
    assert_types(
        &ok(&[
            (0, "[[:append :x 0]]"),
            (1, "[[:r :x [0]] [:append :x 1] [:r :x [1]]]"),
            (2, "[[:r :x [0]] [:r :x [0 1]] [:r :x [0]]]"),
        ]),
        &["G-single-item", "cyclic-versions", "internal"],
    );
    assert_types(
        &ok(&[
            (0, "[[:r :x nil] [:append :x 0] [:r :x [0]]]"),
            (0, "[[:r :y [0]] [:append :y 0]]"),
        ]),
        &["cyclic-versions", "future-read"],
    );
}

#[test]
fn reading_a_failed_append_is_g1a() {
    let v = assert_types(
        &history(&[
            (0, "ok", "[[:append :x 0] [:append :x 1]]"),
            (0, "fail", "[[:append :x 2] [:append :x 3]]"),
            (1, "ok", "[[:r :x [0 1 2 3]]]"),
        ]),
        &["G1a"],
    );
    assert_eq!(v.anomalies["G1a"][0].ops, [3, 5]);
}

#[test]
fn reading_an_intermediate_append_is_g1b() {
    assert_types(
        &ok(&[(0, "[[:append :x 0] [:append :x 1]]"), (1, "[[:r :x [0]]]")]),
        &["G-single-item", "G1b"],
    );
}

#[test]
fn duplicate_appends_and_timeouts_are_unknown() {
    let v = check(&ok(&[(0, "[[:append :x 0]]"), (1, "[[:append :x 0]]")])).unwrap();
    assert_eq!(v.valid, Validity::Unknown);
    assert_eq!(v.anomaly_types, ["duplicate-appends"]);
    let g0 = ok(&[
        (0, "[[:append :x 1] [:append :y 1]]"),
        (1, "[[:append :y 2] [:append :x 2]]"),
        (2, "[[:r :x [1 2]]]"),
        (3, "[[:r :y [2 1]]]"),
    ]);
    let none = Opts {
        cycle_search_timeout: Duration::ZERO,
    };
    let v = check_with(&g0, &none).unwrap();
    assert_eq!(v.valid, Validity::Unknown, "{v:#?}");
    assert_eq!(v.anomaly_types, ["cycle-search-timeout"]);
}

#[test]
fn every_type_the_checker_reports_is_proscribed_by_the_seed_options() {
    let proscribed = proscribed();
    for t in [
        "G0",
        "G1c",
        "G0-process",
        "G1c-process",
        "G-single-item",
        "G-single-item-process",
        "G1a",
        "G1b",
        "internal",
        "future-read",
        "cyclic-versions",
    ] {
        assert!(proscribed.contains(t), "{t}");
    }
    // What the seed left to Elle's stronger models.
    for t in ["G2-item", "G-nonadjacent-item", "lost-update"] {
        assert!(!proscribed.contains(t), "{t}");
    }
}

#[test]
fn elle_at_the_harness_setting_accepts_what_adya_flags() {
    let elle = |h: &History| {
        let opts = list_append::Opts {
            anomalies: vec!["G1b".into()],
            ..list_append::Opts::new("strong-session-PL-2")
        };
        list_append::check_with(h, &opts).unwrap()
    };
    // A fractured view: T5 saw T3's y but not the x T3 had read first.
    let fractured = ok(&[
        (0, "[[:append :x 0]]"),
        (1, "[[:r :x [0]] [:append :y 0]]"),
        (2, "[[:r :y [0]] [:r :x nil]]"),
    ]);
    let e = elle(&fractured);
    assert!(e.is_valid(), "{e:#?}");
    assert_eq!(check(&fractured).unwrap().anomaly_types, ["G-single-item"]);
    // A process that does not read its own append.
    let ryw = ok(&[(0, "[[:append :x 0]]"), (0, "[[:r :x nil]]")]);
    let e = elle(&ryw);
    assert!(e.is_valid(), "{e:#?}");
    assert_eq!(
        check(&ryw).unwrap().anomaly_types,
        ["G-single-item-process", "cyclic-versions"]
    );
}

#[test]
fn mww_histories_are_refused() {
    let h = edn::read_history(
        "{:type :ok, :process 0, :f :txn, :value [[:readAll nil {0 -1}] [:writeSome nil {0 1}]], :index 0}",
    )
    .unwrap();
    assert!(matches!(check(&h), Err(Error::WrongWorkload { .. })));
}
