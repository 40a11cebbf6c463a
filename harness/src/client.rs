//! The two kinds of Jepsen clients a run uses, with the seed's semantics (jepsen-powersync `client.clj` at `470f1ac`):
//!
//! - [`EndpointClient`]: `POST /sql-txn` to one endpoint in the wire format of the run's
//!   [`Model`]: the seed's list-append with 1 s connect and socket timeouts, or the latest era's
//!   `readAll`/`writeSome` (as at `b77a3d0`) to an endpoint started with `--endpoint powersync`
//!   or `--endpoint postgresql`, 3 s timeouts (`--client-timeout 3`), where a `type: fail`
//!   reply is `fail`. A refused connection is `fail` (the request never arrived); a timeout or
//!   any other error is `info` (it may have happened). [`db_api`] calls
//!   `GET /db-api/<action>` for the nemesis and the final barriers; [`Lister`] polls
//!   `GET /db/list`;
//! - [`PostgresClient`]: the seed's PostgreSQL client (`PostgreSQLJDBCClient`): each transaction
//!   in `REPEATABLE READ`; reads `SELECT k,v FROM lww WHERE k = $1`, appends
//!   `INSERT ... ON CONFLICT (k) DO UPDATE SET v = concat_ws(' ', lww.v, $2)`.

use std::marker::PhantomData;
use std::time::Duration;

use tokio_postgres::IsolationLevel;

use std::collections::BTreeMap;

use crate::history::{Element, Key, ListAppendMop, parse_list};
use crate::model::Model;

/// The seed's Jepsen client timeouts (`:socket-timeout 1000 :connection-timeout 1000`).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// The latest era's client timeout (`--client-timeout 3`).
pub const MWW_CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// How a client operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<M> {
    /// It happened; the completed micro-ops (reads filled in, the writes actually made).
    Ok(Vec<M>),
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// A client of one endpoint speaking the wire format of data model `M`.
#[derive(Debug)]
pub struct EndpointClient<M> {
    http: reqwest::Client,
    url: String,
    model: PhantomData<fn() -> M>,
}

impl<M: Model> EndpointClient<M> {
    /// A client of the endpoint at `base` (`http://127.0.0.1:<port>`), with the model's
    /// connect and request timeouts.
    pub fn new(base: &str) -> crate::Result<EndpointClient<M>> {
        EndpointClient::with_timeout(base, M::CLIENT_TIMEOUT)
    }

    /// A client of the endpoint at `base` with connect and request timeouts of `timeout`
    /// (Jepsen's `--client-timeout`).
    pub fn with_timeout(base: &str, timeout: Duration) -> crate::Result<EndpointClient<M>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()?;
        Ok(EndpointClient {
            http,
            url: format!("{base}/sql-txn"),
            model: PhantomData,
        })
    }

    /// Runs one transaction (`f` is `txn`, `append-only`, `read-only` or `r-final`).
    pub async fn txn(&self, f: &str, mops: &[M::Mop]) -> Outcome<M::Mop> {
        let body = M::request(f, mops);
        let resp = match self.http.post(&self.url).json(&body).send().await {
            Ok(r) => r,
            Err(e) if refused(&e) => return Outcome::Fail("connection-refused".into()),
            Err(e) if e.is_timeout() => return Outcome::Info("timeout".into()),
            Err(e) => return Outcome::Info(error_chain(&e)),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => return Outcome::Info("timeout".into()),
            Err(e) => return Outcome::Info(error_chain(&e)),
        };
        if !status.is_success() {
            // clj-http throws on a non-2xx status, which crashes the invocation: info.
            return Outcome::Info(format!("HTTP {}: {}", status.as_u16(), text.trim()));
        }
        M::response(&text, mops)
    }
}

/// `GET <base>/db-api/<action>` with a `timeout`: the JSON body of a 200, else the error as text.
pub async fn db_api(
    base: &str,
    action: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| error_chain(&e))?;
    let resp = http
        .get(format!("{base}/db-api/{action}"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| error_chain(&e))?;
    if !status.is_success() {
        return Err(format!("HTTP {}: {}", status.as_u16(), text.trim()));
    }
    serde_json::from_str(&text).map_err(|e| format!("undecodable {text:?}: {e}"))
}

/// `GET /db-api/uploadQueueCount` as jepsen-powersync's upload-queue nemesis reads it: the
/// node's count, or the keyword its client records when the node does not answer
/// (`connection-refused`, `connection-timeout`, or `unexpected-exception` for anything else,
/// such as a non-2xx status or a body without the count).
pub async fn upload_queue_count(base: &str, timeout: Duration) -> Result<i64, &'static str> {
    const OTHER: &str = "unexpected-exception";
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|_| OTHER)?;
    let resp = match http
        .get(format!("{base}/db-api/uploadQueueCount"))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(_) => return Err(OTHER),
        Err(e) if e.is_timeout() => return Err("connection-timeout"),
        Err(e) if e.is_connect() => return Err("connection-refused"),
        Err(_) => return Err(OTHER),
    };
    let body: serde_json::Value = match resp.json().await {
        Ok(v) => v,
        Err(e) if e.is_timeout() => return Err("connection-timeout"),
        Err(_) => return Err(OTHER),
    };
    body.get("db.uploadQueueStats.count")
        .and_then(serde_json::Value::as_i64)
        .ok_or(OTHER)
}

/// Reads nodes' rows with `GET /db/list` (the initial-sync and quiescence polls), one HTTP client
/// for every poll.
#[derive(Debug, Clone)]
pub struct Lister {
    http: reqwest::Client,
}

