//! Prints which PowerSync core this machine loads, and proves it works with one local
//! transaction.
//!
//! `powersync-core-info [PATH]` loads PATH, or searches as `CoreLibrary::load` does
//! (`POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`, the vendored default, the system loader). Then it opens
//! an in-memory database, initialises PowerSync, applies a one-table schema, inserts a row in a
//! transaction and prints the upload-queue entry the core recorded. Exit status 1 with the
//! loader's message when anything fails.

use std::process::ExitCode;

use powersync_sys::CoreLibrary;
use rusqlite::Connection;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("powersync-core-info: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let core = match std::env::args_os().nth(1) {
        Some(path) => CoreLibrary::load_from(path),
        None => CoreLibrary::load(),
    }
    .map_err(|e| e.to_string())?;
    println!("core version: {}", core.version());
    println!("library: {} ({})", core.path().display(), core.source());

    let sql = |e: rusqlite::Error| format!("SQLite: {e}");
    let mut conn = Connection::open_in_memory().map_err(sql)?;
    core.load_into(&conn).map_err(|e| e.to_string())?;
    let schema = r#"{"tables":[{"name":"notes","columns":[{"name":"body","type":"TEXT"}]}]}"#;
    let tx = conn.transaction().map_err(sql)?;
    tx.query_row("SELECT powersync_replace_schema(?1)", [schema], |_| Ok(()))
        .map_err(sql)?;
    tx.execute(
        "INSERT INTO notes(id, body) VALUES (uuid(), ?1)",
        ["hello from powersync-core-info"],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    let (id, tx_id, data): (i64, Option<i64>, String) = conn
        .query_row("SELECT id, tx_id, data FROM ps_crud", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql)?;
    println!("local transaction: ps_crud id={id} tx_id={tx_id:?} data={data}");
    Ok(())
}
