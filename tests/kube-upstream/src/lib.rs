//! A small Kubernetes API server for tests and benchmarks.
//!
//! No real API server can be installed on the machines Gatehouse is tested on, so the
//! tests run the real `kubectl` against Gatehouse, and Gatehouse forwards to this
//! server. It speaks HTTPS with a certificate signed by its own CA (the CA file is
//! what a Gatehouse target pins), refuses requests without its bearer token, and
//! answers what kubectl needs for the commands the tests run: version and legacy
//! discovery (`/api`, `/apis`, resource lists), pods (list, get, create, patch,
//! update, delete, `?watch=1`, server-side `Table` printing), secrets and config maps,
//! namespaces, deployments, `log?follow=true` streamed line by line, and `exec`/
//! `attach` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`). A SPDY upgrade
//! is answered with `101` and echoed back byte for byte (kubectl only falls back to
//! SPDY when WebSocket fails). [`KubeUpstream::freeze`] makes it a frozen API server
//! that reads requests and answers none.
//!
//! It is not a Kubernetes: no admission, no scheduling, strategic merge patches are
//! applied as JSON merge patches, and selectors are equality-only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test server: a failure here is a failed test, reported with a message"
)]

mod api;
mod exec;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

pub use store::Store;

/// Shared state of a running server.
pub struct State {
    /// The bearer token requests must carry.
    pub token: String,
    /// The objects.
    pub store: Store,
    /// Every authorized request, as `METHOD path?query`.
    pub requests: Mutex<Vec<String>>,
    /// Requests refused for a bad or missing token.
    pub unauthorized: Mutex<u64>,
    /// Wakes followed logs waiting for their next line.
    pub log_release: Notify,
    /// Lines a followed log emits after the first, once released.
    pub log_lines_after_release: usize,
    /// While true, authorized requests get no answer (a frozen API server): they
    /// wait until thawed, or the client gives up.
    pub frozen: watch::Sender<bool>,
}

/// A running server (stopped on drop).
pub struct KubeUpstream {
    /// Its address.
    pub addr: SocketAddr,
    /// The CA certificate (PEM) that signed its server certificate.
    pub ca: PathBuf,
    /// The state, for assertions.
    pub state: Arc<State>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// A CA and a server certificate for `127.0.0.1`/`localhost` signed by it, written
/// to `dir` as `ca.pem`, `server.pem`, `server-key.pem`.
pub fn write_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-upstream test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn acceptor(cert: &Path, key: &Path) -> TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

impl KubeUpstream {
    /// Starts a server on a free loopback port, with certificates in a temp dir.
    pub fn start(token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path(), token, 0, 2);
        s._dir = Some(dir);
        s
    }

    /// Starts a server with its certificates in `dir`, on `port` (0: any free one),
    /// on its own runtime with `threads` worker threads.
    pub fn start_in(dir: &Path, token: &str, port: u16, threads: usize) -> Self {
        let (ca, cert, key) = write_certificates(dir);
        let acceptor = acceptor(&cert, &key);
        let state = Arc::new(State {
            token: token.to_owned(),
            store: Store::seeded(),
            requests: Mutex::new(Vec::new()),
            unauthorized: Mutex::new(0),
            log_release: Notify::new(),
            log_lines_after_release: 2,
            frozen: watch::Sender::new(false),
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(listener, acceptor, st, stopped).await;
            });
        });
        Self {
            addr,
            ca,
            state,
            stop,
            thread: Some(thread),
            _dir: None,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Requests seen so far (`METHOD path?query`).
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Lets followed logs emit their remaining lines.
    pub fn release_logs(&self) {
        self.state.log_release.notify_waiters();
    }

    /// Freezes the server: connections are accepted and requests read, but no
    /// request is answered until [`thaw`](Self::thaw). Streams already answered
    /// (watch, `logs -f`) go on.
    pub fn freeze(&self) {
        self.state.frozen.send_replace(true);
    }

    /// Answers requests again, including those that waited.
    pub fn thaw(&self) {
        self.state.frozen.send_replace(false);
    }
}

impl Drop for KubeUpstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = stop.wait_for(|s| *s) => return,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(api::handle(state, req).await) }
            });
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            let mut stop = stop;
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
