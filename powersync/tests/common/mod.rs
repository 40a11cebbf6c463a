//! Shared helpers of the `powersync` integration tests.
#![allow(dead_code)]

use powersync::schema::{Column, IncludeOld, Schema, Table};
use powersync::{CoreLibrary, DatabaseOptions, PowerSyncDatabase};

/// Every core of the vendored test set, loaded; fails with the fix when one is not fetched.
pub fn cores() -> Vec<&'static CoreLibrary> {
    powersync_sys::VendoredCore::test_set()
        .map(|c| {
            c.load().unwrap_or_else(|e| {
                panic!(
                    "core {}: {e} (run `vendor/fetch-cores --test-set`)",
                    c.version
                )
            })
        })
        .collect()
}

/// The default vendored core.
pub fn default_core() -> &'static CoreLibrary {
    powersync_sys::VendoredCore::default().load().unwrap()
}

/// A core by version.
pub fn core(version: &str) -> &'static CoreLibrary {
    CoreLibrary::vendored(version).unwrap()
}

pub fn options(core: &'static CoreLibrary) -> DatabaseOptions {
    DatabaseOptions::default().with_core(core)
}

/// `todos` (synced), `drafts` (local-only), and, on cores that can, `items` with previous values
/// and metadata.
pub fn schema(core: &CoreLibrary) -> Schema {
    let mut tables = vec![
        Table::new(
            "todos",
            vec![Column::text("description"), Column::integer("done")],
        ),
        Table::new("drafts", vec![Column::text("body")]).local_only(),
    ];
    if core.version().at_least(0, 3, 13) {
        tables.push(
            Table::new("items", vec![Column::text("name"), Column::integer("qty")])
                .include_old(IncludeOld::All, false)
                .include_metadata(),
        );
    }
    Schema::new(tables)
}

pub async fn open_temp(core: &'static CoreLibrary) -> (tempfile::TempDir, PowerSyncDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = PowerSyncDatabase::open(dir.path().join("test.db"), &schema(core), options(core))
        .await
        .unwrap_or_else(|e| panic!("open with core {}: {e}", core.version()));
    (dir, db)
}
