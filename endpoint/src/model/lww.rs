//! The seed era's `lww` model: Jepsen list-append over text.
//!
//! Table `lww(id TEXT, k INTEGER, v TEXT)` with keys `0..KEY_COUNT` seeded with `v = ''`. An
//! append concatenates `' ' || value` (so the first append leaves a leading space: `'' -> ' 7'`);
//! a read of `''` is nil, any other value is read as the EDN vector `"[" + trim_start(v) + "]"`.
//!
//! Any other non-negative key (Elle's default generator, used from jepsen-powersync 47f845d on,
//! retires keys and moves on to ever larger ids) has no row until its first append, which
//! inserts `(key_row_id(k), k, ' ' || value)` in the same transaction; a read of such a key that
//! was never written is nil. The row id is derived from the key, so every client creates the
//! same row, and the upload's `INSERT … ON CONFLICT (id) DO UPDATE` writes it once in PostgreSQL.
//! This module holds all of the model's SQL; every statement is parameterized. The functions take
//! a plain [`rusqlite::Connection`] (a [`rusqlite::Transaction`] derefs to one), so any store that
//! reaches SQLite through rusqlite (plain SQLite, or PowerSync's views) runs the same SQL.

use powersync::schema::{Column, Index, Schema, Table};
use powersync::{CrudEntry, UpdateType};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::model::statement::Statement;
use crate::model::{Upload, invalid_entry};
use crate::pg::PgFailure;

/// Number of seeded keys: `0..KEY_COUNT`. Larger keys get their row on their first append.
pub const KEY_COUNT: i64 = 100;

/// The largest list-append key: the seed's PostgreSQL table holds keys in `lww.k INTEGER`
/// (32-bit), so a larger key could never be uploaded; it is refused with a 400 instead of
/// failing the upload later. Elle's generator never comes near it.
pub const MAX_KEY: i64 = i32::MAX as i64;

/// One micro-operation of a list-append transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroOp {
    /// `[:r k v]`: read key `k`; `value` is filled by the store with the EDN vector text
    /// (`"[1 4 6]"`), or stays `None` when the key holds nothing.
    Read {
        /// The key.
        key: i64,
        /// The EDN vector text read, or `None` for nil.
        value: Option<String>,
    },
    /// `[:append k v]`: append integer `value` to key `k`'s list.
    Append {
        /// The key.
        key: i64,
        /// The integer appended.
        value: i64,
    },
}

impl Serialize for MicroOp {
    /// Serializes as the wire form `{"f":"r"|"append","k":k,"v":v}`, fields in that order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        match self {
            MicroOp::Read { key, value } => {
                map.serialize_entry("f", "r")?;
                map.serialize_entry("k", key)?;
                map.serialize_entry("v", value)?;
            }
            MicroOp::Append { key, value } => {
                map.serialize_entry("f", "append")?;
                map.serialize_entry("k", key)?;
                map.serialize_entry("v", value)?;
            }
        }
        map.end()
    }
}

/// One row of the `lww` table, as `GET /db/list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LwwRow {
    /// Row id (a UUID text).
    pub id: String,
    /// The key.
    pub k: i64,
    /// The stored list text, e.g. `" 1 4 6"`.
    pub v: String,
}

/// The seed's PowerSync schema: `lww(k INTEGER, v TEXT)` with index `lww_k`, local-only in
/// `powersync-local`.
pub fn schema(local_only: bool) -> Schema {
    let table = Table::new("lww", vec![Column::integer("k"), Column::text("v")])
        .index(Index::new("lww_k", ["k"]));
    Schema::new(vec![if local_only {
        table.local_only()
    } else {
        table
    }])
}

fn field<'a>(entry: &'a CrudEntry, name: &str) -> Option<&'a Value> {
    entry.data.as_ref().and_then(|d| d.get(name))
}

