//! Prints which PowerSync core this machine loads, and proves it works with one local
//! transaction.
//!
//! `powersync-core-info [PATH]` loads PATH, or searches as `CoreLibrary::load` does
//! (`POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`, the vendored default, the system loader). Then it opens
//! an in-memory database, initialises PowerSync, applies a one-table schema, inserts a row in a
//! transaction and prints the upload-queue entry the core recorded. Exit status 1 with the
//! loader's message when anything fails.
//!
//! `powersync-core-info --probe [--core VERSION | --lib PATH] [--json]` prints what the core can
//! do instead (`CoreLibrary::capabilities`): SQL functions, `powersync_control` operations,
//! transaction requirements, the write-checkpoint mechanism, the `last_synced_at` unit and
//! update-hook support. `--core all` probes every fetched vendored core (JSON: one object per
//! line).

use std::process::ExitCode;

use powersync_sys::{CoreLibrary, VendoredCore};
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

const USAGE: &str =
    "usage: powersync-core-info [PATH] | --probe [--core VERSION|all | --lib PATH] [--json]";

fn run() -> Result<(), String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--probe") {
        return probe(&args[1..]);
    }
    if args.len() > 1
        || args
            .first()
            .is_some_and(|a| a.to_string_lossy().starts_with('-'))
    {
        return Err(USAGE.into());
    }
    let core = match args.first() {
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

fn probe(args: &[std::ffi::OsString]) -> Result<(), String> {
    let mut json = false;
    let mut cores: Option<Vec<&'static CoreLibrary>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{} needs a value; {USAGE}", arg.to_string_lossy()))
        };
        match arg.to_str() {
            Some("--json") => json = true,
            Some("--core") => {
                let v = value()?.to_string_lossy().into_owned();
                cores = Some(if v == "all" {
                    VendoredCore::all()
                        .iter()
                        .filter(|c| c.is_fetched())
                        .map(VendoredCore::load)
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?
                } else {
                    vec![
                        VendoredCore::find(&v)
                            .and_then(|c| c.load())
                            .map_err(|e| e.to_string())?,
                    ]
                });
            }
            Some("--lib") => {
                cores = Some(vec![
                    CoreLibrary::load_from(value()?).map_err(|e| e.to_string())?,
                ]);
            }
            _ => {
                return Err(format!(
                    "unknown argument {}; {USAGE}",
                    arg.to_string_lossy()
                ));
            }
        }
    }
    let cores = match cores {
        Some(cores) => cores,
        None => vec![CoreLibrary::load().map_err(|e| e.to_string())?],
    };
    for (i, core) in cores.into_iter().enumerate() {
        let caps = core.capabilities().map_err(|e| e.to_string())?;
        if json {
            println!(
                "{}",
                serde_json::to_string(caps).map_err(|e| e.to_string())?
            );
        } else {
            if i > 0 {
                println!();
            }
            println!("library: {} ({})", core.path().display(), core.source());
            println!("{caps}");
        }
    }
    Ok(())
}
