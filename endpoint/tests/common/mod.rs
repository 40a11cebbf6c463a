//! Runs the real `powersync_endpoint` binary in a temporary directory and talks to it over HTTP.
//! Every process is killed (SIGKILL) and reaped when its handle drops, also when a test fails;
//! the directory goes when its `Workdir` drops.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

pub mod backend;
pub mod mww;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;
use testkit::ChildGuard;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_powersync_endpoint");

/// A temporary working directory shared by successive runs of the endpoint, with one log file
/// that every run appends to (as the harness's `client.log`).
pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("endpoint.sqlite3")
    }

    pub fn log_path(&self) -> PathBuf {
        self.path().join("client.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the endpoint in `sqlite3-local` mode on a free port with the database in this
    /// directory; `env` and `args` are added. Waits until it listens.
    pub fn start(&self, env: &[(&str, &str)], args: &[&str]) -> Endpoint {
        let db = self.db();
        let mut all = vec![
            ("ENDPOINT_MODE", "sqlite3-local"),
            ("ENDPOINT_PORT", "0"),
            ("SQLITE3_PATH", db.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        let offset = self.log().len();
        let child = self.spawn(&all, args);
        let mut endpoint = Endpoint {
            child,
            port: 0,
            client: reqwest::Client::new(),
        };
        endpoint.port = self.wait_listening(&mut endpoint.child, offset);
        endpoint
    }

    /// Starts the endpoint with exactly `env` (over a cleared environment) and `args` and waits
    /// until it listens (for the latest era, configured by flags).
    pub fn start_exactly(&self, env: &[(&str, &str)], args: &[&str]) -> Endpoint {
        let offset = self.log().len();
        let child = self.spawn(env, args);
        let mut endpoint = Endpoint {
            child,
            port: 0,
            client: reqwest::Client::new(),
        };
        endpoint.port = self.wait_listening(&mut endpoint.child, offset);
        endpoint
    }

    /// Starts the endpoint with exactly `env` (over a cleared environment) and `args`, output
    /// appended to the log. Does not wait; the process is SIGKILLed and reaped when the guard
    /// drops.
    pub fn spawn(&self, env: &[(&str, &str)], args: &[&str]) -> ChildGuard {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        ChildGuard::spawn(
            "powersync_endpoint",
            Command::new(BIN)
                .current_dir(self.path())
                .env_clear()
                .envs(env.iter().copied())
                .args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .unwrap()
    }

    /// Runs the endpoint to completion (for start-up failures) with a deadline; its status and
    /// what it printed.
    pub fn run_to_exit(&self, env: &[(&str, &str)], args: &[&str]) -> (ExitStatus, String) {
        let offset = self.log().len();
        let mut child = self.spawn(env, args);
        let status = wait_exit(&mut child, Duration::from_secs(10))
            .expect("the endpoint should have exited");
        (status, self.log()[offset..].to_owned())
    }

    fn wait_listening(&self, child: &mut ChildGuard, offset: usize) -> u16 {
        let port = testkit::eventually(
            "the endpoint to log \"listening on \"",
            Duration::from_secs(15),
            || {
                let log = self.log();
                if let Some(line) = log[offset..].lines().find(|l| l.contains("listening on ")) {
                    let port = line.rsplit(':').next().unwrap().trim();
                    return Ok(port.parse::<u16>().unwrap());
                }
                if child.has_exited() {
                    let status = child.wait().unwrap();
                    panic!("the endpoint exited with {status} before listening; log:\n{log}");
                }
                Err(format!("log:\n{log}"))
            },
        );
        port.unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Waits up to `timeout` for `child` to exit; its status (the guard is then empty).
pub fn wait_exit(child: &mut ChildGuard, timeout: Duration) -> Option<ExitStatus> {
    testkit::eventually("the endpoint to exit", timeout, || child.has_exited()).ok()?;
    Some(child.wait().unwrap())
}

/// A running endpoint; SIGKILLed and reaped on drop.
pub struct Endpoint {
    child: ChildGuard,
    pub port: u16,
    client: reqwest::Client,
}

/// A reply: status, content type and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", self.text))
    }
}

impl Endpoint {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id().expect("the endpoint is running")).unwrap())
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, timeout)
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Posts a `/sql-txn` body that must succeed; the reply's JSON.
    pub async fn txn(&self, body: &str) -> Value {
        let reply = self.post("/sql-txn", body.to_owned()).await;
        assert_eq!(reply.status, 200, "{body} -> {reply:?}");
        reply.json()
    }

    /// All rows from `/db/list`.
    pub async fn rows(&self) -> Vec<Value> {
        let reply = self.get("/db/list").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json().as_array().unwrap().clone()
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        text: response.text().await.unwrap(),
    }
}

/// The integers of a stored list text such as `" 1 4 6"`.
pub fn stored_list(v: &str) -> Vec<i64> {
    v.split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// Asserts that a healthy run's log never says "error" in any case (the seed's sqlite3
/// workloads grep the client log with `(?i)ERROR`).
pub fn assert_no_error_in_log(log: &str) {
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("error"))
        .collect();
    assert!(
        hits.is_empty(),
        "the log mentions errors:\n{}",
        hits.join("\n")
    );
    assert!(!log.is_empty(), "the log is empty");
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
