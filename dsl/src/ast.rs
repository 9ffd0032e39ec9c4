//! The spanned syntax tree of a `.rules` file, as written (before checking).

use crate::span::{Span, Spanned};

/// An identifier with its span.
pub type Ident = Spanned<String>;

/// One parsed `.rules` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Item>,
    /// Comments after the last item.
    pub trailing_comments: Vec<String>,
}

/// A top-level item with the comments written just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `//` comment lines before the item (text after `//`).
    pub comments: Vec<String>,
    /// The item.
    pub kind: ItemKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of top-level items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// `default allow|deny [when EXPR]`.
    Default(DefaultDecl),
    /// `list NAME = [...]`.
    List(ListDecl),
    /// `macro NAME(params) = EXPR`.
    Macro(MacroDecl),
    /// `rule NAME { ... }`.
    Rule(RuleDecl),
    /// `sequence NAME by ... within ... { ... }`.
    Sequence(SequenceDecl),
    /// `test "name" { ... }`.
    Test(TestDecl),
}

/// `default allow|deny [when EXPR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDecl {
    /// True for `allow`.
    pub allow: bool,
    /// Optional condition (usually on `target`).
    pub when: Option<Expr>,
}

/// `list NAME = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDecl {
    /// Name.
    pub name: Ident,
    /// Elements.
    pub elems: Vec<Spanned<Literal>>,
}

/// `macro NAME(p: type, ...) = EXPR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroDecl {
    /// Name.
    pub name: Ident,
    /// Parameters (name, type name); `None` when written without parentheses.
    pub params: Option<Vec<(Ident, Ident)>>,
    /// Body.
    pub body: Expr,
}

/// A clause of a rule or sequence, with its leading comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause<T> {
    /// `//` comments written before the clause.
    pub comments: Vec<String>,
    /// The clause.
    pub kind: T,
    /// Where it was written.
    pub span: Span,
}

/// `rule NAME { clauses }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDecl {
    /// Name.
    pub name: Ident,
    /// Clauses in source order (order has no meaning; the checker rejects duplicates).
    pub clauses: Vec<Clause<RuleClause>>,
    /// Comments before the closing brace.
    pub trailing_comments: Vec<String>,
}

/// A clause of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleClause {
    /// `when EXPR`.
    When(Expr),
    /// `unless NAME when EXPR owner "x" expires DATE [reason "y"]`.
    Unless(Exception),
    /// `then EFFECT`.
    Then(Effect),
    /// `severity LEVEL`.
    Severity(Ident),
    /// `tags [a, b]`.
    Tags(Vec<Ident>),
    /// `message "template"`.
    Message(Spanned<String>),
}

/// An exception: a named, owned, expiring carve-out from a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Name.
    pub name: Ident,
    /// When the exception applies.
    pub when: Expr,
    /// Who owns it.
    pub owner: Spanned<String>,
    /// Last day it applies (`YYYY-MM-DD`, UTC).
    pub expires: Spanned<String>,
    /// Why it exists.
    pub reason: Option<Spanned<String>>,
}

/// An effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `allow`.
    Allow,
    /// `block ["message"]`.
    Block(Option<Spanned<String>>),
    /// `require approval [from "group"] [timeout DUR]`.
    RequireApproval {
        /// Reviewer group.
        group: Option<Spanned<String>>,
        /// Hold timeout.
        timeout: Option<Spanned<String>>,
    },
    /// `mask ITEM, ...`.
    Mask(Vec<MaskItem>),
    /// `limit rows N`: a statement that changes more than N rows is undone and refused.
    LimitRows(Spanned<i64>),
    /// `alert`.
    Alert,
}

/// One `mask` target with its replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskItem {
    /// What to mask.
    pub target: MaskTarget,
    /// How.
    pub replacement: Option<MaskReplacement>,
    /// Where it was written.
    pub span: Span,
}

/// What a mask applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskTarget {
    /// `columns ["a", "b"]`.
    Columns(Vec<Spanned<Literal>>),
    /// `columns matching /re/`.
    ColumnsMatching(Spanned<RegexLit>),
    /// `values matching /re/`.
    ValuesMatching(Spanned<RegexLit>),
}

/// The replacement of a masked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskReplacement {
    /// `with "****"`.
    With(Spanned<String>),
    /// `keep last N` / `keep first N`: format-preserving partial mask.
    Keep {
        /// True for `last`.
        last: bool,
        /// How many characters to keep.
        count: Spanned<i64>,
    },
}

/// `sequence NAME [by KEY, ...] within DUR { clauses }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDecl {
    /// Name.
    pub name: Ident,
    /// Key fields; empty means `identity`.
    pub by: Vec<Ident>,
    /// Overall window.
    pub within: Option<Spanned<String>>,
    /// Clauses in source order (stages are ordered).
    pub clauses: Vec<Clause<SequenceClause>>,
    /// Comments before the closing brace.
    pub trailing_comments: Vec<String>,
}

/// A clause of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceClause {
    /// `stage NAME [within DUR]: EXPR [capture ...]*`.
    Stage(Stage),
    /// `until EXPR`.
    Until(Expr),
    /// `then EFFECT`.
    Then(Effect),
    /// `severity LEVEL`.
    Severity(Ident),
    /// `tags [...]`.
    Tags(Vec<Ident>),
    /// `message "template"`.
    Message(Spanned<String>),
}

/// One stage of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Name.
    pub name: Ident,
    /// Window since the previous stage.
    pub within: Option<Spanned<String>>,
    /// Condition.
    pub when: Expr,
    /// Captures.
    pub captures: Vec<CaptureDecl>,
}

