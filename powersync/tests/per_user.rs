//! Per-user data end to end (issue #14): sync rules with parameter queries served by the
//! stand-in over real PostgreSQL, synced by the real core through this crate. Each user gets
//! the buckets their token and client parameters select; bucket sets follow PostgreSQL
//! changes on live connections; the service's bucket limit breaks the stream.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::Duration;

use pg::{PgConnector, eventually, fast};
use powersync::schema::{Column, Schema, Table};
use powersync::{CoreLibrary, PowerSyncDatabase, SyncOptions};
use serde_json::json;
use standin::{Config, StandIn, SyncRules};
use testkit::{TestKey, TestPostgres};

/// Lists are owned by a user; todos belong to a list and carry a `secret` column no rule
/// selects; notes belong to a team the client names in its parameters.
const SETUP: &str = "
    CREATE TABLE lists (id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, name TEXT NOT NULL);
    CREATE TABLE todos (id TEXT PRIMARY KEY, list_id TEXT, description TEXT NOT NULL,
                        secret TEXT NOT NULL DEFAULT 'not for clients');
    CREATE TABLE notes (id TEXT PRIMARY KEY, team TEXT NOT NULL, body TEXT NOT NULL);
    CREATE PUBLICATION powersync FOR TABLE lists, todos, notes;";

/// The shape of the service docs' "todo list" example, plus client parameters.
const RULES: &str = "
bucket_definitions:
  user_lists:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM lists WHERE id = bucket.list_id
      - SELECT id, list_id, description FROM todos WHERE list_id = bucket.list_id
  team_notes:
    parameters: SELECT request.parameters() ->> 'team' AS team
    data:
      - SELECT * FROM notes WHERE team = bucket.team
";

fn schema() -> Schema {
    let mut tables = pg::owned_lists_and_todos();
    tables.push(Table::new(
        "notes",
        vec![Column::text("team"), Column::text("body")],
    ));
    Schema::new(tables)
}

async fn setup(seed: &str, max_buckets: usize) -> (TestPostgres, tokio_postgres::Client, StandIn) {
    let pg = TestPostgres::start().expect("start PostgreSQL (apt-get install -y postgresql)");
    let client = pg.client().await.unwrap();
    client.batch_execute(SETUP).await.unwrap();
    client.batch_execute(seed).await.unwrap();
    let standin = StandIn::start(config(&pg, max_buckets)).await.unwrap();
    (pg, client, standin)
}

/// The stand-in's configuration for [`RULES`] over `pg`.
fn config(pg: &TestPostgres, max_buckets: usize) -> Config {
    let mut config = Config::new(
        &pg.uri(),
        SyncRules::parse(RULES).unwrap(),
        TestKey::primary().jwks(),
    );
    config.poll_interval = Duration::from_millis(10);
    config.max_buckets = max_buckets;
    config
}

async fn open(core: &'static CoreLibrary) -> (tempfile::TempDir, PowerSyncDatabase) {
    pg::open_client_with(core, &schema()).await
}

