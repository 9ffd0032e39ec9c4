//! Pending approvals and time-boxed grants: a fold over approval events.

use std::collections::BTreeMap;
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
}

struct Pending {
    view: PendingApproval,
    tx: watch::Sender<Option<ApprovalOutcome>>,
}

#[derive(Debug, Clone)]
struct Grant {
    identity: String,
    target: String,
    rule: String,
    until: DateTime<Utc>,
    approval_id: String,
}

/// Pending approvals and grants.
#[derive(Default)]
pub struct Approvals {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Pending>,
    grants: Vec<Grant>,
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Folds one event into the state (live and on replay). `waiting` says whether a
    /// client waits for a newly requested approval.
    pub fn apply(&self, event: &Event, waiting: bool) {
        let mut s = self.lock();
        match &event.payload {
            Payload::ApprovalRequested(a) => {
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
                };
                let (tx, _) = watch::channel(None);
                s.pending
                    .insert(a.approval_id.clone(), Pending { view, tx });
            }
            Payload::ApprovalGranted(g) => {
                if let Some(p) = s.pending.remove(&g.approval_id) {
                    if let Some(until) = g.valid_until {
                        s.grants.push(Grant {
                            identity: p.view.identity.clone(),
                            target: p.view.target.clone(),
                            rule: p.view.rule.clone(),
                            until,
                            approval_id: g.approval_id.clone(),
                        });
                    }
                    p.tx.send_replace(Some(ApprovalOutcome::Granted {
                        reviewer: g.reviewer.clone(),
                    }));
                }
            }
            Payload::ApprovalDenied(d) => {
                if let Some(p) = s.pending.remove(&d.approval_id) {
                    p.tx.send_replace(Some(ApprovalOutcome::Denied {
                        reviewer: d.reviewer.clone(),
                        reason: d.reason.clone(),
                    }));
                }
            }
            Payload::ApprovalExpired(x) => {
                if let Some(p) = s.pending.remove(&x.approval_id) {
                    p.tx.send_replace(Some(ApprovalOutcome::Expired));
                }
            }
            _ => {}
        }
    }

    /// A watch that turns `Some` when the approval is decided (None: unknown id).
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<Option<ApprovalOutcome>>> {
        self.lock().pending.get(id).map(|p| p.tx.subscribe())
    }

    /// The grant covering every one of `rules` for this identity and target at `now`.
    pub fn grant_for(
        &self,
        identity: &str,
        target: &str,
        rules: &[&str],
        now: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        let mut s = self.lock();
        s.grants.retain(|g| g.until > now);
        let mut found = None;
        for rule in rules {
            let g = s
                .grants
                .iter()
                .find(|g| g.identity == identity && g.target == target && g.rule == *rule)?;
            found = Some((g.approval_id.clone(), g.until));
        }
        found
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

    /// Pending approvals past their deadline at `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<String> {
        self.lock()
            .pending
            .values()
            .filter(|p| p.view.deadline <= now)
            .map(|p| p.view.id.clone())
            .collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.lock().pending.values().map(|p| p.view.deadline).min()
    }
}
