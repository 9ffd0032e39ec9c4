//! Starts the protocol proxies configured under `[listen]`.

use std::sync::Arc;

use anyhow::Context;
use gatehouse_core::config::Config;
use gatehouse_core::engine::Engine;
use tokio::sync::watch;

/// Binds and starts every configured proxy; returns `protocol=address` strings.
pub async fn start(
    engine: &Arc<Engine>,
    config: &Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Vec<String>> {
    let mut started = Vec::new();
    if config.listen.postgres.is_some() || config.listen.ssh.is_some() {
        anyhow::bail!("the PostgreSQL and SSH proxies are not part of this build yet");
    }
    if let Some(addr) = config.listen.kubernetes {
        started.push(start_kubernetes(engine, config, addr, shutdown.clone()).await?);
    }
    Ok(started)
}

/// The Kubernetes API proxy (HTTPS; a self-signed certificate under
/// `<data_dir>/kubernetes/` unless `listen.kubernetes_cert` is set).
async fn start_kubernetes(
    engine: &Arc<Engine>,
    config: &Arc<Config>,
    addr: std::net::SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    use gatehouse_proxy_kubernetes::{KubeProxy, Options, tls};
    let configured = config
        .listen
        .kubernetes_cert
        .as_deref()
        .zip(config.listen.kubernetes_key.as_deref());
    let (cert, key) = tls::front_certificate(configured, &config.data_dir.join("kubernetes"), addr)
        .context("the Kubernetes proxy's TLS certificate")?;
    let options = Options::new(
        tls::server_config(&cert, &key).context("the Kubernetes proxy's TLS certificate")?,
    );
    let proxy = KubeProxy::new(engine.clone(), config, options)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (listen.kubernetes)"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(proxy.serve(listener, shutdown));
    Ok(format!("kubernetes={bound}"))
}
