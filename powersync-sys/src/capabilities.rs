//! What a loaded core can do, found out by trying it on a private in-memory database rather than
//! assumed from its version number.
//!
//! [`CoreLibrary::capabilities`] probes once per core and caches the result. The facts are the
//! ones a wrapper branches on: which SQL functions the core registers, whether
//! `powersync_control` exists and which operations it accepts, whether `powersync_init`,
//! `powersync_replace_schema` and `powersync_control` refuse to run outside a transaction, how
//! the write-checkpoint target is set, the unit of `last_synced_at` in the sync status, and
//! whether `powersync_update_hooks` works.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde::Serialize;

use crate::{CoreLibrary, CoreVersion, Error, Result};

/// Every `powersync_control` operation any published core accepts (read from the cores'
/// source). The probe tries each; an operation a future core adds is not discovered until it is
/// listed here.
pub const KNOWN_CONTROL_OPS: &[&str] = &[
    "start",
    "stop",
    "line_text",
    "line_binary",
    "refreshed_token",
    "completed_upload",
    "update_subscriptions",
    "connection",
    "subscriptions",
    "seed_checkpoint_request_id",
    "next_checkpoint_request_id",
    "target_checkpoint_request_id",
    "current_checkpoint_request_id",
];

/// The operations a wrapper needs for download sync (the `connection` event included, which the
/// wrapper sends after connecting).
pub const DOWNLOAD_SYNC_OPS: &[&str] = &[
    "start",
    "stop",
    "line_text",
    "line_binary",
    "completed_upload",
    "connection",
];

/// How the wrapper tells the core which write checkpoint to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteCheckpoint {
    /// `UPDATE ps_buckets SET target_op = … WHERE name = '$local'` (cores before 0.5).
    LocalBucketTargetOp,
    /// `powersync_control('target_checkpoint_request_id', …)` and the other
    /// `*_checkpoint_request_id` operations (0.5+).
    CheckpointRequestOps,
}

/// The unit of `last_synced_at` in the sync status `powersync_control` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds since the epoch (0.4.x).
    Seconds,
    /// Microseconds since the epoch (0.5+).
    Microseconds,
}

/// Which entry points refuse to run outside an explicit transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TransactionRequirements {
    /// `powersync_init()`.
    pub init: bool,
    /// `powersync_replace_schema(json)`.
    pub replace_schema: bool,
    /// `powersync_control(op, payload)`; `false` also when the core has no `powersync_control`.
    pub control: bool,
}

/// What one core can do, as probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreCapabilities {
    /// The version the core reports.
    #[serde(serialize_with = "as_string")]
    pub version: CoreVersion,
    /// The SQL functions the core registers on a connection (names, sorted).
    pub functions: BTreeSet<String>,
    /// The virtual-table modules it registers (names, sorted).
    pub modules: BTreeSet<String>,
    /// The `powersync_control` operations it accepts, or `None` without `powersync_control`.
    pub control_ops: Option<BTreeSet<String>>,
    /// Which entry points demand a transaction.
    pub requires_transaction: TransactionRequirements,
    /// How the write-checkpoint target is set.
    pub write_checkpoint: WriteCheckpoint,
    /// The unit of `last_synced_at` after a completed sync, or `None` without download sync.
    pub last_synced_at: Option<TimeUnit>,
    /// `powersync_update_hooks('install' | 'get')` reports the tables a committed transaction
    /// changed.
    pub update_hooks: bool,
}

fn as_string<S: serde::Serializer>(v: &CoreVersion, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl CoreCapabilities {
    /// True when the core registers the SQL function `name`.
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }

    /// True when `powersync_control` accepts `op`.
    pub fn has_control_op(&self, op: &str) -> bool {
        self.control_ops
            .as_ref()
            .is_some_and(|ops| ops.contains(op))
    }

    /// True when the core has every operation download sync needs ([`DOWNLOAD_SYNC_OPS`]).
    pub fn can_download_sync(&self) -> bool {
        DOWNLOAD_SYNC_OPS.iter().all(|op| self.has_control_op(op))
    }
}

impl fmt::Display for CoreCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(" ");
        writeln!(f, "core version: {}", self.version)?;
        writeln!(f, "functions: {}", join(&self.functions))?;
        writeln!(f, "modules: {}", join(&self.modules))?;
        match &self.control_ops {
            Some(ops) => writeln!(f, "powersync_control ops: {}", join(ops))?,
            None => writeln!(f, "powersync_control: absent")?,
        }
        let t = self.requires_transaction;
        writeln!(
            f,
            "requires a transaction: init={} replace_schema={} control={}",
            t.init, t.replace_schema, t.control
        )?;
        writeln!(f, "write checkpoint: {:?}", self.write_checkpoint)?;
        match self.last_synced_at {
            Some(unit) => writeln!(f, "last_synced_at: {unit:?}")?,
            None => writeln!(f, "last_synced_at: n/a (no download sync)")?,
        }
        writeln!(f, "update hooks: {}", self.update_hooks)?;
        write!(f, "download sync: {}", self.can_download_sync())
    }
}

