//! The partition faults on real network namespaces (needs root and iproute2), each shown to
//! bite:
//! - cut off from PostgreSQL, a synced endpoint still answers and its upload cannot complete:
//!   the entry stays in its upload queue until the heal, then PostgreSQL holds it exactly once.
//!   The cut drops only what the node receives, as jepsen-powersync's does, so a pipelined
//!   upload that PostgreSQL receives may commit though its answer is lost (the ledger makes the
//!   retry after the heal a no-op);
//! - cut off from the sync service, it sees no PostgreSQL change, while its own uploads go on;
//!   after the heal the change arrives; its namespace goes with it.
//!
//! A whole run under the partition faults is in `run.rs`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{binaries, seed_config};
use harness::client::{EndpointClient, Outcome};
use harness::history::{Element, ListAppendMop};
use harness::link::Link;
use harness::model::Lww;
use harness::topology::{Cut, Database, Endpoint, EndpointConfig, Isolation, NodeNetwork, Standin};

/// How long a cut must hold a change back to count as stalling it: many times the ~20 ms a
/// change takes to cross the healthy path.
const HOLD: Duration = Duration::from_secs(2);

/// How long a change may take to arrive after a heal (TCP retransmits back off; a healed
/// connection resumes within a few seconds).
const ARRIVAL: Duration = Duration::from_secs(60);

fn namespaces() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PostgreSQL, the stand-in and one seed-era `powersync` endpoint in a network namespace of
/// its own, reaching both through links on its veth pair.
struct Partitionable {
    endpoint: Endpoint,
    namespace: String,
    database: Database,
    _links: [Link; 2],
    _standin: Standin,
    _dir: tempfile::TempDir,
}

async fn partitionable() -> Partitionable {
    let dir = tempfile::tempdir().expect("temp dir");
    let common::SyncServices {
        database,
        standin,
        jwks_private_key,
    } = common::sync_services(dir.path()).await;
    let network = NodeNetwork::create().unwrap_or_else(|e| panic!("{e}"));
    let namespace = network.namespace().to_owned();
    let local = |url: &str| {
        let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        SocketAddr::from((Ipv4Addr::LOCALHOST, port.expect("a port")))
    };
    let pg_link = Link::start_on(
        network.postgres_addr().into(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, database.port())),
        Duration::ZERO,
    )
    .await
    .expect("PostgreSQL link");
    let sync_link = Link::start_on(
        network.sync_addr().into(),
        local(&standin.url()),
        Duration::ZERO,
    )
    .await
    .expect("stand-in link");
    let config = EndpointConfig {
        powersync_url: Some(format!(
            "http://{}:{}",
            network.sync_addr(),
            sync_link.port()
        )),
        pg_host: network.postgres_addr(),
        pg_port: Some(pg_link.port()),
        jwks_private_key: Some(jwks_private_key),
        ..seed_config("n1", endpoint::Mode::Powersync)
    };
    let endpoint = Endpoint::start_isolated(
        &binaries().endpoint,
        &dir.path().join("n1"),
        config,
        Isolation {
            faketime: None,
            network: Some(network),
            lazyfs: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    Partitionable {
        endpoint,
        namespace,
        database,
        _links: [pg_link, sync_link],
        _standin: standin,
        _dir: dir,
    }
}

fn append(key: i64, element: i64) -> ListAppendMop {
    ListAppendMop::Append { key, element }
}

/// Key `key` as the endpoint reads it.
async fn endpoint_read(client: &EndpointClient<Lww>, key: i64) -> Option<Vec<Element>> {
    match client
        .txn("txn", &[ListAppendMop::Read { key, list: None }])
        .await
    {
        Outcome::Ok(mops) => match mops.into_iter().next() {
            Some(ListAppendMop::Read { list, .. }) => Some(list.unwrap_or_default()),
            _ => None,
        },
        _ => None,
    }
}

/// Key `key` in PostgreSQL.
async fn postgres_read(db: &Database, key: i64) -> Option<Vec<Element>> {
    db.state::<Lww>().await.ok()?.remove(&key)
}

/// The endpoint's upload queue: entries in `ps_crud` (read from its database file, read-only).
fn queued(endpoint: &Endpoint) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        endpoint.database_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the endpoint's database read-only");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.query_row("SELECT count(*) FROM ps_crud", [], |r| r.get(0))
        .expect("count ps_crud")
}

