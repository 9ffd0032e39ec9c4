//! The upstream connection: TCP, TLS when the target asks for it, the startup
//! message, and authentication with the credential Gatehouse holds (SCRAM-SHA-256,
//! MD5, or a cleartext password over TLS or loopback only).
//!
//! The password is only ever handed to the SCRAM exchange or the wire; errors name
//! the target, never the secret.

pub mod scram;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use gatehouse_core::config::{Secret, Target};
use gatehouse_proxy_common::Stream;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::backend::{error_fields, parameter_status};
use crate::wire::frame::{self, put, put_cstr};
use crate::wire::{Frame, Reader};

/// Why the upstream session could not be opened. Safe to log; never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP or TLS failed.
    #[error("cannot reach `{addr}`: {message}")]
    Connect {
        /// Upstream address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The server refused the login or the session.
    #[error("the upstream server refused the session: {code} {message}")]
    Refused {
        /// SQLSTATE.
        code: String,
        /// Server message.
        message: String,
    },
    /// Authentication could not be carried out.
    #[error("upstream authentication failed: {0}")]
    Auth(String),
    /// The server broke the protocol.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// A step of opening the session did not finish in time.
    #[error("`{addr}`: timed out after {} (`postgres.connect_timeout`) during {step}", humantime(*.after))]
    Timeout {
        /// Upstream address.
        addr: String,
        /// The step under way.
        step: Step,
        /// The configured timeout (`postgres.connect_timeout`).
        after: Duration,
    },
}

/// The steps of opening an upstream session, as a timeout names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// The TCP connection.
    Connect,
    /// `SSLRequest` and the TLS handshake.
    Tls,
    /// The startup message and the authentication exchange, until `AuthenticationOk`.
    Authenticate,
    /// After `AuthenticationOk`, until the server's first `ReadyForQuery`.
    Ready,
}

impl Step {
    const ALL: [Step; 4] = [Step::Connect, Step::Tls, Step::Authenticate, Step::Ready];
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Connect => "the TCP connection to the upstream",
            Step::Tls => "the TLS handshake with the upstream",
            Step::Authenticate => "the authentication with the upstream",
            Step::Ready => "the wait for the upstream to be ready (ReadyForQuery)",
        })
    }
}

/// The step a login is at, readable after its future was dropped by the timeout.
#[derive(Debug, Default)]
struct Progress(AtomicU8);

impl Progress {
    fn set(&self, step: Step) {
        self.0.store(step as u8, Ordering::Relaxed);
    }

    fn get(&self) -> Step {
        let n = self.0.load(Ordering::Relaxed);
        Step::ALL
            .into_iter()
            .find(|s| *s as u8 == n)
            .unwrap_or(Step::Connect)
    }
}

/// `10s`, `1.5s`, `250ms`.
pub(crate) fn humantime(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// An open upstream session, ready for queries.
pub struct Upstream {
    /// The connection.
    pub stream: Stream,
    /// `ParameterStatus` messages, as received (passed to the client verbatim).
    pub parameter_frames: BytesMut,
    /// Parameters by name.
    pub parameters: Vec<(String, String)>,
    /// The server's cancel key.
    pub key: (i32, i32),
    /// Where it is.
    pub addr: SocketAddr,
    /// Bytes read past the first `ReadyForQuery` (none in practice).
    pub leftover: BytesMut,
}

/// How to reach one target.
pub struct Connect<'a> {
    /// The target.
    pub target: &'a Target,
    /// The resolved password, when the target has one.
    pub password: Option<&'a Secret>,
    /// TLS client configuration when `target.tls`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Client parameters to pass on (`application_name`, `client_encoding`, ...).
    pub params: &'a [(String, String)],
    /// Connect and login timeout.
    pub timeout: Duration,
    /// SCRAM keys derived from target passwords, shared by the proxy's logins.
    pub keys: &'a scram::KeyCache,
}

fn connect_error(addr: &str, e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Connect {
        addr: addr.to_owned(),
        message: e.to_string(),
    }
}

/// Opens a TCP (and TLS) connection to `upstream` (`host:port`).
pub async fn dial(
    upstream: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Stream, SocketAddr), UpstreamError> {
    dial_tracked(upstream, tls, &Progress::default()).await
}

