//! The checked program: rules, sequences and defaults with typed conditions, ready to
//! be indexed by [`crate::RuleSet`].

use std::sync::Arc;

use crate::ast::TestDecl;
use crate::ir::{FieldRef, Node};
use crate::mask::MaskSpec;
use crate::span::Span;
use crate::template::Template;
use crate::verdict::Severity;

#[derive(Debug, Clone)]
pub(crate) struct RuleDef {
    pub name: Arc<str>,
    pub span: Span,
    pub when: Node,
    /// Source text of each top-level conjunct of `when` (for `explain`).
    pub when_text: Vec<String>,
    pub exceptions: Vec<ExceptionDef>,
    pub effect: EffectDef,
    pub alert: Option<AlertDef>,
}

#[derive(Debug, Clone)]
pub(crate) struct ExceptionDef {
    pub name: Arc<str>,
    pub when: Node,
    pub owner: Arc<str>,
    /// First instant (microseconds) at which the exception no longer applies.
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum EffectDef {
    Allow,
    Block(Option<Template>),
    Approval {
        group: Arc<str>,
        timeout: i64,
    },
    Mask(Arc<MaskSpec>),
    /// Most rows the statement may change.
    LimitRows(u64),
    Alert,
}

#[derive(Debug, Clone)]
pub(crate) struct AlertDef {
    pub severity: Severity,
    pub tags: Arc<[String]>,
    pub message: Option<Template>,
}

#[derive(Debug, Clone)]
pub(crate) struct SeqDef {
    pub name: Arc<str>,
    pub span: Span,
    /// Hash of the canonical source of the sequence and what it refers to: partial
    /// matches survive a reload when it is unchanged.
    pub hash: u64,
    pub by: Vec<FieldRef>,
    pub within: i64,
    pub stages: Vec<StageDef>,
    pub until: Option<Node>,
    pub effect: EffectDef,
    pub alert: AlertDef,
    /// Number of capture slots over all stages.
    pub slots: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct StageDef {
    pub name: Arc<str>,
    pub within: Option<i64>,
    pub when: Node,
    pub captures: Vec<CaptureDef>,
}

#[derive(Debug, Clone)]
pub(crate) struct CaptureDef {
    pub slot: u8,
    /// `sequence.stage.capture`.
    pub qualified: Arc<str>,
    /// `capture`.
    pub short: Arc<str>,
    pub source: CaptureSource,
    pub limit: u32,
    pub bytes: u32,
}

#[derive(Debug, Clone)]
pub(crate) enum CaptureSource {
    Field(FieldRef),
    Result { function: Arc<str>, arg: Arc<str> },
}

#[derive(Debug, Clone)]
pub(crate) struct DefaultDef {
    pub allow: bool,
    pub when: Option<Node>,
}

/// Everything the checker produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Program {
    pub rules: Vec<RuleDef>,
    pub sequences: Vec<SeqDef>,
    pub defaults: Vec<DefaultDef>,
    pub tests: Vec<TestDecl>,
    pub time: Option<FieldRef>,
}
