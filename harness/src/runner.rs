//! One test run: start the topology, run the clients (and the nemesis) for the time limit, heal,
//! let the nodes settle, do the final reads, tear everything down, check and store. One phase
//! driver runs both eras; where they differ it calls the hooks of the run's [`Model`]
//! ([`Lww`] for the seed era, [`Mww`] for the latest).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use crate::check::Verdict;
use crate::client::Outcome;
use crate::error::{Error, Result};
use crate::history::{History, Key, Op, OpType, Process};
use crate::link::Link;
use crate::model::{ClientTarget, Common, Lww, Model, Mww, Settled, Started};
use crate::nemesis::{self, ClockOpts, Fault, Plan, TargetSpec, Targets};
use crate::recorder::Recorder;
use crate::report;
use crate::topology::{
    Binaries, Database, Endpoint, EndpointConfig, Isolation, NodeNetwork, Standin,
};
use crate::workload::{GeneratorOpts, Workload};

/// The keys the endpoint seeds (and accepts): 0..=99.
pub const ENDPOINT_KEYS: i64 = endpoint::LWW_KEY_COUNT;

/// Everything a run is configured with.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// The workload.
    pub workload: Workload,
    /// The era's own options; must be the workload's era ([`Workload::is_mww`]).
    pub era: Era,
    /// Target rate of client transactions, per second, over all clients.
    pub rate: f64,
    /// Length of the main phase.
    pub time_limit: Duration,
    /// Node names (`n1`, ...).
    pub nodes: Vec<String>,
    /// Nodes whose clients talk to PostgreSQL instead of an endpoint.
    pub postgres_nodes: Vec<String>,
    /// Client threads in all (Jepsen's `--concurrency`); thread `i` uses node `i mod nodes`.
    pub concurrency: usize,
    /// `BACKEND_CONNECTOR` of synced endpoints.
    pub connector: endpoint::BackendConnector,
    /// The endpoints' failure policy (`ENDPOINT_FAILURE_POLICY`).
    pub failure_policy: endpoint::FailurePolicy,
    /// SQLite's `synchronous` on every endpoint (`ENDPOINT_SYNCHRONOUS`).
    pub synchronous: endpoint::Durability,
    /// The vendored core version the endpoints load (`None`: the endpoint's default).
    pub core_version: Option<String>,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Jepsen's node specifications the endpoint faults pick their targets by.
    pub nemesis_targets: Vec<TargetSpec>,
    /// The clock faults' settings.
    pub clock: ClockOpts,
    /// Time between a fault's start and its recovery, and between faults.
    pub nemesis_interval: Duration,
    /// Seed of the generators and the nemesis.
    pub seed: u64,
    /// Keys are `0..key_count` (seeded in PostgreSQL for synced workloads, read by the seed
    /// era's final reads; the seed era's active pool is [`ElleOpts::key_count`]).
    ///
    /// [`ElleOpts::key_count`]: crate::workload::ElleOpts::key_count
    pub key_count: i64,
    /// Where to store the run (created); an absolute path.
    pub store: PathBuf,
    /// The binaries to start.
    pub binaries: Binaries,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// One-way latency of every link between nodes (endpoint → PostgreSQL, endpoint →
    /// stand-in, PostgreSQL clients → PostgreSQL), through a [`Link`] each; zero connects
    /// directly.
    pub link_latency: Duration,
    /// The clients' connect and request timeout (`None`: the era's, 1 s seed, 3 s latest).
    pub client_timeout: Option<Duration>,
    /// Jepsen's checker options.
    pub checker: CheckerOpts,
}

/// Jepsen's checker options for the list-append checks of seed-era runs.
#[derive(Debug, Clone)]
pub struct CheckerOpts {
    /// `--consistency-models`: check each of these instead of the workload's model.
    pub consistency_models: Vec<String>,
    /// `--anomalies`: reject these besides what the model proscribes (added to the
    /// workload's).
    pub anomalies: Vec<String>,
    /// `--cycle-search-timeout`: the cycle search's budget in each strongly connected
    /// component.
    pub cycle_search_timeout: Duration,
}

