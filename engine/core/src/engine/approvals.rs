//! Pending approvals and time-boxed grants: a fold over approval events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, EventId};
use serde::Serialize;
use tokio::sync::watch;

/// How a held request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// A reviewer approved it.
    Granted {
        /// Reviewer.
        reviewer: String,
    },
    /// A reviewer denied it.
    Denied {
        /// Reviewer.
        reviewer: String,
        /// Reason given.
        reason: String,
    },
    /// Nobody decided before the deadline.
    Expired,
    /// The requester left before a reviewer decided.
    Withdrawn {
        /// Why.
        reason: String,
    },
}

/// A pending approval as reviewers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    /// Approval id.
    pub id: String,
    /// The held request event.
    pub request: EventId,
    /// Identity that asked.
    pub identity: String,
    /// Person the agent acts for.
    pub on_behalf_of: Option<String>,
    /// Target.
    pub target: String,
    /// The held command.
    pub command: String,
    /// Rule that asked for approval.
    pub rule: String,
    /// Reviewer group.
    pub group: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When it expires.
    pub deadline: DateTime<Utc>,
    /// False after a restart: the client that waited is gone.
    pub waiting: bool,
    /// The rule's rendered message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why, as the requester stated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the held request does (for a pod: name, namespace, images, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The chain's earlier steps, when a sequence asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<gatehouse_events::payload::ChainStep>,
}

struct Pending {
    view: PendingApproval,
    /// The session whose request is held: when it closes, the request never runs.
    session: Option<String>,
    /// The credential of the held request's session: a grant covers only it.
    credential: Option<String>,
    /// Who issued that credential: they may not decide (four eyes).
    issuer: Option<String>,
    /// The gateway holding the request (it alone expires the approval).
    gateway: String,
    tx: watch::Sender<Option<ApprovalOutcome>>,
}

/// A time-boxed grant: the same identity, credential, target and rule run without
/// asking again until it ends, or until a reviewer of its group or an admin revokes it
/// (`grant_revoked`). Revoking (or the expiry of) the credential ends it too, since no
/// session can use that credential any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The approval that made it.
    pub approval_id: String,
    /// Identity covered.
    pub identity: String,
    /// Credential covered (`None` only for approvals logged without one).
    pub credential_id: Option<String>,
    /// Target covered.
    pub target: String,
    /// Rule covered.
    pub rule: String,
    /// Reviewer group of the rule (its members may revoke the grant).
    pub group: String,
    /// When it ends.
    pub until: DateTime<Utc>,
    /// Reviewer who granted it.
    pub reviewer: String,
}

/// Pending approvals and grants.
pub struct Approvals {
    state: Mutex<State>,
    /// Bumped after every change (`GET /v1/approvals/events`, the console's queue).
    changes: watch::Sender<u64>,
}

impl Default for Approvals {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Pending>,
    grants: Vec<Grant>,
    /// Issuer and expiry of each unexpired Gatehouse credential, by credential id.
    issuers: HashMap<String, (String, DateTime<Utc>)>,
    /// Recently decided approvals (a request folded again from another gateway's
    /// events does not come back).
    decided: std::collections::HashSet<String>,
    decided_order: std::collections::VecDeque<String>,
}

/// Decided approval ids remembered against a second fold of their request.
const DECIDED_KEPT: usize = 65_536;

