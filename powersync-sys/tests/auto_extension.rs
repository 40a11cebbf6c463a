//! Registration is process-global, so these tests live in their own test binary and run as one
//! test, in order.

use powersync_sys::{CoreLibrary, Error, registered_core, unregister_auto_extension};
use rusqlite::Connection;

fn has_powersync(conn: &Connection) -> Option<String> {
    conn.query_row("SELECT powersync_rs_version()", [], |r| r.get(0))
        .ok()
}

#[test]
fn auto_extension_registration_is_idempotent_exclusive_and_reversible() {
    let core = CoreLibrary::vendored("0.5.3").unwrap();
    let other = CoreLibrary::vendored("0.4.11").unwrap();

    let before = Connection::open_in_memory().unwrap();
    assert_eq!(has_powersync(&before), None);
    assert!(registered_core().is_none());

    core.register_auto_extension().unwrap();
    core.register_auto_extension().unwrap();
    assert!(std::ptr::eq(registered_core().unwrap(), core));

    let after = Connection::open_in_memory().unwrap();
    assert_eq!(has_powersync(&after), Some(core.version().to_string()));
    assert_eq!(
        has_powersync(&before),
        None,
        "open connections are not changed"
    );

    let err = other.register_auto_extension().unwrap_err();
    assert!(matches!(err, Error::AlreadyRegistered { .. }), "{err:?}");
    let third = Connection::open_in_memory().unwrap();
    assert_eq!(has_powersync(&third), Some(core.version().to_string()));

    assert!(std::ptr::eq(unregister_auto_extension().unwrap(), core));
    assert!(unregister_auto_extension().is_none());
    assert_eq!(has_powersync(&Connection::open_in_memory().unwrap()), None);
    assert_eq!(has_powersync(&after), Some(core.version().to_string()));

    other.register_auto_extension().unwrap();
    let mut conn = Connection::open_in_memory().unwrap();
    assert_eq!(has_powersync(&conn), Some(other.version().to_string()));
    let tx = conn.transaction().unwrap();
    tx.query_row("SELECT powersync_init()", [], |_| Ok(()))
        .unwrap();
    tx.commit().unwrap();
    unregister_auto_extension();
}
