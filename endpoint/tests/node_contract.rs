//! The jepsen-powersync node contract (issue 11): the install bundle (`scripts/bundle`) in the
//! node images' layouts, the repository's own `.env` files (verbatim fixtures, see
//! `tests/fixtures/jepsen-powersync/README.md`), each binary started as Jepsen's
//! `start-stop-daemon --chdir <app-dir> --exec <binary>` starts it: an empty environment (`env
//! -i`; sudo resets it), cwd = the app dir, no arguments beyond the era's, stdout and stderr
//! appended to `client.log`. Real PostgreSQL and the stand-in sync service (which trusts the
//! public development key of jepsen-powersync's `config/powersync.yaml`).
//!
//! The copies of the `.env` files are edited in exactly these lines: `POWERSYNC_URL` and
//! `PG_DATABASE_HOST`/`PG_DATABASE_PORT` point at the test's services, and `ENDPOINT_PORT` is
//! set to 0 (a free port) because a fixed 8089 can collide with other processes on a shared
//! machine. The bundle is made from the binary under test (`scripts/bundle --from`), or from
//! `NODE_CONTRACT_BINARY` when set (to show the test failing against another build).
//!
//! The core must come from the bundle: the startup log must name the bundle's library.

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use standin::{Config, StandIn, SyncRules};
use testkit::TestPostgres;

use common::backend::SEED_SQL;
use common::mww::MWW_SQL;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jepsen-powersync"
);

/// The service's public development JWKS, from the verbatim `config/powersync.yaml` fixture.
fn development_jwks() -> Value {
    let yaml = std::fs::read_to_string(format!("{FIXTURES}/b77a3d0/config/powersync.yaml"))
        .expect("fixture");
    let jwks = yaml.split("jwks:").nth(1).expect("client_auth.jwks");
    let value = |name: &str| {
        jwks.lines()
            .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix(name))
            .unwrap_or_else(|| panic!("{name}"))
            .trim()
            .to_owned()
    };
    json!({"keys": [{
        "kty": value("kty:"), "n": value("n:"), "e": value("e:"),
        "alg": value("alg:"), "kid": value("kid:"),
    }]})
}

/// PostgreSQL with `seed_sql` and (for the synced cases) the stand-in over `table`.
struct Services {
    pg: TestPostgres,
    client: tokio_postgres::Client,
    standin: Option<StandIn>,
}

impl Services {
    async fn start(seed_sql: &str, table: Option<&str>) -> Self {
        let pg = TestPostgres::start().expect("PostgreSQL (apt-get install -y postgresql)");
        let client = pg.client().await.unwrap();
        client.batch_execute(seed_sql).await.unwrap();
        let standin = match table {
            Some(table) => {
                let rules = SyncRules::parse(&format!(
                    "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM {table}\n"
                ))
                .unwrap();
                let mut config = Config::new(&pg.uri(), rules, development_jwks());
                config.poll_interval = Duration::from_millis(10);
                Some(StandIn::start(config).await.unwrap())
            }
            None => None,
        };
        Self {
            pg,
            client,
            standin,
        }
    }

    /// The fixture `.env` with only the service lines (and the port) changed.
    fn edit_env(&self, fixture: &str) -> String {
        let url = self
            .standin
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:9".to_owned(), StandIn::url);
        let mut seen_url = false;
        let mut lines: Vec<String> = fixture
            .lines()
            .map(|line| {
                let key = line.split('=').next().unwrap_or_default();
                match key {
                    "POWERSYNC_URL" => {
                        seen_url = true;
                        format!("POWERSYNC_URL={url}")
                    }
                    "PG_DATABASE_HOST" => "PG_DATABASE_HOST=127.0.0.1".to_owned(),
                    "PG_DATABASE_PORT" => format!("PG_DATABASE_PORT={}", self.pg.port()),
                    "ENDPOINT_PORT" => "ENDPOINT_PORT=0".to_owned(),
                    _ => line.to_owned(),
                }
            })
            .collect();
        // b77a3d0's .env has no POWERSYNC_URL (the Dart default is the compose host name).
        if !seen_url && self.standin.is_some() {
            lines.push(format!("POWERSYNC_URL={url}"));
        }
        if !fixture.contains("ENDPOINT_PORT=") {
            lines.push("ENDPOINT_PORT=0".to_owned());
        }
        lines.join("\n") + "\n"
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.standin.take() {
            s.shutdown().await;
        }
    }
}

