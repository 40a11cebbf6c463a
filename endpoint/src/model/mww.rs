//! The latest era's `mww` data model (max-write-wins over integers): the micro-ops that travel
//! over HTTP and ALL of the model's SQL, for SQLite (the PowerSync view) and PostgreSQL (the
//! PostgreSQL endpoint and the upload connector). Every statement is parameterized.
//!
//! `mww(id TEXT, k INTEGER UNIQUE, v INTEGER)`: keys `0..keys` with `id` = the key as text, every
//! row seeded with `v = -1` ("never written").

use std::collections::BTreeMap;

use powersync::schema::{Column, Index, Schema, Table};
use powersync::{CrudEntry, UpdateType};
use rusqlite::Connection;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::model::invalid_entry;
use crate::pg::PgFailure;

/// `readAll` on SQLite (the PowerSync `mww` view).
pub const SQLITE_READ_ALL: &str = "SELECT k, v FROM mww ORDER BY k";
/// `writeSome` on SQLite: sets `v` directly (the filter ran before).
pub const SQLITE_WRITE: &str = "UPDATE mww SET v = ?1 WHERE k = ?2";

/// How many of the keys `0..?1` have a row (the synced endpoint's start-up wait).
pub const SQLITE_COUNT_KEYS: &str = "SELECT count(DISTINCT k) FROM mww WHERE k >= 0 AND k < ?1";

/// `readAll` on PostgreSQL.
pub const PG_READ_ALL: &str = "SELECT k, v FROM mww ORDER BY k";
/// `writeSome` on PostgreSQL (the PostgreSQL endpoint): sets `v` directly, as the Dart endpoint.
pub const PG_WRITE: &str = "UPDATE mww SET v = $1 WHERE k = $2";
/// Upload of a PATCH: max-write-wins against the row's current value.
pub const PG_UPLOAD_PATCH: &str = "UPDATE mww SET v = GREATEST($1, mww.v) WHERE id = $2";
/// Upload of a PUT.
pub const PG_UPLOAD_PUT: &str = "INSERT INTO mww (id, k, v) VALUES ($1, $2, $3)";
/// Upload of a DELETE.
pub const PG_UPLOAD_DELETE: &str = "DELETE FROM mww WHERE id = $1";

/// The latest era's schema: `mww(k INTEGER, v INTEGER)` with index `mww_k`, synced.
pub fn schema() -> Schema {
    Schema::new(vec![
        Table::new("mww", vec![Column::integer("k"), Column::integer("v")])
            .index(Index::new("mww_k", ["k"])),
    ])
}

fn int_field(entry: &CrudEntry, name: &str) -> Result<Option<i32>, PgFailure> {
    match entry.data.as_ref().and_then(|d| d.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid_entry(entry, &format!("{name} is not an INTEGER"))),
    }
}

/// Uploads one `mww` CRUD entry; the statement must affect exactly one row (the Dart `.single`).
/// The parameter types are given, so that each statement is one round trip (no separate
/// prepare).
pub async fn upload_entry(client: &impl GenericClient, entry: &CrudEntry) -> Result<(), PgFailure> {
    if entry.table != "mww" {
        return Err(invalid_entry(entry, "only the mww table is synced"));
    }
    let rows = match entry.op {
        UpdateType::Patch => {
            // Only `v` is uploaded (local writes are plain UPDATEs of `v`).
            let Some(v) = int_field(entry, "v")? else {
                return Ok(());
            };
            client
                .execute_typed(
                    PG_UPLOAD_PATCH,
                    &[(&v, Type::INT4), (&entry.id, Type::TEXT)],
                )
                .await?
        }
        UpdateType::Put => {
            let k = int_field(entry, "k")?.ok_or_else(|| invalid_entry(entry, "no k"))?;
            let v = int_field(entry, "v")?.ok_or_else(|| invalid_entry(entry, "no v"))?;
            client
                .execute_typed(
                    PG_UPLOAD_PUT,
                    &[(&entry.id, Type::TEXT), (&k, Type::INT4), (&v, Type::INT4)],
                )
                .await?
        }
        UpdateType::Delete => {
            client
                .execute_typed(PG_UPLOAD_DELETE, &[(&entry.id, Type::TEXT)])
                .await?
        }
    };
    if rows != 1 {
        return Err(invalid_entry(
            entry,
            &format!("expected exactly one affected row, got {rows}"),
        ));
    }
    Ok(())
}

