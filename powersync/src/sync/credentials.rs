//! Cached credentials: fetched from the connector once, refetched after a 401, when the core
//! says the token expired (`FetchCredentials { did_expire: true }`), and prefetched in the
//! background when the core says it expires soon.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::connector::{BackendConnector, PowerSyncCredentials};
use crate::error::{Error, Result};

pub(crate) struct CredentialsCache<C> {
    connector: Arc<C>,
    cached: std::sync::Mutex<Option<PowerSyncCredentials>>,
    /// Held while the connector is asked, so that concurrent fetches share one call.
    fetching: Mutex<()>,
}

impl<C: BackendConnector> CredentialsCache<C> {
    pub(crate) fn new(connector: Arc<C>) -> Self {
        Self {
            connector,
            cached: std::sync::Mutex::new(None),
            fetching: Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<PowerSyncCredentials> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store(&self, credentials: Option<PowerSyncCredentials>) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = credentials;
    }

    /// The cached credentials, fetching them when there are none. Concurrent callers share
    /// one fetch.
    pub(crate) async fn get(&self) -> Result<PowerSyncCredentials> {
        if let Some(credentials) = self.cached() {
            return Ok(credentials);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(credentials) = self.cached() {
            return Ok(credentials);
        }
        let fresh = self.fetch().await?;
        self.store(Some(fresh.clone()));
        Ok(fresh)
    }

    /// Forgets the cached credentials; the next `get` fetches new ones.
    pub(crate) fn invalidate(&self) {
        self.store(None);
    }

    /// Fetches new credentials now and caches them. The old ones stay usable while the fetch
    /// runs (a prefetch must not make a reconnect wait).
    pub(crate) async fn refresh(&self) -> Result<()> {
        let _fetching = self.fetching.lock().await;
        let fresh = self.fetch().await?;
        self.store(Some(fresh));
        Ok(())
    }

    async fn fetch(&self) -> Result<PowerSyncCredentials> {
        self.connector
            .fetch_credentials()
            .await
            .map_err(|e| Error::Credentials(Arc::new(e)))
    }
}
