//! One enforcement shape for every proxy (issue #25): what a decision means for the
//! command — run it (with the decision's masks and row limit), refuse it (with the
//! reason the client is shown), or hold it for a reviewer — and what an approval's
//! outcome turns a hold into. The proxies only render these in their protocol (an
//! `ErrorResponse`, an exit status and stderr line, a `403` Status); the texts are
//! the same everywhere.

use super::{ApprovalOutcome, Decision, EngineError};
use gatehouse_events::payload::Effect;

/// What to do with a judged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Run it (allow, or mask: the decision carries the masks and any row limit).
    Run,
    /// Do not run it.
    Refuse(Refusal),
    /// Wait for a reviewer; tell the client `notice` meanwhile.
    Hold {
        /// The approval to wait for.
        approval: String,
        /// What the client is told while it waits.
        notice: String,
    },
}

/// Why a command does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The policy blocks it.
    Blocked,
    /// A reviewer denied it.
    Denied,
    /// Nobody decided before the deadline.
    Expired,
    /// The approval was withdrawn (the requester left, a reload, an operator).
    Withdrawn,
    /// The session ended while it waited.
    Abandoned,
    /// The gateway could not judge or record it (fail closed).
    Failed,
}

/// A refusal: its kind and the message the client is shown (without a protocol's
/// prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub kind: RefusalKind,
    /// What the client is told.
    pub message: String,
}

impl Refusal {
    /// The gateway could not judge or record the command.
    pub fn failed(e: &EngineError) -> Self {
        Self {
            kind: RefusalKind::Failed,
            message: format!("refused: {e}"),
        }
    }

    /// The session ended while approval `id` was awaited.
    pub fn abandoned(id: &str, reason: &str) -> Self {
        Self {
            kind: RefusalKind::Abandoned,
            message: format!("approval {id} abandoned: {reason}"),
        }
    }
}

impl Decision {
    /// The approval this decision waits for (empty when it waits for none).
    pub fn approval_id(&self) -> &str {
        self.approval.as_ref().map_or("", |a| a.id.as_str())
    }

    /// What this decision means for the command.
    pub fn enforcement(&self) -> Enforcement {
        match self.effect {
            Effect::Allow | Effect::Mask => Enforcement::Run,
            Effect::Block => Enforcement::Refuse(Refusal {
                kind: RefusalKind::Blocked,
                message: self
                    .message
                    .clone()
                    .unwrap_or_else(|| "blocked by the gateway policy".into()),
            }),
            Effect::RequireApproval => {
                let approval = self.approval_id().to_owned();
                Enforcement::Hold {
                    notice: self
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("held for approval {approval}")),
                    approval,
                }
            }
        }
    }

    /// What a held command becomes once its approval has an outcome: `Ok` with the
    /// note the client is shown (granted: it runs), or the refusal.
    pub fn after_approval(&self, outcome: &ApprovalOutcome) -> Result<String, Refusal> {
        let id = self.approval_id();
        let (kind, message) = match outcome {
            ApprovalOutcome::Granted { reviewer } => {
                return Ok(format!("approval {id} granted by {reviewer}"));
            }
            ApprovalOutcome::Denied { reviewer, reason } => (
                RefusalKind::Denied,
                format!("approval {id} was denied by {reviewer}: {reason}"),
            ),
            ApprovalOutcome::Expired => (
                RefusalKind::Expired,
                format!("approval {id} expired before a reviewer decided"),
            ),
            ApprovalOutcome::Withdrawn { reason } => (
                RefusalKind::Withdrawn,
                format!("approval {id} was withdrawn: {reason}"),
            ),
        };
        Err(Refusal { kind, message })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::PendingApproval;
    use gatehouse_events::EventId;

    fn decision(effect: Effect, message: Option<&str>) -> Decision {
        Decision {
            request: EventId::new(),
            effect,
            message: message.map(str::to_owned),
            rules: Vec::new(),
            approval: (effect == Effect::RequireApproval).then(|| PendingApproval {
                id: "apr-1".into(),
                request: EventId::new(),
                identity: "agent:etl".into(),
                on_behalf_of: None,
                target: "db".into(),
                command: "DELETE FROM t".into(),
                rule: "hold_delete".into(),
                group: "dba".into(),
                requested_at: chrono::Utc::now(),
                deadline: chrono::Utc::now(),
                waiting: true,
                message: None,
                reason: None,
                summary: None,
                chain: Vec::new(),
            }),
            outcome: None,
            verdict: Arc::default(),
        }
    }

    #[test]
    fn every_effect_and_outcome_has_one_meaning_and_one_text() {
        assert_eq!(
            decision(Effect::Allow, None).enforcement(),
            Enforcement::Run
        );
        assert_eq!(decision(Effect::Mask, None).enforcement(), Enforcement::Run);
        assert_eq!(
            decision(Effect::Block, Some("no drops")).enforcement(),
            Enforcement::Refuse(Refusal {
                kind: RefusalKind::Blocked,
                message: "no drops".into()
            })
        );
        assert_eq!(
            decision(Effect::Block, None).enforcement(),
            Enforcement::Refuse(Refusal {
                kind: RefusalKind::Blocked,
                message: "blocked by the gateway policy".into()
            })
        );
        let held = decision(Effect::RequireApproval, None);
        assert_eq!(
            held.enforcement(),
            Enforcement::Hold {
                approval: "apr-1".into(),
                notice: "held for approval apr-1".into()
            }
        );
        assert_eq!(
            held.after_approval(&ApprovalOutcome::Granted {
                reviewer: "bob".into()
            }),
            Ok("approval apr-1 granted by bob".into())
        );
        let refused = |o: ApprovalOutcome| held.after_approval(&o).unwrap_err();
        assert_eq!(
            refused(ApprovalOutcome::Denied {
                reviewer: "bob".into(),
                reason: "not today".into()
            }),
            Refusal {
                kind: RefusalKind::Denied,
                message: "approval apr-1 was denied by bob: not today".into()
            }
        );
        assert_eq!(
            refused(ApprovalOutcome::Expired).message,
            "approval apr-1 expired before a reviewer decided"
        );
        assert_eq!(
            refused(ApprovalOutcome::Withdrawn {
                reason: "client left".into()
            })
            .kind,
            RefusalKind::Withdrawn
        );
        assert_eq!(
            Refusal::abandoned("apr-1", "client gone").message,
            "approval apr-1 abandoned: client gone"
        );
    }
}
