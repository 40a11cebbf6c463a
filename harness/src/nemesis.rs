//! Faults, injected during the main phase and healed before the final reads. Each fault and
//! each recovery is recorded as a `nemesis` operation (type `info`), as Jepsen does:
//!
//! | fault | start (`f`) | recovery (`f`) |
//! |---|---|---|
//! | `kill` | `kill`: `kill -9` of a random endpoint | `start`: the endpoint again, same port and database |
//! | `pause` | `pause`: SIGSTOP of a random endpoint | `resume`: SIGCONT |
//! | `standin-restart` | `kill-standin`: `kill -9` of the stand-in | `start-standin` |
//! | `postgres-restart` | `stop-postgres`: `pg_ctl stop -m immediate` | `start-postgres` |
//! | `disconnect-orderly` | `disconnect`: `GET /db-api/disconnect` on a random non-empty subset of the PowerSync nodes | `connect`: `GET /db-api/connect` on exactly those |
//! | `disconnect-random` | `disconnect`: as above | `connect` on a new random subset (possibly empty) |
//!
//! The disconnect faults act on the latest era's PowerSync endpoints only (never on the
//! `--endpoint postgresql` nodes), one nemesis operation per node. `disconnect` on the command
//! line means both. After the main phase [`connect_all`] connects every PowerSync node (the
//! reference's final `connect`), so a random connect that left a node out is healed.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::error::{Error, Result};
use crate::recorder::Recorder;
use crate::topology::{Database, Endpoint, Standin};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` an endpoint, then start it again.
    Kill,
    /// SIGSTOP an endpoint, then SIGCONT.
    Pause,
    /// `kill -9` the stand-in, then start it again.
    StandinRestart,
    /// Stop PostgreSQL the hard way, then start it again.
    PostgresRestart,
    /// Disconnect PowerSync nodes from sync, then connect the same ones.
    DisconnectOrderly,
    /// Disconnect PowerSync nodes from sync, then connect a random subset.
    DisconnectRandom,
}

impl Fault {
    /// Whether this fault needs the latest era's `/db-api`.
    pub fn is_disconnect(self) -> bool {
        matches!(self, Fault::DisconnectOrderly | Fault::DisconnectRandom)
    }
}

impl FromStr for Fault {
    type Err = Error;
    fn from_str(s: &str) -> Result<Fault> {
        match s {
            "kill" => Ok(Fault::Kill),
            "pause" => Ok(Fault::Pause),
            "standin-restart" => Ok(Fault::StandinRestart),
            "postgres-restart" => Ok(Fault::PostgresRestart),
            "disconnect-orderly" => Ok(Fault::DisconnectOrderly),
            "disconnect-random" => Ok(Fault::DisconnectRandom),
            other => Err(Error::Options(format!(
                "unknown nemesis {other:?} (kill, pause, standin-restart, postgres-restart, \
                 disconnect, disconnect-orderly, disconnect-random, none)"
            ))),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::StandinRestart => "standin-restart",
            Fault::PostgresRestart => "postgres-restart",
            Fault::DisconnectOrderly => "disconnect-orderly",
            Fault::DisconnectRandom => "disconnect-random",
        })
    }
}

/// Parses `--nemesis kill,pause` (`none` or empty: no faults; `disconnect`: both disconnect
/// faults).
pub fn parse_faults(list: &[String]) -> Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for s in list.iter().map(|s| s.trim()) {
        match s {
            "" | "none" => {}
            "disconnect" => faults.extend([Fault::DisconnectOrderly, Fault::DisconnectRandom]),
            other => faults.push(Fault::from_str(other)?),
        }
    }
    faults.dedup();
    Ok(faults)
}

/// How long a `connect`/`disconnect` request may take.
const DB_API_TIMEOUT: Duration = Duration::from_secs(10);

/// What the nemesis can act on.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The endpoints (kill, pause).
    pub endpoints: Vec<Arc<Mutex<Endpoint>>>,
    /// The stand-in, in synced workloads.
    pub standin: Option<Arc<Mutex<Standin>>>,
    /// PostgreSQL, in synced workloads.
    pub database: Option<Database>,
    /// The latest era's PowerSync endpoints, `(node, base URL)`: the disconnect targets.
    pub syncing: Vec<(String, String)>,
}

/// A fault in progress, to be healed.
enum Active {
    Killed(Arc<Mutex<Endpoint>>),
    Paused(Arc<Mutex<Endpoint>>),
    StandinKilled(Arc<Mutex<Standin>>),
    PostgresStopped(Database),
    Disconnected { nodes: Vec<usize>, orderly: bool },
}

impl Targets {
    /// Checks that every fault has something to act on.
    pub fn check(&self, faults: &[Fault]) -> Result<()> {
        for f in faults {
            let ok = match f {
                Fault::Kill | Fault::Pause => !self.endpoints.is_empty(),
                Fault::StandinRestart => self.standin.is_some(),
                Fault::PostgresRestart => self.database.is_some(),
                Fault::DisconnectOrderly | Fault::DisconnectRandom => !self.syncing.is_empty(),
            };
            if !ok {
                return Err(Error::Options(format!(
                    "nemesis {f} has nothing to act on in this workload"
                )));
            }
        }
        Ok(())
    }

    async fn start(&self, fault: Fault, rng: &mut fastrand::Rng, rec: &Recorder) -> Option<Active> {
        match fault {
            Fault::Kill | Fault::Pause => {
                let target = Arc::clone(&self.endpoints[rng.usize(..self.endpoints.len())]);
                let mut e = target.lock().await;
                let name = e.name().to_owned();
                if fault == Fault::Kill {
                    e.kill();
                    rec.nemesis("kill", Some(&name), None);
                    drop(e);
                    Some(Active::Killed(target))
                } else {
                    let r = e.pause();
                    let failed = r.is_err();
                    rec.nemesis("pause", Some(&name), r.err().map(|x| x.to_string()));
                    drop(e);
                    (!failed).then_some(Active::Paused(target))
                }
            }
            Fault::StandinRestart => {
                let s = self.standin.as_ref()?;
                s.lock().await.kill();
                rec.nemesis("kill-standin", Some("standin"), None);
                Some(Active::StandinKilled(Arc::clone(s)))
            }
            Fault::PostgresRestart => {
                let db = self.database.as_ref()?;
                let r = db.stop().await;
                let failed = r.is_err();
                rec.nemesis(
                    "stop-postgres",
                    Some("postgres"),
                    r.err().map(|x| x.to_string()),
                );
                (!failed).then(|| Active::PostgresStopped(db.clone()))
            }
            Fault::DisconnectOrderly | Fault::DisconnectRandom => {
                let mut nodes = random_subset(rng, self.syncing.len());
                if nodes.is_empty() {
                    nodes.push(rng.usize(..self.syncing.len()));
                }
                for &i in &nodes {
                    self.db_api(i, "disconnect", rec).await;
                }
                Some(Active::Disconnected {
                    nodes,
                    orderly: fault == Fault::DisconnectOrderly,
                })
            }
        }
    }

    /// `GET /db-api/<action>` on PowerSync node `i`, recorded as a nemesis operation.
    async fn db_api(&self, i: usize, action: &str, rec: &Recorder) {
        let Some((name, url)) = self.syncing.get(i) else {
            return;
        };
        let r = crate::client::db_api(url, action, DB_API_TIMEOUT).await;
        rec.nemesis(action, Some(name), r.err());
    }
}

/// A random subset of `0..n` (each member with probability 1/2), in order.
fn random_subset(rng: &mut fastrand::Rng, n: usize) -> Vec<usize> {
    (0..n).filter(|_| rng.bool()).collect()
}

/// Connects every PowerSync node (`GET /db-api/connect`), recorded as nemesis operations: the
/// final heal of the disconnect faults.
pub async fn connect_all(targets: &Targets, rec: &Recorder) {
    for i in 0..targets.syncing.len() {
        targets.db_api(i, "connect", rec).await;
    }
}

async fn heal(active: Active, targets: &Targets, rng: &mut fastrand::Rng, rec: &Recorder) {
    match active {
        Active::Disconnected { nodes, orderly } => {
            let nodes = if orderly {
                nodes
            } else {
                random_subset(rng, targets.syncing.len())
            };
            for i in nodes {
                targets.db_api(i, "connect", rec).await;
            }
        }
        Active::Killed(e) => {
            let mut e = e.lock().await;
            let r = e.restart().await;
            rec.nemesis("start", Some(e.name()), r.err().map(|x| x.to_string()));
        }
        Active::Paused(e) => {
            let mut e = e.lock().await;
            let r = e.resume();
            rec.nemesis("resume", Some(e.name()), r.err().map(|x| x.to_string()));
        }
        Active::StandinKilled(s) => {
            let r = s.lock().await.restart().await;
            rec.nemesis(
                "start-standin",
                Some("standin"),
                r.err().map(|x| x.to_string()),
            );
        }
        Active::PostgresStopped(db) => {
            let r = db.restart().await;
            rec.nemesis(
                "start-postgres",
                Some("postgres"),
                r.err().map(|x| x.to_string()),
            );
        }
    }
}

/// Runs faults until `stop` turns true: wait `interval`, start a random fault, wait
/// `interval`, heal it. Whatever is active when `stop` arrives is healed before returning.
pub async fn run(
    targets: Targets,
    faults: Vec<Fault>,
    interval: Duration,
    seed: u64,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    if faults.is_empty() {
        return;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        if wait_or_stop(&mut stop, interval).await {
            return;
        }
        let fault = faults[rng.usize(..faults.len())];
        let active = targets.start(fault, &mut rng, &rec).await;
        let stopped = wait_or_stop(&mut stop, interval).await;
        if let Some(a) = active {
            heal(a, &targets, &mut rng, &rec).await;
        }
        if stopped {
            return;
        }
    }
}

/// Sleeps `d`; true if `stop` became true meanwhile (or its sender is gone).
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fault_list() {
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse_faults(&list("kill,pause")).unwrap(),
            vec![Fault::Kill, Fault::Pause]
        );
        assert!(parse_faults(&list("none")).unwrap().is_empty());
        assert_eq!(
            parse_faults(&list("standin-restart,postgres-restart")).unwrap(),
            vec![Fault::StandinRestart, Fault::PostgresRestart]
        );
        assert!(parse_faults(&list("partition")).is_err());
        assert_eq!(
            parse_faults(&list("disconnect")).unwrap(),
            vec![Fault::DisconnectOrderly, Fault::DisconnectRandom]
        );
        assert_eq!(
            parse_faults(&list("disconnect-random")).unwrap(),
            vec![Fault::DisconnectRandom]
        );
    }
}
