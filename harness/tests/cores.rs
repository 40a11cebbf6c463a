//! `harness matrix --cores all` and `harness bisect` against real processes and every fetched
//! core build. The bisection's deliberate regression is a capability: download sync needs
//! `powersync_control` with the `connection` op (core 0.4.6 on), so walking from the good core
//! 0.5.3 towards the bad core 0.3.11 a synced workload first fails (not applicable) at 0.3.14,
//! and the last core that passes is 0.4.6, where the capability appeared.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use testkit::ChildGuard;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_harness"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

fn assert_binaries() {
    for name in ["powersync_endpoint", "standin"] {
        assert!(
            bin_dir().join(name).is_file(),
            "{name} is not built next to the harness; run `cargo build -p endpoint -p standin`"
        );
    }
}

/// Runs the harness to completion (SIGTERM and a grace period if the test fails first, so it
/// tears down its PostgreSQL, stand-in and endpoints).
fn harness(args: &[&str], store: &Path) -> (ExitStatus, String, String) {
    let out_path = store.with_extension("stdout");
    let err_path = store.with_extension("stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args(args)
        .arg("--no-progress")
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let mut guard = ChildGuard::spawn("harness", &mut cmd)
        .expect("harness starts")
        .terminate_first(Duration::from_secs(60));
    let status = guard.wait().expect("harness exits");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out_path), read(&err_path))
}

const SYNCED: &[&str] = &[
    "--workload",
    "ps-ro-pg-wo",
    "--nodes",
    "n1,n2",
    "--postgres-nodes",
    "n1",
    "--concurrency",
    "2",
    "--time-limit",
    "1",
    "--rate",
    "20",
];

#[test]
fn matrix_over_all_cores_runs_in_parallel_and_says_why_a_core_is_not_applicable() {
    assert_binaries();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("matrix");
    let mut args = vec!["matrix", "--cores", "all", "--jobs", "2"];
    args.extend_from_slice(SYNCED);
    let (status, out, err) = harness(&args, &store);
    assert!(status.success(), "{out}\n{err}");
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(store.join("matrix.json")).expect("matrix.json"),
    )
    .expect("matrix.json is JSON");
    let rows = results.as_array().expect("rows");
    let cores: Vec<&str> = rows.iter().map(|r| r["core"].as_str().unwrap()).collect();
    let all: Vec<&str> = powersync_sys::VendoredCore::all()
        .iter()
        .map(|c| c.version.as_str())
        .collect();
    assert_eq!(cores, all, "one row per distinct build, in release order");
    for row in rows {
        let core = powersync_sys::VendoredCore::find(row["core"].as_str().unwrap()).unwrap();
        let syncs = core
            .load()
            .unwrap()
            .capabilities()
            .unwrap()
            .can_download_sync();
        if syncs {
            assert_eq!(row["result"], "ran", "{row}");
            assert_eq!(row["valid"], true, "{row}");
            assert!(
                Path::new(row["store"].as_str().unwrap())
                    .join("results.json")
                    .is_file()
            );
        } else {
            assert_eq!(row["result"], "not_applicable", "{row}");
            assert!(
                row["reason"]
                    .as_str()
                    .unwrap()
                    .contains("powersync_control"),
                "{row}"
            );
        }
        assert!(!row["npm_versions"].as_array().unwrap().is_empty(), "{row}");
    }
    assert!(out.contains("0.4.10") && out.contains("n/a"), "{out}");
}

#[test]
fn bisect_names_the_core_where_download_sync_appeared() {
    assert_binaries();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("bisect");
    let mut args = vec![
        "bisect",
        "--good",
        "0.5.3",
        "--bad",
        "0.3.11",
        "--repeats",
        "1",
    ];
    args.extend_from_slice(SYNCED);
    let (status, out, err) = harness(&args, &store);
    assert!(status.success(), "{out}\n{err}");
    assert!(
        out.contains("first failing core: 0.3.14 (last passing: 0.4.6)"),
        "{out}"
    );
    let found: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("bisect.json")).unwrap()).unwrap();
    assert_eq!(found["first_failing"], "0.3.14");
    assert_eq!(found["last_passing"], "0.4.6");
    assert!(found["failure"]["not_applicable"].is_string(), "{found}");
    // Halving: good, bad, then at most log2(8) cores in between; never every core.
    let tried = found["steps"].as_array().unwrap().len();
    assert!((3..=5).contains(&tried), "{tried} steps: {out}");
}

#[test]
fn bisect_refuses_a_good_core_that_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("bisect");
    let mut args = vec!["bisect", "--good", "0.3.11", "--bad", "0.5.3"];
    args.extend_from_slice(SYNCED);
    let (status, out, err) = harness(&args, &store);
    assert_eq!(status.code(), Some(2), "{out}\n{err}");
    assert!(
        err.contains("the good core 0.3.11 fails: not applicable"),
        "{err}"
    );
}
