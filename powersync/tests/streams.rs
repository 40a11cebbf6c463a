//! Sync Streams on the client (issue #14): subscriptions stored by the real core, the stream
//! status it reports, and, end to end over the stand-in and real PostgreSQL, subscribing and
//! unsubscribing while connected.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use pg::{PgConnector, eventually, fast};
use powersync::schema::Schema;
use powersync::{CoreLibrary, Error, PowerSyncDatabase, SubscribeOptions, SyncStatus};
use serde_json::json;
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

const SETUP: &str = "
    CREATE TABLE lists (id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, name TEXT NOT NULL);
    CREATE TABLE todos (id TEXT PRIMARY KEY, list_id TEXT, description TEXT NOT NULL);
    CREATE PUBLICATION powersync FOR TABLE lists, todos;
    INSERT INTO lists VALUES ('la', 'alice', 'groceries'), ('lb', 'bob', 'chores');
    INSERT INTO todos VALUES ('a1', 'la', 'milk'), ('a2', 'la', 'eggs'), ('b1', 'lb', 'dishes');";

/// The service docs' shape: the user's own lists by default, a list's todos on request.
const STREAMS: &str = "
config:
  edition: 2
streams:
  my_lists:
    auto_subscribe: true
    query: SELECT * FROM lists WHERE owner_id = auth.user_id()
  list_todos:
    query: SELECT * FROM todos WHERE list_id = subscription.parameter('list')
";

fn schema() -> Schema {
    Schema::new(pg::owned_lists_and_todos())
}

/// The cores with Sync Streams that download (0.4.6+) from the vendored test set.
fn stream_cores() -> Vec<&'static CoreLibrary> {
    common::cores()
        .into_iter()
        .filter(|c| c.version().at_least(0, 4, 6))
        .collect()
}

