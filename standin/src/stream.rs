//! One `/sync/stream` connection, as the service's `sync.ts` streams it: a `checkpoint` line
//! (first) or `checkpoint_diff`, the data of the buckets with something new grouped by
//! priority (highest first) with a `partial_checkpoint_complete` after every group but the
//! lowest and `checkpoint_complete` after it, `token_expires_in` keepalives merged into the
//! data, and the end of the stream at token expiry.
//!
//! - A complete line (partial or full) is sent only once its checkpoint is durable.
//! - Once 1000 ops of a checkpoint were sent and a newer checkpoint would send a line, the
//!   current one is abandoned without a complete line (superseded) and a `checkpoint_diff`
//!   follows, continuing from the positions already sent.
//! - A chunk holding a compacted op (MOVE or CLEAR) whose target lies beyond the checkpoint
//!   invalidates it: no complete line; the next checkpoint follows at once.
//! - Lines are NDJSON or BSON ([`crate::bson`]), as negotiated by [`crate::http`].
//! - Each connection has its own bucket set: the buckets its token and client parameters
//!   select under the sync rules ([`Store::request_buckets`]), recomputed whenever parameter
//!   rows change. A bucket that leaves the set is listed in `removed_buckets`; one that joins
//!   it is downloaded from the start. More than [`StreamContext::max_buckets`] buckets end
//!   the stream with an error after its `200 OK` (the service's `PSYNC_S2305`, "Too many
//!   buckets"), which the client sees as a broken stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::SyncRules;
use crate::auth::now_secs;
use crate::checksum::{as_signed, subkey};
use crate::rules::{Resolution, ResolvedBucket, StreamsRequest};
use crate::store::{BucketChecksum, CheckpointView, Op, OpKind, Store};

/// Ops sent for one checkpoint after which a newer checkpoint supersedes it (the service's
/// threshold).
pub const SUPERSEDE_AFTER_OPS: u64 = 1000;

/// One framed line of a stream, or the error that ends it abnormally.
pub type Line = Result<Bytes, std::io::Error>;

/// The service's default limit on the buckets of one connection.
pub const MAX_BUCKETS: usize = 1000;

/// Everything a stream task needs.
#[derive(Debug)]
pub struct StreamContext {
    /// Shared state.
    pub store: Arc<Store>,
    /// The sync rules that pick the connection's buckets.
    pub rules: Arc<SyncRules>,
    /// The verified token payload (`request.jwt()`, `request.user_id()`, `token_parameters`).
    pub claims: Value,
    /// The client's `parameters` object (`request.parameters()`, `user_parameters`).
    pub parameters: Value,
    /// The request's `streams` (explicit subscriptions, `include_defaults`).
    pub streams: StreamsRequest,
    /// Buckets one connection may have (the service's `max_buckets_per_connection`).
    pub max_buckets: usize,
    /// `"<sub>/<client_id>"`: the write checkpoint key.
    pub user_key: String,
    /// Client positions per bucket (`after` of the request).
    pub positions: HashMap<String, u64>,
    /// Token expiry (seconds since the epoch).
    pub exp: i64,
    /// Keepalive interval.
    pub keepalive: Duration,
    /// Warning keepalive this long before expiry.
    pub expire_warning: Duration,
    /// Max ops per data line.
    pub chunk_ops: usize,
    /// BSON framing instead of NDJSON.
    pub bson: bool,
    /// Fires on stand-in shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Changes when the test asks to drop every open stream ([`crate::StandIn::disconnect_streams`]).
    pub disconnect: watch::Receiver<u64>,
}

/// Why a stream ends.
#[derive(Debug)]
struct End;

/// The connection's bucket set and the parameter state it was computed for.
#[derive(Debug, Default)]
struct BucketSet {
    version: Option<(u64, u64)>,
    resolution: Resolution,
}

/// The keepalive and expiry timers of a stream (the service's `tokenStream`).
struct Timers {
    exp: i64,
    keepalive: Duration,
    next_keepalive: Instant,
    warning_at: Option<Instant>,
    expiry_at: Instant,
}

