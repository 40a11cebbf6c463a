//! In-memory view of the stand-in's state that the HTTP streams read: the bucket definitions
//! (priorities) of the current snapshot generation, ops per bucket, bucket checksums, the rows
//! of table-backed parameter queries (which decide each connection's bucket set), the current
//! checkpoint, the replicated position and the write checkpoints.
//!
//! The replicator *stages* the ops of a batch here as soon as they are decoded, so streams can
//! send the checkpoint line and the data while the batch is being persisted; it *commits*
//! them once they are durable in PostgreSQL ([`crate::storage`]). Streams send
//! `checkpoint_complete` and `partial_checkpoint_complete` (the lines that make a client apply
//! anything) only once [`CheckpointView::checkpoint`] is at most [`Store::durable_checkpoint`].
//! A failed persist rolls the staged ops back; the replay stages the same ops again. Changes of
//! parameter rows take effect when their batch is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use serde_json::Value as Json;
use tokio::sync::watch;

use crate::rules::{ParameterRow, Resolution, SqliteValue, StreamsRequest, SyncRules, lookup_key};

/// The kind of an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// The row's full data.
    Put,
    /// The row was removed from the bucket.
    Remove,
    /// A compacted PUT or REMOVE that a later op superseded: kept only for its checksum.
    Move,
    /// Compaction folded every op up to this one into it: the client empties the bucket and
    /// takes this op's checksum as the bucket's.
    Clear,
}

impl OpKind {
    /// The protocol name (`PUT`/`REMOVE`/`MOVE`/`CLEAR`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Put => "PUT",
            OpKind::Remove => "REMOVE",
            OpKind::Move => "MOVE",
            OpKind::Clear => "CLEAR",
        }
    }

    /// Parses the protocol name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PUT" => Some(OpKind::Put),
            "REMOVE" => Some(OpKind::Remove),
            "MOVE" => Some(OpKind::Move),
            "CLEAR" => Some(OpKind::Clear),
            _ => None,
        }
    }
}

/// One bucket operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Storage-wide increasing op id.
    pub op_id: u64,
    /// The bucket it belongs to.
    pub bucket: String,
    /// PUT, REMOVE, MOVE or CLEAR.
    pub kind: OpKind,
    /// Output table name (empty for MOVE and CLEAR).
    pub object_type: String,
    /// Row id (empty for MOVE and CLEAR).
    pub object_id: String,
    /// The row as a JSON string (PUT only).
    pub data: Option<String>,
    /// The op checksum.
    pub checksum: u32,
    /// MOVE and CLEAR: the newest op that superseded what this op replaced. A client that
    /// receives it while syncing a checkpoint below it must not complete that checkpoint.
    pub target_op: Option<u64>,
}

/// Checksum and op count of a bucket up to the current checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketChecksum {
    /// Wrapping u32 sum of all op checksums.
    pub checksum: u32,
    /// Number of ops.
    pub count: u64,
}

/// A bucket as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// The versioned bucket id (`<generation>#<definition>[<parameters>]`).
    pub name: String,
    /// Priority 0..=3.
    pub priority: u8,
    /// Index of its definition in [`Store::stream_names`] (the `default` subscription).
    pub stream: usize,
}

/// A bucket definition as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The definition's name (its default stream's name).
    pub name: String,
    /// Its bucket names before the parameter array: the name, or `<stream>|0` for a stream.
    pub prefix: String,
    /// Priority 0..=3 of its buckets.
    pub priority: u8,
    /// Whether it has no parameters: its one bucket exists (and is sent) even when empty.
    pub global: bool,
}

impl From<&crate::rules::BucketDefinition> for Definition {
    fn from(bucket: &crate::rules::BucketDefinition) -> Self {
        Definition {
            name: bucket.definition.clone(),
            prefix: bucket.prefix(),
            priority: bucket.priority,
            global: bucket.is_global(),
        }
    }
}

/// The parameter rows one source row contributes, replacing what it contributed before
/// (nothing: the row is gone or matches no parameter query).
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterChange {
    /// The source row: `<schema>.<table>` and its id, e.g. `public.lists/7`.
    pub row: String,
    /// Its contributions ([`SyncRules::evaluate_parameter_row`]).
    pub rows: Vec<ParameterRow>,
}