/// One micro-op of a latest-era transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MwwOp {
    /// `{"f":"readAll","k":null,"v":{}}`; after running, `v` holds every key's value.
    ReadAll(Option<BTreeMap<i64, i64>>),
    /// `{"f":"writeSome","k":null,"v":{"17":42}}`; after running, only the writes made.
    WriteSome(BTreeMap<i64, i64>),
}

impl Serialize for MwwOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let empty = BTreeMap::new();
        let (f, v) = match self {
            MwwOp::ReadAll(v) => ("readAll", v.as_ref().unwrap_or(&empty)),
            MwwOp::WriteSome(v) => ("writeSome", v),
        };
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("f", f)?;
        map.serialize_entry("k", &())?;
        // Integer map keys become JSON strings, in ascending numeric order.
        map.serialize_entry("v", v)?;
        map.end()
    }
}

/// The writes of `requested` that max-write-wins keeps: a write lower than the value just read
/// (`current`) is dropped, as in the Dart endpoint (`writeSome[k] < readAll[k]`).
pub fn filter_writes(
    current: &BTreeMap<i64, i64>,
    requested: &BTreeMap<i64, i64>,
) -> BTreeMap<i64, i64> {
    requested
        .iter()
        .filter(|(k, v)| current.get(k).is_none_or(|read| **v >= *read))
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// A key → value map as JSON (`{"0":-1,…}`, ascending keys), e.g. for `selectAll`.
pub fn to_json(values: &BTreeMap<i64, i64>) -> serde_json::Value {
    serde_json::Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect(),
    )
}

/// Checks that a `readAll` returned exactly the keys `0..keys` (the Dart endpoint exits 20/22
/// otherwise).
pub fn check_complete(rows: &BTreeMap<i64, i64>, keys: i64, store: &'static str) -> Result<()> {
    let complete =
        i64::try_from(rows.len()).is_ok_and(|n| n == keys) && rows.keys().copied().eq(0..keys);
    if complete {
        Ok(())
    } else {
        Err(Error::IncompleteData {
            store,
            expected: keys,
            found: rows.len(),
        })
    }
}

/// Runs `ops` in order on a SQLite connection inside the caller's transaction and returns them
/// with reads filled in and writes filtered. `keys` is the expected key count.
pub fn apply_sqlite(conn: &Connection, ops: Vec<MwwOp>, keys: i64) -> Result<Vec<MwwOp>> {
    let mut current: Option<BTreeMap<i64, i64>> = None;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            MwwOp::ReadAll(_) => {
                let read = read_all_sqlite(conn, keys)?;
                current = Some(read.clone());
                out.push(MwwOp::ReadAll(Some(read)));
            }
            MwwOp::WriteSome(requested) => {
                let now = match current.as_mut() {
                    Some(now) => now,
                    None => current.insert(read_all_sqlite(conn, keys)?),
                };
                let writes = filter_writes(now, &requested);
                let mut update = conn.prepare_cached(SQLITE_WRITE)?;
                for (k, v) in &writes {
                    // The key's row exists (the read above saw every key); an UPDATE of a
                    // PowerSync view reports 0 changed rows, so the count is not checked.
                    update.execute([v, k])?;
                    now.insert(*k, *v);
                }
                out.push(MwwOp::WriteSome(writes));
            }
        }
    }
    Ok(out)
}

/// Every key's value on SQLite; checks that all `keys` are present.
pub fn read_all_sqlite(conn: &Connection, keys: i64) -> Result<BTreeMap<i64, i64>> {
    let mut select = conn.prepare_cached(SQLITE_READ_ALL)?;
    let rows = select
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<BTreeMap<i64, i64>>>()?;
    check_complete(&rows, keys, "sqlite3")?;
    Ok(rows)
}

/// Runs `ops` in order inside a PostgreSQL transaction (the PostgreSQL endpoint).
pub async fn apply_postgres(
    tx: &tokio_postgres::Transaction<'_>,
    ops: Vec<MwwOp>,
    keys: i64,
) -> Result<Vec<MwwOp>, PgFailure> {
    let mut current: Option<BTreeMap<i64, i64>> = None;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            MwwOp::ReadAll(_) => {
                let read = read_all_postgres(tx, keys).await?;
                current = Some(read.clone());
                out.push(MwwOp::ReadAll(Some(read)));
            }
            MwwOp::WriteSome(requested) => {
                let now = match current.as_mut() {
                    Some(now) => now,
                    None => current.insert(read_all_postgres(tx, keys).await?),
                };
                let writes = filter_writes(now, &requested);
                for (k, v) in &writes {
                    let (k32, v32) = (to_i32(*k)?, to_i32(*v)?);
                    let rows = tx.execute(PG_WRITE, &[&v32, &k32]).await?;
                    if rows != 1 {
                        return Err(PgFailure::Data(Error::IncompleteData {
                            store: "postgresql",
                            expected: 1,
                            found: usize::try_from(rows).unwrap_or(usize::MAX),
                        }));
                    }
                    now.insert(*k, *v);
                }
                out.push(MwwOp::WriteSome(writes));
            }
        }
    }
    Ok(out)
}

