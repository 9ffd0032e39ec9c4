//! Upgraded connections (exec, attach, port-forward, proxy): judged at the upgrade
//! like any request, then spliced byte for byte between kubectl and the API server
//! in one task, while a passive reader of each direction records what crossed as
//! `session_data` events (stdin as input, stdout as output, stderr and the error
//! channel as error; the Kubernetes channel number as the event's channel).

mod spdy;
mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::engine::{Engine, Session};
use gatehouse_events::EventId;
use gatehouse_events::payload::{DataDirection, ResultObserved, ResultStatus, SessionData};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub use spdy::SpdyObserver;
pub use ws::{Channels, WsObserver, accept_key, server_frame};

use crate::body::{ProxyBody, full};
use crate::sessions::Active;
use crate::status::status_json;

/// Bytes that crossed an upgraded connection, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Kubernetes channel (WebSocket) or SPDY stream id.
    pub channel: u32,
    /// Which way.
    pub direction: DataDirection,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Chunk {
    fn note(direction: DataDirection, text: &str) -> Self {
        Self {
            channel: 0,
            direction,
            data: text.as_bytes().to_vec(),
        }
    }
}

/// The protocol spoken after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// WebSocket with the negotiated channel framing.
    WebSocket(Channels),
    /// SPDY/3.1.
    Spdy,
}

enum Observer {
    Ws(WsObserver),
    Spdy(SpdyObserver),
}

impl Observer {
    fn new(protocol: StreamProtocol, from_client: bool) -> Self {
        match protocol {
            StreamProtocol::WebSocket(c) => Observer::Ws(WsObserver::new(from_client, c)),
            StreamProtocol::Spdy => Observer::Spdy(SpdyObserver::new(from_client)),
        }
    }

    fn feed(&mut self, data: &[u8], out: &mut Vec<Chunk>) {
        match self {
            Observer::Ws(o) => o.feed(data, out),
            Observer::Spdy(o) => o.feed(data, out),
        }
    }
}

/// An upgraded request to splice once both sides have switched protocols.
pub(crate) struct Splice {
    pub engine: Arc<Engine>,
    pub active: Active,
    pub request: EventId,
    pub started: Instant,
    pub protocol: StreamProtocol,
    /// Most bytes recorded per connection; the rest is relayed unrecorded.
    pub max_record: usize,
}

impl Splice {
    /// Splices the two upgraded connections until both directions end or the gateway
    /// closes the session, then records the result.
    pub async fn run(self, client: OnUpgrade, upstream: OnUpgrade) {
        let session = self.active.session.clone();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                self.finish(0, 0, Some(format!("the upgrade failed: {e}")))
                    .await;
                return;
            }
        };
        let (client_read, client_write) = tokio::io::split(TokioIo::new(client));
        let (upstream_read, upstream_write) = tokio::io::split(TokioIo::new(upstream));
        let (tx, rx) = mpsc::channel::<Chunk>(256);
        let recorder = tokio::spawn(record_chunks(
            self.engine.clone(),
            session.clone(),
            rx,
            self.max_record,
        ));
        let sent = AtomicU64::new(0);
        let received = AtomicU64::new(0);
        let up = pump(
            client_read,
            upstream_write,
            Observer::new(self.protocol, true),
            tx.clone(),
            &sent,
        );
        let down = pump(
            upstream_read,
            client_write,
            Observer::new(self.protocol, false),
            tx,
            &received,
        );
        let note = tokio::select! {
            _ = async { tokio::join!(up, down) } => None,
            reason = session.closed() => Some(format!("stream ended by the gateway: {reason}")),
        };
        let _ = recorder.await;
        self.finish(
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
            note,
        )
        .await;
    }

    async fn finish(self, sent: u64, received: u64, note: Option<String>) {
        let result = ResultObserved {
            request: Some(self.request),
            status: if note
                .as_deref()
                .is_some_and(|n| n.starts_with("the upgrade failed"))
            {
                ResultStatus::Error
            } else {
                ResultStatus::Ok
            },
            bytes: Some(sent + received),
            code: Some("101".into()),
            message: note,
            duration_us: Some(self.started.elapsed().as_micros() as u64),
            ..ResultObserved::default()
        };
        if let Err(error) = self
            .engine
            .record_result(&self.active.session, result)
            .await
        {
            tracing::error!(message = "Cannot record the end of a Kubernetes stream.", session = %self.active.session.id, %error);
        }
    }
}

/// Relays one direction, handing what it saw to the recorder.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut observer: Observer,
    tx: mpsc::Sender<Chunk>,
    count: &AtomicU64,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut chunks = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = buf.get(..n).unwrap_or_default();
        if to.write_all(data).await.is_err() || to.flush().await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        observer.feed(data, &mut chunks);
        for c in chunks.drain(..) {
            // A recorder that is gone (log failure) does not stop the relay: the
            // failure is already logged.
            let _ = tx.send(c).await;
        }
    }
    let _ = to.shutdown().await;
}

/// Appends recorded chunks to the log, up to `max` bytes.
async fn record_chunks(
    engine: Arc<Engine>,
    session: Arc<Session>,
    mut rx: mpsc::Receiver<Chunk>,
    max: usize,
) {
    let mut total = 0usize;
    let mut truncated = false;
    while let Some(c) = rx.recv().await {
        if truncated {
            continue;
        }
        let c = if total + c.data.len() > max {
            truncated = true;
            Chunk::note(
                c.direction,
                &format!("[gatehouse: recording stopped after {total} bytes; the stream goes on]"),
            )
        } else {
            total += c.data.len();
            c
        };
        let (text, base64) = match String::from_utf8(c.data) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(STANDARD.encode(e.as_bytes()))),
        };
        let data = SessionData {
            channel: c.channel,
            direction: c.direction,
            elapsed_us: session.elapsed_us(),
            text,
            base64,
        };
        if let Err(error) = engine.record_data(&session, data).await {
            tracing::error!(message = "Cannot record Kubernetes stream data.", session = %session.id, %error);
        }
    }
}

/// Exec subprotocols whose error channel carries a `Status` (preferred first).
const STATUS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Refuses a WebSocket exec or attach inside the stream: the handshake completes,
/// the refusal goes out as a `Status` on the error channel, and the connection
/// closes. kubectl prints the message once; a plain 403 on the handshake would make
/// it retry over SPDY (a second request, and for approvals a second hold). `None`
/// when the client offered no protocol with a `Status` error channel.
pub(crate) fn refuse_in_stream(
    headers: &HeaderMap,
    client: OnUpgrade,
    message: &str,
) -> Option<Response<ProxyBody>> {
    let key = headers.get("sec-websocket-key")?.to_str().ok()?;
    let offered: Vec<&str> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let protocol = STATUS_PROTOCOLS.iter().find(|p| offered.contains(p))?;
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept_key(key)).ok()?,
    );
    h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    let mut error = vec![3u8];
    error.extend_from_slice(&status_json(StatusCode::FORBIDDEN, message));
    tokio::spawn(async move {
        let Ok(upgraded) = client.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut out = server_frame(2, &error);
        out.extend(server_frame(8, &1000u16.to_be_bytes()));
        let _ = io.write_all(&out).await;
        let _ = io.flush().await;
        // Give the client a moment to read before the connection goes.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        let _ = io.shutdown().await;
    });
    Some(response)
}
