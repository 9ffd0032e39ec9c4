use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::EventId;

/// A request was held for a human reviewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    /// Approval id.
    pub approval_id: String,
    /// The held request.
    pub request: EventId,
    /// The command, as shown to reviewers.
    pub command: String,
    /// The rule or sequence that asked for approval.
    pub rule: String,
    /// The reviewer group that may decide.
    pub group: String,
    /// When the hold expires.
    pub deadline: DateTime<Utc>,
    /// The rule's rendered message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why, as the requester stated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the held request does, in one line (for Kubernetes, the pod: name,
    /// namespace, images, privileged, host mounts, service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The earlier steps of the chain, when a sequence asked (oldest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainStep>,
}

/// One step of a chain, as a reviewer or a SIEM reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChainStep {
    /// The step's request event.
    pub event: EventId,
    /// When.
    pub time: Option<DateTime<Utc>>,
    /// `postgres`, `ssh` or `kubernetes`.
    pub protocol: String,
    /// Target name.
    pub target: String,
    /// The command (SQL, command line, `METHOD path`) and what it does.
    pub summary: String,
    /// Values its result gave the chain (host names read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captured: Vec<String>,
    /// The requester's stated reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an SSH login: the commands run in its session since (the first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub then_ran: Vec<String>,
}

/// A reviewer approved a held request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalGranted {
    /// Approval id.
    pub approval_id: String,
    /// Reviewer identity.
    pub reviewer: String,
    /// Time-boxed grant: the same identity, target and rule are allowed until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// A reviewer denied a held request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDenied {
    /// Approval id.
    pub approval_id: String,
    /// Reviewer identity.
    pub reviewer: String,
    /// Reason given.
    #[serde(default)]
    pub reason: String,
}

/// A reviewer or an admin ended a time-boxed grant before its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRevoked {
    /// The approval whose grant ended.
    pub approval_id: String,
    /// Who revoked it.
    pub revoked_by: String,
    /// Reason given.
    #[serde(default)]
    pub reason: String,
}

/// A held request reached its deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalExpired {
    /// Approval id.
    pub approval_id: String,
}

/// The client of a held request left before a reviewer decided: the request will
/// never run, and a later approval finds nothing to approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalWithdrawn {
    /// Approval id.
    pub approval_id: String,
    /// Why (`client_disconnected`, `session_closed`, ...).
    #[serde(default)]
    pub reason: String,
}
