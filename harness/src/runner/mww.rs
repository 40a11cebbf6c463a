//! One run of a latest-era workload (reference B.9–B.11): the `mww` table, endpoints started
//! with `--endpoint powersync` (PowerSync nodes) or `--endpoint postgresql` (the nodes in
//! `--postgres-nodes`, as the latest harness runs them), `readAll`/`writeSome` transactions,
//! the disconnect (and kill/pause) nemesis, the final barriers and one `r-final` read per client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use super::{RunOpts, Topology, core_path};
use crate::check::{Verdict, causal, convergence, logs, stats};
use crate::client::{MwwClient, MwwOutcome, db_api};
use crate::error::{Error, Result};
use crate::history::{History, Key, MwwMop, Op, OpType, Process, Value};
use crate::nemesis::{self, Targets};
use crate::recorder::Recorder;
use crate::topology::{Database, Endpoint, EndpointConfig, Standin};
use crate::workload::MwwGenerator;

/// How long each final barrier request (`uploadQueueWait`, `downloadingWait`) may take. The
/// reference sets no timeout; the endpoint itself gives up after 11 s of a stuck queue and 31
/// tries of `downloading`.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the mww phases leave for the checkers besides the history.
pub(super) struct MwwPhases {
    /// PostgreSQL's final `mww` state, read directly.
    pub postgres_state: BTreeMap<Key, i64>,
    /// The endpoints' logs.
    pub endpoint_logs: Vec<PathBuf>,
    /// How long the final barriers took.
    pub barrier: Duration,
}

/// Starts PostgreSQL (`mww`), the stand-in and the endpoints, and runs the phases.
pub(super) async fn phases(
    opts: &RunOpts,
    rec: Arc<Recorder>,
    slot: Arc<Mutex<Option<Topology>>>,
) -> Result<MwwPhases> {
    let key_count = opts.generator.key_count;
    let mut topo = Topology {
        database: None,
        standin: None,
        endpoints: Vec::new(),
    };
    let db = Database::start_mww(key_count).await?;
    let key = testkit::TestKey::primary();
    let standin = Standin::start(
        &opts.binaries.standin,
        &opts.store.join("standin"),
        &db.uri(),
        key.jwks(),
        "mww",
    )
    .await;
    topo.database = Some(db.clone());
    let standin = match standin {
        Ok(s) => s,
        Err(e) => {
            *slot.lock().await = Some(topo);
            return Err(e);
        }
    };
    let powersync_url = standin.url();
    topo.standin = Some(Arc::new(Mutex::new(standin)));
    let private = testkit::keys::primary_private_jwk()?.to_string();
    let jwk = base64::engine::general_purpose::STANDARD.encode(private);
    let powersync_lib = match &opts.core_version {
        Some(v) => Some(core_path(v)?),
        None => None,
    };
    let mut syncing = Vec::new();
    for name in &opts.nodes {
        let postgres = opts.postgres_nodes.contains(name);
        let mut env = Vec::new();
        if let (false, Some(mode)) = (postgres, &opts.test_broken_connector) {
            env.push(("ENDPOINT_TEST_BROKEN_CONNECTOR".to_owned(), mode.clone()));
        }
        let config = EndpointConfig {
            name: name.clone(),
            mode: "powersync".to_owned(),
            connector: opts.connector.clone(),
            powersync_url: (!postgres).then(|| powersync_url.clone()),
            pg_port: Some(db.port()),
            jwks_private_key: (!postgres).then(|| jwk.clone()),
            powersync_lib: powersync_lib.clone(),
            latest: Some((
                if postgres { "postgresql" } else { "powersync" }.to_owned(),
                key_count,
            )),
            env,
        };
        match Endpoint::start(
            &opts.binaries.endpoint,
            &opts.store.join(name.as_str()),
            config,
        )
        .await
        {
            Ok(e) => {
                if !postgres {
                    syncing.push((name.clone(), e.url()));
                }
                topo.endpoints.push(Arc::new(Mutex::new(e)));
            }
            Err(e) => {
                *slot.lock().await = Some(topo);
                return Err(e);
            }
        }
    }
    let (urls, log_paths) = super::urls_and_logs(&topo.endpoints).await;
    let targets = Targets {
        endpoints: topo.endpoints.clone(),
        standin: topo.standin.clone(),
        database: topo.database.clone(),
        syncing,
    };
    *slot.lock().await = Some(topo);
    targets.check(&opts.faults)?;

    // Main phase. A `--endpoint powersync` endpoint listens only after its first complete
    // sync, so no initial-sync wait is needed.
    let generator = Arc::new(MwwGenerator::new(key_count, opts.keys_txn));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = JoinSet::new();
    let deadline = tokio::time::Instant::now() + opts.time_limit;
    for i in 0..opts.concurrency {
        let node = opts.nodes[i % opts.nodes.len()].clone();
        let postgres = opts.postgres_nodes.contains(&node);
        let url = urls
            .get(&node)
            .ok_or_else(|| Error::Options(format!("no endpoint for node {node}")))?;
        let mut worker = MwwWorker {
            process: i as u64,
            concurrency: opts.concurrency as u64,
            client: MwwClient::new(url)?,
            writes: opts.workload.mww_writes(postgres),
            node,
        };
        let rec = Arc::clone(&rec);
        let generator = Arc::clone(&generator);
        let seed = opts.seed.wrapping_add(i as u64);
        let mean_gap = opts.concurrency as f64 / opts.rate;
        clients.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut next_at = tokio::time::Instant::now();
            loop {
                next_at += Duration::from_secs_f64(rng.f64() * 2.0 * mean_gap);
                next_at = next_at.max(tokio::time::Instant::now());
                if next_at >= deadline {
                    break;
                }
                tokio::time::sleep_until(next_at).await;
                let mops = generator.next(worker.writes, &mut rng);
                worker.invoke(&rec, "txn", mops, false).await;
            }
            worker
        });
    }
    let workers = super::main_phase(clients, targets.clone(), opts, &rec, stop_tx, stop_rx).await?;

    // Final nemesis: connect every PowerSync node (after a random connect some may still be
    // disconnected), then the barriers: empty upload queues on every node, then downloading
    // false on every node. Each is recorded as a nemesis operation, an error when the
    // endpoint did not answer as expected.
    let started = Instant::now();
    if opts.faults.iter().any(|f| f.is_disconnect()) {
        nemesis::connect_all(&targets, &rec).await;
    }
    for (name, url) in &targets.syncing {
        let r = db_api(url, "uploadQueueWait", BARRIER_TIMEOUT).await;
        let error = match r {
            Ok(v)
                if v.get("db.uploadQueueStats.count").and_then(|c| c.as_str())
                    == Some("queue-empty") =>
            {
                None
            }
            Ok(v) => Some(format!("unexpected answer {v}")),
            Err(e) => Some(e),
        };
        rec.nemesis("upload-queue-wait", Some(name), error);
    }
    for (name, url) in &targets.syncing {
        let r = db_api(url, "downloadingWait", BARRIER_TIMEOUT).await;
        let error = match r {
            Ok(v) if v.get("db.SyncStatus.downloading:") == Some(&serde_json::json!(false)) => None,
            Ok(v) => Some(format!("unexpected answer {v}")),
            Err(e) => Some(e),
        };
        rec.nemesis("downloading-wait", Some(name), error);
    }
    let barrier = started.elapsed();
    // The reference's "Quiesce 3s": `downloading` can be false just before the last
    // checkpoint arrives.
    tokio::time::sleep(opts.final_quiesce).await;

    // One final read per client thread, then PostgreSQL's state read directly.
    let mut finals = JoinSet::new();
    for mut w in workers {
        let rec = Arc::clone(&rec);
        finals.spawn(async move {
            w.invoke(&rec, "r-final", MwwGenerator::final_read(), true)
                .await;
        });
    }
    while let Some(r) = finals.join_next().await {
        r.map_err(|e| Error::Task(e.to_string()))?;
    }
    let postgres_state = db.mww_state().await?;
    Ok(MwwPhases {
        postgres_state,
        endpoint_logs: log_paths,
        barrier,
    })
}