/// A timer line that is due.
enum Due {
    /// `token_expires_in` with the remaining seconds.
    Keepalive(i64),
    /// `token_expires_in: 0`, then the stream ends.
    Expired,
}

impl Timers {
    fn new(exp: i64, keepalive: Duration, expire_warning: Duration) -> Self {
        let start = Instant::now();
        let remaining = (exp - now_secs()).max(0);
        let expiry_at = start + Duration::from_secs(remaining as u64);
        Timers {
            exp,
            keepalive,
            next_keepalive: start + jitter(keepalive),
            warning_at: expiry_at.checked_sub(expire_warning).filter(|&t| t > start),
            expiry_at,
        }
    }

    fn remaining(&self) -> i64 {
        (self.exp - now_secs()).max(0)
    }

    /// The line due at `now`, if any; resets the timer it fires.
    fn due(&mut self, now: Instant) -> Option<Due> {
        if now >= self.expiry_at {
            return Some(Due::Expired);
        }
        if self.warning_at.is_some_and(|t| now >= t) {
            self.warning_at = None;
            return Some(Due::Keepalive(self.remaining()));
        }
        if now >= self.next_keepalive {
            self.next_keepalive = now + jitter(self.keepalive);
            return Some(Due::Keepalive(self.remaining()));
        }
        None
    }

    /// Sleeps until the next timer line is due.
    async fn next(&mut self) -> Due {
        let mut at = self.expiry_at.min(self.next_keepalive);
        if let Some(w) = self.warning_at {
            at = at.min(w);
        }
        tokio::time::sleep_until(at).await;
        self.due(Instant::now())
            .unwrap_or(Due::Keepalive(self.remaining()))
    }
}

/// The sending half of a stream: frames lines, interleaves due timer lines before every
/// line (so keepalives and expiry also happen mid-download), and ends on shutdown, on a
/// disconnect request or when the client is gone.
struct Out {
    tx: mpsc::Sender<Line>,
    bson: bool,
    timers: Timers,
    shutdown: watch::Receiver<bool>,
    disconnect: watch::Receiver<u64>,
}

impl Out {
    fn frame(&self, value: &Value) -> Bytes {
        if self.bson {
            match value.as_object() {
                Some(object) => Bytes::from(crate::bson::document(object)),
                None => Bytes::new(),
            }
        } else {
            let mut bytes = serde_json::to_vec(value).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        }
    }

    async fn raw(&mut self, bytes: Bytes) -> Result<(), End> {
        tokio::select! {
            sent = self.tx.send(Ok(bytes)) => sent.map_err(|_| End),
            _ = self.shutdown.changed() => Err(End),
            _ = self.disconnect.changed() => Err(End),
        }
    }

    async fn timer_line(&mut self, due: Due) -> Result<(), End> {
        match due {
            Due::Keepalive(secs) => {
                let line = self.frame(&json!({ "token_expires_in": secs }));
                self.raw(line).await
            }
            Due::Expired => {
                let line = self.frame(&json!({ "token_expires_in": 0 }));
                let _ = self.raw(line).await;
                Err(End)
            }
        }
    }

    /// Ends the stream abnormally with `message` (the response body fails after `200 OK`).
    async fn fail(&mut self, message: String) -> End {
        let _ = self.tx.send(Err(std::io::Error::other(message))).await;
        End
    }

    /// Sends `bytes` (an already framed line) after any timer line that is due.
    async fn send_framed(&mut self, bytes: Bytes) -> Result<(), End> {
        if let Some(due) = self.timers.due(Instant::now()) {
            self.timer_line(due).await?;
        }
        self.raw(bytes).await
    }

    async fn send(&mut self, value: &Value) -> Result<(), End> {
        let bytes = self.frame(value);
        self.send_framed(bytes).await
    }

    /// One `data` line: NDJSON built directly, BSON from the same JSON.
    async fn data(
        &mut self,
        bucket: &str,
        after: u64,
        next_after: u64,
        has_more: bool,
        ops: &[Op],
    ) -> Result<(), End> {
        let line = data_line(bucket, after, next_after, has_more, ops);
        if self.bson {
            let value: Value = serde_json::from_slice(&line).map_err(|_| End)?;
            self.send(&value).await
        } else {
            self.send_framed(line).await
        }
    }

