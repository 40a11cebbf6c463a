//! Every vendored core loads, initialises inside a transaction and reports the manifest's version.

use powersync_sys::{CoreLibrary, LibrarySource, VendoredCore, vendor_dir};
use rusqlite::Connection;

/// Every fetched core; the test set (`vendor/fetch-cores --test-set`, what `make test` fetches)
/// must be among them.
fn fetched_cores() -> Vec<&'static VendoredCore> {
    let missing: Vec<_> = VendoredCore::test_set()
        .filter(|c| !c.is_fetched())
        .collect();
    assert!(
        missing.is_empty(),
        "test-set cores not fetched: {missing:?}; run `vendor/fetch-cores --test-set`"
    );
    VendoredCore::all()
        .iter()
        .filter(|c| c.is_fetched())
        .collect()
}

#[test]
fn every_vendored_core_loads_initialises_and_reports_its_version() {
    for vendored in fetched_cores() {
        let core = CoreLibrary::vendored(&vendored.version).unwrap();
        assert_eq!(core.version().semver(), vendored.version, "{core:?}");
        assert_eq!(core.source(), LibrarySource::Vendored);
        assert_eq!(core.path(), vendored.path().canonicalize().unwrap());

        let mut conn = Connection::open_in_memory().unwrap();
        core.load_into(&conn).unwrap();
        let tx = conn.transaction().unwrap();
        let init: String = tx
            .query_row("SELECT powersync_init()", [], |r| r.get(0))
            .unwrap();
        assert_eq!(init, "");
        tx.commit().unwrap();
        let version: String = conn
            .query_row("SELECT powersync_rs_version()", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, core.version().to_string());
        assert!(version.starts_with(&format!("{}/", vendored.version)));
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('ps_crud', 'ps_oplog', 'ps_buckets')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 3, "core {version} created its internal tables");
    }
}

#[test]
fn core_0_5_refuses_powersync_init_outside_a_transaction() {
    let core = CoreLibrary::vendored("0.5.3").unwrap();
    let conn = Connection::open_in_memory().unwrap();
    core.load_into(&conn).unwrap();
    let err = conn
        .query_row("SELECT powersync_init()", [], |r| r.get::<_, String>(0))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("may only be called in transactions"),
        "{err}"
    );
}

#[test]
fn loading_the_same_library_twice_returns_the_same_handle() {
    let default = VendoredCore::default();
    let a = CoreLibrary::vendored(&default.version).unwrap();
    let b = CoreLibrary::vendored(&default.version).unwrap();
    assert!(std::ptr::eq(a, b));
    // The `default` symlink resolves to the same file, hence the same handle.
    let via_link =
        CoreLibrary::load_from(vendor_dir().join("lib/default/libpowersync.so")).unwrap();
    assert!(std::ptr::eq(a, via_link));
    let other = CoreLibrary::vendored("0.4.11").unwrap();
    assert!(!std::ptr::eq(a, other));
}

#[test]
fn different_cores_serve_different_connections_in_one_process() {
    let old = CoreLibrary::vendored("0.4.11").unwrap();
    let new = CoreLibrary::vendored("0.5.3").unwrap();
    let a = Connection::open_in_memory().unwrap();
    let b = Connection::open_in_memory().unwrap();
    old.load_into(&a).unwrap();
    new.load_into(&b).unwrap();
    let version = |c: &Connection| -> String {
        c.query_row("SELECT powersync_rs_version()", [], |r| r.get(0))
            .unwrap()
    };
    assert!(version(&a).starts_with("0.4.11/"));
    assert!(version(&b).starts_with("0.5.3/"));
}
