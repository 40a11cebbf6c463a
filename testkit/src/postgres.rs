//! A throwaway PostgreSQL cluster for tests.
//!
//! [`TestPostgres::start`] runs `initdb` in a fresh temporary directory, picks a free TCP port
//! on 127.0.0.1 and starts the server with `pg_ctl`. Settings: `wal_level=logical` (logical
//! decoding for the stand-in), `max_replication_slots=20`, `max_wal_senders=20`,
//! trust authentication for the local user `postgres`, the unix socket inside the temporary
//! directory, and **`fsync=off` and `full_page_writes=off` for speed**:
//! a crash of the *machine* may corrupt the cluster, which does not matter for a throwaway test
//! database (a killed server process is still safe). [`TestPostgres::start_durable`] keeps
//! PostgreSQL's own defaults instead (`fsync=on`, `full_page_writes=on`, every commit flushed
//! to the WAL before it is acknowledged), as a production server or the `postgres` container
//! image runs: for runs whose timings should be those of such a server.
//!
//! When the test runs as root (initdb refuses root), the server binaries run as the `postgres`
//! system user and the temporary directory is owned by it. Dropping the value stops the server
//! (`pg_ctl stop -m immediate`) and deletes the directory, also when a test panics.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use crate::Error;

/// The database user the cluster is initialised with (superuser, trust authentication).
pub const SUPERUSER: &str = "postgres";

/// Whether commits are flushed to disk (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Fast,
    Durable,
}

/// A running throwaway PostgreSQL cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TestPostgres {
    bindir: PathBuf,
    dir: TempDir,
    port: u16,
    run_as: Option<(u32, u32)>,
    running: bool,
}

