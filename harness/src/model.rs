//! The data model of a run as a parameter: a [`Model`] is a workload family's micro-op type,
//! PostgreSQL table, wire codec (the harness's own, independent of the endpoint's on purpose:
//! it is the checker of that wire format), clients, generator and checkers, together with the
//! hooks where its era's run differs. [`Lww`] is the seed era's list-append over `lww`,
//! [`Mww`] the latest era's `readAll`/`writeSome` over the max-write-wins `mww` table. One
//! phase driver ([`crate::runner`]) runs either.

mod lww;
mod mww;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

pub use lww::{Lww, list_append_opts as lww_list_append_opts, runs_adya};
pub use mww::Mww;

use crate::check::Verdict;
use crate::client::Outcome;
use crate::error::Result;
use crate::history::{History, Key, Value};
use crate::nemesis::Targets;
use crate::recorder::Recorder;
use crate::report::Stats;
use crate::runner::RunOpts;
use crate::topology::{Database, EndpointConfig, Schema};
use crate::workload::Workload;

/// What every endpoint of a run shares, for [`Model::endpoint`].
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// The stand-in's URL, in synced workloads.
    pub powersync_url: Option<String>,
    /// PostgreSQL's port, in synced workloads.
    pub pg_port: Option<u16>,
    /// The seed's `JWKS_PRIVATE_KEY` (base64 of the private JWK), in synced workloads.
    pub jwks_private_key: Option<String>,
    /// `POWERSYNC_LIB`, when a core version was asked for.
    pub powersync_lib: Option<PathBuf>,
}

/// The started topology as the era hooks see it.
pub struct Started {
    /// Each endpoint's base URL by node name.
    pub urls: BTreeMap<String, String>,
    /// PostgreSQL, in synced workloads.
    pub database: Option<Database>,
    /// What the nemesis acts on.
    pub targets: Targets,
}

/// Where a client thread sends its transactions.
#[derive(Debug, Clone, Copy)]
pub struct ClientTarget<'a> {
    /// The thread's node.
    pub node: &'a str,
    /// Whether the node is one of `--postgres-nodes`.
    pub postgres: bool,
    /// The node's endpoint, if one was started.
    pub url: Option<&'a str>,
    /// PostgreSQL's URI (empty without PostgreSQL).
    pub pg_uri: &'a str,
    /// The request timeout.
    pub timeout: Duration,
}

impl ClientTarget<'_> {
    /// The URL of the node's endpoint, or an error naming the node.
    fn url(&self) -> Result<&str> {
        self.url
            .ok_or_else(|| crate::Error::Options(format!("no endpoint for node {}", self.node)))
    }
}

/// How the run settled after the main phase, for the summary figures.
#[derive(Debug, Clone, Copy)]
pub enum Settled {
    /// Seed era: whether every node agreed with PostgreSQL and how long that took (`None`:
    /// no PostgreSQL).
    Quiescence(Option<(bool, Duration)>),
    /// Latest era: how long the final connect and barriers took.
    Barriers(Duration),
}

impl Settled {
    /// Records this in `stats`.
    pub fn apply(&self, stats: &mut Stats) {
        match *self {
            Settled::Quiescence(Some((agreed, took))) => {
                stats.quiesced = Some(agreed);
                stats.quiesce_secs = Some(took.as_secs_f64());
            }
            Settled::Quiescence(None) => {}
            Settled::Barriers(took) => stats.barrier_secs = Some(took.as_secs_f64()),
        }
    }
}

/// A data model and its era's hooks into the one phase driver.
pub trait Model: Sized + Send + Sync + 'static {
    /// A micro-operation.
    type Mop: Clone + Send + Sync + 'static;
    /// A key's value in PostgreSQL.
    type Value: serde::Serialize + Send + Sync + 'static;
    /// The era's own options (see [`crate::runner::Era`]).
    type Opts: Send + Sync;
    /// What a client thread generates.
    type Role: Copy + Send + Sync + 'static;
    /// The transaction generator shared by the client threads.
    type Generator: Send + Sync + 'static;
    /// A client thread's client.
    type Client: Send + 'static;

    /// The stand-in's data model (`--model`).
    const STANDIN: &'static str;
    /// The PostgreSQL table.
    const SCHEMA: Schema;
    /// The client's connect and request timeout.
    const CLIENT_TIMEOUT: Duration;
    /// Whether the PowerSync endpoints answer `/db-api` (the disconnect nemesis and the final
    /// barriers act on them).
    const DB_API: bool;

    /// Wraps micro-ops into an operation's value.
    fn value(mops: Vec<Self::Mop>) -> Value;
    /// Wire codec: the `POST /sql-txn` body of a transaction.
    fn request(f: &str, mops: &[Self::Mop]) -> Json;
    /// Wire codec: the outcome of a 200 response `text` to the transaction `asked`.
    fn response(text: &str, asked: &[Self::Mop]) -> Outcome<Self::Mop>;
    /// Parses a value of [`Self::SCHEMA`]'s `v` column, read as text.
    fn parse_value(text: &str) -> Result<Self::Value>;

    /// The endpoint started for `node` (`postgres`: one of `--postgres-nodes`), or `None` when
    /// the node's clients use PostgreSQL directly.
    fn endpoint(
        opts: &RunOpts,
        era: &Self::Opts,
        node: &str,
        postgres: bool,
        common: &Common,
    ) -> Option<EndpointConfig>;
    /// Waits for what must hold before the clients start.
    fn after_start(opts: &RunOpts, started: &Started) -> impl Future<Output = Result<()>> + Send;
    /// The generator of a run.
    fn generator(opts: &RunOpts, era: &Self::Opts) -> Self::Generator;
    /// What the clients of a PowerSync node (`postgres = false`) or a PostgreSQL node do.
    fn role(workload: Workload, postgres: bool) -> Self::Role;
    /// The next transaction of a client of `role`: its `f` and micro-ops.
    fn next(
        generator: &Self::Generator,
        role: Self::Role,
        rng: &mut fastrand::Rng,
    ) -> (&'static str, Vec<Self::Mop>);
    /// The client of a client thread.
    fn client(target: &ClientTarget<'_>) -> Result<Self::Client>;
    /// Runs one transaction.
    fn txn(
        client: &mut Self::Client,
        f: &str,
        mops: &[Self::Mop],
    ) -> impl Future<Output = Outcome<Self::Mop>> + Send;
    /// After the main phase: lets the nodes settle before the final reads.
    fn settle(
        opts: &RunOpts,
        era: &Self::Opts,
        started: &Started,
        rec: &Recorder,
    ) -> impl Future<Output = Result<Settled>> + Send;
    /// The final reads each client thread makes (`f = r-final`), in order.
    fn final_reads(opts: &RunOpts) -> Vec<Vec<Self::Mop>>;
    /// The checkers' verdicts on a run.
    fn verdicts(
        opts: &RunOpts,
        history: &History,
        postgres: Option<&BTreeMap<Key, Self::Value>>,
        endpoint_logs: &[PathBuf],
    ) -> Result<Vec<Verdict>>;
}
