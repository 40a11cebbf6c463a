//! Behavioural diff of two cores: the same deterministic script of sync lines and local writes
//! on an in-memory database per core, then a structural comparison of what each produced.
//!
//! The script (`fixtures/core-diff-script.json` by default) holds a schema and steps, each run
//! in its own transaction on one connection: `{"control": [op, payload]}` calls
//! `powersync_control` and keeps the instructions it returned, `{"write": [sql, ...]}` runs local
//! writes. Compared afterwards: the rows of every schema table, the CRUD queue (`ps_crud`, data
//! parsed as JSON) and every step's instructions. Values that differ on every run are replaced
//! by what they are: `client_id`s by `<client_id>`, timestamps by `<seconds>` or
//! `<microseconds>` (so a change of unit is a difference, the clock is not). No timing is
//! involved.

use std::path::Path;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};

use powersync_sys::CoreLibrary;

/// The script `harness diff-cores` runs by default.
pub const DEFAULT_SCRIPT: &str = include_str!("../fixtures/core-diff-script.json");

/// A script: a schema and steps.
#[derive(Debug, Clone, Deserialize)]
pub struct Script {
    /// The `powersync_replace_schema` JSON.
    pub schema: Value,
    /// The steps, in order.
    pub steps: Vec<ScriptStep>,
}

/// One step of a script.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptStep {
    /// `powersync_control(op, payload)`; payload text or null.
    Control(String, Option<String>),
    /// Local writes, in one transaction.
    Write(Vec<String>),
}

impl Script {
    /// Parses a script.
    pub fn parse(text: &str) -> Result<Self, crate::Error> {
        serde_json::from_str(text)
            .map_err(|e| crate::Error::Options(format!("bad core-diff script: {e}")))
    }

    /// Reads a script file.
    pub fn read(path: &Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }
}

/// What one core produced: `{"tables": {...}, "crud": [...], "instructions": [...]}`.
pub fn run(core: &'static CoreLibrary, script: &Script) -> Result<Value, crate::Error> {
    let fail = |what: String| crate::Error::Options(format!("core {}: {what}", core.version()));
    let sql = |what: &str, e: rusqlite::Error| fail(format!("{what}: {e}"));
    let mut conn = Connection::open_in_memory().map_err(|e| sql("open", e))?;
    core.load_into(&conn).map_err(|e| fail(e.to_string()))?;
    let tx = conn.transaction().map_err(|e| sql("begin", e))?;
    tx.query_row(
        "SELECT powersync_replace_schema(?1)",
        [script.schema.to_string()],
        |_| Ok(()),
    )
    .map_err(|e| sql("schema", e))?;
    tx.commit().map_err(|e| sql("commit", e))?;

    let mut instructions = Vec::new();
    for (i, step) in script.steps.iter().enumerate() {
        let tx = conn.transaction().map_err(|e| sql("begin", e))?;
        match step {
            ScriptStep::Control(op, payload) => {
                let out: rusqlite::Result<String> =
                    tx.query_row("SELECT powersync_control(?1, ?2)", (op, payload), |r| {
                        r.get(0)
                    });
                let value = match out {
                    Ok(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    Err(e) => json!({ "error": e.to_string() }),
                };
                instructions.push(json!({ "step": i, "op": op, "returned": value }));
            }
            ScriptStep::Write(statements) => {
                for s in statements {
                    tx.execute(s, [])
                        .map_err(|e| sql(&format!("step {i}: {s}"), e))?;
                }
            }
        }
        tx.commit().map_err(|e| sql("commit", e))?;
    }

    let mut tables = serde_json::Map::new();
    for table in script.schema["tables"].as_array().into_iter().flatten() {
        let Some(name) = table["name"].as_str() else {
            continue;
        };
        let columns: Vec<String> = std::iter::once("id".to_string())
            .chain(
                table["columns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(String::from)),
            )
            .collect();
        let quoted: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        let query = format!(
            "SELECT {} FROM \"{}\" ORDER BY id",
            quoted.join(", "),
            name.replace('"', "\"\"")
        );
        let mut stmt = conn.prepare(&query).map_err(|e| sql(&query, e))?;
        let rows = stmt
            .query_map([], |r| {
                let mut row = serde_json::Map::new();
                for (i, c) in columns.iter().enumerate() {
                    row.insert(c.clone(), sql_value(r.get_ref(i)?));
                }
                Ok(Value::Object(row))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sql(&query, e))?;
        tables.insert(name.to_string(), Value::Array(rows));
    }

    let mut stmt = conn
        .prepare("SELECT id, tx_id, data FROM ps_crud ORDER BY id")
        .map_err(|e| sql("ps_crud", e))?;
    let crud = stmt
        .query_map([], |r| {
            let data: String = r.get(2)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "tx_id": r.get::<_, Option<i64>>(1)?,
                "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data)),
            }))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| sql("ps_crud", e))?;

    let mut result = json!({ "tables": tables, "crud": crud, "instructions": instructions });
    normalise(&mut result, None);
    Ok(result)
}

fn sql_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => json!({ "blob_len": b.len() }),
    }
}

