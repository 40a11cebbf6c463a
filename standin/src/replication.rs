//! Replication from the source PostgreSQL: initial snapshot, then logical decoding with the
//! `pgoutput` plugin through a logical slot, read in one of two ways ([`ReplicationMode`]):
//!
//! - **streaming** (the default, as the service does): `START_REPLICATION` on a replication
//!   connection ([`crate::wal_stream`]). Each step takes the messages the server has sent (at
//!   least one; a transaction always to its commit), turns each committed source transaction
//!   into ops (op ids assigned in commit order), persists ops, rows and `processed_lsn` in one
//!   transaction, publishes to the [`Store`], and only then reports that LSN as flushed in a
//!   standby status update: PostgreSQL keeps, and sends again after a reconnect, every
//!   transaction committed after the last flush reported. Outside transactions, keepalives
//!   and non-transactional logical messages (write checkpoints) advance the position.
//! - **polling**: `pg_logical_slot_peek_binary_changes` on an ordinary connection up to
//!   `w = pg_current_wal_flush_lsn()` (logical decoding only reads flushed WAL, so with
//!   `synchronous_commit=off` the insert position may be ahead of what a peek can return),
//!   every `poll_interval` while idle, then the same persist and `pg_replication_slot_advance`.
//!
//! Transactions whose commit LSN is below the persisted `processed_lsn` were already stored
//! (a crash between persisting and acknowledging) and are skipped.
//!
//! A row of a table that global `SELECT *` buckets alone read goes whole to those buckets.
//! A row of any other table is evaluated by the sync rules, as the service's `PersistedBatch`
//! does: a PUT in every bucket it belongs to now, a REMOVE in every bucket it belonged to
//! before and no longer does (its previous version is evaluated again), and, when what it
//! contributes to table-backed parameter queries changes, a parameter change that advances
//! the checkpoint by one op id (as the service's parameter ops do).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::Error;
use crate::checksum::{put_checksum, remove_checksum, subkey};
use crate::compact::{CompactStats, compact_bucket};
use crate::config::Config;
use crate::decode::{self, Message, Value, format_lsn, parse_lsn};
use crate::rows::{Cell, ColumnType, previous_json, row_data, source_row_data};
use crate::rules::{EvaluatedRow, SourceTable, SyncRules, row_from_data};
use crate::storage::{PersistedState, RowChanges, Storage, encode_ops, quote_ident};
use crate::store::{Definition, Op, OpKind, ParameterChange, Store};
use crate::wal_stream::{Frame, OBJECT_IN_USE, WalStream};

/// The publication the service (and the stand-in) replicates.
pub const PUBLICATION: &str = "powersync";

/// Session settings that make text output match what the mapping expects (`SET` on the
/// ordinary connections, start-up parameters of the replication connection).
const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("extra_float_digits", "1"),
    ("IntervalStyle", "postgres"),
    ("bytea_output", "hex"),
];

/// Safety limit on rows per peek (whole transactions are always returned).
const PEEK_LIMIT: i32 = 200_000;

/// Streaming: a step stops reading at a transaction boundary once it holds this many ops.
const STEP_OPS: usize = 10_000;

/// Streaming: a status update at least this often (PostgreSQL ends a replication connection
/// silent for `wal_sender_timeout`, 60 s by default).
const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Streaming: how long `START_REPLICATION` is retried while the slot is still held by the
/// server process of a connection that just ended (a restart after a crash).
const SLOT_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How changes are read from the replication slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// The replication protocol (`START_REPLICATION`), acknowledged by standby status
    /// updates once durable; changes arrive as PostgreSQL decodes them.
    #[default]
    Streaming,
    /// `pg_logical_slot_peek_binary_changes` every `poll_interval` while idle: for servers
    /// that take no replication connection (`max_wal_senders = 0`, a pooler in between).
    Polling,
}

/// Connects to PostgreSQL and applies the session settings.
pub async fn connect(uri: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(uri, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection ended: {e}");
        }
    });
    let settings: Vec<String> = SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("SET {name} = '{value}'"))
        .collect();
    client.batch_execute(&settings.join("; ")).await?;
    Ok(client)
}

fn table_key(t: &SourceTable) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// How the rows of a source table reach buckets.
#[derive(Debug, Clone)]
enum Plan {
    /// Whole (`SELECT *`) to these global buckets: `(versioned bucket id, object_type)`;
    /// none for a table the sync rules do not read.
    Whole(Vec<(String, String)>),
    /// Evaluated row by row by the sync rules; the current rows are kept in `source_rows`.
    Evaluated(SourceTable),
}

struct RelationInfo {
    table_key: String,
    columns: Vec<ColumnType>,
    id_index: Option<usize>,
    plan: Plan,
}

/// A change of one row inside a transaction, before op ids are assigned.
enum Change {
    Put {
        table: usize,
        values: Vec<Value>,
    },
    Update {
        table: usize,
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        table: usize,
        old: Vec<Value>,
    },
    Truncate {
        tables: Vec<usize>,
    },
}