/// Asserts that `read` never yields `unwanted` for [`HOLD`] (the cut holds the change back).
async fn held_back<F: Future<Output = Option<Vec<Element>>>>(
    what: &str,
    unwanted: &[Element],
    mut read: impl FnMut() -> F,
) {
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        let seen = read().await;
        assert_ne!(seen.as_deref(), Some(unwanted), "{what} crossed the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn arrives<F: Future<Output = Option<Vec<Element>>>>(
    what: &str,
    wanted: &[Element],
    mut read: impl FnMut() -> F,
) {
    testkit::eventually_async(what, ARRIVAL, || {
        let seen = read();
        async move { seen.await.as_deref() == Some(wanted) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Cut off from PostgreSQL, the endpoint still answers and keeps its writes locally, but they
/// do not reach PostgreSQL until the heal; cut off from the sync service, its uploads go on
/// but a change made in PostgreSQL does not reach it until the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_stalls_uploads_or_downloads_until_the_heal() {
    let mut p = partitionable().await;
    let client = EndpointClient::<Lww>::new(&p.endpoint.url()).expect("client");
    let db = &p.database;
    // The healthy path, both ways.
    assert!(matches!(
        client.txn("txn", &[append(1, 1)]).await,
        Outcome::Ok(_)
    ));
    arrives("the first append in PostgreSQL", &[1], || {
        postgres_read(db, 1)
    })
    .await;

    p.endpoint
        .partition(Cut::Postgres)
        .expect("cut from PostgreSQL");
    let r = client.txn("txn", &[append(1, 2)]).await;
    assert!(
        matches!(r, Outcome::Ok(_)),
        "the harness still reaches the node: {r:?}"
    );
    assert_eq!(endpoint_read(&client, 1).await, Some(vec![1, 2]));
    // PostgreSQL's answers are lost, so the upload never completes: the entry stays queued.
    // (What the node sends still arrives, so PostgreSQL may hold the append already.)
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        assert!(
            queued(&p.endpoint) >= 1,
            "an upload cut from PostgreSQL's answers completed"
        );
        let in_postgres = postgres_read(db, 1).await;
        assert!(
            matches!(in_postgres.as_deref(), Some([1]) | Some([1, 2])),
            "PostgreSQL holds {in_postgres:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.endpoint.heal_partition().expect("heal");
    arrives("the held-back append in PostgreSQL, once", &[1, 2], || {
        postgres_read(db, 1)
    })
    .await;
    testkit::eventually_async("the upload queue to drain after the heal", ARRIVAL, || {
        let n = queued(&p.endpoint);
        async move { n == 0 }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        postgres_read(db, 1).await,
        Some(vec![1, 2]),
        "uploaded once"
    );

    p.endpoint
        .partition(Cut::Sync)
        .expect("cut from the sync service");
    let pg = p.database.client().await.expect("PostgreSQL client");
    pg.execute("UPDATE lww SET v = $1 WHERE k = $2", &[&"7", &2i32])
        .await
        .expect("a PostgreSQL write");
    // Uploads go on: only the sync service is cut.
    assert!(matches!(
        client.txn("txn", &[append(3, 1)]).await,
        Outcome::Ok(_)
    ));
    arrives("an upload while cut from sync", &[1], || {
        postgres_read(db, 3)
    })
    .await;
    held_back("a download cut from the sync service", &[7], || {
        endpoint_read(&client, 2)
    })
    .await;
    p.endpoint.heal_partition().expect("heal");
    arrives("the held-back change on the node", &[7], || {
        endpoint_read(&client, 2)
    })
    .await;

    let namespace = p.namespace.clone();
    assert!(
        namespaces().contains(&namespace),
        "{namespace} exists while in use"
    );
    drop(p);
    assert!(
        !namespaces().contains(&namespace),
        "{namespace} is deleted with its endpoint"
    );
}