/// `id -> (second column, third column)` of a client table.
async fn rows(db: &PowerSyncDatabase, sql: &str) -> BTreeMap<String, (String, String)> {
    db.query(sql, [], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn todos(db: &PowerSyncDatabase) -> Vec<String> {
    rows(db, "SELECT id, list_id, description FROM todos")
        .await
        .into_keys()
        .collect()
}

async fn lists(db: &PowerSyncDatabase) -> Vec<String> {
    rows(db, "SELECT id, owner_id, name FROM lists")
        .await
        .into_keys()
        .collect()
}

/// Waits until `db`'s todos are exactly `want`.
async fn todos_become(db: &PowerSyncDatabase, who: &str, want: &[&str]) {
    eventually(
        Duration::from_secs(30),
        &format!("{who}'s todos to be {want:?}"),
        || async { todos(db).await == want },
    )
    .await;
}

/// The cores that download (0.4.6+) from the vendored test set.
fn download_cores() -> Vec<&'static CoreLibrary> {
    common::cores()
        .into_iter()
        .filter(|c| c.version().at_least(0, 4, 6))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_syncs_only_their_lists_and_a_moved_todo_follows_its_list() {
    for core in download_cores() {
        let (pg, pgc, standin) = setup(
            "INSERT INTO lists VALUES ('la', 'alice', 'groceries'), ('lb', 'bob', 'chores');
             INSERT INTO todos (id, list_id, description) VALUES
                 ('a1', 'la', 'milk'), ('a2', 'la', 'eggs'), ('b1', 'lb', 'dishes'),
                 ('orphan', NULL, 'in no list');
             INSERT INTO notes VALUES ('n1', 'red', 'red note'), ('n2', 'blue', 'blue note');",
            1000,
        )
        .await;
        let (_ad, alice) = open(core).await;
        let (_bd, bob) = open(core).await;
        alice
            .connect(
                PgConnector::new(&standin.url(), &pg, "alice"),
                fast().with_params(json!({"team": "red"})),
            )
            .await
            .unwrap();
        bob.connect(PgConnector::new(&standin.url(), &pg, "bob"), fast())
            .await
            .unwrap();
        alice
            .wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        bob.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        let v = core.version();
        assert_eq!(lists(&alice).await, ["la"], "core {v}");
        assert_eq!(todos(&alice).await, ["a1", "a2"], "core {v}");
        assert_eq!(lists(&bob).await, ["lb"], "core {v}");
        assert_eq!(todos(&bob).await, ["b1"], "core {v}");
        // Client parameters pick the team; Bob sent none, so his team bucket is `[null]`.
        let notes = |db: &PowerSyncDatabase| {
            let db = db.clone();
            async move { rows(&db, "SELECT id, team, body FROM notes").await }
        };
        assert_eq!(
            notes(&alice).await.into_keys().collect::<Vec<_>>(),
            ["n1"],
            "core {v}"
        );
        assert!(notes(&bob).await.is_empty(), "core {v}");
        // The column list leaves `secret` out of what the service sends.
        let stored: Vec<String> = alice
            .query("SELECT data FROM ps_data__todos", [], |r| r.get(0))
            .await
            .unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|d| !d.contains("secret")), "{stored:?}");

        // Moving a todo to Bob's list: a REMOVE in Alice's bucket, a PUT in Bob's.
        pgc.batch_execute("UPDATE todos SET list_id = 'lb' WHERE id = 'a1'")
            .await
            .unwrap();
        todos_become(&alice, "alice", &["a2"]).await;
        todos_become(&bob, "bob", &["a1", "b1"]).await;
        // A todo that leaves every list leaves every client.
        pgc.batch_execute("UPDATE todos SET list_id = NULL WHERE id = 'a2'")
            .await
            .unwrap();
        todos_become(&alice, "alice", &[]).await;
        assert_eq!(lists(&alice).await, ["la"], "core {v}");
        alice.close().await.unwrap();
        bob.close().await.unwrap();
        standin.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_rows_change_the_buckets_of_a_live_connection() {
    for core in download_cores() {
        let (pg, pgc, standin) = setup(
            "INSERT INTO lists VALUES ('la', 'alice', 'groceries');
             INSERT INTO todos (id, list_id, description) VALUES ('a1', 'la', 'milk');",
            1000,
        )
        .await;
        let (_ad, alice) = open(core).await;
        let (_bd, bob) = open(core).await;
        alice
            .connect(PgConnector::new(&standin.url(), &pg, "alice"), fast())
            .await
            .unwrap();
        bob.connect(PgConnector::new(&standin.url(), &pg, "bob"), fast())
            .await
            .unwrap();
        todos_become(&alice, "alice", &["a1"]).await;
        bob.wait_for_first_sync(Duration::from_secs(30))
            .await
            .unwrap();
        let streams = standin.streams_served();

        // A new list of Alice's, with a todo, in one transaction: a new bucket mid-connection.
        pgc.batch_execute(
            "BEGIN; INSERT INTO lists VALUES ('lc', 'alice', 'work');
             INSERT INTO todos (id, list_id, description) VALUES ('c1', 'lc', 'report'); COMMIT;",
        )
        .await
        .unwrap();
        todos_become(&alice, "alice", &["a1", "c1"]).await;
        // The list changes hands: it leaves Alice's bucket set (`removed_buckets`) and joins
        // Bob's, todos included.
        pgc.batch_execute("UPDATE lists SET owner_id = 'bob' WHERE id = 'lc'")
            .await
            .unwrap();
        todos_become(&alice, "alice", &["a1"]).await;
        todos_become(&bob, "bob", &["c1"]).await;
        assert_eq!(lists(&alice).await, ["la"]);
        assert_eq!(lists(&bob).await, ["lc"]);
        // Deleting the list's row takes its bucket away too.
        pgc.batch_execute("DELETE FROM lists WHERE id = 'lc'")
            .await
            .unwrap();
        todos_become(&bob, "bob", &[]).await;
        assert_eq!(
            standin.streams_served(),
            streams,
            "core {}: every change arrived on the open streams",
            core.version()
        );
        alice.close().await.unwrap();
        bob.close().await.unwrap();
        standin.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_buckets_than_the_limit_break_the_stream_until_one_goes() {
    // The service's default limit: 1000 buckets per connection. Alice has 1000 lists and
    // the team bucket (`team_notes[null]`): 1001.
    let (pg, pgc, standin) = setup(
        "INSERT INTO lists SELECT 'l' || g, 'alice', 'list ' || g FROM generate_series(1, 1000) g;
         INSERT INTO todos (id, list_id, description) VALUES ('t1', 'l1', 'first');",
        standin::stream::MAX_BUCKETS,
    )
    .await;
    let core = common::default_core();
    let (_ad, alice) = open(core).await;
    alice
        .connect(PgConnector::new(&standin.url(), &pg, "alice"), fast())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "a download error after the stream broke",
        || async { alice.status().download_error.is_some() },
    )
    .await;
    let status = alice.status();
    assert_ne!(status.has_synced, Some(true), "{status:?}");
    assert!(todos(&alice).await.is_empty());
    pgc.batch_execute("DELETE FROM lists WHERE id = 'l1000'")
        .await
        .unwrap();
    if let Err(e) = alice.wait_for_first_sync(Duration::from_secs(30)).await {
        panic!("{e}: {:?}", alice.status());
    }
    assert_eq!(todos(&alice).await, ["t1"]);
    assert_eq!(lists(&alice).await.len(), 999);
    alice.close().await.unwrap();
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_state_survives_a_stand_in_restart() {
    let (pg, pgc, standin) = setup(
        "INSERT INTO lists VALUES ('la', 'alice', 'groceries');
         INSERT INTO todos (id, list_id, description) VALUES ('a1', 'la', 'milk');",
        1000,
    )
    .await;
    let before = standin.checkpoint();
    pgc.batch_execute("INSERT INTO todos (id, list_id, description) VALUES ('a2', 'la', 'eggs')")
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the insert replicated", || async {
        standin.checkpoint() > before
    })
    .await;
    standin.shutdown().await;
    // A restart loads the stored rows (not a new snapshot): the parameter rows and the
    // rows' bucket membership come back, so a later change still removes from the old bucket.
    let standin = StandIn::start(config(&pg, 1000)).await.unwrap();
    assert_eq!(standin.generation(), 1, "resumed, no new snapshot");
    let core = common::default_core();
    let (_ad, alice) = open(core).await;
    alice
        .connect(
            PgConnector::new(&standin.url(), &pg, "alice"),
            SyncOptions::default(),
        )
        .await
        .unwrap();
    todos_become(&alice, "alice", &["a1", "a2"]).await;
    pgc.batch_execute("UPDATE todos SET list_id = NULL WHERE id = 'a1'")
        .await
        .unwrap();
    todos_become(&alice, "alice", &["a2"]).await;
    alice.close().await.unwrap();
    standin.shutdown().await;
}
