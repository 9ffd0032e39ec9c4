//! Approval notifications: a Slack-compatible webhook.

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Notifier;

/// The configured webhook notifier, if any.
pub fn webhook(config: &Config) -> Option<Arc<dyn Notifier>> {
    let _ = config;
    None
}
