//! The latest era's model (jepsen-powersync at `b77a3d0`): the max-write-wins `mww` table, every
//! node an endpoint (`--endpoint powersync`, or `--endpoint postgresql` for the nodes in
//! `--postgres-nodes`, as the latest harness runs them), `readAll`/`writeSome` transactions,
//! the final barriers and one `r-final` read per client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{ClientTarget, Common, Model, Settled, Started};
use crate::check::{Verdict, causal, convergence, logs, stats};
use crate::client::{EndpointClient, MWW_CLIENT_TIMEOUT, Outcome, db_api};
use crate::error::{Error, Result};
use crate::history::{History, Key, MwwMop, OpType, Value, wire};
use crate::nemesis;
use crate::recorder::Recorder;
use crate::runner::{LatestOpts, RunOpts};
use crate::topology::{EndpointConfig, Schema};
use crate::workload::{MwwGenerator, Workload};

/// How long each final barrier request (`uploadQueueWait`, `downloadingWait`) may take. The
/// reference sets no timeout; the endpoint itself gives up after 11 s of a stuck queue and 31
/// tries of `downloading`.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(60);

/// The latest era's max-write-wins model.
#[derive(Debug)]
pub struct Mww;

impl Model for Mww {
    type Mop = MwwMop;
    type Value = i64;
    type Opts = LatestOpts;
    /// Whether the client writes.
    type Role = bool;
    type Generator = MwwGenerator;
    type Client = EndpointClient<Mww>;

    const STANDIN: &'static str = "mww";
    const SCHEMA: Schema = Schema {
        table: "mww",
        // Reference B.6, `init-scripts/migrations.sql`: `id` is the key as text, `v = -1`
        // means never written.
        create: "CREATE TABLE IF NOT EXISTS public.mww (
    id TEXT NOT NULL,
    k INTEGER NOT NULL UNIQUE,
    v INTEGER NOT NULL,
    CONSTRAINT mww_pkey PRIMARY KEY (id)
)",
        seed: "INSERT INTO mww (id, k, v) SELECT k::text, k, -1 FROM generate_series(0, $1 - 1) AS k",
    };
    const CLIENT_TIMEOUT: Duration = MWW_CLIENT_TIMEOUT;
    const DB_API: bool = true;

    fn value(mops: Vec<MwwMop>) -> Value {
        Value::Mww(mops)
    }

    fn request(f: &str, mops: &[MwwMop]) -> Json {
        wire::mww_request(f, mops)
    }

    fn response(text: &str, asked: &[MwwMop]) -> Outcome<MwwMop> {
        match wire::mww_response(text) {
            Ok((OpType::Ok, done)) if mww_answers(asked, &done) => Outcome::Ok(done),
            Ok((OpType::Fail, _)) => Outcome::Fail(format!("endpoint: {}", text.trim())),
            Ok(_) => Outcome::Info(format!("response does not match the request: {text}")),
            Err(e) => Outcome::Info(format!("undecodable response: {e}")),
        }
    }

    fn parse_value(text: &str) -> Result<i64> {
        text.trim()
            .parse()
            .map_err(|_| Error::Wire(format!("stored mww value {text:?} is not an integer")))
    }

    fn endpoint(
        opts: &RunOpts,
        era: &LatestOpts,
        node: &str,
        postgres: bool,
        common: &Common,
    ) -> Option<EndpointConfig> {
        let mut env = Vec::new();
        if let (false, Some(mode)) = (postgres, &era.test_broken_connector) {
            env.push(("ENDPOINT_TEST_BROKEN_CONNECTOR".to_owned(), mode.clone()));
        }
        Some(EndpointConfig {
            name: node.to_owned(),
            mode: endpoint::Mode::Powersync,
            connector: opts.connector,
            failure_policy: opts.failure_policy,
            synchronous: opts.synchronous,
            powersync_url: common.powersync_url.clone().filter(|_| !postgres),
            pg_host: std::net::Ipv4Addr::LOCALHOST,
            pg_port: common.pg_port,
            jwks_private_key: common.jwks_private_key.clone().filter(|_| !postgres),
            powersync_lib: common.powersync_lib.clone(),
            latest: Some((
                if postgres {
                    endpoint::LatestEndpoint::Postgresql
                } else {
                    endpoint::LatestEndpoint::Powersync
                },
                opts.key_count,
            )),
            env,
        })
    }

    /// A `--endpoint powersync` endpoint listens only after its first complete sync, so no
    /// initial-sync wait is needed.
    async fn after_start(_opts: &RunOpts, _started: &Started) -> Result<()> {
        Ok(())
    }

    fn generator(opts: &RunOpts, era: &LatestOpts) -> MwwGenerator {
        MwwGenerator::new(opts.key_count, era.keys_txn)
    }

    fn role(workload: Workload, postgres: bool) -> bool {
        workload.mww_writes(postgres)
    }

    fn next(
        generator: &MwwGenerator,
        writes: bool,
        rng: &mut fastrand::Rng,
    ) -> (&'static str, Vec<MwwMop>) {
        ("txn", generator.next(writes, rng))
    }

    fn client(target: &ClientTarget<'_>) -> Result<EndpointClient<Mww>> {
        EndpointClient::with_timeout(target.url()?, target.timeout)
    }

    async fn txn(client: &mut EndpointClient<Mww>, f: &str, mops: &[MwwMop]) -> Outcome<MwwMop> {
        client.txn(f, mops).await
    }

    /// The final nemesis: connect every PowerSync node (after a random connect some may still
    /// be disconnected), then the barriers: empty upload queues on every node, then
    /// downloading false on every node. Each is recorded as a nemesis operation, an error when
    /// the endpoint did not answer as expected. Then the reference's "Quiesce 3s":
    /// `downloading` can be false just before the last checkpoint arrives.
    async fn settle(
        opts: &RunOpts,
        era: &LatestOpts,
        started: &Started,
        rec: &Recorder,
    ) -> Result<Settled> {
        let t0 = Instant::now();
        let targets = &started.targets;
        if opts.faults.iter().any(|f| f.is_disconnect()) {
            nemesis::connect_all(targets, rec).await;
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
                Ok(v) if v.get("db.SyncStatus.downloading:") == Some(&serde_json::json!(false)) => {
                    None
                }
                Ok(v) => Some(format!("unexpected answer {v}")),
                Err(e) => Some(e),
            };
            rec.nemesis("downloading-wait", Some(name), error);
        }
        let barrier = t0.elapsed();
        tokio::time::sleep(era.final_quiesce).await;
        Ok(Settled::Barriers(barrier))
    }

    /// One `readAll` per client.
    fn final_reads(_opts: &RunOpts) -> Vec<Vec<MwwMop>> {
        vec![MwwGenerator::final_read()]
    }

    /// Stats, causal consistency (all but `convergence`), strong convergence of the final
    /// reads against PostgreSQL's state, and the latest log check (`SEVERE` or `ERROR`).
    fn verdicts(
        opts: &RunOpts,
        history: &History,
        postgres: Option<&BTreeMap<Key, i64>>,
        endpoint_logs: &[PathBuf],
    ) -> Result<Vec<Verdict>> {
        let mut verdicts = vec![stats::check(history)];
        if opts.workload.mww_causal() {
            let key_count = usize::try_from(opts.key_count).ok();
            verdicts.push(causal::check(history, &causal::Opts { key_count }));
        }
        verdicts.push(convergence::mww(history, postgres));
        let refs: Vec<&Path> = endpoint_logs.iter().map(PathBuf::as_path).collect();
        verdicts.push(logs::check_files(&refs, logs::LATEST_PATTERNS)?);
        Ok(verdicts)
    }
}

