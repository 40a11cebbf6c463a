//! One test run: start the topology, run the clients (and the nemesis) for the time limit, heal,
//! wait for quiescence, do the final reads, tear everything down, check and store. The
//! latest-era (mww) workloads run in [`mww`].

mod mww;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use crate::check::{Verdict, convergence, list_append, logs, stats};
use crate::client::{EndpointClient, Lister, Outcome, PostgresClient};
use crate::error::{Error, Result};
use crate::history::{Element, History, Key, ListAppendMop, Op, OpType, Process, Value};
use crate::nemesis::{self, Fault, Targets};
use crate::recorder::Recorder;
use crate::report;
use crate::topology::{Binaries, Database, Endpoint, EndpointConfig, Standin};
use crate::workload::{Generator, GeneratorOpts, Role, Workload};

/// The keys the endpoint seeds (and accepts): 0..=99.
pub const ENDPOINT_KEYS: i64 = 100;

/// Everything a run is configured with.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// The workload.
    pub workload: Workload,
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
    pub connector: String,
    /// The vendored core version the endpoints load (`None`: the endpoint's default).
    pub core_version: Option<String>,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Time between a fault's start and its recovery, and between faults.
    pub nemesis_interval: Duration,
    /// Seed of the generators and the nemesis.
    pub seed: u64,
    /// Transaction shapes.
    pub generator: GeneratorOpts,
    /// How long to wait for every node to agree with PostgreSQL before the final reads.
    pub quiesce_timeout: Duration,
    /// Where to store the run (created).
    pub store: PathBuf,
    /// The binaries to start.
    pub binaries: Binaries,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Latest era: keys written per `writeSome` (`--keys-txn`).
    pub keys_txn: usize,
    /// Latest era: the pause after the final barriers, before the final reads (the
    /// reference's "Quiesce 3s").
    pub final_quiesce: Duration,
    /// TEST ONLY: `ENDPOINT_TEST_BROKEN_CONNECTOR` for the PowerSync endpoints of a latest-era
    /// run (`drop`: the endpoint silently drops every second upload). Never set in a real run.
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

/// A node's client side: an endpoint or PostgreSQL.
#[derive(Debug, Clone)]
enum Target {
    Endpoint(String),
    Postgres(String),
}

/// The started processes.
struct Topology {
    database: Option<Database>,
    standin: Option<Arc<Mutex<Standin>>>,
    endpoints: Vec<Arc<Mutex<Endpoint>>>,
}