/// A bundle made by `scripts/bundle --from <binary>` in a fresh directory.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    fn build() -> Self {
        let binary =
            std::env::var("NODE_CONTRACT_BINARY").unwrap_or_else(|_| common::BIN.to_owned());
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/bundle");
        let out = Command::new(script)
            .arg("--from")
            .arg(&binary)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/bundle failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join(rel)
    }
}

/// One binary started as Jepsen starts it; SIGKILLed when dropped.
struct Node {
    child: testkit::ChildGuard,
    app_dir: PathBuf,
    port: u16,
    http: reqwest::Client,
}

impl Node {
    fn start(app_dir: &Path, exe: &Path, args: &[&str]) -> Self {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(app_dir.join("client.log"))
            .unwrap();
        let offset = log.metadata().unwrap().len() as usize;
        let child = testkit::ChildGuard::spawn(
            &exe.display().to_string(),
            Command::new(exe)
                .env_clear()
                .current_dir(app_dir)
                .args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .unwrap();
        let mut node = Self {
            child,
            app_dir: app_dir.to_owned(),
            port: 0,
            http: reqwest::Client::new(),
        };
        let port = testkit::eventually(
            "a \"listening on\" line in client.log",
            Duration::from_secs(90),
            || {
                let log = node.log();
                if let Some(line) = log[offset..].lines().find(|l| l.contains("listening on ")) {
                    return Ok(line
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .trim()
                        .parse::<u16>()
                        .unwrap());
                }
                if node.child.has_exited() {
                    let status = node.child.wait().unwrap();
                    panic!(
                        "{} exited with {status} before listening; client.log:\n{log}",
                        exe.display()
                    );
                }
                Err(format!("client.log:\n{log}"))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        node.port = port;
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.app_dir.join("client.log")).unwrap_or_default()
    }

    /// POSTs `body` as clj-http does; the status and the JSON reply.
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let reply = self
            .http
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = reply.status().as_u16();
        (status, reply.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let reply = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .unwrap();
        let status = reply.status().as_u16();
        (status, reply.json().await.unwrap())
    }

    /// SIGTERM (Jepsen's stop-daemon), then waits for the exit.
    /// (The guard SIGKILLs the node if it does not stop in time.)
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        testkit::eventually(
            "the node to exit after SIGTERM",
            Duration::from_secs(30),
            || self.child.has_exited(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Jepsen's three log checks on `client.log`: `#"ERROR"` (seed), `#"(?i)ERROR"` (seed
/// `sqlite3-local`) and `#"(SEVERE)|(ERROR)"` (b77a3d0).
fn assert_jepsen_log_checks_pass(log: &str) {
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("ERROR") || l.to_lowercase().contains("error") || l.contains("SEVERE")
        })
        .collect();
    assert!(
        hits.is_empty(),
        "client.log fails Jepsen's ERROR / (?i)ERROR / (SEVERE)|(ERROR) checks:\n{}",
        hits.join("\n")
    );
}

fn assert_core_from(log: &str, core: &Path) {
    let line = log
        .lines()
        .find(|l| l.contains("PowerSync core "))
        .unwrap_or_else(|| panic!("no core line in:\n{log}"));
    assert!(
        line.contains(&format!("from {}", core.display())),
        "the core must come from the bundle ({}):\n{line}",
        core.display()
    );
}

/// PostgreSQL's `lww` lists by key, as element vectors.
async fn lww_lists(client: &tokio_postgres::Client) -> std::collections::BTreeMap<i64, Vec<i64>> {
    client
        .query("SELECT k, v FROM lww", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                i64::from(r.get::<_, i32>(0)),
                common::stored_list(r.get::<_, &str>(1)),
            )
        })
        .collect()
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    testkit::eventually_async(what, Duration::from_secs(60), check)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_era_nodes_serve_list_append_beyond_key_100_and_converge_in_postgres() {
    let bundle = Bundle::build();
    for commit in ["470f1ac", "47f845d"] {
        let services = Services::start(SEED_SQL, Some("lww")).await;
        let app = bundle.path("powersync_endpoint");
        let fixture =
            std::fs::read_to_string(format!("{FIXTURES}/{commit}/powersync_endpoint/.env"))
                .unwrap();
        std::fs::write(app.join(".env"), services.edit_env(&fixture)).unwrap();
        let _ = std::fs::remove_file(app.join("client.log"));
        let node = Node::start(&app, &app.join("powersync_endpoint"), &[]);
        assert_core_from(&node.log(), &app.join("libpowersync.so"));
        // The Clojure client's bodies: (select-keys op [:value]) through cheshire.
        let (status, reply) = node
            .post(
                "/sql-txn",
                r#"{"value":[{"f":"append","k":3,"v":1},{"f":"append","k":150,"v":1},{"f":"r","k":150,"v":null},{"f":"r","k":4242,"v":null}]}"#,
            )
            .await;
        assert_eq!(status, 200, "{commit}: {reply}");
        assert_eq!(
            reply,
            json!({"value":[{"f":"append","k":3,"v":1},{"f":"append","k":150,"v":1},{"f":"r","k":150,"v":"[1]"},{"f":"r","k":4242,"v":null}],"type":"ok"}),
            "{commit}"
        );
        let (status, reply) = node
            .post(
                "/sql-txn",
                r#"{"value":[{"f":"append","k":150,"v":2},{"f":"r","k":150,"v":null}]}"#,
            )
            .await;
        assert_eq!(
            (status, &reply["value"][1]["v"]),
            (200, &json!("[1 2]")),
            "{reply}"
        );
        // A rejected request is answered 400 and logged without the word.
        let (status, _) = node
            .post("/sql-txn", r#"{"value":[{"f":"r","k":-1,"v":null}]}"#)
            .await;
        assert_eq!(status, 400);
        eventually(&format!("{commit}: PostgreSQL has the appends"), || async {
            let lists = lww_lists(&services.client).await;
            if lists.get(&3) == Some(&vec![1]) && lists.get(&150) == Some(&vec![1, 2]) {
                Ok(())
            } else {
                Err(format!("{lists:?}"))
            }
        })
        .await;
        node.stop();
        let log = std::fs::read_to_string(app.join("client.log")).unwrap();
        assert!(log.contains("shut down cleanly"), "{log}");
        assert_jepsen_log_checks_pass(&log);
        let _ = std::fs::remove_file(app.join("powersync.sqlite3"));
        let _ = std::fs::remove_file(app.join("powersync.sqlite3-wal"));
        let _ = std::fs::remove_file(app.join("powersync.sqlite3-shm"));
        services.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_sqlite3_endpoint_program_serves_any_key_from_a_fresh_database() {
    let bundle = Bundle::build();
    let app = bundle.path("sqlite3_endpoint");
    // Holds only ENDPOINT_PORT; the same file at 470f1ac and 47f845d. Only the port is edited.
    let fixture =
        std::fs::read_to_string(format!("{FIXTURES}/47f845d/sqlite3_endpoint/.env")).unwrap();
    std::fs::write(
        app.join(".env"),
        fixture.replace("ENDPOINT_PORT=8089", "ENDPOINT_PORT=0"),
    )
    .unwrap();
    let exe = app.join("bin").join("sqlite3_endpoint.exe");
    for run in 0..2 {
        let node = Node::start(&app, &exe, &[]);
        // Each run starts empty, as the Dart program: the previous run's append is gone.
        let (status, reply) = node
            .post("/sql-txn", r#"{"value":[{"f":"r","k":1000,"v":null},{"f":"append","k":1000,"v":5},{"f":"r","k":1000,"v":null}]}"#)
            .await;
        assert_eq!(status, 200, "run {run}: {reply}");
        assert_eq!(reply["value"][0]["v"], Value::Null, "run {run}: {reply}");
        assert_eq!(reply["value"][2]["v"], json!("[5]"), "run {run}: {reply}");
        let (status, _) = node
            .post("/sql-txn", r#"{"value":[{"f":"x","k":1,"v":null}]}"#)
            .await;
        assert_eq!(status, 400);
        node.stop();
    }
    assert!(app.join("sqlite3_endpoint.sqlite3").exists());
    let log = std::fs::read_to_string(app.join("client.log")).unwrap();
    assert!(log.contains("mode=sqlite3-local"), "{log}");
    assert_jepsen_log_checks_pass(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_era_nodes_serve_mww_and_db_api_and_converge_in_postgres() {
    let bundle = Bundle::build();
    let app = bundle.path("powersync_endpoint");
    let exe = app.join("powersync_http/bundle/bin/powersync_http");
    let fixture =
        std::fs::read_to_string(format!("{FIXTURES}/b77a3d0/powersync_endpoint/.env")).unwrap();
    for endpoint in ["powersync", "postgresql"] {
        let services = Services::start(MWW_SQL, (endpoint == "powersync").then_some("mww")).await;
        std::fs::write(app.join(".env"), services.edit_env(&fixture)).unwrap();
        let _ = std::fs::remove_file(app.join("client.log"));
        let _ = std::fs::remove_dir_all(app.join("data"));
        let node = Node::start(&app, &exe, &["--endpoint", endpoint]);
        if endpoint == "powersync" {
            assert_core_from(
                &node.log(),
                &app.join("powersync_http/bundle/lib/libpowersync_core.so"),
            );
        }
        // (select-keys op [:type :f :value]) with writeSome keys as strings.
        let (status, reply) = node
            .post(
                "/sql-txn",
                r#"{"type":"invoke","f":"txn","value":[{"f":"readAll","k":null,"v":{}},{"f":"writeSome","k":null,"v":{"3":5,"17":9}}]}"#,
            )
            .await;
        assert_eq!(status, 200, "{endpoint}: {reply}");
        assert_eq!(reply["type"], "ok", "{reply}");
        assert_eq!(
            reply["value"][0]["v"].as_object().unwrap().len(),
            100,
            "{reply}"
        );
        assert_eq!(reply["value"][1]["v"], json!({"3":5,"17":9}), "{reply}");
        for action in [
            "uploadQueueCount",
            "uploadQueueWait",
            "downloadingWait",
            "selectAll",
        ] {
            let (status, reply) = node.get(&format!("/db-api/{action}")).await;
            assert_eq!(status, 200, "{endpoint} {action}: {reply}");
        }
        let (status, _) = node.get("/db-api/nope").await;
        assert_eq!(status, 404);
        eventually(
            &format!("{endpoint}: PostgreSQL has the writes"),
            || async {
                let rows = services
                    .client
                    .query("SELECT k, v FROM mww WHERE k IN (3, 17) ORDER BY k", &[])
                    .await
                    .unwrap();
                let got: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                if got == [(3, 5), (17, 9)] {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            },
        )
        .await;
        node.stop();
        let log = std::fs::read_to_string(app.join("client.log")).unwrap();
        assert_jepsen_log_checks_pass(&log);
        services.shutdown().await;
    }
}
