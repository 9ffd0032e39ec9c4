//! The Gatehouse Kubernetes API proxy.
//!
//! Agents reach it over HTTPS with a Gatehouse token as their bearer token (a
//! kubeconfig from `gatehouse token issue --kubeconfig`). Each request is parsed into
//! a `K8sRequest` (verb, group, version, resource, namespace, name, subresource,
//! selectors, and the pod template fields of pod and workload writes), judged by the
//! engine — which appends the request and its decision to the log first — and then
//! forwarded to the target's API server with the credential Gatehouse holds, refused
//! with a Kubernetes `Status`, or held for approval. Responses stream back unbuffered
//! (watch, `logs -f`), `Secret` data is masked per the rules, exec/attach/port-forward
//! upgrades are spliced and recorded, and every response's status is recorded.
//!
//! Fail closed: a request that cannot be parsed, a policy or log failure, or a
//! response that cannot be masked is refused; nothing is forwarded unjudged.

#![warn(missing_docs)]

mod body;
mod handler;
pub mod mask;
pub mod parse;
mod sessions;
pub mod status;
pub mod stream;
pub mod tls;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Engine;
use gatehouse_events::Protocol;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use upstream::Upstream;

/// Proxy settings.
#[derive(Clone)]
pub struct Options {
    /// The HTTPS front's TLS configuration (see [`tls::server_config`]).
    pub tls: Arc<rustls::ServerConfig>,
    /// Largest request body read (and judged); larger requests are refused. The API
    /// server's own limit is 3 MiB.
    pub max_request_body: usize,
    /// Largest response buffered for masking (a `Secret` list).
    pub max_masked_body: usize,
    /// Bytes of each response kept as the `result_observed` sample.
    pub sample_bytes: usize,
    /// Bytes of each exec/attach/port-forward stream recorded.
    pub max_stream_record: usize,
    /// A session unused this long is closed.
    pub idle_session: Duration,
}

impl Options {
    /// Defaults around a TLS configuration.
    pub fn new(tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tls,
            max_request_body: 3 * 1024 * 1024,
            max_masked_body: 64 * 1024 * 1024,
            sample_bytes: 2048,
            max_stream_record: 4 * 1024 * 1024,
            idle_session: Duration::from_secs(300),
        }
    }
}

/// Setting the proxy up failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A certificate or key.
    #[error("TLS: {0}")]
    Tls(String),
    /// A target's configuration.
    #[error("{0}")]
    Target(String),
}

/// The proxy.
pub struct KubeProxy {
    shared: Arc<handler::Shared>,
}

impl KubeProxy {
    /// Builds the proxy for every `kubernetes` target of `config`, resolving their
    /// credentials now (a missing secret stops the gateway from starting).
    pub fn new(engine: Arc<Engine>, config: &Config, options: Options) -> Result<Self, ProxyError> {
        let mut upstreams = HashMap::new();
        for t in config
            .targets
            .iter()
            .filter(|t| t.protocol == Protocol::Kubernetes)
        {
            upstreams.insert(t.name.clone(), Arc::new(Upstream::from_target(t)?));
        }
        let sessions = Arc::new(sessions::Sessions::new(
            engine.clone(),
            upstreams,
            options.idle_session,
        ));
        Ok(Self {
            shared: Arc::new(handler::Shared {
                engine,
                sessions,
                options,
            }),
        })
    }

    /// Serves connections from `listener` until `shutdown` turns true, then closes
    /// the sessions.
    pub async fn serve(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let acceptor = TlsAcceptor::from(self.shared.options.tls.clone());
        let reaper = tokio::spawn(self.shared.sessions.clone().run_reaper());
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(message = "Kubernetes proxy accept failed.", %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(
                self.shared.clone(),
                acceptor.clone(),
                stream,
                peer,
            ));
        }
        reaper.abort();
        self.shared
            .sessions
            .close_all("gateway shutting down")
            .await;
    }
}

async fn serve_connection(
    shared: Arc<handler::Shared>,
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(message = "Kubernetes proxy TLS handshake failed.", %peer, %error);
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handler::handle(shared, peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    if let Err(error) = conn.await {
        tracing::debug!(message = "Kubernetes proxy connection ended with an error.", %peer, %error);
    }
}
