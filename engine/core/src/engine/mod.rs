//! The engine: what a proxy calls. It authenticates agents, opens and closes
//! sessions, judges every request with the policy and appends the request, the
//! decision, alerts and approval requests to the event log *before* answering, holds
//! requests for approval, and records results and session bytes.
//!
//! Everything the engine remembers (pending approvals, grants, revocations, sequence
//! state) is a fold over the log: [`Engine::open`] rebuilds it by replay.
//!
//! Fail closed: any error from the policy or the log is an `Err` the proxy turns into
//! a protocol-native refusal. Never default to allow.

mod approvals;
mod chains;
mod enforce;
mod sequencer;
mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gatehouse_dsl::mask::MaskSpec;
use gatehouse_dsl::{CaptureRequest, Verdict};
use gatehouse_events::payload::{
    AlertRaised, ApprovalDenied, ApprovalExpired, ApprovalGranted, ApprovalRequested,
    ApprovalWithdrawn, AuthFailed, CredentialIssued, CredentialRevoked, Effect, GrantRevoked,
    LogOutage, Payload, RequestDetail, RequestObserved, ResultObserved, SessionClosed, SessionData,
    SessionOpened, Severity,
};
use gatehouse_events::{Event, EventId, Identity, Protocol};

pub use approvals::{ApprovalOutcome, Approvals, Grant, PendingApproval};
pub use enforce::{Enforcement, Refusal, RefusalKind};
pub use sessions::{Session, SessionInfo, SessionView};

use crate::identity::{AuthError, Authenticator, IssueRequest, Principal};
use crate::log::{EventLog, LogError, LogReader};
use crate::policy::{PolicyHandle, alerts_raised, decision_made, effect_to_event};

/// Receives approval requests (the webhook notifier lives in the binary).
pub trait Notifier: Send + Sync {
    /// A request is waiting for a reviewer.
    fn approval_requested(&self, approval: &PendingApproval);
}

/// A boxed future, for the cluster link's methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The cluster's shared event stream, as the engine needs it to keep chains exact
/// across gateways (ADR 0025): implemented over Kafka in `gatehouse-ship`.
pub trait ClusterLink: Send + Sync {
    /// Returns once this gateway has folded every event the cluster acknowledged
    /// before the call (every partition read up to its high watermark then).
    fn catch_up(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Returns once this gateway has folded every record the topic holds before the
    /// given records (`(partition, offset)`, as [`publish`](Self::publish) returned
    /// them) on their partitions.
    fn catch_up_before<'a>(
        &'a self,
        positions: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Publishes `events` and returns once the broker acknowledged them, with where
    /// each landed (`(partition, offset)`).
    fn publish<'a>(&'a self, events: &'a [Event])
    -> BoxFuture<'a, Result<Vec<(i32, i64)>, String>>;
    /// How far this gateway has folded the cluster's events (`cluster status`).
    fn status(&self) -> BoxFuture<'_, Result<ClusterStatus, String>>;
}

/// What `gatehouse cluster status` and `GET /v1/cluster` show: how far this gateway
/// has folded the events topic, and what it has seen of the other gateways.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// This gateway.
    pub gateway_id: String,
    /// The events topic folded.
    pub topic: String,
    /// Per partition: folded up to, end, lag.
    pub partitions: Vec<PartitionStatus>,
    /// Records not yet folded, over every partition.
    pub lag_events: i64,
    /// The gateways whose events were folded since this one started.
    pub members: Vec<MemberStatus>,
    /// Replication delay (event made on another gateway → folded here) of the
    /// events made after this gateway started folding.
    pub delay: DelayStats,
}

/// One partition of the events topic.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PartitionStatus {
    /// Partition number.
    pub partition: i32,
    /// Offset after the last record folded (or skipped).
    pub folded: i64,
    /// The partition's high watermark.
    pub end: i64,
    /// `end - folded`.
    pub lag: i64,
}

/// Another gateway, as seen through its events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Its `gateway_id`.
    pub gateway_id: String,
    /// Its events folded here since start.
    pub events: u64,
    /// Time of its last event folded.
    pub last_event: Option<chrono::DateTime<chrono::Utc>>,
    /// Delay of its last event folded, in milliseconds.
    pub last_delay_ms: Option<f64>,
}

/// Replication delays, in milliseconds, over the last (at most 4,096) events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DelayStats {
    /// Events measured.
    pub samples: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// First wait before retrying a failed event log.
pub const LOG_RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failed event log.
pub const LOG_RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a healthy log is checked for a failure to recover from.
const LOG_HEALTH_POLL: Duration = Duration::from_millis(100);

/// Longest time-boxed grant unless `approvals.max_grant` says otherwise.
pub const DEFAULT_MAX_GRANT: Duration = Duration::from_secs(8 * 3600);

/// Engine settings.
#[derive(Clone)]
pub struct EngineOptions {
    /// Recorded in every event.
    pub gateway_id: String,
    /// Hold timeout when a rule gives none.
    pub approval_timeout: Duration,
    /// Longest time-boxed grant a reviewer may give.
    pub max_grant: Duration,
    /// Notified of approval requests.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Resolves the hosts events name (SSH targets, captured values).
    pub hosts: Arc<crate::hosts::HostResolver>,
}

impl EngineOptions {
    /// Defaults for `gateway_id`.
    pub fn new(gateway_id: impl Into<String>) -> Self {
        Self {
            gateway_id: gateway_id.into(),
            approval_timeout: Duration::from_secs(15 * 60),
            max_grant: DEFAULT_MAX_GRANT,
            notifier: None,
            hosts: Arc::new(crate::hosts::HostResolver::default()),
        }
    }
}

/// Engine failures. Each refuses the command it concerns.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The event log refused the append.
    #[error("the audit log is unavailable: {0}")]
    Log(#[from] LogError),
    /// The request cannot be judged.
    #[error("the request cannot be judged: {0}")]
    Policy(String),
    /// The cluster's event stream cannot be read or written (fail closed).
    #[error("the cluster cannot be reached: {0}")]
    Cluster(String),
}

/// A reviewer acting on an approval.
#[derive(Debug, Clone)]
pub struct Reviewer {
    /// Reviewer identity.
    pub name: String,
    /// Groups the reviewer belongs to.
    pub groups: Vec<String>,
}

