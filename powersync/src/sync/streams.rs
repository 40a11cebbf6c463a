//! Sync Streams on the client: subscriptions the app holds, and the core's `subscriptions` and
//! `update_subscriptions` operations (core 0.4.5+).
//!
//! The core keeps every explicit subscription in `ps_stream_subscriptions`, each with a TTL, and
//! requests it from the service until it expires. What the app holds is tracked here: a stream
//! is *active* while at least one [`StreamSubscription`] handle for it is alive. Active streams
//! go into every `start` (`active_streams`, whose expiry the core extends at each connect and
//! disconnect) and, when the set changes while connected, into `update_subscriptions`; the core
//! then reconnects if the stream request changed. Once the last handle is dropped, the stream
//! stays requested until its TTL runs out (a day by default), as in the official SDKs;
//! [`SyncStream::unsubscribe_all`] ends it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};
use crate::status::{SyncStatus, SyncStreamStatus};
use crate::sync::control::Payload;
use crate::sync::coordinator::SyncShared;

/// One stream with one set of parameters: what the core keys a subscription by. Keys are
/// equal when the names and the parameters' JSON text are (the core compares them as text);
/// the parsed parameters are kept beside the text, so nothing is parsed again.
#[derive(Debug, Clone)]
pub(crate) struct StreamKey {
    name: String,
    params: Option<String>,
    /// `params`, parsed (`null` without parameters).
    value: Value,
}

impl StreamKey {
    fn new(name: &str, params: Option<&Map<String, Value>>) -> Self {
        let value = params.map_or(Value::Null, |p| Value::Object(p.clone()));
        Self {
            name: name.to_owned(),
            params: params.map(|_| value.to_string()),
            value,
        }
    }

    /// `{"name": …, "params": …}`, the core's `StreamKey`.
    fn to_json(&self) -> Value {
        json!({"name": self.name, "params": self.value})
    }
}

impl PartialEq for StreamKey {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.params) == (&other.name, &other.params)
    }
}

impl Eq for StreamKey {}

impl std::hash::Hash for StreamKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.name, &self.params).hash(state);
    }
}

/// The streams the app holds subscriptions to, and a counter that moves whenever the request
/// the core would build may have changed.
pub(crate) struct StreamTracker {
    held: Mutex<HashMap<StreamKey, Weak<Held>>>,
    changed: watch::Sender<u64>,
}

impl Default for StreamTracker {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }
}

impl StreamTracker {
    /// The active streams as the core takes them in `start.active_streams` and
    /// `update_subscriptions` (sorted, so equal sets give equal text).
    pub(crate) fn active_json(&self) -> Value {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&StreamKey> = held
            .iter()
            .filter(|(_, h)| h.strong_count() > 0)
            .map(|(k, _)| k)
            .collect();
        keys.sort_by(|a, b| (&a.name, &a.params).cmp(&(&b.name, &b.params)));
        Value::Array(keys.into_iter().map(StreamKey::to_json).collect())
    }

    /// Wakes the download loop: the stream request may have changed.
    pub(crate) fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every [`touch`](Self::touch) after it was made.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The shared handle state of `key`, made if no handle for it is alive. It does not wake
    /// the download loop: the caller does once the core stored the subscription (one wake,
    /// one `update_subscriptions`, per subscribe).
    fn hold(&self, shared: &Arc<SyncShared>, key: StreamKey) -> Arc<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = held.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        let entry = Arc::new(Held {
            shared: Arc::clone(shared),
            key: key.clone(),
        });
        held.insert(key, Arc::downgrade(&entry));
        entry
    }
}

/// What all handles of one stream share; dropping the last one makes the stream inactive.
struct Held {
    shared: Arc<SyncShared>,
    key: StreamKey,
}

impl Drop for Held {
    fn drop(&mut self) {
        let tracker = &self.shared.streams;
        let mut held = tracker.held.lock().unwrap_or_else(|p| p.into_inner());
        // A handle made for the same key after this one died has its own live entry.
        if held.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            held.remove(&self.key);
        }
        drop(held);
        tracker.touch();
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("key", &self.key).finish()
    }
}

impl std::fmt::Debug for StreamTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTracker")
            .field("active", &self.active_json())
            .finish()
    }
}