#[derive(Debug, Default)]
struct Bucket {
    ops: Vec<Op>,
    sum: BucketChecksum,
}

/// The durable rows of table-backed parameter queries, indexed by lookup.
#[derive(Debug, Default)]
struct Parameters {
    by_row: HashMap<String, Vec<ParameterRow>>,
    /// [`lookup_key`] → the source rows with a contribution of that lookup.
    by_lookup: HashMap<String, BTreeSet<String>>,
    /// Counts changes, so that streams recompute their bucket sets only after one.
    version: u64,
}

impl Parameters {
    fn apply(&mut self, change: ParameterChange) {
        let old = self.by_row.remove(&change.row).unwrap_or_default();
        if old == change.rows {
            if !old.is_empty() {
                self.by_row.insert(change.row, old);
            }
            return;
        }
        for row in &old {
            let key = lookup_key(&row.definition, row.query, &row.lookup);
            if let Some(rows) = self.by_lookup.get_mut(&key) {
                rows.remove(&change.row);
                if rows.is_empty() {
                    self.by_lookup.remove(&key);
                }
            }
        }
        for row in &change.rows {
            self.by_lookup
                .entry(lookup_key(&row.definition, row.query, &row.lookup))
                .or_default()
                .insert(change.row.clone());
        }
        if !change.rows.is_empty() {
            self.by_row.insert(change.row, change.rows);
        }
        self.version += 1;
    }

    /// The selected columns of every parameter row of `(definition, query)` with `lookup`.
    fn matching(
        &self,
        definition: &str,
        query: usize,
        lookup: &[SqliteValue],
    ) -> Vec<Vec<(String, SqliteValue)>> {
        let Some(rows) = self.by_lookup.get(&lookup_key(definition, query, lookup)) else {
            return Vec::new();
        };
        rows.iter()
            .flat_map(|row| self.by_row.get(row).into_iter().flatten())
            .filter(|r| r.definition == definition && r.query == query && r.lookup == lookup)
            .map(|r| r.columns.clone())
            .collect()
    }
}

#[derive(Debug, Default)]
struct State {
    ready: bool,
    /// Newest staged checkpoint (may not be durable yet).
    checkpoint: u64,
    /// Newest durable checkpoint.
    durable: u64,
    replicated_lsn: u64,
    buckets: BTreeMap<String, Bucket>,
    /// The snapshot generation: the version in bucket ids.
    generation: u64,
    /// Indexed by [`BucketInfo::stream`].
    definitions: Vec<Definition>,
    parameters: Parameters,
    /// Parameter changes staged with ops, by checkpoint, applied on commit.
    pending_parameters: Vec<(u64, Vec<ParameterChange>)>,
    /// Per `"<sub>/<client_id>"`: (write checkpoint id, source LSN), ascending.
    write_checkpoints: HashMap<String, Vec<(u64, u64)>>,
}

impl State {
    fn bucket_info(&self, name: &str) -> Option<BucketInfo> {
        let prefix = format!("{}#", self.generation);
        let rest = name.strip_prefix(&prefix)?;
        let (stream, definition) = self
            .definitions
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                rest.strip_prefix(d.prefix.as_str())
                    .is_some_and(|params| params.starts_with('['))
            })
            .max_by_key(|(_, d)| d.prefix.len())?;
        Some(BucketInfo {
            name: name.to_owned(),
            priority: definition.priority,
            stream,
        })
    }
}

/// A consistent view of the checkpoint for one stream iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointView {
    /// `last_op_id` of the checkpoint (staged: it may not be durable yet).
    pub checkpoint: u64,
    /// The newest durable checkpoint at the time of the view.
    pub durable: u64,
    /// Every bucket with its checksum and count at that checkpoint.
    pub buckets: BTreeMap<String, BucketChecksum>,
    /// The source position covered by the checkpoint.
    pub replicated_lsn: u64,
}

