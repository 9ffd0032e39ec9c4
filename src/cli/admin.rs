//! The admin API (approvals, sessions, tokens, health, metrics).

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Engine;
use tokio::sync::watch;

/// Starts the admin API; returns its address.
pub async fn start(
    engine: Arc<Engine>,
    config: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let _ = (engine, shutdown);
    Ok(format!(
        "{} (not started: admin API pending)",
        config.admin.listen
    ))
}
