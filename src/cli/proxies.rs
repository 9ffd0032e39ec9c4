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
    if config.listen.ssh.is_some() {
        started.push(start_ssh(engine, config, shutdown.clone()).await?);
    }
    if let Some(addr) = config.listen.kubernetes {
        started.push(start_kubernetes(engine, config, addr, shutdown.clone()).await?);
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
    let mut options = gatehouse_proxy_postgres::Options {
        busy_poll: config.postgres.busy_poll,
        max_statements: config.postgres.max_statements,
        connect_timeout: config.postgres.connect_timeout,
        catalog_ttl: (!config.postgres.catalog_ttl.is_zero())
            .then_some(config.postgres.catalog_ttl),
        ..Default::default()
    };
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

/// The SSH proxy (`[listen] ssh`).
async fn start_ssh(
    engine: &Arc<Engine>,
    config: &Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let options = gatehouse_proxy_ssh::SshProxyOptions::from_config(config)?;
    let proxy = gatehouse_proxy_ssh::SshProxy::bind(engine.clone(), options).await?;
    let addr = proxy.local_addr()?;
    tracing::info!(message = "SSH proxy listening.", %addr, host_key = %proxy.host_public_key());
    tokio::spawn(proxy.run(shutdown));
    Ok(format!("ssh={addr}"))
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