impl Default for CheckerOpts {
    fn default() -> CheckerOpts {
        CheckerOpts {
            consistency_models: Vec::new(),
            anomalies: Vec::new(),
            cycle_search_timeout: Duration::from_secs(1),
        }
    }
}

/// The options only one era has: a seed-era run cannot carry latest-era options, nor the
/// reverse.
#[derive(Debug, Clone)]
pub enum Era {
    /// The seed era's list-append workloads ([`Lww`]).
    Seed(SeedOpts),
    /// The latest era's max-write-wins workloads ([`Mww`]).
    Latest(LatestOpts),
}

/// The seed era's options.
#[derive(Debug, Clone)]
pub struct SeedOpts {
    /// Transaction shapes.
    pub generator: GeneratorOpts,
    /// How long to wait for every node to agree with PostgreSQL before the final reads.
    pub quiesce_timeout: Duration,
}

/// The latest era's options.
#[derive(Debug, Clone)]
pub struct LatestOpts {
    /// Keys written per `writeSome` (`--keys-txn`).
    pub keys_txn: usize,
    /// The pause after the final barriers, before the final reads (the reference's
    /// "Quiesce 3s").
    pub final_quiesce: Duration,
    /// TEST ONLY: `ENDPOINT_TEST_BROKEN_CONNECTOR` for the PowerSync endpoints (`drop`: the
    /// endpoint silently drops every second upload). Never set in a real run.
    pub test_broken_connector: Option<String>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The checkers' verdicts.
    pub verdicts: Vec<Verdict>,
    /// Summary figures.
    pub stats: report::Stats,
    /// The run directory.
    pub store: PathBuf,
}

impl RunOutcome {
    /// True when every checker found the history valid.
    pub fn valid(&self) -> bool {
        self.verdicts.iter().all(Verdict::is_valid)
    }
}

/// The default one-way latency of the links between nodes, in milliseconds: a LAN's 1 ms round
/// trip (see [`crate::link`]). With it, the seed's own `ps-wo-pg-ro` command finds the seed's
/// non-atomic uploads; on bare loopback it almost never does.
pub const DEFAULT_LINK_LATENCY_MS: f64 = 0.5;

/// The started processes.
#[derive(Default)]
struct Topology {
    database: Option<Database>,
    standin: Option<Arc<Mutex<Standin>>>,
    endpoints: Vec<Arc<Mutex<Endpoint>>>,
    /// Dropped with the topology, after [`Topology::teardown`] stopped the processes whose
    /// connections they carry.
    links: Vec<Link>,
}

impl Topology {
    /// Routes an endpoint's connections to PostgreSQL and the stand-in through links of
    /// their own (one per node, so that a node's links can differ), when `latency` is set or
    /// the endpoint runs in a network namespace (`network`: the links listen on the harness's
    /// addresses of its veth pair, the only ones it can reach).
    async fn link_endpoint(
        &mut self,
        mut config: EndpointConfig,
        latency: Duration,
        network: Option<&NodeNetwork>,
    ) -> Result<EndpointConfig> {
        if latency.is_zero() && network.is_none() {
            return Ok(config);
        }
        let (pg_host, sync_host) = network
            .map_or((Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST), |n| {
                (n.postgres_addr(), n.sync_addr())
            });
        if let Some(port) = config.pg_port {
            config.pg_port = Some(self.link(pg_host, port, latency).await?);
            config.pg_host = pg_host;
        }
        if let Some(url) = &config.powersync_url {
            let mut url = reqwest::Url::parse(url)
                .map_err(|e| Error::Options(format!("stand-in URL {url:?}: {e}")))?;
            let port = url
                .port_or_known_default()
                .ok_or_else(|| Error::Options(format!("stand-in URL {url} has no port")))?;
            let linked = self.link(sync_host, port, latency).await?;
            // A URL with a host always takes another host and a port.
            let _ = url.set_ip_host(sync_host.into());
            let _ = url.set_port(Some(linked));
            config.powersync_url = Some(url.to_string().trim_end_matches('/').to_owned());
        }
        Ok(config)
    }

    /// The URI the harness's own PostgreSQL clients use: through a link when `latency` is set.
    async fn link_uri(&mut self, db: &Database, latency: Duration) -> Result<String> {
        if latency.is_zero() {
            return Ok(db.uri());
        }
        let port = self.link(Ipv4Addr::LOCALHOST, db.port(), latency).await?;
        Ok(db.uri_on_port(port))
    }

