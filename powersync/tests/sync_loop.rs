//! The sync loop under service timings the stand-in's defaults never produce: tokens that
//! expire inside the service's clock tolerance, prefetches that finish late, a credentials
//! fetch or write-checkpoint request that never answers, the status during the reconnect delay.
//! Real PostgreSQL, the stand-in over real HTTP (behind a counting proxy where a test needs to
//! see requests), the default vendored core.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pg::{
    PgConnector, TokenSource, client_rows, converge_within, eventually, fast, mint, open_client,
    postgres, standin_config,
};
use powersync::{
    BackendConnector, Backoff, ConnectorError, PowerSyncCredentials, PowerSyncDatabase,
};
use proxy::Proxy;
use standin::StandIn;

const WAIT: Duration = Duration::from_secs(30);

/// Tokens as many apps hand them out: the connector keeps its token and returns it until it
/// has expired by its own clock, then mints a new one. `minted` counts the tokens.
fn cached_tokens(endpoint: &str, lifetime_secs: i64) -> (TokenSource, Arc<AtomicUsize>) {
    let endpoint = endpoint.to_string();
    let minted = Arc::new(AtomicUsize::new(0));
    let cache: Arc<Mutex<Option<(PowerSyncCredentials, SystemTime)>>> = Arc::default();
    let count = minted.clone();
    let source: TokenSource = Arc::new(move |_| {
        let mut cache = cache.lock().unwrap();
        let valid = cache
            .as_ref()
            .filter(|(_, expires)| *expires > SystemTime::now())
            .map(|(c, _)| c.clone());
        let result = match valid {
            Some(credentials) => Ok(credentials),
            None => mint(&endpoint, "cached", lifetime_secs).inspect(|c| {
                count.fetch_add(1, Ordering::SeqCst);
                let expires = SystemTime::now() + Duration::from_secs(lifetime_secs as u64);
                *cache = Some((c.clone(), expires));
            }),
        };
        Box::pin(async move { result })
    });
    (source, minted)
}

/// `FetchCredentials { did_expire: true }` must drop the cached token. The stand-in, like the
/// service, accepts a token up to 60 s past `exp` and answers it with `token_expires_in: 0`, so
/// presenting the expired token again is a reconnect loop of up to a minute without data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_not_presented_again() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let (_dir, db) = open_client(common::default_core()).await;
    // 5 s: inside the core's 30 s prefetch window from the first keepalive on.
    let (tokens, minted) = cached_tokens(&standin.url(), 5);
    db.connect(PgConnector::with_tokens(&pg, tokens), fast())
        .await
        .unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    eventually(WAIT, "a new token after the first expired", || async {
        minted.load(Ordering::SeqCst) >= 2
    })
    .await;
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('after-expiry', 'x')",
        &[],
    )
    .await
    .unwrap();
    let rows = converge_within(WAIT, &pgc, &[&db]).await;
    assert!(rows.contains_key("after-expiry"));
    db.close().await.unwrap();
    standin.shutdown().await;
}

/// After an iteration that ended because the token expired, the client waits before it
/// reconnects; `powersync_control('stop')` ends the iteration in the core, so the status says
/// disconnected meanwhile (the core alone leaves `connected` set after `CloseSyncStream`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_disconnected_while_waiting_to_reconnect() {
    let (pg, _pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let (_dir, db) = open_client(common::default_core()).await;
    let lifetime = 5;
    let (tokens, _minted) = cached_tokens(&standin.url(), lifetime);
    let expires = SystemTime::now() + Duration::from_secs(lifetime as u64);
    let slow_reconnect = Backoff {
        initial: Duration::from_secs(120),
        max: Duration::from_secs(120),
        jitter: 0.0,
    };
    db.connect(
        PgConnector::with_tokens(&pg, tokens),
        fast().with_retry(slow_reconnect),
    )
    .await
    .unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    assert!(db.status().connected, "{:?}", db.status());
    // Past the token's expiry the stand-in ends the stream; the client is in its 120 s delay.
    eventually(WAIT, "the token to expire", || async {
        SystemTime::now() > expires + Duration::from_secs(2)
    })
    .await;
    eventually(Duration::from_secs(20), "status: disconnected", || async {
        let s = db.status();
        !s.connected && !s.connecting
    })
    .await;
    db.close().await.unwrap();
    standin.shutdown().await;
}

