//! HTTP to the sync service: the streaming `POST /sync/stream` response split into sync lines
//! (NDJSON) or BSON documents, `GET /write-checkpoint2.json` and
//! `POST /sync/checkpoint-request`.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::connector::PowerSyncCredentials;
use crate::error::{Error, Result};

/// The largest BSON document accepted from the service (16 MiB, BSON's own limit).
const MAX_BSON_DOCUMENT: usize = 16 * 1024 * 1024;

/// The `Accept` header the official SDKs send: BSON preferred, NDJSON accepted.
const ACCEPT: &str = "application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8";

/// One sync line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// A JSON line (NDJSON framing).
    Text(String),
    /// A whole BSON document, length prefix included.
    Binary(Vec<u8>),
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The body of an open sync stream.
pub(crate) struct LineStream {
    body: Body,
    buf: BytesMut,
    bson: bool,
    ended: bool,
}

impl LineStream {
    fn new(body: Body, bson: bool) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            bson,
            ended: false,
        }
    }

    /// The next complete line or document; `None` at the end of the body. Cancel-safe: a
    /// cancelled call loses no bytes.
    pub(crate) async fn next(&mut self) -> Result<Option<Line>> {
        loop {
            if let Some(line) = self.take_line()? {
                return Ok(Some(line));
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else if self.bson {
                    Err(Error::service(format!(
                        "sync stream ended inside a BSON document ({} bytes)",
                        self.buf.len()
                    )))
                } else {
                    let rest = self.buf.split();
                    Ok(text_line(&rest)?.map(Line::Text))
                };
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(Error::service_caused("sync stream broke", e)),
                None => self.ended = true,
            }
        }
    }

    fn take_line(&mut self) -> Result<Option<Line>> {
        if self.bson {
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let len = i32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            let len = usize::try_from(len).unwrap_or(0);
            if !(5..=MAX_BSON_DOCUMENT).contains(&len) {
                return Err(Error::service(format!(
                    "invalid BSON document length {len} in sync stream"
                )));
            }
            if self.buf.len() < len {
                return Ok(None);
            }
            return Ok(Some(Line::Binary(self.buf.split_to(len).to_vec())));
        }
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line = self.buf.split_to(pos);
            self.buf.advance(1);
            if let Some(text) = text_line(&line)? {
                return Ok(Some(Line::Text(text)));
            }
        }
        Ok(None)
    }
}

/// A non-empty line without its `\r`, or `None` for a blank line.
fn text_line(bytes: &[u8]) -> Result<Option<String>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::service_caused("sync line is not UTF-8", e))?;
    let text = text.trim_end_matches('\r');
    Ok((!text.trim().is_empty()).then(|| text.to_string()))
}

fn url(credentials: &PowerSyncCredentials, path: &str) -> String {
    format!("{}/{path}", credentials.endpoint.trim_end_matches('/'))
}

async fn error_for_status(response: reqwest::Response) -> Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        Error::Unauthorized { body }
    } else {
        Error::Service {
            message: format!("HTTP {status}: {body}"),
            status: Some(status.as_u16()),
            source: None,
        }
    }
}

/// Opens the sync stream with `request` as body, verbatim.
pub(crate) async fn open(
    client: &reqwest::Client,
    credentials: &PowerSyncCredentials,
    request: &Value,
) -> Result<LineStream> {
    let body = serde_json::to_vec(request)
        .map_err(|e| Error::service_caused("cannot encode the sync request", e))?;
    let response = client
        .post(url(credentials, "sync/stream"))
        .header("Content-Type", "application/json")
        .header("Accept", ACCEPT)
        .header("Authorization", format!("Token {}", credentials.token))
        .body(body)
        .send()
        .await
        .map_err(|e| Error::service_caused("cannot reach the sync service", e))?;
    if !response.status().is_success() {
        return Err(error_for_status(response).await);
    }
    let bson = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("vnd.powersync.bson-stream"));
    Ok(LineStream::new(Box::pin(response.bytes_stream()), bson))
}

