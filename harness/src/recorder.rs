//! Recording a history while a run happens: operations get their `index` and `time` (ns since
//! the start) when recorded, from any task.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::history::{History, NodeResult, Op, OpType, Process, Value};

/// Counts of completed client operations, for the progress bar and the summary.
#[derive(Debug, Default)]
pub struct Counts {
    /// `ok` completions.
    pub ok: AtomicU64,
    /// `fail` completions.
    pub fail: AtomicU64,
    /// `info` completions.
    pub info: AtomicU64,
}

impl Counts {
    /// `(ok, fail, info)` now.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// The history being recorded.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    /// Completed client operations so far.
    pub counts: Counts,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history starting now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            counts: Counts::default(),
        }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// Appends `op`, setting its `index` and `time`.
    pub fn record(&self, mut op: Op) {
        if op.client().is_some() {
            let counter = match op.op_type {
                OpType::Ok => Some(&self.counts.ok),
                OpType::Fail => Some(&self.counts.fail),
                OpType::Info => Some(&self.counts.info),
                OpType::Invoke => None,
            };
            if let Some(c) = counter {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A poisoned lock only means another recording task panicked; the ops are still sound.
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        op.index = ops.len() as u64;
        op.time = self.now();
        ops.push(op);
    }

    /// Records a nemesis operation (Jepsen's `:nemesis` process, type `info`).
    pub fn nemesis(&self, f: &str, node: Option<&str>, error: Option<String>) {
        self.nemesis_op(f, Value::None, node.map(str::to_owned), error);
    }

    /// Records a nemesis operation on several nodes: its value maps each node to what happened
    /// there (Jepsen's `{"n1" :killed, "n2" :killed}`); `node` is set when there is one.
    pub fn nemesis_nodes(
        &self,
        f: &str,
        nodes: BTreeMap<String, NodeResult>,
        error: Option<String>,
    ) {
        let node = match nodes.keys().collect::<Vec<_>>()[..] {
            [one] => Some(one.clone()),
            _ => None,
        };
        self.nemesis_op(f, Value::Nodes(nodes), node, error);
    }

    fn nemesis_op(&self, f: &str, value: Value, node: Option<String>, error: Option<String>) {
        self.record(Op {
            index: 0,
            time: 0,
            op_type: OpType::Info,
            process: Process::Named("nemesis".into()),
            f: f.to_owned(),
            value,
            node,
            final_read: false,
            error,
        });
    }

    /// The history recorded so far.
    pub fn history(&self) -> History {
        History::new(self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