async fn dial_tracked(
    upstream: &str,
    tls: Option<&Arc<ClientConfig>>,
    progress: &Progress,
) -> Result<(Stream, SocketAddr), UpstreamError> {
    progress.set(Step::Connect);
    let tcp = TcpStream::connect(upstream)
        .await
        .map_err(|e| connect_error(upstream, e))?;
    let _ = tcp.set_nodelay(true);
    let addr = tcp.peer_addr().map_err(|e| connect_error(upstream, e))?;
    let Some(tls) = tls else {
        return Ok((Stream::Plain(tcp), addr));
    };
    progress.set(Step::Tls);
    let mut tcp = tcp;
    // SSLRequest
    tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
        .await
        .map_err(|e| connect_error(upstream, e))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| connect_error(upstream, e))?;
    if answer != *b"S" {
        return Err(connect_error(upstream, "the server does not accept TLS"));
    }
    let host = upstream
        .rsplit_once(':')
        .map_or(upstream, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|e| connect_error(upstream, e))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| connect_error(upstream, e))?;
    Ok((Stream::Client(Box::new(stream)), addr))
}

/// Connects and logs in, within `c.timeout`; a timeout names the step under way.
pub async fn connect(c: Connect<'_>) -> Result<Upstream, UpstreamError> {
    let addr = c.target.upstream.clone();
    let after = c.timeout;
    let progress = Progress::default();
    tokio::time::timeout(after, login(c, &progress))
        .await
        .map_err(|_| UpstreamError::Timeout {
            addr,
            step: progress.get(),
            after,
        })?
}

async fn read_frame(stream: &mut Stream, buf: &mut BytesMut) -> Result<Frame, UpstreamError> {
    loop {
        match frame::peek(buf, 1 << 24) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        if n == 0 {
            return Err(UpstreamError::Protocol(
                "the server closed the connection".into(),
            ));
        }
    }
}

fn need_password<'a>(c: &Connect<'a>) -> Result<&'a Secret, UpstreamError> {
    c.password.ok_or_else(|| {
        UpstreamError::Auth(format!(
            "the server asks for a password and target `{}` has none configured",
            c.target.name
        ))
    })
}

