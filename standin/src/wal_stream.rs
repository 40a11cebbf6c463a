//! A small client of PostgreSQL's streaming replication protocol, for logical decoding only:
//! a `replication=database` connection, `START_REPLICATION SLOT ... LOGICAL` with `pgoutput`
//! (as the service's `WalStream.ts` starts it), the `CopyBoth` stream of `XLogData` and
//! primary keepalive messages, and standby status updates (the acknowledgement).
//!
//! PostgreSQL keeps the WAL of every transaction whose commit lies after the flush position
//! last reported in a status update, and sends it again on the next `START_REPLICATION`: a
//! caller reports as flushed only what it has made durable.
//!
//! Authentication: trust, cleartext, MD5 and SCRAM-SHA-256, with the frontend messages, the
//! MD5 hash and the SCRAM exchange of `postgres-protocol` (the protocol crate under
//! `tokio-postgres`); the connection parameters are read by `tokio_postgres::Config` from the
//! same URI as the ordinary connections. TLS is not supported (nor by the ordinary
//! connections, which use `NoTls`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

use crate::Error;

/// The SQLSTATE PostgreSQL answers `START_REPLICATION` with while another connection still
/// holds the slot (`object_in_use`).
pub const OBJECT_IN_USE: &str = "55006";

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The largest backend message accepted (a guard against a corrupt length).
const MAX_MESSAGE: usize = 1 << 30;

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// One message of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `XLogData`: one pgoutput message ([`crate::decode::decode`] reads `data`).
    Data {
        /// The LSN the server attached to the message: the transaction's end for a Commit and
        /// the message's own LSN for a non-transactional logical message, 0 otherwise.
        wal_start: u64,
        /// The pgoutput message.
        data: Bytes,
    },
    /// Primary keepalive: everything the server decoded before `wal_end` has been sent.
    Keepalive {
        /// The server's sent position.
        wal_end: u64,
        /// The server asks for a status update now.
        reply_requested: bool,
    },
}

/// A replication connection, streaming once [`WalStream::start`] succeeded.
pub struct WalStream {
    io: Box<dyn Io>,
    buf: BytesMut,
    out: BytesMut,
}

impl std::fmt::Debug for WalStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStream")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::ReplicationIo(e)
}

fn protocol(what: impl Into<String>) -> Error {
    Error::ReplicationProtocol(what.into())
}

/// The `Error` of an ErrorResponse body: `(field type, C string)` pairs up to a 0 byte.
fn server_error(body: &[u8]) -> Error {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|&b| b == 0).take_while(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    Error::ReplicationServer { code, message }
}