/// The replication worker. Owns the source connection and the rows currently in buckets.
pub struct Replicator {
    client: Client,
    storage: Storage,
    rules: SyncRules,
    slot: String,
    store: Arc<Store>,
    /// Relations by OID, from the current peek's Relation messages.
    relations: HashMap<u32, usize>,
    relation_infos: Vec<RelationInfo>,
    /// Streaming: the replication connection.
    stream: Option<WalStream>,
    mode: ReplicationMode,
    /// The changes of the source transaction being read (between Begin and Commit).
    tx: Option<Vec<Change>>,
    /// Streaming: the position everything read so far is complete up to.
    received: u64,
    /// The current rows per table key and id: the public columns for whole tables, every
    /// column for evaluated ones.
    current: HashMap<String, HashMap<String, String>>,
    /// Rows of evaluated tables changed by the batch being built: `(table key, id)`.
    changed_rows: std::collections::BTreeSet<(String, String)>,
    /// Parameter changes of the batch being built.
    parameter_changes: Vec<ParameterChange>,
    last_op_id: u64,
    processed_lsn: u64,
    /// The position acknowledged to PostgreSQL (the slot's `confirmed_flush_lsn`).
    slot_confirmed: u64,
    /// Snapshot generation (the bucket id version).
    generation: u64,
    rules_fingerprint: String,
}

