//! In-memory view of the stand-in's state that the HTTP streams read: the buckets (names,
//! priorities), ops per bucket, bucket checksums, the current checkpoint, the replicated
//! position and the write checkpoints.
//!
//! The replicator *stages* the ops of a batch here as soon as they are decoded, so streams can
//! send the checkpoint line and the data while the batch is being persisted; it *commits*
//! them once they are durable in PostgreSQL ([`crate::storage`]). Streams send
//! `checkpoint_complete` and `partial_checkpoint_complete` (the lines that make a client apply
//! anything) only once [`CheckpointView::checkpoint`] is at most [`Store::durable_checkpoint`].
//! A failed persist rolls the staged ops back; the replay stages the same ops again.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use tokio::sync::watch;

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
    /// The versioned bucket id (`<generation>#<definition>[]`).
    pub name: String,
    /// Priority 0..=3.
    pub priority: u8,
    /// Index of its definition in [`Store::stream_names`] (the `default` subscription).
    pub stream: usize,
}

#[derive(Debug, Default)]
struct Bucket {
    ops: Vec<Op>,
    sum: BucketChecksum,
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
    infos: Vec<BucketInfo>,
    stream_names: Vec<String>,
    /// Per `"<sub>/<client_id>"`: (write checkpoint id, source LSN), ascending.
    write_checkpoints: HashMap<String, Vec<(u64, u64)>>,
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
    /// An empty, not yet ready store without buckets ([`Store::set_buckets`] names them).
    pub fn new() -> Self {
        Store {
            state: RwLock::new(State::default()),
            version: watch::channel(0).0,
        }
    }

    /// Sets the buckets every client sees (always present, even when empty) and the stream
    /// (definition) names, dropping buckets of an earlier generation with their ops.
    pub fn set_buckets(&self, infos: Vec<BucketInfo>, stream_names: Vec<String>) {
        {
            let mut state = self.write();
            state
                .buckets
                .retain(|name, _| infos.iter().any(|i| &i.name == name));
            for info in &infos {
                state.buckets.entry(info.name.clone()).or_default();
            }
            state.infos = infos;
            state.stream_names = stream_names;
        }
        self.bump();
    }

    /// The buckets, sorted by name.
    pub fn bucket_infos(&self) -> Vec<BucketInfo> {
        let mut infos = self.read().infos.clone();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// The definition names, indexed by [`BucketInfo::stream`].
    pub fn stream_names(&self) -> Vec<String> {
        self.read().stream_names.clone()
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
        {
            let mut state = self.write();
            for op in ops {
                let bucket = state.buckets.entry(op.bucket.clone()).or_default();
                bucket.sum.checksum = bucket.sum.checksum.wrapping_add(op.checksum);
                bucket.sum.count += 1;
                bucket.ops.push(op);
            }
            state.checkpoint = state.checkpoint.max(checkpoint);
        }
        self.bump();
    }

    /// Marks everything up to `checkpoint` durable, moves the replicated position forward and
    /// marks the store ready.
    pub fn commit(&self, checkpoint: u64, replicated_lsn: u64) {
        let changed = {
            let mut state = self.write();
            let before = (
                state.checkpoint,
                state.durable,
                state.replicated_lsn,
                state.ready,
            );
            state.checkpoint = state.checkpoint.max(checkpoint);
            state.durable = state.durable.max(checkpoint);
            state.replicated_lsn = state.replicated_lsn.max(replicated_lsn);
            state.ready = true;
            before
                != (
                    state.checkpoint,
                    state.durable,
                    state.replicated_lsn,
                    state.ready,
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
            bucket: "global[]".into(),
            kind: OpKind::Put,
            object_type: "t".into(),
            object_id: op_id.to_string(),
            data: Some("{}".into()),
            checksum,
            target_op: None,
        }
    }

    fn info(name: &str) -> BucketInfo {
        BucketInfo {
            name: name.into(),
            priority: 3,
            stream: 0,
        }
    }

    fn store_with(names: &[&str]) -> Store {
        let store = Store::new();
        store.set_buckets(names.iter().map(|n| info(n)).collect(), vec!["g".into()]);
        store
    }

    #[test]
    fn sums_wrap_and_ranges_respect_the_checkpoint() {
        let store = store_with(&["global[]", "empty[]"]);
        assert!(!store.is_ready());
        store.apply(vec![put(1, u32::MAX), put(2, 5), put(3, 1)], 3, 100);
        let view = store.view();
        assert_eq!(view.checkpoint, 3);
        assert_eq!(
            view.buckets["global[]"],
            BucketChecksum {
                checksum: 5,
                count: 3
            }
        );
        assert_eq!(view.buckets["empty[]"], BucketChecksum::default());
        let ids: Vec<u64> = store
            .ops("global[]", 1, 2, 10)
            .iter()
            .map(|o| o.op_id)
            .collect();
        assert_eq!(ids, [2]);
        assert_eq!(store.ops("global[]", 0, 3, 2).len(), 2);
    }

    #[test]
    fn staged_ops_roll_back_until_committed() {
        let store = store_with(&["global[]"]);
        store.apply(vec![put(1, 10)], 1, 100);
        store.stage(vec![put(2, 20), put(3, 30)], 3);
        assert_eq!(store.view().checkpoint, 3);
        assert_eq!(store.durable_checkpoint(), 1);
        assert_eq!(store.view().buckets["global[]"].checksum, 60);
        store.rollback();
        let view = store.view();
        assert_eq!(view.checkpoint, 1);
        assert_eq!(
            view.buckets["global[]"],
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
}
