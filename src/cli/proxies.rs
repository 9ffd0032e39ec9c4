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
    if let Some(addr) = config.listen.postgres {
        started.push(start_postgres(engine, config, addr, shutdown.clone()).await?);
    }
    if config.listen.ssh.is_some() || config.listen.kubernetes.is_some() {
        anyhow::bail!("the SSH and Kubernetes proxies are not part of this build yet");
    }
    Ok(started)
}

/// The PostgreSQL proxy. Its TLS certificate is the admin API's (`admin.cert`,
/// `admin.key`) until the configuration has one of its own.
async fn start_postgres(
    engine: &Arc<Engine>,
    config: &Arc<Config>,
    addr: std::net::SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let mut options = gatehouse_proxy_postgres::Options::default();
    if let (Some(cert), Some(key)) = (&config.admin.cert, &config.admin.key) {
        options.tls = Some(
            gatehouse_proxy_common::server_config(cert, key)
                .context("the PostgreSQL proxy's TLS certificate")?,
        );
    }
    let proxy = gatehouse_proxy_postgres::PgProxy::new(engine.clone(), config.clone(), options)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (listen.postgres)"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(proxy.serve(listener, shutdown));
    Ok(format!("postgres={bound}"))
}