/// Shared state plus a version counter that wakes streams on every change.
#[derive(Debug)]
pub struct Store {
    state: RwLock<State>,
    version: watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty, not yet ready store without buckets ([`Store::set_definitions`] names them).
    pub fn new() -> Self {
        Store {
            state: RwLock::new(State::default()),
            version: watch::channel(0).0,
        }
    }

    /// Sets the snapshot generation and its bucket definitions, dropping the buckets of an
    /// earlier generation with their ops. The bucket of each global definition is created
    /// (every client sees it, even when empty).
    pub fn set_definitions(&self, generation: u64, definitions: Vec<Definition>) {
        {
            let mut state = self.write();
            let prefix = format!("{generation}#");
            state.buckets.retain(|name, _| name.starts_with(&prefix));
            for definition in definitions.iter().filter(|d| d.global) {
                state
                    .buckets
                    .entry(format!("{generation}#{}[]", definition.prefix))
                    .or_default();
            }
            state.generation = generation;
            state.definitions = definitions;
        }
        self.bump();
    }

    /// The snapshot generation (the version in bucket ids).
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Every bucket of the current generation, sorted by name.
    pub fn bucket_infos(&self) -> Vec<BucketInfo> {
        let state = self.read();
        state
            .buckets
            .keys()
            .filter_map(|name| state.bucket_info(name))
            .collect()
    }

    /// Priority and definition of a bucket of the current generation (it need not hold ops
    /// yet); `None` for a name no definition produces.
    pub fn bucket_info(&self, name: &str) -> Option<BucketInfo> {
        self.read().bucket_info(name)
    }

    /// The definition names, indexed by [`BucketInfo::stream`].
    pub fn stream_names(&self) -> Vec<String> {
        self.read()
            .definitions
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }

    /// The versioned ids of the buckets a request selects under `rules`, over the durable
    /// parameter rows (see [`SyncRules::request_buckets_by`]), sorted.
    pub fn request_buckets(
        &self,
        rules: &SyncRules,
        claims: &Json,
        parameters: &Json,
    ) -> Vec<String> {
        let state = self.read();
        rules
            .request_buckets_by(claims, parameters, |definition, query, lookup| {
                state.parameters.matching(definition, query, lookup)
            })
            .into_iter()
            .map(|name| format!("{}#{name}", state.generation))
            .collect()
    }

    /// What a request resolves to under `rules` (see [`SyncRules::resolve_by`]) over the
    /// durable parameter rows, with versioned bucket ids, sorted.
    pub fn resolve(
        &self,
        rules: &SyncRules,
        claims: &Json,
        parameters: &Json,
        streams: &StreamsRequest,
    ) -> Resolution {
        let state = self.read();
        let mut resolution =
            rules.resolve_by(claims, parameters, streams, |definition, query, lookup| {
                state.parameters.matching(definition, query, lookup)
            });
        for bucket in &mut resolution.buckets {
            bucket.bucket = format!("{}#{}", state.generation, bucket.bucket);
        }
        resolution
    }

