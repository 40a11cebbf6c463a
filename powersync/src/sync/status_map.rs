//! Applying the core's `UpdateSyncStatus` to [`SyncStatus`].

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::status::{DownloadProgress, SyncStatus, SyncStreamStatus};

/// The priority of a full sync in `priority_status`.
const FULL_SYNC_PRIORITY: i64 = 2_147_483_647;

/// Copies the download side of the core's status into `status`, leaving the upload fields
/// alone. `micros` says whether `last_synced_at` is in microseconds (core 0.5+) or seconds.
pub(crate) fn apply_core_status(status: &mut SyncStatus, core: &Value, micros: bool) {
    status.connected = core["connected"].as_bool().unwrap_or(false);
    status.connecting = core["connecting"].as_bool().unwrap_or(false);
    let downloading = &core["downloading"];
    status.downloading = !downloading.is_null();
    status.download_progress = downloading["buckets"].as_object().map(|buckets| {
        let mut progress = DownloadProgress::default();
        for bucket in buckets.values() {
            let at_last = bucket["at_last"].as_u64().unwrap_or(0);
            let since_last = bucket["since_last"].as_u64().unwrap_or(0);
            let target = bucket["target_count"].as_u64().unwrap_or(0);
            progress.downloaded += since_last;
            progress.total += target.saturating_sub(at_last);
        }
        progress
    });
    if let Some(full) = core["priority_status"].as_array().and_then(|all| {
        all.iter()
            .find(|p| p["priority"].as_i64() == Some(FULL_SYNC_PRIORITY))
    }) {
        status.has_synced = full["has_synced"].as_bool().or(status.has_synced);
        status.last_synced_at = core_time(&full["last_synced_at"], micros);
    } else if status.has_synced.is_none() {
        status.has_synced = Some(false);
    }
    status.streams = streams_of(core, micros);
}

/// A time of the core's status: microseconds since the epoch (core 0.5+) or seconds.
pub(crate) fn core_time(value: &Value, micros: bool) -> Option<SystemTime> {
    let t = value.as_u64()?;
    Some(
        SystemTime::UNIX_EPOCH
            + if micros {
                Duration::from_micros(t)
            } else {
                Duration::from_secs(t)
            },
    )
}

/// The `streams` of a core status (`UpdateSyncStatus` or `powersync_offline_sync_status`);
/// empty for a core without Sync Streams. Progress is kept only while downloading.
pub(crate) fn streams_of(core: &Value, micros: bool) -> Vec<SyncStreamStatus> {
    let downloading = !core["downloading"].is_null();
    let Some(streams) = core["streams"].as_array() else {
        return Vec::new();
    };
    streams
        .iter()
        .map(|s| SyncStreamStatus {
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            parameters: Some(s["parameters"].clone()).filter(|p| !p.is_null()),
            priority: s["priority"].as_i64().and_then(|p| i32::try_from(p).ok()),
            active: s["active"].as_bool().unwrap_or(false),
            is_default: s["is_default"].as_bool().unwrap_or(false),
            has_explicit_subscription: s["has_explicit_subscription"].as_bool().unwrap_or(false),
            expires_at: core_time(&s["expires_at"], micros),
            last_synced_at: core_time(&s["last_synced_at"], micros),
            progress: downloading.then(|| DownloadProgress {
                downloaded: s["progress"]["downloaded"].as_u64().unwrap_or(0),
                total: s["progress"]["total"].as_u64().unwrap_or(0),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_connection_progress_and_full_sync() {
        let mut status = SyncStatus {
            uploading: true,
            upload_error: Some("x".into()),
            ..Default::default()
        };
        apply_core_status(
            &mut status,
            &json!({
                "connected": true, "connecting": false,
                "downloading": {"buckets": {"prio_3": {"priority": 3, "at_last": 10, "since_last": 5, "target_count": 30}}},
                "priority_status": [{"priority": 2147483647, "last_synced_at": 1_700_000_000_000_000u64, "has_synced": true}]
            }),
            true,
        );
        assert!(status.connected && !status.connecting && status.downloading);
        assert_eq!(
            status.download_progress,
            Some(DownloadProgress {
                downloaded: 5,
                total: 20
            })
        );
        assert_eq!(status.has_synced, Some(true));
        assert_eq!(
            status.last_synced_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert!(
            status.uploading && status.upload_error.is_some(),
            "upload fields untouched"
        );

        apply_core_status(
            &mut status,
            &json!({"connected": false, "connecting": true, "downloading": null, "priority_status": [{"priority": 2147483647, "last_synced_at": 1_700_000_000u64, "has_synced": true}]}),
            false,
        );
        assert!(!status.connected && status.connecting && !status.downloading);
        assert_eq!(status.download_progress, None);
        assert_eq!(
            status.last_synced_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );

        let mut fresh = SyncStatus::default();
        apply_core_status(
            &mut fresh,
            &json!({"connected": true, "connecting": false,
            "downloading": {"buckets": {}},
            "priority_status": [],
            "streams": [
                {"name": "todos", "parameters": {"list": "a"}, "priority": 1, "active": true,
                 "is_default": false, "has_explicit_subscription": true,
                 "expires_at": 1_700_000_100u64, "last_synced_at": null,
                 "progress": {"total": 10, "downloaded": 4}},
                {"name": "lists", "parameters": null, "priority": null, "active": true,
                 "is_default": true, "has_explicit_subscription": false,
                 "expires_at": null, "last_synced_at": 1_700_000_000u64,
                 "progress": {"total": 0, "downloaded": 0}}
            ]}),
            false,
        );
        let todos = fresh
            .for_stream("todos", Some(&json!({"list": "a"})))
            .unwrap();
        assert_eq!(todos.priority, Some(1));
        assert!(todos.active && todos.has_explicit_subscription && !todos.has_synced());
        assert_eq!(
            todos.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100))
        );
        assert_eq!(
            todos.progress,
            Some(DownloadProgress {
                downloaded: 4,
                total: 10
            })
        );
        assert!(
            fresh
                .for_stream("todos", Some(&json!({"list": "b"})))
                .is_none()
        );
        let lists = fresh.for_stream("lists", None).unwrap();
        assert!(lists.is_default && lists.has_synced() && lists.priority.is_none());

        let mut fresh = SyncStatus::default();
        apply_core_status(
            &mut fresh,
            &json!({"connected": false, "connecting": false, "downloading": null, "priority_status": []}),
            true,
        );
        assert_eq!(fresh.has_synced, Some(false));
    }
}
