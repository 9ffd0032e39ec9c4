//! Starts the protocol proxies configured under `[listen]`.

use std::sync::Arc;

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
    if config.listen.postgres.is_some() || config.listen.kubernetes.is_some() {
        anyhow::bail!("the postgres and kubernetes proxies are not part of this build yet");
    }
    if config.listen.ssh.is_some() {
        started.push(start_ssh(engine, config, shutdown.clone()).await?);
    }
    Ok(started)
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
