use serde::{Deserialize, Serialize};

use crate::EventId;

/// What the policy decided, ordered by strength: a stronger effect wins.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Forward the command.
    Allow,
    /// Forward the command and rewrite result values.
    Mask,
    /// Hold the command until a reviewer decides.
    RequireApproval,
    /// Refuse the command.
    #[default]
    Block,
}

impl Effect {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Mask => "mask",
            Effect::RequireApproval => "require_approval",
            Effect::Block => "block",
        }
    }
}

/// The policy decided what to do with a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionMade {
    /// The request decided on.
    pub request: Option<EventId>,
    /// The combined effect.
    pub effect: Effect,
    /// Names of the rules and sequences that matched.
    pub rules: Vec<String>,
    /// Those of `rules` whose effect is the decision's (the block, hold or mask
    /// rules; the allow rules only when the request was allowed): the rest merely
    /// matched (allow rules outvoted, alert-only rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
    /// Message shown to the client (block reason, approval notice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The approval id, for `require_approval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// True when no rule matched and the target's default applied.
    pub default_applied: bool,
    /// Most rows the statement may change (`limit rows N`): one that changes more is
    /// undone and refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u64>,
    /// Version (content hash) of the rule set that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}