/// How to subscribe to a stream ([`SyncStream::subscribe`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// How long the stream stays requested after its last handle is dropped (and, while held,
    /// past each connect and disconnect). `None`: the core's default, one day.
    pub ttl: Option<Duration>,
    /// Overrides the priority of the stream's buckets (0 = synced first … 3); a lower number
    /// than the stream's own wins. `None`: the stream's priority.
    pub priority: Option<u8>,
}

impl SubscribeOptions {
    /// Sets [`ttl`](Self::ttl).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets [`priority`](Self::priority).
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// A Sync Stream of the service's sync config, with the parameters to subscribe with
/// ([`PowerSyncDatabase::sync_stream`]).
#[derive(Debug, Clone)]
pub struct SyncStream {
    db: PowerSyncDatabase,
    key: StreamKey,
}

/// Keeps a stream subscribed while it (or a clone) is alive. Dropping the last handle of a
/// stream, or [`unsubscribe`](Self::unsubscribe), makes it inactive: it stays requested until
/// its TTL expires.
#[derive(Debug, Clone)]
pub struct StreamSubscription {
    held: Arc<Held>,
}

impl PowerSyncDatabase {
    /// The stream `name` of the sync config with subscription parameters `params` (read by the
    /// stream's queries as `subscription.parameter('…')`). Nothing is sent until
    /// [`SyncStream::subscribe`].
    ///
    /// ```no_run
    /// # async fn demo(db: powersync::PowerSyncDatabase) -> powersync::Result<()> {
    /// use powersync::SubscribeOptions;
    /// use std::time::Duration;
    /// let params = serde_json::json!({"list": "a"});
    /// let todos = db
    ///     .sync_stream("list_todos", params.as_object())
    ///     .subscribe(SubscribeOptions::default().with_ttl(Duration::from_secs(3600)))
    ///     .await?;
    /// todos.wait_for_first_sync(Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub fn sync_stream(&self, name: &str, params: Option<&Map<String, Value>>) -> SyncStream {
        SyncStream {
            db: self.clone(),
            key: StreamKey::new(name, params),
        }
    }

    /// `Err(UnsupportedByCore)` unless the core has Sync Streams (0.4.5+).
    fn check_streams(&self) -> Result<()> {
        if self.capabilities()?.has_control_op("subscriptions") {
            Ok(())
        } else {
            Err(Error::UnsupportedByCore {
                feature: "sync streams",
                needs: "0.4.5",
                found: self.core_version().clone(),
            })
        }
    }

    /// Runs the core's `subscriptions` operation, then shows the stored subscriptions in the
    /// status and wakes the download loop.
    async fn subscription_command(&self, command: Value) -> Result<()> {
        self.check_streams()?;
        self.control("subscriptions", Payload::Text(command.to_string()))
            .await?;
        self.refresh_stream_status().await?;
        self.inner.sync.shared.streams.touch();
        Ok(())
    }

    /// Reads the subscriptions the core stores (`powersync_offline_sync_status`) into the
    /// status while no stream is connected; a connected iteration reports them itself.
    pub(crate) async fn refresh_stream_status(&self) -> Result<()> {
        let micros = self
            .capabilities()?
            .last_synced_at
            .is_none_or(|u| u == powersync_sys::TimeUnit::Microseconds);
        let offline: String = self
            .internal_write_transaction(|tx| -> Result<String> {
                Ok(tx.query_row("SELECT powersync_offline_sync_status()", [], |r| r.get(0))?)
            })
            .await?;
        let offline: Value = serde_json::from_str(&offline).map_err(|e| Error::Decode {
            what: "powersync_offline_sync_status",
            detail: e.to_string(),
        })?;
        self.inner.sync.shared.status.send_if_modified(|s| {
            if s.connected || s.connecting {
                return false;
            }
            let streams = crate::sync::status_map::streams_of(&offline, micros);
            let changed = streams != s.streams;
            s.streams = streams;
            changed
        });
        Ok(())
    }
}