    /// A link listening on `listen` to `port` of 127.0.0.1; its port.
    async fn link(&mut self, listen: Ipv4Addr, port: u16, latency: Duration) -> Result<u16> {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let link = Link::start_on(listen.into(), target, latency).await?;
        let linked = link.port();
        self.links.push(link);
        Ok(linked)
    }

    async fn teardown(&self) {
        for e in &self.endpoints {
            e.lock().await.teardown().await;
        }
        if let Some(s) = &self.standin {
            s.lock().await.stop().await;
        }
    }
}

/// Where a run's topology goes to be torn down.
type Slot = std::sync::Mutex<Option<Topology>>;

/// Holds the topology while it starts and runs. However the phases end (success, an error,
/// or the interrupted future being dropped), dropping the guard hands everything started so
/// far to [`run`], which tears it down (a child whose handle is dropped unseen is killed).
struct TopologyGuard<'a> {
    topology: Topology,
    slot: &'a Slot,
}

impl<'a> TopologyGuard<'a> {
    fn new(slot: &'a Slot) -> TopologyGuard<'a> {
        TopologyGuard {
            topology: Topology::default(),
            slot,
        }
    }
}

impl Deref for TopologyGuard<'_> {
    type Target = Topology;
    fn deref(&self) -> &Topology {
        &self.topology
    }
}

impl DerefMut for TopologyGuard<'_> {
    fn deref_mut(&mut self) -> &mut Topology {
        &mut self.topology
    }
}

impl Drop for TopologyGuard<'_> {
    fn drop(&mut self) {
        let topology = std::mem::take(&mut self.topology);
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(topology);
    }
}

/// Runs a test: see the module documentation. Ctrl-C (or SIGTERM) tears everything down and
/// returns [`Error::Interrupted`].
pub async fn run(opts: &RunOpts) -> Result<RunOutcome> {
    validate(opts)?;
    std::fs::create_dir_all(&opts.store).map_err(|source| Error::Io {
        path: opts.store.clone(),
        source,
    })?;
    match &opts.era {
        Era::Seed(era) => run_model::<Lww>(opts, era).await,
        Era::Latest(era) => run_model::<Mww>(opts, era).await,
    }
}

async fn run_model<M: Model>(opts: &RunOpts, era: &M::Opts) -> Result<RunOutcome> {
    let rec = Arc::new(Recorder::new());
    let slot = Slot::new(None);
    let result = tokio::select! {
        r = phases::<M>(opts, era, &rec, &slot) => r,
        _ = interrupted() => Err(Error::Interrupted),
    };
    // Whatever happened, stop every process (PostgreSQL stops when its last handle drops).
    let started = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = started {
        t.teardown().await;
    }
    let phases = result?;
    finish::<M>(opts, &rec.history(), &phases)
}