/// Why a reviewer action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No pending approval with this id.
    #[error(
        "no pending approval `{0}` (it may have been decided, expired, or withdrawn because its client left)"
    )]
    NotFound(String),
    /// Self-approval.
    #[error("`{0}` cannot decide an approval requested by itself or on its behalf")]
    SelfApproval(String),
    /// The reviewer issued the credential that asked.
    #[error("`{0}` issued the credential that asked, so another reviewer must decide")]
    IssuedByReviewer(String),
    /// Not in the reviewer group.
    #[error("`{reviewer}` is not in reviewer group `{group}`")]
    NotInGroup {
        /// Reviewer.
        reviewer: String,
        /// Required group.
        group: String,
    },
    /// No grant in force with this id.
    #[error("no grant `{0}` in force (it may have ended or been revoked)")]
    NoGrant(String),
    /// A reviewer outside the grant's group (and not an admin).
    #[error(
        "`{reviewer}` may not revoke grant `{grant}`: not an admin and not in its reviewer group `{group}`"
    )]
    MayNotRevoke {
        /// Reviewer.
        reviewer: String,
        /// The grant (its approval id).
        grant: String,
        /// The grant's reviewer group.
        group: String,
    },
    /// A grant duration too long to represent.
    #[error("`{0}` is too long for a grant")]
    BadDuration(String),
    /// A grant longer than `approvals.max_grant`.
    #[error("a grant of {asked} is longer than this gateway allows (approvals.max_grant = {max})")]
    GrantTooLong {
        /// What the reviewer asked for.
        asked: String,
        /// The configured maximum.
        max: String,
    },
    /// Recording the decision failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The engine's verdict on one request, as the proxy enforces it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The `request_observed` event id.
    pub request: EventId,
    /// What to do.
    pub effect: Effect,
    /// Message for the client (block reason, approval notice).
    pub message: Option<String>,
    /// Rules that matched.
    pub rules: Vec<String>,
    /// The approval to wait for, when `effect` is `RequireApproval`.
    pub approval: Option<PendingApproval>,
    /// Subscribed when the approval was requested, so no outcome can be missed.
    outcome: Option<tokio::sync::watch::Receiver<Option<ApprovalOutcome>>>,
    verdict: Arc<Verdict>,
}

impl Decision {
    /// True when the request may run now (allow or mask).
    pub fn runs(&self) -> bool {
        matches!(self.effect, Effect::Allow | Effect::Mask)
    }

    /// Masks to apply to results.
    pub fn masks(&self) -> &[Arc<MaskSpec>] {
        &self.verdict.masks
    }

    /// Most rows the statement may change (`limit rows N`), if bounded.
    pub fn row_limit(&self) -> Option<u64> {
        self.verdict.row_limit
    }

    /// Masks one result value of `column` (empty column name for unstructured output).
    pub fn mask_value<'v>(&self, column: &str, value: &'v str) -> std::borrow::Cow<'v, str> {
        self.verdict.mask_value(column, value)
    }

    /// Values sequences want kept from the result.
    pub fn captures(&self) -> &[CaptureRequest] {
        &self.verdict.captures
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Decisions by effect: allow, mask, require_approval, block.
    pub decisions: [AtomicU64; 4],
    /// Refused credentials.
    pub auth_failures: AtomicU64,
    /// Sessions opened.
    pub sessions_opened: AtomicU64,
}

