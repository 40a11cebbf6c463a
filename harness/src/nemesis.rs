//! Faults, injected during the main phase and healed before the final reads. Each fault and
//! each recovery is recorded as a `nemesis` operation (type `info`), as Jepsen does:
//!
//! | fault | start (`f`) | recovery (`f`) |
//! |---|---|---|
//! | `kill` | `kill`: `kill -9` of the target endpoints | `start`: those endpoints again, same port and database |
//! | `pause` | `pause`: SIGSTOP of the target endpoints | `resume`: SIGCONT of those |
//! | `stop-start` | `stop-nodes`: the target endpoints close their database and stop (latest era: `GET /db-api/close`, then `kill -9`, as jepsen-powersync; seed era, which has no `/db-api`: SIGTERM, on which the endpoint closes its store and exits) | `start-nodes`: those endpoints again on the same database |
//! | `clock-bump` | `bump-clock`: the target endpoints' wall clock jumps by `--clock-bump-ms` (libfaketime) | `reset-clock`: offset 0 on those |
//! | `clock-strobe` | `strobe-clock`: the target endpoints' wall clock flips between `--clock-strobe-ms` ahead and true time every `--clock-strobe-period-ms` until the recovery | `reset-clock` |
//! | `standin-restart` | `kill-standin`: `kill -9` of the stand-in | `start-standin` |
//! | `postgres-restart` | `stop-postgres`: `pg_ctl stop -m immediate` | `start-postgres` |
//! | `disconnect-orderly` | `disconnect`: `GET /db-api/disconnect` on a random non-empty subset of the PowerSync nodes | `connect`: `GET /db-api/connect` on exactly those |
//! | `disconnect-random` | `disconnect`: as above | `connect` on a new random subset (possibly empty) |
//! | `partition-sync` | `partition-sync`: the target PowerSync endpoints drop every packet from the sync service (see [`crate::topology::NodeNetwork`]) | `heal-partition`: every PowerSync endpoint's partition rules removed |
//! | `partition-postgres` | `partition-postgres`: as above, from PostgreSQL | `heal-partition` |
//! | `partition-both` | `partition-both`: from both | `heal-partition` |
//! | `lose-unfsynced-writes` | `lose-unfsynced-writes`: `kill -9` of the target endpoints, then every write their database files got since their last fsync is dropped ([`crate::lazyfs`]), as after a power loss; the value maps each node to the bytes dropped | `start`: those endpoints again on what is left |
//! | `upload-queue` | `upload-queue-count`: `GET /db-api/uploadQueueCount` on every PowerSync node at once, every interval beside the other faults (jepsen-powersync's upload-queue package); the value maps each node to its count or to the Jepsen client's keyword when it does not answer | none |
//!
//! `clock` on the command line means both clock faults, `disconnect` both disconnect faults,
//! `partition` the three partition faults.
//!
//! **Targets.** The endpoint faults (kill, pause, stop-start, clock) act on a set of endpoints
//! picked by a node specification of Jepsen's combined nemesis (`jepsen.nemesis.combined/
//! db-nodes`), one chosen at random from `--nemesis-targets` for each fault: `nil` (a random
//! non-empty subset, its size uniform in `1..=n`), `one` (a random endpoint), `minority-third`
//! (`⌊(n - 1)/3⌋` random ones, strictly fewer than a third), `minority` (`majority - 1` random
//! ones), `majority` (`⌊n/2⌋ + 1` random ones), `all`. A spec that names none of the endpoints
//! (`minority` of one, `minority-third` of fewer than four) is refused before the run starts. The recovery acts on exactly the endpoints the
//! fault hit. Each fault and each recovery is one operation whose value maps every target node
//! to what happened there, as Jepsen's completed nemesis operations: `{"n1" :killed, "n2" :killed}`, a bump's
//! `{"n1" 60000}` (the offset in ms), a partition's `{"n2" :partitioned-sync}` and its heal's
//! `{"n2" :partition-healed, "n3" :partition-healed}` (every PowerSync node, as Jepsen heals); `:node` names the node when there is one. A node where
//! the action failed gets `:error` and the operation an `:error` text naming it. Kill, pause
//! and the clock faults pick from every endpoint (Jepsen's db nemesis acts on every node);
//! stop-start and the partitions leave the latest era's `--endpoint postgresql` nodes out, as
//! jepsen-powersync's `stop-nodes` and partition nemesis do.
//!
//! The partition faults need every PowerSync endpoint in a network namespace of its own: the
//! run puts them there when a partition fault is asked for (which needs root and iproute2).
//! `lose-unfsynced-writes` needs every endpoint's database on a lazy filesystem of its own
//! (FUSE, root): the run mounts them when the fault is asked for. Whether it loses
//! acknowledged transactions depends on the endpoints' `--synchronous`: with `full` (the
//! default) every commit is fsynced and nothing acknowledged goes; with `normal` (the
//! Dart SDK's default, through sqlite_async) the transactions since the last checkpoint do.
//!
//! The clock faults need the endpoints under libfaketime (see [`crate::topology::Endpoint`]):
//! the run starts them so when a clock fault is asked for. A clock fault moves the wall clock
//! only (the monotonic clock, timers and timeouts, runs on), as Jepsen's clock nemesis steps
//! the system clock. In the latest era the reset bites hard: the next checkpoint's
//! `lastSyncedAt` is older than one stamped during the bump, and the endpoint's status monitor
//! (the Dart endpoint's) logs an error and exits 10.
//!
//! The disconnect faults act on the latest era's PowerSync endpoints only (never on the
//! `--endpoint postgresql` nodes), one nemesis operation per node. After the main phase
//! [`connect_all`] connects every PowerSync node (the reference's final `connect`), so a
//! random connect that left a node out is healed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::error::{Error, Result};
use crate::history::NodeResult;
use crate::recorder::Recorder;
use crate::topology::{Clock, Cut, Database, Endpoint, Standin};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` an endpoint, then start it again.
    Kill,
    /// SIGSTOP an endpoint, then SIGCONT.
    Pause,
    /// Close an endpoint's database and stop it, then start it again on the same database.
    StopStart,
    /// Move an endpoint's wall clock by a fixed offset, then back.
    ClockBump,
    /// Flip an endpoint's wall clock between an offset and true time, then reset it.
    ClockStrobe,
    /// `kill -9` the stand-in, then start it again.
    StandinRestart,
    /// Stop PostgreSQL the hard way, then start it again.
    PostgresRestart,
    /// `kill -9` endpoints and drop their database files' un-fsynced writes, then start them.
    LoseUnfsyncedWrites,
    /// Cut PowerSync endpoints off from the sync service, then heal.
    PartitionSync,
    /// Cut PowerSync endpoints off from PostgreSQL, then heal.
    PartitionPostgres,
    /// Cut PowerSync endpoints off from both, then heal.
    PartitionBoth,
    /// Disconnect PowerSync nodes from sync, then connect the same ones.
    DisconnectOrderly,
    /// Disconnect PowerSync nodes from sync, then connect a random subset.
    DisconnectRandom,
    /// Read every PowerSync node's upload queue count (`/db-api/uploadQueueCount`) on its own
    /// schedule, as jepsen-powersync's upload-queue package; nothing to heal.
    UploadQueue,
}

impl Fault {
    /// Whether this fault needs the latest era's `/db-api`.
    pub fn is_disconnect(self) -> bool {
        matches!(self, Fault::DisconnectOrderly | Fault::DisconnectRandom)
    }

    /// What a partition fault cuts the endpoints off from; `None` for the other faults.
    pub fn cut(self) -> Option<Cut> {
        match self {
            Fault::PartitionSync => Some(Cut::Sync),
            Fault::PartitionPostgres => Some(Cut::Postgres),
            Fault::PartitionBoth => Some(Cut::Both),
            _ => None,
        }
    }

    /// Why the fault needs root, when it does (what it sets up for the endpoints).
    pub fn needs_root(self) -> Option<&'static str> {
        if self.is_partition() {
            Some("it puts each endpoint in a network namespace of its own")
        } else if self == Fault::LoseUnfsyncedWrites {
            Some("it mounts a FUSE filesystem for each endpoint's database")
        } else {
            None
        }
    }

    /// Whether this is a partition fault (the endpoints must run in network namespaces).
    pub fn is_partition(self) -> bool {
        self.cut().is_some()
    }

    /// Whether this fault talks to the latest era's `/db-api` (a disconnect or upload-queue).
    pub fn needs_db_api(self) -> bool {
        self.is_disconnect() || self == Fault::UploadQueue
    }
}

impl FromStr for Fault {
    type Err = Error;
    fn from_str(s: &str) -> Result<Fault> {
        match s {
            "kill" => Ok(Fault::Kill),
            "pause" => Ok(Fault::Pause),
            "stop-start" => Ok(Fault::StopStart),
            "clock-bump" => Ok(Fault::ClockBump),
            "clock-strobe" => Ok(Fault::ClockStrobe),
            "standin-restart" => Ok(Fault::StandinRestart),
            "postgres-restart" => Ok(Fault::PostgresRestart),
            "lose-unfsynced-writes" | "lazyfs" => Ok(Fault::LoseUnfsyncedWrites),
            "partition-sync" => Ok(Fault::PartitionSync),
            "partition-postgres" => Ok(Fault::PartitionPostgres),
            "partition-both" => Ok(Fault::PartitionBoth),
            "disconnect-orderly" => Ok(Fault::DisconnectOrderly),
            "disconnect-random" => Ok(Fault::DisconnectRandom),
            "upload-queue" => Ok(Fault::UploadQueue),
            other => Err(Error::Options(format!(
                "unknown nemesis {other:?} (kill, pause, stop-start, clock, clock-bump, \
                 clock-strobe, lose-unfsynced-writes (lazyfs), standin-restart, \
                 postgres-restart, partition, partition-sync, \
                 partition-postgres, partition-both, disconnect, disconnect-orderly, \
                 disconnect-random, upload-queue, none)"
            ))),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::StopStart => "stop-start",
            Fault::ClockBump => "clock-bump",
            Fault::ClockStrobe => "clock-strobe",
            Fault::StandinRestart => "standin-restart",
            Fault::PostgresRestart => "postgres-restart",
            Fault::LoseUnfsyncedWrites => "lose-unfsynced-writes",
            Fault::PartitionSync => "partition-sync",
            Fault::PartitionPostgres => "partition-postgres",
            Fault::PartitionBoth => "partition-both",
            Fault::DisconnectOrderly => "disconnect-orderly",
            Fault::DisconnectRandom => "disconnect-random",
            Fault::UploadQueue => "upload-queue",
        })
    }
}

/// Parses `--nemesis kill,pause` (`none` or empty: no faults; `disconnect`: both disconnect
/// faults; `clock`: both clock faults; `partition`: the three partition faults).
pub fn parse_faults(list: &[String]) -> Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for s in list.iter().map(|s| s.trim()) {
        match s {
            "" | "none" => {}
            "disconnect" => faults.extend([Fault::DisconnectOrderly, Fault::DisconnectRandom]),
            "clock" => faults.extend([Fault::ClockBump, Fault::ClockStrobe]),
            "partition" => faults.extend([
                Fault::PartitionSync,
                Fault::PartitionPostgres,
                Fault::PartitionBoth,
            ]),
            other => faults.push(Fault::from_str(other)?),
        }
    }
    let mut seen = Vec::new();
    faults.retain(|f| {
        let new = !seen.contains(f);
        seen.push(*f);
        new
    });
    Ok(faults)
}

/// Jepsen's node specifications (`jepsen.nemesis.combined/db-nodes`): how many of the
/// candidate endpoints one fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSpec {
    /// Jepsen's `nil`: a random non-empty subset, of a size drawn uniformly from `1..=n`.
    Subset,
    /// One random endpoint.
    One,
    /// Up to, but not including, a third: `(n - 1) / 3` random endpoints (none of one or two).
    MinorityThird,
    /// A random minority: `majority(n) - 1` endpoints (none of one endpoint).
    Minority,
    /// A random majority: `n / 2 + 1` endpoints.
    Majority,
    /// Every endpoint.
    All,
}

impl TargetSpec {
    /// Every spec.
    pub const ALL: [TargetSpec; 6] = [
        TargetSpec::Subset,
        TargetSpec::One,
        TargetSpec::MinorityThird,
        TargetSpec::Minority,
        TargetSpec::Majority,
        TargetSpec::All,
    ];

    /// The fewest of `n` endpoints this spec names; a spec other than `nil` always names this
    /// many.
    pub fn fewest(self, n: usize) -> usize {
        let majority = n / 2 + 1;
        match self {
            TargetSpec::Subset | TargetSpec::One => n.min(1),
            TargetSpec::MinorityThird => n.saturating_sub(1) / 3,
            TargetSpec::Minority => majority - 1,
            TargetSpec::Majority => majority.min(n),
            TargetSpec::All => n,
        }
    }

    /// Random distinct indices into `0..n`, as many as [`TargetSpec::fewest`] (for `nil`, a
    /// uniform size in `1..=n`), in order.
    pub fn select(self, n: usize, rng: &mut fastrand::Rng) -> Vec<usize> {
        let size = match self {
            TargetSpec::Subset if n > 0 => 1 + rng.usize(..n),
            _ => self.fewest(n),
        };
        match self {
            TargetSpec::One if n > 0 => vec![rng.usize(..n)],
            TargetSpec::All => (0..n).collect(),
            _ => {
                let mut all: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut all);
                all.truncate(size);
                all.sort_unstable();
                all
            }
        }
    }
}

impl FromStr for TargetSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<TargetSpec> {
        TargetSpec::ALL
            .into_iter()
            .find(|spec| spec.to_string() == s)
            .ok_or_else(|| {
                Error::Options(format!(
                    "unknown nemesis target {s:?} (nil, one, minority-third, minority, \
                     majority, all)"
                ))
            })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetSpec::Subset => "nil",
            TargetSpec::One => "one",
            TargetSpec::MinorityThird => "minority-third",
            TargetSpec::Minority => "minority",
            TargetSpec::Majority => "majority",
            TargetSpec::All => "all",
        })
    }
}

/// Parses `--nemesis-targets one,majority` (empty: `one`).
pub fn parse_targets(list: &[String]) -> Result<Vec<TargetSpec>> {
    let mut specs = Vec::new();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let spec = TargetSpec::from_str(s)?;
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    if specs.is_empty() {
        specs.push(TargetSpec::One);
    }
    Ok(specs)
}

/// The clock faults' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOpts {
    /// `bump-clock`'s offset, ms (negative: behind).
    pub bump_ms: i64,
    /// `strobe-clock`'s offset, ms: the clock flips between this and true time.
    pub strobe_ms: i64,
    /// How long `strobe-clock` stays on each side.
    pub strobe_period: Duration,
}

impl Default for ClockOpts {
    fn default() -> ClockOpts {
        ClockOpts {
            bump_ms: 60_000,
            strobe_ms: 10_000,
            strobe_period: Duration::from_millis(100),
        }
    }
}

/// What the nemesis does: which faults, on which targets, how often.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The faults, one picked at random each time.
    pub faults: Vec<Fault>,
    /// The endpoint faults' node specifications, one picked at random each time.
    pub targets: Vec<TargetSpec>,
    /// Time between a fault's start and its recovery, and between faults.
    pub interval: Duration,
    /// Seed of the nemesis's random choices.
    pub seed: u64,
    /// The clock faults' settings.
    pub clock: ClockOpts,
}

/// How long a `connect`/`disconnect` request may take.
const DB_API_TIMEOUT: Duration = Duration::from_secs(10);

/// What the nemesis can act on.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The endpoints (kill, pause, stop-start, clock).
    pub endpoints: Vec<Arc<Mutex<Endpoint>>>,
    /// The stand-in, in synced workloads.
    pub standin: Option<Arc<Mutex<Standin>>>,
    /// PostgreSQL, in synced workloads.
    pub database: Option<Database>,
    /// The latest era's PowerSync endpoints, `(node, base URL)`: the disconnect targets.
    pub syncing: Vec<(String, String)>,
}

/// A fault in progress, to be healed.
pub struct Active(ActiveFault);

enum ActiveFault {
    Killed(Vec<Arc<Mutex<Endpoint>>>),
    Paused(Vec<Arc<Mutex<Endpoint>>>),
    Stopped(Vec<Arc<Mutex<Endpoint>>>),
    Lost(Vec<Arc<Mutex<Endpoint>>>),
    Partitioned,
    Clock {
        endpoints: Vec<Arc<Mutex<Endpoint>>>,
        strobe: Option<tokio::task::JoinHandle<()>>,
    },
    StandinKilled(Arc<Mutex<Standin>>),
    PostgresStopped(Database),
    Disconnected {
        nodes: Vec<usize>,
        orderly: bool,
    },
}

/// What a nemesis operation did on each node, and the errors, to be recorded as one operation.
#[derive(Default)]
struct NodeResults {
    nodes: BTreeMap<String, NodeResult>,
    errors: Vec<String>,
}

impl NodeResults {
    fn add(&mut self, node: &str, done: &str, r: Result<()>) {
        let result = match r {
            Ok(()) => done,
            Err(e) => {
                self.errors.push(format!("{node}: {e}"));
                "error"
            }
        };
        self.nodes
            .insert(node.to_owned(), NodeResult::Keyword(result.to_owned()));
    }

    /// Records `value` for `node` (a clock offset in ms, bytes dropped), or `:error`.
    fn add_int(&mut self, node: &str, value: i64, r: Result<()>) {
        let result = match r {
            Ok(()) => NodeResult::Int(value),
            Err(e) => {
                self.errors.push(format!("{node}: {e}"));
                NodeResult::Keyword("error".into())
            }
        };
        self.nodes.insert(node.to_owned(), result);
    }

    fn record(self, f: &str, rec: &Recorder) {
        let error = (!self.errors.is_empty()).then(|| self.errors.join("; "));
        rec.nemesis_nodes(f, self.nodes, error);
    }
}

impl Fault {
    /// Whether the fault acts on endpoints picked by `--nemesis-targets`.
    pub fn targets_endpoints(self) -> bool {
        self.is_partition()
            || matches!(
                self,
                Fault::Kill
                    | Fault::Pause
                    | Fault::StopStart
                    | Fault::ClockBump
                    | Fault::ClockStrobe
                    | Fault::LoseUnfsyncedWrites
            )
    }

    /// Whether the fault leaves the latest era's `--endpoint postgresql` nodes out (they have
    /// no database of their own and no sync service to be cut from).
    pub fn skips_postgresql_endpoints(self) -> bool {
        matches!(self, Fault::StopStart | Fault::LoseUnfsyncedWrites) || self.is_partition()
    }

    /// Whether the fault moves the endpoints' clocks (they must run under libfaketime).
    pub fn is_clock(self) -> bool {
        matches!(self, Fault::ClockBump | Fault::ClockStrobe)
    }
}

impl Targets {
    /// Checks that every fault has something to act on: for the endpoint faults, that every
    /// spec of `specs` names at least one endpoint, and that clock faults have clocks.
    pub async fn check(&self, faults: &[Fault], specs: &[TargetSpec]) -> Result<()> {
        for &f in faults {
            let ok = match f {
                Fault::StandinRestart => self.standin.is_some(),
                Fault::PostgresRestart => self.database.is_some(),
                Fault::DisconnectOrderly | Fault::DisconnectRandom | Fault::UploadQueue => {
                    !self.syncing.is_empty()
                }
                _ => {
                    let n = self.candidates(f).await.len();
                    if let Some(spec) = specs.iter().find(|s| s.fewest(n) == 0) {
                        return Err(Error::Options(format!(
                            "nemesis {f} with target {spec} names no endpoint of the {n} it \
                             may act on"
                        )));
                    }
                    n > 0
                }
            };
            if !ok {
                return Err(Error::Options(format!(
                    "nemesis {f} has nothing to act on in this workload"
                )));
            }
            if f == Fault::LoseUnfsyncedWrites {
                for e in self.candidates(f).await {
                    let e = e.lock().await;
                    if !e.has_lazyfs() {
                        return Err(Error::Options(format!(
                            "nemesis {f}: the database of endpoint {} is on no lazy filesystem",
                            e.name()
                        )));
                    }
                }
            }
            if f.is_partition() {
                for e in self.candidates(f).await {
                    let e = e.lock().await;
                    if !e.has_network() {
                        return Err(Error::Options(format!(
                            "nemesis {f}: endpoint {} runs in no network namespace of its own",
                            e.name()
                        )));
                    }
                }
            }
            if f.is_clock() {
                for e in &self.endpoints {
                    let e = e.lock().await;
                    if e.clock().is_none() {
                        return Err(Error::Options(format!(
                            "nemesis {f}: endpoint {} does not run under libfaketime",
                            e.name()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The endpoints an endpoint fault may act on: every endpoint, but for stop-start and the
    /// partitions only the PowerSync ones.
    async fn candidates(&self, fault: Fault) -> Vec<Arc<Mutex<Endpoint>>> {
        let mut out = Vec::new();
        for e in &self.endpoints {
            if !fault.skips_postgresql_endpoints() || !e.lock().await.is_postgresql() {
                out.push(Arc::clone(e));
            }
        }
        out
    }

    /// Starts `fault` (an endpoint fault on endpoints picked by one of `plan`'s target specs),
    /// recorded as nemesis operations; what to heal, if anything.
    pub async fn start(
        &self,
        fault: Fault,
        plan: &Plan,
        rng: &mut fastrand::Rng,
        rec: &Recorder,
    ) -> Option<Active> {
        let active = match fault {
            f if f.targets_endpoints() => {
                let spec = match plan.targets[..] {
                    [only] => only,
                    _ => plan.targets[rng.usize(..plan.targets.len())],
                };
                let candidates = self.candidates(f).await;
                let picked: Vec<_> = spec
                    .select(candidates.len(), rng)
                    .into_iter()
                    .map(|i| Arc::clone(&candidates[i]))
                    .collect();
                start_on_endpoints(f, picked, &plan.clock, rec).await
            }
            Fault::StandinRestart => {
                let s = self.standin.as_ref()?;
                s.lock().await.kill();
                rec.nemesis("kill-standin", Some("standin"), None);
                ActiveFault::StandinKilled(Arc::clone(s))
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
                if failed {
                    return None;
                }
                ActiveFault::PostgresStopped(db.clone())
            }
            _ => {
                let mut nodes = random_subset(rng, self.syncing.len());
                if nodes.is_empty() {
                    nodes.push(rng.usize(..self.syncing.len()));
                }
                for &i in &nodes {
                    self.db_api(i, "disconnect", rec).await;
                }
                ActiveFault::Disconnected {
                    nodes,
                    orderly: fault == Fault::DisconnectOrderly,
                }
            }
        };
        Some(Active(active))
    }

    /// `GET /db-api/<action>` on PowerSync node `i`, recorded as a nemesis operation.
    async fn db_api(&self, i: usize, action: &str, rec: &Recorder) {
        let Some((name, url)) = self.syncing.get(i) else {
            return;
        };
        let r = crate::client::db_api(url, action, DB_API_TIMEOUT).await;
        rec.nemesis(action, Some(name), r.err());
    }

    /// Heals `active`, recorded as one nemesis operation (per node for the disconnects).
    pub async fn heal(&self, active: Active, rng: &mut fastrand::Rng, rec: &Recorder) {
        let mut results = NodeResults::default();
        let f = match active.0 {
            ActiveFault::Disconnected { nodes, orderly } => {
                let nodes = if orderly {
                    nodes
                } else {
                    random_subset(rng, self.syncing.len())
                };
                for i in nodes {
                    self.db_api(i, "connect", rec).await;
                }
                return;
            }
            ActiveFault::Killed(endpoints) | ActiveFault::Lost(endpoints) => {
                restart_all(endpoints, &mut results).await;
                "start"
            }
            ActiveFault::Stopped(endpoints) => {
                restart_all(endpoints, &mut results).await;
                "start-nodes"
            }
            ActiveFault::Partitioned => {
                // As jepsen-powersync's heal-partition: every PowerSync node.
                for e in self.candidates(Fault::PartitionBoth).await {
                    let mut e = e.lock().await;
                    let r = e.heal_partition();
                    results.add(e.name(), "partition-healed", r);
                }
                "heal-partition"
            }
            ActiveFault::Paused(endpoints) => {
                for e in endpoints {
                    let mut e = e.lock().await;
                    let r = e.resume();
                    results.add(e.name(), "resumed", r);
                }
                "resume"
            }
            ActiveFault::Clock { endpoints, strobe } => {
                if let Some(task) = strobe {
                    task.abort();
                    let _ = task.await;
                }
                for e in endpoints {
                    let e = e.lock().await;
                    let r = set_offset(&e, 0);
                    results.add_int(e.name(), 0, r);
                }
                "reset-clock"
            }
            ActiveFault::StandinKilled(s) => {
                let r = s.lock().await.restart().await;
                rec.nemesis(
                    "start-standin",
                    Some("standin"),
                    r.err().map(|x| x.to_string()),
                );
                return;
            }
            ActiveFault::PostgresStopped(db) => {
                let r = db.restart().await;
                rec.nemesis(
                    "start-postgres",
                    Some("postgres"),
                    r.err().map(|x| x.to_string()),
                );
                return;
            }
        };
        results.record(f, rec);
    }
}

/// Starts an endpoint fault on `endpoints`, recorded as one operation.
async fn start_on_endpoints(
    fault: Fault,
    endpoints: Vec<Arc<Mutex<Endpoint>>>,
    clock: &ClockOpts,
    rec: &Recorder,
) -> ActiveFault {
    let mut results = NodeResults::default();
    if let Some(cut) = fault.cut() {
        // jepsen-powersync's values: :partitioned-sync, :partitioned-postgres, ...
        let done = match cut {
            Cut::Sync => "partitioned-sync",
            Cut::Postgres => "partitioned-postgres",
            Cut::Both => "partitioned-both",
        };
        for e in &endpoints {
            let mut e = e.lock().await;
            let r = e.partition(cut);
            results.add(e.name(), done, r);
        }
        results.record(&fault.to_string(), rec);
        return ActiveFault::Partitioned;
    }
    let f = match fault {
        Fault::Kill => {
            for e in &endpoints {
                let mut e = e.lock().await;
                e.kill();
                results.add(e.name(), "killed", Ok(()));
            }
            "kill"
        }
        Fault::Pause => {
            for e in &endpoints {
                let mut e = e.lock().await;
                let r = e.pause();
                results.add(e.name(), "paused", r);
            }
            "pause"
        }
        Fault::StopStart => {
            for e in &endpoints {
                let mut e = e.lock().await;
                let r = e.stop().await;
                results.add(e.name(), "stopped", r);
            }
            "stop-nodes"
        }
        Fault::LoseUnfsyncedWrites => {
            for e in &endpoints {
                let mut e = e.lock().await;
                let r = e.lose_unfsynced_writes();
                let bytes = r
                    .as_ref()
                    .map_or(0, |&b| i64::try_from(b).unwrap_or(i64::MAX));
                results.add_int(e.name(), bytes, r.map(drop));
            }
            "lose-unfsynced-writes"
        }
        _ => {
            let offset = if fault == Fault::ClockBump {
                clock.bump_ms
            } else {
                clock.strobe_ms
            };
            let mut clocks = Vec::new();
            for e in &endpoints {
                let e = e.lock().await;
                let r = set_offset(&e, offset);
                results.add_int(e.name(), offset, r);
                clocks.extend(e.clock());
            }
            let strobe = (fault == Fault::ClockStrobe)
                .then(|| tokio::spawn(strobe(clocks, offset, clock.strobe_period)));
            results.record(
                if strobe.is_some() {
                    "strobe-clock"
                } else {
                    "bump-clock"
                },
                rec,
            );
            return ActiveFault::Clock { endpoints, strobe };
        }
    };
    results.record(f, rec);
    match fault {
        Fault::Kill => ActiveFault::Killed(endpoints),
        Fault::Pause => ActiveFault::Paused(endpoints),
        Fault::LoseUnfsyncedWrites => ActiveFault::Lost(endpoints),
        _ => ActiveFault::Stopped(endpoints),
    }
}

/// Sets an endpoint's clock offset.
fn set_offset(e: &Endpoint, offset_ms: i64) -> Result<()> {
    match e.clock() {
        Some(clock) => clock.set_offset(offset_ms),
        None => Err(Error::Process {
            name: e.name().to_owned(),
            reason: "not started under libfaketime".into(),
        }),
    }
}

/// `strobe-clock`: flips the clocks between true time and `offset_ms` every `period` (they
/// start at the offset) until aborted. A failed write is left for the reset to report.
async fn strobe(clocks: Vec<Clock>, offset_ms: i64, period: Duration) {
    let mut ahead = true;
    loop {
        tokio::time::sleep(period).await;
        ahead = !ahead;
        for c in &clocks {
            let _ = c.set_offset(if ahead { offset_ms } else { 0 });
        }
    }
}

/// Starts every endpoint again (same port, same database).
async fn restart_all(endpoints: Vec<Arc<Mutex<Endpoint>>>, results: &mut NodeResults) {
    for e in endpoints {
        let mut e = e.lock().await;
        let r = e.restart().await;
        results.add(e.name(), "started", r);
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

/// Runs faults until `stop` turns true: wait the interval, start a random fault of `plan`,
/// wait the interval, heal it. Whatever is active when `stop` arrives is healed before
/// returning.
pub async fn run(targets: Targets, plan: Plan, rec: Arc<Recorder>, stop: watch::Receiver<bool>) {
    let faults: Vec<Fault> = plan
        .faults
        .iter()
        .copied()
        .filter(|&f| f != Fault::UploadQueue)
        .collect();
    let queue_counts = async {
        if plan.faults.contains(&Fault::UploadQueue) {
            count_upload_queues(&targets, plan.interval, &rec, stop.clone()).await;
        }
    };
    let flip_flop = async {
        if faults.is_empty() {
            return;
        }
        let mut stop = stop.clone();
        let mut rng = fastrand::Rng::with_seed(plan.seed);
        loop {
            if wait_or_stop(&mut stop, plan.interval).await {
                return;
            }
            let fault = faults[rng.usize(..faults.len())];
            let active = targets.start(fault, &plan, &mut rng, &rec).await;
            let stopped = wait_or_stop(&mut stop, plan.interval).await;
            if let Some(a) = active {
                targets.heal(a, &mut rng, &rec).await;
            }
            if stopped {
                return;
            }
        }
    };
    tokio::join!(queue_counts, flip_flop);
}

/// How long one `uploadQueueCount` request may take (the Jepsen client's socket and connection
/// timeouts).
const UPLOAD_QUEUE_COUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// jepsen-powersync's upload-queue package: every `interval`, `uploadQueueCount` on every
/// PowerSync node, recorded as one `upload-queue-count` operation whose value maps each node to
/// its count, read from all nodes at once. A node that does not answer gets the Jepsen
/// client's keyword instead (see [`crate::client::upload_queue_count`]), not an error: the
/// faults running beside it (a kill, a pause) are meant to make nodes unreachable.
async fn count_upload_queues(
    targets: &Targets,
    interval: Duration,
    rec: &Recorder,
    mut stop: watch::Receiver<bool>,
) {
    while !wait_or_stop(&mut stop, interval).await {
        let mut reads = tokio::task::JoinSet::new();
        for (name, url) in targets.syncing.clone() {
            reads.spawn(async move {
                let count =
                    match crate::client::upload_queue_count(&url, UPLOAD_QUEUE_COUNT_TIMEOUT).await
                    {
                        Ok(n) => NodeResult::Int(n),
                        Err(keyword) => NodeResult::Keyword(keyword.to_owned()),
                    };
                (name, count)
            });
        }
        let nodes = reads.join_all().await.into_iter().collect();
        rec.nemesis_nodes("upload-queue-count", nodes, None);
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
        assert_eq!(
            parse_faults(&list("partition,partition-sync")).unwrap(),
            vec![
                Fault::PartitionSync,
                Fault::PartitionPostgres,
                Fault::PartitionBoth
            ]
        );
        assert!(parse_faults(&list("partitions")).is_err());
        assert_eq!(
            parse_faults(&list("disconnect")).unwrap(),
            vec![Fault::DisconnectOrderly, Fault::DisconnectRandom]
        );
        assert_eq!(
            parse_faults(&list("disconnect-random")).unwrap(),
            vec![Fault::DisconnectRandom]
        );
        assert_eq!(
            parse_faults(&list("clock,stop-start,clock-bump")).unwrap(),
            vec![Fault::ClockBump, Fault::ClockStrobe, Fault::StopStart]
        );
    }

    #[test]
    fn target_specs_count_as_jepsen_db_nodes() {
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse_targets(&list("nil,one,minority-third,minority,majority,all,one")).unwrap(),
            TargetSpec::ALL
        );
        assert_eq!(parse_targets(&[]).unwrap(), vec![TargetSpec::One]);
        assert!(parse_targets(&list("primaries")).is_err());
        // (nil, one, minority-third, minority, majority, all) of n, as Jepsen's db-nodes with
        // util/majority (n/2 + 1) and util/minority-third (largest integer below n/3).
        let counts = |n| TargetSpec::ALL.map(|s| s.fewest(n));
        assert_eq!(counts(1), [1, 1, 0, 0, 1, 1]);
        assert_eq!(counts(2), [1, 1, 0, 1, 2, 2]);
        assert_eq!(counts(3), [1, 1, 0, 1, 2, 3]);
        assert_eq!(counts(4), [1, 1, 1, 2, 3, 4]);
        assert_eq!(counts(5), [1, 1, 1, 2, 3, 5]);
        assert_eq!(counts(7), [1, 1, 2, 3, 4, 7]);
        let mut rng = fastrand::Rng::with_seed(7);
        for spec in [
            TargetSpec::MinorityThird,
            TargetSpec::Minority,
            TargetSpec::Majority,
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let picked = spec.select(5, &mut rng);
                assert_eq!(picked.len(), spec.fewest(5));
                assert!(picked.windows(2).all(|w| w[0] < w[1]), "{picked:?}");
                seen.extend(picked);
            }
            assert_eq!(seen.len(), 5, "{spec}: every endpoint is picked sometimes");
        }
        // nil: every size from 1 to n, distinct endpoints, every endpoint sometimes.
        let (mut sizes, mut seen) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for _ in 0..400 {
            let picked = TargetSpec::Subset.select(5, &mut rng);
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "{picked:?}");
            sizes.insert(picked.len());
            seen.extend(picked);
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(seen.len(), 5);
        assert_eq!(TargetSpec::All.select(3, &mut rng), vec![0, 1, 2]);
    }
}
