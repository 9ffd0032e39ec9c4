//! `/healthz`: readiness to serve, for load balancers and operators.
//!
//! Ready means every command can be judged and recorded: the event log accepts
//! appends and a policy is loaded. Then the answer is `200`; otherwise `503`, with the
//! reason, so a load balancer takes the gateway out of rotation while its log is
//! failed (a full disk) and back once it has recovered. Upstream reachability is
//! reported beside it, probed in the background (a TCP connect per target every
//! [`PROBE_INTERVAL`]), and does not decide readiness: one unreachable database
//! should not take the gateway's other targets down with it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gatehouse_core::config::Target;
use serde::Serialize;
use serde_json::json;

/// Time between two probes of the upstreams.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// Longest a probe's connect may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One target's last probe.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    /// Target name.
    pub target: String,
    /// Protocol.
    pub protocol: String,
    /// `host:port` probed.
    pub address: String,
    /// Whether a TCP connection opened (`None` before the first probe).
    pub reachable: Option<bool>,
    /// Why not.
    pub error: Option<String>,
    /// Connect time of the last probe, in milliseconds.
    pub connect_ms: Option<u64>,
    /// When it was probed.
    pub checked_at: Option<DateTime<Utc>>,
}

/// One TCP connect: reachable, why not, connect time.
async fn probe(addr: String) -> (bool, Option<String>, Option<u64>) {
    let start = Instant::now();
    let r = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await;
    match r {
        Ok(Ok(_)) => (true, None, Some(start.elapsed().as_millis() as u64)),
        Ok(Err(e)) => (false, Some(e.to_string()), None),
        Err(_) => (
            false,
            Some(format!("no connection within {PROBE_TIMEOUT:?}")),
            None,
        ),
    }
}

/// The upstreams' reachability, refreshed by [`Upstreams::run`].
#[derive(Debug, Default)]
pub struct Upstreams {
    status: Mutex<Vec<UpstreamStatus>>,
}

/// The `host:port` a target's upstream is reached at.
fn address(upstream: &str) -> String {
    let rest = upstream
        .strip_prefix("https://")
        .or_else(|| upstream.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let authority = r.split('/').next().unwrap_or(r);
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if has_port {
                authority.to_owned()
            } else {
                format!("{authority}:443")
            }
        }
        None => upstream.to_owned(),
    }
}

impl Upstreams {
    /// Statuses (not yet probed) for `targets`.
    pub fn new(targets: &[Target]) -> Self {
        Self {
            status: Mutex::new(
                targets
                    .iter()
                    .map(|t| UpstreamStatus {
                        target: t.name.clone(),
                        protocol: t.protocol.as_str().into(),
                        address: address(&t.upstream),
                        reachable: None,
                        error: None,
                        connect_ms: None,
                        checked_at: None,
                    })
                    .collect(),
            ),
        }
    }

    /// The last probe of every target.
    pub fn snapshot(&self) -> Vec<UpstreamStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Probes every target now, concurrently.
    pub async fn probe(&self) {
        let addresses: Vec<String> = self.snapshot().into_iter().map(|s| s.address).collect();
        let probes: Vec<_> = addresses
            .into_iter()
            .map(|addr| tokio::spawn(probe(addr)))
            .collect();
        let mut results = Vec::with_capacity(probes.len());
        for p in probes {
            results.push(
                p.await
                    .unwrap_or_else(|e| (false, Some(e.to_string()), None)),
            );
        }
        let now = Utc::now();

        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        for (s, (ok, error, ms)) in status.iter_mut().zip(results) {
            s.reachable = Some(ok);
            s.error = error;
            s.connect_ms = ms;
            s.checked_at = Some(now);
        }
    }

    /// Probes every [`PROBE_INTERVAL`] until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.probe().await;
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}

type AppState = Arc<crate::AdminState>;

/// Whether the gateway can judge and record commands, and why not.
pub fn readiness(s: &crate::AdminState) -> (bool, serde_json::Value) {
    let log = s.engine.log();
    let failure = log.failure();
    let policy = s.engine.policy().current();
    let log_json = json!({
        "writable": failure.is_none(),
        "next_offset": log.next_offset(),
        "durable_offset": log.durable_offset(),
        "error": failure.as_ref().map(|f| f.error.as_str()),
        "since": failure.as_ref().map(|f| f.since),
        "refused_appends": failure.as_ref().map_or(0, |f| f.refused_appends),
        "recovery_attempts": failure.as_ref().map_or(0, |f| f.failed_attempts),
    });
    let ready = failure.is_none();
    (
        ready,
        json!({
            "status": if ready { "ok" } else { "unavailable" },
            "ready": ready,
            "gateway": s.engine.gateway_id(),
            "log": log_json,
            "policy": {
                "loaded": true,
                "version": policy.version(),
                "rules": policy.rules().rule_count(),
            },
            "upstreams": s.upstreams.snapshot(),
            // Kept for scripts written against earlier versions.
            "log_next_offset": log.next_offset(),
            "policy_version": policy.version(),
        }),
    )
}

/// `GET /healthz`: `200` when ready, `503` when not, with the details.
pub async fn health(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (ready, body) = readiness(&s);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_of_upstreams() {
        assert_eq!(address("127.0.0.1:5432"), "127.0.0.1:5432");
        assert_eq!(address("https://10.0.0.1:6443"), "10.0.0.1:6443");
        assert_eq!(address("https://kube.internal/"), "kube.internal:443");
        assert_eq!(address("https://[::1]:6443/api"), "[::1]:6443");
    }
}