/// The main phase: the nemesis runs beside the clients until every client is done (they stop at
/// the time limit), the progress bar ticking meanwhile; then the final nemesis heals every
/// fault. Returns what the clients returned. The nemesis runs in a `JoinSet` so that an
/// interrupted run aborts it.
async fn main_phase<W: Send + 'static>(
    mut clients: JoinSet<W>,
    targets: Targets,
    opts: &RunOpts,
    rec: &Arc<Recorder>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> Result<Vec<W>> {
    let mut nemesis = JoinSet::new();
    let plan = Plan {
        faults: opts.faults.clone(),
        targets: opts.nemesis_targets.clone(),
        interval: opts.nemesis_interval,
        seed: opts.seed,
        clock: opts.clock,
    };
    nemesis.spawn(nemesis::run(targets, plan, Arc::clone(rec), stop_rx));
    let progress = report::Progress::new(opts.progress, opts.time_limit);
    let mut workers = Vec::new();
    loop {
        tokio::select! {
            joined = clients.join_next() => match joined {
                Some(Ok(w)) => workers.push(w),
                Some(Err(e)) => return Err(Error::Task(e.to_string())),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => progress.tick(&rec.counts),
        }
    }
    progress.finish(&rec.counts);
    let _ = stop_tx.send(true);
    while let Some(r) = nemesis.join_next().await {
        r.map_err(|e| Error::Task(e.to_string()))?;
    }
    Ok(workers)
}

/// Each started endpoint's URL by node name, and its log file.
async fn urls_and_logs(
    endpoints: &[Arc<Mutex<Endpoint>>],
) -> (BTreeMap<String, String>, Vec<PathBuf>) {
    let mut urls = BTreeMap::new();
    let mut log_paths = Vec::new();
    for e in endpoints {
        let e = e.lock().await;
        urls.insert(e.name().to_owned(), e.url());
        log_paths.push(e.log_path());
    }
    (urls, log_paths)
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn validate(opts: &RunOpts) -> Result<()> {
    if !opts.store.is_absolute() {
        return Err(Error::Options(format!(
            "the run directory {} must be an absolute path (the processes run in their own \
             directories)",
            opts.store.display()
        )));
    }
    if opts.nodes.is_empty() {
        return Err(Error::Options("--nodes is empty".into()));
    }
    if let Some(bad) = opts.postgres_nodes.iter().find(|n| !opts.nodes.contains(n)) {
        return Err(Error::Options(format!(
            "postgres node {bad} is not in --nodes"
        )));
    }
    if opts.workload.single_node() && opts.nodes.len() != 1 {
        return Err(Error::Options(format!(
            "{} runs independent local databases: use exactly one node",
            opts.workload
        )));
    }
    if !opts.workload.is_synced() && !opts.postgres_nodes.is_empty() {
        return Err(Error::Options(format!(
            "{} has no PostgreSQL: drop --postgres-nodes",
            opts.workload
        )));
    }
    let needs_pg = matches!(opts.workload, Workload::PsRoPgWo | Workload::PsWoPgRo);
    if needs_pg && (opts.postgres_nodes.is_empty() || opts.postgres_nodes.len() == opts.nodes.len())
    {
        return Err(Error::Options(format!(
            "{} needs PostgreSQL nodes and PowerSync nodes, e.g. --nodes n1,n2 --postgres-nodes n1",
            opts.workload
        )));
    }
    if let Some(f) = opts
        .faults
        .iter()
        .find(|f| f.is_partition() || matches!(f, Fault::StandinRestart | Fault::PostgresRestart))
        && !opts.workload.is_synced()
    {
        return Err(Error::Options(format!(
            "nemesis {f} needs a synced workload ({} has no stand-in or PostgreSQL)",
            opts.workload
        )));
    }
    if let Some((f, why)) = opts.faults.iter().find_map(|f| Some((f, f.needs_root()?)))
        && !nix::unistd::Uid::effective().is_root()
    {
        return Err(Error::Options(format!("nemesis {f} needs root: {why}")));
    }
    if !(1..=ENDPOINT_KEYS).contains(&opts.key_count) {
        return Err(Error::Options(format!(
            "--key-count must be 1..={ENDPOINT_KEYS}: the endpoint seeds and accepts keys 0..=99"
        )));
    }
    validate_targets(opts)?;
    if opts.faults.iter().any(|f| f.is_clock())
        && (opts.clock.bump_ms == 0
            || opts.clock.strobe_ms == 0
            || opts.clock.strobe_period.is_zero())
    {
        return Err(Error::Options(
            "--clock-bump-ms, --clock-strobe-ms and --clock-strobe-period-ms must not be 0 \
             (a clock fault that moves nothing)"
                .into(),
        ));
    }
    match (&opts.era, opts.workload.is_mww()) {
        (Era::Latest(era), true) => {
            if !opts.checker.consistency_models.is_empty() || !opts.checker.anomalies.is_empty() {
                return Err(Error::Options(format!(
                    "--consistency-models and --anomalies apply to the list-append checker of \
                     the seed-era workloads; {} is judged by the causal and convergence checkers",
                    opts.workload
                )));
            }
            validate_mww(opts, era)?
        }
        (Era::Seed(era), false) => {
            validate_elle(&era.generator.elle)?;
            for la in crate::model::lww_list_append_opts(opts) {
                crate::check::list_append::validate(&la)?;
            }
            if let Some(f) = opts.faults.iter().find(|f| f.needs_db_api()) {
                return Err(Error::Options(format!(
                    "nemesis {f} needs a latest-era workload (ps-rw-pg-rw, ps-ro-pg-rw, \
                     ps-rw-pg-ro, convergence): the seed endpoint has no /db-api"
                )));
            }
        }
        (_, latest) => {
            return Err(Error::Options(format!(
                "{} is a {} workload: its options must be the same era's",
                opts.workload,
                if latest { "latest-era" } else { "seed-era" }
            )));
        }
    }
    if opts.client_timeout.is_some_and(|t| t.is_zero())
        || opts.checker.cycle_search_timeout.is_zero()
    {
        return Err(Error::Options(
            "--client-timeout and --cycle-search-timeout must be positive".into(),
        ));
    }
    if opts.rate <= 0.0 || opts.concurrency == 0 {
        return Err(Error::Options(
            "--rate and --concurrency must be positive".into(),
        ));
    }
    Ok(())
}

/// Every `--nemesis-targets` spec must name an endpoint for every endpoint fault (Jepsen's
/// `minority` of one node is empty), checked before anything starts.
fn validate_targets(opts: &RunOpts) -> Result<()> {
    let own_db = opts
        .nodes
        .iter()
        .filter(|n| !opts.postgres_nodes.contains(n))
        .count();
    // The seed era starts no endpoint on a PostgreSQL node; the latest era starts one per node.
    let endpoints = if opts.workload.is_mww() {
        opts.nodes.len()
    } else {
        own_db
    };
    for f in opts.faults.iter().filter(|f| f.targets_endpoints()) {
        let n = if f.skips_postgresql_endpoints() {
            own_db
        } else {
            endpoints
        };
        if let Some(spec) = opts.nemesis_targets.iter().find(|s| s.fewest(n) == 0) {
            return Err(Error::Options(format!(
                "nemesis {f} with --nemesis-targets {spec} names none of the {n} endpoint(s) \
                 it may act on"
            )));
        }
    }
    Ok(())
}

/// The options of Elle's generator.
fn validate_elle(elle: &crate::workload::ElleOpts) -> Result<()> {
    if !(1..=ENDPOINT_KEYS).contains(&elle.key_count) {
        return Err(Error::Options(format!(
            "--key-count must be 1..={ENDPOINT_KEYS}: the endpoint seeds and accepts keys 0..=99"
        )));
    }
    if elle.min_txn_length == 0 || elle.min_txn_length > elle.max_txn_length {
        return Err(Error::Options(format!(
            "--min-txn-length {} and --max-txn-length {}: need 1 <= min <= max",
            elle.min_txn_length, elle.max_txn_length
        )));
    }
    if elle.max_writes_per_key == 0 {
        return Err(Error::Options(
            "--max-writes-per-key must be positive".into(),
        ));
    }
    Ok(())
}

/// The latest era's option checks.
fn validate_mww(opts: &RunOpts, era: &LatestOpts) -> Result<()> {
    let w = opts.workload;
    if matches!(w, Workload::PsRoPgRw | Workload::PsRwPgRo)
        && (opts.postgres_nodes.is_empty() || opts.postgres_nodes.len() == opts.nodes.len())
    {
        return Err(Error::Options(format!(
            "{w} needs PostgreSQL nodes and PowerSync nodes, e.g. --nodes n1,n2 --postgres-nodes n1"
        )));
    }
    if opts.postgres_nodes.len() == opts.nodes.len() {
        return Err(Error::Options(format!(
            "{w} needs at least one PowerSync node (a node not in --postgres-nodes)"
        )));
    }
    if let Some(f) = opts
        .faults
        .iter()
        .find(|f| !f.needs_db_api() && !f.targets_endpoints())
    {
        return Err(Error::Options(format!(
            "nemesis {f} is not implemented for {w}: use kill, pause, stop-start, clock, \
             disconnect, disconnect-orderly, disconnect-random or upload-queue"
        )));
    }
    if era.keys_txn == 0 || era.keys_txn as i64 > opts.key_count {
        return Err(Error::Options(format!(
            "--keys-txn must be 1..=--key-count ({})",
            opts.key_count
        )));
    }
    if let Some(mode) = &era.test_broken_connector
        && mode != "drop"
    {
        return Err(Error::Options(format!(
            "--test-broken-connector {mode:?}: the endpoint knows only \"drop\""
        )));
    }
    Ok(())
}

/// What the phases leave for the checkers besides the history.
struct Phases<M: Model> {
    /// PostgreSQL's final state, in synced workloads.
    postgres_state: Option<BTreeMap<Key, M::Value>>,
    /// The endpoints' logs.
    endpoint_logs: Vec<PathBuf>,
    /// How the nodes settled before the final reads.
    settled: Settled,
}

/// Starts everything and runs the phases: start, main phase (clients and nemesis), settle,
/// final reads, PostgreSQL's final state.
async fn phases<M: Model>(
    opts: &RunOpts,
    era: &M::Opts,
    rec: &Arc<Recorder>,
    slot: &Slot,
) -> Result<Phases<M>> {
    let mut topo = TopologyGuard::new(slot);
    let mut common = Common {
        powersync_lib: opts.core_version.as_deref().map(core_path).transpose()?,
        ..Common::default()
    };
    if opts.workload.is_synced() {
        let db = Database::start(&M::SCHEMA, opts.key_count).await?;
        let uri = db.uri();
        common.pg_port = Some(db.port());
        topo.database = Some(db);
        let key = testkit::TestKey::primary();
        let standin = Standin::start(
            &opts.binaries.standin,
            &opts.store.join("standin"),
            &uri,
            key.jwks(),
            M::STANDIN,
        )
        .await?;
        common.powersync_url = Some(standin.url());
        topo.standin = Some(Arc::new(Mutex::new(standin)));
        // The seed's JWKS_PRIVATE_KEY: the private JWK as base64-encoded JSON.
        let private = testkit::keys::primary_private_jwk()?.to_string();
        common.jwks_private_key = Some(base64::engine::general_purpose::STANDARD.encode(private));
    }
    // The clock faults need every endpoint under libfaketime.
    let faketime = if opts.faults.iter().any(|f| f.is_clock()) {
        Some(crate::topology::faketime_lib()?)
    } else {
        None
    };
    // The partition faults need every PowerSync endpoint in a network namespace of its own.
    let partitions = opts.faults.iter().any(|f| f.is_partition());
    // The lost-writes fault needs every endpoint with a database on a lazy filesystem.
    let lazyfs = opts.faults.contains(&Fault::LoseUnfsyncedWrites);
    let mut syncing = Vec::new();
    for name in &opts.nodes {
        let postgres = opts.postgres_nodes.contains(name);
        let Some(config) = M::endpoint(opts, era, name, postgres, &common) else {
            continue;
        };
        let network = if partitions && !postgres {
            Some(NodeNetwork::create()?)
        } else {
            None
        };
        let config = topo
            .link_endpoint(config, opts.link_latency, network.as_ref())
            .await?;
        let isolation = Isolation {
            faketime: faketime.clone(),
            network,
            lazyfs: lazyfs && !postgres,
        };
        let e = Endpoint::start_isolated(
            &opts.binaries.endpoint,
            &opts.store.join(name),
            config,
            isolation,
        )
        .await?;
        if M::DB_API && !postgres {
            syncing.push((name.clone(), e.url()));
        }
        topo.endpoints.push(Arc::new(Mutex::new(e)));
    }
    let (urls, endpoint_logs) = urls_and_logs(&topo.endpoints).await;
    let started = Started {
        urls,
        database: topo.database.clone(),
        targets: Targets {
            endpoints: topo.endpoints.clone(),
            standin: topo.standin.clone(),
            database: topo.database.clone(),
            syncing,
        },
    };
    started
        .targets
        .check(&opts.faults, &opts.nemesis_targets)
        .await?;
    M::after_start(opts, &started).await?;

    // Main phase.
    let generator = Arc::new(M::generator(opts, era));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = JoinSet::new();
    let deadline = tokio::time::Instant::now() + opts.time_limit;
    let pg_uri = match &started.database {
        Some(db) => topo.link_uri(db, opts.link_latency).await?,
        None => String::new(),
    };
    for i in 0..opts.concurrency {
        let node = opts.nodes[i % opts.nodes.len()].clone();
        let postgres = opts.postgres_nodes.contains(&node);
        let url = started.urls.get(&node).map(String::as_str);
        let mut worker = Worker::<M> {
            process: i as u64,
            concurrency: opts.concurrency as u64,
            client: M::client(&ClientTarget {
                node: &node,
                postgres,
                url,
                pg_uri: &pg_uri,
                timeout: opts.client_timeout.unwrap_or(M::CLIENT_TIMEOUT),
            })?,
            role: M::role(opts.workload, postgres),
            node,
        };
        let rec = Arc::clone(rec);
        let generator = Arc::clone(&generator);
        let seed = opts.seed.wrapping_add(i as u64);
        let mean_gap = opts.concurrency as f64 / opts.rate;
        clients.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            // Jepsen's stagger: a uniformly random gap with mean concurrency/rate between
            // scheduled starts (a slow operation delays the next one but causes no burst).
            let mut next_at = tokio::time::Instant::now();
            loop {
                next_at += Duration::from_secs_f64(rng.f64() * 2.0 * mean_gap);
                next_at = next_at.max(tokio::time::Instant::now());
                if next_at >= deadline {
                    break;
                }
                tokio::time::sleep_until(next_at).await;
                let (f, mops) = M::next(&generator, worker.role, &mut rng);
                worker.invoke(&rec, f, mops, false).await;
            }
            worker
        });
    }
    let workers = main_phase(
        clients,
        started.targets.clone(),
        opts,
        rec,
        stop_tx,
        stop_rx,
    )
    .await?;

    let settled = M::settle(opts, era, &started, rec).await?;
    let mut finals = JoinSet::new();
    for mut w in workers {
        let rec = Arc::clone(rec);
        let reads = M::final_reads(opts);
        finals.spawn(async move {
            for mops in reads {
                w.invoke(&rec, "r-final", mops, true).await;
            }
        });
    }
    while let Some(r) = finals.join_next().await {
        r.map_err(|e| Error::Task(e.to_string()))?;
    }
    let postgres_state = match &started.database {
        Some(db) => Some(db.state::<M>().await?),
        None => None,
    };
    Ok(Phases {
        postgres_state,
        endpoint_logs,
        settled,
    })
}

