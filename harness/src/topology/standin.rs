//! The stand-in sync service as a child process, configured by a YAML file in the run
//! directory, on a fixed port so that a restart keeps the URL the endpoints use.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::{append_log, free_port, kill_and_reap, log_tail, terminate};
use crate::error::{Error, Result};

/// How long the stand-in may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or restartable) `standin` process.
#[derive(Debug)]
pub struct Standin {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Standin {
    /// Writes `standin.yaml` (sync rules `SELECT * FROM <table>`, the JWKS `jwks`, audiences
    /// `powersync-dev`/`powersync`) into `dir` and starts the stand-in on a free port.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        postgres_uri: &str,
        jwks: serde_json::Value,
        table: &str,
    ) -> Result<Standin> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let port = free_port()?;
        // YAML is a superset of JSON: the configuration is written as JSON.
        let config = json!({
            "port": port,
            "host": "127.0.0.1",
            "postgres_uri": postgres_uri,
            "sync_rules": {"content": format!("bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM {table}\n")},
            "client_auth": {"jwks": jwks, "audience": ["powersync-dev", "powersync"]},
            "poll_interval_ms": 10,
        });
        let path = dir.join("standin.yaml");
        std::fs::write(&path, format!("{config:#}\n")).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mut standin = Standin {
            bin: bin.to_path_buf(),
            config: path,
            log: dir.join("standin.log"),
            port,
            child: None,
        };
        standin.restart().await?;
        Ok(standin)
    }

    /// The URL endpoints use as `POWERSYNC_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the process (after a kill) and waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(mut old) = self.child.take() {
            kill_and_reap(&mut old);
        }
        let log = append_log(&self.log)?;
        let err = log.try_clone().map_err(|source| Error::Io {
            path: self.log.clone(),
            source,
        })?;
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Process {
                name: "standin".into(),
                reason: e.to_string(),
            })?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Startup {
                    name: "standin".into(),
                    reason: format!("exited with {status}"),
                    log_tail: log_tail(&self.log, 20),
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Startup {
                    name: "standin".into(),
                    reason: format!(
                        "not listening on port {} after {START_TIMEOUT:?}",
                        self.port
                    ),
                    log_tail: log_tail(&self.log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (the nemesis's fault).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Stops the process with SIGTERM (SIGKILL after 5 s).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5)).await;
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.kill();
    }
}
