//! The seed era's model (jepsen-powersync at `470f1ac`): list-append transactions over the `lww`
//! table, clients of endpoints or of PostgreSQL directly, the initial-sync wait, quiescence
//! before the final reads, and one final read per key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{ClientTarget, Common, Model, Settled, Started};
use crate::check::{Verdict, convergence, list_append, logs, stats};
use crate::client::{CLIENT_TIMEOUT, EndpointClient, Lister, Outcome, PostgresClient};
use crate::error::{Error, Result};
use crate::history::{Element, History, Key, ListAppendMop, Value, parse_list, wire};
use crate::recorder::Recorder;
use crate::runner::{RunOpts, SeedOpts};
use crate::topology::{Database, EndpointConfig, Schema};
use crate::workload::{Generator, Role, Workload};
use checkers::adya;

/// The seed era's list-append model.
#[derive(Debug)]
pub struct Lww;

/// A seed-era client thread's client: its endpoint, or PostgreSQL directly.
#[derive(Debug)]
pub enum LwwClient {
    /// `POST /sql-txn` to an endpoint.
    Endpoint(EndpointClient<Lww>),
    /// The seed's PostgreSQL client.
    Postgres(PostgresClient),
}

impl Model for Lww {
    type Mop = ListAppendMop;
    type Value = Vec<Element>;
    type Opts = SeedOpts;
    type Role = Role;
    type Generator = Generator;
    type Client = LwwClient;

    const STANDIN: &'static str = "lww";
    const SCHEMA: Schema = Schema {
        table: "lww",
        // The seed's table.
        create: "CREATE TABLE IF NOT EXISTS public.lww (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    k INTEGER NOT NULL UNIQUE,
    v TEXT NOT NULL,
    CONSTRAINT lww_pkey PRIMARY KEY (id)
)",
        seed: "INSERT INTO lww (k, v) SELECT k, '' FROM generate_series(0, $1 - 1) AS k",
    };
    const CLIENT_TIMEOUT: Duration = CLIENT_TIMEOUT;
    const DB_API: bool = false;

    fn value(mops: Vec<ListAppendMop>) -> Value {
        Value::ListAppend(mops)
    }

    fn request(_f: &str, mops: &[ListAppendMop]) -> Json {
        wire::list_append_request(mops)
    }

    fn response(text: &str, asked: &[ListAppendMop]) -> Outcome<ListAppendMop> {
        match wire::list_append_response(text) {
            Ok(done) if same_shape(asked, &done) => Outcome::Ok(done),
            Ok(_) => Outcome::Info(format!("response does not match the request: {text}")),
            Err(e) => Outcome::Info(format!("undecodable response: {e}")),
        }
    }

    fn parse_value(text: &str) -> Result<Vec<Element>> {
        Ok(parse_list(text)?)
    }

    fn endpoint(
        opts: &RunOpts,
        _era: &SeedOpts,
        node: &str,
        postgres: bool,
        common: &Common,
    ) -> Option<EndpointConfig> {
        (!postgres).then(|| EndpointConfig {
            name: node.to_owned(),
            mode: opts.workload.endpoint_mode(),
            connector: opts.connector,
            failure_policy: opts.failure_policy,
            synchronous: opts.synchronous,
            powersync_url: common.powersync_url.clone(),
            pg_host: std::net::Ipv4Addr::LOCALHOST,
            pg_port: common.pg_port,
            jwks_private_key: common.jwks_private_key.clone(),
            powersync_lib: common.powersync_lib.clone(),
            latest: None,
            env: Vec::new(),
        })
    }

    async fn after_start(opts: &RunOpts, started: &Started) -> Result<()> {
        if opts.workload.is_synced() {
            wait_initial_sync(&started.urls, opts.key_count).await?;
        }
        Ok(())
    }

    fn generator(opts: &RunOpts, era: &SeedOpts) -> Generator {
        Generator::new(opts.key_count, era.generator)
    }

    fn role(workload: Workload, postgres: bool) -> Role {
        workload.role(postgres)
    }

    fn next(
        generator: &Generator,
        role: Role,
        rng: &mut fastrand::Rng,
    ) -> (&'static str, Vec<ListAppendMop>) {
        (role.f(), generator.next(role, rng))
    }

    fn client(target: &ClientTarget<'_>) -> Result<LwwClient> {
        Ok(if target.postgres {
            LwwClient::Postgres(PostgresClient::new(target.pg_uri))
        } else {
            LwwClient::Endpoint(EndpointClient::with_timeout(target.url()?, target.timeout)?)
        })
    }

    async fn txn(
        client: &mut LwwClient,
        f: &str,
        mops: &[ListAppendMop],
    ) -> Outcome<ListAppendMop> {
        match client {
            LwwClient::Endpoint(c) => c.txn(f, mops).await,
            LwwClient::Postgres(c) => c.txn(mops).await,
        }
    }

    /// Quiescence: every node agrees with PostgreSQL, or the timeout.
    async fn settle(
        _opts: &RunOpts,
        era: &SeedOpts,
        started: &Started,
        _rec: &Recorder,
    ) -> Result<Settled> {
        Ok(Settled::Quiescence(match &started.database {
            Some(db) => {
                let t0 = Instant::now();
                let agreed = wait_quiescent(&started.urls, db, era.quiesce_timeout).await?;
                Some((agreed, t0.elapsed()))
            }
            None => None,
        }))
    }

    /// A read of every key, one transaction each.
    fn final_reads(opts: &RunOpts) -> Vec<Vec<ListAppendMop>> {
        (0..opts.key_count)
            .map(|key| vec![ListAppendMop::Read { key, list: None }])
            .collect()
    }

    fn verdicts(
        opts: &RunOpts,
        history: &History,
        postgres: Option<&BTreeMap<Key, Vec<Element>>>,
        endpoint_logs: &[PathBuf],
    ) -> Result<Vec<Verdict>> {
        let mut verdicts = vec![stats::check(history)];
        for la in list_append_opts(opts) {
            verdicts.push(list_append::check_with(history, &la)?);
        }
        if runs_adya(opts.workload) {
            // With the seed's options, its 10 s cycle-search budget included.
            verdicts.push(adya::check(history)?);
        }
        verdicts.push(convergence::list_append(history, postgres));
        verdicts.push(log_verdict(opts.workload, endpoint_logs)?);
        Ok(verdicts)
    }
}

