//! The `harness check` command on stored histories: verdict table and exit status.

use std::path::PathBuf;
use std::process::Command;

/// A temporary file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn to_str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(name: &str, text: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("harness-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const FRACTURED: &str = "\
{:index 0, :time 0, :type :invoke, :process 0, :f :txn, :value [[:append 1 1] [:append 2 1]]}
{:index 1, :time 1, :type :invoke, :process 1, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
{:index 2, :time 2, :type :ok, :process 0, :f :txn, :value [[:append 1 1] [:append 2 1]]}
{:index 3, :time 3, :type :ok, :process 1, :f :txn, :value [[:r 1 [1]] [:r 2 nil]]}
";

#[test]
fn an_invalid_edn_history_exits_1_with_the_anomaly() {
    let path = write("fractured.edn", FRACTURED);
    let (code, out) = run(&["check", path.to_str(), "--model", "serializable"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("G-single-item"), "{out}");
    let (code, out) = run(&["check", path.to_str(), "--model", "read-committed"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn json_lines_and_json_output() {
    let h = harness::History::parse(FRACTURED).unwrap();
    let path = write(
        "fractured.jsonl",
        &harness::history::json::write_history(&h),
    );
    let (code, out) = run(&[
        "check",
        path.to_str(),
        "--model",
        "strict-serializable",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["checker"], "list-append");
    assert_eq!(v[0]["valid?"], false);
}

#[test]
fn mww_histories_run_the_causal_and_convergence_checkers() {
    let path = write(
        "mww.edn",
        "{:index 0 :type :ok :process 0 :node \"n1\" :f :txn :value [[:readAll nil {0 -1}] [:writeSome nil {0 0}]]}\n\
         {:index 1 :type :ok :process 0 :node \"n1\" :f :r-final :final-read? true :value [[:readAll nil {0 -1}] [:writeSome nil {}]]}\n",
    );
    let (code, out) = run(&["check", path.to_str(), "--workload", "mww"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("read-your-writes"), "{out}");
    assert!(out.contains("divergent-final-reads"), "{out}");
}

#[test]
fn unreadable_input_exits_2() {
    let (code, out) = run(&["check", "/nonexistent/history.edn"]);
    assert_eq!(code, 2, "{out}");
    let path = write("bad.jsonl", "{\"type\":\"ok\"\n");
    let (code, _) = run(&["check", path.to_str()]);
    assert_eq!(code, 2);
    let path = write("ok.edn", FRACTURED);
    let (code, out) = run(&["check", path.to_str(), "--model", "no-such-model"]);
    assert_eq!(code, 2, "{out}");
}

/// A history in Elle's own form, as Elle's example histories (its repository's `histories/`)
/// and test helpers write them: no `:process` (nor `:f`), keyword keys, reads invoked as
/// `[:r k]`. A write skew: each transaction misses the other's append (two rw edges).
const ELLE_WRITE_SKEW: &str = "\
{:type :invoke, :value [[:r :x] [:r :y] [:append :x 1]]}
{:type :ok, :value [[:r :x nil] [:r :y nil] [:append :x 1]]}
{:type :invoke, :value [[:r :x] [:r :y] [:append :y 1]]}
{:type :ok, :value [[:r :x nil] [:r :y nil] [:append :y 1]]}
{:type :invoke, :value [[:r :x] [:r :y]]}
{:type :ok, :value [[:r :x [1]] [:r :y [1]]]}
";

#[test]
fn histories_in_elles_own_form_are_checked() {
    let path = write("elle-write-skew.edn", ELLE_WRITE_SKEW);
    let (code, out) = run(&["check", path.to_str(), "--model", "serializable"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("G2-item"), "{out}");
    assert!(out.contains("keys: x = ") && out.contains("y = "), "{out}");
    // Snapshot isolation allows write skew.
    let (code, out) = run(&["check", path.to_str(), "--model", "snapshot-isolation"]);
    assert_eq!(code, 0, "{out}");
    // The same as JSON lines with string keys.
    let json = "\
{\"type\":\"invoke\",\"value\":[[\"r\",\"x\"],[\"r\",\"y\"],[\"append\",\"x\",1]]}
{\"type\":\"ok\",\"value\":[[\"r\",\"x\",null],[\"r\",\"y\",null],[\"append\",\"x\",1]]}
{\"type\":\"invoke\",\"value\":[[\"r\",\"x\"],[\"r\",\"y\"],[\"append\",\"y\",1]]}
{\"type\":\"ok\",\"value\":[[\"r\",\"x\",null],[\"r\",\"y\",null],[\"append\",\"y\",1]]}
";
    let path = write("elle-write-skew.jsonl", json);
    let (code, out) = run(&["check", path.to_str(), "--model", "serializable"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("G2-item"), "{out}");
}

#[test]
fn several_consistency_models_and_a_cycle_search_budget() {
    let path = write("fractured-models.edn", FRACTURED);
    let (code, out) = run(&[
        "check",
        path.to_str(),
        "--consistency-models",
        "read-committed,serializable",
        "--cycle-search-timeout",
        "500",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let verdicts: serde_json::Value = serde_json::from_str(&out).expect("JSON verdicts");
    let models: Vec<(&str, bool)> = verdicts
        .as_array()
        .expect("an array")
        .iter()
        .filter(|v| v["checker"] == "list-append")
        .map(|v| (v["model"].as_str().unwrap_or(""), v["valid?"] == true))
        .collect();
    assert_eq!(
        models,
        [("read-committed", true), ("serializable", false)],
        "{out}"
    );
    let (code, out) = run(&["check", path.to_str(), "--consistency-models", "bogus"]);
    assert_eq!(code, 2, "{out}");
}