    /// Waits for `done` to hold, re-checked on every store change, sending timer lines
    /// meanwhile.
    async fn wait_until(
        &mut self,
        store: &Store,
        mut done: impl FnMut(&Store) -> bool,
    ) -> Result<(), End> {
        let mut changes = store.subscribe();
        loop {
            changes.borrow_and_update();
            if done(store) {
                return Ok(());
            }
            tokio::select! {
                changed = changes.changed() => changed.map_err(|_| End)?,
                due = self.timers.next() => self.timer_line(due).await?,
                _ = self.shutdown.changed() => return Err(End),
                _ = self.disconnect.changed() => return Err(End),
                _ = self.tx.closed() => return Err(End),
            }
        }
    }
}

fn jitter(base: Duration) -> Duration {
    // ±10 % without a random number crate: the sub-second clock is random enough here.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.9 + f64::from(nanos % 1000) / 5000.0;
    base.mul_f64(factor)
}

use crate::rows::push_json_string as push_str;

/// Appends one oplog entry as the service maps it: ids and `data` as strings; PUT and REMOVE
/// with `object_type`, `object_id`, `subkey` and `data` (`null` for REMOVE); MOVE and CLEAR
/// with only `op_id`, `op` and `checksum` (a CLEAR's as a signed i32, as the compactor sums).
fn push_op(out: &mut String, op: &Op) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{{\"op_id\":\"{}\",\"op\":\"{}\"",
        op.op_id,
        op.kind.as_str()
    );
    match op.kind {
        OpKind::Put | OpKind::Remove => {
            out.push_str(",\"object_type\":");
            push_str(out, &op.object_type);
            out.push_str(",\"object_id\":");
            push_str(out, &op.object_id);
            out.push_str(",\"subkey\":");
            push_str(out, &subkey(&op.object_type, &op.object_id));
            out.push_str(",\"data\":");
            match (&op.kind, &op.data) {
                (OpKind::Put, Some(data)) => push_str(out, data),
                _ => out.push_str("null"),
            }
            let _ = write!(out, ",\"checksum\":{}}}", op.checksum);
        }
        OpKind::Move => {
            let _ = write!(out, ",\"checksum\":{}}}", op.checksum);
        }
        OpKind::Clear => {
            let _ = write!(out, ",\"checksum\":{}}}", as_signed(op.checksum));
        }
    }
}

/// One `data` line (with its newline).
fn data_line(bucket: &str, after: u64, next_after: u64, has_more: bool, ops: &[Op]) -> Bytes {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 + ops.len() * 160);
    out.push_str("{\"data\":{\"bucket\":");
    push_str(&mut out, bucket);
    let _ = write!(
        out,
        ",\"after\":\"{after}\",\"next_after\":\"{next_after}\",\"has_more\":{has_more},\"data\":["
    );
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_op(&mut out, op);
    }
    out.push_str("]}}\n");
    Bytes::from(out)
}

/// What a stream last announced: bucket checksums and the write checkpoint.
struct Announced {
    buckets: BTreeMap<String, BucketChecksum>,
    write_checkpoint: Option<u64>,
}

/// How sending one checkpoint ended.
enum Outcome {
    /// Nothing to send (no change since the last checkpoint line).
    Unchanged,
    /// `checkpoint_complete` sent.
    Complete,
    /// Abandoned for a newer checkpoint (superseded) or by compaction (invalidated).
    Abandoned,
}

/// A bucket of the connection as its checkpoint lines describe it.
#[derive(Debug, Clone)]
struct BucketInfo {
    name: String,
    priority: u8,
    /// `[{"default": <index into the checkpoint's streams>} | {"sub": <subscription>}]`.
    subscriptions: Vec<Value>,
}