impl Metrics {
    fn count(&self, effect: Effect) {
        let i = match effect {
            Effect::Allow => 0,
            Effect::Mask => 1,
            Effect::RequireApproval => 2,
            Effect::Block => 3,
        };
        if let Some(c) = self.decisions.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The engine.
pub struct Engine {
    options: EngineOptions,
    metrics: Metrics,
    log: Arc<EventLog>,
    policy: PolicyHandle,
    auth: Authenticator,
    approvals: Approvals,
    sessions: sessions::Registry,
    session_seq: AtomicU64,
    /// Serialises approval outcomes (grant, deny, expiry): check, append and apply
    /// happen under it, so one approval gets exactly one outcome in the log.
    deciding: tokio::sync::Mutex<()>,
    /// Orders judge, commit and apply of requests sharing sequence keys (ADR 0024).
    sequencer: sequencer::Sequencer,
    /// In a cluster, orders what this gateway puts on the cluster's topic for the
    /// same keys (ADR 0025 §3): taken before a request is published ahead of its
    /// judgement and kept until it is applied, so that the topic's order of this
    /// gateway's requests of one identity is the order they were judged in. The
    /// fold never takes it (a catch-up waits for the fold while holding it).
    ordering: sequencer::Sequencer,
    /// The cluster, when this gateway is one of several (ADR 0025).
    cluster: std::sync::OnceLock<Arc<dyn ClusterLink>>,
    /// Summaries of requests that took part in sequences, for reviewers and alerts.
    chain_steps: chains::ChainSteps,
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// Opens the engine over `log`, rebuilding state by replaying it, and closes
    /// sessions a previous run left open.
    pub fn open(
        options: EngineOptions,
        log: Arc<EventLog>,
        policy: PolicyHandle,
        auth: Authenticator,
    ) -> Result<Arc<Self>, EngineError> {
        let engine = Arc::new(Self {
            options,
            metrics: Metrics::default(),
            log,
            policy,
            auth,
            approvals: Approvals::default(),
            sessions: sessions::Registry::default(),
            session_seq: AtomicU64::new(0),
            deciding: tokio::sync::Mutex::new(()),
            sequencer: sequencer::Sequencer::default(),
            ordering: sequencer::Sequencer::default(),
            cluster: std::sync::OnceLock::new(),
            chain_steps: chains::ChainSteps::default(),
        });
        engine.replay()?;
        Ok(engine)
    }

    fn replay(&self) -> Result<(), EngineError> {
        let started = Instant::now();
        let mut reader = LogReader::open(self.log.dir(), first_offset(self.log.dir()));
        let mut open_sessions: std::collections::BTreeMap<String, Event> =
            std::collections::BTreeMap::new();
        let mut n = 0u64;
        while let Some((_, event)) = reader.next_event()? {
            n += 1;
            self.apply_committed(&event);
            match &event.payload {
                Payload::SessionOpened(_) => {
                    if let Some(id) = &event.session_id {
                        open_sessions.insert(id.clone(), event.clone());
                    }
                }
                Payload::SessionClosed(_) => {
                    if let Some(id) = &event.session_id {
                        open_sessions.remove(id);
                    }
                }
                _ => {}
            }
        }
        // Sessions a previous run never closed: their connections are gone.
        let closing: Vec<Event> = open_sessions
            .into_values()
            .map(|opened| {
                let mut b = Event::builder(
                    &self.options.gateway_id,
                    SessionClosed {
                        reason: "gateway_restarted".into(),
                        duration_ms: None,
                    },
                );
                if let Some(s) = opened.session_id {
                    b = b.session(s);
                }
                if let Some(i) = opened.identity {
                    b = b.identity(i);
                }
                if let Some(t) = opened.target {
                    b = b.target(t);
                }
                if let Some(p) = opened.protocol {
                    b = b.protocol(p);
                }
                b.build()
            })
            .collect();
        if !closing.is_empty() {
            self.log.append_batch(&closing)?;
            for e in &closing {
                self.policy.observe(e);
            }
        }
        tracing::info!(
            message = "Engine state rebuilt from the event log.",
            events = n,
            pending_approvals = self.approvals.list().len(),
            elapsed_ms = started.elapsed().as_millis() as u64
        );
        Ok(())
    }

    /// Joins a cluster (ADR 0025): requests that could complete a stage matched on
    /// another gateway wait until the cluster's acknowledged events are folded, and
    /// requests that start or advance a stage are acknowledged by the cluster before
    /// they run. Set once.
    pub fn set_cluster(&self, link: Arc<dyn ClusterLink>) {
        let _ = self.cluster.set(link);
    }

    /// Whether this gateway is one of a cluster's ([`Engine::set_cluster`]).
    pub fn clustered(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// The cluster's state as this gateway sees it; `None` outside a cluster.
    pub async fn cluster_status(&self) -> Option<Result<ClusterStatus, String>> {
        match self.cluster.get() {
            Some(link) => Some(link.status().await),
            None => None,
        }
    }

    /// In a cluster, sends events every gateway must see at once (revocations,
    /// reviewers' decisions) straight to the cluster instead of waiting for the
    /// shipper; the shipper still sends them too (the fold skips the second copy).
    /// A failure is logged: the event is in this gateway's log and the shipper
    /// delivers it later.
    async fn share(&self, events: &[Event]) {
        if let Some(link) = self.cluster.get()
            && let Err(error) = link.publish(events).await
        {
            tracing::warn!(message = "Cannot send an event to the cluster now; the shipper will.", %error);
        }
    }

    /// Applies an event another gateway committed (cluster mode, ADR 0025): the fold
    /// the start-up rebuild makes, under the event's sequence keys. Approvals
    /// requested elsewhere become visible (and decidable) here, a decision made
    /// elsewhere releases the request held here, a revocation made elsewhere closes
    /// the credential's sessions here, and sequence stages matched elsewhere count
    /// here. This gateway's own events are not applied twice.
    pub async fn fold_remote(&self, event: &Event) {
        if event.gateway_id == self.options.gateway_id {
            return;
        }
        let keys = self.policy.keys(event);
        let _held = self.sequencer.hold(&keys).await;
        self.apply_committed(event);
        if let Payload::CredentialRevoked(r) = &event.payload {
            self.sessions
                .close_credential(&r.credential_id, "credential revoked");
        }
    }

    /// The fold of one committed event into the state, whoever committed it (the
    /// start-up rebuild, another gateway): approvals and grants, revocations, and
    /// sequences (requests advance them, results fill captures, the rest applies
    /// `until`).
    fn apply_committed(&self, event: &Event) {
        self.approvals.apply(event, false);
        if let Payload::CredentialRevoked(r) = &event.payload {
            self.auth.revoke(&r.credential_id);
        }
        self.policy.replay(event);
    }

    /// The gateway id.
    pub fn gateway_id(&self) -> &str {
        &self.options.gateway_id
    }

    /// The event log.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// The policy handle (reloads).
    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    /// The approvals state.
    pub fn approvals(&self) -> &Approvals {
        &self.approvals
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn append(&self, events: &[Event]) -> Result<(), EngineError> {
        self.log.append_batch_async(events).await?;
        Ok(())
    }

    /// Verifies a credential for a `protocol` proxy. A refusal is recorded as an
    /// `auth_failed` event (the credential is never recorded).
    pub async fn authenticate(
        &self,
        credential: &str,
        protocol: Protocol,
        requested_target: Option<&str>,
        client_addr: Option<SocketAddr>,
        login: Option<&str>,
    ) -> Result<Principal, AuthError> {
        match self
            .auth
            .verify(credential, protocol, requested_target)
            .await
        {
            Ok(p) => Ok(p),
            Err(e) => {
                self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                let mut b = Event::builder(
                    &self.options.gateway_id,
                    AuthFailed {
                        client_addr: client_addr.map(|a| a.to_string()),
                        login: login.map(str::to_owned),
                        reason: e.code().into(),
                    },
                )
                .protocol(protocol);
                if let Some(t) = requested_target {
                    b = b.target(t);
                }
                if let Err(log_error) = self.append(&[b.build()]).await {
                    tracing::error!(message = "Cannot record an authentication failure.", error = %log_error);
                }
                Err(e)
            }
        }
    }

    /// Issues an agent token (records `credential_issued`; the token is not recorded).
    pub async fn issue_token(
        &self,
        req: &IssueRequest,
    ) -> Result<(String, CredentialIssued), String> {
        let (token, issued) = self.auth.issue(req)?;
        let event = Event::builder(&self.options.gateway_id, issued.clone())
            .target(&issued.target)
            .protocol(issued.protocol)
            .identity(Identity {
                name: issued.subject.clone(),
                on_behalf_of: issued.on_behalf_of.clone(),
                role: None,
                credential_id: Some(issued.credential_id.clone()),
            })
            .build();
        self.append(std::slice::from_ref(&event))
            .await
            .map_err(|e| e.to_string())?;
        self.approvals.apply(&event, false);
        Ok((token, issued))
    }

    /// Revokes a credential: records it, refuses it from now on, and closes its live
    /// sessions. Returns how many sessions were closed.
    pub async fn revoke_token(
        &self,
        credential_id: &str,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<usize, EngineError> {
        let event = Event::builder(
            &self.options.gateway_id,
            CredentialRevoked {
                credential_id: credential_id.into(),
                revoked_by: by.map(str::to_owned),
                reason: reason.map(str::to_owned),
            },
        )
        .build();
        self.append(std::slice::from_ref(&event)).await?;
        self.auth.revoke(credential_id);
        self.share(std::slice::from_ref(&event)).await;
        Ok(self
            .sessions
            .close_credential(credential_id, "credential revoked"))
    }

    /// Opens a session for an authenticated principal (records `session_opened`).
    pub async fn open_session(
        &self,
        principal: Principal,
        info: SessionInfo,
    ) -> Result<Arc<Session>, EngineError> {
        let seq = self.session_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{}-{}-{seq}",
            principal
                .protocol
                .as_str()
                .chars()
                .take(2)
                .collect::<String>(),
            random_hex(4)
        );
        let session = self.sessions.open(id, principal, info.clone());
        let event = session
            .event(
                &self.options.gateway_id,
                SessionOpened {
                    client_addr: info.client_addr.map(|a| a.to_string()),
                    login: info.login.clone(),
                    auth_method: Some(
                        info.auth_method
                            .clone()
                            .unwrap_or_else(|| session.principal.method.to_owned()),
                    ),
                    upstream_host: info.upstream_host.clone(),
                    client_application: info.client_application.clone(),
                },
            )
            .build();
        if let Err(e) = self.append(std::slice::from_ref(&event)).await {
            self.sessions.remove(&session.id, "not recorded");
            return Err(e);
        }
        self.policy.observe(&event);
        self.metrics.sessions_opened.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }

    /// Closes a session (records `session_closed`).
    pub async fn close_session(&self, session: &Session, reason: &str) {
        self.sessions.remove(&session.id, reason);
        // A request held for approval in a session that ended never runs: withdraw
        // it, so that a reviewer cannot approve it later.
        for p in self.approvals.of_session(&session.id) {
            if let Err(error) = self
                .withdraw(&p, &format!("session closed: {reason}"))
                .await
            {
                tracing::error!(message = "Cannot record a withdrawn approval.", approval = %p.id, session = %session.id, %error);
            }
        }
        let event = session
            .event(
                &self.options.gateway_id,
                SessionClosed {
                    reason: reason.into(),
                    duration_ms: Some(session.elapsed().as_millis() as u64),
                },
            )
            .build();
        match self.append(std::slice::from_ref(&event)).await {
            Ok(()) => {
                self.policy.observe(&event);
            }
            Err(error) => {
                tracing::error!(message = "Cannot record a session close.", session = %session.id, %error);
            }
        }
    }

    /// Live sessions.
    pub fn sessions(&self) -> Vec<SessionView> {
        self.sessions.list()
    }

    /// Time-boxed grants in force.
    pub fn grants(&self) -> Vec<Grant> {
        self.approvals.grants(Utc::now())
    }

    /// Judges one request. The request, the decision, any alerts and any approval
    /// request are appended to the log before this returns. An `Err` means the
    /// request must be refused.
    pub async fn decide(
        &self,
        session: &Session,
        command: String,
        detail: RequestDetail,
    ) -> Result<Decision, EngineError> {
        let mut all = self.decide_many(session, vec![(command, detail)]).await?;
        all.pop()
            .ok_or_else(|| EngineError::Policy("no decision".into()))
    }

    /// Judges several requests that arrived together (the statements of one query
    /// string), appending all of their events in one write.
    pub async fn decide_many(
        &self,
        session: &Session,
        requests: Vec<(String, RequestDetail)>,
    ) -> Result<Vec<Decision>, EngineError> {
        self.decide_after(session, &mut Vec::new(), requests).await
    }

    /// Like [`decide_many`](Self::decide_many), but first writes `prior`: result
    /// events of the session's earlier requests (built with
    /// [`result_event`](Self::result_event)), in the same log write and ahead of the
    /// new requests. `prior` is drained when that write succeeds.
    pub async fn decide_after(
        &self,
        session: &Session,
        prior: &mut Vec<Event>,
        requests: Vec<(String, RequestDetail)>,
    ) -> Result<Vec<Decision>, EngineError> {
        // Captured values must reach the sequences before the next requests are
        // judged: results that carry any are recorded first, on their own.
        if prior.iter().any(has_captures) {
            self.record_results(prior).await?;
            prior.clear();
        }
        let mut events = Vec::with_capacity(requests.len() * 2);
        let mut decisions = Vec::with_capacity(requests.len());
        let mut notify = Vec::new();
        let requests: Vec<Event> = requests
            .into_iter()
            .map(|(command, detail)| {
                session
                    .event(
                        &self.options.gateway_id,
                        RequestObserved {
                            command,
                            detail,
                            reason: session.reason(),
                        },
                    )
                    .build()
            })
            .collect();
        // Judge, commit, apply (ADR 0024): nothing below changes the sequence state,
        // the approvals or the chain steps before the events are in the log. The keys
        // of these requests (and of the results written with them) are held from here
        // to the application when anything will change.
        // In a cluster, a request that could advance a sequence takes its place in
        // the cluster's order first: it is published (acknowledged by the broker),
        // then this gateway folds everything up to the end of the topic, its own
        // record included, and only then judges it. Kafka's order of these requests
        // is thus one in which each was judged having seen every earlier one, also
        // when two steps of a chain come to two gateways at the same instant
        // (ADR 0025 §3).
        let cluster = self.cluster.get();
        let mut keys: Vec<String> = requests
            .iter()
            .chain(prior.iter())
            .flat_map(|e| self.policy.keys(e))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let _ordered = match cluster {
            Some(_) => Some(self.ordering.hold(&keys).await),
            None => None,
        };
        let mut published: Vec<EventId> = Vec::new();
        if let Some(link) = cluster
            && requests.iter().any(|r| self.policy.may_advance(r))
        {
            let positions = link
                .publish(&requests)
                .await
                .map_err(EngineError::Cluster)?;
            published = requests.iter().map(|r| r.id).collect();
            // When every sequence is keyed by identity, only this identity's
            // partition matters, and only up to this record: no broker round trip.
            if self.policy.sequences_keyed_by_identity() {
                link.catch_up_before(&positions).await
            } else {
                link.catch_up().await
            }
            .map_err(EngineError::Cluster)?;
        }
        let held = self.sequencer.hold(&keys).await;
        let (judged, policy) = self
            .policy
            .judge_batch(&requests.iter().collect::<Vec<_>>(), session.client_ip());
        // Requests to apply after the commit, and those that are chain steps.
        let mut to_apply: Vec<Event> = Vec::new();
        let mut staged: Vec<Event> = Vec::new();
        let mut approvals_requested: Vec<(usize, Event)> = Vec::new();
        for (request, (verdict, touches)) in requests.into_iter().zip(judged) {
            if let Some(error) = &verdict.error {
                tracing::warn!(message = "Policy evaluation failed; refusing.", session = %session.id, %error);
            }
            if touches {
                to_apply.push(request.clone());
            }
            if verdict.staged {
                staged.push(request.clone());
            }
            let mut alerts = alerts_raised(&verdict, request.id);
            for a in alerts.iter_mut().filter(|a| a.sequence) {
                a.chain = self.chain_steps.steps_with(&a.related_events, &staged);
            }
            let mut decided = decision_made(&verdict, request.id, policy.version());
            let mut message = verdict.reason.clone();
            let mut approval = None;
            let mut extra: Vec<Event> = Vec::new();
            if decided.effect == payload_effect::REQUIRE_APPROVAL {
                let asking: Vec<&str> = verdict.approvals.iter().map(|a| &*a.rule).collect();
                let now = Utc::now();
                match self.approvals.grant_for(
                    &session.principal.identity.name,
                    session.principal.identity.credential_id.as_deref(),
                    &session.principal.target,
                    &asking,
                    now,
                ) {
                    Some((grant, until)) => {
                        // A time-boxed grant covers it: run it (masks still apply).
                        decided.effect = if verdict.masks.is_empty() {
                            Effect::Allow
                        } else {
                            Effect::Mask
                        };
                        decided.reason = Some(format!(
                            "covered by approval {grant} until {}",
                            until.to_rfc3339()
                        ));
                        message = None;
                    }
                    None => {
                        let Some(ask) = verdict.approval() else {
                            return Err(EngineError::Policy(
                                "require approval without an approval request".into(),
                            ));
                        };
                        let timeout = if ask.timeout_micros > 0 {
                            chrono::Duration::microseconds(ask.timeout_micros)
                        } else {
                            chrono::Duration::from_std(self.options.approval_timeout)
                                .unwrap_or_else(|_| chrono::Duration::minutes(15))
                        };
                        let id = format!("apr-{}", random_hex(4));
                        let deadline = now + timeout;
                        let RequestObserved {
                            command,
                            detail,
                            reason,
                        } = match &request.payload {
                            Payload::RequestObserved(r) => r.clone(),
                            _ => return Err(EngineError::Policy("not a request".into())),
                        };
                        // What the reviewer reads: the rule's message (a sequence's
                        // alert message, else the rule's), and the chain's earlier
                        // steps when a sequence asks.
                        let asking_alert = alerts.iter().find(|a| a.rule == *ask.rule);
                        let rule_message = asking_alert
                            .map(|a| a.message.clone())
                            .filter(|m| !m.is_empty())
                            .or_else(|| verdict.reason.clone());
                        let chain: Vec<_> = asking_alert
                            .filter(|a| a.sequence)
                            .map(|a| {
                                a.chain
                                    .iter()
                                    .filter(|s| s.event != request.id)
                                    .cloned()
                                    .collect()
                            })
                            .unwrap_or_default();
                        let summary = chains::summary(&command, &detail);
                        decided.approval_id = Some(id.clone());
                        message = Some(format!(
                            "held for approval {id} by rule `{}` (reviewers: {}); waiting until {}",
                            ask.rule,
                            ask.group,
                            deadline.format("%H:%M:%S UTC")
                        ));
                        decided.reason = message.clone();
                        let requested = session
                            .event(
                                &self.options.gateway_id,
                                ApprovalRequested {
                                    approval_id: id.clone(),
                                    request: request.id,
                                    command,
                                    rule: ask.rule.to_string(),
                                    group: ask.group.to_string(),
                                    deadline,
                                    message: rule_message,
                                    reason,
                                    summary: Some(summary),
                                    chain,
                                },
                            )
                            .build();
                        extra.push(requested);
                        approval = Some(id);
                    }
                }
            }
            // Every blocking hit is a finding, even without an explicit `alert`.
            if decided.effect == Effect::Block {
                for m in verdict
                    .matched
                    .iter()
                    .filter(|m| m.effect.map(effect_to_event) == Some(Effect::Block))
                {
                    if !alerts.iter().any(|a| a.rule == *m.name) {
                        alerts.push(AlertRaised {
                            rule: m.name.to_string(),
                            sequence: m.sequence,
                            message: verdict
                                .reason
                                .clone()
                                .unwrap_or_else(|| format!("blocked by `{}`", m.name)),
                            severity: Severity::Medium,
                            tags: Vec::new(),
                            effect: Some(Effect::Block),
                            request: Some(request.id),
                            related_events: vec![request.id],
                            chain: Vec::new(),
                        });
                    }
                }
                if verdict.error.is_some() && alerts.is_empty() {
                    alerts.push(AlertRaised {
                        rule: "policy_error".into(),
                        message: verdict.error.clone().unwrap_or_default(),
                        severity: Severity::High,
                        effect: Some(Effect::Block),
                        request: Some(request.id),
                        related_events: vec![request.id],
                        ..AlertRaised::default()
                    });
                }
            }
            for a in &mut alerts {
                a.effect = Some(decided.effect);
            }
            let decision_event = session
                .event(&self.options.gateway_id, decided.clone())
                .build();
            let rules = decided.rules.clone();
            let effect = decided.effect;
            let request_id = request.id;
            events.push(request);
            events.push(decision_event);
            events.extend(
                alerts
                    .into_iter()
                    .map(|a| session.event(&self.options.gateway_id, a).build()),
            );
            if approval.is_some()
                && let Some(e) = extra.first()
            {
                approvals_requested.push((decisions.len(), e.clone()));
            }
            events.extend(extra);
            decisions.push(Decision {
                request: request_id,
                effect,
                message,
                rules,
                approval: None,
                outcome: None,
                verdict: Arc::new(verdict),
            });
        }
        // In a cluster, a stage is acknowledged by the cluster before anything is
        // written or run here: if it cannot be, the command is refused and nothing
        // changed (ADR 0025).
        if let Some(link) = cluster
            && !to_apply.is_empty()
        {
            let unsent: Vec<Event> = events
                .iter()
                .filter(|e| !published.contains(&e.id))
                .cloned()
                .collect();
            link.publish(&unsent).await.map_err(EngineError::Cluster)?;
        }
        // Written in judgement order: the keys are still held, so the log's order of
        // these requests is the order they were judged in (replaying the log rebuilds
        // the same state). Durability is awaited after the keys are released, so
        // concurrent requests still share one fsync.
        let written = if prior.is_empty() {
            self.log.write_batch(&events)
        } else {
            let results = prior.len();
            prior.append(&mut events);
            let written = self.log.write_batch(prior);
            // Whatever happened, the requests are not left behind for a later write.
            prior.truncate(results);
            written
        };
        let written = written?;
        // Committed: apply, in log order.
        for e in prior.drain(..) {
            self.policy.on_result(&e);
        }
        let mut evicted = Vec::new();
        for request in &to_apply {
            for ev in self.policy.replay(request) {
                evicted.push(eviction_alert(
                    session,
                    &self.options.gateway_id,
                    &ev,
                    request.id,
                ));
            }
        }
        drop(held);
        self.log.durable_async(written.end).await?;
        for request in &staged {
            self.chain_steps.remember(request);
        }
        if session.principal.protocol == gatehouse_events::Protocol::Ssh {
            for e in &events {
                self.chain_steps.ssh_command(e);
            }
        }
        // Reviewers on every gateway see a held request at once, not when the
        // shipper gets to it (its decision may come from any of them). With a stage,
        // it was published with the stage already.
        if cluster.is_some() && to_apply.is_empty() && !approvals_requested.is_empty() {
            let requested: Vec<Event> = approvals_requested
                .iter()
                .map(|(_, e)| e.clone())
                .filter(|e| !published.contains(&e.id))
                .collect();
            self.share(&requested).await;
        }
        for (i, requested) in &approvals_requested {
            self.approvals.apply(requested, true);
            if let (Payload::ApprovalRequested(a), Some(d)) =
                (&requested.payload, decisions.get_mut(*i))
            {
                d.approval = self.approvals.get(&a.approval_id);
                d.outcome = self.approvals.subscribe(&a.approval_id);
                if let Some(p) = &d.approval {
                    notify.push(p.clone());
                }
            }
        }
        if !evicted.is_empty()
            && let Err(error) = self.append(&evicted).await
        {
            // The evictions happened (memory bounds); only their record is missing.
            tracing::error!(message = "Cannot record sequence evictions.", session = %session.id, %error);
        }
        for d in &decisions {
            self.metrics.count(d.effect);
        }
        if let Some(n) = &self.options.notifier {
            for p in &notify {
                n.approval_requested(p);
            }
        }
        Ok(decisions)
    }

    /// Waits for a held decision's approval, or for its session to end: the note to
    /// show when it was granted (the command runs), else the refusal.
    pub async fn await_approval(
        &self,
        session: &Session,
        decision: &Decision,
    ) -> Result<String, Refusal> {
        tokio::select! {
            o = self.wait_for_approval(decision) => decision.after_approval(&o),
            reason = session.closed() => Err(Refusal::abandoned(decision.approval_id(), &reason)),
        }
    }

    /// Waits for a held request's outcome (returns `Expired` if the approval is gone).
    pub async fn wait_for_approval(&self, decision: &Decision) -> ApprovalOutcome {
        let Some(mut rx) = decision.outcome.clone() else {
            return ApprovalOutcome::Expired;
        };
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(ApprovalOutcome::Expired),
            Err(_) => ApprovalOutcome::Expired,
        }
    }

    /// Approves a pending request; `valid_for` makes it a time-boxed grant for the
    /// same identity, target and rule.
    pub async fn approve(
        &self,
        id: &str,
        reviewer: &Reviewer,
        valid_for: Option<Duration>,
    ) -> Result<PendingApproval, ApprovalError> {
        let _deciding = self.deciding.lock().await;
        let p = self.check_reviewer(id, reviewer)?;
        if let Some(d) = valid_for
            && d > self.options.max_grant
        {
            return Err(ApprovalError::GrantTooLong {
                asked: humantime::format_duration(d).to_string(),
                max: humantime::format_duration(self.options.max_grant).to_string(),
            });
        }
        let valid_until = match valid_for {
            None => None,
            Some(d) => Some(
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| Utc::now().checked_add_signed(d))
                    .ok_or_else(|| {
                        ApprovalError::BadDuration(humantime::format_duration(d).to_string())
                    })?,
            ),
        };
        let event = self.approval_event(
            &p,
            ApprovalGranted {
                approval_id: id.into(),
                reviewer: reviewer.name.clone(),
                valid_until,
            },
        );
        self.append(std::slice::from_ref(&event)).await?;
        self.approvals.apply(&event, false);
        self.share(std::slice::from_ref(&event)).await;
        Ok(p)
    }

    /// Ends a time-boxed grant before its time: records `grant_revoked`, after which
    /// the requests it covered are held for approval again. `admin` callers may revoke
    /// any grant; other reviewers only grants of their groups.
    pub async fn revoke_grant(
        &self,
        id: &str,
        reviewer: &Reviewer,
        admin: bool,
        reason: &str,
    ) -> Result<Grant, ApprovalError> {
        let _deciding = self.deciding.lock().await;
        let grant = self
            .approvals
            .grants(Utc::now())
            .into_iter()
            .find(|g| g.approval_id == id)
            .ok_or_else(|| ApprovalError::NoGrant(id.into()))?;
        if !admin && !in_group(reviewer, &grant.group) {
            return Err(ApprovalError::MayNotRevoke {
                reviewer: reviewer.name.clone(),
                grant: id.into(),
                group: grant.group.clone(),
            });
        }
        let event = Event::builder(
            &self.options.gateway_id,
            GrantRevoked {
                approval_id: id.into(),
                revoked_by: reviewer.name.clone(),
                reason: reason.into(),
            },
        )
        .identity(Identity {
            name: grant.identity.clone(),
            on_behalf_of: None,
            role: None,
            credential_id: grant.credential_id.clone(),
        })
        .target(&grant.target)
        .build();
        self.append(std::slice::from_ref(&event)).await?;
        self.approvals.apply(&event, false);
        self.share(std::slice::from_ref(&event)).await;
        Ok(grant)
    }

    /// Denies a pending request.
    pub async fn deny(
        &self,
        id: &str,
        reviewer: &Reviewer,
        reason: &str,
    ) -> Result<PendingApproval, ApprovalError> {
        let _deciding = self.deciding.lock().await;
        let p = self.check_reviewer(id, reviewer)?;
        let event = self.approval_event(
            &p,
            ApprovalDenied {
                approval_id: id.into(),
                reviewer: reviewer.name.clone(),
                reason: reason.into(),
            },
        );
        self.append(std::slice::from_ref(&event)).await?;
        self.approvals.apply(&event, false);
        self.share(std::slice::from_ref(&event)).await;
        Ok(p)
    }

    fn approval_event(&self, p: &PendingApproval, payload: impl Into<Payload>) -> Event {
        Event::builder(&self.options.gateway_id, payload)
            .identity(Identity {
                name: p.identity.clone(),
                on_behalf_of: p.on_behalf_of.clone(),
                role: None,
                credential_id: None,
            })
            .target(&p.target)
            .build()
    }

    fn check_reviewer(
        &self,
        id: &str,
        reviewer: &Reviewer,
    ) -> Result<PendingApproval, ApprovalError> {
        let p = self
            .approvals
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.into()))?;
        // Names compare in canonical form: `Bob@Example.COM` is `bob@example.com`.
        let is_reviewer = |name: &str| crate::identity::same(name, &reviewer.name);
        if is_reviewer(&p.identity) || p.on_behalf_of.as_deref().is_some_and(is_reviewer) {
            return Err(ApprovalError::SelfApproval(reviewer.name.clone()));
        }
        if self
            .approvals
            .issuer(id)
            .as_deref()
            .is_some_and(is_reviewer)
        {
            return Err(ApprovalError::IssuedByReviewer(reviewer.name.clone()));
        }
        if !in_group(reviewer, &p.group) {
            return Err(ApprovalError::NotInGroup {
                reviewer: reviewer.name.clone(),
                group: p.group.clone(),
            });
        }
        Ok(p)
    }

