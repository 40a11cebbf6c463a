//! The stand-in's persistent state in PostgreSQL, in a schema of its own: ops, the processed
//! source position, write checkpoints, and the current rows of the source tables whose rows
//! are evaluated by the sync rules (`source_rows`: what decides which buckets a row is in and
//! what parameter rows it contributes). The current rows of the other tables (sent whole to
//! global buckets) are rebuilt from the ops at start-up, see
//! [`crate::replication::current_rows`].
//!
//! A batch of ops and the new processed position are written in **one transaction**, before
//! the replication slot is advanced: a crash at any point either keeps the batch (and its op
//! ids) or replays it from the slot, so no change is lost and no op id is reused.

use axum::body::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Client;

use crate::Error;
use crate::decode::{format_lsn, parse_lsn};
use crate::store::{Op, OpKind};

/// Quotes an identifier for SQL (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The source rows a batch changed, each row once with its last state: `(table key, id,
/// data)` to store, `(table key, id)` to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowChanges {
    /// Rows inserted or updated.
    pub upserted: Vec<(String, String, String)>,
    /// Rows deleted.
    pub deleted: Vec<(String, String)>,
}

impl RowChanges {
    /// Whether the batch changed no stored row.
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.deleted.is_empty()
    }
}

/// Table names inside the stand-in's schema.
#[derive(Debug, Clone)]
pub struct Storage {
    schema: String,
}

/// The persisted replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedState {
    /// Last op id handed out.
    pub last_op_id: u64,
    /// Source position up to which all transactions are in `ops`.
    pub processed_lsn: u64,
    /// The snapshot generation: bucket ids are `<generation>#<name>` (see
    /// [`crate::rules::BucketDefinition::versioned_name`]).
    pub generation: u64,
    /// Fingerprint of the sync rules the ops were built with; other rules need a new snapshot.
    pub rules_fingerprint: String,
    /// False while a snapshot of this generation is being taken (a crash then means: take
    /// it again).
    pub snapshot_done: bool,
}

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
                     checksum bigint NOT NULL, PRIMARY KEY (op_id));
                 CREATE TABLE IF NOT EXISTS {wc} (
                     user_key text PRIMARY KEY, id bigint NOT NULL, lsn pg_lsn NOT NULL);
                 ALTER TABLE {state} ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 1;
                 ALTER TABLE {state} ADD COLUMN IF NOT EXISTS rules_fingerprint text NOT NULL DEFAULT '';
                 ALTER TABLE {state} ADD COLUMN IF NOT EXISTS snapshot_done boolean NOT NULL DEFAULT true;
                 ALTER TABLE {ops} ADD COLUMN IF NOT EXISTS target_op bigint;
                 CREATE TABLE IF NOT EXISTS {rows} (
                     table_key text NOT NULL, id text NOT NULL, data text NOT NULL,
                     PRIMARY KEY (table_key, id));",
                s = self.schema,
                state = self.t("state"),
                ops = self.t("ops"),
                wc = self.t("write_checkpoints"),
                rows = self.t("source_rows"),
            ))
            .await?;
        Ok(())
    }

    /// The persisted state, or `None` before the initial snapshot was stored.
    pub async fn state(&self, client: &Client) -> Result<Option<PersistedState>, Error> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT last_op_id, processed_lsn::text, generation, rules_fingerprint, \
                     snapshot_done FROM {}",
                    self.t("state")
                ),
                &[],
            )
            .await?;
        row.map(|r| {
            Ok(PersistedState {
                last_op_id: r.get::<_, i64>(0) as u64,
                processed_lsn: parse_lsn(r.get::<_, &str>(1))?,
                generation: r.get::<_, i64>(2) as u64,
                rules_fingerprint: r.get(3),
                snapshot_done: r.get(4),
            })
        })
        .transpose()
    }

    /// Records that a snapshot of `state.generation` is starting (`snapshot_done` false), so
    /// that a crash before [`Storage::persist`] with `replace_all` takes it again. Write
    /// checkpoints and the op id counter are kept, so ids and generations stay monotonic.
    pub async fn begin_snapshot(
        &self,
        client: &mut Client,
        state: &PersistedState,
    ) -> Result<(), Error> {
        let pending = PersistedState {
            snapshot_done: false,
            ..state.clone()
        };
        self.persist(client, None, &RowChanges::default(), &pending, false)
            .await
    }

    /// Writes ops (a payload from [`encode_ops`], loaded with `COPY ... BINARY`), the changed
    /// source rows and the new state in one transaction; with `replace_all` (a snapshot) the
    /// old ops and source rows go in the same transaction.
    pub async fn persist(
        &self,
        client: &mut Client,
        copy_payload: Option<Bytes>,
        rows: &RowChanges,
        state: &PersistedState,
        replace_all: bool,
    ) -> Result<(), Error> {
        let tx = client.transaction().await?;
        if replace_all {
            tx.batch_execute(&format!(
                "TRUNCATE {}, {}",
                self.t("ops"),
                self.t("source_rows")
            ))
            .await?;
        }
        if let Some(payload) = copy_payload {
            self.copy_ops(&tx, payload).await?;
        }
        if !rows.deleted.is_empty() {
            let (tables, ids): (Vec<&str>, Vec<&str>) = rows
                .deleted
                .iter()
                .map(|(t, i)| (t.as_str(), i.as_str()))
                .unzip();
            tx.execute(
                &format!(
                    "DELETE FROM {} r USING unnest($1::text[], $2::text[]) AS d(t, i) \
                     WHERE r.table_key = d.t AND r.id = d.i",
                    self.t("source_rows")
                ),
                &[&tables, &ids],
            )
            .await?;
        }
        if !rows.upserted.is_empty() {
            let mut tables = Vec::with_capacity(rows.upserted.len());
            let mut ids = Vec::with_capacity(rows.upserted.len());
            let mut data = Vec::with_capacity(rows.upserted.len());
            for (t, i, d) in &rows.upserted {
                tables.push(t.as_str());
                ids.push(i.as_str());
                data.push(d.as_str());
            }
            tx.execute(
                &format!(
                    "INSERT INTO {} (table_key, id, data) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
                     ON CONFLICT (table_key, id) DO UPDATE SET data = excluded.data",
                    self.t("source_rows")
                ),
                &[&tables, &ids, &data],
            )
            .await?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (last_op_id, processed_lsn, generation, rules_fingerprint, \
                     snapshot_done) \
                 VALUES ($1, $2::text::pg_lsn, $3, $4, $5) \
                 ON CONFLICT (singleton) DO UPDATE \
                 SET last_op_id = excluded.last_op_id, processed_lsn = excluded.processed_lsn, \
                     generation = excluded.generation, rules_fingerprint = excluded.rules_fingerprint, \
                     snapshot_done = excluded.snapshot_done",
                self.t("state")
            ),
            &[
                &(state.last_op_id as i64),
                &format_lsn(state.processed_lsn),
                &(state.generation as i64),
                &state.rules_fingerprint,
                &state.snapshot_done,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn copy_ops(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        payload: Bytes,
    ) -> Result<(), Error> {
        let sink = tx
            .copy_in(&format!(
                "COPY {} (op_id, bucket, op, object_type, object_id, data, checksum, target_op) \
                 FROM STDIN BINARY",
                self.t("ops")
            ))
            .await?;
        let mut sink = std::pin::pin!(sink);
        sink.send(payload).await?;
        sink.as_mut().finish().await?;
        Ok(())
    }

    /// Replaces the ops of `bucket` up to `upto` by their compacted form (a payload from
    /// [`encode_ops`]) in one transaction.
    pub async fn replace_compacted(
        &self,
        client: &mut Client,
        bucket: &str,
        upto: u64,
        payload: Bytes,
    ) -> Result<(), Error> {
        let tx = client.transaction().await?;
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE bucket = $1 AND op_id <= $2",
                self.t("ops")
            ),
            &[&bucket, &(upto as i64)],
        )
        .await?;
        self.copy_ops(&tx, payload).await?;
        tx.commit().await?;
        Ok(())
    }

    /// All ops in op id order.
    pub async fn load_ops(&self, client: &Client) -> Result<Vec<Op>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT op_id, bucket, op, object_type, object_id, data, checksum, target_op \
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
                    target_op: r.get::<_, Option<i64>>(7).map(|t| t as u64),
                })
            })
            .collect()
    }

    /// Every stored source row: `(table key, id, data)`.
    pub async fn load_source_rows(
        &self,
        client: &Client,
    ) -> Result<Vec<(String, String, String)>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT table_key, id, data FROM {} ORDER BY table_key, id",
                    self.t("source_rows")
                ),
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
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

