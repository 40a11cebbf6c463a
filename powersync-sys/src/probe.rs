//! Loading a core into one SQLite connection, and reading its version on a private connection.

use std::ffi::{CStr, CString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use rusqlite::{Connection, ffi};

use crate::{ENTRY_POINT, Error, Result};

/// Loads the library at `path` into `conn` with `sqlite3_load_extension`, naming the entry point
/// explicitly. Extension loading is enabled for the C API only (never for SQL's
/// `load_extension()`), and only for the duration of the call.
pub(crate) fn load_extension(conn: &Connection, path: &Path) -> Result<()> {
    let init_failed = |code: c_int, message: String| Error::InitFailed {
        path: path.to_path_buf(),
        code,
        message,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| init_failed(ffi::SQLITE_MISUSE, "path contains a NUL byte".into()))?;
    let c_entry = CString::new(ENTRY_POINT).expect("entry point name has no NUL byte");

    // SAFETY: `conn` is borrowed for the whole function and rusqlite connections are used from
    // one thread at a time (`!Sync`), so the handle stays valid and unshared while we use it.
    let db = unsafe { conn.handle() };
    let set_loading = |on: c_int| {
        // SAFETY: `db` is a valid open handle (above); this db_config op takes an int and an
        // optional `int*` for the new state, for which we pass NULL.
        unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
                on,
                ptr::null_mut::<c_int>(),
            )
        }
    };
    let rc = set_loading(1);
    if rc != ffi::SQLITE_OK {
        return Err(init_failed(rc, "could not enable extension loading".into()));
    }
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: `db` is valid, both strings are NUL-terminated and outlive the call, and `err` is
    // a valid out-pointer that SQLite sets to NULL or to a message from sqlite3_malloc.
    let rc =
        unsafe { ffi::sqlite3_load_extension(db, c_path.as_ptr(), c_entry.as_ptr(), &mut err) };
    let message = if err.is_null() {
        None
    } else {
        // SAFETY: SQLite returned a NUL-terminated string it allocated; we copy it, then free it
        // with sqlite3_free exactly once.
        unsafe {
            let text = CStr::from_ptr(err).to_string_lossy().into_owned();
            ffi::sqlite3_free(err.cast());
            Some(text)
        }
    };
    set_loading(0);
    if rc != ffi::SQLITE_OK {
        let message = message.unwrap_or_else(|| format!("sqlite3_load_extension returned {rc}"));
        return Err(init_failed(rc, message));
    }
    Ok(())
}

/// Opens a private in-memory connection, loads the core at `path` into it and returns
/// `powersync_rs_version()`.
pub(crate) fn read_version(path: &Path) -> Result<String> {
    let sql_failed = |e: rusqlite::Error| Error::InitFailed {
        path: path.to_path_buf(),
        code: e
            .sqlite_error_code()
            .map_or(ffi::SQLITE_ERROR, |c| c as c_int),
        message: e.to_string(),
    };
    let conn = Connection::open_in_memory().map_err(sql_failed)?;
    load_extension(&conn, path)?;
    conn.query_row("SELECT powersync_rs_version()", [], |row| row.get(0))
        .map_err(sql_failed)
}
