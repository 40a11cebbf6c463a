//! The CRUD upload queue (`ps_crud`): reading it as batches or whole transactions, and
//! acknowledging a prefix of it.
//!
//! The queue is a FIFO that is only ever acknowledged as a prefix: `complete()` deletes every
//! entry up to the last one it was given, after checking that the first one it was given is the
//! queue's head. Completing twice, or completing entries behind unacknowledged ones, is a typed
//! error and changes nothing.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};

/// The largest op id; the "local write pending" value of the write-checkpoint target.
pub const MAX_OP_ID: i64 = i64::MAX;

/// The kind of change an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UpdateType {
    /// Insert or replace the whole row.
    #[serde(rename = "PUT")]
    Put,
    /// Update the given columns.
    #[serde(rename = "PATCH")]
    Patch,
    /// Delete the row.
    #[serde(rename = "DELETE")]
    Delete,
}

/// One entry of the upload queue.
#[derive(Debug, Clone, PartialEq)]
pub struct CrudEntry {
    /// `ps_crud.id`: the entry's position in the queue.
    pub client_id: i64,
    /// `ps_crud.tx_id`: the local SQLite transaction that wrote it.
    pub transaction_id: Option<i64>,
    /// The kind of change.
    pub op: UpdateType,
    /// The table's name (not its view name).
    pub table: String,
    /// The row's id.
    pub id: String,
    /// PUT: every non-null column; PATCH: the changed columns; DELETE: none.
    pub data: Option<Map<String, Value>>,
    /// Previous values (tables with `include_old`).
    pub old: Option<Map<String, Value>>,
    /// The `_metadata` written with the change (tables with `include_metadata`).
    pub metadata: Option<String>,
}

#[derive(Deserialize)]
struct EntryJson {
    op: UpdateType,
    #[serde(rename = "type")]
    table: String,
    id: String,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    #[serde(default)]
    old: Option<Map<String, Value>>,
    #[serde(default)]
    metadata: Option<String>,
}

impl CrudEntry {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let client_id: i64 = row.get(0)?;
        let transaction_id: Option<i64> = row.get(1)?;
        let data: String = row.get(2)?;
        let json: EntryJson = serde_json::from_str(&data).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(Self {
            client_id,
            transaction_id,
            op: json.op,
            table: json.table,
            id: json.id,
            data: json.data,
            old: json.old,
            metadata: json.metadata,
        })
    }
}

/// Entries across transaction boundaries, oldest first (see [`PowerSyncDatabase::crud_batch`]).
#[derive(Debug)]
pub struct CrudBatch {
    /// The entries.
    pub crud: Vec<CrudEntry>,
    /// True when the queue holds more entries after these.
    pub has_more: bool,
    db: PowerSyncDatabase,
}

/// All entries of one local transaction, oldest first.
#[derive(Debug)]
pub struct CrudTransaction {
    /// The local transaction's id (`None` for entries written without one by very old cores).
    pub transaction_id: Option<i64>,
    /// The entries.
    pub crud: Vec<CrudEntry>,
    db: PowerSyncDatabase,
}

/// Upload queue size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQueueStats {
    /// Number of entries.
    pub count: u64,
    /// Approximate bytes: the entries' JSON plus 20 bytes each, as the official SDKs count.
    pub size: u64,
}

/// Completes `crud` (a run of queue entries) with an optional write checkpoint; an empty run
/// completes nothing.
async fn complete_entries(
    db: &PowerSyncDatabase,
    crud: &[CrudEntry],
    checkpoint: Option<i64>,
) -> Result<()> {
    match (crud.first(), crud.last()) {
        (Some(first), Some(last)) => {
            db.complete_crud(first.client_id, last.client_id, checkpoint)
                .await
        }
        _ => Ok(()),
    }
}

impl CrudBatch {
    /// Acknowledges these entries (and only if they are the head of the queue).
    pub async fn complete(self) -> Result<()> {
        complete_entries(&self.db, &self.crud, None).await
    }

    /// Acknowledges these entries and, if the queue is then empty, makes `write_checkpoint`
    /// the checkpoint that must be synced before downloaded data is applied.
    pub async fn complete_with_checkpoint(self, write_checkpoint: i64) -> Result<()> {
        complete_entries(&self.db, &self.crud, Some(write_checkpoint)).await
    }
}