impl Storage {
    /// Checkpoint-request mode: stores `requested` for `user_key` if it is higher than the
    /// stored id (recording the current WAL position), emits the source marker, and returns
    /// the stored `(id, lsn)` afterwards, i.e. `max(stored, requested)`.
    pub async fn request_checkpoint(
        &self,
        client: &Client,
        user_key: &str,
        requested: u64,
    ) -> Result<(u64, u64), Error> {
        client
            .execute(
                &format!(
                    "INSERT INTO {wc} AS w (user_key, id, lsn) VALUES ($1, $2, pg_current_wal_lsn()) \
                     ON CONFLICT (user_key) DO UPDATE SET id = excluded.id, lsn = excluded.lsn \
                     WHERE w.id < excluded.id",
                    wc = self.t("write_checkpoints")
                ),
                &[&user_key, &(requested as i64)],
            )
            .await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT id, lsn::text FROM {} WHERE user_key = $1",
                    self.t("write_checkpoints")
                ),
                &[&user_key],
            )
            .await?;
        client
            .execute(
                "SELECT pg_logical_emit_message(false, 'powersync', 'ping')",
                &[],
            )
            .await?;
        Ok((
            row.get::<_, i64>(0) as u64,
            parse_lsn(row.get::<_, &str>(1))?,
        ))
    }
}

/// Encodes ops as a complete `COPY ... BINARY` payload for [`Storage::persist`].
pub fn encode_ops(ops: &[Op]) -> Bytes {
    let mut buf = Vec::with_capacity(32 + ops.len() * 128);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for op in ops {
        encode_op_row(&mut buf, op);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
    Bytes::from(buf)
}

/// Appends one row of `COPY ... BINARY` for the ops table: field count, then each field as
/// length + bytes (length -1 for NULL), in the column order of the COPY statement.
fn encode_op_row(buf: &mut Vec<u8>, op: &Op) {
    fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    buf.extend_from_slice(&8i16.to_be_bytes());
    field(buf, &(op.op_id as i64).to_be_bytes());
    field(buf, op.bucket.as_bytes());
    field(buf, op.kind.as_str().as_bytes());
    field(buf, op.object_type.as_bytes());
    field(buf, op.object_id.as_bytes());
    match &op.data {
        Some(data) => field(buf, data.as_bytes()),
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    field(buf, &i64::from(op.checksum).to_be_bytes());
    match op.target_op {
        Some(target) => field(buf, &(target as i64).to_be_bytes()),
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
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