/// Uploads one CRUD entry to PostgreSQL with the seed's SQL, sent as `statement` says. With
/// `exactly_one`, the statement must affect exactly one row (the seed's `RETURNING * ...
/// .single`); otherwise it is fatal.
pub async fn upload_entry(
    client: &impl GenericClient,
    entry: &CrudEntry,
    exactly_one: bool,
    statement: Statement,
) -> Result<(), PgFailure> {
    if entry.table != "lww" {
        return Err(invalid_entry(entry, "only the lww table is synced"));
    }
    let rows = match entry.op {
        UpdateType::Put => {
            let k = field(entry, "k")
                .and_then(Value::as_i64)
                .ok_or_else(|| invalid_entry(entry, "no integer k"))?;
            let k =
                i32::try_from(k).map_err(|_| invalid_entry(entry, "k is out of INTEGER range"))?;
            let v = field(entry, "v")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A key created by a client's first append may be created by several clients (the
            // same id, see `key_row_id`): the last upload's list wins, as for a PATCH.
            statement
                .execute(
                    client,
                    "INSERT INTO lww (id, k, v) VALUES (CAST($1::text AS uuid), $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET k = EXCLUDED.k, v = EXCLUDED.v",
                    &[(&entry.id, Type::TEXT), (&k, Type::INT4), (&v, Type::TEXT)],
                )
                .await?
        }
        UpdateType::Patch => {
            let Some(v) = field(entry, "v") else {
                return Ok(());
            };
            let v = v
                .as_str()
                .ok_or_else(|| invalid_entry(entry, "v is not text"))?;
            statement
                .execute(
                    client,
                    "UPDATE lww SET v = $1 WHERE id = CAST($2::text AS uuid)",
                    &[(&v, Type::TEXT), (&entry.id, Type::TEXT)],
                )
                .await?
        }
        UpdateType::Delete => {
            statement
                .execute(
                    client,
                    "DELETE FROM lww WHERE id = CAST($1::text AS uuid)",
                    &[(&entry.id, Type::TEXT)],
                )
                .await?
        }
    };
    if exactly_one && rows != 1 {
        return Err(invalid_entry(
            entry,
            &format!("expected exactly one affected row, got {rows}"),
        ));
    }
    Ok(())
}

/// Sets `v` of many rows in one statement: `$1` the row ids, `$2` their values.
const UPDATE_MANY: &str = "UPDATE lww SET v = u.v FROM unnest($1::text[], $2::text[]) AS u(id, v) \
     WHERE lww.id = CAST(u.id AS uuid)";

/// The statements that upload `entries` in order inside the caller's transaction, each row
/// affected exactly once (as [`upload_entry`] with `exactly_one`): every run of PATCHes that set
/// `v` goes as one multi-row UPDATE with the last `v` of each row id in the run (PATCHes of
/// different rows commute, a later PATCH of a row overwrites an earlier one, so the rows end as
/// after running them one by one); any other entry as [`upload_entry`].
pub fn upload_entries<'a, C: GenericClient + Sync>(
    client: &'a C,
    entries: Vec<&'a CrudEntry>,
) -> Vec<Upload<'a>> {
    let mut uploads = Vec::new();
    let mut run = Vec::new();
    for entry in entries {
        let sets_v = entry.table == "lww"
            && entry.op == UpdateType::Patch
            && field(entry, "v").is_some_and(Value::is_string);
        if sets_v {
            run.push(entry);
            continue;
        }
        uploads.extend(update_many(client, std::mem::take(&mut run)));
        uploads.push(Box::pin(upload_entry(
            client,
            entry,
            true,
            Statement::Typed,
        )));
    }
    uploads.extend(update_many(client, run));
    uploads
}

