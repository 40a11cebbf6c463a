//! Build script of `powersync-sys`.
//!
//! It reads only what it declares (`rerun-if-env-changed` / `rerun-if-changed`), never touches
//! the network and compiles nothing:
//! - says where `vendor/` is: `POWERSYNC_VENDOR_DIR` if set, else the workspace's `vendor/`
//!   beside this package (`rustc-env=POWERSYNC_VENDOR_DIR`, an absolute path). The crate compiles
//!   the manifest `vendor/cores.tsv` in from there (`src/vendored.rs` is its only parser) and
//!   looks up fetched libraries under `vendor/lib/` at run time. The package is not published,
//!   so reaching outside it is a workspace convention, documented in the README;
//! - with the `buildtime_bindgen` feature, regenerates the entry-point bindings from
//!   `vendor/powersync.h` into `OUT_DIR` (needs libclang).
//!
//! The C fixtures of the error-path tests are built by the dev-only `powersync-sys-fixtures`
//! crate, so consumers of this crate need no C compiler.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR").expect("set by cargo"));
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
    println!(
        "cargo:rustc-env=POWERSYNC_VENDOR_DIR={}",
        vendor_dir.display()
    );

    #[cfg(feature = "buildtime_bindgen")]
    {
        let header = vendor_dir.join("powersync.h");
        println!("cargo:rerun-if-changed={}", header.display());
        let out_dir = PathBuf::from(env_var("OUT_DIR").expect("set by cargo"));
        generate_bindings(&header, &out_dir.join("bindings.rs"));
    }
}

/// Reads an environment variable and declares it, so cargo reruns this script when it changes.
fn env_var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok()
}

#[cfg(feature = "buildtime_bindgen")]
fn generate_bindings(header: &std::path::Path, out: &std::path::Path) {
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
