use serde::{Deserialize, Serialize};

use crate::EventId;
use crate::payload::Effect;

/// Alert severity, mapped to OCSF `severity_id`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// OCSF 1.
    #[default]
    Informational,
    /// OCSF 2.
    Low,
    /// OCSF 3.
    Medium,
    /// OCSF 4.
    High,
    /// OCSF 5.
    Critical,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// OCSF `severity` caption.
    pub fn ocsf_caption(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// A rule or sequence fired an alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertRaised {
    /// Rule or sequence name.
    pub rule: String,
    /// True when a sequence (multi-event chain) fired.
    pub sequence: bool,
    /// Rendered alert message.
    pub message: String,
    /// Severity.
    pub severity: Severity,
    /// Tags (MITRE ATT&CK ids such as `attack.t1021.004`).
    pub tags: Vec<String>,
    /// The effect the rule had on the triggering request.
    pub effect: Option<Effect>,
    /// The triggering request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<EventId>,
    /// Every event that contributed (all stages of a sequence), oldest first.
    pub related_events: Vec<EventId>,
    /// A sequence's steps as read (the query and what it captured, the SSH host and
    /// command, the request that completed it), oldest first, when the gateway still
    /// held them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<crate::payload::ChainStep>,
}