async fn login(c: Connect<'_>, progress: &Progress) -> Result<Upstream, UpstreamError> {
    let (mut stream, addr) = dial_tracked(&c.target.upstream, c.tls.as_ref(), progress).await?;
    progress.set(Step::Authenticate);
    let user = c.target.user.clone().unwrap_or_default();
    let mut out = BytesMut::new();
    {
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 0]);
        for (k, v) in [("user", user.as_str())]
            .into_iter()
            .chain(c.target.database.as_deref().map(|d| ("database", d)))
            .chain(c.params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            put_cstr(&mut out, k.as_bytes());
            put_cstr(&mut out, v.as_bytes());
        }
        out.extend_from_slice(&[0]);
        let len = u32::try_from(out.len() - start).unwrap_or(0).to_be_bytes();
        if let Some(slot) = out.get_mut(start..start + 4) {
            slot.copy_from_slice(&len);
        }
    }
    write(&mut stream, &mut out).await?;
    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<scram::Exchange> = None;
    let mut parameter_frames = BytesMut::new();
    let mut parameters = Vec::new();
    let mut key = (0, 0);
    loop {
        let f = read_frame(&mut stream, &mut buf).await?;
        let body = f.body(&buf).to_vec();
        let raw = buf.split_to(f.wire_len);
        match f.tag {
            b'R' => {
                let mut r = Reader::new(&body, "Authentication");
                let code = r
                    .i32()
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                let data = r.rest();
                match code {
                    0 => {
                        // A server that skips SCRAM's last message would skip
                        // proving that it knows the credential.
                        if scram.as_ref().is_some_and(|s| !s.verified()) {
                            return Err(UpstreamError::Auth(
                                "the server accepted the login without completing SCRAM (no server signature)".into(),
                            ));
                        }
                        progress.set(Step::Ready);
                    }
                    3 => {
                        let loopback = addr.ip().is_loopback();
                        if !stream.is_tls() && !loopback {
                            return Err(UpstreamError::Auth(
                                "the server asks for a cleartext password over an unencrypted connection; set `tls = true` on the target".into(),
                            ));
                        }
                        let p = need_password(&c)?;
                        put(&mut out, b'p', |b| put_cstr(b, p.expose().as_bytes()));
                        write(&mut stream, &mut out).await?;
                    }
                    5 => {
                        let p = need_password(&c)?;
                        let salt: [u8; 4] = data
                            .get(..4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| UpstreamError::Protocol("short MD5 salt".into()))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            user.as_bytes(),
                            p.expose().as_bytes(),
                            salt,
                        );
                        put(&mut out, b'p', |b| put_cstr(b, hash.as_bytes()));
                        write(&mut stream, &mut out).await?;
                    }
                    10 => {
                        let offered = data
                            .split(|&b| b == 0)
                            .any(|m| m == scram::MECHANISM.as_bytes());
                        if !offered {
                            return Err(UpstreamError::Auth(
                                "the server offers no SASL mechanism the gateway supports".into(),
                            ));
                        }
                        need_password(&c)?;
                        let s = scram::Exchange::start().map_err(scram_error)?;
                        put(&mut out, b'p', |b| {
                            put_cstr(b, scram::MECHANISM.as_bytes());
                            let m = s.client_first();
                            b.extend_from_slice(&i32::try_from(m.len()).unwrap_or(0).to_be_bytes());
                            b.extend_from_slice(&m);
                        });
                        scram = Some(s);
                        write(&mut stream, &mut out).await?;
                    }
                    11 => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::Protocol("SASLContinue before SASL".into())
                        })?;
                        let first = s.server_first(data).map_err(scram_error)?;
                        let p = need_password(&c)?;
                        let keys = c
                            .keys
                            .keys(p.expose().as_bytes(), &first.salt, first.iterations)
                            .await
                            .map_err(scram_error)?;
                        let last = s.client_final(&first, &keys).map_err(scram_error)?;
                        put(&mut out, b'p', |b| b.extend_from_slice(&last));
                        write(&mut stream, &mut out).await?;
                    }
                    12 => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::Protocol("SASLFinal before SASL".into())
                        })?;
                        s.server_final(data).map_err(scram_error)?;
                    }
                    other => {
                        return Err(UpstreamError::Auth(format!(
                            "unsupported authentication request {other}"
                        )));
                    }
                }
            }
            b'S' => {
                if let Some((k, v)) = parameter_status(&body) {
                    parameters.push((k.to_owned(), v.to_owned()));
                }
                parameter_frames.extend_from_slice(&raw);
            }
            b'K' => {
                let mut r = Reader::new(&body, "BackendKeyData");
                let pid = r
                    .i32()
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                let secret = r
                    .i32()
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                key = (pid, secret);
            }
            b'E' => {
                let (code, message) = error_fields(&body);
                return Err(UpstreamError::Refused { code, message });
            }
            b'N' | b'v' => {}
            b'Z' => {
                return Ok(Upstream {
                    stream,
                    parameter_frames,
                    parameters,
                    key,
                    addr,
                    leftover: buf,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message `{}` during login",
                    char::from(other)
                )));
            }
        }
    }
}

fn scram_error(e: scram::ScramError) -> UpstreamError {
    UpstreamError::Auth(e.to_string())
}

async fn write(stream: &mut Stream, out: &mut BytesMut) -> Result<(), UpstreamError> {
    stream
        .write_all(out)
        .await
        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    out.advance(out.len());
    Ok(())
}

/// Sends a `CancelRequest` for the upstream session `key` at `upstream`.
pub async fn cancel(
    upstream: &str,
    tls: Option<&Arc<ClientConfig>>,
    key: (i32, i32),
) -> Result<(), UpstreamError> {
    let (mut stream, _) = dial(upstream, tls).await?;
    let mut msg = Vec::with_capacity(16);
    msg.extend_from_slice(&16i32.to_be_bytes());
    msg.extend_from_slice(&80_877_102i32.to_be_bytes());
    msg.extend_from_slice(&key.0.to_be_bytes());
    msg.extend_from_slice(&key.1.to_be_bytes());
    stream
        .write_all(&msg)
        .await
        .map_err(|e| connect_error(upstream, e))?;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