impl CrudTransaction {
    /// Acknowledges this transaction (and only if it is the head of the queue).
    pub async fn complete(self) -> Result<()> {
        complete_entries(&self.db, &self.crud, None).await
    }

    /// Like [`complete`](Self::complete), with a custom write checkpoint.
    pub async fn complete_with_checkpoint(self, write_checkpoint: i64) -> Result<()> {
        complete_entries(&self.db, &self.crud, Some(write_checkpoint)).await
    }

    /// Merges consecutive transactions (as read from [`CrudTransactions`]) into one batch that
    /// completes them together. Never splits a transaction.
    pub fn into_batch(transactions: Vec<CrudTransaction>) -> Option<CrudBatch> {
        let db = transactions.first()?.db.clone();
        let crud = transactions.into_iter().flat_map(|t| t.crud).collect();
        Some(CrudBatch {
            crud,
            has_more: false,
            db,
        })
    }
}

/// Reads whole local transactions oldest first, without completing them; a cursor over the
/// queue as it was when each transaction is read.
#[derive(Debug)]
pub struct CrudTransactions {
    db: PowerSyncDatabase,
    after: i64,
}

const NEXT_TRANSACTION_SQL: &str = "\
WITH RECURSIVE crud_entries AS (
  SELECT id, tx_id, data FROM ps_crud WHERE id = (SELECT min(id) FROM ps_crud WHERE id > ?1)
  UNION ALL
  SELECT ps_crud.id, ps_crud.tx_id, ps_crud.data FROM ps_crud
    INNER JOIN crud_entries ON crud_entries.id + 1 = ps_crud.id
  WHERE crud_entries.tx_id = ps_crud.tx_id
)
SELECT id, tx_id, data FROM crud_entries ORDER BY id";

impl CrudTransactions {
    /// The next whole transaction after the previous one, or `None` when the queue holds no
    /// more.
    pub async fn next(&mut self) -> Result<Option<CrudTransaction>> {
        let after = self.after;
        let crud = self
            .db
            .query(NEXT_TRANSACTION_SQL, [after], CrudEntry::from_row)
            .await?;
        let Some(last) = crud.last() else {
            return Ok(None);
        };
        self.after = last.client_id;
        Ok(Some(CrudTransaction {
            transaction_id: crud[0].transaction_id,
            crud,
            db: self.db.clone(),
        }))
    }

    /// The next whole transactions after the previous ones, oldest first, in one query: as many
    /// as fit in `max_entries` entries (at least one; a larger transaction comes whole, read as
    /// [`next`](Self::next) does); empty when the queue holds no more. The same transactions, in
    /// the same order, as calling `next` repeatedly.
    pub async fn next_many(&mut self, max_entries: usize) -> Result<Vec<CrudTransaction>> {
        let limit = max_entries.max(1);
        let mut rows = self
            .db
            .query(
                "SELECT id, tx_id, data FROM ps_crud WHERE id > ?1 ORDER BY id LIMIT ?2",
                [self.after, i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1],
                CrudEntry::from_row,
            )
            .await?;
        let more = rows.len() > limit;
        // A transaction is a run of consecutive ids with one (non-null) tx_id, as the recursive
        // query of `next` follows it.
        let mut transactions: Vec<Vec<CrudEntry>> = Vec::new();
        for entry in rows.drain(..) {
            match transactions.last_mut() {
                Some(run)
                    if run.last().is_some_and(|last| {
                        last.transaction_id.is_some()
                            && last.transaction_id == entry.transaction_id
                            && last.client_id + 1 == entry.client_id
                    }) =>
                {
                    run.push(entry)
                }
                _ => transactions.push(vec![entry]),
            }
        }
        if more {
            // The last run may go on past the rows read.
            transactions.pop();
            if transactions.is_empty() {
                return Ok(self.next().await?.into_iter().collect());
            }
        }
        if let Some(last) = transactions.last().and_then(|t| t.last()) {
            self.after = last.client_id;
        }
        Ok(transactions
            .into_iter()
            .map(|crud| CrudTransaction {
                transaction_id: crud[0].transaction_id,
                crud,
                db: self.db.clone(),
            })
            .collect())
    }

