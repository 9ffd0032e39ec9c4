//! Approval notifications.

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Notifier;

/// The configured webhook notifier, if any.
pub fn webhook(config: &Config) -> anyhow::Result<Option<Arc<dyn Notifier>>> {
    let Some(url) = config.approvals.webhook.clone() else {
        return Ok(None);
    };
    let secret = config
        .approvals
        .webhook_secret
        .as_ref()
        .map(|s| s.resolve())
        .transpose()
        .map_err(|e| anyhow::anyhow!("approvals.webhook_secret: {e}"))?;
    let public = config.approvals.public_url.clone().unwrap_or_else(|| {
        let scheme = if config.admin.cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", config.admin.listen)
    });
    Ok(Some(gatehouse_admin::webhook::WebhookNotifier::new(
        url,
        public,
        secret.as_ref().map(|s| s.expose().as_bytes()),
    )))
}
