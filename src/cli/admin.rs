//! Starts the admin API inside `serve`.

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Engine;
use tokio::sync::watch;

/// Starts the admin API; returns its address for the ready line.
pub async fn start(
    engine: Arc<Engine>,
    config: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let scheme = if config.admin.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = gatehouse_admin::start(engine, config, shutdown).await?;
    Ok(format!("{scheme}://{addr}"))
}