/// One statement for a run of PATCHes that set `v` (see [`upload_entries`]); none for none.
fn update_many<'a, C: GenericClient + Sync>(
    client: &'a C,
    run: Vec<&'a CrudEntry>,
) -> Option<Upload<'a>> {
    let first = *run.first()?;
    if run.len() == 1 {
        return Some(Box::pin(upload_entry(
            client,
            first,
            true,
            Statement::Typed,
        )));
    }
    let mut rows: Vec<(&str, &str)> = Vec::with_capacity(run.len());
    let mut index: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(run.len());
    for entry in run {
        let v = field(entry, "v")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match index.entry(entry.id.as_str()) {
            std::collections::hash_map::Entry::Occupied(at) => rows[*at.get()].1 = v,
            std::collections::hash_map::Entry::Vacant(at) => {
                at.insert(rows.len());
                rows.push((entry.id.as_str(), v));
            }
        }
    }
    let (ids, values): (Vec<&str>, Vec<&str>) = rows.into_iter().unzip();
    Some(Box::pin(async move {
        let updated = client
            .execute_typed(
                UPDATE_MANY,
                &[(&ids, Type::TEXT_ARRAY), (&values, Type::TEXT_ARRAY)],
            )
            .await?;
        if updated != ids.len() as u64 {
            return Err(invalid_entry(
                first,
                &format!(
                    "expected one affected row for each of {} row ids, got {updated}",
                    ids.len()
                ),
            ));
        }
        Ok(())
    }))
}

/// Creates the plain-SQLite `lww` table if needed and seeds the keys that are missing, leaving
/// existing rows untouched (so a restart keeps every append). For stores without PowerSync.
pub fn create_and_seed(conn: &Connection) -> Result<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS lww (
             id TEXT NOT NULL PRIMARY KEY,
             k INTEGER NOT NULL UNIQUE,
             v TEXT NOT NULL
         ) STRICT",
        [],
    )?;
    seed_missing_keys(conn)
}

/// Inserts `(random uuid, k, '')` for every key in `0..KEY_COUNT` that has no row yet. Uses only
/// `SELECT` and `INSERT`, so it works on the plain table and on a PowerSync `lww` view alike
/// (e.g. a local-only one); run it inside a write transaction.
pub fn seed_missing_keys(conn: &Connection) -> Result<()> {
    // A random version-4 UUID text made by SQLite, like the Postgres side's gen_random_uuid().
    let mut seed = conn.prepare_cached(
        "INSERT INTO lww (id, k, v)
         SELECT substr(u, 1, 8) || '-' || substr(u, 9, 4) || '-4' || substr(u, 14, 3) || '-'
                || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(u, 18, 3) || '-'
                || substr(u, 21, 12),
                ?1, ''
         FROM (SELECT lower(hex(randomblob(16))) AS u)
         WHERE NOT EXISTS (SELECT 1 FROM lww WHERE k = ?1)",
    )?;
    for k in 0..KEY_COUNT {
        seed.execute(params![k])?;
    }
    Ok(())
}

/// The row id of a key created by its first append (`k >= KEY_COUNT`): a UUID-shaped text
/// derived from the key alone, so that every client creates the same row.
pub fn key_row_id(key: i64) -> String {
    let k = key.cast_unsigned();
    format!(
        "6c777761-0000-4000-8{:03x}-{:012x}",
        (k >> 48) & 0xfff,
        k & 0xffff_ffff_ffff
    )
}