/// Probed cores, by identity of their leaked `CoreLibrary`.
static PROBED: Mutex<Vec<(usize, &'static CoreCapabilities)>> = Mutex::new(Vec::new());

impl CoreLibrary {
    /// Probes what this core can do (once per core; later calls return the cached result). The
    /// probe runs on private in-memory connections and changes nothing else. Fails with
    /// [`Error::Probe`] when the core behaves in a way the probe cannot classify.
    pub fn capabilities(&'static self) -> Result<&'static CoreCapabilities> {
        let key = self as *const Self as usize;
        let mut probed = PROBED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, caps)) = probed.iter().find(|(k, _)| *k == key) {
            return Ok(caps);
        }
        let caps: &'static CoreCapabilities = Box::leak(Box::new(probe(self)?));
        probed.push((key, caps));
        Ok(caps)
    }
}

/// A one-table schema for the probes.
const SCHEMA: &str =
    r#"{"tables":[{"name":"probe_items","columns":[{"name":"body","type":"TEXT"}]}]}"#;

fn probe(core: &CoreLibrary) -> Result<CoreCapabilities> {
    let fail = |what: &str, e: rusqlite::Error| Error::Probe {
        path: core.path().to_path_buf(),
        what: what.to_string(),
        message: e.to_string(),
    };
    let bare = Connection::open_in_memory().map_err(|e| fail("open", e))?;
    let before_functions = names(&bare, "SELECT name FROM pragma_function_list")
        .map_err(|e| fail("function list", e))?;
    let before_modules =
        names(&bare, "SELECT name FROM pragma_module_list").map_err(|e| fail("module list", e))?;
    drop(bare);

    let conn = connection(core)?;
    let functions = names(&conn, "SELECT name FROM pragma_function_list")
        .map_err(|e| fail("function list", e))?
        .difference(&before_functions)
        .cloned()
        .collect::<BTreeSet<_>>();
    let modules = names(&conn, "SELECT name FROM pragma_module_list")
        .map_err(|e| fail("module list", e))?
        .difference(&before_modules)
        .cloned()
        .collect();
    let has_control = functions.contains("powersync_control");

    // Transactions: each entry point on a fresh database, outside a transaction.
    let init = demands_transaction(&conn, "SELECT powersync_init()", [])
        .map_err(|e| fail("powersync_init outside a transaction", e))?;
    let conn = connection(core)?;
    let replace_schema =
        demands_transaction(&conn, "SELECT powersync_replace_schema(?1)", [SCHEMA])
            .map_err(|e| fail("powersync_replace_schema outside a transaction", e))?;
    let mut conn = connection(core)?;
    in_transaction(&mut conn, |tx| {
        tx.query_row("SELECT powersync_replace_schema(?1)", [SCHEMA], |_| Ok(()))
    })
    .map_err(|e| fail("powersync_replace_schema", e))?;
    let control = has_control
        && demands_transaction(&conn, "SELECT powersync_control('stop', NULL)", [])
            .map_err(|e| fail("powersync_control outside a transaction", e))?;

    let control_ops = if has_control {
        Some(control_ops(core)?)
    } else {
        None
    };
    let write_checkpoint = if control_ops
        .as_ref()
        .is_some_and(|ops| ops.contains("target_checkpoint_request_id"))
    {
        WriteCheckpoint::CheckpointRequestOps
    } else {
        let target_op: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('ps_buckets') WHERE name = 'target_op'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| fail("ps_buckets.target_op", e))?;
        if !target_op {
            return Err(Error::Probe {
                path: core.path().to_path_buf(),
                what: "write checkpoint".into(),
                message: "neither the checkpoint-request operations nor ps_buckets.target_op exist"
                    .into(),
            });
        }
        WriteCheckpoint::LocalBucketTargetOp
    };
    let can_sync = DOWNLOAD_SYNC_OPS
        .iter()
        .all(|op| control_ops.as_ref().is_some_and(|ops| ops.contains(*op)));
    let last_synced_at = if can_sync {
        Some(last_synced_at_unit(core)?)
    } else {
        None
    };
    let update_hooks = functions.contains("powersync_update_hooks")
        && update_hooks_work(&mut conn).map_err(|e| fail("powersync_update_hooks", e))?;

    Ok(CoreCapabilities {
        version: core.version().clone(),
        functions,
        modules,
        control_ops,
        requires_transaction: TransactionRequirements {
            init,
            replace_schema,
            control,
        },
        write_checkpoint,
        last_synced_at,
        update_hooks,
    })
}

/// A fresh in-memory connection with the core loaded.
fn connection(core: &CoreLibrary) -> Result<Connection> {
    let conn = Connection::open_in_memory().map_err(|e| Error::Probe {
        path: core.path().to_path_buf(),
        what: "open".into(),
        message: e.to_string(),
    })?;
    core.load_into(&conn)?;
    Ok(conn)
}