/// A prefetch that is still running when its iteration ends must not reach the next
/// iteration: there `refreshed_token` would end a healthy stream. The reconnect must not wait
/// for the prefetch either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_prefetch_does_not_end_the_next_iteration() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let proxy = Proxy::start(standin.addr()).await;
    let (_dir, db) = open_client(common::default_core()).await;
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let second_done = Arc::new(AtomicBool::new(false));
    let endpoint = proxy.url();
    let done = second_done.clone();
    let tokens: TokenSource = Arc::new(move |n| {
        let endpoint = endpoint.clone();
        match n {
            // Inside the prefetch window: the core asks for a prefetch at the first keepalive.
            0 => Box::pin(async move { mint(&endpoint, "late", 25) }),
            // The prefetch: held until the test opens the gate; `done` once it finished or was
            // dropped.
            1 => {
                let mut gate = gate_rx.clone();
                let done = done.clone();
                Box::pin(async move {
                    struct Done(Arc<AtomicBool>);
                    impl Drop for Done {
                        fn drop(&mut self) {
                            self.0.store(true, Ordering::SeqCst);
                        }
                    }
                    let _done = Done(done);
                    let _ = gate.wait_for(|open| *open).await;
                    mint(&endpoint, "late", 3600)
                })
            }
            _ => Box::pin(async move { mint(&endpoint, "late", 3600) }),
        }
    });
    let connector = PgConnector::with_tokens(&pg, tokens);
    let fetches = connector.fetches.clone();
    db.connect(connector, fast()).await.unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    eventually(WAIT, "the prefetch to start", || async {
        fetches.load(Ordering::SeqCst) >= 2
    })
    .await;
    let before = proxy.stream_requests();
    standin.disconnect_streams();
    // The next iteration connects with the cached token while the prefetch hangs, prefetches
    // on its own (fetch 3, long-lived), reconnects with that token and stays.
    eventually(WAIT, "a reconnect while the old prefetch hangs", || async {
        fetches.load(Ordering::SeqCst) >= 3
            && proxy.stream_requests() >= before + 2
            && db.status().connected
    })
    .await;
    let settled = proxy.stream_requests();
    gate_tx.send(true).unwrap();
    eventually(WAIT, "the old prefetch to end", || async {
        second_done.load(Ordering::SeqCst)
    })
    .await;
    // A line that arrives after any stale `refreshed_token` would have been handled.
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('after-release', 'x')",
        &[],
    )
    .await
    .unwrap();
    eventually(WAIT, "the row after the release", || async {
        client_rows(&db).await.contains_key("after-release")
    })
    .await;
    assert_eq!(
        proxy.stream_requests(),
        settled,
        "the late prefetch ended the next iteration's stream"
    );
    db.close().await.unwrap();
    standin.shutdown().await;
}

/// A connector that never answers `fetch_credentials`.
struct HangingCredentials {
    fetches: Arc<AtomicUsize>,
}

impl BackendConnector for HangingCredentials {
    async fn fetch_credentials(&self) -> Result<PowerSyncCredentials, ConnectorError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn upload_data(&self, _db: &PowerSyncDatabase) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// `disconnect()` must not wait for a credentials fetch that hangs (no service needed: the
/// fetch never returns an endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_does_not_wait_for_a_hanging_credentials_fetch() {
    let (_dir, db) = open_client(common::default_core()).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    db.connect(
        HangingCredentials {
            fetches: fetches.clone(),
        },
        fast(),
    )
    .await
    .unwrap();
    eventually(WAIT, "the credentials fetch to start", || async {
        fetches.load(Ordering::SeqCst) >= 1
    })
    .await;
    tokio::time::timeout(WAIT, db.disconnect())
        .await
        .expect("disconnect() returned while the fetch hangs")
        .unwrap();
    db.close().await.unwrap();
}

/// A write-checkpoint request the service never answers must not stop sync lines from being
/// processed, nor `disconnect()`. (The reqwest timeout of that request is 30 s; the waits
/// here are shorter, so the old in-line request fails them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_checkpoint_blocks_neither_lines_nor_disconnect() {
    let (pg, pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let proxy = Proxy::start(standin.addr()).await;
    let (_dir, db) = open_client(common::default_core()).await;
    db.connect(PgConnector::new(&proxy.url(), &pg, "stall"), fast())
        .await
        .unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    proxy.stall_write_checkpoints(true);
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('local', 'uploaded')",
        [],
    )
    .await
    .unwrap();
    eventually(
        WAIT,
        "the upload and its write-checkpoint request",
        || async {
            db.upload_queue_stats().await.unwrap().count == 0 && proxy.write_checkpoints() >= 1
        },
    )
    .await;
    pgc.execute(
        "INSERT INTO todos (id, description) VALUES ('from-pg', 'x')",
        &[],
    )
    .await
    .unwrap();
    // The core keeps the row out of the view until the write checkpoint arrives, but the
    // line carrying it is saved in the oplog as soon as it is processed.
    eventually(
        Duration::from_secs(20),
        "the line saved in ps_oplog",
        || async {
            let n: Vec<i64> = db
                .query(
                    "SELECT count(*) FROM ps_oplog WHERE row_id = 'from-pg'",
                    [],
                    |r| r.get(0),
                )
                .await
                .unwrap();
            n[0] > 0
        },
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), db.disconnect())
        .await
        .expect("disconnect() returned while the request hangs")
        .unwrap();
    // Unstalled, a new connection gets its write checkpoint and everything converges.
    proxy.stall_write_checkpoints(false);
    db.connect(PgConnector::new(&proxy.url(), &pg, "stall"), fast())
        .await
        .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('local2', 'uploaded')",
        [],
    )
    .await
    .unwrap();
    let rows = converge_within(WAIT, &pgc, &[&db]).await;
    assert!(rows.contains_key("from-pg") && rows.contains_key("local2"));
    db.close().await.unwrap();
    standin.shutdown().await;
}

/// `SyncOptions::app_metadata` reaches the service inside the sync request (seen by the proxy
/// in front of the stand-in); cores before 0.4.10 cannot send it and get a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_metadata_is_sent_with_the_sync_request() {
    let (pg, _pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let proxy = Proxy::start(standin.addr()).await;
    let (_dir, db) = open_client(common::default_core()).await;
    let options = fast().with_app_metadata([("app_version", "1.2.3-test")]);
    db.connect(PgConnector::new(&proxy.url(), &pg, "meta"), options.clone())
        .await
        .unwrap();
    db.wait_for_first_sync(WAIT).await.unwrap();
    assert!(proxy.sent_contains(r#""app_metadata":{"app_version":"1.2.3-test"}"#));
    db.close().await.unwrap();
    let (_old_dir, old) = open_client(common::core("0.4.6")).await;
    let err = old
        .connect(PgConnector::new(&proxy.url(), &pg, "meta"), options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            powersync::Error::UnsupportedByCore {
                needs: "0.4.10",
                ..
            }
        ),
        "{err:?}"
    );
    old.close().await.unwrap();
    standin.shutdown().await;
}
