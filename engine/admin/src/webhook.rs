//! Approval notifications: a Slack-compatible incoming-webhook POST.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use gatehouse_core::engine::{Notifier, PendingApproval};
use hyper::Method;
use serde_json::json;

use crate::client::HttpClient;

/// Posts each approval request to a webhook (3 attempts, then logs and gives up; the
/// approval stays visible in the API and CLI either way), signed when a secret is set.
pub struct WebhookNotifier {
    url: String,
    public_url: String,
    client: HttpClient,
    /// Signs each request (`approvals.webhook_secret`) so the receiver can check it
    /// came from this gateway.
    key: Option<Arc<hmac::Key>>,
}

/// Header with the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-gatehouse-timestamp";
/// Header with `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-gatehouse-signature";

impl WebhookNotifier {
    /// A notifier for `url`; `public_url` is the admin API as reviewers reach it;
    /// `secret` signs each request.
    pub fn new(url: String, public_url: String, secret: Option<&[u8]>) -> Arc<Self> {
        Arc::new(Self {
            url,
            public_url: public_url.trim_end_matches('/').to_owned(),
            client: HttpClient::new(Duration::from_secs(10)),
            key: secret.map(|s| Arc::new(hmac::Key::new(hmac::HMAC_SHA256, s))),
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
        // The context a reviewer decides on: why the rule asked, the stated reason,
        // and the chain's earlier steps.
        let mut context = String::new();
        if let Some(m) = &a.message {
            context.push_str(&format!("\n*why:* {m}"));
        }
        if let Some(r) = &a.reason {
            context.push_str(&format!("\n*stated reason:* {r}"));
        }
        for step in &a.chain {
            context.push_str(&format!(
                "\n• {} `{}`: {}",
                step.protocol, step.target, step.summary
            ));
            if !step.captured.is_empty() {
                context.push_str(&format!(" (read: {})", step.captured.join(", ")));
            }
        }
        json!({
            "text": format!("{text}{context}"),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Approval needed* `{}`\n{who} on `{}`\n```{}```\nrule `{}` · group `{}` · expires {}{context}", a.id, a.target, a.command, a.rule, a.group, a.deadline.to_rfc3339()) } },
                // The decision routes take an authenticated POST, which a chat link
                // button (a browser GET) cannot make: the message says how to decide
                // instead of offering buttons that would fail.
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": format!("Approve: `gatehouse approvals approve {}` (add `--for 30m` to grant a while)", a.id) },
                    { "type": "mrkdwn", "text": format!("Deny: `gatehouse approvals deny {} --reason ...`", a.id) }
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
        let body = match serde_json::to_vec(&self.body(approval)) {
            Ok(b) => hyper::body::Bytes::from(b),
            Err(error) => {
                tracing::warn!(message = "Cannot encode the approval webhook.", approval = %approval.id, %error);
                return;
            }
        };
        let client = self.client.clone();
        let url = self.url.clone();
        let id = approval.id.clone();
        let key = self.key.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            for attempt in 1..=3u32 {
                // Signed per attempt: the timestamp says when this one was sent.
                let headers = headers(key.as_deref(), &body);
                match client
                    .send_bytes(Method::POST, &url, &headers, body.clone())
                    .await
                {
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

/// Content type, and with a key the timestamp and signature headers.
fn headers(key: Option<&hmac::Key>, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut h = vec![("content-type", "application/json".to_owned())];
    if let Some(key) = key {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        h.push((TIMESTAMP_HEADER, now.to_string()));
        h.push((SIGNATURE_HEADER, format!("v1={}", sign(key, now, body))));
    }
    h
}

/// Hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(key: &hmac::Key, timestamp: u64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    use super::{WebhookNotifier, hmac, redacted, sign};

    #[test]
    fn the_body_carries_what_the_reviewer_decides_on() {
        use gatehouse_core::engine::PendingApproval;
        use gatehouse_events::EventId;
        use gatehouse_events::payload::ChainStep;
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let a = PendingApproval {
            id: "apr-1".into(),
            request: EventId::from_u128(3),
            identity: "deploy-bot".into(),
            on_behalf_of: None,
            target: "prod-k8s".into(),
            command: "POST /api/v1/namespaces/default/pods".into(),
            rule: "pg_ssh_k8s".into(),
            group: "sre-oncall".into(),
            requested_at: at,
            deadline: at,
            waiting: true,
            message: Some("deploy-bot read infra hosts".into()),
            reason: Some("OPS-1".into()),
            summary: Some("create Pod default/debug".into()),
            chain: vec![ChainStep {
                event: EventId::from_u128(1),
                protocol: "postgres".into(),
                target: "app-db".into(),
                summary: "SELECT hostname FROM infra.hosts".into(),
                captured: vec!["db-1.internal".into()],
                ..ChainStep::default()
            }],
        };
        let n = WebhookNotifier::new("http://127.0.0.1:9/hook".into(), "http://gw".into(), None);
        let body = n.body(&a);
        let text = body["text"].as_str().unwrap_or_default();
        for needle in [
            "deploy-bot read infra hosts",
            "OPS-1",
            "SELECT hostname FROM infra.hosts",
            "db-1.internal",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert_eq!(body["approval"]["chain"][0]["captured"][0], "db-1.internal");
        assert_eq!(body["approval"]["summary"], "create Pod default/debug");
    }

    #[test]
    fn signatures_match_an_independent_hmac_sha256() {
        // python3: hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        assert_eq!(
            sign(&key, 1_700_000_000, br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

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