/// `GET /write-checkpoint2.json?client_id=…`: a new write checkpoint for this client.
pub(crate) async fn write_checkpoint(
    client: &reqwest::Client,
    credentials: &PowerSyncCredentials,
    client_id: &str,
) -> Result<i64> {
    let url = reqwest::Url::parse_with_params(
        &url(credentials, "write-checkpoint2.json"),
        [("client_id", client_id)],
    )
    .map_err(|e| {
        Error::service_caused(
            format!("invalid sync service endpoint {:?}", credentials.endpoint),
            e,
        )
    })?;
    let response = client
        .get(url)
        .header("Authorization", format!("Token {}", credentials.token))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| Error::service_caused("write checkpoint request failed", e))?;
    data_id(response, "write checkpoint", "write_checkpoint", |_| true).await
}

/// The id at `data.<field>` of a successful JSON response (a decimal string or a number) that
/// `valid` accepts; an HTTP error or a body without one is an error naming `what`.
async fn data_id(
    response: reqwest::Response,
    what: &str,
    field: &str,
    valid: impl Fn(i64) -> bool,
) -> Result<i64> {
    if !response.status().is_success() {
        return Err(error_for_status(response).await);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::service_caused(format!("{what} response"), e))?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::service_caused(format!("{what} response"), e))?;
    let id = &body["data"][field];
    id.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| id.as_i64())
        .filter(|&id| valid(id))
        .ok_or_else(|| {
            Error::service(format!(
                "{what} response without a valid data.{field}: {body}"
            ))
        })
}

/// `POST /sync/checkpoint-request` with `body` (`{"client_id", "checkpoint_request_id"}`, as the
/// core made it): the id the service stored, `max(stored, requested)`. A 404 means a service
/// without checkpoint requests (older than 1.24.0).
pub(crate) async fn checkpoint_request(
    client: &reqwest::Client,
    credentials: &PowerSyncCredentials,
    body: &Value,
) -> Result<i64> {
    let response = client
        .post(url(credentials, "sync/checkpoint-request"))
        .header("Authorization", format!("Token {}", credentials.token))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .timeout(std::time::Duration::from_secs(30))
        .json(body)
        .send()
        .await
        .map_err(|e| Error::service_caused("checkpoint request failed", e))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(Error::Service {
            message: "the sync service has no checkpoint requests (POST /sync/checkpoint-request \
                      answered 404; it needs service 1.24.0): connect with \
                      CheckpointMode::Legacy"
                .into(),
            status: Some(404),
            source: None,
        });
    }
    data_id(
        response,
        "checkpoint request",
        "checkpoint_request_id",
        |id| id > 0,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: Vec<&'static [u8]>, bson: bool) -> LineStream {
        let body =
            futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))));
        LineStream::new(Box::pin(body), bson)
    }

    #[tokio::test]
    async fn splits_ndjson_across_chunk_boundaries_and_skips_blank_lines() {
        let mut s = stream_of(
            vec![b"{\"a\":1}\n{\"b\"", b":2}\r\n\n", b"{\"c\":3}"],
            false,
        );
        assert_eq!(
            s.next().await.unwrap(),
            Some(Line::Text("{\"a\":1}".into()))
        );
        assert_eq!(
            s.next().await.unwrap(),
            Some(Line::Text("{\"b\":2}".into()))
        );
        assert_eq!(
            s.next().await.unwrap(),
            Some(Line::Text("{\"c\":3}".into())),
            "last line without newline"
        );
        assert_eq!(s.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn splits_bson_documents_by_their_length_prefix() {
        // Two documents: {} (5 bytes) and {"a": true} (12 bytes), split oddly.
        let empty: &[u8] = &[5, 0, 0, 0, 0];
        let a_true: &[u8] = &[12, 0, 0, 0, 8, b'a', 0, 1, 0, 0, 0, 0];
        let mut joined = empty.to_vec();
        joined.extend_from_slice(a_true);
        let joined: &'static [u8] = Box::leak(joined.into_boxed_slice());
        let mut s = stream_of(vec![&joined[..3], &joined[3..9], &joined[9..]], true);
        assert_eq!(s.next().await.unwrap(), Some(Line::Binary(empty.to_vec())));
        assert_eq!(s.next().await.unwrap(), Some(Line::Binary(a_true.to_vec())));
        assert_eq!(s.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn rejects_truncated_or_invalid_bson() {
        let mut s = stream_of(vec![&[12, 0, 0, 0, 8]], true);
        assert!(s.next().await.is_err());
        let mut s = stream_of(vec![&[1, 0, 0, 0, 0]], true);
        assert!(s.next().await.is_err());
        let mut s = stream_of(vec![&[0xff, 0xff, 0xff, 0x7f, 0]], true);
        assert!(s.next().await.is_err());
    }
}
