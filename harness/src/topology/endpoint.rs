//! One `powersync_endpoint` node: its own working directory (with the seed's `.env`), SQLite
//! file, port and log (`endpoint.log`, appended across restarts as Jepsen's `client.log`).
//!
//! For the clock faults an endpoint runs under libfaketime (Debian's `faketime` package):
//! `LD_PRELOAD` of its multi-threaded library, `FAKETIME_TIMESTAMP_FILE` naming the node's
//! `faketime.rc` (an offset such as `+60.000`, re-read on every time call with
//! `FAKETIME_NO_CACHE=1`), and `FAKETIME_DONT_FAKE_MONOTONIC=1` so that only the wall clock
//! moves, as Jepsen's clock nemesis steps a node's system clock and leaves its monotonic clock
//! alone.
//!
//! For the lost-writes fault an endpoint's database lives on a [`LazyFs`] mounted at
//! `<node>/data` over `<node>/lazyfs`: a kill followed by
//! [`Endpoint::lose_unfsynced_writes`] leaves the files as a power loss would.
//!
//! For the partition faults an endpoint runs in a network namespace of its own
//! ([`NodeNetwork`]): it is started with `ip netns exec`, reached at the namespace's address,
//! and reaches PostgreSQL and the stand-in at the harness's addresses of its veth pair.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::network::{Cut, NodeNetwork};
use super::{append_log, kill_and_reap, log_tail, signal, terminate};
use crate::error::{Error, Result};
use crate::lazyfs::LazyFs;

/// How long an endpoint may take to listen and answer `GET /powersync`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `GET /db-api/close` may take before the stop goes on with the kill.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a seed-era endpoint gets after SIGTERM to close its database before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The database's file name.
const DATABASE_FILE: &str = "endpoint.sqlite3";
/// The lazy filesystem's mount point in the node directory.
const LAZYFS_MOUNT: &str = "data";
/// The directory in the node directory that holds the lazy filesystem's durable contents.
const LAZYFS_BACKING: &str = "lazyfs";

/// The clock control file in the node directory.
const CLOCK_FILE: &str = "faketime.rc";

/// Where Debian (and a `make install` of libfaketime) put the multi-threaded library.
const FAKETIME_DIRS: &[&str] = &["/usr/lib", "/usr/local/lib", "/usr/lib64"];
const FAKETIME_LIB: &str = "faketime/libfaketimeMT.so.1";

/// The multi-threaded libfaketime library (`/usr/lib/<triplet>/faketime/libfaketimeMT.so.1`
/// on Debian), or an error naming the package that provides it.
pub fn faketime_lib() -> Result<PathBuf> {
    for dir in FAKETIME_DIRS.iter().map(Path::new) {
        let direct = dir.join(FAKETIME_LIB);
        if direct.is_file() {
            return Ok(direct);
        }
        // Debian's multiarch directories: /usr/lib/x86_64-linux-gnu/faketime/...
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let candidate = entry.path().join(FAKETIME_LIB);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Options(format!(
        "the clock faults need libfaketime ({FAKETIME_LIB} under {}): install Debian's \
         `faketime` package (scripts/setup does)",
        FAKETIME_DIRS.join(", ")
    )))
}

/// What an endpoint node is started with.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The node's name (`n1`, ...).
    pub name: String,
    /// `ENDPOINT_MODE`.
    pub mode: endpoint::Mode,
    /// `BACKEND_CONNECTOR` for the synced mode.
    pub connector: endpoint::BackendConnector,
    /// `ENDPOINT_FAILURE_POLICY`.
    pub failure_policy: endpoint::FailurePolicy,
    /// `ENDPOINT_SYNCHRONOUS`.
    pub synchronous: endpoint::Durability,
    /// `POWERSYNC_URL` (the stand-in), for the synced mode.
    pub powersync_url: Option<String>,
    /// `PG_DATABASE_HOST`: 127.0.0.1, or the node's PostgreSQL address in its network
    /// namespace.
    pub pg_host: std::net::Ipv4Addr,
    /// PostgreSQL port (`PG_DATABASE_PORT`), for the synced mode.
    pub pg_port: Option<u16>,
    /// `JWKS_PRIVATE_KEY`.
    pub jwks_private_key: Option<String>,
    /// `POWERSYNC_LIB`: the core library the endpoint loads.
    pub powersync_lib: Option<PathBuf>,
    /// Latest era: `--endpoint powersync|postgresql` (the `mww` model and `/db-api`), with
    /// `--keys` = the key count. `None`: the seed era.
    pub latest: Option<(endpoint::LatestEndpoint, i64)>,
    /// Extra environment variables (e.g. the test-only `ENDPOINT_TEST_BROKEN_CONNECTOR`).
    pub env: Vec<(String, String)>,
}

