//! Each failure gives its own error variant and a message a user can act on. The fixtures are
//! real shared objects built from `fixtures/c/*.c` by the dev-only `powersync-sys-fixtures` crate.

use std::path::PathBuf;

use powersync_sys::{CoreLibrary, Error, LibrarySource, VendoredCore};
use powersync_sys_fixtures::Fixture;

#[test]
fn a_missing_file_is_not_found_and_names_the_path_and_the_fix() {
    let err = CoreLibrary::load_from("/nonexistent/libpowersync.so").unwrap_err();
    let Error::NotFound { tried } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0].source, LibrarySource::Explicit);
    assert_eq!(tried[0].path, PathBuf::from("/nonexistent/libpowersync.so"));
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/libpowersync.so"),
        "{message}"
    );
    assert!(
        message.contains("vendor/fetch-cores") && message.contains("POWERSYNC_LIB"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_a_shared_object_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libpowersync.so");
    std::fs::write(&path, b"this is not an ELF file").unwrap();
    let err = CoreLibrary::load_from(&path).unwrap_err();
    let Error::LoadFailed {
        path: p, source, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*p, path.canonicalize().unwrap());
    assert_eq!(*source, LibrarySource::Explicit);
    assert!(err.to_string().contains("could not load"), "{err}");
}

#[test]
fn a_library_without_the_entry_point_is_missing_symbol() {
    let err = CoreLibrary::load_from(Fixture::NoEntryPoint.path()).unwrap_err();
    let Error::MissingSymbol { symbol, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*symbol, "sqlite3_powersync_init");
    assert!(
        err.to_string().contains("not a PowerSync core extension"),
        "{err}"
    );
}

#[test]
fn an_entry_point_that_fails_gives_init_failed_with_sqlites_message() {
    let err = CoreLibrary::load_from(Fixture::InitFails.path()).unwrap_err();
    let Error::InitFailed { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        *code,
        rusqlite::ffi::SQLITE_ERROR,
        "sqlite3_load_extension reports SQLITE_ERROR"
    );
    assert!(message.contains("fixture refuses to load"), "{message}");
}

#[test]
fn a_core_outside_the_supported_range_is_unsupported_version() {
    let err = CoreLibrary::load_from(Fixture::TooOld.path()).unwrap_err();
    let Error::UnsupportedVersion {
        found, supported, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(found.to_string(), "0.2.0/deadbeef");
    assert!(!supported.contains(found));
    assert!(err.to_string().contains(">=0.3.0, <0.6.0"), "{err}");
}

#[test]
fn an_unparseable_version_is_invalid_version() {
    let err = CoreLibrary::load_from(Fixture::BadVersion.path()).unwrap_err();
    let Error::InvalidVersion { raw, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(raw, "not a version");
}

#[test]
fn an_unknown_vendored_version_lists_the_known_ones() {
    let err = CoreLibrary::vendored("9.9.9").unwrap_err();
    let Error::UnknownVendoredCore { requested, known } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(requested, "9.9.9");
    assert!(known.iter().any(|v| v == "0.5.3"), "{known:?}");
}

#[test]
fn a_failed_load_is_not_cached_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libpowersync.so");
    assert!(matches!(
        CoreLibrary::load_from(&path),
        Err(Error::NotFound { .. })
    ));
    let real = VendoredCore::find("0.5.2").unwrap();
    std::fs::copy(real.path(), &path).unwrap();
    let core = CoreLibrary::load_from(&path).unwrap();
    assert_eq!(core.version().semver(), "0.5.2");
}
