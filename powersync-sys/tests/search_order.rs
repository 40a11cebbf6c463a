//! The search order seen from outside, through the `powersync-core-info` binary, with the
//! environment set per child process.

use std::process::{Command, Output};

use powersync_sys::{VendoredCore, vendor_dir};

fn core_info(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_powersync-core-info"));
    cmd.env_remove("POWERSYNC_LIB")
        .env_remove("POWERSYNC_LIB_DIR")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lib(version: &str) -> String {
    vendor_dir()
        .join("lib")
        .join(version)
        .join("libpowersync.so")
        .display()
        .to_string()
}

#[test]
fn without_configuration_the_vendored_default_is_used() {
    let default = VendoredCore::default();
    let out = core_info(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("core version: {}/", default.version)),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("(vendored default)"));
    assert!(
        stdout(&out).contains(r#""op":"PUT""#),
        "a local transaction reached ps_crud"
    );
}

#[test]
fn powersync_lib_selects_a_file_without_rebuilding() {
    let out = core_info(&[("POWERSYNC_LIB", &lib("0.4.11"))], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("core version: 0.4.11/"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("(POWERSYNC_LIB)"));
}

#[test]
fn powersync_lib_dir_selects_a_directory() {
    let dir = vendor_dir().join("lib/0.3.14").display().to_string();
    let out = core_info(&[("POWERSYNC_LIB_DIR", &dir)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("core version: 0.3.14/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn powersync_lib_wins_over_powersync_lib_dir() {
    let dir = vendor_dir().join("lib/0.3.14").display().to_string();
    let out = core_info(
        &[
            ("POWERSYNC_LIB", &lib("0.5.2")),
            ("POWERSYNC_LIB_DIR", &dir),
        ],
        &[],
    );
    assert!(
        stdout(&out).contains("core version: 0.5.2/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_explicit_path_wins_over_the_environment() {
    let out = core_info(&[("POWERSYNC_LIB", &lib("0.5.2"))], &[&lib("0.4.6")]);
    assert!(
        stdout(&out).contains("core version: 0.4.6/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_environment_path_is_an_error_and_never_falls_back() {
    let out = core_info(&[("POWERSYNC_LIB", "/nonexistent/libpowersync.so")], &[]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "nothing was loaded instead: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/libpowersync.so (POWERSYNC_LIB)"),
        "{err}"
    );
    assert!(err.contains("Fix:"), "{err}");
}
