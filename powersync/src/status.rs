//! The sync status, published on a watch channel.

use std::time::SystemTime;

/// Download progress of the current checkpoint, from the core's `UpdateSyncStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Operations downloaded so far for the checkpoint being synced.
    pub downloaded: u64,
    /// Operations the checkpoint holds in total.
    pub total: u64,
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
}

impl SyncStatus {
    /// True when any error is set.
    pub fn any_error(&self) -> Option<&str> {
        self.upload_error
            .as_deref()
            .or(self.download_error.as_deref())
    }
}
