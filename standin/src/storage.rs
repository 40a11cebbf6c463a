//! The stand-in's persistent state in PostgreSQL, in a schema of its own: ops, the rows
//! currently in buckets, the processed source position and write checkpoints.
//!
//! A batch of ops and the new processed position are written in **one transaction**, before
//! the replication slot is advanced: a crash at any point either keeps the batch (and its op
//! ids) or replays it from the slot, so no change is lost and no op id is reused.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::Error;
use crate::decode::{format_lsn, parse_lsn};
use crate::store::{Op, OpKind};

/// Quotes an identifier for SQL (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Table names inside the stand-in's schema.
#[derive(Debug, Clone)]
pub struct Storage {
    schema: String,
}

/// The persisted replication state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistedState {
    /// Last op id handed out.
    pub last_op_id: u64,
    /// Source position up to which all transactions are in `ops`.
    pub processed_lsn: u64,
}

/// A row's current data per `(source table key, row id)`; `None` = row removed.
pub type RowChanges = HashMap<(String, String), Option<String>>;

impl Storage {
    /// Storage in schema `schema`.
    pub fn new(schema: &str) -> Self {
        Storage {
            schema: quote_ident(schema),
        }
    }

    fn t(&self, table: &str) -> String {
        format!("{}.{}", self.schema, table)
    }