/// The library file of vendored core `version`, fetched.
fn core_path(version: &str) -> Result<PathBuf> {
    powersync_sys::VendoredCore::find(version)
        .and_then(|core| core.fetched_path())
        .map_err(|e| Error::Options(e.to_string()))
}

/// One client thread: its process number (a new one after each `info`, as in Jepsen), its
/// node, what it generates and its client.
struct Worker<M: Model> {
    process: u64,
    concurrency: u64,
    node: String,
    role: M::Role,
    client: M::Client,
}

impl<M: Model> Worker<M> {
    async fn invoke(&mut self, rec: &Recorder, f: &str, mops: Vec<M::Mop>, final_read: bool) {
        let op = |op_type, value, error| Op {
            index: 0,
            time: 0,
            op_type,
            process: Process::Client(self.process),
            f: f.to_owned(),
            value: M::value(value),
            node: Some(self.node.clone()),
            final_read,
            error,
        };
        rec.record(op(OpType::Invoke, mops.clone(), None));
        let outcome = M::txn(&mut self.client, f, &mops).await;
        match outcome {
            Outcome::Ok(done) => rec.record(op(OpType::Ok, done, None)),
            Outcome::Fail(e) => rec.record(op(OpType::Fail, mops, Some(e))),
            Outcome::Info(e) => {
                rec.record(op(OpType::Info, mops, Some(e)));
                self.process += self.concurrency;
            }
        }
    }
}

/// Checks the history and writes the run directory.
fn finish<M: Model>(opts: &RunOpts, history: &History, phases: &Phases<M>) -> Result<RunOutcome> {
    let postgres = phases.postgres_state.as_ref();
    let verdicts = M::verdicts(opts, history, postgres, &phases.endpoint_logs)?;
    let mut stats = report::Stats::of(history, opts.time_limit);
    phases.settled.apply(&mut stats);
    report::write_run(
        &opts.store,
        opts,
        history,
        &verdicts,
        &stats,
        serde_json::json!(postgres),
    )?;
    Ok(RunOutcome {
        verdicts,
        stats,
        store: opts.store.clone(),
    })
}
