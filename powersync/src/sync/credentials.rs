//! Cached credentials: fetched from the connector once, refetched after a 401 or when the core
//! says the token expires.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::connector::{BackendConnector, PowerSyncCredentials};
use crate::error::{Error, Result};

pub(crate) struct CredentialsCache<C> {
    connector: Arc<C>,
    cached: Mutex<Option<PowerSyncCredentials>>,
}

impl<C: BackendConnector> CredentialsCache<C> {
    pub(crate) fn new(connector: Arc<C>) -> Self {
        Self {
            connector,
            cached: Mutex::new(None),
        }
    }

    /// The cached credentials, fetching them when there are none. Concurrent callers share
    /// one fetch.
    pub(crate) async fn get(&self) -> Result<PowerSyncCredentials> {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            return Ok(credentials.clone());
        }
        let fresh = self
            .connector
            .fetch_credentials()
            .await
            .map_err(|e| Error::Credentials(Arc::new(e)))?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets the cached credentials; the next `get` fetches new ones.
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// Fetches new credentials now and caches them.
    pub(crate) async fn refresh(&self) -> Result<()> {
        self.invalidate().await;
        self.get().await.map(|_| ())
    }
}
