//! `--endpoint powersync`: the latest era's PowerSync database with the synced `mww` table,
//! uploading through [`MwwTransactionConnector`], and the `/db-api` actions over it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use powersync::{Backoff, PowerSyncDatabase, SyncOptions, SyncStatus};
use serde_json::json;

use crate::config::Config;
use crate::connectors::Shared;
use crate::connectors::mww::{BrokenDrop, MwwTransactionConnector};
use crate::error::{Error, Result};
use crate::model::mww::{self, MwwOp};
use crate::model::{Model, Mww};
use crate::store::{Closed, DbAction, MwwOutcome, MwwStore};

/// `uploadQueueCount`'s limit (the Dart endpoint's 3 s).
pub const API_TIMEOUT: Duration = Duration::from_secs(3);
/// `uploadQueueWait`: an unchanged non-zero count for this long is a stuck queue (Dart: 11
/// one-second polls).
pub const QUEUE_STUCK_AFTER: Duration = Duration::from_secs(11);
/// `downloadingWait` gives up after this long (Dart: 31 polls, 1 s apart).
pub const DOWNLOADING_WAIT: Duration = Duration::from_secs(31);
/// How often the waits poll (the harness cannot tell this from the Dart 1 s).
const POLL: Duration = Duration::from_millis(100);

/// The PowerSync mww store.
#[derive(Debug)]
pub struct PowerSyncMwwStore {
    db: PowerSyncDatabase,
    shared: Arc<Shared>,
    broken: Option<Arc<BrokenDrop>>,
    seen: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    keys: i64,
    first_sync_timeout: Option<Duration>,
    closed: Closed,
}

impl PowerSyncMwwStore {
    /// Opens the database (WAL, `synchronous` from `--synchronous`, FULL by default), connects, and returns once the first sync
    /// is complete, every key is present and nothing is downloading (without limit unless
    /// `FIRST_SYNC_TIMEOUT` is set).
    pub async fn open(config: &Config) -> Result<Arc<Self>> {
        let signer = crate::auth::signer(config.jwks_private_key.as_ref())?;
        if let Some(dir) = config.sqlite3_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        tracing::info!(
            "database {} {}",
            config.sqlite3_path.display(),
            if config.sqlite3_path.exists() {
                "exists, reusing it"
            } else {
                "does not exist yet"
            }
        );
        let db = crate::store::open_powersync(config, &Mww::schema(false)).await?;
        let broken = BrokenDrop::when(config.test_failpoints);
        if broken.is_some() {
            tracing::warn!("TEST-ONLY broken connector enabled: every second upload is dropped");
        }
        let store = Arc::new(Self {
            db: db.clone(),
            shared: Shared::from_config(config, Some(signer)),
            broken,
            seen: Arc::default(),
            keys: config.keys(),
            first_sync_timeout: config.first_sync_timeout,
            closed: Closed::default(),
        });
        store.connect().await?;
        tracing::info!("connected; waiting for the first sync");
        crate::store::wait_until_synced(
            &db,
            mww::SQLITE_COUNT_KEYS,
            store.keys,
            true,
            store.first_sync_timeout,
        )
        .await?;
        tracing::info!(
            "first sync complete, all {} keys present, not downloading",
            store.keys
        );
        tokio::spawn(watch_last_synced_at(db.watch_status()));
        crate::store::exit_on_fatal_upload_error(&db, 32);
        Ok(store)
    }