impl TestPostgres {
    /// Creates and starts a new cluster. Fails with [`Error::PostgresNotFound`] (naming
    /// `apt-get install -y postgresql`) when the server binaries are missing.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(Durability::Fast)
    }

    /// Creates and starts a new cluster that flushes every commit (PostgreSQL's defaults for
    /// `fsync` and `full_page_writes`); otherwise as [`TestPostgres::start`].
    pub fn start_durable() -> Result<Self, Error> {
        Self::start_with(Durability::Durable)
    }

    fn start_with(durability: Durability) -> Result<Self, Error> {
        let bindir = find_bindir()?;
        let run_as = if running_as_root() {
            Some(lookup_user("postgres")?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("testkit-pg-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| Error::io(dir.path(), e))?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir.path(), e))?;
        }
        let mut pg = TestPostgres {
            bindir,
            dir,
            port: 0,
            run_as,
            running: false,
        };
        pg.initdb(durability)?;
        pg.start_server()?;
        Ok(pg)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The connection URI of the `postgres` database.
    pub fn uri(&self) -> String {
        self.uri_for("postgres")
    }

    /// The connection URI of database `dbname` (TCP on 127.0.0.1, user `postgres`, no password).
    pub fn uri_for(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }

    /// Connects to the `postgres` database; the connection task runs on the current tokio
    /// runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client, Error> {
        self.client_for("postgres").await
    }

    /// Connects to database `dbname`; the connection task runs on the current tokio runtime.
    pub async fn client_for(&self, dbname: &str) -> Result<tokio_postgres::Client, Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.uri_for(dbname), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the server goes away.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Creates database `name` (the name is quoted as an identifier) and returns its URI.
    pub async fn create_database(&self, name: &str) -> Result<String, Error> {
        let client = self.client().await?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await?;
        Ok(self.uri_for(name))
    }

    /// Stops the server the hard way (`-m immediate`, like a crash) and starts it again on the
    /// same port. Existing connections break.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        self.start_server()
    }

    /// Stops the server (`pg_ctl stop -m immediate`). [`TestPostgres::restart`] or drop
    /// afterwards are fine.
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.running {
            self.running = false;
            self.run_checked(
                self.pg_ctl()
                    .args(["stop", "-m", "immediate", "-w", "-D"])
                    .arg(self.data_dir()),
                "pg_ctl stop",
            )?;
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self) -> Command {
        self.command("pg_ctl")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.env("LC_ALL", "C").current_dir(self.dir.path());
        cmd
    }

    fn run_checked(&self, cmd: &mut Command, what: &str) -> Result<Output, Error> {
        let output = cmd.output().map_err(|e| Error::Command {
            command: what.to_owned(),
            detail: e.to_string(),
        })?;
        if !output.status.success() {
            return Err(Error::Command {
                command: what.to_owned(),
                detail: format!(
                    "{}; stdout: {}; stderr: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        Ok(output)
    }

    fn initdb(&self, durability: Durability) -> Result<(), Error> {
        let sock = self.socket_dir();
        std::fs::create_dir(&sock).map_err(|e| Error::io(&sock, e))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&sock, Some(uid), Some(gid))
                .map_err(|e| Error::io(&sock, e))?;
        }
        self.run_checked(
            self.command("initdb").arg("-D").arg(self.data_dir()).args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
            "initdb",
        )?;
        let settings = format!(
            "\n# testkit settings (throwaway test cluster)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = logical\n\
             max_replication_slots = 20\n\
             max_wal_senders = 20\n\
             {}\
             shared_buffers = 64MB\n\
             max_connections = 100\n",
            sock.display(),
            match durability {
                Durability::Fast => "fsync = off\nfull_page_writes = off\n",
                Durability::Durable => "",
            }
        );
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| Error::io(&conf, e))?;
        text.push_str(&settings);
        std::fs::write(&conf, text).map_err(|e| Error::io(&conf, e))?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), Error> {
        let mut last_error = None;
        // A free port can be taken by someone else between probing and binding: retry.
        for _ in 0..5 {
            let port = if self.port != 0 && last_error.is_none() {
                self.port
            } else {
                free_port()?
            };
            let log = self.dir.path().join("server.log");
            let result = self.run_checked(
                self.pg_ctl()
                    .args(["start", "-w", "-t", "60", "-D"])
                    .arg(self.data_dir())
                    .arg("-l")
                    .arg(&log)
                    .arg("-o")
                    .arg(format!("-p {port}")),
                "pg_ctl start",
            );
            match result {
                Ok(_) => {
                    self.port = port;
                    self.running = true;
                    return self.wait_accepting();
                }
                Err(e) => {
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = Some(Error::Command {
                        command: "pg_ctl start".to_owned(),
                        detail: format!("{e}; server log: {log_text}"),
                    });
                }
            }
        }
        Err(last_error.unwrap_or(Error::Timeout("pg_ctl start".to_owned())))
    }

    fn wait_accepting(&self) -> Result<(), Error> {
        crate::eventually(
            format_args!("PostgreSQL to accept connections on port {}", self.port),
            Duration::from_secs(30),
            || std::net::TcpStream::connect(("127.0.0.1", self.port)),
        )
        .map(drop)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.running && self.stop().is_err() {
            // Last resort: kill the postmaster by the pid in postmaster.pid.
            if let Ok(pidfile) = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
                && let Some(pid) = pidfile.lines().next()
            {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        // TempDir deletes the directory when the field drops.
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::io("127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("127.0.0.1:0", e))?
        .port();
    Ok(port)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the effective uid of this process.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn lookup_user(name: &str) -> Result<(u32, u32), Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("/etc/passwd", e))?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4
            && fields[0] == name
            && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
        {
            return Ok((uid, gid));
        }
    }
    Err(Error::MissingUser(name.to_owned()))
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() && dir.join("postgres").is_file()
}

/// Finds the directory of `initdb`/`pg_ctl`/`postgres`: `pg_config --bindir`, the newest
/// `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_bindir() -> Result<PathBuf, Error> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, dir)| has_server_binaries(dir))
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server_binaries(&dir) {
                return Ok(dir);
            }
        }
    }
    Err(Error::PostgresNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_server_binaries() {
        let dir =
            find_bindir().expect("PostgreSQL must be installed: apt-get install -y postgresql");
        assert!(dir.join("initdb").is_file());
    }
}