    /// Expires overdue approvals (records `approval_expired`); returns their ids.
    pub async fn expire_overdue(&self) -> Result<Vec<String>, EngineError> {
        let _deciding = self.deciding.lock().await;
        let ids = self.approvals.overdue(Utc::now(), &self.options.gateway_id);
        for id in &ids {
            if let Some(p) = self.approvals.get(id) {
                let event = self.approval_event(
                    &p,
                    ApprovalExpired {
                        approval_id: id.clone(),
                    },
                );
                self.append(std::slice::from_ref(&event)).await?;
                self.approvals.apply(&event, false);
                self.share(std::slice::from_ref(&event)).await;
            }
        }
        Ok(ids)
    }

    /// Withdraws a held request whose client left before a reviewer decided: records
    /// `approval_withdrawn`, after which a reviewer finds nothing to approve. Returns
    /// false when the approval was already decided (the caller must still not run
    /// the request: its client is gone).
    pub async fn withdraw_approval(
        &self,
        decision: &Decision,
        reason: &str,
    ) -> Result<bool, EngineError> {
        match &decision.approval {
            Some(p) => self.withdraw(p, reason).await,
            None => Ok(false),
        }
    }

    async fn withdraw(&self, p: &PendingApproval, reason: &str) -> Result<bool, EngineError> {
        let _deciding = self.deciding.lock().await;
        if self.approvals.get(&p.id).is_none() {
            return Ok(false);
        }
        let event = self.approval_event(
            p,
            ApprovalWithdrawn {
                approval_id: p.id.clone(),
                reason: reason.into(),
            },
        );
        self.append(std::slice::from_ref(&event)).await?;
        self.approvals.apply(&event, false);
        self.share(std::slice::from_ref(&event)).await;
        Ok(true)
    }

