//! Waiting for the buckets of one priority ([`PowerSyncDatabase::wait_for_first_sync_at`]).

use std::time::Duration;

use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};

impl PowerSyncDatabase {
    /// Waits until the buckets of priority `priority` (0 = synced first … 3 = the default)
    /// have been synced at least once, at most `timeout`. A `partial_checkpoint_complete` of
    /// that priority or a lower number's importance counts (see
    /// [`crate::SyncStatus::status_for_priority`]); such data is applied by the core even
    /// while local changes wait in the upload queue, unlike a full checkpoint.
    pub async fn wait_for_first_sync_at(&self, priority: i32, timeout: Duration) -> Result<()> {
        let mut rx = self.watch_status();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.status_for_priority(priority).has_synced == Some(true)),
        )
        .await
        .map_err(|_| Error::Timeout(timeout, "the first sync of a priority"))?
        .map_err(|_| Error::Closed)?;
        Ok(())
    }
}
