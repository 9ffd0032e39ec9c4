//! One request: authenticate, parse, judge, enforce, forward, record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gatehouse_core::engine::{Decision, Enforcement, Engine, RefusalKind};
use gatehouse_events::payload::{
    DecisionMade, Effect, K8sRequest, RequestDetail, RequestObserved, ResultObserved, ResultStatus,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};

use crate::Options;
use crate::body::{MaskStats, Outcome, ProxyBody, Recorded, WatchMasker, full};
use crate::mask::{Maskable, Masker};
use crate::parse::{self, Parsed, Upgrade};
use crate::sessions::{Active, SessionError, Sessions};
use crate::status::status_response;
use crate::stream::{Channels, Splice, StreamProtocol, refuse_in_stream};

/// What every request handler shares.
pub(crate) struct Shared {
    pub engine: Arc<Engine>,
    pub sessions: Arc<Sessions>,
    pub options: Options,
}

/// Hop-by-hop headers, never forwarded either way (RFC 9110 §7.6.1), plus those the
/// proxy sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Splits `/targets/NAME/rest` into (`NAME`, `/rest`): the server URL of a
/// kubeconfig for a federated token, which does not name its target.
fn target_prefix(path: &str) -> Result<(Option<&str>, &str), &'static str> {
    let Some(rest) = path.strip_prefix("/targets/") else {
        return Ok((None, path));
    };
    let (name, rest) = match rest.find('/') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i..).unwrap_or_default(),
        ),
        None => (rest, "/"),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("the `/targets/NAME` prefix names no valid target");
    }
    Ok((Some(name), rest))
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or("")
}

/// Handles one request; every failure becomes a Kubernetes `Status`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let (requested, path) = match target_prefix(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return status_response(StatusCode::NOT_FOUND, &format!("gatehouse: {e}")),
    };
    let path = path.to_owned();
    let requested = requested.map(str::to_owned);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let active = match shared
        .sessions
        .get(
            bearer(&parts.headers),
            requested.as_deref(),
            peer,
            user_agent,
        )
        .await
    {
        Ok(a) => a,
        Err(SessionError::Auth(e)) => {
            return status_response(StatusCode::UNAUTHORIZED, &format!("gatehouse: {e}"));
        }
        Err(e @ SessionError::NoUpstream(_)) => {
            return status_response(StatusCode::FORBIDDEN, &format!("gatehouse: {e}"));
        }
        Err(SessionError::Engine(e)) => {
            tracing::error!(message = "Cannot open a Kubernetes session.", error = %e);
            return status_response(StatusCode::SERVICE_UNAVAILABLE, &format!("gatehouse: {e}"));
        }
    };
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let query = parts.uri.query().map(str::to_owned);
    let request = Req {
        shared: &shared,
        active,
        method: parts.method.clone(),
        path,
        query,
        headers: std::mem::take(&mut parts.headers),
    };
    request.run(body, client_upgrade).await
}

