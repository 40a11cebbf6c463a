//! Putting a loaded core into SQLite connections: process-wide (auto-extension) or one
//! connection at a time.

use std::sync::Mutex;

use rusqlite::{Connection, ffi};

use crate::{CoreLibrary, Error, Result, probe};

/// The core registered as auto-extension, if any.
static REGISTERED: Mutex<Option<&'static CoreLibrary>> = Mutex::new(None);

impl CoreLibrary {
    /// Registers this core with `sqlite3_auto_extension`, so that every SQLite connection opened
    /// afterwards in this process (rusqlite with the bundled SQLite) has PowerSync. Connections
    /// that are already open are not affected.
    ///
    /// Idempotent for the same core. Registering a second, different core while one is
    /// registered is [`Error::AlreadyRegistered`]: two cores initialising every connection would
    /// overwrite each other's functions. A failing entry point makes later opens fail with the
    /// core's message.
    pub fn register_auto_extension(&'static self) -> Result<()> {
        let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
        match *registered {
            Some(core) if std::ptr::eq(core, self) => return Ok(()),
            Some(core) => {
                return Err(Error::AlreadyRegistered {
                    registered: core.path().to_path_buf(),
                    requested: self.path().to_path_buf(),
                });
            }
            None => {}
        }
        // SAFETY: the entry point has SQLite's extension-init signature (vendor/powersync.h) and
        // stays valid forever because `self` is 'static and never unloaded.
        let rc = unsafe { ffi::sqlite3_auto_extension(self.entry_point()) };
        if rc != ffi::SQLITE_OK {
            return Err(Error::RegistrationFailed { code: rc });
        }
        *registered = Some(self);
        Ok(())
    }

    /// Loads this core into one open connection (`sqlite3_load_extension` with the explicit entry
    /// point; SQL-level `load_extension()` stays disabled). Fails with [`Error::InitFailed`]
    /// carrying SQLite's message.
    ///
    /// Loading into a connection that already has this core (for example through the
    /// auto-extension) registers its functions again; avoid mixing the two on one connection.
    pub fn load_into(&self, conn: &Connection) -> Result<()> {
        probe::load_extension(conn, self.path())
    }
}

/// The core currently registered as auto-extension, if any.
pub fn registered_core() -> Option<&'static CoreLibrary> {
    *REGISTERED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the registered auto-extension, if any, and returns it. Connections opened afterwards
/// no longer get PowerSync automatically; open ones keep it.
pub fn unregister_auto_extension() -> Option<&'static CoreLibrary> {
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    let core = registered.take()?;
    // SAFETY: cancelling takes the same pointer that was registered; SQLite only compares it.
    unsafe { ffi::sqlite3_cancel_auto_extension(core.entry_point()) };
    Some(core)
}
