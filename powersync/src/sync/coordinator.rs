//! The sync coordinator: the status, the connector's fatal upload error, and the tasks of the
//! current connection. It holds no connection; its tasks reach the database through weak
//! references, so dropping the last database handle ends them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::connector::ConnectorError;
use crate::status::SyncStatus;
use crate::sync::streams::StreamTracker;

/// What the coordinator shares with its tasks.
pub(crate) struct SyncShared {
    pub(crate) status: watch::Sender<SyncStatus>,
    /// The connector's fatal upload error, once one happened.
    pub(crate) fatal: watch::Sender<Option<Arc<ConnectorError>>>,
    /// The Sync Streams the app holds subscriptions to.
    pub(crate) streams: StreamTracker,
}

impl SyncShared {
    pub(crate) fn new() -> Self {
        Self {
            status: watch::Sender::new(SyncStatus::default()),
            fatal: watch::Sender::new(None),
            streams: StreamTracker::default(),
        }
    }
}

/// The running tasks of one connection. Dropping it (with the database) drops `stop`, which
/// the tasks see as a stop.
pub(crate) struct SyncHandle {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

pub(crate) struct SyncCoordinator {
    pub(crate) shared: Arc<SyncShared>,
    pub(crate) running: Mutex<Option<SyncHandle>>,
}

impl SyncCoordinator {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(SyncShared::new()),
            running: Mutex::new(None),
        }
    }

    /// Stops the running tasks and waits for them; re-raises a task's panic.
    pub(crate) async fn stop(&self) {
        let handle = self.running.lock().await.take();
        if let Some(handle) = handle {
            let _ = handle.stop.send(true);
            for task in handle.tasks {
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        self.shared.status.send_if_modified(|s| {
            let changed = s.connected || s.connecting || s.uploading || s.downloading;
            s.connected = false;
            s.connecting = false;
            s.uploading = false;
            s.downloading = false;
            changed
        });
    }
}

/// Background tasks of every database in the process that have not ended yet.
static TASKS_ALIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts a task from its spawn until it ends or is dropped.
struct Alive;

impl Drop for Alive {
    fn drop(&mut self) {
        TASKS_ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Spawns one of the coordinator's tasks, counted in [`tasks_alive`].
pub(crate) fn spawn<F>(task: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    TASKS_ALIVE.fetch_add(1, Ordering::SeqCst);
    let alive = Alive;
    tokio::spawn(async move {
        let _alive = alive;
        task.await
    })
}

/// The number of sync, upload and prefetch tasks alive in this process (for tests that
/// check nothing outlives its database).
pub(crate) fn tasks_alive() -> usize {
    TASKS_ALIVE.load(Ordering::SeqCst)
}
