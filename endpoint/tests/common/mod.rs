//! Runs the real `powersync_endpoint` binary in a temporary directory and talks to it over HTTP.
//! Every process is killed (SIGKILL) and reaped when its handle drops, also when a test fails;
//! the directory goes when its `Workdir` drops.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

pub mod backend;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

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

    /// Starts the endpoint with exactly `env` (over a cleared environment) and `args`, output
    /// appended to the log. Does not wait.
    pub fn spawn(&self, env: &[(&str, &str)], args: &[&str]) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        Command::new(BIN)
            .current_dir(self.path())
            .env_clear()
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Runs the endpoint to completion (for start-up failures) with a deadline; its status and
    /// what it printed.
    pub fn run_to_exit(&self, env: &[(&str, &str)], args: &[&str]) -> (ExitStatus, String) {
        let offset = self.log().len();
        let mut child = ChildGuard(Some(self.spawn(env, args)));
        let status = wait_exit(child.0.as_mut().unwrap(), Duration::from_secs(10))
            .expect("the endpoint should have exited");
        child.0 = None;
        (status, self.log()[offset..].to_owned())
    }

    fn wait_listening(&self, child: &mut Child, offset: usize) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.log();
            if let Some(line) = log[offset..].lines().find(|l| l.contains("listening on ")) {
                let port = line.rsplit(':').next().unwrap().trim();
                return port.parse().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the endpoint exited with {status} before listening; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the endpoint did not listen in time; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Kills (SIGKILL) and reaps a child on drop.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A running endpoint; SIGKILLed and reaped on drop.
pub struct Endpoint {
    child: Child,
    pub port: u16,
    client: reqwest::Client,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
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
