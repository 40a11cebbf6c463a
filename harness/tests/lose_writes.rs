//! The `lose-unfsynced-writes` fault on a real endpoint whose database lives on the harness's
//! lazy filesystem (FUSE; needs root and `/dev/fuse`): it takes acknowledged transactions
//! exactly when the endpoint does not fsync its commits (`--synchronous normal`, the Dart
//! SDK's default), and none under `--synchronous full` (the endpoint's default).
//! A whole run under the fault is in `run.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{binaries, seed_config};

use harness::client::{EndpointClient, Outcome};
use harness::history::{Element, ListAppendMop, NodeResult, Value};
use harness::model::Lww;
use harness::nemesis::{ClockOpts, Fault, Plan, TargetSpec, Targets};
use harness::recorder::Recorder;
use harness::topology::{Endpoint, EndpointConfig, Isolation};
use tokio::sync::Mutex;

/// Acknowledged appends before the fault.
const APPENDS: i64 = 20;

/// A `sqlite3-local` endpoint whose database is on a lazy filesystem, with `synchronous`.
async fn endpoint_on_lazyfs(
    dir: &std::path::Path,
    synchronous: endpoint::Durability,
) -> Arc<Mutex<Endpoint>> {
    let config = EndpointConfig {
        synchronous,
        ..seed_config("n1", endpoint::Mode::Sqlite3Local)
    };
    let isolation = Isolation {
        lazyfs: true,
        ..Isolation::default()
    };
    let endpoint =
        Endpoint::start_isolated(&binaries().endpoint, &dir.join("n1"), config, isolation)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Mutex::new(endpoint))
}

async fn read(client: &EndpointClient<Lww>, key: i64) -> Vec<Element> {
    match client
        .txn("txn", &[ListAppendMop::Read { key, list: None }])
        .await
    {
        Outcome::Ok(mops) => match mops.into_iter().next() {
            Some(ListAppendMop::Read { list, .. }) => list.unwrap_or_default(),
            other => panic!("not a read: {other:?}"),
        },
        other => panic!("read failed: {other:?}"),
    }
}

/// Appends 1..=20 to key 3 (each acknowledged), runs the fault and its recovery, and returns
/// what key 3 holds afterwards and the bytes the fault dropped.
async fn appends_through_the_fault(synchronous: endpoint::Durability) -> (Vec<Element>, i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = endpoint_on_lazyfs(dir.path(), synchronous).await;
    let url = endpoint.lock().await.url();
    let client = EndpointClient::<Lww>::new(&url).expect("client");
    for x in 1..=APPENDS {
        let r = client
            .txn("txn", &[ListAppendMop::Append { key: 3, element: x }])
            .await;
        assert!(matches!(r, Outcome::Ok(_)), "append {x}: {r:?}");
    }
    assert_eq!(read(&client, 3).await, (1..=APPENDS).collect::<Vec<_>>());
    let targets = Targets {
        endpoints: vec![Arc::clone(&endpoint)],
        standin: None,
        database: None,
        syncing: Vec::new(),
    };
    let plan = Plan {
        faults: vec![Fault::LoseUnfsyncedWrites],
        targets: vec![TargetSpec::All],
        interval: Duration::from_secs(1),
        seed: 1,
        clock: ClockOpts::default(),
    };
    targets
        .check(&plan.faults, &plan.targets)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rec = Recorder::new();
    let mut rng = fastrand::Rng::with_seed(1);
    let active = targets
        .start(Fault::LoseUnfsyncedWrites, &plan, &mut rng, &rec)
        .await
        .expect("a fault to heal");
    assert_eq!(endpoint.lock().await.pid(), None, "killed before the loss");
    targets.heal(active, &mut rng, &rec).await;
    let ops: Vec<_> = rec
        .history()
        .ops
        .into_iter()
        .filter(|op| op.client().is_none())
        .collect();
    let fs: Vec<&str> = ops.iter().map(|op| op.f.as_str()).collect();
    assert_eq!(fs, ["lose-unfsynced-writes", "start"], "{ops:?}");
    assert!(ops.iter().all(|op| op.error.is_none()), "{ops:?}");
    let Value::Nodes(lost) = &ops[0].value else {
        panic!("{:?}", ops[0].value)
    };
    let Some(NodeResult::Int(bytes)) = lost.get("n1") else {
        panic!("{lost:?}")
    };
    (read(&client, 3).await, *bytes)
}

/// `synchronous=NORMAL`: the commits since the last checkpoint were never fsynced, so the
/// fault drops them: acknowledged appends are gone after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_per_commit_acknowledged_appends_are_lost() {
    let (after, bytes) = appends_through_the_fault(endpoint::Durability::Normal).await;
    assert!(bytes > 0, "un-fsynced writes were dropped");
    assert!(
        after.len() < APPENDS as usize,
        "acknowledged appends lost under synchronous=normal, but key 3 holds {after:?}"
    );
    // What is left is a prefix: the database went back in time, it is not corrupt.
    assert_eq!(after, (1..=after.len() as i64).collect::<Vec<_>>());
}

/// `synchronous=FULL` (the endpoint's default): every commit was fsynced, so the fault drops
/// nothing acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fsync_per_commit_nothing_acknowledged_is_lost() {
    let (after, _) = appends_through_the_fault(endpoint::Durability::Full).await;
    assert_eq!(after, (1..=APPENDS).collect::<Vec<_>>());
}
