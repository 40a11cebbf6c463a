//! The HTTP routes: `POST /sync/stream`, `GET /write-checkpoint2.json`, `GET /probes/*`, and a
//! JSON 404 for everything else. The sync stream's framing is negotiated from `Accept` as
//! the service does it ([`prefers_bson`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, watch};
use tokio_postgres::Client;

use crate::api_error::ApiError;
use crate::auth::{Claims, KeyStore};
use crate::config::Config;
use crate::replication::connect;
use crate::rules::StreamsRequest;
use crate::storage::Storage;
use crate::store::Store;
use crate::stream::StreamContext;

/// State shared by the handlers.
pub struct AppState {
    /// Bucket data.
    pub store: Arc<Store>,
    /// Token verification.
    pub keys: KeyStore,
    /// Persistent storage (write checkpoints).
    pub storage: Storage,
    /// Connection used for write checkpoints; reconnected when broken.
    pub client: Mutex<Option<Client>>,
    /// The configuration.
    pub config: Config,
    /// Its sync rules, shared by the streams.
    pub rules: Arc<crate::SyncRules>,
    /// Fires on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Changes when open streams are to be dropped.
    pub disconnect: watch::Receiver<u64>,
    /// How many streams were served in each framing.
    pub served: Arc<Served>,
}

/// Counts of `/sync/stream` responses by framing, and of write checkpoints by route.
#[derive(Debug, Default)]
pub struct Served {
    /// NDJSON streams.
    pub ndjson: AtomicU64,
    /// BSON streams.
    pub bson: AtomicU64,
    /// `GET /write-checkpoint2.json` answered.
    pub write_checkpoints: AtomicU64,
    /// `POST /sync/checkpoint-request` answered.
    pub checkpoint_requests: AtomicU64,
}

/// NDJSON's media type.
pub const NDJSON: &str = "application/x-ndjson";
/// The concatenated-BSON media type.
pub const BSON: &str = "application/vnd.powersync.bson-stream";

/// Whether `Accept` prefers BSON over NDJSON, decided as the service's `negotiator` does:
/// each of the two types gets the quality of the most specific range matching it (exact, then
/// `application/*`, then `*/*`); the higher quality wins, ties go to the more specific match,
/// then to the range listed first, then to NDJSON. No header, no match or quality 0: NDJSON.
pub fn prefers_bson(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    // (quality, specificity, position in the header) of the best range for each type.
    let rank = |media: &str| -> Option<(f64, u8, usize)> {
        let (kind, sub) = media.split_once('/')?;
        let mut best: Option<(f64, u8, usize)> = None;
        for (index, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';');
            let Some((rkind, rsub)) = parts.next().map(str::trim).and_then(|r| r.split_once('/'))
            else {
                continue;
            };
            let mut q = 1.0;
            for param in parts {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse::<f64>().unwrap_or(0.0);
                }
            }
            let (rkind, rsub) = (
                rkind.trim().to_ascii_lowercase(),
                rsub.trim().to_ascii_lowercase(),
            );
            let specificity = if rkind == kind && rsub == sub {
                2
            } else if rkind == kind && rsub == "*" {
                1
            } else if rkind == "*" && rsub == "*" {
                0
            } else {
                continue;
            };
            if best.is_none_or(|(_, s, _)| specificity > s) {
                best = Some((q, specificity, index));
            }
        }
        best.filter(|(q, _, _)| *q > 0.0)
    };
    match (rank(BSON), rank(NDJSON)) {
        (Some(_), None) => true,
        (Some((bq, bs, bi)), Some((nq, ns, ni))) => {
            bq > nq || (bq == nq && (bs > ns || (bs == ns && bi < ni)))
        }
        _ => false,
    }
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/sync/stream", post(sync_stream))
        .route("/write-checkpoint2.json", get(write_checkpoint))
        .route("/sync/checkpoint-request", post(checkpoint_request))
        .route("/probes/liveness", get(probe))
        .route("/probes/readiness", get(readiness))
        .route("/probes/startup", get(readiness))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.keys.authenticate(value)
}

async fn probe() -> Response {
    axum::Json(json!({"ready": true})).into_response()
}

async fn readiness(State(state): State<Arc<AppState>>) -> Response {
    if state.store.is_ready() {
        axum::Json(json!({"ready": true})).into_response()
    } else {
        ApiError::no_sync_rules().into_response()
    }
}

