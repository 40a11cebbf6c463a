//! The `run` and `matrix` subcommands: options (Jepsen's names where Jepsen has them) and the
//! verdict output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use endpoint::{BackendConnector, Durability, FailurePolicy};
use harness::nemesis;
use harness::report;
use harness::runner::{self, CheckerOpts, Era, LatestOpts, RunOpts, SeedOpts};
use harness::topology::Binaries;
use harness::workload::{ElleOpts, GeneratorOpts, KeyDist, Workload};

/// Options of `harness run` and `harness matrix`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workload (the seed's and the latest era's names).
    #[arg(short, long, value_enum)]
    workload: Workload,
    /// Target transactions per second, over all clients.
    #[arg(short, long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of the main phase.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
    /// Node names, comma-separated (one endpoint per node not in --postgres-nodes).
    #[arg(long, value_delimiter = ',', default_value = "n1")]
    nodes: Vec<String>,
    /// Nodes whose clients use PostgreSQL directly (a subset of --nodes).
    #[arg(long, value_delimiter = ',')]
    postgres_nodes: Vec<String>,
    /// Client threads in all (default: one per node); thread i uses node i mod nodes.
    #[arg(long)]
    concurrency: Option<usize>,
    /// BACKEND_CONNECTOR of synced endpoints.
    #[arg(long, value_enum, default_value_t = BackendConnector::Transaction)]
    connector: BackendConnector,
    /// The endpoints' failure policy (ENDPOINT_FAILURE_POLICY): `forgiving` (retry lost
    /// connections, skip re-uploads through the ledger: the exactly-once path these runs check)
    /// or `dart` (exit with the Dart endpoint's codes on upload errors, as a Jepsen node does).
    #[arg(long, value_enum, default_value_t = FailurePolicy::Forgiving)]
    failure_policy: FailurePolicy,
    /// SQLite's `synchronous` on every endpoint (ENDPOINT_SYNCHRONOUS): `full` (nothing
    /// acknowledged is lost to a power loss) or `normal` (the Dart SDK's default: the
    /// lose-unfsynced-writes fault can take the last acknowledged transactions).
    #[arg(long, value_enum, default_value_t = Durability::Full)]
    synchronous: Durability,
    /// Vendored core version the endpoints load (POWERSYNC_LIB); default: the endpoint's.
    #[arg(long)]
    core_version: Option<String>,
    /// Faults, comma-separated: kill, pause, stop-start, clock (= clock-bump,clock-strobe)
    /// (every workload); partition (= partition-sync,partition-postgres,partition-both; synced
    /// workloads, needs root); standin-restart, postgres-restart (seed-era synced workloads);
    /// disconnect (= disconnect-orderly,disconnect-random), upload-queue (latest-era
    /// workloads); or none.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    nemesis: Vec<String>,
    /// The endpoint faults' targets (kill, pause, stop-start, clock, partitions), comma-separated Jepsen
    /// node specifications, one picked at random for each fault: nil (a random non-empty
    /// subset), one, minority-third, minority, majority, all.
    #[arg(long, value_delimiter = ',', default_value = "one")]
    nemesis_targets: Vec<String>,
    /// clock-bump: milliseconds the targets' wall clock jumps (negative: back).
    #[arg(long, default_value_t = 60_000, allow_hyphen_values = true)]
    clock_bump_ms: i64,
    /// clock-strobe: milliseconds ahead the targets' wall clock flips to and from.
    #[arg(long, default_value_t = 10_000, allow_hyphen_values = true)]
    clock_strobe_ms: i64,
    /// clock-strobe: milliseconds on each side of a flip.
    #[arg(long, default_value_t = 100)]
    clock_strobe_period_ms: u64,
    /// Seconds between a fault and its recovery, and between faults.
    #[arg(long, default_value_t = 5.0)]
    nemesis_interval: f64,
    /// Seed of the generators and the nemesis (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Seed-era `txn` workloads: keys in Elle's active pool (default 10 exponential, 3
    /// uniform, as Elle's). Latest era: the keys 0..key-count (default 100). At most 100: the
    /// endpoint seeds and accepts keys 0..=99.
    #[arg(long)]
    key_count: Option<i64>,
    /// Seed-era `txn` workloads: how Elle's generator picks keys from its active pool.
    #[arg(long, value_enum, default_value_t = KeyDist::Exponential)]
    key_dist: KeyDist,
    /// Seed-era `txn` workloads: writes a key takes at most before it is retired for a fresh one.
    #[arg(long, default_value_t = 256)]
    max_writes_per_key: u64,
    /// Seed-era `txn` workloads: fewest micro-ops per transaction.
    #[arg(long, default_value_t = 1)]
    min_txn_length: usize,
    /// Seed-era `txn` workloads: most micro-ops per transaction.
    #[arg(long, default_value_t = 4)]
    max_txn_length: usize,
    /// Keys per append-only transaction.
    #[arg(long, default_value_t = 10)]
    append_keys: usize,
    /// Keys per read-only transaction.
    #[arg(long, default_value_t = 10)]
    read_keys: usize,
    /// Seconds to wait for every node to agree with PostgreSQL before the final reads.
    #[arg(long, default_value_t = 30.0)]
    quiesce_timeout: f64,
    /// The run directory (default store/<workload>-<UTC timestamp>).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The powersync_endpoint binary (default: next to this executable).
    #[arg(long)]
    endpoint_bin: Option<PathBuf>,
    /// The standin binary (default: next to this executable).
    #[arg(long)]
    standin_bin: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Seed-era workloads: check each of these consistency models (comma-separated, Elle's
    /// names) instead of the workload's.
    #[arg(long, value_delimiter = ',')]
    consistency_models: Vec<String>,
    /// Seed-era workloads: anomalies to reject besides the model's (comma-separated Elle names),
    /// added to the workload's.
    #[arg(long, value_delimiter = ',')]
    anomalies: Vec<String>,
    /// Milliseconds the list-append checker may search for a cycle in each strongly connected
    /// component (Jepsen's `--cycle-search-timeout`).
    #[arg(long, default_value_t = 1000)]
    cycle_search_timeout: u64,
    /// Seconds a client request may take (connect and reply) before it is `info` (default: 1
    /// seed era, 3 latest era).
    #[arg(long)]
    client_timeout: Option<f64>,
    /// One-way latency in milliseconds of every link between nodes: endpoint → PostgreSQL,
    /// endpoint → stand-in, PostgreSQL clients → PostgreSQL (a TCP relay in the harness; the
    /// seed's nodes were separate hosts). 0 connects directly.
    #[arg(long, default_value_t = runner::DEFAULT_LINK_LATENCY_MS)]
    link_latency: f64,
    /// Latest-era workloads: keys written per transaction.
    #[arg(long, default_value_t = 4)]
    keys_txn: usize,
    /// Latest-era workloads: seconds to pause after the final barriers, before the final reads.
    #[arg(long, default_value_t = 3.0)]
    final_quiesce: f64,
    /// TEST ONLY, never in a real run: start the PowerSync endpoints of a latest-era workload
    /// with ENDPOINT_TEST_BROKEN_CONNECTOR=<MODE> (`drop`: every second upload is silently
    /// dropped), to show that the checkers catch lost updates.
    #[arg(long, value_name = "MODE")]
    test_broken_connector: Option<String>,
}