impl Lister {
    /// A lister whose requests time out after 2 s.
    pub fn new() -> crate::Result<Lister> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        Ok(Lister { http })
    }

    /// The rows of the endpoint at `base` as key → list, or `None` if it did not answer.
    pub async fn rows(&self, base: &str) -> Option<BTreeMap<Key, Vec<Element>>> {
        let resp = self.http.get(format!("{base}/db/list")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let rows: Vec<serde_json::Value> = resp.json().await.ok()?;
        let mut out = BTreeMap::new();
        for row in rows {
            let k = row.get("k")?.as_i64()?;
            let v = row.get("v")?.as_str().unwrap_or("");
            out.insert(k, parse_list(v).ok()?);
        }
        Some(out)
    }
}

pub(crate) fn refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = err.source();
    }
    e.is_connect() && error_chain(e).contains("onnection refused")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

/// How long a PostgreSQL transaction may take before the client gives up (`info`).
const POSTGRES_TXN_TIMEOUT: Duration = Duration::from_secs(5);

/// The seed's PostgreSQL client, one connection, reconnected after errors.
#[derive(Debug)]
pub struct PostgresClient {
    uri: String,
    client: Option<tokio_postgres::Client>,
}

/// Where a PostgreSQL transaction failed.
enum PgError {
    /// Before COMMIT was sent: the transaction did not happen.
    Before(tokio_postgres::Error),
    /// At COMMIT: unknown whether it happened.
    AtCommit(tokio_postgres::Error),
    /// An append changed other than one row (the seed asserts 1).
    UpdateCount(u64),
    /// A stored value is not the seed's list encoding.
    Garbled(String),
}

impl PostgresClient {
    /// A client of the database at `uri` (connects lazily).
    pub fn new(uri: &str) -> PostgresClient {
        PostgresClient {
            uri: uri.to_owned(),
            client: None,
        }
    }

    async fn connect(&mut self) -> Result<&tokio_postgres::Client, String> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let mut config: tokio_postgres::Config =
                self.uri.parse().map_err(|e| format!("bad URI: {e}"))?;
            config.connect_timeout(CLIENT_TIMEOUT);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| error_chain(&e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.client = Some(client);
        }
        self.client
            .as_ref()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// Runs one transaction in REPEATABLE READ.
    pub async fn txn(&mut self, mops: &[ListAppendMop]) -> Outcome<ListAppendMop> {
        if let Err(e) = self.connect().await {
            // Nothing was sent: the transaction did not happen.
            return Outcome::Fail(format!("connect: {e}"));
        }
        let result = match self.client.as_mut() {
            Some(client) => tokio::time::timeout(POSTGRES_TXN_TIMEOUT, run_txn(client, mops)).await,
            None => return Outcome::Fail("no connection".into()),
        };
        match result {
            Ok(Ok(done)) => Outcome::Ok(done),
            Ok(Err(PgError::Before(e))) => {
                let code = e.code().map(|c| c.code().to_owned());
                match code.as_deref() {
                    Some("40P01") => Outcome::Fail("deadlock".into()),
                    Some("40001") => Outcome::Fail("concurrent-update".into()),
                    Some(_) => Outcome::Fail(error_chain(&e)),
                    None => {
                        self.client = None;
                        Outcome::Fail(error_chain(&e))
                    }
                }
            }
            Ok(Err(PgError::AtCommit(e))) => {
                self.client = None;
                Outcome::Info(format!("commit: {}", error_chain(&e)))
            }
            Ok(Err(PgError::UpdateCount(n))) => {
                Outcome::Fail(format!("append updated {n} rows, not 1"))
            }
            Ok(Err(PgError::Garbled(e))) => Outcome::Info(e),
            Err(_) => {
                self.client = None;
                Outcome::Info("timeout".into())
            }
        }
    }
}

async fn run_txn(
    client: &mut tokio_postgres::Client,
    mops: &[ListAppendMop],
) -> Result<Vec<ListAppendMop>, PgError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(PgError::Before)?;
    let mut done = Vec::with_capacity(mops.len());
    for m in mops {
        match m {
            ListAppendMop::Read { key, .. } => {
                let k = pg_key(*key);
                let row = tx
                    .query_opt("SELECT k, v FROM lww WHERE k = $1", &[&k])
                    .await
                    .map_err(PgError::Before)?;
                let text: Option<String> = match row {
                    Some(r) => r.try_get(1).map_err(PgError::Before)?,
                    None => None,
                };
                // A missing or blank value reads as nil, as in the seed.
                let list = match text.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(t) => Some(parse_list(t).map_err(|e| PgError::Garbled(e.to_string()))?),
                };
                done.push(ListAppendMop::Read { key: *key, list });
            }
            ListAppendMop::Append { key, element } => {
                let k = pg_key(*key);
                let v = element.to_string();
                let n = tx
                    .execute(
                        "INSERT INTO lww (k, v) VALUES ($1, $2) \
                         ON CONFLICT (k) DO UPDATE SET v = concat_ws(' ', lww.v, $2)",
                        &[&k, &v],
                    )
                    .await
                    .map_err(PgError::Before)?;
                if n != 1 {
                    return Err(PgError::UpdateCount(n));
                }
                done.push(m.clone());
            }
        }
    }
    tx.commit().await.map_err(PgError::AtCommit)?;
    Ok(done)
}

/// `lww.k` is an INTEGER; the generator's keys are small.
fn pg_key(key: Key) -> i32 {
    i32::try_from(key).unwrap_or(i32::MAX)
}