    /// Creates the schema and tables if missing.
    pub async fn create(&self, client: &Client) -> Result<(), Error> {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {state} (
                     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                     last_op_id bigint NOT NULL,
                     processed_lsn pg_lsn NOT NULL);
                 CREATE TABLE IF NOT EXISTS {ops} (
                     op_id bigint NOT NULL, bucket text NOT NULL, op text NOT NULL,
                     object_type text NOT NULL, object_id text NOT NULL, data text,
                     checksum bigint NOT NULL, PRIMARY KEY (bucket, op_id));
                 CREATE TABLE IF NOT EXISTS {rows} (
                     source_table text NOT NULL, row_id text NOT NULL, data text NOT NULL,
                     PRIMARY KEY (source_table, row_id));
                 CREATE TABLE IF NOT EXISTS {wc} (
                     user_key text PRIMARY KEY, id bigint NOT NULL, lsn pg_lsn NOT NULL);",
                s = self.schema,
                state = self.t("state"),
                ops = self.t("ops"),
                rows = self.t("current_rows"),
                wc = self.t("write_checkpoints"),
            ))
            .await?;
        Ok(())
    }

    /// The persisted state, or `None` before the initial snapshot was stored.
    pub async fn state(&self, client: &Client) -> Result<Option<PersistedState>, Error> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT last_op_id, processed_lsn::text FROM {}",
                    self.t("state")
                ),
                &[],
            )
            .await?;
        row.map(|r| {
            Ok(PersistedState {
                last_op_id: r.get::<_, i64>(0) as u64,
                processed_lsn: parse_lsn(r.get::<_, &str>(1))?,
            })
        })
        .transpose()
    }

    /// Forgets ops and rows (before a fresh initial snapshot). Write checkpoints and the op id
    /// counter are kept, so ids stay monotonic.
    pub async fn clear_for_snapshot(&self, client: &Client) -> Result<(), Error> {
        client
            .batch_execute(&format!(
                "TRUNCATE {}, {}",
                self.t("ops"),
                self.t("current_rows")
            ))
            .await?;
        Ok(())
    }

    /// Writes ops, row changes and the new state in one transaction.
    pub async fn persist(
        &self,
        client: &mut Client,
        ops: &[Op],
        rows: &RowChanges,
        state: PersistedState,
    ) -> Result<(), Error> {
        let tx = client.transaction().await?;
        if !ops.is_empty() {
            let ids: Vec<i64> = ops.iter().map(|o| o.op_id as i64).collect();
            let buckets: Vec<&str> = ops.iter().map(|o| o.bucket.as_str()).collect();
            let kinds: Vec<&str> = ops.iter().map(|o| o.kind.as_str()).collect();
            let types: Vec<&str> = ops.iter().map(|o| o.object_type.as_str()).collect();
            let oids: Vec<&str> = ops.iter().map(|o| o.object_id.as_str()).collect();
            let data: Vec<Option<&str>> = ops.iter().map(|o| o.data.as_deref()).collect();
            let sums: Vec<i64> = ops.iter().map(|o| i64::from(o.checksum)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {} SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], \
                     $4::text[], $5::text[], $6::text[], $7::int8[])",
                    self.t("ops")
                ),
                &[&ids, &buckets, &kinds, &types, &oids, &data, &sums],
            )
            .await?;
        }
        if !rows.is_empty() {
            let (mut del_t, mut del_i) = (Vec::new(), Vec::new());
            let (mut up_t, mut up_i, mut up_d) = (Vec::new(), Vec::new(), Vec::new());
            for ((table, id), data) in rows {
                match data {
                    None => {
                        del_t.push(table.as_str());
                        del_i.push(id.as_str());
                    }
                    Some(d) => {
                        up_t.push(table.as_str());
                        up_i.push(id.as_str());
                        up_d.push(d.as_str());
                    }
                }
            }
            tx.execute(
                &format!(
                    "DELETE FROM {} r USING unnest($1::text[], $2::text[]) AS d(t, i) \
                     WHERE r.source_table = d.t AND r.row_id = d.i",
                    self.t("current_rows")
                ),
                &[&del_t, &del_i],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO {} SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
                     ON CONFLICT (source_table, row_id) DO UPDATE SET data = excluded.data",
                    self.t("current_rows")
                ),
                &[&up_t, &up_i, &up_d],
            )
            .await?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (last_op_id, processed_lsn) VALUES ($1, $2::text::pg_lsn) \
                 ON CONFLICT (singleton) DO UPDATE \
                 SET last_op_id = excluded.last_op_id, processed_lsn = excluded.processed_lsn",
                self.t("state")
            ),
            &[&(state.last_op_id as i64), &format_lsn(state.processed_lsn)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// All ops in op id order.
    pub async fn load_ops(&self, client: &Client) -> Result<Vec<Op>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT op_id, bucket, op, object_type, object_id, data, checksum \
                     FROM {} ORDER BY op_id, bucket",
                    self.t("ops")
                ),
                &[],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let kind: &str = r.get(2);
                Ok(Op {
                    op_id: r.get::<_, i64>(0) as u64,
                    bucket: r.get(1),
                    kind: OpKind::parse(kind)
                        .ok_or_else(|| Error::Source(format!("stored op kind {kind:?}")))?,
                    object_type: r.get(3),
                    object_id: r.get(4),
                    data: r.get(5),
                    checksum: r.get::<_, i64>(6) as u32,
                })
            })
            .collect()
    }

    /// The current rows per source table key.
    pub async fn load_rows(
        &self,
        client: &Client,
    ) -> Result<HashMap<String, HashMap<String, String>>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT source_table, row_id, data FROM {}",
                    self.t("current_rows")
                ),
                &[],
            )
            .await?;
        let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
        for r in rows {
            out.entry(r.get(0)).or_default().insert(r.get(1), r.get(2));
        }
        Ok(out)
    }

    /// All write checkpoints: `(user key, id, lsn)`.
    pub async fn load_write_checkpoints(
        &self,
        client: &Client,
    ) -> Result<Vec<(String, u64, u64)>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT user_key, id, lsn::text FROM {}",
                    self.t("write_checkpoints")
                ),
                &[],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.get(0),
                    r.get::<_, i64>(1) as u64,
                    parse_lsn(r.get::<_, &str>(2))?,
                ))
            })
            .collect()
    }

    /// Allocates the next write checkpoint id of `user_key` at the current source WAL
    /// position, then emits a logical message so replication moves past it even on an idle
    /// database. Returns `(id, lsn)`.
    pub async fn next_write_checkpoint(
        &self,
        client: &Client,
        user_key: &str,
    ) -> Result<(u64, u64), Error> {
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {wc} AS w (user_key, id, lsn) VALUES ($1, 1, pg_current_wal_lsn()) \
                     ON CONFLICT (user_key) DO UPDATE SET id = w.id + 1, lsn = pg_current_wal_lsn() \
                     RETURNING id, lsn::text",
                    wc = self.t("write_checkpoints")
                ),
                &[&user_key],
            )
            .await?;
        let id = row.get::<_, i64>(0) as u64;
        let lsn = parse_lsn(row.get::<_, &str>(1))?;
        client
            .execute(
                "SELECT pg_logical_emit_message(false, 'powersync', 'ping')",
                &[],
            )
            .await?;
        Ok((id, lsn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
