//! The two kinds of Jepsen clients a run uses, with the seed's semantics (reference A.10):
//!
//! - [`EndpointClient`]: `POST /sql-txn` to one endpoint with 1 s connect and socket timeouts.
//!   A refused connection is `fail` (the request never arrived); a timeout or any other error is
//!   `info` (it may have happened);
//! - [`MwwClient`]: the latest era's client (reference B.10): `POST /sql-txn` with
//!   `readAll`/`writeSome` to an endpoint started with `--endpoint powersync` or
//!   `--endpoint postgresql`, 3 s timeouts (`--client-timeout 3`); a `type: fail` reply is
//!   `fail`, everything else as above. [`db_api`] calls `GET /db-api/<action>` for the nemesis
//!   and the final barriers;
//! - [`PostgresClient`]: the seed's PostgreSQL client (`PostgreSQLJDBCClient`): each transaction
//!   in `REPEATABLE READ`; reads `SELECT k,v FROM lww WHERE k = $1`, appends
//!   `INSERT ... ON CONFLICT (k) DO UPDATE SET v = concat_ws(' ', lww.v, $2)`.

use std::time::Duration;

use tokio_postgres::IsolationLevel;

use crate::history::wire;
use std::collections::BTreeMap;

use crate::history::{Element, Key, ListAppendMop, MwwMop, OpType, parse_list};

/// The seed's Jepsen client timeouts (`:socket-timeout 1000 :connection-timeout 1000`).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// How a client operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It happened; the completed micro-ops (reads filled in).
    Ok(Vec<ListAppendMop>),
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// A client of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointClient {
    http: reqwest::Client,
    url: String,
}

impl EndpointClient {
    /// A client of the endpoint at `base` (`http://127.0.0.1:<port>`).
    pub fn new(base: &str) -> crate::Result<EndpointClient> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CLIENT_TIMEOUT)
            .timeout(CLIENT_TIMEOUT)
            .build()?;
        Ok(EndpointClient {
            http,
            url: format!("{base}/sql-txn"),
        })
    }

    /// Runs one transaction.
    pub async fn txn(&self, mops: &[ListAppendMop]) -> Outcome {
        let body = wire::list_append_request(mops);
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
        match wire::list_append_response(&text) {
            Ok(done) if same_shape(mops, &done) => Outcome::Ok(done),
            Ok(_) => Outcome::Info(format!("response does not match the request: {text}")),
            Err(e) => Outcome::Info(format!("undecodable response: {e}")),
        }
    }
}

/// The latest era's client timeout (`--client-timeout 3`).
pub const MWW_CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// How a latest-era (mww) client operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MwwOutcome {
    /// It happened: the full `readAll` and the writes actually made.
    Ok(Vec<MwwMop>),
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// A latest-era client of one endpoint (`--endpoint powersync` or `postgresql`).
#[derive(Debug, Clone)]
pub struct MwwClient {
    http: reqwest::Client,
    url: String,
}

impl MwwClient {
    /// A client of the endpoint at `base` (`http://127.0.0.1:<port>`).
    pub fn new(base: &str) -> crate::Result<MwwClient> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(MWW_CLIENT_TIMEOUT)
            .timeout(MWW_CLIENT_TIMEOUT)
            .build()?;
        Ok(MwwClient {
            http,
            url: format!("{base}/sql-txn"),
        })
    }

    /// Runs one transaction (`f` is `txn` or `r-final`).
    pub async fn txn(&self, f: &str, mops: &[MwwMop]) -> MwwOutcome {
        let body = wire::mww_request(f, mops);
        let resp = match self.http.post(&self.url).json(&body).send().await {
            Ok(r) => r,
            Err(e) if refused(&e) => return MwwOutcome::Fail("connection-refused".into()),
            Err(e) if e.is_timeout() => return MwwOutcome::Info("timeout".into()),
            Err(e) => return MwwOutcome::Info(error_chain(&e)),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => return MwwOutcome::Info("timeout".into()),
            Err(e) => return MwwOutcome::Info(error_chain(&e)),
        };
        if !status.is_success() {
            return MwwOutcome::Info(format!("HTTP {}: {}", status.as_u16(), text.trim()));
        }
        match wire::mww_response(&text) {
            Ok((OpType::Ok, done)) if mww_answers(mops, &done) => MwwOutcome::Ok(done),
            Ok((OpType::Fail, _)) => MwwOutcome::Fail(format!("endpoint: {}", text.trim())),
            Ok(_) => MwwOutcome::Info(format!("response does not match the request: {text}")),
            Err(e) => MwwOutcome::Info(format!("undecodable response: {e}")),
        }
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

/// Whether the response holds the request's micro-ops (same functions, keys and appends).
fn same_shape(asked: &[ListAppendMop], got: &[ListAppendMop]) -> bool {
    asked.len() == got.len()
        && asked.iter().zip(got).all(|(a, g)| match (a, g) {
            (ListAppendMop::Read { key: k1, .. }, ListAppendMop::Read { key: k2, .. }) => k1 == k2,
            (a @ ListAppendMop::Append { .. }, g) => a == g,
            _ => false,
        })
}

fn refused(e: &reqwest::Error) -> bool {
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
    pub async fn txn(&mut self, mops: &[ListAppendMop]) -> Outcome {
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