/// Every key's value on PostgreSQL (any client); checks that all `keys` are present.
pub async fn read_all_postgres(
    client: &impl tokio_postgres::GenericClient,
    keys: i64,
) -> Result<BTreeMap<i64, i64>, PgFailure> {
    let rows = client
        .query(PG_READ_ALL, &[])
        .await?
        .into_iter()
        .map(|r| {
            Ok((
                i64::from(r.try_get::<_, i32>(0)?),
                i64::from(r.try_get::<_, i32>(1)?),
            ))
        })
        .collect::<Result<BTreeMap<i64, i64>, tokio_postgres::Error>>()?;
    check_complete(&rows, keys, "postgresql").map_err(PgFailure::Data)?;
    Ok(rows)
}

fn to_i32(n: i64) -> Result<i32, PgFailure> {
    i32::try_from(n).map_err(|_| {
        PgFailure::Data(Error::malformed(format!(
            "{n} does not fit PostgreSQL's INTEGER"
        )))
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn map(pairs: &[(i64, i64)]) -> BTreeMap<i64, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn filter_drops_only_lower_writes() {
        let current = map(&[(0, -1), (1, 5), (2, 9)]);
        let requested = map(&[(0, 3), (1, 5), (2, 4)]);
        assert_eq!(filter_writes(&current, &requested), map(&[(0, 3), (1, 5)]));
    }

    #[test]
    fn ops_serialize_with_string_keys_in_numeric_order() {
        let op = MwwOp::ReadAll(Some(map(&[(10, 1), (2, -1)])));
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"f":"readAll","k":null,"v":{"2":-1,"10":1}}"#
        );
        assert_eq!(
            serde_json::to_string(&MwwOp::ReadAll(None)).unwrap(),
            r#"{"f":"readAll","k":null,"v":{}}"#
        );
    }

    #[test]
    fn completeness_needs_exactly_the_keys() {
        assert!(check_complete(&map(&[(0, 1), (1, 2)]), 2, "t").is_ok());
        assert!(check_complete(&map(&[(0, 1)]), 2, "t").is_err());
        assert!(check_complete(&map(&[(0, 1), (2, 2)]), 2, "t").is_err());
    }

    fn plain_mww(keys: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE mww (id TEXT PRIMARY KEY, k INTEGER UNIQUE, v INTEGER)")
            .unwrap();
        for k in 0..keys {
            conn.execute(
                "INSERT INTO mww (id, k, v) VALUES (?1, ?2, -1)",
                rusqlite::params![k.to_string(), k],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn read_write_read_on_sqlite() {
        let conn = plain_mww(4);
        let ops = vec![
            MwwOp::ReadAll(None),
            MwwOp::WriteSome(map(&[(1, 7), (2, 3)])),
        ];
        let out = apply_sqlite(&conn, ops, 4).unwrap();
        assert_eq!(
            out[0],
            MwwOp::ReadAll(Some(map(&[(0, -1), (1, -1), (2, -1), (3, -1)])))
        );
        assert_eq!(out[1], MwwOp::WriteSome(map(&[(1, 7), (2, 3)])));
        // A lower write is dropped and not stored; a later read in the txn sees the writes.
        let ops = vec![
            MwwOp::ReadAll(None),
            MwwOp::WriteSome(map(&[(1, 6), (3, 8)])),
            MwwOp::ReadAll(None),
        ];
        let out = apply_sqlite(&conn, ops, 4).unwrap();
        assert_eq!(out[1], MwwOp::WriteSome(map(&[(3, 8)])));
        assert_eq!(
            out[2],
            MwwOp::ReadAll(Some(map(&[(0, -1), (1, 7), (2, 3), (3, 8)])))
        );
        assert!(matches!(
            apply_sqlite(&conn, vec![MwwOp::ReadAll(None)], 5),
            Err(Error::IncompleteData { .. })
        ));
    }
}