    /// Brings a failed event log back without a restart: while the log refuses
    /// appends, tries [`EventLog::recover`] with a bounded exponential back-off
    /// ([`LOG_RETRY_MIN`] to [`LOG_RETRY_MAX`]); the first record after the outage is
    /// a `log_outage` event. Runs until the engine is dropped elsewhere.
    pub async fn run_log_recovery(self: Arc<Self>) {
        let mut backoff = LOG_RETRY_MIN;
        loop {
            if self.log.failure().is_none() {
                backoff = LOG_RETRY_MIN;
                tokio::time::sleep(LOG_HEALTH_POLL).await;
                continue;
            }
            tokio::time::sleep(backoff).await;
            match self.try_recover_log().await {
                Ok(_) => backoff = LOG_RETRY_MIN,
                Err(error) => {
                    backoff = (backoff * 2).min(LOG_RETRY_MAX);
                    tracing::warn!(message = "The event log is still failed; retrying.", %error, retry_in_ms = backoff.as_millis() as u64);
                }
            }
        }
    }

    /// One recovery attempt of a failed log (see [`run_log_recovery`](Self::run_log_recovery));
    /// `Ok(None)` when the log was not failed.
    pub async fn try_recover_log(&self) -> Result<Option<u64>, EngineError> {
        let log = self.log.clone();
        let gateway = self.options.gateway_id.clone();
        let recovered = tokio::task::spawn_blocking(move || {
            log.recover(|f| {
                Event::builder(
                    &gateway,
                    LogOutage {
                        started_at: f.since,
                        ended_at: Utc::now(),
                        error: f.error.clone(),
                        refused_appends: f.refused_appends,
                        failed_attempts: f.failed_attempts,
                    },
                )
                .build()
            })
        })
        .await
        .map_err(|e| EngineError::Policy(format!("log recovery task failed: {e}")))??;
        Ok(recovered)
    }