impl State {
    /// Removes a pending approval once decided, remembering its id.
    fn decide(&mut self, id: &str) -> Option<Pending> {
        let p = self.pending.remove(id)?;
        if self.decided.insert(id.to_owned()) {
            self.decided_order.push_back(id.to_owned());
            while self.decided_order.len() > DECIDED_KEPT {
                if let Some(old) = self.decided_order.pop_front() {
                    self.decided.remove(&old);
                }
            }
        }
        Some(p)
    }
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver told of every change to the pending approvals and grants.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Folds one event into the state (live and on replay). `waiting` says whether a
    /// client waits for a newly requested approval.
    pub fn apply(&self, event: &Event, waiting: bool) {
        self.fold(event, waiting);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn fold(&self, event: &Event, waiting: bool) {
        let mut s = self.lock();
        match &event.payload {
            Payload::ApprovalRequested(a) => {
                if s.decided.contains(&a.approval_id) || s.pending.contains_key(&a.approval_id) {
                    return;
                }
                let identity = event.identity.as_ref();
                let view = PendingApproval {
                    id: a.approval_id.clone(),
                    request: a.request,
                    identity: identity.map(|i| i.name.clone()).unwrap_or_default(),
                    on_behalf_of: identity.and_then(|i| i.on_behalf_of.clone()),
                    target: event.target.clone().unwrap_or_default(),
                    command: a.command.clone(),
                    rule: a.rule.clone(),
                    group: a.group.clone(),
                    requested_at: event.time,
                    deadline: a.deadline,
                    waiting,
                    message: a.message.clone(),
                    reason: a.reason.clone(),
                    summary: a.summary.clone(),
                    chain: a.chain.clone(),
                };
                let credential = identity.and_then(|i| i.credential_id.clone());
                let issuer = credential
                    .as_ref()
                    .and_then(|c| s.issuers.get(c))
                    .map(|(by, _)| by.clone());
                let (tx, _) = watch::channel(None);
                s.pending.insert(
                    a.approval_id.clone(),
                    Pending {
                        view,
                        session: event.session_id.clone(),
                        credential,
                        issuer,
                        gateway: event.gateway_id.clone(),
                        tx,
                    },
                );
            }
            Payload::CredentialIssued(c) => {
                // Expired credentials open no sessions, so ask for no approvals.
                s.issuers.retain(|_, (_, until)| *until > event.time);
                if let Some(by) = &c.issued_by {
                    s.issuers
                        .insert(c.credential_id.clone(), (by.clone(), c.expires_at));
                }
            }
            Payload::ApprovalGranted(g) => {
                if let Some(p) = s.decide(&g.approval_id) {
                    if let Some(until) = g.valid_until {
                        s.grants.push(Grant {
                            approval_id: g.approval_id.clone(),
                            identity: p.view.identity.clone(),
                            credential_id: p.credential.clone(),
                            target: p.view.target.clone(),
                            rule: p.view.rule.clone(),
                            group: p.view.group.clone(),
                            until,
                            reviewer: g.reviewer.clone(),
                        });
                    }
                    p.tx.send_replace(Some(ApprovalOutcome::Granted {
                        reviewer: g.reviewer.clone(),
                    }));
                }
            }
            Payload::ApprovalDenied(d) => {
                if let Some(p) = s.decide(&d.approval_id) {
                    p.tx.send_replace(Some(ApprovalOutcome::Denied {
                        reviewer: d.reviewer.clone(),
                        reason: d.reason.clone(),
                    }));
                }
            }
            Payload::GrantRevoked(r) => {
                s.grants.retain(|g| g.approval_id != r.approval_id);
            }
            Payload::ApprovalExpired(x) => {
                if let Some(p) = s.decide(&x.approval_id) {
                    p.tx.send_replace(Some(ApprovalOutcome::Expired));
                }
            }
            Payload::ApprovalWithdrawn(x) => {
                if let Some(p) = s.decide(&x.approval_id) {
                    p.tx.send_replace(Some(ApprovalOutcome::Withdrawn {
                        reason: x.reason.clone(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// A watch that turns `Some` when the approval is decided (None: unknown id).
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<Option<ApprovalOutcome>>> {
        self.lock().pending.get(id).map(|p| p.tx.subscribe())
    }

    /// The grant covering every one of `rules` for this identity, credential and
    /// target at `now`.
    pub fn grant_for(
        &self,
        identity: &str,
        credential: Option<&str>,
        target: &str,
        rules: &[&str],
        now: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        let mut s = self.lock();
        s.grants.retain(|g| g.until > now);
        let mut found = None;
        for rule in rules {
            let g = s.grants.iter().find(|g| {
                crate::identity::same(&g.identity, identity)
                    && g.credential_id.as_deref() == credential
                    && g.target == target
                    && g.rule == *rule
            })?;
            found = Some((g.approval_id.clone(), g.until));
        }
        found
    }

    /// Grants in force at `now`, soonest to end first.
    pub fn grants(&self, now: DateTime<Utc>) -> Vec<Grant> {
        let mut s = self.lock();
        s.grants.retain(|g| g.until > now);
        let mut v = s.grants.clone();
        v.sort_by(|a, b| {
            a.until
                .cmp(&b.until)
                .then(a.approval_id.cmp(&b.approval_id))
        });
        v
    }

    /// Pending approvals, oldest first.
    pub fn list(&self) -> Vec<PendingApproval> {
        let mut v: Vec<_> = self
            .lock()
            .pending
            .values()
            .map(|p| p.view.clone())
            .collect();
        v.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        v
    }

    /// One pending approval.
    pub fn get(&self, id: &str) -> Option<PendingApproval> {
        self.lock().pending.get(id).map(|p| p.view.clone())
    }

    /// Pending approvals of requests held in `session`.
    pub fn of_session(&self, session: &str) -> Vec<PendingApproval> {
        self.lock()
            .pending
            .values()
            .filter(|p| p.session.as_deref() == Some(session))
            .map(|p| p.view.clone())
            .collect()
    }

    /// Who issued the credential that asked for a pending approval, when known.
    pub fn issuer(&self, id: &str) -> Option<String> {
        self.lock().pending.get(id).and_then(|p| p.issuer.clone())
    }

    /// Pending approvals held by `gateway` past their deadline at `now` (another
    /// gateway's approvals are expired by that gateway).
    pub fn overdue(&self, now: DateTime<Utc>, gateway: &str) -> Vec<String> {
        self.lock()
            .pending
            .values()
            .filter(|p| p.view.deadline <= now && p.gateway == gateway)
            .map(|p| p.view.id.clone())
            .collect()
    }

    /// The earliest deadline of the approvals `gateway` holds.
    pub fn next_deadline(&self, gateway: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .pending
            .values()
            .filter(|p| p.gateway == gateway)
            .map(|p| p.view.deadline)
            .min()
    }
}
