//! What evaluating one event produces: the combined effect and everything the engine
//! needs to enforce it, alert on it and feed sequences.

use std::borrow::Cow;
use std::sync::Arc;

use crate::mask::MaskSpec;

/// Effects, ordered by strength: a stronger effect wins, whatever the rule order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Forward.
    Allow,
    /// Forward and rewrite result values.
    Mask,
    /// Hold until a reviewer decides.
    RequireApproval,
    /// Refuse.
    #[default]
    Block,
}

impl Effect {
    /// Lowercase name (`require_approval`).
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Mask => "mask",
            Effect::RequireApproval => "require_approval",
            Effect::Block => "block",
        }
    }
}

/// Alert severity, mapped to OCSF `severity_id` 1..=5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 1.
    Informational,
    /// 2.
    Low,
    /// 3.
    #[default]
    Medium,
    /// 4.
    High,
    /// 5.
    Critical,
}

impl Severity {
    /// Every level, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

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

    /// Lowercase name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Severity::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// A rule or sequence that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Rule or sequence name.
    pub name: Arc<str>,
    /// True for a sequence that completed on this event.
    pub sequence: bool,
    /// The effect it asked for (`None` for alert-only rules).
    pub effect: Option<Effect>,
}

/// A `require approval` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The rule or sequence that asked.
    pub rule: Arc<str>,
    /// Reviewer group.
    pub group: Arc<str>,
    /// Hold timeout in microseconds.
    pub timeout_micros: i64,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Rule or sequence name.
    pub rule: Arc<str>,
    /// True for a sequence.
    pub sequence: bool,
    /// Severity (OCSF id via [`Severity::ocsf_id`]).
    pub severity: Severity,
    /// Tags (MITRE ATT&CK).
    pub tags: Arc<[String]>,
    /// Rendered message.
    pub message: String,
    /// Event refs of every stage of a sequence, oldest first (the completing event last).
    pub related: Vec<u128>,
}

/// A request to keep values from this request's result, for a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// Capture name to put in the result event (`pg_ssh_k8s.recon.hosts`).
    pub name: Arc<str>,
    /// The result source function (`pg.result.column`).
    pub source: Arc<str>,
    /// Its argument (the column name `hostname`).
    pub arg: Arc<str>,
    /// Maximum number of values.
    pub limit: u32,
    /// Maximum total bytes.
    pub max_bytes: u32,
}

/// Why a partial match was dropped before it completed or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvictionReason {
    /// Too many partial matches of one sequence for one key.
    KeyLimit,
    /// Too many partial matches in total.
    TotalLimit,
}

impl EvictionReason {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionReason::KeyLimit => "key_limit",
            EvictionReason::TotalLimit => "total_limit",
        }
    }
}

/// A partial match dropped for lack of room; the engine records it as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// Sequence name.
    pub sequence: Arc<str>,
    /// The key (`agent:deploy-bot`).
    pub key: String,
    /// Stages matched so far.
    pub stages_matched: u8,
    /// Time of its first stage, microseconds.
    pub started: i64,
    /// Why.
    pub reason: EvictionReason,
}

/// The decision on one event.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The combined effect.
    pub effect: Effect,
    /// True when no rule decided and the default applied.
    pub default_applied: bool,
    /// Rules and sequences that matched, rules first, each sorted by name.
    pub matched: Vec<Matched>,
    /// Message for the client when blocked.
    pub reason: Option<String>,
    /// Masks to apply to the result (all matching mask rules).
    pub masks: Vec<Arc<MaskSpec>>,
    /// Most rows the request may change (the smallest `limit rows` that matched):
    /// the proxy undoes and refuses a statement that changed more.
    pub row_limit: Option<u64>,
    /// Approval requests, sorted by rule name.
    pub approvals: Vec<Approval>,
    /// Alerts to raise.
    pub alerts: Vec<Alert>,
    /// Values to capture from the result.
    pub captures: Vec<CaptureRequest>,
    /// Partial matches evicted while deciding.
    pub evictions: Vec<Eviction>,
    /// An evaluation error; when set, `effect` is [`Effect::Block`] (fail closed).
    pub error: Option<String>,
    /// The request started or advanced a sequence's partial match: it may become a
    /// step of a chain (the engine keeps a summary of it for reviewers).
    pub staged: bool,
    pub(crate) scratch: Vec<u32>,
}

impl Verdict {
    /// Empties the verdict, keeping its buffers (for allocation-free reuse).
    pub fn clear(&mut self) {
        self.effect = Effect::Block;
        self.default_applied = false;
        self.matched.clear();
        self.reason = None;
        self.masks.clear();
        self.row_limit = None;
        self.approvals.clear();
        self.alerts.clear();
        self.captures.clear();
        self.evictions.clear();
        self.error = None;
        self.staged = false;
        self.scratch.clear();
    }

    /// The approval to ask for: the shortest timeout, then the first rule by name.
    pub fn approval(&self) -> Option<&Approval> {
        self.approvals.iter().min_by(|a, b| {
            a.timeout_micros
                .cmp(&b.timeout_micros)
                .then(a.rule.cmp(&b.rule))
        })
    }

    /// Masks a result value with every mask of this verdict, in rule-name order.
    pub fn mask_value<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
        let mut out = Cow::Borrowed(value);
        for spec in &self.masks {
            if let Cow::Owned(o) = spec.apply(column, &out) {
                out = Cow::Owned(o);
            }
        }
        out
    }

    /// True when a rule or sequence of this name matched.
    pub fn matched(&self, name: &str) -> bool {
        self.matched.iter().any(|m| &*m.name == name)
    }
}
