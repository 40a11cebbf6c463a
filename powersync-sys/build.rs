//! Build script of `powersync-sys`.
//!
//! It reads only what it declares (`rerun-if-env-changed` / `rerun-if-changed`) and never touches
//! the network:
//! - finds `vendor/` (or `POWERSYNC_VENDOR_DIR`) and its manifest `cores.tsv`, and bakes the
//!   vendor directory and the default core version into the crate (`rustc-env`), so a build
//!   finds the vendored default library at run time without any configuration;
//! - with the `buildtime_bindgen` feature, regenerates the entry-point bindings from
//!   `vendor/powersync.h` into `OUT_DIR` (needs libclang);
//! - compiles the small C fixtures under `fixtures/` into shared objects for the error-path tests,
//!   against the `sqlite3ext.h` that libsqlite3-sys bundles.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env_var("OUT_DIR").expect("set by cargo"));

    let vendor_dir = match env_var("POWERSYNC_VENDOR_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest_dir.join("..").join("vendor"),
    };
    let vendor_dir = vendor_dir.canonicalize().unwrap_or_else(|e| {
        panic!(
            "powersync-sys: vendor directory {} is not readable ({e}); \
             set POWERSYNC_VENDOR_DIR to the directory holding cores.tsv",
            vendor_dir.display()
        )
    });
    let manifest = vendor_dir.join("cores.tsv");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let default_core = default_core(&manifest);
    println!(
        "cargo:rustc-env=POWERSYNC_VENDOR_DIR={}",
        vendor_dir.display()
    );
    println!("cargo:rustc-env=POWERSYNC_DEFAULT_CORE={default_core}");

    let header = vendor_dir.join("powersync.h");
    println!("cargo:rerun-if-changed={}", header.display());
    #[cfg(feature = "buildtime_bindgen")]
    generate_bindings(&header, &out_dir.join("bindings.rs"));

    build_fixtures(&manifest_dir.join("fixtures"), &out_dir.join("fixtures"));
}

/// Reads an environment variable and declares it, so cargo reruns this script when it changes.
fn env_var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok()
}

/// The core version marked `default` in the manifest (column 5).
fn default_core(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("powersync-sys: cannot read {}: {e}", manifest.display()));
    let defaults: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.get(4).map(|c| c.trim()) == Some("default")).then(|| cols[0])
        })
        .collect();
    match defaults.as_slice() {
        [one] => one.to_string(),
        _ => panic!(
            "powersync-sys: {} must mark exactly one core as default, found {defaults:?}",
            manifest.display()
        ),
    }
}

#[cfg(feature = "buildtime_bindgen")]
fn generate_bindings(header: &Path, out: &Path) {
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_type("sqlite3_powersync_init_fn")
        .blocklist_type("sqlite3|sqlite3_api_routines")
        .raw_line("use libsqlite3_sys::{sqlite3, sqlite3_api_routines};")
        .use_core()
        .layout_tests(false)
        .generate_comments(true)
        .generate()
        .expect("powersync-sys: bindgen failed on vendor/powersync.h (is libclang installed?)");
    bindings
        .write_to_file(out)
        .expect("powersync-sys: cannot write the generated bindings");
}

/// Compiles each fixture into a shared object in `out`. The fake cores are compiled twice with
/// different `FAKE_VERSION`s.
fn build_fixtures(src: &Path, out: &Path) {
    println!("cargo:rerun-if-changed={}", src.display());
    let include = env_var("DEP_SQLITE3_INCLUDE")
        .expect("libsqlite3-sys (bundled) exports its include directory as DEP_SQLITE3_INCLUDE");
    std::fs::create_dir_all(out).expect("create fixture dir");
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .pic(true)
        .get_compiler();
    let fixtures: [(&str, &str, Option<&str>); 4] = [
        ("no_entry_point", "no_entry_point.c", None),
        ("init_fails", "init_fails.c", None),
        ("too_old", "fake_core.c", Some("\"0.2.0/deadbeef\"")),
        ("bad_version", "fake_core.c", Some("\"not a version\"")),
    ];
    for (name, file, version) in fixtures {
        let mut cmd: Command = compiler.to_command();
        cmd.arg("-shared")
            .arg("-fPIC")
            .arg("-I")
            .arg(&include)
            .arg("-o")
            .arg(out.join(format!("lib{name}.so")))
            .arg(src.join(file));
        if let Some(version) = version {
            cmd.arg(format!("-DFAKE_VERSION={version}"));
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("powersync-sys: cannot run the C compiler: {e}"));
        assert!(
            status.success(),
            "powersync-sys: compiling fixture {file} failed"
        );
    }
    println!("cargo:rustc-env=POWERSYNC_SYS_FIXTURES={}", out.display());
}