    /// As a `futures` stream.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<CrudTransaction>> {
        futures_util::stream::unfold(Some(self), |cursor| async move {
            let mut cursor = cursor?;
            match cursor.next().await {
                Ok(Some(tx)) => Some((Ok(tx), Some(cursor))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

impl PowerSyncDatabase {
    /// Up to `limit` entries oldest first, across transaction boundaries (a transaction may be
    /// split between batches); `None` when the queue is empty.
    pub async fn crud_batch(&self, limit: usize) -> Result<Option<CrudBatch>> {
        let limit = limit.max(1);
        let mut crud = self
            .query(
                "SELECT id, tx_id, data FROM ps_crud ORDER BY id ASC LIMIT ?1",
                [i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1],
                CrudEntry::from_row,
            )
            .await?;
        if crud.is_empty() {
            return Ok(None);
        }
        let has_more = crud.len() > limit;
        crud.truncate(limit);
        Ok(Some(CrudBatch {
            crud,
            has_more,
            db: self.clone(),
        }))
    }

    /// All entries of the oldest local transaction; `None` when the queue is empty.
    pub async fn next_crud_transaction(&self) -> Result<Option<CrudTransaction>> {
        self.crud_transactions().next().await
    }

    /// Whole transactions oldest first, so a caller can upload several together without ever
    /// splitting one.
    pub fn crud_transactions(&self) -> CrudTransactions {
        CrudTransactions {
            db: self.clone(),
            after: -1,
        }
    }

    /// Number and approximate size of queued entries.
    pub async fn upload_queue_stats(&self) -> Result<UploadQueueStats> {
        self.query_optional(
            "SELECT count(*), coalesce(sum(length(CAST(data AS BLOB)) + 20), 0) FROM ps_crud",
            [],
            |r| {
                Ok(UploadQueueStats {
                    count: r.get::<_, i64>(0)? as u64,
                    size: r.get::<_, i64>(1)? as u64,
                })
            },
        )
        .await
        .map(|s| s.unwrap_or(UploadQueueStats { count: 0, size: 0 }))
    }

    /// The queue's oldest entry id, if any.
    pub(crate) async fn crud_head(&self) -> Result<Option<i64>> {
        self.query_optional("SELECT id FROM ps_crud ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .await
    }

    /// Deletes entries `first..=last` after checking they are the head of the queue, and sets
    /// the write-checkpoint target, in one write transaction.
    async fn complete_crud(
        &self,
        first: i64,
        last: i64,
        write_checkpoint: Option<i64>,
    ) -> Result<()> {
        let new_api = self.capabilities()?.write_checkpoint
            == powersync_sys::WriteCheckpoint::CheckpointRequestOps;
        self.internal_write_transaction(move |tx| {
            let head: Option<i64> =
                tx.query_row("SELECT min(id) FROM ps_crud", [], |r| r.get(0))?;
            match head {
                None => return Err(Error::AlreadyCompleted { first, last }),
                Some(head) if head > first => return Err(Error::AlreadyCompleted { first, last }),
                Some(head) if head < first => {
                    return Err(Error::NotQueuePrefix { first, last, head });
                }
                Some(_) => {}
            }
            tx.execute("DELETE FROM ps_crud WHERE id <= ?1", [last])?;
            let empty = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM ps_crud)", [], |r| {
                r.get::<_, bool>(0)
            })?;
            let target = match write_checkpoint {
                Some(checkpoint) if empty => checkpoint,
                _ => MAX_OP_ID,
            };
            set_write_checkpoint_target(tx, new_api, target)?;
            Ok(())
        })
        .await
    }
}

/// Sets the target the core waits for before applying downloaded data: through
/// `powersync_control('target_checkpoint_request_id', …)` on core 0.5+, through the `$local` row
/// of `ps_buckets` before.
pub(crate) fn set_write_checkpoint_target(
    tx: &rusqlite::Transaction<'_>,
    core_0_5: bool,
    target: i64,
) -> Result<()> {
    if core_0_5 {
        tx.query_row(
            "SELECT powersync_control('target_checkpoint_request_id', ?1)",
            [target],
            |_| Ok(()),
        )?;
    } else {
        tx.execute(
            "UPDATE ps_buckets SET target_op = CAST(?1 AS INTEGER) WHERE name = '$local'",
            [target],
        )?;
    }
    Ok(())
}
