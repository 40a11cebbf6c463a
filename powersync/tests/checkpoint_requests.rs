//! Core 0.5's checkpoint requests ([`CheckpointMode::Requests`]) against the stand-in over a
//! throwaway PostgreSQL: the upload comes back through a checkpoint the client requested
//! (`POST /sync/checkpoint-request`, never `GET /write-checkpoint2.json`), a service without
//! the route is reported by name, and older cores are refused.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use pg::{PgConnector, fast, open_client, postgres, standin_config};
use powersync::{CheckpointMode, Error, PowerSyncDatabase};
use standin::StandIn;

/// Whether row `id` came back through the sync stream: the core applies the oplog row only
/// once a write checkpoint covering the upload has arrived.
async fn came_back(db: &PowerSyncDatabase, id: &str) -> bool {
    let n: Vec<i64> = db
        .query(
            "SELECT count(*) FROM ps_oplog WHERE row_id = ?1",
            [id.to_owned()],
            |r| r.get(0),
        )
        .await
        .unwrap();
    n[0] > 0
}

/// The core's checkpoint-request bookkeeping in `ps_kv`.
async fn kv(db: &PowerSyncDatabase, key: &str) -> Option<String> {
    db.query(
        "SELECT CAST(value AS TEXT) FROM ps_kv WHERE key = ?1",
        [key.to_owned()],
        |r| r.get::<_, Option<String>>(0),
    )
    .await
    .unwrap()
    .into_iter()
    .next()
    .flatten()
}

/// `ps_kv`'s value of a target set while local writes wait (the core's MAX_OP_ID).
const MAX_OP_ID: i64 = i64::MAX;

async fn wait_back(db: &PowerSyncDatabase, id: &str) {
    testkit::eventually_async(
        format!("{id} to come back through sync"),
        Duration::from_secs(30),
        || came_back(db, id),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// One client in requests mode and one in legacy mode on the same service: each upload comes
/// back, and the service handed out checkpoints by the route each mode uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_gets_its_checkpoints_from_its_own_route() {
    let (pg, _pgc) = postgres().await;
    let standin = StandIn::start(standin_config(&pg)).await.unwrap();
    let core = common::core("0.5.3");
    let (_r_dir, requests) = open_client(core).await;
    requests
        .connect(
            PgConnector::new(&standin.url(), &pg, "r"),
            fast().with_checkpoint_mode(CheckpointMode::Requests),
        )
        .await
        .unwrap();
    requests
        .wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    // The connection's checkpoint request seeded the core's counter; nothing else yet.
    assert_eq!(standin.checkpoints_served(), (0, 1));
    requests
        .execute(
            "INSERT INTO todos(id, description, done) VALUES ('r1', 'requested', 0)",
            [],
        )
        .await
        .unwrap();
    // The upload's checkpoint request became the target, and the core applied it.
    testkit::eventually_async(
        "the upload's requested checkpoint to be applied",
        Duration::from_secs(30),
        || async {
            let target = kv(&requests, "target_checkpoint_request_id").await;
            let applied = kv(&requests, "last_applied_checkpoint_request_id").await;
            target.is_some()
                && target != Some(MAX_OP_ID.to_string())
                && applied == target
                && came_back(&requests, "r1").await
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (legacy_served, requests_served) = standin.checkpoints_served();
    assert_eq!(
        legacy_served, 0,
        "requests mode never asks the legacy route"
    );
    assert!(
        requests_served >= 2,
        "seed + the upload's: {requests_served}"
    );

    let (_l_dir, legacy) = open_client(core).await;
    legacy
        .connect(PgConnector::new(&standin.url(), &pg, "l"), fast())
        .await
        .unwrap();
    legacy
        .wait_for_first_sync(Duration::from_secs(30))
        .await
        .unwrap();
    legacy
        .execute(
            "INSERT INTO todos(id, description, done) VALUES ('l1', 'legacy', 0)",
            [],
        )
        .await
        .unwrap();
    wait_back(&legacy, "l1").await;
    // The row can come back through replication before the client, done uploading, asks
    // for its write checkpoint: wait for that request rather than expect it already made.
    testkit::eventually_async(
        "the legacy client to use the legacy route",
        Duration::from_secs(30),
        || async { standin.checkpoints_served().0 >= 1 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, requests_after) = standin.checkpoints_served();
    assert!(requests_after >= requests_served);
    requests.close().await.unwrap();
    legacy.close().await.unwrap();
    standin.shutdown().await;
}

/// A service older than 1.24.0 has no `/sync/checkpoint-request`: a requests-mode client
/// never syncs, and its status names the missing route and the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_checkpoint_requests_is_reported_by_name() {
    let (pg, _pgc) = postgres().await;
    let mut config = standin_config(&pg);
    config.checkpoint_requests = false;
    let standin = StandIn::start(config).await.unwrap();
    let (_dir, db) = open_client(common::core("0.5.3")).await;
    db.connect(
        PgConnector::new(&standin.url(), &pg, "r"),
        fast().with_checkpoint_mode(CheckpointMode::Requests),
    )
    .await
    .unwrap();
    let error = testkit::eventually_async(
        "the status to report the missing route",
        Duration::from_secs(30),
        || async { db.status().download_error },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        error.contains("/sync/checkpoint-request") && error.contains("CheckpointMode::Legacy"),
        "{error}"
    );
    assert_ne!(
        db.status().has_synced,
        Some(true),
        "no checkpoint was applied"
    );
    db.close().await.unwrap();
    standin.shutdown().await;
}

/// Checkpoint requests need core 0.5.0: an older core is a typed error at `connect`.
#[tokio::test]
async fn older_cores_refuse_checkpoint_requests() {
    let (_dir, db) = open_client(common::core("0.4.11")).await;
    let e = db
        .connect(
            PgConnector {
                pg_uri: String::new(),
                tokens: pg::fresh_tokens("http://127.0.0.1:9", "u", 60),
                fetches: Default::default(),
            },
            fast().with_checkpoint_mode(CheckpointMode::Requests),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedByCore { needs: "0.5.0", .. }),
        "{e}"
    );
}