    /// Runs the approval expiry clock until the engine is dropped elsewhere.
    pub async fn run_expiry(self: Arc<Self>) {
        loop {
            let wait = self
                .approvals
                .next_deadline(&self.options.gateway_id)
                .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            if let Err(error) = self.expire_overdue().await {
                tracing::error!(message = "Cannot expire approvals.", %error);
            }
        }
    }

    /// Records a request's outcome and feeds captured values to sequences.
    pub async fn record_result(
        &self,
        session: &Session,
        result: ResultObserved,
    ) -> Result<(), EngineError> {
        let event = self.result_event(session, result);
        self.record_results(std::slice::from_ref(&event)).await
    }

    /// The event of a request's outcome, stamped now, to be recorded with
    /// [`record_results`](Self::record_results) or ahead of the session's next
    /// requests ([`decide_after`](Self::decide_after)).
    pub fn result_event(&self, session: &Session, result: ResultObserved) -> Event {
        session.event(&self.options.gateway_id, result).build()
    }

    /// Records result events in one write and feeds captured values to sequences.
    pub async fn record_results(&self, events: &[Event]) -> Result<(), EngineError> {
        if events.is_empty() {
            return Ok(());
        }
        let resolved;
        let captures = events.iter().any(has_captures);
        let events = if captures {
            resolved = self.resolve_captures(events).await;
            &resolved[..]
        } else {
            events
        };
        // Captured values fill partial matches: a request of the same keys judged
        // meanwhile would not see them (ADR 0024).
        let keys: Vec<String> = if captures {
            events.iter().flat_map(|e| self.policy.keys(e)).collect()
        } else {
            Vec::new()
        };
        let cluster = self.cluster.get().filter(|_| captures);
        let _ordered = match cluster {
            Some(_) => Some(self.ordering.hold(&keys).await),
            None => None,
        };
        let held = self.sequencer.hold(&keys).await;
        // In a cluster, captured values are acknowledged by the cluster before they
        // are written here, like a stage: the next step may be judged on another
        // gateway, which catches up before judging it (ADR 0025).
        if let Some(link) = cluster {
            link.publish(events).await.map_err(EngineError::Cluster)?;
        }
        let written = self.log.write_batch(events)?;
        for e in events {
            if let Payload::ResultObserved(r) = &e.payload
                && let Some(request) = r.request
            {
                for c in &r.captures {
                    self.chain_steps.captured(request, &c.values);
                }
            }
            self.policy.on_result(e);
        }
        drop(held);
        self.log.durable_async(written.end).await?;
        Ok(())
    }

