//! The sync status, published on a watch channel.

use std::time::SystemTime;

use serde_json::Value;

/// The priority the core reports for a complete sync (every priority included).
pub const FULL_SYNC_PRIORITY: i32 = i32::MAX;

/// Whether the buckets of a priority have been synced, from the core's `priority_status`.
/// Bucket priorities run from 0 (synced first) to 3 (the default); a sync at priority `p`
/// includes every bucket with a priority number of at most `p`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorityStatus {
    /// The priority (0..=3, or [`FULL_SYNC_PRIORITY`]).
    pub priority: i32,
    /// Whether a checkpoint including this priority was ever applied.
    pub has_synced: Option<bool>,
    /// When one was last applied.
    pub last_synced_at: Option<SystemTime>,
}

/// Download progress of the current checkpoint, from the core's `UpdateSyncStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Operations downloaded so far for the checkpoint being synced.
    pub downloaded: u64,
    /// Operations the checkpoint holds in total.
    pub total: u64,
}

/// One Sync Stream subscription as the core reports it: an explicit subscription, a default
/// stream of the sync config, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStreamStatus {
    /// The stream's name in the sync config.
    pub name: String,
    /// The subscription parameters (`None` for a default stream's own entry).
    pub parameters: Option<Value>,
    /// The most urgent priority of the stream's buckets, once the service sent them.
    pub priority: Option<i32>,
    /// The service acknowledged the subscription (it was in a checkpoint's `streams`).
    pub active: bool,
    /// A default stream (`auto_subscribe: true`, or a bucket definition).
    pub is_default: bool,
    /// Subscribed explicitly ([`crate::SyncStream::subscribe`]), possibly also a default.
    pub has_explicit_subscription: bool,
    /// When an explicit subscription stops being requested unless it is held or renewed.
    pub expires_at: Option<SystemTime>,
    /// When a checkpoint including the stream was last applied.
    pub last_synced_at: Option<SystemTime>,
    /// Operations of the stream's buckets downloaded for the checkpoint being synced, while
    /// downloading.
    pub progress: Option<DownloadProgress>,
}

impl SyncStreamStatus {
    /// Whether the stream has been synced at least once.
    pub fn has_synced(&self) -> bool {
        self.last_synced_at.is_some()
    }
}

/// What the client is doing and how it went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStatus {
    /// The sync stream is open.
    pub connected: bool,
    /// A sync stream is being opened.
    pub connecting: bool,
    /// A checkpoint is being downloaded.
    pub downloading: bool,
    /// The upload loop is calling the connector.
    pub uploading: bool,
    /// When a full checkpoint was last applied.
    pub last_synced_at: Option<SystemTime>,
    /// Whether a full checkpoint was ever applied (`None` before the first status from the
    /// core).
    pub has_synced: Option<bool>,
    /// The last upload error; cleared by the next successful upload.
    pub upload_error: Option<String>,
    /// The last download error; cleared when a checkpoint completes.
    pub download_error: Option<String>,
    /// Download progress while `downloading`.
    pub download_progress: Option<DownloadProgress>,
    /// The core's per-priority entries (ascending priority number), including partial syncs
    /// from `partial_checkpoint_complete`; see [`SyncStatus::status_for_priority`].
    pub priority_status: Vec<PriorityStatus>,
    /// The Sync Streams the core tracks: explicit subscriptions and default streams (core
    /// 0.4.5+); see [`SyncStatus::for_stream`].
    pub streams: Vec<SyncStreamStatus>,
}

impl SyncStatus {
    /// The sync state of the buckets with priority `priority`: the entry of the closest
    /// priority at or below in importance (a number at least `priority`) that was reported,
    /// otherwise the full sync's `has_synced` and `last_synced_at`, as the official SDKs
    /// answer it.
    pub fn status_for_priority(&self, priority: i32) -> PriorityStatus {
        self.priority_status
            .iter()
            .filter(|p| p.priority >= priority)
            .min_by_key(|p| p.priority)
            .cloned()
            .unwrap_or(PriorityStatus {
                priority,
                has_synced: self.has_synced,
                last_synced_at: self.last_synced_at,
            })
    }

    /// Replaces the per-priority entries with the core's `priority_status` (from an
    /// `UpdateSyncStatus`); `micros` says whether `last_synced_at` is in microseconds (core
    /// 0.5+) or seconds. Returns whether anything changed.
    pub(crate) fn apply_priority_status(&mut self, core: &Value, micros: bool) -> bool {
        let Some(entries) = core["priority_status"].as_array() else {
            return false;
        };
        let mut list: Vec<PriorityStatus> = entries
            .iter()
            .filter_map(|e| {
                let priority = i32::try_from(e["priority"].as_i64()?).ok()?;
                Some(PriorityStatus {
                    priority,
                    has_synced: e["has_synced"].as_bool(),
                    last_synced_at: crate::sync::status_map::core_time(
                        &e["last_synced_at"],
                        micros,
                    ),
                })
            })
            .collect();
        list.sort_by_key(|p| p.priority);
        let changed = list != self.priority_status;
        self.priority_status = list;
        changed
    }

    /// The entry of stream `name` subscribed with `parameters` (compared as JSON values), if
    /// the core reports it.
    pub fn for_stream(&self, name: &str, parameters: Option<&Value>) -> Option<&SyncStreamStatus> {
        self.streams
            .iter()
            .find(|s| s.name == name && s.parameters.as_ref() == parameters)
    }

    /// True when any error is set.
    pub fn any_error(&self) -> Option<&str> {
        self.upload_error
            .as_deref()
            .or(self.download_error.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn a_partial_sync_covers_higher_priorities_only() {
        let mut status = SyncStatus::default();
        assert!(status.apply_priority_status(
            &json!({"priority_status": [
                {"priority": 1, "last_synced_at": 1_700_000_000_000_000u64, "has_synced": true}
            ]}),
            true,
        ));
        assert_eq!(status.status_for_priority(0).has_synced, Some(true));
        assert_eq!(status.status_for_priority(1).priority, 1);
        assert_eq!(
            status.status_for_priority(1).last_synced_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        // Priority 3 is not covered: the full sync's state (none yet) answers.
        assert_eq!(status.status_for_priority(3).has_synced, None);
        status.has_synced = Some(false);
        assert_eq!(status.status_for_priority(3).has_synced, Some(false));

        assert!(status.apply_priority_status(
            &json!({"priority_status": [
                {"priority": 2147483647, "last_synced_at": 1_700_000_001u64, "has_synced": true}
            ]}),
            false,
        ));
        assert_eq!(status.status_for_priority(3).priority, FULL_SYNC_PRIORITY);
        assert_eq!(status.status_for_priority(0).has_synced, Some(true));
        assert!(!status.apply_priority_status(
            &json!({"priority_status": [
                {"priority": 2147483647, "last_synced_at": 1_700_000_001u64, "has_synced": true}
            ]}),
            false,
        ));
        assert!(!status.apply_priority_status(&json!({"connected": true}), true));
    }
}