impl SyncStream {
    /// Subscribes (the core stores the subscription with its TTL and priority) and returns a
    /// handle that keeps the stream active. Subscribing again with other options updates the
    /// stored TTL and takes the more urgent priority. A priority above 3 is
    /// [`Error::InvalidArgument`]; a core older than 0.4.5 is [`Error::UnsupportedByCore`].
    pub async fn subscribe(&self, options: SubscribeOptions) -> Result<StreamSubscription> {
        if let Some(p) = options.priority
            && p > 3
        {
            return Err(Error::InvalidArgument(format!(
                "stream priority {p} is out of range (0 = synced first … 3)"
            )));
        }
        let mut subscribe = json!({"stream": self.key.to_json()});
        if let Some(ttl) = options.ttl {
            subscribe["ttl"] = json!(ttl.as_secs());
        }
        if let Some(priority) = options.priority {
            subscribe["priority"] = json!(priority);
        }
        // Held before the core stores it: a sync iteration that starts in between must find
        // the stream in `active_streams`, or the core may drop the stored subscription as
        // expired (with a short TTL) before the handle exists.
        let shared = &self.db.inner.sync.shared;
        let subscription = StreamSubscription {
            held: shared.streams.hold(shared, self.key.clone()),
        };
        self.db
            .subscription_command(json!({ "subscribe": subscribe }))
            .await?;
        Ok(subscription)
    }

    /// Removes the stored subscription at once, whatever its TTL and whatever handles are
    /// still alive (they no longer keep it requested; subscribe again to resume).
    pub async fn unsubscribe_all(&self) -> Result<()> {
        {
            let tracker = &self.db.inner.sync.shared.streams;
            let mut held = tracker.held.lock().unwrap_or_else(|p| p.into_inner());
            held.remove(&self.key);
        }
        self.db
            .subscription_command(json!({ "unsubscribe": self.key.to_json() }))
            .await
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }
}

impl StreamSubscription {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.held.key.name
    }

    /// The subscription parameters, if any.
    pub fn parameters(&self) -> Option<Value> {
        self.params().cloned()
    }

    fn params(&self) -> Option<&Value> {
        Some(&self.held.key.value).filter(|v| !v.is_null())
    }

    /// This subscription's entry in `status`, if the core reports it.
    pub fn status_in<'a>(&self, status: &'a SyncStatus) -> Option<&'a SyncStreamStatus> {
        status.for_stream(self.name(), self.params())
    }

    /// Waits until the stream has been synced at least once (its `last_synced_at` is set), at
    /// most `timeout`.
    pub async fn wait_for_first_sync(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.held.shared.status.subscribe();
        let params = self.parameters();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                s.for_stream(self.name(), params.as_ref())
                    .is_some_and(SyncStreamStatus::has_synced)
            }),
        )
        .await
        .map_err(|_| Error::Timeout(timeout, "the first sync of a stream"))?
        .map_err(|_| Error::Closed)?;
        Ok(())
    }

    /// Drops this handle: once no handle of the stream is left, it is inactive and expires
    /// after its TTL.
    pub fn unsubscribe(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<SyncShared> {
        Arc::new(SyncShared::new())
    }

    #[test]
    fn a_stream_is_active_while_a_handle_lives() {
        let shared = shared();
        let mut changed = shared.streams.watch();
        let params = json!({"list": "a"});
        let key = StreamKey::new("todos", params.as_object());
        let first = shared.streams.hold(&shared, key.clone());
        let second = shared.streams.hold(&shared, key.clone());
        assert!(Arc::ptr_eq(&first, &second), "one entry per key");
        assert!(
            !changed.has_changed().unwrap(),
            "holding wakes nobody: subscribe does, once the core stored the subscription"
        );
        assert_eq!(
            shared.streams.active_json(),
            json!([{"name": "todos", "params": {"list": "a"}}])
        );
        drop(first);
        assert_eq!(shared.streams.active_json().as_array().unwrap().len(), 1);
        changed.mark_unchanged();
        drop(second);
        assert_eq!(shared.streams.active_json(), json!([]));
        assert!(changed.has_changed().unwrap());
    }

    #[test]
    fn active_streams_are_sorted_and_params_are_stable_text() {
        let shared = shared();
        let b = json!({"z": 1, "a": [1, 2]});
        let _b = shared
            .streams
            .hold(&shared, StreamKey::new("b", b.as_object()));
        let _a = shared.streams.hold(&shared, StreamKey::new("a", None));
        assert_eq!(
            shared.streams.active_json().to_string(),
            r#"[{"name":"a","params":null},{"name":"b","params":{"a":[1,2],"z":1}}]"#
        );
    }
}