/// The control file of an endpoint's libfaketime clock.
#[derive(Debug, Clone)]
pub struct Clock {
    path: PathBuf,
}

impl Clock {
    /// Sets the endpoint's wall clock to real time plus `offset_ms` (negative: behind) by
    /// rewriting the control file: a new file renamed over the old one, so libfaketime never
    /// reads half a line.
    pub fn set_offset(&self, offset_ms: i64) -> Result<()> {
        let sign = if offset_ms < 0 { '-' } else { '+' };
        let abs = offset_ms.unsigned_abs();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{sign}{}.{:03}\n", abs / 1000, abs % 1000))
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// The control file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A running (or killed, restartable) endpoint.
#[derive(Debug)]
pub struct Endpoint {
    bin: PathBuf,
    dir: PathBuf,
    config: EndpointConfig,
    port: u16,
    child: Option<Child>,
    paused: bool,
    /// libfaketime, when the endpoint runs under a controlled clock.
    faketime: Option<PathBuf>,
    /// The endpoint's network namespace, when it runs in one (the process is killed in
    /// `drop` before its namespace goes).
    network: Option<NodeNetwork>,
    /// The lazy filesystem the database lives on, when it does (unmounted after the kill).
    lazyfs: Option<LazyFs>,
}

/// How an endpoint runs besides its configuration: under libfaketime, in a network namespace.
#[derive(Debug, Default)]
pub struct Isolation {
    /// libfaketime (see [`faketime_lib`]): the clock offset starts at 0 and
    /// [`Endpoint::clock`] moves it.
    pub faketime: Option<PathBuf>,
    /// The namespace to run in: [`Endpoint::partition`] cuts it off.
    pub network: Option<NodeNetwork>,
    /// Put the database on a [`LazyFs`] of its own: [`Endpoint::lose_unfsynced_writes`].
    pub lazyfs: bool,
}

impl Endpoint {
    /// Creates `dir`, writes its `.env` and starts the endpoint on a free port; waits until it
    /// listens and answers `GET /powersync`.
    pub async fn start(bin: &Path, dir: &Path, config: EndpointConfig) -> Result<Endpoint> {
        Endpoint::start_isolated(bin, dir, config, Isolation::default()).await
    }

    /// [`Endpoint::start`], under libfaketime and in a network namespace as `isolation` says.
    pub async fn start_isolated(
        bin: &Path,
        dir: &Path,
        config: EndpointConfig,
        isolation: Isolation,
    ) -> Result<Endpoint> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut endpoint = Endpoint {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            config,
            port: 0,
            child: None,
            paused: false,
            faketime: isolation.faketime,
            network: isolation.network,
            lazyfs: None,
        };
        if isolation.lazyfs {
            endpoint.lazyfs = Some(LazyFs::mount(
                &dir.join(LAZYFS_BACKING),
                &dir.join(LAZYFS_MOUNT),
            )?);
        }
        endpoint.write_env()?;
        if let Some(clock) = endpoint.clock() {
            clock.set_offset(0)?;
        }
        endpoint.restart().await?;
        Ok(endpoint)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `http://127.0.0.1:<port>`, or the namespace's address when the endpoint runs in one.
    pub fn url(&self) -> String {
        let host = self
            .network
            .as_ref()
            .map_or(std::net::Ipv4Addr::LOCALHOST, NodeNetwork::node_addr);
        format!("http://{host}:{}", self.port)
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("endpoint.log")
    }

    /// The SQLite database file (and `-wal`, `-shm` beside it), on the lazy filesystem when
    /// there is one.
    pub fn database_path(&self) -> PathBuf {
        match &self.lazyfs {
            Some(fs) => fs.mountpoint().join(DATABASE_FILE),
            None => self.dir.join(DATABASE_FILE),
        }
    }

    /// Whether the database lives on a lazy filesystem ([`Endpoint::lose_unfsynced_writes`]).
    pub fn has_lazyfs(&self) -> bool {
        self.lazyfs.is_some()
    }

    /// `kill -9`, then drops every write the database files got since their last fsync, as a
    /// power loss would (jepsen's lazyfs `lose-unfsynced-writes` after a kill); returns the
    /// bytes dropped. [`Endpoint::restart`] starts it again on what is left.
    pub fn lose_unfsynced_writes(&mut self) -> Result<u64> {
        self.kill();
        match &self.lazyfs {
            Some(fs) => Ok(fs.lose_unfsynced_writes()),
            None => Err(Error::Process {
                name: self.config.name.clone(),
                reason: "its database is on no lazy filesystem".into(),
            }),
        }
    }

    /// The process id while the process runs (until killed or stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether this is a latest-era `--endpoint postgresql` node (no database of its own).
    pub fn is_postgresql(&self) -> bool {
        self.config
            .latest
            .as_ref()
            .is_some_and(|(endpoint, _)| *endpoint == endpoint::LatestEndpoint::Postgresql)
    }

    /// The clock control file (`faketime.rc` in the node directory).
    pub fn clock_path(&self) -> PathBuf {
        self.dir.join(CLOCK_FILE)
    }

    /// The endpoint's clock control, when it runs under libfaketime.
    pub fn clock(&self) -> Option<Clock> {
        self.faketime.as_ref().map(|_| Clock {
            path: self.clock_path(),
        })
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn write_env(&self) -> Result<()> {
        let c = &self.config;
        let mut lines = vec![
            format!("ENDPOINT_MODE={}", c.mode),
            "ENDPOINT_LOG_LEVEL=INFO".to_owned(),
            format!("SQLITE3_PATH={}", self.database_path().display()),
            format!("LOCAL_ONLY={}", c.mode != endpoint::Mode::Powersync),
            format!("BACKEND_CONNECTOR={}", c.connector),
            format!("ENDPOINT_FAILURE_POLICY={}", c.failure_policy),
            format!("ENDPOINT_SYNCHRONOUS={}", c.synchronous),
            format!("USER_ID={}", c.name),
            format!("PG_DATABASE_HOST={}", c.pg_host),
            "PG_DATABASE_NAME=postgres".to_owned(),
            "PG_DATABASE_USER=postgres".to_owned(),
            "PG_DATABASE_PASSWORD=postgres".to_owned(),
        ];
        if let Some(url) = &c.powersync_url {
            lines.push(format!("POWERSYNC_URL={url}"));
        }
        if let Some(port) = c.pg_port {
            lines.push(format!("PG_DATABASE_PORT={port}"));
        }
        if let Some(key) = &c.jwks_private_key {
            lines.push(format!("JWKS_PRIVATE_KEY={key}"));
        }
        let path = self.dir.join(".env");
        std::fs::write(&path, lines.join("\n") + "\n").map_err(|source| Error::Io { path, source })
    }

    /// Starts the process (on its first start any free port, afterwards the same port) and
    /// waits until it is healthy.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(mut old) = self.child.take() {
            kill_and_reap(&mut old);
            self.release_clock(old.id());
        }
        self.paused = false;
        let log_path = self.log_path();
        let offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = append_log(&log_path)?;
        let err = log.try_clone().map_err(|source| Error::Io {
            path: log_path.clone(),
            source,
        })?;
        let mut cmd = match &self.network {
            Some(net) => net.command(&self.bin),
            None => Command::new(&self.bin),
        };
        // ENDPOINT_PORT in the environment: `.env` has no port, so this one applies.
        cmd.current_dir(&self.dir)
            .env("ENDPOINT_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        if let Some(lib) = &self.config.powersync_lib {
            cmd.env(powersync_sys::ENV_LIB, lib);
        }
        if let Some((endpoint, keys)) = &self.config.latest {
            cmd.arg("--endpoint")
                .arg(endpoint.to_string())
                .arg("--keys")
                .arg(keys.to_string());
        }
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        if let Some(lib) = &self.faketime {
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", self.clock_path())
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let child = cmd.spawn().map_err(|e| Error::Process {
            name: self.config.name.clone(),
            reason: e.to_string(),
        })?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        if self.port == 0 {
            self.port = self.wait_port(offset, deadline).await?;
        }
        self.wait_healthy(deadline).await
    }

    async fn wait_port(&mut self, offset: u64, deadline: tokio::time::Instant) -> Result<u16> {
        loop {
            let text = std::fs::read(self.log_path()).unwrap_or_default();
            let start = usize::try_from(offset).unwrap_or(0).min(text.len());
            let text = String::from_utf8_lossy(&text[start..]);
            if let Some(port) = text
                .lines()
                .filter_map(|l| l.split("listening on ").nth(1))
                .filter_map(|addr| addr.trim().rsplit(':').next())
                .find_map(|p| p.parse::<u16>().ok())
            {
                return Ok(port);
            }
            self.check_alive(deadline, "no `listening on` line")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_healthy(&mut self, deadline: tokio::time::Instant) -> Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        // The latest era has no `/powersync`; `uploadQueueCount` answers in both of its modes.
        let path = if self.config.latest.is_some() {
            "/db-api/uploadQueueCount"
        } else {
            "/powersync"
        };
        let url = format!("{}{path}", self.url());
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            self.check_alive(deadline, "the health request never answered 200")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn check_alive(&mut self, deadline: tokio::time::Instant, what: &str) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let pid = child.id();
            self.child = None;
            self.release_clock(pid);
            return Err(Error::Startup {
                name: self.config.name.clone(),
                reason: format!("exited with {status}"),
                log_tail: log_tail(&self.log_path(), 20),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Startup {
                name: self.config.name.clone(),
                reason: format!("{what} within {START_TIMEOUT:?}"),
                log_tail: log_tail(&self.log_path(), 20),
            });
        }
        Ok(())
    }

    /// `kill -9` (the nemesis's kill).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
            self.release_clock(child.id());
        }
        self.paused = false;
    }

    /// Removes what libfaketime left in `/dev/shm` for the ended process `pid`: it makes
    /// `faketime_shm_<pid>` and `sem.faketime_sem_<pid>` when it starts and removes them only
    /// on a normal exit, so every killed endpoint (and the `ip netns exec` it was started
    /// through, which execs it under the same pid) would leave them behind.
    fn release_clock(&self, pid: u32) {
        if self.faketime.is_none() {
            return;
        }
        for name in [
            format!("faketime_shm_{pid}"),
            format!("sem.faketime_sem_{pid}"),
        ] {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
    }

    /// Stops the process with its database closed cleanly, as jepsen-powersync's `stop-nodes`:
    /// a latest-era endpoint gets `GET /db-api/close` and then `kill -9`; a seed-era endpoint
    /// (no `/db-api`) SIGTERM, on which it closes its store and exits (SIGKILL after 10 s).
    /// [`Endpoint::restart`] starts it again on the same database.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::Process {
                name: self.config.name.clone(),
                reason: "not running".into(),
            });
        };
        if std::mem::take(&mut self.paused) {
            signal(&child, Signal::SIGCONT)?;
        }
        let stopped = if self.config.latest.is_some() {
            let closed = crate::client::db_api(&self.url(), "close", CLOSE_TIMEOUT).await;
            kill_and_reap(&mut child);
            closed.map(drop).map_err(|reason| Error::Process {
                name: self.config.name.clone(),
                reason: format!("GET /db-api/close: {reason}"),
            })
        } else {
            terminate(&mut child, STOP_GRACE).await;
            Ok(())
        };
        self.release_clock(child.id());
        stopped
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> Result<()> {
        match self.child.as_ref() {
            Some(child) => {
                signal(child, Signal::SIGSTOP)?;
                self.paused = true;
                Ok(())
            }
            None => Err(Error::Process {
                name: self.config.name.clone(),
                reason: "not running".into(),
            }),
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_ref() {
            signal(child, Signal::SIGCONT)?;
        }
        self.paused = false;
        Ok(())
    }

    /// Cuts the endpoint off from what `cut` names (on top of any cut in force); an error when
    /// it runs in no network namespace of its own.
    pub fn partition(&mut self, cut: Cut) -> Result<()> {
        self.network_mut()?.partition(cut)
    }

    /// Removes every partition.
    pub fn heal_partition(&mut self) -> Result<()> {
        self.network_mut()?.heal()
    }

    /// Whether the endpoint runs in a network namespace of its own (it can be partitioned).
    pub fn has_network(&self) -> bool {
        self.network.is_some()
    }

    fn network_mut(&mut self) -> Result<&mut NodeNetwork> {
        let name = self.config.name.clone();
        self.network.as_mut().ok_or_else(|| Error::Process {
            name,
            reason: "runs in no network namespace of its own".into(),
        })
    }

    /// Whether the process is stopped by [`Endpoint::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Stops the process with SIGTERM (SIGKILL after 5 s) and deletes the database files, as
    /// Jepsen's teardown does; the log and `.env` stay.
    pub async fn teardown(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5)).await;
        }
        let db = self.database_path();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.kill();
    }
}
