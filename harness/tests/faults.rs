//! The endpoint faults bite: each is shown to change what the endpoints do, against real
//! endpoint processes (and, where the fault needs sync, a real PostgreSQL and the stand-in).
//!
//! - kill with `--nemesis-targets all` leaves no endpoint process alive until the recovery,
//!   `one` and `majority` exactly as many as Jepsen's `db-nodes` names, and a run under it
//!   still ends valid;
//! - stop-start stops the process with its database closed (seed era: SIGTERM and "shut down
//!   cleanly"; latest era: `GET /db-api/close`) and the restarted endpoint reads back the writes
//!   made before;
//! - a clock bump moves the node's `status.lastSyncedAt` by the bump, the reset moves it back.
//!
//! Needs the `powersync_endpoint` and `standin` binaries in the same target directory
//! (`cargo build -p endpoint -p standin`), PostgreSQL's server binaries, the vendored cores and
//! libfaketime (Debian's `faketime`, installed by scripts/setup). The tests run one at a time:
//! each starts several processes and the CI machine has two cores.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use common::{binaries, seed_config};
use harness::client::{EndpointClient, Outcome};
use harness::history::{ListAppendMop, NodeResult, Op, Value};
use harness::model::Lww;
use harness::nemesis::{ClockOpts, Fault, Plan, TargetSpec, Targets};
use harness::recorder::Recorder;
use harness::runner::{self, CheckerOpts, Era, LatestOpts, RunOpts, RunOutcome};
use harness::topology::{self, Database, Endpoint, EndpointConfig, Isolation, Standin};
use harness::workload::Workload;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// `n` sqlite3-local endpoints `n1..` in `dir` (each killed when dropped).
async fn local_endpoints(dir: &Path, n: usize) -> Vec<Arc<Mutex<Endpoint>>> {
    let bin = binaries().endpoint;
    let mut out = Vec::new();
    for i in 1..=n {
        let name = format!("n{i}");
        let e = Endpoint::start(
            &bin,
            &dir.join(&name),
            seed_config(&name, endpoint::Mode::Sqlite3Local),
        )
        .await
        .expect("endpoint starts");
        out.push(Arc::new(Mutex::new(e)));
    }
    out
}

fn endpoint_targets(endpoints: &[Arc<Mutex<Endpoint>>]) -> Targets {
    Targets {
        endpoints: endpoints.to_vec(),
        standin: None,
        database: None,
        syncing: Vec::new(),
    }
}

fn plan(fault: Fault, spec: TargetSpec) -> Plan {
    Plan {
        faults: vec![fault],
        targets: vec![spec],
        interval: Duration::from_secs(1),
        seed: 1,
        clock: ClockOpts::default(),
    }
}

/// The state letter of process `pid` in `/proc/<pid>/stat` (`R`, `S`, `T` stopped, `Z`), if it
/// exists.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// Whether process `pid` exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|s| s != 'Z')
}

fn nodes(pairs: &[(&str, NodeResult)]) -> Value {
    Value::Nodes(
        pairs
            .iter()
            .map(|(n, r)| ((*n).to_owned(), r.clone()))
            .collect(),
    )
}

fn kw(k: &str) -> NodeResult {
    NodeResult::Keyword(k.into())
}

/// The nemesis operations recorded.
fn nemesis_ops(rec: &Recorder) -> Vec<Op> {
    rec.history()
        .ops
        .into_iter()
        .filter(|op| op.client().is_none())
        .collect()
}

async fn pids(endpoints: &[Arc<Mutex<Endpoint>>]) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    for e in endpoints {
        out.push(e.lock().await.pid());
    }
    out
}