impl WalStream {
    /// Opens a `replication=database` connection with the parameters of `uri` (a libpq URI or
    /// key-value string) and authenticates. `settings` are run-time parameters sent in the
    /// startup packet (they shape pgoutput's text output, e.g. `TimeZone`).
    pub async fn connect(uri: &str, settings: &[(&str, &str)]) -> Result<Self, Error> {
        let config: tokio_postgres::Config = uri.parse()?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(protocol(
                "sslmode=require: the replication connection has no TLS (use sslmode=disable)",
            ));
        }
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let io: Box<dyn Io> = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(io_error)?;
                stream.set_nodelay(true).map_err(io_error)?;
                Box::new(stream)
            }
            Some(Host::Unix(dir)) => Box::new(
                tokio::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
                    .await
                    .map_err(io_error)?,
            ),
            None => return Err(protocol("the PostgreSQL URI names no host")),
        };
        let user = config
            .get_user()
            .ok_or_else(|| protocol("the PostgreSQL URI names no user"))?
            .to_owned();
        let dbname = config.get_dbname().unwrap_or(&user).to_owned();
        let mut stream = WalStream {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
        };
        let mut parameters = vec![
            ("user", user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("client_encoding", "UTF8"),
            (
                "application_name",
                config.get_application_name().unwrap_or("powersync-standin"),
            ),
        ];
        parameters.extend_from_slice(settings);
        frontend::startup_message(parameters.iter().copied(), &mut stream.out).map_err(io_error)?;
        stream.send().await?;
        stream
            .authenticate(&user, config.get_password().unwrap_or_default())
            .await?;
        Ok(stream)
    }

    async fn authenticate(&mut self, user: &str, password: &[u8]) -> Result<(), Error> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, mut body) = self.frame().await?;
            match tag {
                b'R' if body.len() >= 4 => match body.get_i32() {
                    0 => {}
                    3 => {
                        frontend::password_message(password, &mut self.out).map_err(io_error)?;
                        self.send().await?;
                    }
                    5 if body.len() >= 4 => {
                        let salt = [body[0], body[1], body[2], body[3]];
                        let hash = md5_hash(user.as_bytes(), password, salt);
                        frontend::password_message(hash.as_bytes(), &mut self.out)
                            .map_err(io_error)?;
                        self.send().await?;
                    }
                    10 => {
                        let offered = body
                            .split(|&b| b == 0)
                            .any(|m| m == sasl::SCRAM_SHA_256.as_bytes());
                        if !offered {
                            return Err(protocol(
                                "the server offers no SASL mechanism usable without TLS",
                            ));
                        }
                        let state =
                            sasl::ScramSha256::new(password, sasl::ChannelBinding::unsupported());
                        frontend::sasl_initial_response(
                            sasl::SCRAM_SHA_256,
                            state.message(),
                            &mut self.out,
                        )
                        .map_err(io_error)?;
                        self.send().await?;
                        scram = Some(state);
                    }
                    11 => {
                        let state = scram
                            .as_mut()
                            .ok_or_else(|| protocol("SASL continue before SASL start"))?;
                        state.update(&body).map_err(io_error)?;
                        frontend::sasl_response(state.message(), &mut self.out)
                            .map_err(io_error)?;
                        self.send().await?;
                    }
                    12 => scram
                        .as_mut()
                        .ok_or_else(|| protocol("SASL final before SASL start"))?
                        .finish(&body)
                        .map_err(io_error)?,
                    other => {
                        return Err(protocol(format!(
                            "authentication method {other} is not supported"
                        )));
                    }
                },
                b'Z' => return Ok(()),
                b'E' => return Err(server_error(&body)),
                b'S' | b'K' | b'N' => {}
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )));
                }
            }
        }
    }

    /// Starts streaming `slot` (a slot name: lower-case letters, digits and `_`) from `start`
    /// with pgoutput protocol version 1 over `publication`, logical messages included.
    pub async fn start(&mut self, slot: &str, publication: &str, start: u64) -> Result<(), Error> {
        if slot.is_empty()
            || !slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::Config(format!(
                "replication slot name {slot:?}: only lower-case letters, digits and `_`"
            )));
        }
        // The replication grammar takes no parameters: the slot name is checked above and
        // quoted, the publication is a quoted string literal.
        let command = format!(
            "START_REPLICATION SLOT \"{slot}\" LOGICAL {} (proto_version '1', \
             publication_names '{}', messages 'true')",
            crate::decode::format_lsn(start),
            publication.replace('\'', "''")
        );
        frontend::query(&command, &mut self.out).map_err(io_error)?;
        self.send().await?;
        loop {
            let (tag, body) = self.frame().await?;
            match tag {
                b'W' => return Ok(()),
                b'N' => {}
                b'E' => return Err(server_error(&body)),
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} after START_REPLICATION",
                        other as char
                    )));
                }
            }
        }
    }

    /// The next message of the stream. Cancel-safe: a message partly read when the future is
    /// dropped stays buffered for the next call.
    pub async fn next(&mut self) -> Result<Frame, Error> {
        loop {
            let (tag, mut body) = self.frame().await?;
            match tag {
                b'd' => {
                    if body.is_empty() {
                        return Err(protocol("empty CopyData"));
                    }
                    match body.get_u8() {
                        b'w' if body.len() >= 24 => {
                            let wal_start = body.get_u64();
                            let _wal_end = body.get_u64();
                            let _send_time = body.get_i64();
                            return Ok(Frame::Data {
                                wal_start,
                                data: body,
                            });
                        }
                        b'k' if body.len() >= 17 => {
                            let wal_end = body.get_u64();
                            let _send_time = body.get_i64();
                            return Ok(Frame::Keepalive {
                                wal_end,
                                reply_requested: body.get_u8() == 1,
                            });
                        }
                        other => {
                            return Err(protocol(format!(
                                "unexpected replication message {:?} ({} bytes)",
                                other as char,
                                body.len() + 1
                            )));
                        }
                    }
                }
                b'N' => {}
                b'E' => return Err(server_error(&body)),
                b'c' => return Err(protocol("the server ended the replication stream")),
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} in the replication stream",
                        other as char
                    )));
                }
            }
        }
    }

    /// Sends a standby status update: `written` received, `flushed` durable (PostgreSQL may
    /// release the WAL of transactions committed before it); `reply` asks for a keepalive.
    pub async fn send_status(
        &mut self,
        written: u64,
        flushed: u64,
        reply: bool,
    ) -> Result<(), Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - PG_EPOCH_MICROS;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(written.max(flushed));
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_i64(now);
        payload.put_u8(u8::from(reply));
        self.out.put_u8(b'd');
        self.out.put_i32(4 + payload.len() as i32);
        self.out.extend_from_slice(&payload);
        self.send().await
    }

    /// Ends the session (`Terminate`); the server releases the slot.
    pub async fn close(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.send().await;
        let _ = self.io.shutdown().await;
    }

    async fn send(&mut self) -> Result<(), Error> {
        let out = self.out.split();
        self.io.write_all(&out).await.map_err(io_error)?;
        self.io.flush().await.map_err(io_error)
    }

    /// The next backend message as tag and body. Cancel-safe (`read_buf` is, and the buffer
    /// lives in `self`).
    async fn frame(&mut self) -> Result<(u8, Bytes), Error> {
        loop {
            if self.buf.len() >= 5 {
                let tag = self.buf[0];
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| (4..MAX_MESSAGE).contains(&l))
                    .ok_or_else(|| protocol(format!("bad message length {len}")))?;
                if self.buf.len() > len {
                    let mut message = self.buf.split_to(len + 1).freeze();
                    message.advance(5);
                    return Ok((tag, message));
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            if self.io.read_buf(&mut self.buf).await.map_err(io_error)? == 0 {
                return Err(protocol("the server closed the replication connection"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server end on a socket pair: the client side is a `WalStream` past start-up.
    fn pair() -> (WalStream, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let stream = WalStream {
            io: Box::new(client),
            buf: BytesMut::new(),
            out: BytesMut::new(),
        };
        (stream, server)
    }

    fn copy_data(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![b'd'];
        m.extend((payload.len() as i32 + 4).to_be_bytes());
        m.extend(payload);
        m
    }

    /// A framed primary keepalive.
    fn keepalive(wal_end: u64, reply: bool) -> Vec<u8> {
        let mut k = vec![b'k'];
        k.extend(wal_end.to_be_bytes());
        k.extend(0i64.to_be_bytes());
        k.push(u8::from(reply));
        copy_data(&k)
    }

    #[tokio::test]
    async fn reads_xlogdata_and_keepalives_split_anywhere() {
        let (mut stream, mut server) = pair();
        let mut w = vec![b'w'];
        w.extend(0x10u64.to_be_bytes());
        w.extend(0x20u64.to_be_bytes());
        w.extend(0i64.to_be_bytes());
        w.extend(b"Bpayload");
        let mut wire = copy_data(&w);
        wire.extend(keepalive(0x30, true));
        // One byte at a time: a message cut anywhere is completed by the next read.
        let writer = tokio::spawn(async move {
            for b in wire {
                server.write_all(&[b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        });
        assert_eq!(
            stream.next().await.unwrap(),
            Frame::Data {
                wal_start: 0x10,
                data: Bytes::from_static(b"Bpayload")
            }
        );
        assert_eq!(
            stream.next().await.unwrap(),
            Frame::Keepalive {
                wal_end: 0x30,
                reply_requested: true
            }
        );
        let mut server = writer.await.unwrap();
        // A status update: 'r', written, flushed, applied, clock, reply.
        stream.send_status(0x30, 0x20, false).await.unwrap();
        let mut got = [0u8; 1 + 4 + 34];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got[0], b'd');
        assert_eq!(got[5], b'r');
        assert_eq!(u64::from_be_bytes(got[6..14].try_into().unwrap()), 0x30);
        assert_eq!(u64::from_be_bytes(got[14..22].try_into().unwrap()), 0x20);
        assert_eq!(u64::from_be_bytes(got[22..30].try_into().unwrap()), 0x20);
        assert_eq!(got[38], 0);
    }

    #[tokio::test]
    async fn a_dropped_read_loses_nothing() {
        let (mut stream, mut server) = pair();
        let wire = keepalive(7, false);
        server.write_all(&wire[..6]).await.unwrap();
        // Half a message arrived: polling once returns nothing and keeps the half.
        assert!(futures_util::FutureExt::now_or_never(stream.next()).is_none());
        server.write_all(&wire[6..]).await.unwrap();
        assert_eq!(
            stream.next().await.unwrap(),
            Frame::Keepalive {
                wal_end: 7,
                reply_requested: false
            }
        );
    }

    #[tokio::test]
    async fn server_errors_and_bad_frames_are_errors() {
        let (mut stream, mut server) = pair();
        let mut e = vec![b'E'];
        let fields = b"SERROR\0C55006\0Mreplication slot \"s\" is active for PID 1\0\0";
        e.extend((fields.len() as i32 + 4).to_be_bytes());
        e.extend(fields);
        server.write_all(&e).await.unwrap();
        match stream.next().await {
            Err(Error::ReplicationServer { code, message }) => {
                assert_eq!(code, OBJECT_IN_USE);
                assert!(message.contains("is active"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        server.write_all(&copy_data(b"x")).await.unwrap();
        assert!(matches!(
            stream.next().await,
            Err(Error::ReplicationProtocol(_))
        ));
        drop(server);
        assert!(matches!(
            stream.next().await,
            Err(Error::ReplicationProtocol(_))
        ));
    }

    #[tokio::test]
    async fn slot_names_are_checked_before_anything_is_sent() {
        let (mut stream, _server) = pair();
        assert!(matches!(
            stream.start("x\" LOGICAL", "powersync", 0).await,
            Err(Error::Config(_))
        ));
        assert!(stream.out.is_empty());
    }
}
