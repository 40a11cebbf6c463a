//! The capability probe against every fetched core, compared with what powersync-sqlite-core's
//! source says each version can do: the SQL functions from `fixtures/core-functions.tsv` (read
//! at each release tag), the rest from the cores' source and changelog (powersync_control from
//! 0.4.0, the `connection` op from 0.4.6, transactions demanded and checkpoint-request ops and
//! microsecond timestamps from 0.5.0, `powersync_update_hooks` from 0.4.5).

use std::collections::BTreeSet;
use std::process::Command;

use powersync_sys::{CoreVersion, TimeUnit, VendoredCore, WriteCheckpoint};

const FUNCTIONS: &str = include_str!("fixtures/core-functions.tsv");

fn expected_functions(version: &str) -> BTreeSet<String> {
    FUNCTIONS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (v, names) = l.split_once('\t')?;
            (v == version).then(|| names.split(' ').map(String::from).collect())
        })
        .unwrap_or_else(|| panic!("no function list for core {version} in core-functions.tsv"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn fetched() -> Vec<&'static VendoredCore> {
    let missing: Vec<_> = VendoredCore::test_set()
        .filter(|c| !c.is_fetched())
        .collect();
    assert!(
        missing.is_empty(),
        "run `vendor/fetch-cores --test-set`: {missing:?}"
    );
    VendoredCore::all()
        .iter()
        .filter(|c| c.is_fetched())
        .collect()
}

#[test]
fn the_probe_reports_what_each_cores_source_says() {
    let ops_0_4 = set(&[
        "start",
        "stop",
        "line_text",
        "line_binary",
        "refreshed_token",
        "completed_upload",
        "update_subscriptions",
        "connection",
        "subscriptions",
    ]);
    let mut ops_0_5 = ops_0_4.clone();
    ops_0_5.extend(set(&[
        "seed_checkpoint_request_id",
        "next_checkpoint_request_id",
        "target_checkpoint_request_id",
        "current_checkpoint_request_id",
    ]));
    for vendored in fetched() {
        let core = vendored.load().unwrap();
        let caps = core.capabilities().unwrap();
        let v: &CoreVersion = core.version();
        let name = &vendored.version;
        assert_eq!(caps.functions, expected_functions(name), "core {name}");
        let expected_ops = if v.at_least(0, 5, 0) {
            Some(ops_0_5.clone())
        } else if v.at_least(0, 4, 6) {
            Some(ops_0_4.clone())
        } else {
            None
        };
        assert_eq!(caps.control_ops, expected_ops, "core {name}");
        assert_eq!(caps.can_download_sync(), v.at_least(0, 4, 6), "core {name}");
        let t = caps.requires_transaction;
        let new = v.at_least(0, 5, 0);
        assert_eq!(
            (t.init, t.replace_schema, t.control),
            (new, new, new),
            "core {name}"
        );
        assert_eq!(
            caps.write_checkpoint,
            if new {
                WriteCheckpoint::CheckpointRequestOps
            } else {
                WriteCheckpoint::LocalBucketTargetOp
            },
            "core {name}"
        );
        let unit = match () {
            _ if new => Some(TimeUnit::Microseconds),
            _ if v.at_least(0, 4, 6) => Some(TimeUnit::Seconds),
            _ => None,
        };
        assert_eq!(caps.last_synced_at, unit, "core {name}");
        assert_eq!(caps.update_hooks, v.at_least(0, 4, 5), "core {name}");
        assert_eq!(
            caps.modules.contains("powersync_operations"),
            !new,
            "core {name}"
        );
        assert!(std::ptr::eq(caps, core.capabilities().unwrap()), "cached");
    }
}

#[test]
fn the_cli_probes_a_core_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_powersync-core-info"))
        .args(["--probe", "--core", "0.4.11", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["version"].as_str().unwrap().starts_with("0.4.11/"),
        "{json}"
    );
    assert_eq!(json["write_checkpoint"], "local_bucket_target_op");
    assert_eq!(json["last_synced_at"], "seconds");
    assert!(
        json["control_ops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "connection")
    );

    let out = Command::new(env!("CARGO_BIN_EXE_powersync-core-info"))
        .args(["--probe", "--core", "9.9.9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in vendor/cores.tsv"));
}