/// The request body of `/sync/stream` (extra fields are allowed, as in the service).
#[derive(Debug, Deserialize)]
struct SyncRequest {
    #[serde(default)]
    buckets: Option<Vec<BucketRequest>>,
    #[serde(default)]
    client_id: Option<String>,
    /// Client parameters (`request.parameters()`): an object.
    #[serde(default)]
    parameters: Option<Value>,
    /// Sync Streams: `{include_defaults, subscriptions: [{stream, parameters, override_priority}]}`.
    #[serde(default)]
    streams: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BucketRequest {
    name: String,
    after: String,
}

fn user_key(sub: &str, client_id: Option<&str>) -> String {
    match client_id {
        Some(c) if !c.is_empty() => format!("{sub}/{c}"),
        _ => sub.to_owned(),
    }
}

async fn sync_stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers)?;
    let request: SyncRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::validation(&e.to_string()))?;
    let mut positions = HashMap::new();
    for b in request.buckets.unwrap_or_default() {
        let after = b.after.parse::<u64>().map_err(|_| {
            ApiError::validation(&format!("bucket {}: bad after {:?}", b.name, b.after))
        })?;
        positions.insert(b.name, after);
    }
    let parameters = match request.parameters {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(ApiError::validation("parameters must be an object")),
    };
    let streams = StreamsRequest::from_json(request.streams.as_ref())
        .map_err(|e| ApiError::validation(&e))?;
    if !state.store.is_ready() {
        return Err(ApiError::no_sync_rules());
    }
    let bson = prefers_bson(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let counter = if bson {
        &state.served.bson
    } else {
        &state.served.ndjson
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let ctx = StreamContext {
        store: state.store.clone(),
        rules: state.rules.clone(),
        claims: claims.payload,
        parameters,
        streams,
        max_buckets: state.config.max_buckets,
        user_key: user_key(&claims.sub, request.client_id.as_deref()),
        positions,
        exp: claims.exp,
        keepalive: state.config.keepalive_interval,
        expire_warning: state.config.expire_warning,
        chunk_ops: state.config.data_chunk_ops.max(1),
        bson,
        shutdown: state.shutdown.clone(),
        disconnect: state.disconnect.clone(),
    };
    let (tx, rx) = mpsc::channel::<crate::stream::Line>(16);
    tokio::spawn(ctx.run(tx));
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|l| (l, rx)) });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if bson { BSON } else { NDJSON }),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct WriteCheckpointQuery {
    client_id: Option<String>,
}

async fn write_checkpoint(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<WriteCheckpointQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::validation(&e.to_string()))?;
    let key = user_key(&claims.sub, query.client_id.as_deref());
    let client = api_client(&state).await?;
    let (id, lsn) = state
        .storage
        .next_write_checkpoint(&client, &key)
        .await
        .map_err(|e| ApiError::unavailable(&format!("write checkpoint: {e}")))?;
    state.store.add_write_checkpoint(&key, id, lsn);
    state
        .served
        .write_checkpoints
        .fetch_add(1, Ordering::Relaxed);
    Ok(axum::Json(json!({"data": {"write_checkpoint": id.to_string()}})).into_response())
}

/// The API connection, (re)connected on demand. The guard serialises write-checkpoint SQL.
async fn api_client(
    state: &AppState,
) -> Result<tokio::sync::MappedMutexGuard<'_, Client>, ApiError> {
    let mut guard = state.client.lock().await;
    if guard.as_ref().is_none_or(Client::is_closed) {
        *guard = Some(
            connect(&state.config.postgres_uri)
                .await
                .map_err(|e| ApiError::unavailable(&format!("source database: {e}")))?,
        );
    }
    tokio::sync::MutexGuard::try_map(guard, Option::as_mut)
        .map_err(|_| ApiError::unavailable("source database unavailable"))
}

/// Body of `POST /sync/checkpoint-request`.
#[derive(Debug, Deserialize)]
struct CheckpointRequest {
    client_id: Option<String>,
    checkpoint_request_id: Value,
}

async fn checkpoint_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A service older than 1.24.0 has no such route.
    if !state.config.checkpoint_requests {
        return Err(ApiError::not_found());
    }
    let claims = authenticate(&state, &headers)?;
    let request: CheckpointRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::validation(&e.to_string()))?;
    let requested = match &request.checkpoint_request_id {
        Value::String(s) => s.parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
    .filter(|&id| id > 0)
    .ok_or_else(|| ApiError::validation("checkpoint_request_id must be a positive int64"))?;
    let key = user_key(&claims.sub, request.client_id.as_deref());
    let client = api_client(&state).await?;
    let (id, lsn) = state
        .storage
        .request_checkpoint(&client, &key, requested as u64)
        .await
        .map_err(|e| ApiError::unavailable(&format!("checkpoint request: {e}")))?;
    state.store.add_write_checkpoint(&key, id, lsn);
    state
        .served
        .checkpoint_requests
        .fetch_add(1, Ordering::Relaxed);
    Ok(axum::Json(json!({"data": {"checkpoint_request_id": id.to_string()}})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_framing_like_the_service() {
        // What every SDK sends, and its reverse.
        assert!(prefers_bson(Some(
            "application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8"
        )));
        assert!(!prefers_bson(Some(
            "application/vnd.powersync.bson-stream;q=0.7,application/x-ndjson;q=0.8"
        )));
        // Missing header, no quality given, wildcards, ties.
        assert!(!prefers_bson(None));
        assert!(!prefers_bson(Some("application/json")));
        assert!(!prefers_bson(Some("*/*")));
        assert!(prefers_bson(Some("application/vnd.powersync.bson-stream")));
        assert!(!prefers_bson(Some(
            "application/x-ndjson, application/vnd.powersync.bson-stream"
        )));
        assert!(prefers_bson(Some(
            "application/vnd.powersync.bson-stream, application/x-ndjson"
        )));
        assert!(prefers_bson(Some(
            "application/vnd.powersync.bson-stream, */*"
        )));
        assert!(!prefers_bson(Some(
            "application/vnd.powersync.bson-stream;q=0, */*"
        )));
        assert!(prefers_bson(Some(
            "application/x-ndjson;q=0.5, application/*"
        )));
        assert!(!prefers_bson(Some("garbage")));
    }
}