impl BucketInfo {
    fn new(bucket: &ResolvedBucket, resolution: &Resolution) -> Self {
        BucketInfo {
            name: bucket.bucket.clone(),
            priority: bucket.priority,
            subscriptions: resolution.subscriptions(bucket),
        }
    }
}

fn bucket_json(info: &BucketInfo, sum: BucketChecksum) -> Value {
    json!({
        "bucket": info.name,
        "checksum": as_signed(sum.checksum),
        "count": sum.count,
        "priority": info.priority,
        "subscriptions": info.subscriptions,
    })
}

impl StreamContext {
    /// The connection's resolution (versioned ids, sorted), recomputed when parameter rows
    /// changed; `Err` with the service's message when there are more than `max_buckets`.
    fn buckets(&self, set: &mut BucketSet) -> Result<Resolution, String> {
        let version = self.store.parameters_version();
        if set.version != Some(version) {
            set.resolution =
                self.store
                    .resolve(&self.rules, &self.claims, &self.parameters, &self.streams);
            set.version = Some(version);
        }
        let buckets = &set.resolution.buckets;
        if buckets.len() > self.max_buckets {
            let mut by_definition: BTreeMap<&str, usize> = BTreeMap::new();
            for bucket in buckets {
                *by_definition.entry(bucket.definition.as_str()).or_default() += 1;
            }
            let breakdown: Vec<String> = by_definition
                .iter()
                .map(|(d, n)| format!("{d}: {n}"))
                .collect();
            return Err(format!(
                "Too many buckets: {} (limit of {}); by definition: {}",
                buckets.len(),
                self.max_buckets,
                breakdown.join(", ")
            ));
        }
        Ok(set.resolution.clone())
    }

    fn write_checkpoint(&self, view: &CheckpointView) -> Option<u64> {
        self.store
            .write_checkpoint(&self.user_key, view.replicated_lsn)
    }

    /// Runs until the client goes away, the token expires or the stand-in shuts down.
    pub async fn run(mut self, tx: mpsc::Sender<Line>) {
        // Receivers are cloned from long-lived ones: only changes after this point count.
        self.disconnect.borrow_and_update();
        self.shutdown.borrow_and_update();
        if *self.shutdown.borrow() {
            return;
        }
        let mut out = Out {
            tx,
            bson: self.bson,
            timers: Timers::new(self.exp, self.keepalive, self.expire_warning),
            shutdown: self.shutdown.clone(),
            disconnect: self.disconnect.clone(),
        };
        if out.timers.remaining() == 0 {
            let _ = out.timer_line(Due::Expired).await;
            return;
        }
        let mut version = self.store.subscribe();
        let mut last: Option<Announced> = None;
        let mut set = BucketSet::default();
        loop {
            version.borrow_and_update();
            let outcome = match self
                .send_checkpoint(&mut out, &mut last, &mut set, &version)
                .await
            {
                Ok(outcome) => outcome,
                Err(End) => return,
            };
            if matches!(outcome, Outcome::Abandoned) {
                continue;
            }
            if !matches!(outcome, Outcome::Unchanged) {
                // The service pauses 10 ms after a complete checkpoint.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            loop {
                tokio::select! {
                    changed = version.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    due = out.timers.next() => {
                        if out.timer_line(due).await.is_err() { return; }
                    }
                    _ = self.shutdown.changed() => return,
                    _ = self.disconnect.changed() => return,
                    _ = out.tx.closed() => return,
                }
            }
        }
    }

    /// Name, priority and subscription reasons of each bucket of `resolution`.
    fn infos(resolution: &Resolution) -> Vec<BucketInfo> {
        resolution
            .buckets
            .iter()
            .map(|b| BucketInfo::new(b, resolution))
            .collect()
    }

