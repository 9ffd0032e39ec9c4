//! The admin listener: a bounded number of connections, each served as HTTP/1 with a
//! header-read timeout, over TLS when configured; and the request-body bound every
//! request passes before routing.
//!
//! A client that opens connections and sends nothing, or half a request, must not
//! hold the API: headers are due within `admin.read_timeout`, the body within it
//! again, and connections beyond `admin.max_connections` are closed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::config::AdminSection;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// The listener's bounds (`[admin]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Headers, then the body, each due within this.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
}

impl Limits {
    /// The bounds configured in `[admin]`.
    pub fn from_config(admin: &AdminSection) -> Self {
        Self {
            read_timeout: admin.read_timeout,
            max_connections: admin.max_connections,
            max_request_bytes: admin.max_request_bytes,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, within `limits`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(message = "Admin API accept failed.", %error);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // One line a minute at most: a flood must not flood the log too.
            if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_warned = Some(Instant::now());
                tracing::warn!(
                    message = "Admin API connection refused: too many connections.",
                    %peer,
                    max_connections = limits.max_connections
                );
            }
            if tls.is_none() {
                refuse_plain(&stream);
            }
            continue;
        };
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, tls, app, limits.read_timeout).await;
            drop(permit);
        });
    }
}

/// A best-effort `503` to a plain-HTTP client over the limit, without waiting for it.
fn refuse_plain(stream: &TcpStream) {
    const BODY: &str = "{\"error\":\"too many connections to the admin API; try again later\"}";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    read_timeout: Duration,
) {
    let service = hyper_util::service::TowerToHyperService::new(
        app.layer(axum::Extension(axum::extract::ConnectInfo(peer))),
    );
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let served = match tls {
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
        Some(acceptor) => {
            let Ok(Ok(tls)) = tokio::time::timeout(read_timeout, acceptor.accept(stream)).await
            else {
                tracing::debug!(message = "Admin TLS handshake failed.", %peer);
                return;
            };
            builder.serve_connection(TokioIo::new(tls), service).await
        }
    };
    if let Err(error) = served {
        tracing::debug!(message = "Admin API connection ended with an error.", %peer, %error);
    }
}

/// Reads the whole request body, at most `max_request_bytes` of it and within
/// `read_timeout`, before the request is routed: a larger body is `413`, a slower
/// one `408`.
pub async fn bound_body(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes (admin.max_request_bytes)",
                limits.max_request_bytes
            ),
        )
    };
    if declared.is_some_and(|n| n > limits.max_request_bytes as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        limits.read_timeout,
        Limited::new(body, limits.max_request_bytes).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} (admin.read_timeout)",
                    humantime::format_duration(limits.read_timeout)
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn error(status: StatusCode, message: String) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    // The unread rest of the body makes the connection unusable.
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