/// A fingerprint of the parsed sync rules: a stored state built with other rules is replaced
/// by a new snapshot (with new bucket ids).
pub fn rules_fingerprint(rules: &SyncRules) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{rules:?}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Replicator {
    /// Connects, sets up storage and either takes the initial snapshot or loads the persisted
    /// state. When `load_store` is true the store is filled from storage (first start).
    pub async fn init(config: &Config, store: Arc<Store>, load_store: bool) -> Result<Self, Error> {
        let client = connect(&config.postgres_uri).await?;
        let storage = Storage::new(&config.storage_schema);
        let has_pub = client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&PUBLICATION],
            )
            .await?
            .is_some();
        if !has_pub {
            return Err(Error::Source(format!(
                "publication `{PUBLICATION}` does not exist: run \
                 `CREATE PUBLICATION {PUBLICATION} FOR TABLE ...` (or FOR ALL TABLES)"
            )));
        }
        let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
        if wal_level != "logical" {
            return Err(Error::Source(format!(
                "wal_level is `{wal_level}`, needs `logical`"
            )));
        }
        storage.create(&client).await?;
        let mut rep = Replicator {
            client,
            storage,
            rules: config.sync_rules.clone(),
            slot: config.slot_name.clone(),
            store,
            relations: HashMap::new(),
            relation_infos: Vec::new(),
            stream: None,
            mode: config.replication,
            tx: None,
            received: 0,
            current: HashMap::new(),
            changed_rows: Default::default(),
            parameter_changes: Vec::new(),
            last_op_id: 0,
            processed_lsn: 0,
            slot_confirmed: 0,
            generation: 0,
            rules_fingerprint: rules_fingerprint(&config.sync_rules),
        };
        let slot_lsn = rep.slot_confirmed_lsn().await?;
        let state = rep.storage.state(&rep.client).await?;
        let resumable = state.as_ref().and_then(|state| {
            let why = if slot_lsn.is_none() {
                format!("replication slot `{}` is missing", rep.slot)
            } else if !state.snapshot_done {
                "the previous snapshot did not finish".to_owned()
            } else if state.rules_fingerprint != rep.rules_fingerprint {
                "the sync rules changed".to_owned()
            } else {
                return None;
            };
            Some(why)
        });
        match (state, slot_lsn, resumable) {
            (Some(state), Some(confirmed), None) => {
                rep.last_op_id = state.last_op_id;
                rep.processed_lsn = state.processed_lsn;
                rep.slot_confirmed = confirmed;
                rep.generation = state.generation;
                rep.publish_buckets();
                let ops = rep.storage.load_ops(&rep.client).await?;
                rep.current = current_rows(&rep.rules, rep.generation, &ops);
                let parameters = rep.load_source_rows().await?;
                rep.store.reset_parameters(parameters);
                if load_store {
                    for (key, id, lsn) in rep.storage.load_write_checkpoints(&rep.client).await? {
                        rep.store.add_write_checkpoint(&key, id, lsn);
                    }
                }
                // Everything the store does not hold durably: all of it on the first start;
                // on a reconnect, the ops of a batch whose commit succeeded although its
                // reply was lost (the store rolled them back).
                let durable = rep.store.durable_checkpoint();
                let missing: Vec<Op> = ops.into_iter().filter(|op| op.op_id > durable).collect();
                if !load_store && !missing.is_empty() {
                    tracing::info!(
                        "reloaded {} ops committed before the connection was lost",
                        missing.len()
                    );
                }
                rep.store
                    .apply(missing, state.last_op_id, state.processed_lsn);
                if confirmed < state.processed_lsn {
                    match rep.mode {
                        ReplicationMode::Polling => rep.advance_slot(state.processed_lsn).await?,
                        // Acknowledged in the first status update of the stream.
                        ReplicationMode::Streaming => {}
                    }
                }
                if rep.mode == ReplicationMode::Streaming {
                    rep.start_stream(&config.postgres_uri).await?;
                }
            }
            (Some(_), _, why) if !load_store => {
                // Re-snapshotting under a running store would mix two op logs: refuse, keep
                // serving what is there, and let a restart take the new snapshot.
                return Err(Error::Source(format!(
                    "{}; restart the stand-in to take a new initial snapshot",
                    why.unwrap_or_default()
                )));
            }
            (state, _, why) => {
                if let Some(why) = why {
                    tracing::warn!("{why}: taking a new initial snapshot with new bucket ids");
                }
                rep.last_op_id = state.as_ref().map(|s| s.last_op_id).unwrap_or(0);
                rep.generation = state.as_ref().map(|s| s.generation).unwrap_or(0) + 1;
                rep.publish_buckets();
                rep.snapshot(load_store).await?;
                if rep.mode == ReplicationMode::Streaming {
                    rep.start_stream(&config.postgres_uri).await?;
                }
                rep.catch_up().await?;
            }
        }
        Ok(rep)
    }

    /// Opens the replication connection and starts streaming from the later of the slot's
    /// confirmed position and `processed_lsn` (acknowledged right away: it is durable).
    async fn start_stream(&mut self, uri: &str) -> Result<(), Error> {
        let start = self.processed_lsn.max(self.slot_confirmed);
        let deadline = tokio::time::Instant::now() + SLOT_BUSY_WAIT;
        let mut stream = loop {
            let mut stream = WalStream::connect(uri, SESSION_SETTINGS).await?;
            match stream.start(&self.slot, PUBLICATION, start).await {
                Ok(()) => break stream,
                Err(Error::ReplicationServer { code, message })
                    if code == OBJECT_IN_USE && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!("{message}: waiting for the slot to be released");
                    stream.close().await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        if start > self.slot_confirmed {
            stream.send_status(start, start, false).await?;
            self.slot_confirmed = start;
        }
        self.received = start;
        self.stream = Some(stream);
        Ok(())
    }

    /// Replicates everything committed before now (after a snapshot, before the first
    /// checkpoint is served).
    async fn catch_up(&mut self) -> Result<(), Error> {
        if self.stream.is_none() {
            self.poll().await?;
            return Ok(());
        }
        let target = self.flush_lsn().await?;
        // Ask for a keepalive: it carries the server's position even when nothing is sent.
        self.send_status(true).await?;
        while self.received < target {
            let first = self.ready(std::time::Duration::ZERO).await?;
            self.step(first).await?;
        }
        Ok(())
    }

    async fn flush_lsn(&self) -> Result<u64, Error> {
        parse_lsn(
            self.client
                .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
                .await?
                .get::<_, &str>(0),
        )
    }

    /// Waits until there is something to replicate. Streaming: the next message from the
    /// server, or `None` after 10 s without one; polling: `pause`. Cancel-safe.
    pub async fn ready(&mut self, pause: std::time::Duration) -> Result<Option<Frame>, Error> {
        match self.stream.as_mut() {
            Some(stream) => match tokio::time::timeout(STATUS_INTERVAL, stream.next()).await {
                Ok(frame) => frame.map(Some),
                Err(_) => Ok(None),
            },
            None => {
                tokio::time::sleep(pause).await;
                Ok(None)
            }
        }
    }

    /// Replicates what is there; returns the number of ops produced. Streaming: `first` (from
    /// [`Replicator::ready`]; `None`: only a status update is due) and every message already
    /// received, a transaction always to its end; polling: one poll.
    pub async fn step(&mut self, first: Option<Frame>) -> Result<usize, Error> {
        if self.stream.is_none() {
            return self.poll().await;
        }
        let Some(first) = first else {
            // Idle: show the server we are alive, and ask for its position (a keepalive).
            return self.send_status(true).await.map(|()| 0);
        };
        let mut ops = Vec::new();
        // Complete up to here: a transaction's end, or a keepalive or logical message
        // outside transactions.
        let mut position = None;
        let mut reply = false;
        let mut frame = first;
        loop {
            match frame {
                Frame::Keepalive {
                    wal_end,
                    reply_requested,
                } => {
                    if self.tx.is_none() {
                        position = position.max(Some(wal_end));
                    }
                    reply |= reply_requested;
                    if reply && self.tx.is_some() {
                        // Inside a long transaction: answer with what is durable so far.
                        self.send_status(false).await?;
                        reply = false;
                    }
                }
                Frame::Data { data, .. } => {
                    let message = decode::decode(&data)?;
                    let mark = match &message {
                        Message::Message {
                            transactional: false,
                            lsn,
                            ..
                        } if self.tx.is_none() => Some(*lsn),
                        _ => None,
                    };
                    position = position.max(self.handle(message, &mut ops)).max(mark);
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                break;
            };
            frame = if self.tx.is_some() {
                // The rest of the transaction is on its way.
                stream.next().await?
            } else if ops.len() >= STEP_OPS {
                break;
            } else {
                match stream.next().now_or_never() {
                    Some(frame) => frame?,
                    None => break,
                }
            };
        }
        let Some(position) = position else {
            return self.send_status(reply).await.map(|()| 0);
        };
        self.received = self.received.max(position);
        let count = self.persist_batch(ops, position).await?;
        // Durable: now PostgreSQL may release it.
        self.slot_confirmed = self.slot_confirmed.max(position);
        self.send_status(false).await?;
        Ok(count)
    }

    /// Streaming: a standby status update (flushed = acknowledged = durable).
    async fn send_status(&mut self, reply: bool) -> Result<(), Error> {
        if let Some(stream) = self.stream.as_mut() {
            stream
                .send_status(self.received, self.slot_confirmed, reply)
                .await?;
        }
        Ok(())
    }

    /// Ends the replication connection, if any.
    pub async fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.close().await;
        }
    }

    /// The current snapshot generation (the version in bucket ids).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bucket_name(&self, name: &str) -> String {
        format!("{}#{name}", self.generation)
    }

    /// Tells the store the bucket definitions of this generation.
    fn publish_buckets(&self) {
        let definitions = self.rules.buckets().iter().map(Definition::from).collect();
        self.store.set_definitions(self.generation, definitions);
    }

    /// Loads the stored rows of evaluated tables into `current`; returns what they contribute
    /// to parameter queries.
    async fn load_source_rows(&mut self) -> Result<Vec<ParameterChange>, Error> {
        let tables: HashMap<String, SourceTable> = self
            .rules
            .tables()
            .into_iter()
            .map(|t| (table_key(&t), t))
            .collect();
        let mut changes = Vec::new();
        for (key, id, data) in self.storage.load_source_rows(&self.client).await? {
            let Some(table) = tables.get(&key) else {
                continue;
            };
            let rows = match row_from_data(&data) {
                Ok(row) => self.rules.evaluate_parameter_row(table, &row),
                Err(e) => {
                    return Err(Error::Source(format!("stored row {key}/{id}: {e}")));
                }
            };
            if !rows.is_empty() {
                changes.push(ParameterChange {
                    row: format!("{key}/{id}"),
                    rows,
                });
            }
            self.current.entry(key).or_default().insert(id, data);
        }
        Ok(changes)
    }

    /// How rows of `table` reach buckets under the sync rules.
    fn plan(&self, table: &SourceTable) -> Plan {
        match self.rules.direct_targets(table) {
            Some(targets) => Plan::Whole(
                targets
                    .into_iter()
                    .map(|(bucket, object_type)| (self.bucket_name(&bucket), object_type))
                    .collect(),
            ),
            None => Plan::Evaluated(table.clone()),
        }
    }

    /// The source rows and parameter changes of the batch built so far, taken.
    fn take_batch_rows(&mut self) -> (RowChanges, Vec<ParameterChange>) {
        let mut rows = RowChanges::default();
        for (key, id) in std::mem::take(&mut self.changed_rows) {
            match self.current.get(&key).and_then(|m| m.get(&id)) {
                Some(data) => rows.upserted.push((key, id, data.clone())),
                None => rows.deleted.push((key, id)),
            }
        }
        (rows, std::mem::take(&mut self.parameter_changes))
    }

    fn state(&self, processed_lsn: u64) -> PersistedState {
        PersistedState {
            last_op_id: self.last_op_id,
            processed_lsn,
            generation: self.generation,
            rules_fingerprint: self.rules_fingerprint.clone(),
            snapshot_done: true,
        }
    }

    /// Compacts every bucket up to the durable checkpoint ([`crate::compact`]), persisting
    /// each bucket's rewrite in one transaction before streams see it.
    pub async fn compact(&mut self) -> Result<CompactStats, Error> {
        let upto = self.store.durable_checkpoint();
        let mut stats = CompactStats::default();
        for info in self.store.bucket_infos() {
            let ops = self.store.ops_through(&info.name, upto);
            let (compacted, bucket_stats) = compact_bucket(&ops);
            if bucket_stats.is_empty() {
                continue;
            }
            self.storage
                .replace_compacted(&mut self.client, &info.name, upto, encode_ops(&compacted))
                .await?;
            self.store.replace_through(&info.name, upto, compacted);
            stats.add(bucket_stats);
        }
        if !stats.is_empty() {
            tracing::info!(
                "compacted up to op {upto}: {} ops moved, {} cleared",
                stats.moved,
                stats.cleared
            );
        }
        Ok(stats)
    }

    async fn slot_confirmed_lsn(&self) -> Result<Option<u64>, Error> {
        let row = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await?;
        match row {
            Some(r) => match r.get::<_, Option<&str>>(0) {
                Some(lsn) => Ok(Some(parse_lsn(lsn)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    async fn advance_slot(&mut self, lsn: u64) -> Result<(), Error> {
        if lsn > self.slot_confirmed {
            self.client
                .execute(
                    "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[&self.slot, &format_lsn(lsn)],
                )
                .await?;
            self.slot_confirmed = lsn;
        }
        Ok(())
    }

    /// Creates the slot (dropping a stale one), then stores a PUT for every existing row of
    /// every published table the sync rules read.
    async fn snapshot(&mut self, publish: bool) -> Result<(), Error> {
        let pending = self.state(0);
        self.storage
            .begin_snapshot(&mut self.client, &pending)
            .await?;
        self.client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&self.slot],
            )
            .await?;
        let row = self
            .client
            .query_one(
                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&self.slot],
            )
            .await?;
        let slot_lsn = parse_lsn(row.get::<_, &str>(0))?;
        self.slot_confirmed = slot_lsn;
        self.current.clear();
        self.changed_rows.clear();
        self.parameter_changes.clear();

        let published: Vec<(String, String)> = self
            .client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables \
                 WHERE pubname = $1",
                &[&PUBLICATION],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // Changes committed after the slot was created are also replayed from the slot;
        // a row seen twice just gets a second PUT with the same data.
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let mut ops = Vec::new();
        for table in self.rules.tables() {
            if !published.contains(&(table.schema.clone(), table.name.clone())) {
                tracing::warn!(
                    "table {}.{} is in the sync rules but not in publication `{PUBLICATION}`: \
                     it is not replicated",
                    table.schema,
                    table.name
                );
                continue;
            }
            let compat = self.rules.compatibility();
            let sql = format!(
                "SELECT * FROM {}.{}",
                quote_ident(&table.schema),
                quote_ident(&table.name)
            );
            let statement = self.client.prepare(&sql).await?;
            let columns: Vec<ColumnType> = statement
                .columns()
                .iter()
                .map(|c| ColumnType {
                    name: c.name().to_owned(),
                    type_oid: c.type_().oid(),
                })
                .collect();
            let plan = self.plan(&table);
            let key = table_key(&table);
            for message in self.client.simple_query(&sql).await? {
                if let SimpleQueryMessage::Row(row) = message {
                    let values: Vec<Cell<'_>> = (0..columns.len())
                        .map(|i| row.get(i).map_or(Cell::Null, Cell::Text))
                        .collect();
                    match &plan {
                        Plan::Whole(targets) => {
                            let (id, data) = row_data(&columns, &values, compat);
                            for (bucket, object_type) in targets {
                                ops.push(self.put(bucket, object_type, &id, &data));
                            }
                            self.current
                                .entry(key.clone())
                                .or_default()
                                .insert(id, data);
                        }
                        Plan::Evaluated(source) => {
                            let (id, data) = source_row_data(&columns, &values, compat);
                            self.evaluate_change(source, &key, &id, None, Some(&data), &mut ops);
                            self.current
                                .entry(key.clone())
                                .or_default()
                                .insert(id.clone(), data);
                            self.changed_rows.insert((key.clone(), id));
                        }
                    }
                }
            }
        }
        self.client.batch_execute("COMMIT").await?;
        let state = self.state(slot_lsn);
        let payload = (!ops.is_empty()).then(|| encode_ops(&ops));
        let (rows, parameters) = self.take_batch_rows();
        self.storage
            .persist(&mut self.client, payload, &rows, &state, true)
            .await?;
        self.processed_lsn = slot_lsn;
        if publish {
            // Durable, but not served before the first poll has replayed every change
            // committed up to now: clients never see a checkpoint between the snapshot and
            // the changes that raced with it.
            self.store.reset_parameters(Vec::new());
            self.store.stage_with(ops, parameters, self.last_op_id);
        }
        tracing::info!(
            "initial snapshot {} stored: checkpoint {}, slot at {}",
            self.generation,
            self.last_op_id,
            format_lsn(slot_lsn)
        );
        Ok(())
    }

    fn next_op(
        &mut self,
        bucket: &str,
        kind: OpKind,
        object_type: &str,
        id: &str,
        data: Option<String>,
        checksum: u32,
    ) -> Op {
        self.last_op_id += 1;
        Op {
            op_id: self.last_op_id,
            bucket: bucket.to_owned(),
            kind,
            object_type: object_type.to_owned(),
            object_id: id.to_owned(),
            data,
            checksum,
            target_op: None,
        }
    }

    fn put(&mut self, bucket: &str, object_type: &str, id: &str, data: &str) -> Op {
        let checksum = put_checksum(object_type, id, data);
        self.next_op(
            bucket,
            OpKind::Put,
            object_type,
            id,
            Some(data.to_owned()),
            checksum,
        )
    }

    fn remove(&mut self, bucket: &str, object_type: &str, id: &str) -> Op {
        let checksum = remove_checksum(&subkey(object_type, id));
        self.next_op(bucket, OpKind::Remove, object_type, id, None, checksum)
    }

    /// Runs one poll: returns the number of ops produced.
    pub async fn poll(&mut self) -> Result<usize, Error> {
        let w = self.flush_lsn().await?;
        if w <= self.slot_confirmed {
            self.store.commit(self.last_op_id, self.slot_confirmed);
            return Ok(0);
        }
        let rows = self
            .client
            .query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, \
                 'proto_version', '1', 'publication_names', $4, 'messages', 'true')",
                &[&self.slot, &format_lsn(w), &PEEK_LIMIT, &PUBLICATION],
            )
            .await?;
        let complete = rows.len() < PEEK_LIMIT as usize;
        // Each peek is a new decoding session: it sends its Relation messages again.
        self.relations.clear();
        self.relation_infos.clear();
        self.tx = None;
        let mut ops = Vec::new();
        let mut last_end = None;
        for row in &rows {
            let data: &[u8] = row.get(0);
            last_end = last_end.max(self.handle(decode::decode(data)?, &mut ops));
        }
        let position = if complete {
            w
        } else {
            match last_end {
                Some(end) => end,
                None => return Err(Error::Decode("peek limit hit without a commit".to_owned())),
            }
        };
        let count = self.persist_batch(ops, position).await?;
        self.advance_slot(position).await?;
        Ok(count)
    }

    /// Takes one decoded pgoutput message; returns the transaction's end LSN on a Commit.
    fn handle(&mut self, message: Message, ops: &mut Vec<Op>) -> Option<u64> {
        let change = match message {
            Message::Begin { .. } => {
                self.tx = Some(Vec::new());
                return None;
            }
            Message::Commit {
                commit_lsn,
                end_lsn,
            } => {
                let changes = self.tx.take().unwrap_or_default();
                // Below processed_lsn: already persisted before a crash.
                if commit_lsn >= self.processed_lsn {
                    for change in changes {
                        self.apply_change(change, ops);
                    }
                }
                return Some(end_lsn);
            }
            Message::Relation(rel) => {
                self.add_relation(rel);
                return None;
            }
            Message::Origin | Message::Type | Message::Message { .. } => return None,
            Message::Insert { relation, new } => self
                .relations
                .get(&relation)
                .map(|&table| Change::Put { table, values: new }),
            Message::Update { relation, old, new } => self
                .relations
                .get(&relation)
                .map(|&table| Change::Update { table, old, new }),
            Message::Delete { relation, old } => self
                .relations
                .get(&relation)
                .map(|&table| Change::Delete { table, old }),
            Message::Truncate { relations } => Some(Change::Truncate {
                tables: relations
                    .iter()
                    .filter_map(|r| self.relations.get(r).copied())
                    .collect(),
            }),
        };
        if let (Some(changes), Some(change)) = (self.tx.as_mut(), change) {
            changes.push(change);
        }
        None
    }

    /// Persists the ops and source rows of a batch complete up to `position` (staged first:
    /// streams may send the data, `checkpoint_complete` waits for the commit), then publishes
    /// it as durable. Returns the number of ops.
    async fn persist_batch(&mut self, ops: Vec<Op>, position: u64) -> Result<usize, Error> {
        let count = ops.len();
        let (rows, parameters) = self.take_batch_rows();
        if !ops.is_empty() || !rows.is_empty() {
            let payload = (!ops.is_empty()).then(|| encode_ops(&ops));
            self.store.stage_with(ops, parameters, self.last_op_id);
            let state = self.state(position);
            if let Err(e) = self
                .storage
                .persist(&mut self.client, payload, &rows, &state, false)
                .await
            {
                self.store.rollback();
                return Err(e);
            }
            self.processed_lsn = position;
        }
        self.store.commit(self.last_op_id, position);
        Ok(count)
    }

    fn add_relation(&mut self, rel: decode::Relation) {
        let table = SourceTable {
            schema: rel.namespace,
            name: rel.name,
        };
        let columns: Vec<ColumnType> = rel
            .columns
            .iter()
            .map(|c| ColumnType {
                name: c.name.clone(),
                type_oid: c.type_oid,
            })
            .collect();
        let key = table_key(&table);
        // A stream sends a relation again after each invalidation, mostly unchanged.
        if let Some(&known) = self.relations.get(&rel.id) {
            let info = &self.relation_infos[known];
            if info.table_key == key && info.columns == columns {
                return;
            }
        }
        let info = RelationInfo {
            table_key: key,
            id_index: columns.iter().position(|c| c.name == "id"),
            columns,
            plan: self.plan(&table),
        };
        self.relations.insert(rel.id, self.relation_infos.len());
        self.relation_infos.push(info);
    }

    fn id_of(&self, table: usize, values: &[Value]) -> Option<String> {
        let info = &self.relation_infos[table];
        match info.id_index.and_then(|i| values.get(i)) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(_) => None,
            None => Some(String::new()),
        }
    }

    fn apply_change(&mut self, change: Change, ops: &mut Vec<Op>) {
        match change {
            Change::Put { table, values } => self.put_row(table, values, None, ops),
            Change::Update { table, old, new } => {
                let new_id = self.id_of(table, &new);
                let old_id = old.as_ref().and_then(|o| self.id_of(table, o));
                let previous_id = old_id.clone().or(new_id.clone());
                if let (Some(old_id), Some(new_id)) = (&old_id, &new_id)
                    && old_id != new_id
                {
                    self.remove_row(table, old_id, ops);
                }
                self.put_row(table, new, previous_id, ops);
            }
            Change::Delete { table, old } => match self.id_of(table, &old) {
                Some(id) => self.remove_row(table, &id, ops),
                None => tracing::warn!(
                    "DELETE on {} without the `id` column in the replica identity: ignored \
                     (make `id` the primary key or use REPLICA IDENTITY FULL)",
                    self.relation_infos[table].table_key
                ),
            },
            Change::Truncate { tables } => {
                for table in tables {
                    let key = self.relation_infos[table].table_key.clone();
                    let mut ids: Vec<String> = self
                        .current
                        .get(&key)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    ids.sort();
                    for id in ids {
                        self.remove_row(table, &id, ops);
                    }
                }
            }
        }
    }

    fn put_row(
        &mut self,
        table: usize,
        values: Vec<Value>,
        previous_id: Option<String>,
        ops: &mut Vec<Op>,
    ) {
        let info = &self.relation_infos[table];
        if matches!(&info.plan, Plan::Whole(targets) if targets.is_empty()) {
            return;
        }
        let previous =
            previous_id.and_then(|id| self.current.get(&info.table_key).and_then(|m| m.get(&id)));
        let cells: Vec<Cell<'_>> = values
            .iter()
            .zip(&info.columns)
            .map(|(v, c)| match v {
                Value::Text(t) => Cell::Text(t),
                Value::Null => Cell::Null,
                Value::UnchangedToast => previous
                    .and_then(|p| previous_json(p, &c.name))
                    .map_or(Cell::Null, Cell::Json),
            })
            .collect();
        let compat = self.rules.compatibility();
        let key = info.table_key.clone();
        match info.plan.clone() {
            Plan::Whole(targets) => {
                let (id, data) = row_data(&info.columns, &cells, compat);
                for (bucket, object_type) in &targets {
                    ops.push(self.put(bucket, object_type, &id, &data));
                }
                self.current.entry(key).or_default().insert(id, data);
            }
            Plan::Evaluated(source) => {
                let (id, data) = source_row_data(&info.columns, &cells, compat);
                let old = self
                    .current
                    .entry(key.clone())
                    .or_default()
                    .insert(id.clone(), data.clone());
                self.evaluate_change(&source, &key, &id, old.as_deref(), Some(&data), ops);
                self.changed_rows.insert((key, id));
            }
        }
    }

    fn remove_row(&mut self, table: usize, id: &str, ops: &mut Vec<Op>) {
        let info = &self.relation_infos[table];
        let key = info.table_key.clone();
        let Some(old) = self.current.get_mut(&key).and_then(|m| m.remove(id)) else {
            return;
        };
        match info.plan.clone() {
            Plan::Whole(targets) => {
                for (bucket, object_type) in &targets {
                    ops.push(self.remove(bucket, object_type, id));
                }
            }
            Plan::Evaluated(source) => {
                self.evaluate_change(&source, &key, id, Some(&old), None, ops);
                self.changed_rows.insert((key, id.to_owned()));
            }
        }
    }

    /// The ops and parameter change of a row of an evaluated table going from `old` to `new`
    /// (source row data; `None`: absent): a PUT in each bucket of `new`, a REMOVE in each
    /// bucket of `old` that `new` is not in, and the row's new parameter rows if they differ.
    fn evaluate_change(
        &mut self,
        table: &SourceTable,
        key: &str,
        id: &str,
        old: Option<&str>,
        new: Option<&str>,
        ops: &mut Vec<Op>,
    ) {
        let parse = |data: Option<&str>| {
            data.and_then(|d| match row_from_data(d) {
                Ok(row) => Some(row),
                Err(e) => {
                    tracing::warn!("row {key}/{id}: unreadable data ({e}): treated as absent");
                    None
                }
            })
        };
        let (old, new) = (parse(old), parse(new));
        let buckets = |row: &Option<Vec<_>>| -> Vec<EvaluatedRow> {
            row.as_ref()
                .map(|r| self.rules.evaluate_row(table, r))
                .unwrap_or_default()
        };
        let (before, after) = (buckets(&old), buckets(&new));
        for row in &after {
            let bucket = self.bucket_name(&row.bucket);
            ops.push(self.put(&bucket, &row.object_type, &row.object_id, &row.data));
        }
        for row in &before {
            let stays = after.iter().any(|a| {
                a.bucket == row.bucket
                    && a.object_type == row.object_type
                    && a.object_id == row.object_id
            });
            if !stays {
                let bucket = self.bucket_name(&row.bucket);
                ops.push(self.remove(&bucket, &row.object_type, &row.object_id));
            }
        }
        let parameters = |row: &Option<Vec<_>>| {
            row.as_ref()
                .map(|r| self.rules.evaluate_parameter_row(table, r))
                .unwrap_or_default()
        };
        let (before, after) = (parameters(&old), parameters(&new));
        if before != after {
            // Parameter data takes an op id in the service's storage: the checkpoint moves.
            self.last_op_id += 1;
            self.parameter_changes.push(ParameterChange {
                row: format!("{key}/{id}"),
                rows: after,
            });
        }
    }
}