    /// The checkpoint or diff line for `view`, or `None` when nothing changed since `last`.
    fn header(
        &self,
        view: &CheckpointView,
        resolution: &Resolution,
        infos: &[BucketInfo],
        wcp: Option<u64>,
        last: Option<&Announced>,
        bson: bool,
    ) -> Option<Value> {
        let checkpoint = view.checkpoint.to_string();
        let info_sum = |info: &BucketInfo| {
            view.buckets
                .get(&info.name)
                .map(|sum| bucket_json(info, *sum))
        };
        let mut line = match last {
            None => {
                let buckets: Vec<Value> = infos.iter().filter_map(info_sum).collect();
                let streams: Vec<Value> = resolution.streams.iter().map(|s| s.to_json()).collect();
                json!({"checkpoint": {"last_op_id": checkpoint, "buckets": buckets, "streams": streams}})
            }
            Some(previous) => {
                let updated: Vec<Value> = infos
                    .iter()
                    .filter(|i| previous.buckets.get(&i.name) != view.buckets.get(&i.name))
                    .filter_map(info_sum)
                    .collect();
                let removed: Vec<&String> = previous
                    .buckets
                    .keys()
                    .filter(|name| !view.buckets.contains_key(*name))
                    .collect();
                if updated.is_empty() && removed.is_empty() && wcp == previous.write_checkpoint {
                    return None;
                }
                json!({"checkpoint_diff": {"last_op_id": checkpoint, "updated_buckets": updated,
                                           "removed_buckets": removed}})
            }
        };
        let body = line
            .as_object_mut()
            .and_then(|o| o.values_mut().next())
            .and_then(Value::as_object_mut);
        if let Some(body) = body {
            match wcp {
                Some(id) => {
                    body.insert("write_checkpoint".to_owned(), Value::String(id.to_string()));
                }
                // The service leaves it `undefined`: JSON.stringify drops it, js-bson writes null.
                None if bson => {
                    body.insert("write_checkpoint".to_owned(), Value::Null);
                }
                None => {}
            }
        }
        Some(line)
    }

    /// Sends the checkpoint line, the data grouped by priority with the complete lines, and
    /// says how it ended.
    async fn send_checkpoint(
        &mut self,
        out: &mut Out,
        last: &mut Option<Announced>,
        set: &mut BucketSet,
        version: &watch::Receiver<u64>,
    ) -> Result<Outcome, End> {
        let resolution = match self.buckets(set) {
            Ok(resolution) => resolution,
            Err(message) => {
                tracing::warn!("sync stream of {} ended: {message}", self.user_key);
                return Err(out.fail(message).await);
            }
        };
        let names: Vec<String> = resolution
            .buckets
            .iter()
            .map(|b| b.bucket.clone())
            .collect();
        let view = self.store.view_of(&names);
        let infos = Self::infos(&resolution);
        let wcp = self.write_checkpoint(&view);
        let Some(header) = self.header(&view, &resolution, &infos, wcp, last.as_ref(), out.bson)
        else {
            return Ok(Outcome::Unchanged);
        };
        out.send(&header).await?;
        if let Some(previous) = last.as_ref() {
            // A bucket that left the set starts from scratch if it comes back.
            for name in previous.buckets.keys() {
                if !view.buckets.contains_key(name) {
                    self.positions.remove(name);
                }
            }
        }
        *last = Some(Announced {
            buckets: view.buckets.clone(),
            write_checkpoint: wcp,
        });
        let checkpoint = view.checkpoint;

        // The buckets with data to send, grouped by priority, highest (0) first.
        let mut groups: BTreeMap<u8, Vec<&BucketInfo>> = BTreeMap::new();
        for info in &infos {
            let after = self.positions.get(&info.name).copied().unwrap_or(0);
            if !self.store.ops(&info.name, after, checkpoint, 1).is_empty() {
                groups.entry(info.priority).or_default().push(info);
            }
        }
        let lowest = groups.keys().next_back().copied();
        let mut sent_ops: u64 = 0;
        let mut invalidated = false;
        for (&priority, buckets) in &groups {
            for info in buckets {
                let name = &info.name;
                let mut after = self.positions.get(name).copied().unwrap_or(0);
                loop {
                    let ops = self.store.ops(name, after, checkpoint, self.chunk_ops);
                    let Some(last_op) = ops.last() else { break };
                    let next_after = last_op.op_id;
                    let has_more = ops.len() == self.chunk_ops
                        && !self.store.ops(name, next_after, checkpoint, 1).is_empty();
                    invalidated |= ops
                        .iter()
                        .any(|op| op.target_op.is_some_and(|t| t > checkpoint));
                    out.data(name, after, next_after, has_more, &ops).await?;
                    after = next_after;
                    self.positions.insert(name.clone(), after);
                    sent_ops += ops.len() as u64;
                    if sent_ops >= SUPERSEDE_AFTER_OPS && self.superseded(version, last, set) {
                        return Ok(Outcome::Abandoned);
                    }
                }
            }
            if invalidated {
                return Ok(Outcome::Abandoned);
            }
            out.wait_until(&self.store, |s| s.durable_checkpoint() >= checkpoint)
                .await?;
            if Some(priority) != lowest {
                out.send(&json!({"partial_checkpoint_complete": {
                    "last_op_id": checkpoint.to_string(), "priority": priority}}))
                    .await?;
            }
        }
        out.wait_until(&self.store, |s| s.durable_checkpoint() >= checkpoint)
            .await?;
        out.send(&json!({"checkpoint_complete": {"last_op_id": checkpoint.to_string()}}))
            .await?;
        Ok(Outcome::Complete)
    }