/// `capture NAME = SOURCE [limit N] [bytes N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureDecl {
    /// Name.
    pub name: Ident,
    /// A field path, or a call such as `pg.result.column("hostname")`.
    pub source: Expr,
    /// Maximum number of values kept.
    pub limit: Option<Spanned<i64>>,
    /// Maximum total bytes kept.
    pub bytes: Option<Spanned<i64>>,
    /// Where it was written.
    pub span: Span,
}

/// A regex literal: `/body/flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexLit {
    /// The pattern as written between the slashes (escapes kept).
    pub body: String,
    /// Flags (`i`, `m`, `s`, `x`, `U`).
    pub flags: String,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `"text"` (unescaped).
    Str(String),
    /// `42`.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// `30m`, as written.
    Duration(String),
    /// `09:30`, as written.
    TimeOfDay(String),
    /// `2026-12-31`, as written.
    Date(String),
    /// `/re/i`.
    Regex(RegexLit),
    /// A bare word (an enum value such as `drop`, or a name).
    Symbol(String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `contains`
    Contains,
    /// `icontains`
    IContains,
    /// `starts_with`
    StartsWith,
    /// `istarts_with`
    IStartsWith,
    /// `ends_with`
    EndsWith,
    /// `iends_with`
    IEndsWith,
    /// `intersects`
    Intersects,
    /// `matches`
    Matches,
    /// `glob`
    Glob,
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Contains => "contains",
            BinOp::IContains => "icontains",
            BinOp::StartsWith => "starts_with",
            BinOp::IStartsWith => "istarts_with",
            BinOp::EndsWith => "ends_with",
            BinOp::IEndsWith => "iends_with",
            BinOp::Intersects => "intersects",
            BinOp::Matches => "matches",
            BinOp::Glob => "glob",
        }
    }

    /// Parses an operator as written (`not in` with any inner spacing).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "in" => BinOp::In,
            "contains" => BinOp::Contains,
            "icontains" => BinOp::IContains,
            "starts_with" => BinOp::StartsWith,
            "istarts_with" => BinOp::IStartsWith,
            "ends_with" => BinOp::EndsWith,
            "iends_with" => BinOp::IEndsWith,
            "intersects" => BinOp::Intersects,
            "matches" => BinOp::Matches,
            "glob" => BinOp::Glob,
            other if other.starts_with("not") && other.ends_with("in") => BinOp::NotIn,
            _ => return None,
        })
    }

    /// Every operator (for suggestions and property tests).
    pub const ALL: [BinOp; 17] = [
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::In,
        BinOp::NotIn,
        BinOp::Contains,
        BinOp::IContains,
        BinOp::StartsWith,
        BinOp::IStartsWith,
        BinOp::EndsWith,
        BinOp::IEndsWith,
        BinOp::Intersects,
        BinOp::Matches,
        BinOp::Glob,
    ];
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Expression forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// `a or b or ...`
    Or(Vec<Expr>),
    /// `a and b and ...`
    And(Vec<Expr>),
    /// `not a`
    Not(Box<Expr>),
    /// `a OP b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a between b and c`
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `a exists`
    Exists(Box<Expr>),
    /// A dotted name: a field, list, macro, macro parameter, capture or enum value.
    Path(String),
    /// `name(args)`.
    Call(Ident, Vec<Expr>),
    /// A literal.
    Literal(Literal),
    /// `[a, b]`.
    List(Vec<Spanned<Literal>>),
    /// `sequence NAME armed [after STAGE]`.
    SequenceArmed {
        /// Sequence name.
        sequence: Ident,
        /// Stage name; `None` means any stage.
        after: Option<Ident>,
    },
    /// `( expr )`: kept so the formatter can reproduce explicit grouping.
    Paren(Box<Expr>),
}

/// `test "name" { steps }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDecl {
    /// Name.
    pub name: Spanned<String>,
    /// Steps, in time order.
    pub steps: Vec<TestStep>,
}

/// When a test step happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepTime {
    /// `+DUR` after the previous step.
    After(Spanned<String>),
    /// `[DATE] HH:MM[:SS]`: the test's base day (2026-01-05, a Monday) or `DATE`.
    At {
        /// Optional date.
        date: Option<Spanned<String>>,
        /// Time of day.
        time: Spanned<String>,
    },
}

/// One event of a test timeline, with what is expected of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStep {
    /// When.
    pub time: StepTime,
    /// Event kind (`pg`, `ssh`, `k8s`, `result`, `session_closed`, ...).
    pub kind: Ident,
    /// Field assignments.
    pub fields: Vec<TestField>,
    /// Expectations; empty means none checked.
    pub expect: Vec<Spanned<Expectation>>,
    /// Where it was written.
    pub span: Span,
}

/// `name = value` in a test step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestField {
    /// Field path or capture name.
    pub name: Spanned<String>,
    /// True when the name was written as a string (`"recon.hosts" = [...]`).
    pub quoted: bool,
    /// The value.
    pub value: Spanned<TestValue>,
}

/// A value in a test step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestValue {
    /// One literal.
    Scalar(Literal),
    /// A list of literals.
    List(Vec<Literal>),
}

/// What a test step expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// The combined effect.
    Effect(ExpectedEffect),
    /// A named rule or sequence raised an alert.
    Alert(String),
    /// No alert was raised.
    NoAlert,
    /// A named rule or sequence matched.
    Rule(String),
}

/// Effects a test can expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedEffect {
    /// `allow`
    Allow,
    /// `mask`
    Mask,
    /// `require approval`
    RequireApproval,
    /// `block`
    Block,
}