/// Rebuilds the current rows of the tables sent whole to global buckets (per source table key)
/// from the op log of snapshot `generation`: for each such table, the PUT and REMOVE ops of
/// its first `(bucket, object_type)` target replayed in order (MOVE and CLEAR ops only stand
/// for superseded ones). The rows of evaluated tables are stored (`source_rows`).
pub fn current_rows(
    rules: &SyncRules,
    generation: u64,
    ops: &[Op],
) -> HashMap<String, HashMap<String, String>> {
    let mut sources: HashMap<(&str, &str), String> = HashMap::new();
    let targets: Vec<(String, String, String)> = rules
        .tables()
        .iter()
        .filter_map(|t| {
            let (bucket, object_type) = rules.direct_targets(t)?.into_iter().next()?;
            Some((format!("{generation}#{bucket}"), object_type, table_key(t)))
        })
        .collect();
    for (bucket, object_type, key) in &targets {
        sources.insert((bucket.as_str(), object_type.as_str()), key.clone());
    }
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for op in ops {
        let Some(key) = sources.get(&(op.bucket.as_str(), op.object_type.as_str())) else {
            continue;
        };
        let rows = out.entry(key.clone()).or_default();
        match (&op.kind, &op.data) {
            (OpKind::Put, Some(data)) => {
                rows.insert(op.object_id.clone(), data.clone());
            }
            (OpKind::Put | OpKind::Remove, _) => {
                rows.remove(&op.object_id);
            }
            (OpKind::Move | OpKind::Clear, _) => {}
        }
    }
    out
}