fn names(conn: &Connection, sql: &str) -> rusqlite::Result<BTreeSet<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.transaction()?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Runs `sql` in autocommit mode: `Ok(true)` when the core refuses because it is not in a
/// transaction, `Ok(false)` when it runs, the error for anything else.
fn demands_transaction(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<bool> {
    match conn.query_row(sql, params, |_| Ok(())) {
        Ok(()) => Ok(false),
        Err(e) if e.to_string().contains("only be called in transactions") => Ok(true),
        Err(e) => Err(e),
    }
}

/// Tries every known operation with a NULL payload on a fresh, initialised database: an
/// operation is accepted unless the core answers "Unknown operation". A made-up operation must be
/// refused, or the probe cannot tell.
fn control_ops(core: &CoreLibrary) -> Result<BTreeSet<String>> {
    let accepted = |op: &str| -> Result<bool> {
        let mut conn = connection(core)?;
        let result = (|| {
            let tx = conn.transaction()?;
            tx.query_row("SELECT powersync_init()", [], |_| Ok(()))?;
            let outcome = tx.query_row("SELECT powersync_control(?1, NULL)", [op], |_| Ok(()));
            drop(tx); // rolls back
            Ok::<_, rusqlite::Error>(outcome)
        })()
        .map_err(|e| Error::Probe {
            path: core.path().to_path_buf(),
            what: format!("powersync_control('{op}')"),
            message: e.to_string(),
        })?;
        Ok(match result {
            Ok(()) => true,
            Err(e) => !e.to_string().contains("Unknown operation"),
        })
    };
    if accepted("no_such_operation_probe")? {
        return Err(Error::Probe {
            path: core.path().to_path_buf(),
            what: "powersync_control".into(),
            message: "a made-up operation was not refused with \"Unknown operation\"".into(),
        });
    }
    let mut ops = BTreeSet::new();
    for op in KNOWN_CONTROL_OPS {
        if accepted(op)? {
            ops.insert(op.to_string());
        }
    }
    Ok(ops)
}

/// Runs one sync iteration to a completed empty checkpoint and reads the full-sync
/// `last_synced_at` from the status the core reports, comparing it with the clock.
fn last_synced_at_unit(core: &CoreLibrary) -> Result<TimeUnit> {
    let fail = |message: String| Error::Probe {
        path: core.path().to_path_buf(),
        what: "last_synced_at".into(),
        message,
    };
    let mut conn = connection(core)?;
    let lines = [
        ("start", None),
        ("connection", Some("established")),
        (
            "line_text",
            Some(r#"{"checkpoint":{"last_op_id":"0","write_checkpoint":null,"buckets":[]}}"#),
        ),
        (
            "line_text",
            Some(r#"{"checkpoint_complete":{"last_op_id":"0"}}"#),
        ),
    ];
    let mut stamp = None;
    for (op, payload) in lines {
        let instructions: String = in_transaction(&mut conn, |tx| {
            tx.query_row("SELECT powersync_init()", [], |_| Ok(()))?;
            tx.query_row("SELECT powersync_control(?1, ?2)", (op, payload), |r| {
                r.get(0)
            })
        })
        .map_err(|e| fail(format!("powersync_control('{op}'): {e}")))?;
        let instructions: serde_json::Value = serde_json::from_str(&instructions)
            .map_err(|e| fail(format!("instructions are not JSON: {e}")))?;
        for instruction in instructions.as_array().into_iter().flatten() {
            let status = &instruction["UpdateSyncStatus"]["status"];
            for entry in status["priority_status"].as_array().into_iter().flatten() {
                if let Some(t) = entry["last_synced_at"].as_u64() {
                    stamp = Some(t);
                }
            }
        }
    }
    let stamp =
        stamp.ok_or_else(|| fail("no last_synced_at after a completed checkpoint".into()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| fail(e.to_string()))?;
    // Within a day of the clock, in either unit.
    let near = |value: u128, now: u128, day: u128| value.abs_diff(now) <= day;
    if near(u128::from(stamp), u128::from(now.as_secs()), 86_400) {
        Ok(TimeUnit::Seconds)
    } else if near(u128::from(stamp), now.as_micros(), 86_400_000_000) {
        Ok(TimeUnit::Microseconds)
    } else {
        Err(fail(format!(
            "{stamp} is neither seconds nor microseconds near now ({}s)",
            now.as_secs()
        )))
    }
}

/// Installs the hooks, commits a write and asks which tables changed.
fn update_hooks_work(conn: &mut Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT powersync_update_hooks('install')", [], |_| Ok(()))?;
    in_transaction(conn, |tx| {
        tx.execute("INSERT INTO probe_items(id, body) VALUES (uuid(), 'x')", [])
    })?;
    let changed: String =
        conn.query_row("SELECT powersync_update_hooks('get')", [], |r| r.get(0))?;
    Ok(changed.contains("probe_items"))
}
