//! Approval notifications.

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Notifier;

/// The configured webhook notifier, if any.
pub fn webhook(config: &Config) -> Option<Arc<dyn Notifier>> {
    let url = config.approvals.webhook.clone()?;
    let public = config.approvals.public_url.clone().unwrap_or_else(|| {
        let scheme = if config.admin.cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", config.admin.listen)
    });
    Some(gatehouse_admin::webhook::WebhookNotifier::new(url, public))
}