    fn options() -> SyncOptions {
        // The Dart `retryDelay: 1000 ms`. (The Dart `appMetadata` has no counterpart in the
        // powersync crate's SyncOptions.)
        SyncOptions::default().with_retry(Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
            jitter: 0.0,
        })
    }

    async fn connect(&self) -> Result<()> {
        let connector = MwwTransactionConnector::new(
            Arc::clone(&self.shared),
            self.broken.clone(),
            Arc::clone(&self.seen),
        );
        self.db.connect(connector, Self::options()).await?;
        Ok(())
    }

    async fn queue_count(&self) -> Result<u64> {
        let stats = tokio::time::timeout(API_TIMEOUT, self.db.upload_queue_stats())
            .await
            .map_err(|_| Error::ApiTimeout("getUploadQueueStats", API_TIMEOUT))??;
        Ok(stats.count)
    }

    async fn upload_queue_wait(&self) -> Result<()> {
        let mut last: Option<(u64, Instant)> = None;
        loop {
            let count = self.queue_count().await?;
            if count == 0 {
                return Ok(());
            }
            match last {
                Some((prev, since)) if prev == count => {
                    if since.elapsed() >= QUEUE_STUCK_AFTER {
                        let status = self.db.status();
                        tracing::error!(
                            "upload queue stuck at {count} entries for {:?}; sync status {status:?}",
                            QUEUE_STUCK_AFTER
                        );
                        return Err(Error::UploadQueueStuck {
                            count,
                            seconds: QUEUE_STUCK_AFTER.as_secs(),
                        });
                    }
                }
                _ => last = Some((count, Instant::now())),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn downloading_wait(&self) -> serde_json::Value {
        let mut status = self.db.watch_status();
        let waited =
            tokio::time::timeout(DOWNLOADING_WAIT, status.wait_for(|s| !s.downloading)).await;
        match waited {
            Ok(Ok(_)) => json!({"db.SyncStatus.downloading:": false}),
            _ => {
                tracing::warn!("SyncStatus.downloading still true after {DOWNLOADING_WAIT:?}");
                json!({"error": format!(
                    "waited for SyncStatus.downloading: false for {} s",
                    DOWNLOADING_WAIT.as_secs()
                )})
            }
        }
    }
}

/// The Dart status monitor: once `lastSyncedAt` is set, it must never become unset or go
/// back in time (Dart: SEVERE + exit 10).
async fn watch_last_synced_at(mut status: tokio::sync::watch::Receiver<SyncStatus>) {
    let mut last: Option<SystemTime> = None;
    loop {
        let now = status.borrow_and_update().last_synced_at;
        if let Err(problem) = check_last_synced_at(last, now) {
            tracing::error!("{problem}; exiting");
            std::process::exit(10);
        }
        last = now.or(last);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// `Err` when `now` breaks the `lastSyncedAt` invariant after `before`.
fn check_last_synced_at(
    before: Option<SystemTime>,
    now: Option<SystemTime>,
) -> std::result::Result<(), String> {
    match (before, now) {
        (Some(b), None) => Err(format!(
            "SyncStatus.lastSyncedAt was {b:?} and became unset"
        )),
        (Some(b), Some(n)) if n < b => Err(format!(
            "SyncStatus.lastSyncedAt went back in time from {b:?} to {n:?}"
        )),
        _ => Ok(()),
    }
}

impl MwwStore for PowerSyncMwwStore {
    fn client_type(&self) -> &'static str {
        "ps"
    }

    async fn run_txn(&self, ops: Vec<MwwOp>) -> Result<MwwOutcome> {
        self.closed.check()?;
        let keys = self.keys;
        let out = self
            .db
            .write_transaction(move |tx| mww::apply_sqlite(tx, ops, keys))
            .await?;
        Ok(MwwOutcome::Ok(out))
    }

    async fn db_api(&self, action: DbAction) -> Result<serde_json::Value> {
        self.closed.check()?;
        Ok(match action {
            DbAction::Connect => {
                self.connect().await?;
                json!({"db": "connected"})
            }
            DbAction::Disconnect => {
                self.db.disconnect().await?;
                json!({"db": "disconnected"})
            }
            DbAction::Close => {
                self.close().await?;
                json!({"db": "closed"})
            }
            DbAction::UploadQueueCount => {
                json!({"db.uploadQueueStats.count": self.queue_count().await?})
            }
            DbAction::UploadQueueWait => {
                self.upload_queue_wait().await?;
                json!({"db.uploadQueueStats.count": "queue-empty"})
            }
            DbAction::DownloadingWait => self.downloading_wait().await,
            DbAction::SelectAll => {
                let keys = self.keys;
                let read = self
                    .db
                    .read_transaction(move |tx| mww::read_all_sqlite(tx, keys))
                    .await?;
                mww::to_json(&read)
            }
        })
    }

    async fn close(&self) -> Result<()> {
        if self.closed.close() {
            self.db.close().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn last_synced_at_must_not_go_back_or_vanish() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let later = t + Duration::from_secs(1);
        assert!(check_last_synced_at(None, None).is_ok());
        assert!(check_last_synced_at(None, Some(t)).is_ok());
        assert!(check_last_synced_at(Some(t), Some(t)).is_ok());
        assert!(check_last_synced_at(Some(t), Some(later)).is_ok());
        assert!(check_last_synced_at(Some(later), Some(t)).is_err());
        assert!(check_last_synced_at(Some(t), None).is_err());
    }

    #[test]
    fn db_api_actions_parse_by_their_dart_names() {
        assert_eq!(
            DbAction::parse("uploadQueueWait"),
            Some(DbAction::UploadQueueWait)
        );
        assert_eq!(DbAction::parse("selectAll"), Some(DbAction::SelectAll));
        assert_eq!(DbAction::parse("uploadqueuewait"), None);
    }
}