    /// Whether a newer checkpoint than the one being sent would produce a line.
    fn superseded(
        &self,
        version: &watch::Receiver<u64>,
        last: &Option<Announced>,
        set: &mut BucketSet,
    ) -> bool {
        if !version.has_changed().unwrap_or(false) {
            return false;
        }
        let Ok(resolution) = self.buckets(set) else {
            // The next checkpoint ends the stream: stop sending this one.
            return true;
        };
        let names: Vec<String> = resolution
            .buckets
            .iter()
            .map(|b| b.bucket.clone())
            .collect();
        let view = self.store.view_of(&names);
        let infos = Self::infos(&resolution);
        let wcp = self.write_checkpoint(&view);
        self.header(&view, &resolution, &infos, wcp, last.as_ref(), false)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_use_strings_for_ids_and_data() {
        let put = Op {
            op_id: 7,
            bucket: "global[]".into(),
            kind: OpKind::Put,
            object_type: "lww".into(),
            object_id: "a\"b".into(),
            data: Some(r#"{"id":"a\"b"}"#.into()),
            checksum: 4294967295,
            target_op: None,
        };
        let remove = Op {
            op_id: 8,
            kind: OpKind::Remove,
            data: None,
            checksum: 1,
            ..put.clone()
        };
        let bytes = data_line("global[]", 6, 8, false, &[put, remove]);
        assert!(bytes.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"data": {"bucket": "global[]", "after": "6", "next_after": "8", "has_more": false,
            "data": [
                {"op_id": "7", "op": "PUT", "object_type": "lww", "object_id": "a\"b",
                 "subkey": "lww/a\"b", "data": "{\"id\":\"a\\\"b\"}", "checksum": 4294967295u32},
                {"op_id": "8", "op": "REMOVE", "object_type": "lww", "object_id": "a\"b",
                 "subkey": "lww/a\"b", "data": null, "checksum": 1}
            ]}})
        );
    }

    #[test]
    fn move_and_clear_carry_only_their_checksum() {
        let base = Op {
            op_id: 3,
            bucket: "b".into(),
            kind: OpKind::Move,
            object_type: String::new(),
            object_id: String::new(),
            data: None,
            checksum: 4000000000,
            target_op: Some(9),
        };
        let clear = Op {
            op_id: 4,
            kind: OpKind::Clear,
            ..base.clone()
        };
        let v: Value =
            serde_json::from_slice(&data_line("b", 0, 4, false, &[base, clear])).unwrap();
        assert_eq!(
            v["data"]["data"],
            json!([
                {"op_id": "3", "op": "MOVE", "checksum": 4000000000u32},
                {"op_id": "4", "op": "CLEAR", "checksum": -294967296}
            ])
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(20));
            assert!(
                d >= Duration::from_secs(18) && d <= Duration::from_secs(22),
                "{d:?}"
            );
        }
    }
}