    /// `events` with the host keys of their captured values filled in (captures that
    /// already carry keys are kept as they are): resolved now, stored on the event, so
    /// that replaying the log compares the hosts exactly as they were compared live.
    async fn resolve_captures(&self, events: &[Event]) -> Vec<Event> {
        let mut out = events.to_vec();
        for e in &mut out {
            if let Payload::ResultObserved(r) = &mut e.payload {
                for c in &mut r.captures {
                    if c.hosts.is_empty() && !c.values.is_empty() {
                        c.hosts = self.options.hosts.value_keys(&c.values).await;
                    }
                }
            }
        }
        out
    }

    /// The host resolver (SSH targets' keys are resolved with it when a session opens).
    pub fn hosts(&self) -> &crate::hosts::HostResolver {
        &self.options.hosts
    }

    /// Records bytes that crossed the session (replay recordings).
    pub async fn record_data(
        &self,
        session: &Session,
        data: SessionData,
    ) -> Result<(), EngineError> {
        let event = session.event(&self.options.gateway_id, data).build();
        self.append(std::slice::from_ref(&event)).await
    }

    /// Appends an already-built event (tools, tests).
    pub async fn record(&self, event: Event) -> Result<(), EngineError> {
        self.append(std::slice::from_ref(&event)).await?;
        self.policy.observe(&event);
        Ok(())
    }

