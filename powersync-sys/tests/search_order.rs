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
    output(&mut cmd)
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

/// A copy of the `powersync-core-info` binary at `dir/bin/`, as an installed bundle.
fn installed_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("powersync-core-info");
    std::fs::copy(env!("CARGO_BIN_EXE_powersync-core-info"), &exe).unwrap();
    exe
}

fn run_in(exe: &std::path::Path, cwd: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.env_clear().current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(&mut cmd)
}

#[test]
fn an_installed_core_beside_the_executable_or_in_lib_wins_over_the_vendored_default() {
    for (place, name) in [
        ("bin", "libpowersync.so"),
        ("bin", "libpowersync_x64.linux.so"),
        ("lib", "libpowersync_core.so"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let exe = installed_copy(dir.path());
        std::fs::create_dir_all(dir.path().join(place)).unwrap();
        let core = dir.path().join(place).join(name);
        std::fs::copy(lib("0.4.11"), &core).unwrap();
        let out = run_in(&exe, dir.path(), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("core version: 0.4.11/"),
            "{place}/{name}: {text}"
        );
        assert!(text.contains("(beside the executable)"), "{text}");
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn powersync_lib_in_dot_env_wins_over_the_environment_and_the_installed_core() {
    let dir = tempfile::tempdir().unwrap();
    let exe = installed_copy(dir.path());
    std::fs::copy(lib("0.5.2"), dir.path().join("bin/libpowersync.so")).unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("# a node's .env\nPOWERSYNC_LIB={}\n", lib("0.4.11")),
    )
    .unwrap();
    let out = run_in(&exe, dir.path(), &[("POWERSYNC_LIB", &lib("0.4.6"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("core version: 0.4.11/"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("(POWERSYNC_LIB)"), "{}", stdout(&out));
    // Without the .env line, the environment applies again.
    std::fs::write(dir.path().join(".env"), "OTHER=1\n").unwrap();
    let out = run_in(&exe, dir.path(), &[("POWERSYNC_LIB", &lib("0.4.6"))]);
    assert!(
        stdout(&out).contains("core version: 0.4.6/"),
        "{}",
        stdout(&out)
    );
}

/// Runs `cmd`. A binary copied just now may still be open for writing in a child that another
/// test thread forked meanwhile (the descriptor lives until that child's exec), so exec fails
/// with ETXTBSY for a moment: retry a bounded number of times.
fn output(cmd: &mut Command) -> Output {
    for _ in 0..200 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.unwrap(),
        }
    }
    panic!("{cmd:?} stayed busy (ETXTBSY) for 2 s");
}