/// One client thread of a latest-era run.
struct MwwWorker {
    process: u64,
    concurrency: u64,
    node: String,
    writes: bool,
    client: MwwClient,
}

impl MwwWorker {
    async fn invoke(&mut self, rec: &Recorder, f: &str, mops: Vec<MwwMop>, final_read: bool) {
        let op = |op_type, value, error| Op {
            index: 0,
            time: 0,
            op_type,
            process: Process::Client(self.process),
            f: f.to_owned(),
            value: Value::Mww(value),
            node: Some(self.node.clone()),
            final_read,
            error,
        };
        rec.record(op(OpType::Invoke, mops.clone(), None));
        match self.client.txn(f, &mops).await {
            MwwOutcome::Ok(done) => rec.record(op(OpType::Ok, done, None)),
            MwwOutcome::Fail(e) => rec.record(op(OpType::Fail, mops, Some(e))),
            MwwOutcome::Info(e) => {
                rec.record(op(OpType::Info, mops, Some(e)));
                self.process += self.concurrency;
            }
        }
    }
}

/// The verdicts of a latest-era run: stats, causal consistency (all but `convergence`),
/// strong convergence of the final reads against PostgreSQL's state, and the latest log check
/// (`SEVERE` or `ERROR`).
pub(super) fn verdicts(
    opts: &RunOpts,
    history: &History,
    phases: &MwwPhases,
) -> Result<Vec<Verdict>> {
    let mut verdicts = vec![stats::check(history)];
    if opts.workload.mww_causal() {
        let key_count = usize::try_from(opts.generator.key_count).ok();
        verdicts.push(causal::check(history, &causal::Opts { key_count }));
    }
    verdicts.push(convergence::mww(history, Some(&phases.postgres_state)));
    let refs: Vec<&std::path::Path> = phases.endpoint_logs.iter().map(PathBuf::as_path).collect();
    verdicts.push(logs::check_files(&refs, logs::LATEST_PATTERNS)?);
    Ok(verdicts)
}