/// A request to the replication worker.
#[derive(Debug)]
pub enum Command {
    /// Compact now ([`Replicator::compact`]) and answer with what changed.
    Compact(tokio::sync::oneshot::Sender<Result<CompactStats, Error>>),
}

/// Runs the replication loop until `shutdown` fires. On errors (e.g. a PostgreSQL restart)
/// it reconnects and resumes from the persisted state. While waiting for changes it serves
/// `commands`, and it compacts every `config.compact_interval`.
pub async fn run(
    config: Config,
    store: Arc<Store>,
    mut replicator: Replicator,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut commands: tokio::sync::mpsc::Receiver<Command>,
) {
    use std::time::Duration;
    let mut next_compaction = config
        .compact_interval
        .map(|every| tokio::time::Instant::now() + every);
    let mut pause = Duration::ZERO;
    loop {
        let mut failed = false;
        // Waiting is cancel-safe: a command or shutdown may interrupt it.
        let ready = tokio::select! {
            _ = shutdown.changed() => break,
            Some(command) = commands.recv() => {
                failed = serve(&mut replicator, command).await;
                None
            }
            ready = replicator.ready(pause) => Some(ready),
            _ = async {
                match next_compaction {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        if let Some(ready) = ready {
            let result = match ready {
                Ok(first) => tokio::select! {
                    _ = shutdown.changed() => break,
                    r = replicator.step(first) => r,
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    pause = if n > 0 {
                        Duration::ZERO
                    } else {
                        config.poll_interval
                    }
                }
                Err(e) => {
                    tracing::warn!("replication failed: {e}; reconnecting");
                    failed = true;
                }
            }
        }
        if !failed
            && let (Some(at), Some(every)) = (next_compaction, config.compact_interval)
            && tokio::time::Instant::now() >= at
        {
            next_compaction = Some(tokio::time::Instant::now() + every);
            if let Err(e) = replicator.compact().await {
                tracing::warn!("compaction failed: {e}; reconnecting");
                failed = true;
            }
        }
        if failed {
            replicator.close().await;
            match reconnect(&config, &store, &mut shutdown).await {
                Some(r) => replicator = r,
                None => return,
            }
            pause = Duration::ZERO;
        }
    }
    replicator.close().await;
}

/// Serves one command; true when it failed on the source connection (reconnect).
async fn serve(replicator: &mut Replicator, command: Command) -> bool {
    match command {
        Command::Compact(reply) => {
            let result = replicator.compact().await;
            let failed = result.is_err();
            if let Err(e) = &result {
                tracing::warn!("compaction failed: {e}; reconnecting");
            }
            let _ = reply.send(result);
            failed
        }
    }
}

/// Re-initialises the replicator after an error, retrying every 200 ms; `None` on shutdown.
async fn reconnect(
    config: &Config,
    store: &Arc<Store>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Replicator> {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
        match Replicator::init(config, store.clone(), false).await {
            Ok(r) => return Some(r),
            Err(e) => tracing::warn!("replication reconnect failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op_id: u64, bucket: &str, kind: OpKind, object_type: &str, id: &str) -> Op {
        Op {
            op_id,
            bucket: bucket.into(),
            kind,
            object_type: object_type.into(),
            object_id: id.into(),
            data: (kind == OpKind::Put).then(|| format!("{{\"id\":\"{id}\",\"n\":{op_id}}}")),
            checksum: 0,
            target_op: None,
        }
    }

    #[test]
    fn current_rows_are_rebuilt_from_the_op_log() {
        let rules = SyncRules::parse(
            "bucket_definitions:\n  a:\n    data:\n      - SELECT * FROM t AS x\n  \
             b:\n    data:\n      - SELECT * FROM t AS x\n      - SELECT * FROM u\n",
        )
        .unwrap();
        let ops = vec![
            op(1, "2#a[]", OpKind::Put, "x", "1"),
            op(2, "2#b[]", OpKind::Put, "x", "1"),
            op(3, "2#b[]", OpKind::Put, "u", "9"),
            op(4, "2#a[]", OpKind::Put, "x", "2"),
            op(5, "2#b[]", OpKind::Put, "x", "2"),
            op(6, "2#a[]", OpKind::Remove, "x", "1"),
            op(7, "2#b[]", OpKind::Remove, "x", "1"),
            op(8, "2#a[]", OpKind::Put, "x", "2"),
            op(9, "2#b[]", OpKind::Put, "x", "2"),
            op(10, "2#a[]", OpKind::Move, "", ""),
        ];
        let rows = current_rows(&rules, 2, &ops);
        let t = &rows["public.t"];
        assert_eq!(t.len(), 1);
        assert_eq!(t["2"], r#"{"id":"2","n":8}"#);
        assert_eq!(rows["public.u"]["9"], r#"{"id":"9","n":3}"#);
    }
}