    /// Counts the changes of parameter rows (and of the generation): a bucket set computed
    /// by [`Store::request_buckets`] holds while it stays the same.
    pub fn parameters_version(&self) -> (u64, u64) {
        let state = self.read();
        (state.generation, state.parameters.version)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// A receiver that changes whenever the state does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Whether the initial snapshot is complete and clients may be served.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// Stages ops of whole source transactions (in op id order) up to `checkpoint`: they are
    /// visible to streams, but not yet durable.
    pub fn stage(&self, ops: Vec<Op>, checkpoint: u64) {
        self.stage_with(ops, Vec::new(), checkpoint);
    }

    /// [`Store::stage`] with the batch's parameter row changes, which take effect when the
    /// batch is committed.
    pub fn stage_with(&self, ops: Vec<Op>, parameters: Vec<ParameterChange>, checkpoint: u64) {
        {
            let mut state = self.write();
            for op in ops {
                let bucket = state.buckets.entry(op.bucket.clone()).or_default();
                bucket.sum.checksum = bucket.sum.checksum.wrapping_add(op.checksum);
                bucket.sum.count += 1;
                bucket.ops.push(op);
            }
            if !parameters.is_empty() {
                state.pending_parameters.push((checkpoint, parameters));
            }
            state.checkpoint = state.checkpoint.max(checkpoint);
        }
        self.bump();
    }

    /// Marks everything up to `checkpoint` durable (applying its parameter changes), moves
    /// the replicated position forward and marks the store ready.
    pub fn commit(&self, checkpoint: u64, replicated_lsn: u64) {
        let changed = {
            let mut state = self.write();
            let before = (
                state.checkpoint,
                state.durable,
                state.replicated_lsn,
                state.ready,
                state.parameters.version,
            );
            state.checkpoint = state.checkpoint.max(checkpoint);
            state.durable = state.durable.max(checkpoint);
            state.replicated_lsn = state.replicated_lsn.max(replicated_lsn);
            state.ready = true;
            let durable = state.durable;
            let due = state
                .pending_parameters
                .partition_point(|(at, _)| *at <= durable);
            let applied: Vec<_> = state.pending_parameters.drain(..due).collect();
            for change in applied.into_iter().flat_map(|(_, changes)| changes) {
                state.parameters.apply(change);
            }
            before
                != (
                    state.checkpoint,
                    state.durable,
                    state.replicated_lsn,
                    state.ready,
                    state.parameters.version,
                )
        };
        if changed {
            self.bump();
        }
    }

    /// Stages and commits in one step (ops that are already durable).
    pub fn apply(&self, ops: Vec<Op>, checkpoint: u64, replicated_lsn: u64) {
        self.stage(ops, checkpoint);
        self.commit(checkpoint, replicated_lsn);
    }

    /// [`Store::apply`] with parameter row changes.
    pub fn apply_with(
        &self,
        ops: Vec<Op>,
        parameters: Vec<ParameterChange>,
        checkpoint: u64,
        replicated_lsn: u64,
    ) {
        self.stage_with(ops, parameters, checkpoint);
        self.commit(checkpoint, replicated_lsn);
    }

    /// Replaces every durable parameter row by `all` (the stored state after a restart or
    /// a new snapshot), dropping staged parameter changes.
    pub fn reset_parameters(&self, all: Vec<ParameterChange>) {
        let changed = {
            let mut state = self.write();
            state.pending_parameters.clear();
            let mut fresh = Parameters::default();
            for change in all {
                fresh.apply(change);
            }
            if fresh.by_row == state.parameters.by_row {
                false
            } else {
                fresh.version = state.parameters.version + 1;
                state.parameters = fresh;
                true
            }
        };
        if changed {
            self.bump();
        }
    }

    /// Drops staged ops that were not committed (their persist failed).
    pub fn rollback(&self) {
        {
            let mut state = self.write();
            let durable = state.durable;
            for bucket in state.buckets.values_mut() {
                let keep = bucket.ops.partition_point(|op| op.op_id <= durable);
                for op in bucket.ops.drain(keep..) {
                    bucket.sum.checksum = bucket.sum.checksum.wrapping_sub(op.checksum);
                    bucket.sum.count -= 1;
                }
            }
            state.checkpoint = durable;
            state.pending_parameters.clear();
        }
        self.bump();
    }

    /// The newest durable checkpoint.
    pub fn durable_checkpoint(&self) -> u64 {
        self.read().durable
    }

    /// The current checkpoint with all bucket checksums.
    pub fn view(&self) -> CheckpointView {
        let state = self.read();
        CheckpointView {
            checkpoint: state.checkpoint,
            durable: state.durable,
            buckets: state
                .buckets
                .iter()
                .map(|(name, b)| (name.clone(), b.sum))
                .collect(),
            replicated_lsn: state.replicated_lsn,
        }
    }

    /// The current checkpoint with the checksums of `buckets` only (zero for a bucket without
    /// ops yet, as the service sends a bucket that exists only through its parameters).
    pub fn view_of(&self, buckets: &[String]) -> CheckpointView {
        let state = self.read();
        CheckpointView {
            checkpoint: state.checkpoint,
            durable: state.durable,
            buckets: buckets
                .iter()
                .map(|name| {
                    let sum = state.buckets.get(name).map(|b| b.sum).unwrap_or_default();
                    (name.clone(), sum)
                })
                .collect(),
            replicated_lsn: state.replicated_lsn,
        }
    }

    /// Up to `limit` ops of `bucket` with `after < op_id <= upto`, in op id order.
    pub fn ops(&self, bucket: &str, after: u64, upto: u64, limit: usize) -> Vec<Op> {
        let state = self.read();
        let Some(b) = state.buckets.get(bucket) else {
            return Vec::new();
        };
        let start = b.ops.partition_point(|op| op.op_id <= after);
        b.ops[start..]
            .iter()
            .take_while(|op| op.op_id <= upto)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every op of `bucket` with `op_id <= upto`, in op id order.
    pub fn ops_through(&self, bucket: &str, upto: u64) -> Vec<Op> {
        self.ops(bucket, 0, upto, usize::MAX)
    }

    /// Replaces the ops of `bucket` with `op_id <= upto` by `compacted` (the same checksum
    /// sum, fewer or rewritten ops: see [`crate::compact`]). Later ops stay as they are.
    pub fn replace_through(&self, bucket: &str, upto: u64, compacted: Vec<Op>) {
        {
            let mut state = self.write();
            let Some(b) = state.buckets.get_mut(bucket) else {
                return;
            };
            let end = b.ops.partition_point(|op| op.op_id <= upto);
            b.ops.splice(..end, compacted);
            b.sum = BucketChecksum {
                checksum: b
                    .ops
                    .iter()
                    .fold(0u32, |sum, op| sum.wrapping_add(op.checksum)),
                count: b.ops.len() as u64,
            };
        }
        self.bump();
    }

    /// Records write checkpoint `id` of `user_key`, taken at source position `lsn`.
    pub fn add_write_checkpoint(&self, user_key: &str, id: u64, lsn: u64) {
        {
            let mut state = self.write();
            let replicated = state.replicated_lsn;
            let list = state
                .write_checkpoints
                .entry(user_key.to_owned())
                .or_default();
            list.push((id, lsn));
            list.sort();
            // Keep only the newest replicated entry and the ones not replicated yet.
            if let Some(last_done) = list.iter().rposition(|&(_, l)| l <= replicated) {
                list.drain(..last_done);
            }
        }
        self.bump();
    }

    /// The highest write checkpoint of `user_key` whose position has been replicated.
    pub fn write_checkpoint(&self, user_key: &str, replicated_lsn: u64) -> Option<u64> {
        let state = self.read();
        state
            .write_checkpoints
            .get(user_key)?
            .iter()
            .filter(|&&(_, lsn)| lsn <= replicated_lsn)
            .map(|&(id, _)| id)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(op_id: u64, checksum: u32) -> Op {
        Op {
            op_id,
            bucket: "0#global[]".into(),
            kind: OpKind::Put,
            object_type: "t".into(),
            object_id: op_id.to_string(),
            data: Some("{}".into()),
            checksum,
            target_op: None,
        }
    }

    fn store_with(names: &[&str]) -> Store {
        let store = Store::new();
        let definitions = names
            .iter()
            .map(|n| Definition {
                name: (*n).into(),
                prefix: (*n).into(),
                priority: 3,
                global: true,
            })
            .collect();
        store.set_definitions(0, definitions);
        store
    }

    #[test]
    fn sums_wrap_and_ranges_respect_the_checkpoint() {
        let store = store_with(&["global", "empty"]);
        assert!(!store.is_ready());
        store.apply(vec![put(1, u32::MAX), put(2, 5), put(3, 1)], 3, 100);
        let view = store.view();
        assert_eq!(view.checkpoint, 3);
        assert_eq!(
            view.buckets["0#global[]"],
            BucketChecksum {
                checksum: 5,
                count: 3
            }
        );
        assert_eq!(view.buckets["0#empty[]"], BucketChecksum::default());
        let ids: Vec<u64> = store
            .ops("0#global[]", 1, 2, 10)
            .iter()
            .map(|o| o.op_id)
            .collect();
        assert_eq!(ids, [2]);
        assert_eq!(store.ops("0#global[]", 0, 3, 2).len(), 2);
    }

    #[test]
    fn staged_ops_roll_back_until_committed() {
        let store = store_with(&["global"]);
        store.apply(vec![put(1, 10)], 1, 100);
        store.stage(vec![put(2, 20), put(3, 30)], 3);
        assert_eq!(store.view().checkpoint, 3);
        assert_eq!(store.durable_checkpoint(), 1);
        assert_eq!(store.view().buckets["0#global[]"].checksum, 60);
        store.rollback();
        let view = store.view();
        assert_eq!(view.checkpoint, 1);
        assert_eq!(
            view.buckets["0#global[]"],
            BucketChecksum {
                checksum: 10,
                count: 1
            }
        );
        store.stage(vec![put(2, 20)], 2);
        store.commit(2, 200);
        assert_eq!(store.durable_checkpoint(), 2);
        assert_eq!(store.view().replicated_lsn, 200);
    }

    #[test]
    fn write_checkpoints_need_replication() {
        let store = Store::new();
        store.apply(vec![], 0, 100);
        store.add_write_checkpoint("u/c", 1, 50);
        store.add_write_checkpoint("u/c", 2, 150);
        assert_eq!(store.write_checkpoint("u/c", 100), Some(1));
        assert_eq!(store.write_checkpoint("u/c", 150), Some(2));
        assert_eq!(store.write_checkpoint("other/c", 150), None);
    }

    #[test]
    fn parameter_rows_take_effect_on_commit_and_pick_buckets() {
        let rules = SyncRules::parse(
            "bucket_definitions:\n  lists:\n    parameters: SELECT id AS list FROM lists WHERE owner = request.user_id()\n    \
             data:\n      - SELECT * FROM todos WHERE list_id = bucket.list\n",
        )
        .unwrap();
        let store = Store::new();
        store.set_definitions(
            2,
            vec![Definition {
                name: "lists".into(),
                prefix: "lists".into(),
                priority: 1,
                global: false,
            }],
        );
        let lists = crate::rules::SourceTable {
            schema: "public".into(),
            name: "lists".into(),
        };
        let row = |id: i64, owner: &str| {
            vec![
                ("id".to_owned(), SqliteValue::Integer(id)),
                ("owner".to_owned(), SqliteValue::Text(owner.into())),
            ]
        };
        let change = |id: i64, owner: &str| ParameterChange {
            row: format!("public.lists/{id}"),
            rows: rules.evaluate_parameter_row(&lists, &row(id, owner)),
        };
        let alice = serde_json::json!({"sub": "alice"});
        let none = serde_json::json!({});
        store.stage_with(vec![], vec![change(1, "alice"), change(2, "bob")], 1);
        assert!(
            store.request_buckets(&rules, &alice, &none).is_empty(),
            "staged only"
        );
        let before = store.parameters_version();
        store.commit(1, 10);
        assert_ne!(store.parameters_version(), before);
        assert_eq!(store.request_buckets(&rules, &alice, &none), ["2#lists[1]"]);
        // List 2 moves to alice; a rolled-back change never takes effect.
        store.stage_with(vec![], vec![change(2, "alice")], 2);
        store.rollback();
        store.commit(2, 20);
        assert_eq!(store.request_buckets(&rules, &alice, &none), ["2#lists[1]"]);
        store.apply_with(vec![], vec![change(2, "alice")], 3, 30);
        assert_eq!(
            store.request_buckets(&rules, &alice, &none),
            ["2#lists[1]", "2#lists[2]"]
        );
        store.apply_with(
            vec![],
            vec![ParameterChange {
                row: "public.lists/1".into(),
                rows: vec![],
            }],
            4,
            40,
        );
        assert_eq!(store.request_buckets(&rules, &alice, &none), ["2#lists[2]"]);
        let info = store.bucket_info("2#lists[2]").unwrap();
        assert_eq!((info.priority, info.stream), (1, 0));
        assert_eq!(store.bucket_info("1#lists[2]"), None);
        assert_eq!(store.bucket_info("2#other[]"), None);
    }
}
