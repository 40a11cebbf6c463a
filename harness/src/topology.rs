//! The processes a run drives: a throwaway PostgreSQL, the stand-in sync service and the
//! endpoints. Everything is started, health-checked and torn down here; every child process is
//! killed when its handle drops, so an error or a panic leaks nothing.
//!
//! - [`Binaries`]: where `powersync_endpoint` and `standin` are (next to the harness binary, or
//!   given by flags);
//! - [`Database`]: the PostgreSQL cluster with the seed's `lww` table and `powersync`
//!   publication (as the seed's PostgreSQL setup);
//! - [`Standin`]: the `standin` binary on a fixed port, so restarts keep its URL;
//! - [`Endpoint`]: one `powersync_endpoint` node with its own directory, `.env`, port and log;
//! - [`NodeNetwork`]: an endpoint's own network namespace, for the partition faults.

mod database;
mod endpoint;
mod network;
mod standin;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use database::{Database, Schema};
pub use endpoint::{Clock, Endpoint, EndpointConfig, Isolation, faketime_lib};
pub use network::{Cut, NodeNetwork};
pub use standin::Standin;

use crate::error::{Error, Result};

/// The endpoint binary's file name.
pub const ENDPOINT_BIN: &str = "powersync_endpoint";
/// The stand-in binary's file name.
pub const STANDIN_BIN: &str = "standin";

/// The two binaries a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `powersync_endpoint`.
    pub endpoint: PathBuf,
    /// `standin`.
    pub standin: PathBuf,
}

impl Binaries {
    /// Uses the given paths, or else looks next to the running executable (and its parent, for
    /// test executables in `target/<profile>/deps/`). A missing binary is an error naming the
    /// cargo command that builds it.
    pub fn locate(endpoint: Option<PathBuf>, standin: Option<PathBuf>) -> Result<Binaries> {
        let dirs = exe_dirs();
        Ok(Binaries {
            endpoint: find(endpoint, ENDPOINT_BIN, "endpoint", &dirs)?,
            standin: find(standin, STANDIN_BIN, "standin", &dirs)?,
        })
    }
}

fn exe_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_path_buf());
        if dir.ends_with("deps")
            && let Some(up) = dir.parent()
        {
            dirs.push(up.to_path_buf());
        }
    }
    dirs
}

fn find(given: Option<PathBuf>, name: &str, package: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let missing = |looked: String| Error::BinaryMissing {
        name: name.to_owned(),
        looked,
        build: format!("cargo build -p {package} --bin {name} (with the same CARGO_TARGET_DIR)"),
    };
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(path.display().to_string()))
        };
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            missing(
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

/// Sends `signal` to a child process.
pub(crate) fn signal(child: &Child, signal: Signal) -> Result<()> {
    let pid = i32::try_from(child.id()).map_err(|_| Error::Process {
        name: format!("pid {}", child.id()),
        reason: "pid out of range".into(),
    })?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|e| Error::Process {
        name: format!("pid {pid}"),
        reason: format!("{signal}: {e}"),
    })
}

/// Kills (SIGCONT first, in case it is stopped, then SIGKILL) and reaps a child.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = signal(child, Signal::SIGCONT);
    let _ = child.kill();
    let _ = child.wait();
}

/// Asks a child to stop with SIGTERM, waits up to `grace`, then kills it.
pub(crate) async fn terminate(child: &mut Child, grace: Duration) {
    let _ = signal(child, Signal::SIGCONT);
    if signal(child, Signal::SIGTERM).is_ok() {
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    kill_and_reap(child);
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (probed by binding; the caller binds it soon after).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| Error::Io {
        path: "127.0.0.1:0".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

/// Opens `path` for appending (creating it), for a child's stdout/stderr.
pub(crate) fn append_log(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}