    /// Expiry time of a credential seen in a session, for the admin API.
    pub fn now() -> DateTime<Utc> {
        Utc::now()
    }
}

/// Whether a reviewer is in `group` (group names compare in canonical form).
fn in_group(reviewer: &Reviewer, group: &str) -> bool {
    reviewer
        .groups
        .iter()
        .any(|g| crate::identity::same(g, group))
}

/// Whether a result event carries captured values for sequences.
pub fn has_captures(event: &Event) -> bool {
    matches!(&event.payload, Payload::ResultObserved(r) if !r.captures.is_empty())
}

/// The offset of the oldest record still in the log.
fn first_offset(dir: &std::path::Path) -> u64 {
    crate::log::list_segments(dir)
        .ok()
        .and_then(|s| s.first().map(|s| s.base))
        .unwrap_or(0)
}

/// The finding recording that a partial match was evicted (memory bounds).
fn eviction_alert(
    session: &Session,
    gateway_id: &str,
    ev: &gatehouse_dsl::Eviction,
    request: EventId,
) -> Event {
    session
        .event(
            gateway_id,
            AlertRaised {
                rule: ev.sequence.to_string(),
                sequence: true,
                message: format!(
                    "partial match of `{}` for `{}` evicted after {} stage(s): {:?}",
                    ev.sequence, ev.key, ev.stages_matched, ev.reason
                ),
                severity: Severity::Low,
                tags: vec!["gatehouse.sequence_eviction".into()],
                effect: None,
                request: Some(request),
                related_events: vec![request],
                chain: Vec::new(),
            },
        )
        .build()
}

mod payload_effect {
    use gatehouse_events::payload::Effect;
    pub const REQUIRE_APPROVAL: Effect = Effect::RequireApproval;
}
