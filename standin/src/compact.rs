//! Compaction of a bucket's op log, as the service's compactor does it: every PUT or REMOVE
//! that a later op of the same row superseded becomes a MOVE (same checksum, no data), and the
//! run of MOVE/REMOVE/CLEAR ops at the start of the bucket (which holds no live row) is folded
//! into one CLEAR whose checksum is their sum. The bucket checksum is unchanged; clients that
//! download the compacted log end with the same rows.
//!
//! A MOVE or CLEAR remembers the newest op that superseded what it replaced (`target_op`): a
//! stream that sends one while syncing an older checkpoint withholds `checkpoint_complete`
//! (the checkpoint is invalidated) and moves on to a newer one.

use std::collections::HashMap;

use crate::store::{Op, OpKind};

/// What one compaction changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// PUT/REMOVE ops rewritten as MOVE.
    pub moved: usize,
    /// Ops folded into CLEAR ops (the CLEAR ops themselves not counted).
    pub cleared: usize,
}

impl CompactStats {
    /// Adds another bucket's figures.
    pub fn add(&mut self, other: CompactStats) {
        self.moved += other.moved;
        self.cleared += other.cleared;
    }

    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.moved == 0 && self.cleared == 0
    }
}

/// Compacts `ops` (one bucket's ops in op id order, all at or below the durable checkpoint).
/// Returns the new op list and what changed.
pub fn compact_bucket(ops: &[Op]) -> (Vec<Op>, CompactStats) {
    let mut stats = CompactStats::default();
    let mut newest: HashMap<(&str, &str), u64> = HashMap::new();
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops.iter().rev() {
        match op.kind {
            OpKind::Put | OpKind::Remove => {
                let key = (op.object_type.as_str(), op.object_id.as_str());
                match newest.get(&key) {
                    Some(&target) => {
                        stats.moved += 1;
                        out.push(Op {
                            kind: OpKind::Move,
                            object_type: String::new(),
                            object_id: String::new(),
                            data: None,
                            target_op: Some(target),
                            ..op.clone()
                        });
                    }
                    None => {
                        newest.insert(key, op.op_id);
                        out.push(op.clone());
                    }
                }
            }
            OpKind::Move | OpKind::Clear => out.push(op.clone()),
        }
    }
    out.reverse();
    let run = out.iter().take_while(|op| op.kind != OpKind::Put).count();
    let only_a_clear = run == 1 && out[0].kind == OpKind::Clear;
    if run > 0 && !only_a_clear {
        let folded: Vec<Op> = out.drain(..run).collect();
        let last = &folded[folded.len() - 1];
        let checksum = folded
            .iter()
            .fold(0u32, |sum, op| sum.wrapping_add(op.checksum));
        let target = folded
            .iter()
            .map(|op| op.target_op.unwrap_or(op.op_id))
            .max();
        stats.cleared += folded.iter().filter(|op| op.kind != OpKind::Clear).count();
        out.insert(
            0,
            Op {
                op_id: last.op_id,
                bucket: last.bucket.clone(),
                kind: OpKind::Clear,
                object_type: String::new(),
                object_id: String::new(),
                data: None,
                checksum,
                target_op: target,
            },
        );
    }
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op_id: u64, kind: OpKind, id: &str, checksum: u32) -> Op {
        Op {
            op_id,
            bucket: "b".into(),
            kind,
            object_type: "t".into(),
            object_id: id.into(),
            data: (kind == OpKind::Put).then(|| format!("{{\"n\":{op_id}}}")),
            checksum,
            target_op: None,
        }
    }

    fn sum(ops: &[Op]) -> u32 {
        ops.iter().fold(0u32, |s, o| s.wrapping_add(o.checksum))
    }

    #[test]
    fn superseded_ops_move_and_the_dead_prefix_clears() {
        let ops = vec![
            op(1, OpKind::Put, "a", u32::MAX),
            op(2, OpKind::Put, "b", 7),
            op(3, OpKind::Put, "a", 5),
            op(4, OpKind::Remove, "b", 9),
            op(5, OpKind::Put, "c", 11),
            op(6, OpKind::Put, "c", 13),
        ];
        let (out, stats) = compact_bucket(&ops);
        assert_eq!(sum(&out), sum(&ops), "bucket checksum unchanged");
        assert_eq!(
            stats,
            CompactStats {
                moved: 3,
                cleared: 2
            }
        );
        let kinds: Vec<(u64, OpKind)> = out.iter().map(|o| (o.op_id, o.kind)).collect();
        assert_eq!(
            kinds,
            [
                (2, OpKind::Clear),
                (3, OpKind::Put),
                (4, OpKind::Remove),
                (5, OpKind::Move),
                (6, OpKind::Put)
            ]
        );
        // CLEAR = ops 1 (superseded by 3) and 2 (superseded by 4): u32::MAX + 7 wraps to 6.
        assert_eq!(out[0].checksum, 6);
        assert_eq!(out[0].target_op, Some(4));
        assert_eq!(out[3].target_op, Some(6));
        assert_eq!(out[3].data, None);

        // Compacting again changes nothing.
        let (again, stats) = compact_bucket(&out);
        assert!(stats.is_empty());
        assert_eq!(again, out);
    }

    #[test]
    fn a_bucket_of_removed_rows_becomes_one_clear() {
        let ops = vec![op(1, OpKind::Put, "a", 1), op(2, OpKind::Remove, "a", 2)];
        let (out, stats) = compact_bucket(&ops);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, OpKind::Clear);
        assert_eq!((out[0].op_id, out[0].checksum), (2, 3));
        assert_eq!(
            stats,
            CompactStats {
                moved: 1,
                cleared: 2
            }
        );
        assert!(compact_bucket(&out).1.is_empty());
        assert!(compact_bucket(&[]).0.is_empty());
    }
}