impl Topology {
    async fn teardown(&self) {
        for e in &self.endpoints {
            e.lock().await.teardown().await;
        }
        if let Some(s) = &self.standin {
            s.lock().await.stop().await;
        }
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
    let rec = Arc::new(Recorder::new());
    let topology = Arc::new(Mutex::new(None::<Topology>));
    let result = tokio::select! {
        r = async {
            if opts.workload.is_mww() {
                mww::phases(opts, Arc::clone(&rec), Arc::clone(&topology)).await.map(Done::Mww)
            } else {
                phases(opts, Arc::clone(&rec), Arc::clone(&topology)).await.map(Done::Seed)
            }
        } => r,
        _ = interrupted() => Err(Error::Interrupted),
    };
    // Whatever happened, stop every process (PostgreSQL stops when its last handle drops).
    if let Some(t) = topology.lock().await.take() {
        t.teardown().await;
    }
    let done = result?;
    let history = rec.history();
    match done {
        Done::Seed(phases) => finish(opts, &history, &phases),
        Done::Mww(phases) => finish_mww(opts, &history, &phases),
    }
}

/// What the phases of either era produced.
enum Done {
    Seed(Phases),
    Mww(mww::MwwPhases),
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
    nemesis.spawn(nemesis::run(
        targets,
        opts.faults.clone(),
        opts.nemesis_interval,
        opts.seed,
        Arc::clone(rec),
        stop_rx,
    ));
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
        .find(|f| matches!(f, Fault::StandinRestart | Fault::PostgresRestart))
        && !opts.workload.is_synced()
    {
        return Err(Error::Options(format!(
            "nemesis {f} needs a synced workload ({} has no stand-in or PostgreSQL)",
            opts.workload
        )));
    }
    if !(1..=ENDPOINT_KEYS).contains(&opts.generator.key_count) {
        return Err(Error::Options(format!(
            "--key-count must be 1..={ENDPOINT_KEYS}: the endpoint seeds and accepts keys 0..=99"
        )));
    }
    if opts.workload.is_mww() {
        validate_mww(opts)?;
    } else if let Some(f) = opts.faults.iter().find(|f| f.is_disconnect()) {
        return Err(Error::Options(format!(
            "nemesis {f} needs a latest-era workload (ps-rw-pg-rw, ps-ro-pg-rw, ps-rw-pg-ro, \
             convergence): the seed endpoint has no /db-api"
        )));
    } else if opts.test_broken_connector.is_some() {
        return Err(Error::Options(
            "--test-broken-connector applies to the latest-era workloads only".into(),
        ));
    }
    if opts.rate <= 0.0 || opts.concurrency == 0 {
        return Err(Error::Options(
            "--rate and --concurrency must be positive".into(),
        ));
    }
    Ok(())
}

/// The latest era's option checks.
fn validate_mww(opts: &RunOpts) -> Result<()> {
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
        .find(|f| !f.is_disconnect() && !matches!(f, Fault::Kill | Fault::Pause))
    {
        return Err(Error::Options(format!(
            "nemesis {f} is not implemented for {w}: use kill, pause, disconnect, \
             disconnect-orderly or disconnect-random"
        )));
    }
    if opts.keys_txn == 0 || opts.keys_txn as i64 > opts.generator.key_count {
        return Err(Error::Options(format!(
            "--keys-txn must be 1..=--key-count ({})",
            opts.generator.key_count
        )));
    }
    if let Some(mode) = &opts.test_broken_connector
        && mode != "drop"
    {
        return Err(Error::Options(format!(
            "--test-broken-connector {mode:?}: the endpoint knows only \"drop\""
        )));
    }
    Ok(())
}

/// What the phases leave for the checkers besides the history.
struct Phases {
    /// PostgreSQL's final state, in synced workloads.
    postgres_state: Option<BTreeMap<Key, Vec<Element>>>,
    /// The endpoints' logs.
    endpoint_logs: Vec<PathBuf>,
    /// Whether every node agreed with PostgreSQL before the final reads, and how long it took.
    quiescence: Option<(bool, Duration)>,
}

/// Starts everything and runs the phases.
async fn phases(
    opts: &RunOpts,
    rec: Arc<Recorder>,
    slot: Arc<Mutex<Option<Topology>>>,
) -> Result<Phases> {
    let synced = opts.workload.is_synced();
    let mut topo = Topology {
        database: None,
        standin: None,
        endpoints: Vec::new(),
    };
    let mut powersync_url = None;
    let mut jwk = None;
    if synced {
        let db = Database::start(opts.generator.key_count).await?;
        let key = testkit::TestKey::primary();
        let standin = Standin::start(
            &opts.binaries.standin,
            &opts.store.join("standin"),
            &db.uri(),
            key.jwks(),
            "lww",
        )
        .await;
        topo.database = Some(db);
        let standin = match standin {
            Ok(s) => s,
            Err(e) => {
                *slot.lock().await = Some(topo);
                return Err(e);
            }
        };
        powersync_url = Some(standin.url());
        topo.standin = Some(Arc::new(Mutex::new(standin)));
        // The seed's JWKS_PRIVATE_KEY: the private JWK as base64-encoded JSON.
        let private = testkit::keys::primary_private_jwk()?.to_string();
        jwk = Some(base64::engine::general_purpose::STANDARD.encode(private));
    }
    let powersync_lib = match &opts.core_version {
        Some(v) => Some(core_path(v)?),
        None => None,
    };
    let endpoint_nodes: Vec<&String> = opts
        .nodes
        .iter()
        .filter(|n| !opts.postgres_nodes.contains(n))
        .collect();
    for name in &endpoint_nodes {
        let config = EndpointConfig {
            name: (*name).clone(),
            mode: opts.workload.endpoint_mode().to_owned(),
            connector: opts.connector.clone(),
            powersync_url: powersync_url.clone(),
            pg_port: topo.database.as_ref().map(Database::port),
            jwks_private_key: jwk.clone(),
            powersync_lib: powersync_lib.clone(),
            latest: None,
            env: Vec::new(),
        };
        match Endpoint::start(
            &opts.binaries.endpoint,
            &opts.store.join(name.as_str()),
            config,
        )
        .await
        {
            Ok(e) => topo.endpoints.push(Arc::new(Mutex::new(e))),
            Err(e) => {
                *slot.lock().await = Some(topo);
                return Err(e);
            }
        }
    }
    let (urls, log_paths) = urls_and_logs(&topo.endpoints).await;
    let targets = Targets {
        endpoints: topo.endpoints.clone(),
        standin: topo.standin.clone(),
        database: topo.database.clone(),
        syncing: Vec::new(),
    };
    let database = topo.database.clone();
    *slot.lock().await = Some(topo);
    targets.check(&opts.faults)?;
    if synced {
        wait_initial_sync(&urls, opts.generator.key_count).await?;
    }

    // Main phase.
    let generator = Arc::new(Generator::new(opts.generator));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = JoinSet::new();
    let deadline = tokio::time::Instant::now() + opts.time_limit;
    let mut threads = Vec::new();
    for i in 0..opts.concurrency {
        let node = &opts.nodes[i % opts.nodes.len()];
        let target = if opts.postgres_nodes.contains(node) {
            Target::Postgres(node.clone())
        } else {
            Target::Endpoint(node.clone())
        };
        threads.push((i as u64, target));
    }
    let pg_uri = database.as_ref().map(Database::uri).unwrap_or_default();
    for (thread, target) in threads.clone() {
        let worker = Worker::new(thread, target, &urls, &pg_uri, opts)?;
        let rec = Arc::clone(&rec);
        let generator = Arc::clone(&generator);
        let seed = opts.seed.wrapping_add(thread);
        let mean_gap = opts.concurrency as f64 / opts.rate;
        clients.spawn(async move {
            let mut worker = worker;
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
                let mops = generator.next(worker.role, &mut rng);
                worker.invoke(&rec, worker.role.f(), mops, false).await;
            }
            worker
        });
    }
    let workers = main_phase(clients, targets, opts, &rec, stop_tx, stop_rx).await?;