/// Runs the micro-ops in order on `conn` (the caller holds the write transaction), filling in
/// reads; a read sees the earlier appends of the same transaction. A key `>= KEY_COUNT` without
/// a row reads as nil and gets its row on its first append; a seeded key without a row is an
/// [`Error::KeyNotPresent`] (the store lost it, or has not synced yet), and the caller must roll
/// back.
pub fn apply(conn: &Connection, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>> {
    let mut read = conn.prepare_cached("SELECT v FROM lww WHERE k = ?1")?;
    let mut append = conn.prepare_cached("UPDATE lww SET v = lww.v || ' ' || ?1 WHERE k = ?2")?;
    let mut create =
        conn.prepare_cached("INSERT INTO lww (id, k, v) VALUES (?1, ?2, ' ' || ?3)")?;
    let missing = |key: i64| {
        if key >= KEY_COUNT {
            Ok(())
        } else {
            Err(Error::KeyNotPresent(key))
        }
    };
    ops.into_iter()
        .map(|op| match op {
            MicroOp::Read { key, .. } => {
                let stored: Option<String> =
                    read.query_row(params![key], |row| row.get(0)).optional()?;
                let value = match stored {
                    Some(stored) => read_value(&stored),
                    None => missing(key).map(|()| None)?,
                };
                Ok(MicroOp::Read { key, value })
            }
            MicroOp::Append { key, value } => {
                // Look first: the UPDATE's change count cannot tell whether the row exists (on a
                // PowerSync view the INSTEAD OF trigger does the write and SQLite reports 0).
                let exists = read.query_row(params![key], |_| Ok(())).optional()?;
                if exists.is_some() {
                    append.execute(params![value, key])?;
                } else {
                    missing(key)?;
                    create.execute(params![key_row_id(key), key, value])?;
                }
                Ok(MicroOp::Append { key, value })
            }
        })
        .collect()
}

/// All rows, ordered by key.
pub fn list(conn: &Connection) -> Result<Vec<LwwRow>> {
    let mut stmt = conn.prepare_cached("SELECT id, k, v FROM lww ORDER BY k")?;
    let rows = stmt.query_map([], |row| {
        Ok(LwwRow {
            id: row.get(0)?,
            k: row.get(1)?,
            v: row.get(2)?,
        })
    })?;
    rows.collect::<rusqlite::Result<_>>().map_err(Error::from)
}

/// The read value of a stored list text: `''` is nil, anything else the EDN vector of its
/// space-separated elements (the leading space of the first append trimmed away).
pub fn read_value(stored: &str) -> Option<String> {
    if stored.is_empty() {
        None
    } else {
        Some(format!("[{}]", stored.trim_start()))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn seeded() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        create_and_seed(&conn).unwrap();
        conn
    }

    #[test]
    fn read_value_follows_the_leading_space_encoding() {
        assert_eq!(read_value(""), None);
        assert_eq!(read_value(" 7").as_deref(), Some("[7]"));
        assert_eq!(read_value(" 1 4 6").as_deref(), Some("[1 4 6]"));
    }

    #[test]
    fn seeding_creates_every_key_once_and_keeps_existing_rows() {
        let conn = seeded();
        apply(&conn, vec![MicroOp::Append { key: 5, value: 1 }]).unwrap();
        create_and_seed(&conn).unwrap();
        let rows = list(&conn).unwrap();
        assert_eq!(rows.len(), KEY_COUNT as usize);
        assert_eq!(
            rows.iter().map(|r| r.k).collect::<Vec<_>>(),
            (0..KEY_COUNT).collect::<Vec<_>>()
        );
        assert_eq!(rows[5].v, " 1");
        let ids: std::collections::HashSet<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "ids are distinct");
        assert!(
            rows.iter()
                .all(|r| r.id.len() == 36 && r.id.as_bytes()[14] == b'4')
        );
    }

    #[test]
    fn reads_see_earlier_appends_of_the_same_transaction() {
        let conn = seeded();
        let out = apply(
            &conn,
            vec![
                MicroOp::Read {
                    key: 3,
                    value: None,
                },
                MicroOp::Append { key: 3, value: 7 },
                MicroOp::Append { key: 3, value: -2 },
                MicroOp::Read {
                    key: 3,
                    value: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            out[0],
            MicroOp::Read {
                key: 3,
                value: None
            }
        );
        assert_eq!(
            out[3],
            MicroOp::Read {
                key: 3,
                value: Some("[7 -2]".into())
            }
        );
        assert_eq!(list(&conn).unwrap()[3].v, " 7 -2");
    }

    #[test]
    fn a_seeded_key_without_a_row_is_an_error() {
        let conn = seeded();
        conn.execute("DELETE FROM lww WHERE k = 5", []).unwrap();
        let err = apply(&conn, vec![MicroOp::Append { key: 5, value: 1 }]).unwrap_err();
        assert!(matches!(err, Error::KeyNotPresent(5)));
        let err = apply(
            &conn,
            vec![MicroOp::Read {
                key: -1,
                value: None,
            }],
        )
        .unwrap_err();
        assert!(matches!(err, Error::KeyNotPresent(-1)));
    }

    #[test]
    fn keys_beyond_the_seeded_ones_read_nil_and_are_created_by_their_first_append() {
        let conn = seeded();
        let big = i64::MAX;
        let out = apply(
            &conn,
            vec![
                MicroOp::Read {
                    key: 100,
                    value: None,
                },
                MicroOp::Append { key: 100, value: 7 },
                MicroOp::Append { key: big, value: 1 },
                MicroOp::Append { key: 100, value: 8 },
                MicroOp::Read {
                    key: 100,
                    value: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            out[0],
            MicroOp::Read {
                key: 100,
                value: None
            }
        );
        assert_eq!(
            out[4],
            MicroOp::Read {
                key: 100,
                value: Some("[7 8]".into())
            }
        );
        let rows = list(&conn).unwrap();
        assert_eq!(rows.len(), KEY_COUNT as usize + 2);
        let row = rows.iter().find(|r| r.k == 100).unwrap();
        assert_eq!(
            (row.id.as_str(), row.v.as_str()),
            (key_row_id(100).as_str(), " 7 8")
        );
        assert_ne!(key_row_id(100), key_row_id(big));
        assert_eq!(key_row_id(big).len(), 36);
        // A failing transaction keeps none of its created keys.
        let err = apply(
            &conn,
            vec![
                MicroOp::Append { key: 500, value: 1 },
                MicroOp::Read {
                    key: -1,
                    value: None,
                },
            ],
        );
        assert!(err.is_err());
    }

    #[test]
    fn micro_ops_serialize_in_wire_order() {
        let ops = vec![
            MicroOp::Read {
                key: 3,
                value: Some("[1 4]".into()),
            },
            MicroOp::Read {
                key: 4,
                value: None,
            },
            MicroOp::Append { key: 3, value: 7 },
        ];
        assert_eq!(
            serde_json::to_string(&ops).unwrap(),
            r#"[{"f":"r","k":3,"v":"[1 4]"},{"f":"r","k":4,"v":null},{"f":"append","k":3,"v":7}]"#
        );
    }
}

/// The same SQL on a real PowerSync database (the vendored default core), where `lww` is a view
/// with CRUD triggers: what the PowerSync modes will run.
#[cfg(test)]
mod on_powersync_views {
    use powersync::{DatabaseOptions, PowerSyncDatabase, UpdateType};

    use super::*;

    /// The test's error: the endpoint's, or the wrapper's.
    #[derive(Debug)]
    struct Failure(String);

    impl From<powersync::Error> for Failure {
        fn from(e: powersync::Error) -> Self {
            Self(e.to_string())
        }
    }

    impl From<Error> for Failure {
        fn from(e: Error) -> Self {
            Self(e.to_string())
        }
    }

    async fn open(dir: &tempfile::TempDir, local_only: bool) -> PowerSyncDatabase {
        PowerSyncDatabase::open(
            dir.path().join("ps.sqlite3"),
            &schema(local_only),
            DatabaseOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e} (run vendor/fetch-cores --default)"))
    }

    async fn txn(db: &PowerSyncDatabase, ops: Vec<MicroOp>) -> Result<Vec<MicroOp>, Failure> {
        db.write_transaction(move |tx| Ok(apply(tx, ops)?)).await
    }

    #[tokio::test]
    async fn seed_apply_and_list_work_on_a_local_only_view() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, true).await;
        db.write_transaction(|tx| Ok::<_, Failure>(seed_missing_keys(tx)?))
            .await
            .unwrap();
        db.write_transaction(|tx| Ok::<_, Failure>(seed_missing_keys(tx)?))
            .await
            .unwrap();
        let out = txn(
            &db,
            vec![
                MicroOp::Append { key: 3, value: 7 },
                MicroOp::Read {
                    key: 3,
                    value: None,
                },
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            out[1],
            MicroOp::Read {
                key: 3,
                value: Some("[7]".into())
            }
        );
        let rows = db
            .read_transaction(|tx| Ok::<_, Failure>(list(tx)?))
            .await
            .unwrap();
        assert_eq!(rows.len(), KEY_COUNT as usize);
        assert_eq!(rows[3].v, " 7");
        assert_eq!(
            db.upload_queue_stats().await.unwrap().count,
            0,
            "local-only: nothing to upload"
        );
        db.close().await.unwrap();
    }

    #[tokio::test]
    async fn appends_on_a_synced_view_queue_one_patch_with_the_whole_list() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, false).await;
        // Before the first sync there are no rows: the transaction fails and keeps nothing.
        let err = txn(
            &db,
            vec![MicroOp::Read {
                key: 0,
                value: None,
            }],
        )
        .await
        .unwrap_err();
        assert!(err.0.contains("key 0 has no row"), "{err:?}");

        db.write_transaction(|tx| Ok::<_, Failure>(seed_missing_keys(tx)?))
            .await
            .unwrap();
        let seeded = db.upload_queue_stats().await.unwrap().count;
        assert_eq!(seeded, KEY_COUNT as u64, "one PUT per seeded row");
        txn(
            &db,
            vec![
                MicroOp::Append { key: 5, value: 1 },
                MicroOp::Append { key: 5, value: 2 },
            ],
        )
        .await
        .unwrap();
        let batch = db.crud_batch(1000).await.unwrap().unwrap();
        let patches: Vec<_> = batch
            .crud
            .iter()
            .filter(|e| e.op == UpdateType::Patch)
            .collect();
        assert_eq!(patches.len(), 2, "{patches:?}");
        assert_eq!(patches[1].data.as_ref().unwrap()["v"], " 1 2");
        db.close().await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: UpdateType, id: &str, data: Value) -> CrudEntry {
        CrudEntry {
            client_id: 0,
            transaction_id: Some(1),
            op,
            table: "lww".into(),
            id: id.into(),
            data: data.as_object().cloned(),
            old: None,
            metadata: None,
        }
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const C: &str = "00000000-0000-4000-8000-00000000000c";
    const D: &str = "00000000-0000-4000-8000-00000000000d";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merged_patches_leave_the_rows_as_uploading_one_by_one() {
        let pg =
            testkit::TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let mut client = pg.client().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE lww (id uuid PRIMARY KEY, k INTEGER NOT NULL UNIQUE, v TEXT NOT NULL);
                 INSERT INTO lww VALUES ('{A}', 1, ''), ('{B}', 2, '');"
            ))
            .await
            .unwrap();
        let patch = |id, v: &str| entry(UpdateType::Patch, id, serde_json::json!({ "v": v }));
        let entries = [
            patch(A, " 1"),
            patch(B, " 2"),
            patch(A, " 1 3"),
            entry(UpdateType::Put, C, serde_json::json!({"k": 3, "v": " 4"})),
            patch(C, " 4 5"),
            patch(B, " 2 6"),
        ];
        let tx = client.transaction().await.unwrap();
        let uploads = upload_entries(&tx, entries.iter().collect());
        assert_eq!(uploads.len(), 3, "A B A merged, the PUT alone, C B merged");
        for upload in uploads {
            upload.await.unwrap();
        }
        tx.commit().await.unwrap();
        let rows: Vec<(String, String)> = client
            .query("SELECT id::text, v FROM lww ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let expected = [(A, " 1 3"), (B, " 2 6"), (C, " 4 5")].map(|(a, b)| (a.into(), b.into()));
        assert_eq!(rows, expected);

        // A run that patches a row PostgreSQL does not have fails as one such PATCH would.
        let missing = [patch(A, " 7"), patch(D, " 8")];
        let uploads = upload_entries(&client, missing.iter().collect());
        assert_eq!(uploads.len(), 1);
        for upload in uploads {
            let e = upload.await.expect_err("a missing row");
            assert!(
                matches!(e, PgFailure::Data(_)),
                "{e:?}: the upload is wrong, not PostgreSQL"
            );
        }
    }
}