struct Req<'s> {
    shared: &'s Arc<Shared>,
    active: Active,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl Req<'_> {
    fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    async fn run(self, body: Incoming, client_upgrade: Option<OnUpgrade>) -> Response<ProxyBody> {
        let mut parsed = match parse::parse_request(
            &self.method,
            &self.path,
            self.query.as_deref(),
            &self.headers,
        ) {
            Ok(p) => p,
            Err(e) => return self.unparsed(StatusCode::BAD_REQUEST, &e.0).await,
        };
        let body = match self.read_body(body).await {
            Ok(b) => b,
            Err((code, message)) => return self.unparsed(code, &message).await,
        };
        if matches!(parsed.detail.verb.as_str(), "create" | "update" | "patch") {
            let content_type = self
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            match parse::parse_body(
                content_type,
                &body,
                &parsed.detail.resource,
                parsed.detail.subresource.as_deref(),
            ) {
                Ok(pod) => parsed.detail.pod = pod,
                Err(e) => return self.unparsed(StatusCode::BAD_REQUEST, &e.0).await,
            }
        }
        let command = parsed.command(self.query.as_deref());
        // `X-Gatehouse-Reason`: the reason the agent states, recorded on this and later
        // requests of the session and shown to reviewers.
        if let Some(reason) = self
            .headers
            .get("x-gatehouse-reason")
            .and_then(|v| v.to_str().ok())
        {
            self.active.session.set_reason(reason);
        }
        let decision = match self
            .engine()
            .decide(
                &self.active.session,
                command,
                RequestDetail::Kubernetes(parsed.detail.clone()),
            )
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(message = "Cannot judge a Kubernetes request; refusing.", session = %self.active.session.id, error = %e);
                return status_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("gatehouse: {e}"),
                );
            }
        };
        match decision.enforcement() {
            Enforcement::Run => {}
            Enforcement::Refuse(r) => {
                return self
                    .refuse(
                        &decision,
                        &parsed,
                        client_upgrade,
                        &format!("gatehouse: {}", r.message),
                    )
                    .await;
            }
            Enforcement::Hold { .. } => {
                // If the client goes away while held, hyper drops this future: the
                // guard records that the request never ran.
                let abandoned = Abandoned::new(self.engine(), &self.active, &decision);
                let waited = self.wait(&decision).await;
                abandoned.disarm();
                if let Err(message) = waited {
                    return self
                        .refuse(&decision, &parsed, client_upgrade, &message)
                        .await;
                }
            }
        }
        self.forward(parsed, decision, body, client_upgrade).await
    }

    /// Reads a request body, bounded.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, (StatusCode, String)> {
        let limit = self.shared.options.max_request_body;
        match Limited::new(body, limit).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes"),
            )),
            Err(e) => Err((
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            )),
        }
    }

    /// Waits for a held request's approval; `Err` carries the refusal message. Dropped
    /// before an outcome (the client left) or ended with the session, the approval
    /// is withdrawn.
    async fn wait(&self, decision: &Decision) -> Result<(), String> {
        // hyper drops this future when the client goes away: the guard then
        // withdraws the approval, so that a reviewer cannot approve it later.
        let mut guard = WithdrawOnDrop {
            engine: self.engine().clone(),
            decision: Some(decision.clone()),
        };
        let waited = self
            .engine()
            .await_approval(&self.active.session, decision)
            .await;
        if !matches!(&waited, Err(r) if r.kind == RefusalKind::Abandoned) {
            guard.decision = None;
        }
        waited
            .map(|_| ())
            .map_err(|r| format!("gatehouse: {}", r.message))
    }

    /// Refuses a judged request (block, denied or expired approval) and records it.
    async fn refuse(
        &self,
        decision: &Decision,
        parsed: &Parsed,
        client_upgrade: Option<OnUpgrade>,
        message: &str,
    ) -> Response<ProxyBody> {
        self.record_refusal(decision.request, StatusCode::FORBIDDEN, message)
            .await;
        if parsed.upgrade == Some(Upgrade::WebSocket)
            && parsed.exec.is_some()
            && let Some(up) = client_upgrade
            && let Some(r) = refuse_in_stream(&self.headers, up, message)
        {
            return r;
        }
        status_response(StatusCode::FORBIDDEN, message)
    }

    async fn record_refusal(
        &self,
        request: gatehouse_events::EventId,
        code: StatusCode,
        message: &str,
    ) {
        let result = ResultObserved {
            request: Some(request),
            status: ResultStatus::Refused,
            code: Some(code.as_u16().to_string()),
            message: Some(message.to_owned()),
            ..ResultObserved::default()
        };
        if let Err(error) = self
            .engine()
            .record_result(&self.active.session, result)
            .await
        {
            tracing::error!(message = "Cannot record a Kubernetes refusal.", session = %self.active.session.id, %error);
        }
    }

    /// Refuses a request that cannot be parsed, recording it (request, a block
    /// decision, a refused result) without judging it: it is never forwarded.
    async fn unparsed(&self, code: StatusCode, why: &str) -> Response<ProxyBody> {
        let message = format!("gatehouse cannot parse this request: {why}");
        let s = &self.active.session;
        let gw = self.engine().gateway_id().to_owned();
        let request = s
            .event(
                &gw,
                RequestObserved {
                    reason: None,
                    command: format!("{} {}", self.method, self.path)
                        .chars()
                        .take(4096)
                        .collect(),
                    detail: RequestDetail::Kubernetes(K8sRequest {
                        method: self.method.as_str().to_owned(),
                        path: self.path.chars().take(4096).collect(),
                        ..K8sRequest::default()
                    }),
                },
            )
            .build();
        let id = request.id;
        let decision = s
            .event(
                &gw,
                DecisionMade {
                    request: Some(id),
                    effect: Effect::Block,
                    reason: Some(message.clone()),
                    ..DecisionMade::default()
                },
            )
            .build();
        for e in [request, decision] {
            if let Err(error) = self.engine().record(e).await {
                tracing::error!(message = "Cannot record an unparsed Kubernetes request.", session = %s.id, %error);
            }
        }
        self.record_refusal(id, code, &message).await;
        status_response(code, &message)
    }

    /// Forwards an allowed request and relays the response.
    async fn forward(
        self,
        parsed: Parsed,
        decision: Decision,
        body: Bytes,
        client_upgrade: Option<OnUpgrade>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let upstream = self.active.upstream.clone();
        let masking = Maskable::of(&parsed.detail.api_group, &parsed.detail.resource)
            .filter(|_| !decision.masks().is_empty());
        let uri = match upstream.uri(&self.path, self.query.as_deref()) {
            Ok(u) => u,
            Err(e) => return self.unparsed(StatusCode::BAD_REQUEST, &e.to_string()).await,
        };
        let mut out = Request::new(Full::new(body));
        *out.method_mut() = self.method.clone();
        *out.uri_mut() = uri;
        let headers = out.headers_mut();
        for (name, value) in &self.headers {
            let n = name.as_str();
            if HOP_BY_HOP.contains(&n) || n == "authorization" || n == "accept-encoding" {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        if let Some(auth) = upstream.authorization() {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        if let Some(kind) = parsed.upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            let value = self
                .headers
                .get(header::UPGRADE)
                .cloned()
                .unwrap_or_else(|| {
                    HeaderValue::from_static(match kind {
                        Upgrade::WebSocket => "websocket",
                        Upgrade::Spdy => "SPDY/3.1",
                    })
                });
            headers.insert(header::UPGRADE, value);
        }
        if masking.is_some() {
            json_only(headers);
        }
        // The wait for the response headers is bounded; a stream (watch, `logs -f`,
        // an upgrade) runs on unbounded once they arrived.
        let timeout = upstream.response_timeout();
        let response = match tokio::time::timeout(timeout, upstream.client().request(out)).await {
            Ok(Ok(r)) => r,
            Err(_) => {
                let message = format!(
                    "gatehouse: the API server of target `{}` did not answer within {}",
                    upstream.name(),
                    humantime::format_duration(timeout)
                );
                tracing::warn!(message = "Kubernetes upstream did not answer in time.", target = %upstream.name(), timeout_ms = timeout.as_millis() as u64);
                self.record_error(
                    decision.request,
                    StatusCode::GATEWAY_TIMEOUT,
                    &message,
                    started,
                )
                .await;
                return status_response(StatusCode::GATEWAY_TIMEOUT, &message);
            }
            Ok(Err(e)) => {
                tracing::warn!(message = "Kubernetes upstream request failed.", target = %upstream.name(), error = %e);
                let message = format!(
                    "gatehouse: the API server of target `{}` is unreachable",
                    upstream.name()
                );
                self.record_error(
                    decision.request,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &message,
                    started,
                )
                .await;
                return status_response(StatusCode::SERVICE_UNAVAILABLE, &message);
            }
        };
        let (rparts, rbody) = response.into_parts();
        let code = rparts.status;
        if code == StatusCode::SWITCHING_PROTOCOLS {
            return self.upgraded(parsed, decision, rparts, client_upgrade, started);
        }
        let mut reply = Response::new(full(Bytes::new()));
        *reply.status_mut() = code;
        copy_response_headers(&rparts.headers, reply.headers_mut());
        let outcome = Outcome {
            engine: self.engine().clone(),
            active: self.active,
            request: decision.request,
            code: code.as_u16(),
            started,
            bytes: 0,
            sample: None,
            cap: self.shared.options.sample_bytes,
            stats: None,
        };
        let cut: Option<crate::body::Cut> = parsed.streaming.then(|| {
            let s = outcome.active.session.clone();
            Box::pin(async move { s.closed().await }) as crate::body::Cut
        });
        // A pod's log is text: masked line by line with the value patterns in force.
        let log_masking = parsed.detail.resource == "pods"
            && parsed.detail.subresource.as_deref() == Some("log")
            && decision.masks().iter().any(|m| m.has_value_patterns());
        if log_masking && code.is_success() {
            let stats = Arc::new(MaskStats::default());
            let outcome = Outcome {
                sample: Some(Vec::new()),
                stats: Some(stats.clone()),
                ..outcome
            };
            let masked = crate::body::LogMasker::new(rbody, Arc::new(decision), stats);
            *reply.body_mut() = Recorded::new(masked, outcome, cut).boxed_unsync();
            return reply;
        }
        match masking {
            Some(kind) if code.is_success() => {
                let json = rparts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("application/json"));
                if !json {
                    let message = "gatehouse: the API server answered a masked read with a body that is not JSON; refusing to pass it unmasked";
                    let o = Outcome {
                        code: 502,
                        sample: Some(Vec::new()),
                        ..outcome
                    };
                    o.finish(Some(message.into()));
                    return status_response(StatusCode::BAD_GATEWAY, message);
                }
                let stats = Arc::new(MaskStats::default());
                let outcome = Outcome {
                    sample: Some(Vec::new()),
                    stats: Some(stats.clone()),
                    ..outcome
                };
                let masker = Masker::new(kind, Arc::new(decision));
                if parsed.streaming {
                    let masked =
                        WatchMasker::new(rbody, masker, stats, self.shared.options.max_masked_body);
                    *reply.body_mut() = Recorded::new(masked, outcome, cut).boxed_unsync();
                } else {
                    match mask_whole(rbody, masker, &stats, self.shared.options.max_masked_body)
                        .await
                    {
                        Ok(bytes) => {
                            *reply.body_mut() =
                                Recorded::new(Full::new(bytes), outcome, None).boxed_unsync();
                        }
                        Err(message) => {
                            let message = format!("gatehouse: {message}");
                            let o = Outcome {
                                code: 502,
                                ..outcome
                            };
                            o.finish(Some(message.clone()));
                            return status_response(StatusCode::BAD_GATEWAY, &message);
                        }
                    }
                }
            }
            _ => {
                // Unmasked Secret data is never sampled into the audit log.
                let sample = (parsed.detail.resource != "secrets").then(Vec::new);
                let outcome = Outcome { sample, ..outcome };
                *reply.body_mut() = Recorded::new(rbody, outcome, cut).boxed_unsync();
            }
        }
        reply
    }

    fn upgraded(
        self,
        parsed: Parsed,
        decision: Decision,
        mut rparts: hyper::http::response::Parts,
        client_upgrade: Option<OnUpgrade>,
        started: Instant,
    ) -> Response<ProxyBody> {
        let mut reply = Response::new(full(Bytes::new()));
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, value) in &rparts.headers {
            if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
                reply.headers_mut().append(name.clone(), value.clone());
            }
        }
        let upstream_upgrade = rparts.extensions.remove::<OnUpgrade>();
        let (Some(client), Some(upstream)) = (client_upgrade, upstream_upgrade) else {
            return status_response(
                StatusCode::BAD_GATEWAY,
                "gatehouse: the upgrade cannot be relayed",
            );
        };
        let protocol = match parsed.upgrade {
            Some(Upgrade::Spdy) => StreamProtocol::Spdy,
            _ => StreamProtocol::WebSocket(Channels::of(
                rparts
                    .headers
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok()),
            )),
        };
        let splice = Splice {
            engine: self.engine().clone(),
            active: self.active,
            request: decision.request,
            started,
            protocol,
            max_record: self.shared.options.max_stream_record,
        };
        tokio::spawn(splice.run(client, upstream));
        reply
    }

    async fn record_error(
        &self,
        request: gatehouse_events::EventId,
        code: StatusCode,
        message: &str,
        started: Instant,
    ) {
        let result = ResultObserved {
            request: Some(request),
            status: ResultStatus::Error,
            code: Some(code.as_u16().to_string()),
            message: Some(message.to_owned()),
            duration_us: Some(started.elapsed().as_micros() as u64),
            ..ResultObserved::default()
        };
        if let Err(error) = self
            .engine()
            .record_result(&self.active.session, result)
            .await
        {
            tracing::error!(message = "Cannot record a Kubernetes result.", session = %self.active.session.id, %error);
        }
    }
}