    // Quiescence (every node agrees with PostgreSQL, or the timeout), then final reads of every
    // key by every client, then PostgreSQL's own final state.
    let quiescence = match &database {
        Some(db) => {
            let started = Instant::now();
            let agreed = wait_quiescent(&urls, db, opts.quiesce_timeout).await?;
            Some((agreed, started.elapsed()))
        }
        None => None,
    };
    let mut finals = JoinSet::new();
    for mut w in workers {
        let rec = Arc::clone(&rec);
        let keys = opts.generator.key_count;
        finals.spawn(async move {
            for k in 0..keys {
                let mops = vec![ListAppendMop::Read { key: k, list: None }];
                w.invoke(&rec, "r-final", mops, true).await;
            }
        });
    }
    while let Some(r) = finals.join_next().await {
        r.map_err(|e| Error::Task(e.to_string()))?;
    }
    let postgres_state = match &database {
        Some(db) => Some(db.final_state().await?),
        None => None,
    };
    Ok(Phases {
        postgres_state,
        endpoint_logs: log_paths,
        quiescence,
    })
}

/// The library file of vendored core `version`.
fn core_path(version: &str) -> Result<PathBuf> {
    let cores = powersync_sys::vendored_cores();
    let core = cores.iter().find(|c| c.version == version).ok_or_else(|| {
        Error::Options(format!(
            "unknown core version {version}; vendored: {}",
            cores
                .iter()
                .map(|c| c.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !core.is_fetched() {
        return Err(Error::Options(format!(
            "core {version} is not fetched ({}); run vendor/fetch-cores",
            core.path().display()
        )));
    }
    Ok(core.path())
}

/// One client thread: its process number (a new one after each `info`, as in Jepsen) and the
/// client of its node.
struct Worker {
    process: u64,
    concurrency: u64,
    node: String,
    role: Role,
    client: Client,
}

enum Client {
    Endpoint(EndpointClient),
    Postgres(PostgresClient),
}

impl Worker {
    fn new(
        thread: u64,
        target: Target,
        urls: &BTreeMap<String, String>,
        pg_uri: &str,
        opts: &RunOpts,
    ) -> Result<Worker> {
        let (node, client, postgres) = match target {
            Target::Endpoint(node) => {
                let url = urls
                    .get(&node)
                    .ok_or_else(|| Error::Options(format!("no endpoint for node {node}")))?;
                (node, Client::Endpoint(EndpointClient::new(url)?), false)
            }
            Target::Postgres(node) => (node, Client::Postgres(PostgresClient::new(pg_uri)), true),
        };
        Ok(Worker {
            process: thread,
            concurrency: opts.concurrency as u64,
            node,
            role: opts.workload.role(postgres),
            client,
        })
    }

    async fn invoke(
        &mut self,
        rec: &Recorder,
        f: &str,
        mops: Vec<ListAppendMop>,
        final_read: bool,
    ) {
        let op = |op_type, value, error| Op {
            index: 0,
            time: 0,
            op_type,
            process: Process::Client(self.process),
            f: f.to_owned(),
            value: Value::ListAppend(value),
            node: Some(self.node.clone()),
            final_read,
            error,
        };
        rec.record(op(OpType::Invoke, mops.clone(), None));
        let outcome = match &mut self.client {
            Client::Endpoint(c) => c.txn(&mops).await,
            Client::Postgres(c) => c.txn(&mops).await,
        };
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

/// Waits until every synced endpoint lists all `key_count` rows (the initial sync).
async fn wait_initial_sync(urls: &BTreeMap<String, String>, key_count: i64) -> Result<()> {
    let lister = Lister::new()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (node, url) in urls {
        loop {
            if let Some(rows) = lister.rows(url).await
                && rows.len() as i64 >= key_count
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Startup {
                    name: node.clone(),
                    reason: format!("initial sync: {key_count} rows not listed within 60 s"),
                    log_tail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Polls until every endpoint's `GET /db/list` equals PostgreSQL's state, or `timeout`.
/// Returns whether they agreed.
async fn wait_quiescent(
    urls: &BTreeMap<String, String>,
    db: &Database,
    timeout: Duration,
) -> Result<bool> {
    let lister = Lister::new()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(pg) = db.final_state().await {
            let mut all = true;
            for url in urls.values() {
                let same = match lister.rows(url).await {
                    Some(rows) => rows == pg,
                    None => false,
                };
                all &= same;
            }
            if all {
                return Ok(true);
            }
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the history and writes the run directory.
fn finish(opts: &RunOpts, history: &History, phases: &Phases) -> Result<RunOutcome> {
    let postgres = phases.postgres_state.as_ref();
    let mut verdicts = vec![
        stats::check(history),
        list_append::check_with(history, &opts.workload.list_append_opts())?,
        convergence::list_append(history, postgres),
    ];
    verdicts.push(log_verdict(opts.workload, &phases.endpoint_logs)?);
    let mut stats = report::Stats::of(history, opts.time_limit);
    if let Some((agreed, took)) = phases.quiescence {
        stats.quiesced = Some(agreed);
        stats.quiesce_secs = Some(took.as_secs_f64());
    }
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

/// Checks a latest-era history and writes the run directory.
fn finish_mww(opts: &RunOpts, history: &History, phases: &mww::MwwPhases) -> Result<RunOutcome> {
    let verdicts = mww::verdicts(opts, history, phases)?;
    let mut stats = report::Stats::of(history, opts.time_limit);
    stats.barrier_secs = Some(phases.barrier.as_secs_f64());
    report::write_run(
        &opts.store,
        opts,
        history,
        &verdicts,
        &stats,
        serde_json::json!(phases.postgres_state),
    )?;
    Ok(RunOutcome {
        verdicts,
        stats,
        store: opts.store.clone(),
    })
}

/// The log check: `ERROR` (case-sensitive) in the endpoints' logs, or for `sqlite3-local`, as
/// the seed's `(?i)ERROR`, `error` in any case.
fn log_verdict(workload: Workload, paths: &[PathBuf]) -> Result<Verdict> {
    if !workload.log_case_insensitive() {
        let refs: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
        return Ok(logs::check_files(&refs, logs::SEED_PATTERNS)?);
    }
    let mut texts = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        texts.push((p.display().to_string(), text.to_lowercase()));
    }
    Ok(logs::check(
        texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        &["error"],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite3_logs_are_checked_in_any_case_and_the_others_for_upper_case_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("endpoint.log");
        std::fs::write(&log, "INFO ok\nWARN an Error happened\n").expect("write");
        let paths = [log];
        assert!(
            !log_verdict(Workload::Sqlite3Local, &paths)
                .expect("read")
                .is_valid()
        );
        assert!(
            log_verdict(Workload::PowersyncSingle, &paths)
                .expect("read")
                .is_valid()
        );
        std::fs::write(&paths[0], "ERROR boom\n").expect("write");
        assert!(
            !log_verdict(Workload::PowersyncSingle, &paths)
                .expect("read")
                .is_valid()
        );
    }
}
