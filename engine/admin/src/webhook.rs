//! Approval notifications: a Slack-compatible incoming-webhook POST.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::engine::{Notifier, PendingApproval};
use hyper::Method;
use serde_json::json;

use crate::client::HttpClient;

/// Posts each approval request to a webhook (3 attempts, then logs and gives up; the
/// approval stays visible in the API and CLI either way).
pub struct WebhookNotifier {
    url: String,
    public_url: String,
    client: HttpClient,
}

impl WebhookNotifier {
    /// A notifier for `url`; `public_url` is the admin API as reviewers reach it.
    pub fn new(url: String, public_url: String) -> Arc<Self> {
        Arc::new(Self {
            url,
            public_url: public_url.trim_end_matches('/').to_owned(),
            client: HttpClient::new(Duration::from_secs(10)),
        })
    }

    /// The JSON body for an approval.
    pub fn body(&self, a: &PendingApproval) -> serde_json::Value {
        let approve = format!("{}/v1/approvals/{}/approve", self.public_url, a.id);
        let deny = format!("{}/v1/approvals/{}/deny", self.public_url, a.id);
        let who = match &a.on_behalf_of {
            Some(p) => format!("`{}` (for {p})", a.identity),
            None => format!("`{}`", a.identity),
        };
        let text = format!(
            "Gatehouse: {who} wants to run on `{}`: `{}` — rule `{}` asks group `{}` to approve {} before {}. `gatehouse approvals approve {}` / `gatehouse approvals deny {} --reason ...`",
            a.target,
            a.command,
            a.rule,
            a.group,
            a.id,
            a.deadline.to_rfc3339(),
            a.id,
            a.id
        );
        json!({
            "text": text,
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Approval needed* `{}`\n{who} on `{}`\n```{}```\nrule `{}` · group `{}` · expires {}", a.id, a.target, a.command, a.rule, a.group, a.deadline.to_rfc3339()) } },
                { "type": "actions", "elements": [
                    { "type": "button", "style": "primary", "text": { "type": "plain_text", "text": "Approve" }, "url": approve, "value": a.id },
                    { "type": "button", "style": "danger", "text": { "type": "plain_text", "text": "Deny" }, "url": deny, "value": a.id }
                ] }
            ],
            "approval": a,
            "approve_url": approve,
            "deny_url": deny,
        })
    }
}

impl Notifier for WebhookNotifier {
    fn approval_requested(&self, approval: &PendingApproval) {
        let body = self.body(approval);
        let client = self.client.clone();
        let url = self.url.clone();
        let id = approval.id.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            for attempt in 1..=3u32 {
                match client.send(Method::POST, &url, None, Some(&body)).await {
                    Ok((status, _)) if status.is_success() => return,
                    Ok((status, _)) => tracing::warn!(message = "Approval webhook refused.", approval = %id, %status, attempt),
                    Err(error) => {
                        // Webhook URLs (Slack's, for one) carry a secret in their path:
                        // log only the scheme and host.
                        let error = error.to_string().replace(&url, &redacted(&url));
                        tracing::warn!(message = "Approval webhook failed.", approval = %id, %error, attempt);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        });
    }
}

/// `scheme://host[:port]/…` of a URL: what may be logged of a webhook address.
fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/…")
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn webhook_urls_are_logged_without_path_query_or_userinfo() {
        assert_eq!(
            redacted("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redacted("http://user:pw@127.0.0.1:9/x?token=s"),
            "http://127.0.0.1:9/…"
        );
    }
}
