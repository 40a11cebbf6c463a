//! Opening SQLite connections with the core loaded and the pragmas applied, and initialising the
//! PowerSync schema.

use std::path::Path;

use powersync_sys::CoreLibrary;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::options::{EncryptionKey, JournalMode, Pragmas};
use crate::error::{Error, Result};

/// What to open.
#[derive(Debug, Clone)]
pub(crate) enum Location<'a> {
    File(&'a Path),
    Memory,
}

/// Opens the writer connection, loads the core, applies the pragmas.
pub(crate) fn open_writer(
    location: &Location<'_>,
    core: &CoreLibrary,
    pragmas: &Pragmas,
    key: Option<&EncryptionKey>,
) -> Result<Connection> {
    let conn = match location {
        Location::File(path) => Connection::open(path)?,
        Location::Memory => Connection::open_in_memory()?,
    };
    apply_key(&conn, key)?;
    core.load_into(&conn)?;
    conn.busy_timeout(pragmas.busy_timeout)?;
    if let Location::File(_) = location {
        let mode = match pragmas.journal_mode {
            JournalMode::Wal => "WAL",
            JournalMode::Delete => "DELETE",
        };
        let actual: String =
            conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
        if !actual.eq_ignore_ascii_case(mode) {
            return Err(Error::Decode {
                what: "journal_mode",
                detail: format!("asked for {mode}, SQLite kept {actual}"),
            });
        }
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {};",
        pragmas.synchronous.sql(),
        pragmas.journal_size_limit
    ))?;
    Ok(conn)
}

/// Opens a read-only connection on `path` with the core loaded.
pub(crate) fn open_reader(
    path: &Path,
    core: &CoreLibrary,
    pragmas: &Pragmas,
    key: Option<&EncryptionKey>,
) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    apply_key(&conn, key)?;
    core.load_into(&conn)?;
    conn.busy_timeout(pragmas.busy_timeout)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};",
        pragmas.synchronous.sql()
    ))?;
    Ok(conn)
}

/// Gives the connection its encryption key, first of all (SQLCipher reads nothing before), and
/// checks it by reading the schema: a wrong key fails here, not at some later query.
#[cfg(feature = "sqlcipher")]
fn apply_key(conn: &Connection, key: Option<&EncryptionKey>) -> Result<()> {
    let Some(key) = key else {
        return Ok(());
    };
    // `pragma_update` renders the key as a quoted SQL literal (PRAGMA takes no parameters).
    conn.pragma_update(None, "key", key.expose())?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| Error::Encryption(format!("the key does not open the database: {e}")))
}

#[cfg(not(feature = "sqlcipher"))]
fn apply_key(_conn: &Connection, key: Option<&EncryptionKey>) -> Result<()> {
    match key {
        None => Ok(()),
        Some(_) => Err(Error::Encryption(
            "an encryption key needs the crate built with the `sqlcipher` feature".into(),
        )),
    }
}

/// Runs `powersync_init()` and `powersync_replace_schema(json)` in one write transaction (a
/// transaction is required from core 0.5.0 on, and harmless before).
pub(crate) fn apply_schema(conn: &mut Connection, schema_json: &str) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.query_row("SELECT powersync_init()", [], |_| Ok(()))?;
    tx.query_row("SELECT powersync_replace_schema(?1)", [schema_json], |_| {
        Ok(())
    })?;
    tx.commit()?;
    Ok(())
}