/// Whether the seed judged `workload` with `causal.checker.adya` besides Elle: jepsen-powersync
/// at `470f1ac` composes it into `powersync` (and so into `ps-wo-pg-ro`, which takes
/// `powersync`'s checker) and `ps-ro-pg-wo`; not `powersync-single` nor the sqlite3 workloads.
pub fn runs_adya(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::Powersync | Workload::PsRoPgWo | Workload::PsWoPgRo
    )
}

/// The list-append checks of a run: the workload's model (or each of
/// `--consistency-models`), with the workload's anomalies and `--anomalies`, and the run's
/// cycle-search budget.
pub fn list_append_opts(opts: &RunOpts) -> Vec<list_append::Opts> {
    let base = opts.workload.list_append_opts();
    let models = if opts.checker.consistency_models.is_empty() {
        vec![base.model.clone()]
    } else {
        opts.checker.consistency_models.clone()
    };
    let mut anomalies = base.anomalies.clone();
    anomalies.extend(
        opts.checker
            .anomalies
            .iter()
            .filter(|a| !base.anomalies.contains(a))
            .cloned(),
    );
    models
        .into_iter()
        .map(|model| list_append::Opts {
            anomalies: anomalies.clone(),
            cycle_search_timeout: opts.checker.cycle_search_timeout,
            ..list_append::Opts::new(&model)
        })
        .collect()
}

/// Whether the response holds the request's micro-ops (same functions, keys and appends).
fn same_shape(asked: &[ListAppendMop], got: &[ListAppendMop]) -> bool {
    asked.len() == got.len()
        && asked.iter().zip(got).all(|(a, g)| match (a, g) {
            (ListAppendMop::Read { key: k1, .. }, ListAppendMop::Read { key: k2, .. }) => k1 == k2,
            (a @ ListAppendMop::Append { .. }, g) => a == g,
            _ => false,
        })
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
        if let Ok(pg) = db.state::<Lww>().await {
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

/// The log check: `ERROR` (case-sensitive) in the endpoints' logs, or for `sqlite3-local`, as
/// the seed's `(?i)ERROR`, `error` in any case.
fn log_verdict(workload: Workload, paths: &[PathBuf]) -> Result<Verdict> {
    if !workload.log_case_insensitive() {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
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
    fn adya_judges_the_workloads_the_seed_ran_it_for() {
        use clap::ValueEnum;
        let with: Vec<String> = Workload::value_variants()
            .iter()
            .filter(|w| runs_adya(**w))
            .map(ToString::to_string)
            .collect();
        assert_eq!(with, ["powersync", "ps-ro-pg-wo", "ps-wo-pg-ro"]);
    }

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
