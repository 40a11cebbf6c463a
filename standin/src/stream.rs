//! One `/sync/stream` connection: checkpoint, data chunks and `checkpoint_complete` for every
//! new checkpoint, `token_expires_in` keepalives, and the end of the stream at token expiry
//! (sync-protocol.md §2, §5.4).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::auth::now_secs;
use crate::checksum::{as_signed, subkey};
use crate::store::{BucketChecksum, Op, OpKind, Store};

/// Everything a stream task needs.
#[derive(Debug)]
pub struct StreamContext {
    /// Shared state.
    pub store: Arc<Store>,
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
    /// `(bucket name, index into streams)` and the stream (definition) names.
    pub bucket_streams: Vec<(String, usize)>,
    /// Definition names, the default streams.
    pub stream_names: Vec<String>,
    /// Fires on stand-in shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Changes when the test asks to drop every open stream ([`crate::StandIn::disconnect_streams`]).
    pub disconnect: watch::Receiver<u64>,
}

/// Serialises one NDJSON line.
fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
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

/// Appends one oplog entry: ids and `data` as strings, as the core requires.
fn push_op(out: &mut String, op: &Op) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{{\"op_id\":\"{}\",\"op\":\"{}\",\"object_type\":",
        op.op_id,
        op.kind.as_str()
    );
    push_str(out, &op.object_type);
    out.push_str(",\"object_id\":");
    push_str(out, &op.object_id);
    out.push_str(",\"subkey\":");
    push_str(out, &subkey(&op.object_type, &op.object_id));
    if op.kind == OpKind::Put
        && let Some(data) = &op.data
    {
        out.push_str(",\"data\":");
        push_str(out, data);
    }
    let _ = write!(out, ",\"checksum\":{}}}", op.checksum);
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

impl StreamContext {
    fn bucket_json(&self, name: &str, sum: BucketChecksum) -> Value {
        let stream = self
            .bucket_streams
            .iter()
            .find(|(b, _)| b == name)
            .map(|(_, i)| *i)
            .unwrap_or(0);
        json!({
            "bucket": name,
            "checksum": as_signed(sum.checksum),
            "count": sum.count,
            "priority": 3,
            "subscriptions": [{"default": stream}],
        })
    }

    fn token_expires_in(&self) -> i64 {
        (self.exp - now_secs()).max(0)
    }

    /// Runs until the client goes away, the token expires or the stand-in shuts down.
    pub async fn run(mut self, tx: mpsc::Sender<Bytes>) {
        // Receivers are cloned from long-lived ones: only changes after this point count.
        self.disconnect.borrow_and_update();
        self.shutdown.borrow_and_update();
        if *self.shutdown.borrow() {
            return;
        }
        let start = Instant::now();
        let remaining = self.token_expires_in();
        if remaining == 0 {
            let _ = tx.send(line(&json!({"token_expires_in": 0}))).await;
            return;
        }
        let expiry_at = start + Duration::from_secs(remaining as u64);
        let mut warning_at = expiry_at
            .checked_sub(self.expire_warning)
            .filter(|&t| t > start);
        let mut next_keepalive = start + jitter(self.keepalive);
        let mut version = self.store.subscribe();
        let mut last: Option<(BTreeMap<String, BucketChecksum>, Option<u64>)> = None;
        loop {
            version.borrow_and_update();
            if self.send_checkpoint(&tx, &mut last).await.is_err() {
                return;
            }
            loop {
                let warn = async {
                    match warning_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = version.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    _ = tokio::time::sleep_until(next_keepalive) => {
                        next_keepalive = Instant::now() + jitter(self.keepalive);
                        let v = json!({"token_expires_in": self.token_expires_in()});
                        if tx.send(line(&v)).await.is_err() { return; }
                    }
                    _ = warn => {
                        warning_at = None;
                        let v = json!({"token_expires_in": self.token_expires_in()});
                        if tx.send(line(&v)).await.is_err() { return; }
                    }
                    _ = tokio::time::sleep_until(expiry_at) => {
                        let _ = tx.send(line(&json!({"token_expires_in": 0}))).await;
                        return;
                    }
                    _ = self.shutdown.changed() => return,
                    _ = self.disconnect.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        }
    }

    /// Sends a checkpoint (first time) or a checkpoint_diff when buckets or the write
    /// checkpoint changed, then the data and `checkpoint_complete`.
    async fn send_checkpoint(
        &mut self,
        tx: &mpsc::Sender<Bytes>,
        last: &mut Option<(BTreeMap<String, BucketChecksum>, Option<u64>)>,
    ) -> Result<(), ()> {
        let view = self.store.view();
        let wcp = self
            .store
            .write_checkpoint(&self.user_key, view.replicated_lsn);
        let checkpoint = view.checkpoint.to_string();
        let header = match last.as_ref() {
            None => {
                let buckets: Vec<Value> = view
                    .buckets
                    .iter()
                    .map(|(name, sum)| self.bucket_json(name, *sum))
                    .collect();
                let streams: Vec<Value> = self
                    .stream_names
                    .iter()
                    .map(|n| json!({"name": n, "is_default": true, "errors": []}))
                    .collect();
                let mut cp =
                    json!({"last_op_id": checkpoint, "buckets": buckets, "streams": streams});
                if let (Some(id), Some(obj)) = (wcp, cp.as_object_mut()) {
                    obj.insert("write_checkpoint".to_owned(), Value::String(id.to_string()));
                }
                json!({ "checkpoint": cp })
            }
            Some((previous, previous_wcp)) => {
                let updated: Vec<Value> = view
                    .buckets
                    .iter()
                    .filter(|(name, sum)| previous.get(*name) != Some(*sum))
                    .map(|(name, sum)| self.bucket_json(name, *sum))
                    .collect();
                if updated.is_empty() && wcp == *previous_wcp {
                    return Ok(());
                }
                let mut diff = json!({"last_op_id": checkpoint, "updated_buckets": updated,
                                      "removed_buckets": []});
                if let (Some(id), Some(obj)) = (wcp, diff.as_object_mut()) {
                    obj.insert("write_checkpoint".to_owned(), Value::String(id.to_string()));
                }
                json!({ "checkpoint_diff": diff })
            }
        };
        tx.send(line(&header)).await.map_err(|_| ())?;
        for name in view.buckets.keys() {
            let mut after = self.positions.get(name).copied().unwrap_or(0);
            while after < view.checkpoint {
                let ops = self.store.ops(name, after, view.checkpoint, self.chunk_ops);
                let Some(last_op) = ops.last() else { break };
                let next_after = last_op.op_id;
                let has_more = ops.len() == self.chunk_ops
                    && !self
                        .store
                        .ops(name, next_after, view.checkpoint, 1)
                        .is_empty();
                tx.send(data_line(name, after, next_after, has_more, &ops))
                    .await
                    .map_err(|_| ())?;
                after = next_after;
            }
            self.positions
                .insert(name.clone(), view.checkpoint.max(after));
        }
        tx.send(line(
            &json!({"checkpoint_complete": {"last_op_id": checkpoint}}),
        ))
        .await
        .map_err(|_| ())?;
        *last = Some((view.buckets, wcp));
        Ok(())
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
                 "subkey": "lww/a\"b", "checksum": 1}
            ]}})
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