fn list(id: &str) -> serde_json::Map<String, serde_json::Value> {
    json!({ "list": id })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn near(t: Option<SystemTime>, want: SystemTime, within: Duration) -> bool {
    t.is_some_and(|t| {
        let d = t.duration_since(want).unwrap_or_else(|e| e.duration());
        d <= within
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_stored_by_the_core_and_shown_offline() {
    for core in stream_cores() {
        let v = core.version();
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        let stream = db.sync_stream("list_todos", Some(&list("la")));
        let before = SystemTime::now();
        let sub = stream
            .subscribe(
                SubscribeOptions::default()
                    .with_ttl(Duration::from_secs(3600))
                    .with_priority(1),
            )
            .await
            .unwrap();
        let status = db.status();
        let entry = sub
            .status_in(&status)
            .unwrap_or_else(|| panic!("core {v}: no stream entry in {:?}", status.streams));
        assert!(
            entry.has_explicit_subscription && !entry.is_default,
            "core {v}"
        );
        assert!(!entry.active, "core {v}: no service has acknowledged it");
        assert!(!entry.has_synced(), "core {v}");
        assert!(
            near(
                entry.expires_at,
                before + Duration::from_secs(3600),
                Duration::from_secs(120)
            ),
            "core {v}: expires_at {:?} is not an hour from now",
            entry.expires_at
        );
        assert_eq!(entry.parameters, Some(json!({"list": "la"})), "core {v}");
        // Another parameter set is another subscription; the first is not it.
        assert!(
            status
                .for_stream("list_todos", Some(&json!({"list": "lb"})))
                .is_none()
        );

        // Out of range: refused, nothing stored.
        let refused = db
            .sync_stream("list_todos", Some(&list("lb")))
            .subscribe(SubscribeOptions::default().with_priority(4))
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{refused:?}"
        );
        assert_eq!(db.status().streams.len(), 1, "core {v}");

        // Dropping the handle keeps the stored subscription (its TTL runs); `unsubscribe_all`
        // ends it: the core keeps the row but no longer as an explicit subscription, so it is
        // no longer requested.
        sub.unsubscribe();
        assert!(db.status().streams[0].has_explicit_subscription, "core {v}");
        stream.unsubscribe_all().await.unwrap();
        let status = db.status();
        assert!(
            status.streams.iter().all(|s| !s.has_explicit_subscription),
            "core {v}: {:?}",
            status.streams
        );
        db.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_without_sync_streams_refuse_to_subscribe() {
    for core in common::cores()
        .into_iter()
        .filter(|c| !c.version().at_least(0, 4, 5))
    {
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        let refused = db
            .sync_stream("list_todos", None)
            .subscribe(SubscribeOptions::default())
            .await;
        assert!(
            matches!(
                refused,
                Err(Error::UnsupportedByCore { needs: "0.4.5", .. })
            ),
            "core {}: {refused:?}",
            core.version()
        );
        db.close().await.unwrap();
    }
}

async fn setup() -> (TestPostgres, tokio_postgres::Client, StandIn) {
    let pg = TestPostgres::start().expect("start PostgreSQL (apt-get install -y postgresql)");
    let client = pg.client().await.unwrap();
    client.batch_execute(SETUP).await.unwrap();
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(STREAMS).unwrap(),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    let standin = StandIn::start(config).await.unwrap();
    (pg, client, standin)
}

async fn ids(db: &PowerSyncDatabase, table: &str) -> BTreeSet<String> {
    db.query(&format!("SELECT id FROM {table}"), [], |r| r.get(0))
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn todos_become(db: &PowerSyncDatabase, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(
        Duration::from_secs(30),
        &format!("the todos to be {want:?}"),
        || async { ids(db, "todos").await == want },
    )
    .await;
}

/// Disconnects and connects again as Alice, then waits until a list inserted in PostgreSQL
/// after the new connection was opened (`marker`) has arrived: a checkpoint of the new
/// connection has been applied.
async fn reconnect(
    db: &PowerSyncDatabase,
    standin: &StandIn,
    pg: &TestPostgres,
    pgc: &tokio_postgres::Client,
    marker: &str,
) {
    db.disconnect().await.unwrap();
    db.connect(PgConnector::new(&standin.url(), pg, "alice"), fast())
        .await
        .unwrap();
    pgc.execute(
        "INSERT INTO lists VALUES ($1, 'alice', 'marker')",
        &[&marker],
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        &format!("list {marker} to arrive on the new connection"),
        || async { ids(db, "lists").await.contains(marker) },
    )
    .await;
}

/// The TTL of the subscription the test lets expire.
const LA_TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_and_unsubscribing_while_connected_adds_and_removes_rows() {
    for core in stream_cores() {
        let v = core.version();
        let (pg, pgc, standin) = setup().await;
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        db.connect(PgConnector::new(&standin.url(), &pg, "alice"), fast())
            .await
            .unwrap();
        db.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        // The default stream: Alice's lists; no todos until she subscribes.
        assert_eq!(
            ids(&db, "lists").await,
            BTreeSet::from(["la".into()]),
            "core {v}"
        );
        assert!(ids(&db, "todos").await.is_empty(), "core {v}");
        let status = db.status();
        let default = status
            .streams
            .iter()
            .find(|s| s.name == "my_lists")
            .unwrap_or_else(|| panic!("core {v}: {:?}", status.streams));
        assert!(
            default.is_default && default.active && default.has_synced(),
            "core {v}"
        );

        // Subscribe while connected: the list's todos arrive on the same client.
        let la = db
            .sync_stream("list_todos", Some(&list("la")))
            .subscribe(SubscribeOptions::default().with_ttl(LA_TTL))
            .await
            .unwrap();
        la.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        todos_become(&db, &["a1", "a2"]).await;
        let entry = la.status_in(&db.status()).cloned().unwrap();
        assert!(
            entry.active && entry.has_explicit_subscription,
            "core {v}: {entry:?}"
        );

        // A second stream subscription with other parameters adds that list's todos.
        let lb = db
            .sync_stream("list_todos", Some(&list("lb")))
            .subscribe(SubscribeOptions::default())
            .await
            .unwrap();
        todos_become(&db, &["a1", "a2", "b1"]).await;

        // A held handle keeps the stream requested past its TTL: every connection extends it
        // (`active_streams`).
        tokio::time::sleep(LA_TTL + Duration::from_secs(1)).await;
        reconnect(&db, &standin, &pg, &pgc, "m1").await;
        la.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            ids(&db, "todos").await,
            BTreeSet::from(["a1".into(), "a2".into(), "b1".into()]),
            "core {v}: a held stream outlives its TTL"
        );

        // Dropping the last handle makes the stream inactive: its stored subscription expires
        // once its TTL has run out, and the next connection no longer requests it.
        la.unsubscribe();
        // Waiting out the TTL itself (a wall-clock deadline of the core, not a sync point).
        tokio::time::sleep(LA_TTL + Duration::from_secs(1)).await;
        reconnect(&db, &standin, &pg, &pgc, "m2").await;
        todos_become(&db, &["b1"]).await;
        // `unsubscribe_all` ends the other one at once, although its handle is still alive.
        db.sync_stream("list_todos", Some(&list("lb")))
            .unsubscribe_all()
            .await
            .unwrap();
        todos_become(&db, &[]).await;
        drop(lb);
        assert_eq!(
            ids(&db, "lists").await,
            BTreeSet::from(["la".into(), "m1".into(), "m2".into()]),
            "core {v}"
        );
        db.close().await.unwrap();
        standin.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_default_streams_only_subscriptions_sync() {
    for core in stream_cores() {
        let v = core.version();
        let (pg, _pgc, standin) = setup().await;
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        let sub = db
            .sync_stream("list_todos", Some(&list("lb")))
            .subscribe(SubscribeOptions::default())
            .await
            .unwrap();
        db.connect(
            PgConnector::new(&standin.url(), &pg, "alice"),
            fast().with_default_streams(false),
        )
        .await
        .unwrap();
        sub.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            ids(&db, "todos").await,
            BTreeSet::from(["b1".into()]),
            "core {v}"
        );
        assert!(
            ids(&db, "lists").await.is_empty(),
            "core {v}: no default stream"
        );
        let status: SyncStatus = db.status();
        assert!(
            status
                .streams
                .iter()
                .all(|s| s.name != "my_lists" || !s.active),
            "core {v}: {:?}",
            status.streams
        );
        db.close().await.unwrap();
        standin.shutdown().await;
    }
}