/// Kill on the nodes `spec` names: how many of the original processes died; checks that
/// every dead node refuses connections until the recovery, and that the recovery starts
/// exactly those again.
async fn kill_and_recover(spec: TargetSpec, n: usize) -> (usize, Vec<Op>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoints = local_endpoints(dir.path(), n).await;
    let targets = endpoint_targets(&endpoints);
    let before = pids(&endpoints).await;
    assert!(before.iter().all(|p| p.is_some_and(alive)), "{before:?}");
    let rec = Recorder::new();
    let mut rng = fastrand::Rng::with_seed(3);
    let plan = plan(Fault::Kill, spec);
    let active = targets
        .start(Fault::Kill, &plan, &mut rng, &rec)
        .await
        .expect("a kill to heal");
    let mut killed = 0;
    for (e, pid) in endpoints.iter().zip(&before) {
        let pid = pid.expect("pid");
        let mut e = e.lock().await;
        if alive(pid) {
            assert!(e.is_running(), "{} runs", e.name());
            continue;
        }
        killed += 1;
        assert_eq!(e.pid(), None, "{}", e.name());
        let port = e
            .url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        let refused = std::net::TcpStream::connect(("127.0.0.1", port.expect("port"))).is_err();
        assert!(refused, "{} still listens while killed", e.name());
    }
    targets.heal(active, &mut rng, &rec).await;
    let after = pids(&endpoints).await;
    assert!(after.iter().all(|p| p.is_some_and(alive)), "{after:?}");
    let restarted = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert_eq!(
        restarted, killed,
        "the recovery restarts exactly the killed nodes"
    );
    (killed, nemesis_ops(&rec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_leaves_no_endpoint_process_alive_until_the_recovery() {
    let _serial = SERIAL.lock().await;
    let (killed, ops) = kill_and_recover(TargetSpec::All, 3).await;
    assert_eq!(killed, 3);
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert_eq!((ops[0].f.as_str(), ops[1].f.as_str()), ("kill", "start"));
    let all = |result: &str| nodes(&[("n1", kw(result)), ("n2", kw(result)), ("n3", kw(result))]);
    assert_eq!(ops[0].value, all("killed"));
    assert_eq!(ops[1].value, all("started"));
    assert!(ops.iter().all(|op| op.error.is_none() && op.node.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_and_majority_kill_as_many_as_jepsen_names() {
    let _serial = SERIAL.lock().await;
    let (killed, ops) = kill_and_recover(TargetSpec::One, 3).await;
    assert_eq!(killed, 1);
    // One node: `:node` names it too.
    let Value::Nodes(hit) = &ops[0].value else {
        panic!("{ops:?}")
    };
    assert_eq!(hit.len(), 1);
    assert_eq!(ops[0].node.as_ref(), hit.keys().next());
    let (killed, ops) = kill_and_recover(TargetSpec::Majority, 3).await;
    assert_eq!(killed, 2);
    assert!(
        matches!(&ops[1].value, Value::Nodes(m) if m.len() == 2),
        "{ops:?}"
    );
}

fn append(key: i64, element: i64) -> ListAppendMop {
    ListAppendMop::Append { key, element }
}

fn read(key: i64) -> ListAppendMop {
    ListAppendMop::Read { key, list: None }
}

/// Stop-start on a seed-era sqlite3-local node: the endpoint is stopped with SIGTERM (it logs
/// a clean shutdown), refuses requests while stopped, and after the recovery reads back the
/// appends made before the fault: the same database was reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_closes_the_database_and_reopens_the_same_one() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoints = local_endpoints(dir.path(), 1).await;
    let url = endpoints[0].lock().await.url();
    let client = EndpointClient::<Lww>::new(&url).expect("client");
    for x in 1..=3 {
        let r = client.txn("txn", &[append(7, x)]).await;
        assert!(matches!(r, Outcome::Ok(_)), "{r:?}");
    }
    let targets = endpoint_targets(&endpoints);
    let rec = Recorder::new();
    let mut rng = fastrand::Rng::with_seed(1);
    let plan = plan(Fault::StopStart, TargetSpec::All);
    let active = targets
        .start(Fault::StopStart, &plan, &mut rng, &rec)
        .await
        .expect("a stop to heal");
    assert_eq!(endpoints[0].lock().await.pid(), None);
    let r = client.txn("txn", &[read(7)]).await;
    assert!(
        matches!(r, Outcome::Fail(ref e) if e == "connection-refused"),
        "{r:?}"
    );
    let log = std::fs::read_to_string(endpoints[0].lock().await.log_path()).expect("log");
    assert!(
        log.contains("SIGTERM received") && log.contains("shut down cleanly"),
        "a clean close on SIGTERM:\n{log}"
    );
    targets.heal(active, &mut rng, &rec).await;
    let r = client.txn("txn", &[read(7)]).await;
    let Outcome::Ok(done) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        done,
        vec![ListAppendMop::Read {
            key: 7,
            list: Some(vec![1, 2, 3])
        }],
        "the appends made before the stop are read back"
    );
    let ops = nemesis_ops(&rec);
    let fs: Vec<&str> = ops.iter().map(|op| op.f.as_str()).collect();
    assert_eq!(fs, ["stop-nodes", "start-nodes"]);
    assert_eq!(ops[0].value, nodes(&[("n1", kw("stopped"))]));
    assert!(ops.iter().all(|op| op.error.is_none()), "{ops:?}");
}

/// PostgreSQL, the stand-in and one seed-era `powersync` endpoint under libfaketime.
struct Synced {
    endpoint: Arc<Mutex<Endpoint>>,
    _standin: Standin,
    _database: Database,
    _dir: tempfile::TempDir,
}

async fn synced_under_faketime() -> Synced {
    let dir = tempfile::tempdir().expect("temp dir");
    let bins = binaries();
    let services = common::sync_services(dir.path()).await;
    let config = EndpointConfig {
        powersync_url: Some(services.standin.url()),
        pg_port: Some(services.database.port()),
        jwks_private_key: Some(services.jwks_private_key),
        ..seed_config("n1", endpoint::Mode::Powersync)
    };
    let faketime = topology::faketime_lib().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = Endpoint::start_isolated(
        &bins.endpoint,
        &dir.path().join("n1"),
        config,
        Isolation {
            faketime: Some(faketime),
            network: None,
            lazyfs: false,
        },
    )
    .await
    .expect("endpoint starts");
    Synced {
        endpoint: Arc::new(Mutex::new(endpoint)),
        _standin: services.standin,
        _database: services.database,
        _dir: dir,
    }
}

/// `status.lastSyncedAt` of `GET /powersync`.
async fn last_synced_at(url: &str) -> Option<SystemTime> {
    let status: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .ok()?
        .get(format!("{url}/powersync"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    humantime::parse_rfc3339(status["status.lastSyncedAt"].as_str()?).ok()
}

/// How far `t` is from the true time now, in seconds (positive: ahead).
fn skew(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}

/// Appends through the endpoint (each upload brings a new checkpoint down) until its
/// `lastSyncedAt` is `want` seconds from the true time, give or take `slack`; returns the skew
/// seen.
async fn synced_with_skew(
    client: &EndpointClient<Lww>,
    url: &str,
    element: &AtomicI64,
    want: f64,
    slack: f64,
) -> f64 {
    testkit::eventually_async(
        format!("lastSyncedAt {want} s from the true time"),
        Duration::from_secs(30),
        || async move {
            let x = element.fetch_add(1, Ordering::Relaxed);
            let _ = client.txn("txn", &[append(1, x)]).await;
            let s = skew(last_synced_at(url).await?);
            ((s - want).abs() <= slack).then_some(s)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A clock bump moves the synced node's `status.lastSyncedAt` (the core stamps each completed
/// checkpoint with the wall clock) by the bump; the reset brings it back to the true time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_bump_shows_in_last_synced_at_and_the_reset_undoes_it() {
    let _serial = SERIAL.lock().await;
    let synced = synced_under_faketime().await;
    let url = synced.endpoint.lock().await.url();
    let client = EndpointClient::<Lww>::new(&url).expect("client");
    let element = AtomicI64::new(1);
    // Before the fault: true time.
    synced_with_skew(&client, &url, &element, 0.0, 5.0).await;
    let targets = endpoint_targets(std::slice::from_ref(&synced.endpoint));
    let rec = Recorder::new();
    let mut rng = fastrand::Rng::with_seed(1);
    let plan = plan(Fault::ClockBump, TargetSpec::All);
    let bump = plan.clock.bump_ms as f64 / 1000.0;
    let active = targets
        .start(Fault::ClockBump, &plan, &mut rng, &rec)
        .await
        .expect("a bump to reset");
    let seen = synced_with_skew(&client, &url, &element, bump, 5.0).await;
    assert!(seen > bump / 2.0, "{seen}");
    targets.heal(active, &mut rng, &rec).await;
    synced_with_skew(&client, &url, &element, 0.0, 5.0).await;
    // A strobe: checkpoints stamped on both sides of the flip, 10 s ahead and true time.
    let strobe = plan.clock.strobe_ms as f64 / 1000.0;
    let active = targets
        .start(Fault::ClockStrobe, &plan, &mut rng, &rec)
        .await
        .expect("a strobe to reset");
    synced_with_skew(&client, &url, &element, strobe, 2.0).await;
    synced_with_skew(&client, &url, &element, 0.0, 2.0).await;
    synced_with_skew(&client, &url, &element, strobe, 2.0).await;
    targets.heal(active, &mut rng, &rec).await;
    let ops = nemesis_ops(&rec);
    let fs: Vec<&str> = ops.iter().map(|op| op.f.as_str()).collect();
    assert_eq!(
        fs,
        ["bump-clock", "reset-clock", "strobe-clock", "reset-clock"]
    );
    let offset = |ms| nodes(&[("n1", NodeResult::Int(ms))]);
    assert_eq!(ops[0].value, offset(plan.clock.bump_ms));
    assert_eq!(ops[1].value, offset(0));
    assert_eq!(ops[2].value, offset(plan.clock.strobe_ms));
    assert_eq!(ops[3].value, offset(0));
    // The reset stopped the strobe: the clock stays at true time.
    let clock = synced.endpoint.lock().await.clock().expect("clock");
    for _ in 0..3 {
        tokio::time::sleep(plan.clock.strobe_period).await;
        let text = std::fs::read_to_string(clock.path()).expect("clock file");
        assert_eq!(text.trim(), "+0.000");
    }
    // libfaketime's shared memory and semaphore of the process, which it removes only on a
    // normal exit, go with a killed endpoint.
    let mut endpoint = synced.endpoint.lock().await;
    let pid = endpoint.pid().expect("running");
    let left = [
        format!("/dev/shm/faketime_shm_{pid}"),
        format!("/dev/shm/sem.faketime_sem_{pid}"),
    ];
    for path in &left {
        assert!(
            std::path::Path::new(path).exists(),
            "libfaketime made {path}"
        );
    }
    endpoint.kill();
    for path in &left {
        assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    }
}

/// Pause with target `all`: every endpoint process is stopped (state `T`) and a request times
/// out until the recovery resumes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_all_stops_every_endpoint_process_until_the_recovery() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoints = local_endpoints(dir.path(), 2).await;
    let targets = endpoint_targets(&endpoints);
    let rec = Recorder::new();
    let mut rng = fastrand::Rng::with_seed(1);
    let plan = plan(Fault::Pause, TargetSpec::All);
    let pids: Vec<u32> = pids(&endpoints).await.into_iter().flatten().collect();
    assert_eq!(pids.len(), 2);
    let active = targets
        .start(Fault::Pause, &plan, &mut rng, &rec)
        .await
        .expect("a pause to heal");
    for &pid in &pids {
        testkit::eventually(format!("{pid} stopped"), Duration::from_secs(5), || {
            process_state(pid) == Some('T')
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let url = endpoints[0].lock().await.url();
    let client =
        EndpointClient::<Lww>::with_timeout(&url, Duration::from_millis(300)).expect("client");
    let r = client.txn("txn", &[read(1)]).await;
    assert!(matches!(r, Outcome::Info(ref e) if e == "timeout"), "{r:?}");
    targets.heal(active, &mut rng, &rec).await;
    for &pid in &pids {
        assert_ne!(process_state(pid), Some('T'), "{pid} resumed");
    }
    let client = EndpointClient::<Lww>::new(&url).expect("client");
    let r = client.txn("txn", &[read(1)]).await;
    assert!(matches!(r, Outcome::Ok(_)), "{r:?}");
    let ops = nemesis_ops(&rec);
    let fs: Vec<&str> = ops.iter().map(|op| op.f.as_str()).collect();
    assert_eq!(fs, ["pause", "resume"]);
    assert_eq!(
        ops[0].value,
        nodes(&[("n1", kw("paused")), ("n2", kw("paused"))])
    );
}

/// A short latest-era run's options under `faults` on `targets`: n1 a PostgreSQL node, n2 and
/// n3 PowerSync nodes, a fault every second.
fn latest_opts(faults: &[Fault], targets: &[TargetSpec], store: &Path) -> RunOpts {
    RunOpts {
        workload: Workload::PsRwPgRw,
        era: Era::Latest(LatestOpts {
            keys_txn: 4,
            final_quiesce: Duration::from_secs(3),
            test_broken_connector: None,
        }),
        rate: 20.0,
        time_limit: Duration::from_secs(6),
        nodes: vec!["n1".into(), "n2".into(), "n3".into()],
        postgres_nodes: vec!["n1".into()],
        concurrency: 3,
        connector: endpoint::BackendConnector::Transaction,
        failure_policy: endpoint::FailurePolicy::Forgiving,
        synchronous: endpoint::Durability::Full,
        core_version: None,
        faults: faults.to_vec(),
        nemesis_targets: targets.to_vec(),
        clock: ClockOpts::default(),
        nemesis_interval: Duration::from_secs(1),
        seed: 4,
        key_count: runner::ENDPOINT_KEYS,
        store: store.to_path_buf(),
        binaries: binaries(),
        progress: false,
        client_timeout: None,
        checker: CheckerOpts::default(),
        link_latency: Duration::from_micros(500),
    }
}

/// Runs [`latest_opts`].
async fn latest_run(faults: &[Fault], targets: &[TargetSpec]) -> (RunOutcome, tempfile::TempDir) {
    let store = tempfile::tempdir().expect("temp dir");
    let opts = latest_opts(faults, targets, store.path());
    let outcome = runner::run(&opts).await.unwrap_or_else(|e| panic!("{e}"));
    (outcome, store)
}

/// A target spec that names no endpoint, or a clock fault that moves nothing, is refused
/// before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_would_change_nothing_are_refused() {
    let store = tempfile::tempdir().expect("temp dir");
    let mut opts = latest_opts(&[Fault::StopStart], &[TargetSpec::Minority], store.path());
    // One PowerSync node: its minority is empty.
    opts.nodes.truncate(2);
    opts.concurrency = 2;
    let mut zero_bump = latest_opts(&[Fault::ClockBump], &[TargetSpec::All], store.path());
    zero_bump.clock.bump_ms = 0;
    // Fewer than four endpoints: strictly less than a third of them is none.
    let third = latest_opts(
        &[Fault::Kill],
        &[TargetSpec::One, TargetSpec::MinorityThird],
        store.path(),
    );
    for (opts, says) in [
        (opts, "names none of the 1"),
        (zero_bump, "must not be 0"),
        (third, "with --nemesis-targets minority-third names none"),
    ] {
        let err = runner::run(&opts).await.expect_err("refused");
        assert!(matches!(err, harness::Error::Options(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    let started = std::fs::read_dir(store.path()).expect("store").count();
    assert_eq!(started, 0, "nothing was started");
}

/// The run's nemesis operations, from its stored history.
fn stored_nemesis_ops(store: &Path) -> Vec<Op> {
    let text = std::fs::read_to_string(store.join("history.jsonl")).expect("history");
    harness::History::parse(&text)
        .expect("history parses")
        .ops
        .into_iter()
        .filter(|op| op.client().is_none())
        .collect()
}

fn verdicts(outcome: &RunOutcome) -> String {
    outcome
        .verdicts
        .iter()
        .map(|v| format!("{} {:?} {:?}", v.checker, v.valid, v.anomaly_types))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The targets of every operation `f`.
fn hit(ops: &[Op], f: &str) -> Vec<Vec<String>> {
    ops.iter()
        .filter(|op| op.f == f)
        .map(|op| match &op.value {
            Value::Nodes(m) => m.keys().cloned().collect(),
            other => panic!("{f} without nodes: {other:?}"),
        })
        .collect()
}

/// A latest-era run under `fault` on targets `all` that ends valid, each `start_f` operation
/// naming exactly `nodes` and followed by a `heal_f` on the same nodes, without errors.
async fn valid_run_hitting(
    fault: Fault,
    (start_f, heal_f): (&str, &str),
    nodes: &[&str],
) -> tempfile::TempDir {
    let (outcome, store) = latest_run(&[fault], &[TargetSpec::All]).await;
    assert!(outcome.valid(), "{}", verdicts(&outcome));
    let ops = stored_nemesis_ops(store.path());
    let faults = hit(&ops, start_f);
    assert!(!faults.is_empty(), "{ops:?}");
    assert!(faults.iter().all(|k| k == nodes), "{faults:?}");
    assert_eq!(
        faults,
        hit(&ops, heal_f),
        "each recovery heals what the fault hit"
    );
    assert!(ops.iter().all(|op| op.error.is_none()), "{ops:?}");
    store
}

/// With targets `all`, every kill takes down every endpoint (the PostgreSQL node's too, as
/// Jepsen's db nemesis acts on every node), and the run still ends valid after the recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_under_kill_all_ends_valid() {
    let _serial = SERIAL.lock().await;
    valid_run_hitting(Fault::Kill, ("kill", "start"), &["n1", "n2", "n3"]).await;
}

/// Latest-era stop-start closes the PowerSync nodes' databases through `GET /db-api/close`
/// (never the PostgreSQL node: it has none), and the run ends valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_era_run_under_stop_start_closes_through_the_db_api_and_ends_valid() {
    let _serial = SERIAL.lock().await;
    let store = valid_run_hitting(
        Fault::StopStart,
        ("stop-nodes", "start-nodes"),
        &["n2", "n3"],
    )
    .await;
    let stops = hit(&stored_nemesis_ops(store.path()), "stop-nodes").len();
    for node in ["n2", "n3"] {
        let log =
            std::fs::read_to_string(store.path().join(node).join("endpoint.log")).expect("log");
        let closes = log.matches("db-api close: {\"db\":\"closed\"}").count();
        assert_eq!(closes, stops, "{node}: one close per stop");
    }
}

/// In the latest era a clock bump bites hard: the reset sets the wall clock back, the next
/// checkpoint's `lastSyncedAt` is older than the one stamped during the bump, and the endpoint's
/// status monitor (the Dart endpoint's: SEVERE and exit 10) stops the node, so the run is
/// invalid (no final read there). Jepsen's clock nemesis does the same to the Dart endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_era_clock_bump_trips_the_last_synced_at_monitor() {
    let _serial = SERIAL.lock().await;
    let (outcome, store) = latest_run(&[Fault::ClockBump], &[TargetSpec::All]).await;
    assert!(!outcome.valid(), "{}", verdicts(&outcome));
    let log = std::fs::read_to_string(store.path().join("n2").join("endpoint.log")).expect("log");
    assert!(
        log.contains("SyncStatus.lastSyncedAt went back in time"),
        "n2:\n{log}"
    );
    let ops = stored_nemesis_ops(store.path());
    assert_eq!(hit(&ops, "bump-clock")[0], ["n1", "n2", "n3"]);
}

/// The upload-queue nemesis reads every PowerSync node's queue count (never the PostgreSQL
/// node's) on its own schedule, one `upload-queue-count` operation each time mapping each node
/// to the count its endpoint answered, and the run ends valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_queue_nemesis_records_each_powersync_nodes_count() {
    let _serial = SERIAL.lock().await;
    let (outcome, store) = latest_run(&[Fault::UploadQueue], &[TargetSpec::One]).await;
    assert!(outcome.valid(), "{}", verdicts(&outcome));
    let ops = stored_nemesis_ops(store.path());
    let counts: Vec<_> = ops
        .iter()
        .filter(|op| op.f == "upload-queue-count")
        .collect();
    assert!(counts.len() >= 3, "one per second for 6 s: {ops:?}");
    for op in counts {
        let Value::Nodes(m) = &op.value else {
            panic!("upload-queue-count without nodes: {op:?}");
        };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["n2", "n3"], "{op:?}");
        assert!(
            m.values()
                .all(|c| matches!(c, NodeResult::Int(n) if *n >= 0)),
            "{op:?}"
        );
        assert!(op.error.is_none(), "{op:?}");
    }
}