/// Records a held request whose client went away before the hold ended.
struct Abandoned {
    armed: Option<(
        Arc<Engine>,
        Arc<gatehouse_core::engine::Session>,
        gatehouse_events::EventId,
        String,
    )>,
}

impl Abandoned {
    fn new(engine: &Arc<Engine>, active: &Active, decision: &Decision) -> Self {
        let id = decision
            .approval
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default();
        Self {
            armed: Some((engine.clone(), active.session.clone(), decision.request, id)),
        }
    }

    fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        let Some((engine, session, request, id)) = self.armed.take() else {
            return;
        };
        let result = ResultObserved {
            request: Some(request),
            status: ResultStatus::Refused,
            message: Some(format!(
                "the client went away while held for approval {id}; the request was not forwarded"
            )),
            ..ResultObserved::default()
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(error) = engine.record_result(&session, result).await {
                    tracing::error!(message = "Cannot record an abandoned Kubernetes request.", session = %session.id, %error);
                }
            });
        }
    }
}

/// Reads, masks and re-encodes a whole response.
async fn mask_whole<M: crate::mask::MaskValue>(
    body: Incoming,
    mut masker: Masker<M>,
    stats: &MaskStats,
    max: usize,
) -> Result<Bytes, String> {
    let bytes = Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| format!("the response could not be read for masking: {e}"))?
        .to_bytes();
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the response is not JSON ({e}); refusing to pass it unmasked"))?;
    masker.document(&mut doc);
    stats
        .masked
        .store(masker.masked, std::sync::atomic::Ordering::Relaxed);
    stats
        .objects
        .store(masker.objects, std::sync::atomic::Ordering::Relaxed);
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Asks for JSON only (masking reads JSON): protobuf entries of `Accept` are dropped.
fn json_only(headers: &mut HeaderMap) {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kept: Vec<&str> = accept
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && !m.contains("protobuf"))
        .collect();
    let value = if kept.is_empty() {
        "application/json".to_owned()
    } else {
        kept.join(",")
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::ACCEPT, v);
    }
}

fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(HeaderName::from(name), value.clone());
        }
    }
}

/// Withdraws a held request's approval unless disarmed (`decision` taken) first.
struct WithdrawOnDrop {
    engine: Arc<Engine>,
    decision: Option<Decision>,
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        let Some(decision) = self.decision.take() else {
            return;
        };
        let engine = self.engine.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = engine
                    .withdraw_approval(&decision, "client_disconnected")
                    .await
                {
                    tracing::warn!(message = "Cannot record a withdrawn approval.", %error);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn target_prefixes() {
        assert_eq!(
            target_prefix("/api/v1/pods").unwrap(),
            (None, "/api/v1/pods")
        );
        assert_eq!(
            target_prefix("/targets/prod-k8s/api/v1/pods").unwrap(),
            (Some("prod-k8s"), "/api/v1/pods")
        );
        assert_eq!(target_prefix("/targets/prod").unwrap(), (Some("prod"), "/"));
        assert!(target_prefix("/targets//api").is_err());
        assert!(target_prefix("/targets/a%20b/api").is_err());
    }

    #[test]
    fn accept_loses_protobuf_when_masking() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf, application/json"),
        );
        json_only(&mut h);
        assert_eq!(h[header::ACCEPT], "application/json");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        json_only(&mut h);
        assert_eq!(h[header::ACCEPT], "application/json");
    }
}