fn secs(name: &str, v: f64) -> Result<Duration, harness::Error> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| harness::Error::Options(format!("--{name} {v} is not a duration in seconds")))
}

impl RunArgs {
    pub(crate) fn into_opts(self) -> Result<RunOpts, harness::Error> {
        let faults = nemesis::parse_faults(&self.nemesis)?;
        let nemesis_targets = nemesis::parse_targets(&self.nemesis_targets)?;
        let binaries = Binaries::locate(self.endpoint_bin, self.standin_bin)?;
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let store = self.store.unwrap_or_else(|| {
            PathBuf::from("store").join(format!("{}-{}", self.workload, timestamp()))
        });
        // Once, here: every process is started with its own directory as cwd, so a relative
        // path would name a different place in each.
        let store = std::path::absolute(&store).map_err(|source| harness::Error::Io {
            path: store.clone(),
            source,
        })?;
        let era = if self.workload.is_mww() {
            Era::Latest(LatestOpts {
                keys_txn: self.keys_txn,
                final_quiesce: secs("final-quiesce", self.final_quiesce)?,
                test_broken_connector: self.test_broken_connector,
            })
        } else if self.test_broken_connector.is_some() {
            return Err(harness::Error::Options(
                "--test-broken-connector applies to the latest-era workloads only".into(),
            ));
        } else {
            Era::Seed(SeedOpts {
                generator: GeneratorOpts {
                    elle: ElleOpts {
                        key_dist: self.key_dist,
                        key_count: self.key_count.unwrap_or(match self.key_dist {
                            KeyDist::Exponential => 10,
                            KeyDist::Uniform => 3,
                        }),
                        max_writes_per_key: self.max_writes_per_key,
                        min_txn_length: self.min_txn_length,
                        max_txn_length: self.max_txn_length,
                    },
                    append_keys: self.append_keys,
                    read_keys: self.read_keys,
                },
                quiesce_timeout: secs("quiesce-timeout", self.quiesce_timeout)?,
            })
        };
        Ok(RunOpts {
            workload: self.workload,
            era,
            rate: self.rate,
            time_limit: secs("time-limit", self.time_limit)?,
            concurrency: self.concurrency.unwrap_or(self.nodes.len()),
            nodes: self.nodes,
            postgres_nodes: self.postgres_nodes,
            connector: self.connector,
            failure_policy: self.failure_policy,
            synchronous: self.synchronous,
            core_version: self.core_version,
            faults,
            nemesis_targets,
            clock: nemesis::ClockOpts {
                bump_ms: self.clock_bump_ms,
                strobe_ms: self.clock_strobe_ms,
                strobe_period: Duration::from_millis(self.clock_strobe_period_ms),
            },
            nemesis_interval: secs("nemesis-interval", self.nemesis_interval)?,
            seed,
            key_count: if self.workload.is_mww() {
                self.key_count.unwrap_or(runner::ENDPOINT_KEYS)
            } else {
                runner::ENDPOINT_KEYS
            },
            store,
            binaries,
            progress: !self.no_progress,
            link_latency: Duration::try_from_secs_f64(self.link_latency / 1000.0).map_err(
                |_| {
                    harness::Error::Options(format!(
                        "--link-latency {} is not a duration in milliseconds",
                        self.link_latency
                    ))
                },
            )?,
            client_timeout: self
                .client_timeout
                .map(|t| secs("client-timeout", t))
                .transpose()?,
            checker: CheckerOpts {
                consistency_models: self.consistency_models,
                anomalies: self.anomalies,
                cycle_search_timeout: Duration::from_millis(self.cycle_search_timeout),
            },
        })
    }
}

/// `YYYYmmddTHHMMSS` in UTC.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Runs `harness run`.
pub fn run(args: RunArgs) -> ExitCode {
    let opts = match args.into_opts() {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(runner::run(&opts)) {
        Ok(outcome) => {
            print!("{}", report::table(&outcome.verdicts, &outcome.stats));
            println!("run stored in {}", outcome.store.display());
            verdict_code(outcome.valid())
        }
        Err(e) => failed(&e),
    }
}

/// Exit 0 when every checker was valid, else 1.
pub fn verdict_code(valid: bool) -> ExitCode {
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the error and exits 2: the run or the check could not be carried out.
pub fn failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("harness: {e}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_has_the_documented_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(&t[8..9], "T");
        assert!(t.starts_with("20"), "{t}");
    }
}