/// Replaces run-dependent values: client ids, and timestamps by their unit.
fn normalise(v: &mut Value, key: Option<&str>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                normalise(child, Some(k));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| normalise(c, key)),
        Value::String(s) if key == Some("client_id") => *s = "<client_id>".into(),
        Value::Number(n) if key.is_some_and(|k| k.ends_with("_at")) => {
            if let Some(t) = n.as_u64() {
                // 1e9..1e10 s is 2001..2286; 1e15..1e16 µs likewise.
                let unit = match t {
                    1_000_000_000..10_000_000_000 => "<seconds>",
                    1_000_000_000_000_000..10_000_000_000_000_000 => "<microseconds>",
                    _ => return,
                };
                *v = Value::String(unit.into());
            }
        }
        _ => {}
    }
}

/// One difference: where, and the two values (`null` when absent on one side).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    /// A JSON path such as `instructions[2].returned[0].UpdateSyncStatus`.
    pub path: String,
    /// The first core's value.
    pub a: Value,
    /// The second core's value.
    pub b: Value,
}

/// Every difference between two results, leaves first found first.
pub fn compare(a: &Value, b: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Difference>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                walk(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(Difference {
            path: path.to_string(),
            a: a.clone(),
            b: b.clone(),
        }),
        _ => {}
    }
}

/// The differences as text, one per line, under a heading naming the two cores.
pub fn report(a: &CoreLibrary, b: &CoreLibrary, diffs: &[Difference]) -> String {
    let mut out = format!(
        "core {} vs core {}: {} difference(s)\n",
        a.version(),
        b.version(),
        diffs.len()
    );
    for d in diffs {
        out.push_str(&format!("{}: {} | {}\n", d.path, d.a, d.b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use powersync_sys::VendoredCore;

    fn result(version: &str) -> Value {
        let core = VendoredCore::find(version).unwrap().load().unwrap();
        run(core, &Script::parse(DEFAULT_SCRIPT).unwrap()).unwrap()
    }

    #[test]
    fn a_core_compared_with_itself_has_no_differences() {
        let a = result("0.5.3");
        assert_eq!(compare(&a, &result("0.5.3")), []);
        // The script did something: downloaded rows, a CRUD queue, instructions.
        let todos = a["tables"]["todos"].as_array().unwrap();
        let ids: Vec<&str> = todos.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(
            ids.contains(&"t3") && ids.contains(&"l1") && !ids.contains(&"t2"),
            "{a}"
        );
        assert_eq!(a["crud"].as_array().unwrap().len(), 4, "{a}");
        assert!(a["instructions"].as_array().unwrap().len() >= 8);
    }

    #[test]
    fn cores_0_4_and_0_5_differ_in_the_last_synced_at_unit() {
        let diffs = compare(&result("0.4.11"), &result("0.5.3"));
        let unit = diffs.iter().find(|d| d.path.ends_with("last_synced_at"));
        let unit = unit.unwrap_or_else(|| panic!("no last_synced_at difference in {diffs:#?}"));
        assert_eq!(
            (unit.a.as_str(), unit.b.as_str()),
            (Some("<seconds>"), Some("<microseconds>"))
        );
        assert!(
            diffs.iter().all(|d| d.path.starts_with("instructions")),
            "{diffs:#?}"
        );
    }

    #[test]
    fn compare_names_each_differing_leaf() {
        let d = compare(
            &json!({"x": [1, 2], "y": 1}),
            &json!({"x": [1, 3, 4], "y": 1}),
        );
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["x[1]", "x[2]"]);
    }
}