/// Whether `got` answers `asked`: `[readAll, writeSome]` with the writes a subset of the ones
/// asked for (the endpoint drops writes below the value it read).
fn mww_answers(asked: &[MwwMop], got: &[MwwMop]) -> bool {
    match (asked, got) {
        (
            [MwwMop::ReadAll(_), MwwMop::WriteSome(want)],
            [MwwMop::ReadAll(_), MwwMop::WriteSome(done)],
        ) => done.iter().all(|(k, v)| want.get(k) == Some(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(writes: &[(Key, i64)]) -> Vec<MwwMop> {
        vec![
            MwwMop::ReadAll([(0, -1), (1, 5)].into_iter().collect()),
            MwwMop::WriteSome(writes.iter().copied().collect()),
        ]
    }

    #[test]
    fn an_mww_reply_answers_when_its_writes_are_a_subset_of_the_request() {
        let asked = txn(&[(0, 7), (1, 7)]);
        assert!(mww_answers(&asked, &txn(&[(0, 7), (1, 7)])));
        // The endpoint dropped the write below what it read.
        assert!(mww_answers(&asked, &txn(&[(0, 7)])));
        assert!(mww_answers(&asked, &txn(&[])));
        // A write not asked for, or of another value, or another shape.
        assert!(!mww_answers(&asked, &txn(&[(0, 7), (2, 7)])));
        assert!(!mww_answers(&asked, &txn(&[(0, 8)])));
        assert!(!mww_answers(&asked, &asked[..1]));
        let swapped = vec![asked[1].clone(), asked[0].clone()];
        assert!(!mww_answers(&asked, &swapped));
    }
}
