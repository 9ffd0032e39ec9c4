//! Spanned AST -> typed program, against a [`Schema`]. Reports every error it finds
//! (it does not stop at the first), each with a stable code.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::ast::{self, BinOp, Expr, ExprKind, ItemKind, Literal};
use crate::diag::{Code, Diagnostic};
use crate::ir::{Cidr, Cmp, Derive, FieldRef, Node, Op, Operand, StrSet};
use crate::mask::{MaskItem, MaskSpec, MaskTarget, Replacement};
use crate::program::*;
use crate::schema::{FieldType, Schema};
use crate::span::{Span, Spanned};
use crate::template::{self, Part, RawPart, Template};
use crate::time;
use crate::verdict::Severity;

/// Options of a check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Today, as days since 1970-01-01, for expired-exception warnings. `None` skips
    /// the warning (the DSL reads no clock).
    pub today: Option<i64>,
}

/// Maximum number of stages in a sequence.
pub const MAX_STAGES: usize = 8;
/// Default and maximum number of captured values per capture.
pub const CAPTURE_LIMIT: (i64, i64) = (64, 1024);
/// Default and maximum bytes per capture.
pub const CAPTURE_BYTES: (i64, i64) = (4096, 65_536);
/// Default approval timeout.
pub const DEFAULT_APPROVAL_TIMEOUT: i64 = 15 * 60 * time::SECOND;
/// Reviewer group when `require approval` names none.
pub const DEFAULT_APPROVAL_GROUP: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Str,
    Enum(&'static [&'static str]),
    Int,
    Time,
    TimeOfDay,
    Date,
    Duration,
    Ip,
    Regex,
    StrList,
    IntList,
    /// A bare word that named nothing: an enum value if the other side is an enum.
    Symbol,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Str | Ty::Enum(_) => "str",
            Ty::Int => "int",
            Ty::Time => "time",
            Ty::TimeOfDay => "time of day",
            Ty::Date => "date",
            Ty::Duration => "duration",
            Ty::Ip => "ip",
            Ty::Regex => "regex",
            Ty::StrList => "list of str",
            Ty::IntList => "list of int",
            Ty::Symbol => "name",
        }
    }

    fn is_str(self) -> bool {
        matches!(self, Ty::Str | Ty::Enum(_))
    }
}

#[derive(Debug, Clone)]
struct Typed {
    ty: Ty,
    op: Operand,
    span: Span,
    /// Constant text values with their spans (string and list constants), for enum
    /// checks and CIDR parsing.
    consts: Option<Vec<(String, Span)>>,
}

#[derive(Debug, Clone)]
enum Bound {
    Value(Typed),
    Cond(Node),
}

#[derive(Default, Clone)]
struct Scope {
    params: Vec<(String, Bound)>,
    /// Captures visible here: (`stage.name`, slot).
    captures: Vec<(String, u8)>,
    /// Captures of later stages (for a better error).
    later: Vec<String>,
    /// Macros being expanded (cycle detection).
    expanding: Vec<String>,
}

struct ListDef {
    span: Span,
    ints: bool,
    values: Vec<(String, Span)>,
}

struct SeqInfo {
    index: u16,
    stages: Vec<String>,
}

pub(crate) struct Checker<'s> {
    schema: &'s dyn Schema,
    opts: CheckOptions,
    diags: Vec<Diagnostic>,
    lists: HashMap<String, ListDef>,
    macros: HashMap<String, &'s ast::MacroDecl>,
    seqs: HashMap<String, SeqInfo>,
    used: BTreeSet<String>,
    /// Lists and macros referenced while checking the current sequence.
    refs: Option<BTreeSet<String>>,
    paths: Vec<&'s str>,
    time: Option<FieldRef>,
}

fn err(code: Code, span: Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, msg, span)
}

/// Checks parsed files against a schema.
pub(crate) fn check<'s>(
    files: &'s [ast::File],
    schema: &'s dyn Schema,
    opts: CheckOptions,
) -> (Option<Program>, Vec<Diagnostic>) {
    let mut c = Checker {
        schema,
        opts,
        diags: Vec::new(),
        lists: HashMap::new(),
        macros: HashMap::new(),
        seqs: HashMap::new(),
        used: BTreeSet::new(),
        refs: None,
        paths: schema.paths(),
        time: schema.lookup("time").and_then(|f| {
            (f.ty == FieldType::Time).then_some(FieldRef {
                id: f.id,
                derive: Derive::None,
            })
        }),
    };
    let program = c.run(files);
    let mut diags = std::mem::take(&mut c.diags);
    diags.sort_by(|a, b| {
        (a.span.file, a.span.start, a.code, &a.message).cmp(&(
            b.span.file,
            b.span.start,
            b.code,
            &b.message,
        ))
    });
    diags.dedup_by(|a, b| {
        a.code == b.code
            && a.message == b.message
            && (a.span.file, a.span.start, a.span.end) == (b.span.file, b.span.start, b.span.end)
    });
    let ok = !diags
        .iter()
        .any(|d| d.severity() == crate::diag::Level::Error);
    (ok.then_some(program), diags)
}

impl<'s> Checker<'s> {
    fn emit(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn run(&mut self, files: &'s [ast::File]) -> Program {
        let mut program = Program {
            time: self.time,
            ..Program::default()
        };
        // Pass 1: names.
        let mut names: HashMap<(u8, String), Span> = HashMap::new();
        let mut seq_index = 0u16;
        for item in files.iter().flat_map(|f| &f.items) {
            let (ns, name) = match &item.kind {
                ItemKind::List(l) => (0, &l.name),
                ItemKind::Macro(m) => (0, &m.name),
                ItemKind::Rule(r) => (1, &r.name),
                ItemKind::Sequence(s) => (1, &s.name),
                ItemKind::Test(_) | ItemKind::Default(_) => continue,
            };
            if let Some(first) = names.get(&(ns, name.node.clone())) {
                self.emit(
                    err(
                        Code::E0005,
                        name.span,
                        format!("`{}` is defined twice", name.node),
                    )
                    .with_label("second definition")
                    .with_related(*first, "first defined here")
                    .with_help("names are global across all files of a policy: rename one"),
                );
                continue;
            }
            names.insert((ns, name.node.clone()), name.span);
            match &item.kind {
                ItemKind::List(l) => {
                    let def = self.list_def(l);
                    self.lists.insert(l.name.node.clone(), def);
                }
                ItemKind::Macro(m) => {
                    self.macros.insert(m.name.node.clone(), m);
                }
                ItemKind::Sequence(s) => {
                    let stages = s
                        .clauses
                        .iter()
                        .filter_map(|c| match &c.kind {
                            ast::SequenceClause::Stage(st) => Some(st.name.node.clone()),
                            _ => None,
                        })
                        .collect();
                    self.seqs.insert(
                        s.name.node.clone(),
                        SeqInfo {
                            index: seq_index,
                            stages,
                        },
                    );
                    seq_index = seq_index.saturating_add(1);
                }
                _ => {}
            }
        }
        // Pass 2: bodies.
        for item in files.iter().flat_map(|f| &f.items) {
            match &item.kind {
                ItemKind::Rule(r) => {
                    if let Some(rule) = self.rule(r) {
                        program.rules.push(rule);
                    }
                }
                ItemKind::Sequence(s) => {
                    if self.seqs.get(&s.name.node).map(|i| i.index as usize)
                        != Some(program.sequences.len())
                    {
                        continue; // a duplicate, already reported
                    }
                    match self.sequence(s, files) {
                        Some(seq) => program.sequences.push(seq),
                        None => program.sequences.push(placeholder_sequence(s)),
                    }
                }
                ItemKind::Default(d) => {
                    let when = d.when.as_ref().map(|e| self.cond(e, &Scope::default()));
                    program.defaults.push(DefaultDef {
                        allow: d.allow,
                        when,
                    });
                }
                ItemKind::Test(t) => program.tests.push(t.clone()),
                ItemKind::List(_) | ItemKind::Macro(_) => {}
            }
        }
        // Macros never called are still checked once, on their own.
        let mut unused: Vec<&'s ast::MacroDecl> = self
            .macros
            .values()
            .filter(|m| !self.used.contains(&m.name.node))
            .copied()
            .collect();
        unused.sort_by_key(|m| (m.name.span.file, m.name.span.start));
        for m in unused {
            let mut scope = Scope::default();
            for (p, t) in m.params.iter().flatten() {
                let ty = self.param_type(t);
                let bound = match ty {
                    Some(Ty::Bool) => Bound::Cond(Node::Const(false)),
                    Some(ty) => Bound::Value(Typed {
                        ty,
                        op: Operand::Abstract,
                        span: p.span,
                        consts: None,
                    }),
                    None => Bound::Value(Typed {
                        ty: Ty::Symbol,
                        op: Operand::Abstract,
                        span: p.span,
                        consts: None,
                    }),
                };
                scope.params.push((p.node.clone(), bound));
            }
            scope.expanding.push(m.name.node.clone());
            self.cond(&m.body, &scope);
            self.emit(
                err(
                    Code::W0002,
                    m.name.span,
                    format!("macro `{}` is never used", m.name.node),
                )
                .with_help("delete it, or use it in a rule"),
            );
        }
        let mut unused_lists: Vec<(&String, &ListDef)> = self
            .lists
            .iter()
            .filter(|(n, _)| !self.used.contains(*n))
            .collect();
        unused_lists.sort_by_key(|(_, l)| (l.span.file, l.span.start));
        let warnings: Vec<Diagnostic> = unused_lists
            .into_iter()
            .map(|(n, l)| {
                err(Code::W0002, l.span, format!("list `{n}` is never used"))
                    .with_help("delete it, or use it in a rule")
            })
            .collect();
        self.diags.extend(warnings);
        self.check_tests(&program);
        program.rules.sort_by(|a, b| a.name.cmp(&b.name));
        program
    }

    fn list_def(&mut self, l: &ast::ListDecl) -> ListDef {
        let mut ints = None;
        let mut values = Vec::new();
        for e in &l.elems {
            let (is_int, text) = match &e.node {
                Literal::Str(s) | Literal::Symbol(s) => (false, s.clone()),
                Literal::Int(i) => (true, i.to_string()),
                other => {
                    self.emit(
                        err(
                            Code::E0003,
                            e.span,
                            format!("lists hold text or numbers, not {}", lit_kind(other)),
                        )
                        .with_help("quote the value to make it text"),
                    );
                    continue;
                }
            };
            match ints {
                None => ints = Some(is_int),
                Some(prev) if prev != is_int => {
                    self.emit(
                        err(
                            Code::E0003,
                            e.span,
                            format!("list `{}` mixes text and numbers", l.name.node),
                        )
                        .with_help("every element of a list must have the same type"),
                    );
                }
                Some(_) => {}
            }
            values.push((text, e.span));
        }
        ListDef {
            span: l.name.span,
            ints: ints.unwrap_or(false),
            values,
        }
    }

    // ------------------------------------------------------------ rules

    fn rule(&mut self, r: &ast::RuleDecl) -> Option<RuleDef> {
        let scope = Scope::default();
        let mut when: Option<(Node, Vec<String>)> = None;
        let mut effect: Option<EffectDef> = None;
        let mut severity = None;
        let mut tags: Option<Vec<String>> = None;
        let mut message = None;
        let mut exceptions: Vec<ExceptionDef> = Vec::new();
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        let mut exception_names: HashMap<String, Span> = HashMap::new();
        for clause in &r.clauses {
            let key = match &clause.kind {
                ast::RuleClause::When(_) => "when",
                ast::RuleClause::Then(_) => "then",
                ast::RuleClause::Severity(_) => "severity",
                ast::RuleClause::Tags(_) => "tags",
                ast::RuleClause::Message(_) => "message",
                ast::RuleClause::Unless(_) => "",
            };
            if !key.is_empty() {
                if let Some(first) = seen.get(key) {
                    self.emit(
                        err(
                            Code::E0007,
                            clause.span,
                            format!("rule `{}` has two `{key}` clauses", r.name.node),
                        )
                        .with_related(*first, "first one here")
                        .with_help(format!("keep one `{key}`")),
                    );
                    continue;
                }
                seen.insert(key, clause.span);
            }
            match &clause.kind {
                ast::RuleClause::When(e) => {
                    let node = self.cond(e, &scope);
                    when = Some((node, conjunct_texts(e)));
                }
                ast::RuleClause::Then(eff) => effect = self.effect(eff, clause.span),
                ast::RuleClause::Severity(s) => severity = self.severity(s),
                ast::RuleClause::Tags(t) => tags = Some(t.iter().map(|t| t.node.clone()).collect()),
                ast::RuleClause::Message(m) => message = self.template(m),
                ast::RuleClause::Unless(ex) => {
                    if let Some(first) = exception_names.get(&ex.name.node) {
                        self.emit(
                            err(
                                Code::E0005,
                                ex.name.span,
                                format!("exception `{}` is defined twice", ex.name.node),
                            )
                            .with_related(*first, "first defined here"),
                        );
                    }
                    exception_names.insert(ex.name.node.clone(), ex.name.span);
                    if let Some(e) = self.exception(ex) {
                        exceptions.push(e);
                    }
                }
            }
        }
        if when.is_none() {
            self.emit(
                err(
                    Code::E0006,
                    r.name.span,
                    format!("rule `{}` has no `when` clause", r.name.node),
                )
                .with_help("add `when CONDITION`; use `when true` to match every event"),
            );
        }
        if effect.is_none() && !seen.contains_key("then") {
            self.emit(
                err(Code::E0006, r.name.span, format!("rule `{}` has no `then` clause", r.name.node))
                    .with_help("add `then allow`, `then block \"why\"`, `then mask ...`, `then require approval ...` or `then alert`"),
            );
        }
        let (when, when_text) = when?;
        let effect = effect?;
        let alert = if matches!(effect, EffectDef::Alert) || severity.is_some() || message.is_some()
        {
            Some(AlertDef {
                severity: severity.unwrap_or_default(),
                tags: tags.unwrap_or_default().into(),
                message,
            })
        } else {
            None
        };
        Some(RuleDef {
            name: r.name.node.as_str().into(),
            span: r.name.span,
            when,
            when_text,
            exceptions,
            effect,
            alert,
        })
    }

    fn exception(&mut self, ex: &ast::Exception) -> Option<ExceptionDef> {
        let when = self.cond(&ex.when, &Scope::default());
        let Some(day) = time::parse_date(&ex.expires.node) else {
            self.emit(
                err(
                    Code::E0009,
                    ex.expires.span,
                    format!("`{}` is not a valid date", ex.expires.node),
                )
                .with_help("write dates as `YYYY-MM-DD`"),
            );
            return None;
        };
        if self.opts.today.is_some_and(|today| today > day) {
            self.emit(
                err(
                    Code::W0001,
                    ex.expires.span,
                    format!(
                        "exception `{}` expired on {}",
                        ex.name.node, ex.expires.node
                    ),
                )
                .with_label("expired")
                .with_help(format!(
                    "it no longer applies; ask its owner `{}` to renew or delete it",
                    ex.owner.node
                )),
            );
        }
        Some(ExceptionDef {
            name: ex.name.node.as_str().into(),
            when,
            owner: ex.owner.node.as_str().into(),
            expires_at: (day + 1) * 86_400 * time::SECOND,
        })
    }

    fn severity(&mut self, s: &ast::Ident) -> Option<Severity> {
        let level = Severity::parse(&s.node);
        if level.is_none() {
            self.emit(
                err(
                    Code::E0010,
                    s.span,
                    format!("unknown severity `{}`", s.node),
                )
                .with_suggestion(&s.node, Severity::ALL.iter().map(|l| l.as_str()))
                .with_help("severities are `informational`, `low`, `medium`, `high`, `critical`"),
            );
        }
        level
    }

    fn template(&mut self, m: &Spanned<String>) -> Option<Template> {
        let parts = match template::split(&m.node) {
            Ok(p) => p,
            Err(_) => {
                self.emit(
                    err(
                        Code::E0012,
                        m.span,
                        "unbalanced `{` or `}` in message template",
                    )
                    .with_help("write `{{` and `}}` for literal braces"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for p in parts {
            match p {
                RawPart::Text(t) => out.push(Part::Text(t.into())),
                RawPart::Field(offset, name) => match self.field(name) {
                    Some((f, _)) => out.push(Part::Field(f)),
                    None => {
                        ok = false;
                        let paths = self.paths.clone();
                        // Point at the name when the literal has no escapes before it.
                        let span = if m.node.contains(['\\', '\n', '\t', '\r', '"'])
                            || m.span.is_empty()
                        {
                            m.span
                        } else {
                            let start = m.span.start as usize + 1 + offset;
                            Span::new(m.span.file, start, start + name.len())
                        };
                        self.emit(
                            err(
                                Code::E0012,
                                span,
                                format!("unknown field `{name}` in message template"),
                            )
                            .with_suggestion(name, paths),
                        );
                    }
                },
            }
        }
        ok.then_some(Template { parts: out })
    }

    fn effect(&mut self, e: &ast::Effect, span: Span) -> Option<EffectDef> {
        Some(match e {
            ast::Effect::Allow => EffectDef::Allow,
            ast::Effect::Alert => EffectDef::Alert,
            ast::Effect::LimitRows(n) => {
                let Ok(rows) = u64::try_from(n.node) else {
                    self.emit(
                        err(
                            Code::E0018,
                            n.span,
                            format!("row limit `{}` is out of range", n.node),
                        )
                        .with_help("use a number of rows from 0 up"),
                    );
                    return None;
                };
                EffectDef::LimitRows(rows)
            }
            ast::Effect::Block(msg) => EffectDef::Block(match msg {
                Some(m) => Some(self.template(m)?),
                None => None,
            }),
            ast::Effect::RequireApproval { group, timeout } => {
                let timeout = match timeout {
                    Some(t) => self.duration(t)?,
                    None => DEFAULT_APPROVAL_TIMEOUT,
                };
                if timeout <= 0 {
                    self.emit(err(
                        Code::E0016,
                        span,
                        "approval timeout must be more than zero",
                    ));
                    return None;
                }
                let group = group
                    .as_ref()
                    .map_or(DEFAULT_APPROVAL_GROUP, |g| g.node.as_str());
                if group.is_empty() {
                    self.emit(err(Code::E0016, span, "approval group must not be empty"));
                }
                EffectDef::Approval {
                    group: group.into(),
                    timeout,
                }
            }
            ast::Effect::Mask(items) => {
                let mut spec = MaskSpec::default();
                if items.is_empty() {
                    self.emit(err(Code::E0016, span, "`mask` needs at least one target"));
                }
                for item in items {
                    let target = match &item.target {
                        ast::MaskTarget::Columns(cols) => {
                            if cols.is_empty() {
                                self.emit(
                                    err(
                                        Code::E0016,
                                        item.span,
                                        "`mask columns []` names no column",
                                    )
                                    .with_help("list column names, or use `columns matching /re/`"),
                                );
                            }
                            let mut names = Vec::new();
                            for c in cols {
                                match &c.node {
                                    Literal::Str(s) | Literal::Symbol(s) => names.push(s.clone()),
                                    other => self.emit(err(
                                        Code::E0003,
                                        c.span,
                                        format!("column names are text, not {}", lit_kind(other)),
                                    )),
                                }
                            }
                            MaskTarget::Columns(names)
                        }
                        ast::MaskTarget::ColumnsMatching(re) => {
                            MaskTarget::ColumnsMatching(self.regex(re)?)
                        }
                        ast::MaskTarget::ValuesMatching(re) => {
                            MaskTarget::ValuesMatching(self.regex(re)?)
                        }
                    };
                    let replacement = match &item.replacement {
                        None => Replacement::With("****".to_owned()),
                        Some(ast::MaskReplacement::With(s)) => Replacement::With(s.node.clone()),
                        Some(ast::MaskReplacement::Keep { last, count }) => {
                            if !(1..=64).contains(&count.node) {
                                self.emit(
                                    err(
                                        Code::E0016,
                                        count.span,
                                        format!("`keep` count `{}` is out of range", count.node),
                                    )
                                    .with_help("keep between 1 and 64 characters"),
                                );
                            }
                            let n = usize::try_from(count.node).unwrap_or(0);
                            if *last {
                                Replacement::KeepLast(n)
                            } else {
                                Replacement::KeepFirst(n)
                            }
                        }
                    };
                    spec.items.push(MaskItem {
                        target,
                        replacement,
                    });
                }
                EffectDef::Mask(Arc::new(spec))
            }
        })
    }

    fn duration(&mut self, d: &Spanned<String>) -> Option<i64> {
        let v = time::parse_duration(&d.node);
        if v.is_none() {
            self.emit(err(
                Code::E0009,
                d.span,
                format!("`{}` is not a valid duration", d.node),
            ));
        }
        v
    }

    fn regex(&mut self, re: &Spanned<ast::RegexLit>) -> Option<regex::Regex> {
        let pattern = if re.node.flags.is_empty() {
            unescape_slash(&re.node.body)
        } else {
            format!("(?{}){}", re.node.flags, unescape_slash(&re.node.body))
        };
        self.compile_regex(&pattern, re.span)
    }

    fn compile_regex(&mut self, pattern: &str, span: Span) -> Option<regex::Regex> {
        match regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
        {
            Ok(r) => Some(r),
            Err(e) => {
                let detail = e.to_string();
                let last = detail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                self.emit(
                    err(Code::E0008, span, "regex does not compile")
                        .with_label(last)
                        .with_help("regexes run in linear time: no look-around or back-references"),
                );
                None
            }
        }
    }

    // ------------------------------------------------------------ sequences

    fn sequence(&mut self, s: &ast::SequenceDecl, files: &[ast::File]) -> Option<SeqDef> {
        self.refs = Some(BTreeSet::new());
        let result = self.sequence_inner(s);
        let refs = self.refs.take().unwrap_or_default();
        let mut seq = result?;
        // Hash the canonical source of the sequence and of every list and macro it uses.
        let mut text = crate::fmt::format_item(&ItemKind::Sequence(s.clone()));
        for item in files.iter().flat_map(|f| &f.items) {
            let name = match &item.kind {
                ItemKind::List(l) => &l.name.node,
                ItemKind::Macro(m) => &m.name.node,
                _ => continue,
            };
            if refs.contains(name) {
                text.push_str(&crate::fmt::format_item(&item.kind));
            }
        }
        seq.hash = fnv1a(text.as_bytes());
        Some(seq)
    }

    fn sequence_inner(&mut self, s: &ast::SequenceDecl) -> Option<SeqDef> {
        let mut ok = true;
        let mut by = Vec::new();
        let keys: Vec<Ident> = if s.by.is_empty() {
            vec![Spanned::new("identity".to_owned(), s.name.span)]
        } else {
            s.by.clone()
        };
        for k in &keys {
            match self.schema.lookup(&k.node) {
                Some(info) if info.envelope => by.push(FieldRef {
                    id: info.id,
                    derive: Derive::None,
                }),
                Some(_) => {
                    ok = false;
                    self.emit(
                        err(Code::E0015, k.span, format!("sequences cannot be keyed by `{}`", k.node))
                            .with_label("not an envelope field")
                            .with_help("key by fields every event carries: `identity`, `identity.on_behalf_of`, `target`, `session`"),
                    );
                }
                None => {
                    ok = false;
                    let paths = self.paths.clone();
                    self.emit(
                        err(Code::E0002, k.span, format!("unknown field `{}`", k.node))
                            .with_suggestion(&k.node, paths),
                    );
                }
            }
        }
        let within = match &s.within {
            Some(w) => self.duration(w),
            None => {
                self.emit(
                    err(Code::E0006, s.name.span, format!("sequence `{}` has no `within` window", s.name.node))
                        .with_help("add an overall window after the key: `sequence NAME by identity within 30m { ... }`"),
                );
                None
            }
        };
        if self.time.is_none() {
            self.emit(err(
                Code::E0002,
                s.name.span,
                "the schema has no `time` field: sequences need one",
            ));
            ok = false;
        }
        let mut stages: Vec<StageDef> = Vec::new();
        let mut stage_spans: HashMap<String, Span> = HashMap::new();
        let mut slots: u8 = 0;
        let mut visible: Vec<(String, u8)> = Vec::new();
        let all_captures: Vec<String> = s
            .clauses
            .iter()
            .filter_map(|c| match &c.kind {
                ast::SequenceClause::Stage(st) => Some(
                    st.captures
                        .iter()
                        .map(|cap| format!("{}.{}", st.name.node, cap.name.node))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        let mut until = None;
        let mut effect = None;
        let mut severity = None;
        let mut tags = None;
        let mut message = None;
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for clause in &s.clauses {
            let key = match &clause.kind {
                ast::SequenceClause::Stage(_) => "",
                ast::SequenceClause::Until(_) => "until",
                ast::SequenceClause::Then(_) => "then",
                ast::SequenceClause::Severity(_) => "severity",
                ast::SequenceClause::Tags(_) => "tags",
                ast::SequenceClause::Message(_) => "message",
            };
            if !key.is_empty() {
                if let Some(first) = seen.get(key) {
                    self.emit(
                        err(
                            Code::E0007,
                            clause.span,
                            format!("sequence `{}` has two `{key}` clauses", s.name.node),
                        )
                        .with_related(*first, "first one here")
                        .with_help(format!("keep one `{key}`")),
                    );
                    continue;
                }
                seen.insert(key, clause.span);
            }
            match &clause.kind {
                ast::SequenceClause::Stage(st) => {
                    if let Some(first) = stage_spans.get(&st.name.node) {
                        self.emit(
                            err(
                                Code::E0005,
                                st.name.span,
                                format!("stage `{}` is defined twice", st.name.node),
                            )
                            .with_related(*first, "first defined here"),
                        );
                        ok = false;
                    }
                    stage_spans.insert(st.name.node.clone(), st.name.span);
                    let stage_within = st.within.as_ref().and_then(|w| self.duration(w));
                    let scope = Scope {
                        captures: visible.clone(),
                        later: all_captures
                            .iter()
                            .filter(|c| !visible.iter().any(|(v, _)| v == *c))
                            .cloned()
                            .collect(),
                        ..Scope::default()
                    };
                    let when = self.cond(&st.when, &scope);
                    let mut captures = Vec::new();
                    let mut cap_names: HashMap<String, Span> = HashMap::new();
                    for cap in &st.captures {
                        if let Some(first) = cap_names.get(&cap.name.node) {
                            self.emit(
                                err(
                                    Code::E0005,
                                    cap.name.span,
                                    format!("capture `{}` is defined twice", cap.name.node),
                                )
                                .with_related(*first, "first defined here"),
                            );
                        }
                        cap_names.insert(cap.name.node.clone(), cap.name.span);
                        if let Some(def) = self.capture(s, st, cap, slots) {
                            visible.push((format!("{}.{}", st.name.node, cap.name.node), slots));
                            slots = slots.saturating_add(1);
                            captures.push(def);
                        } else {
                            ok = false;
                        }
                    }
                    stages.push(StageDef {
                        name: st.name.node.as_str().into(),
                        within: stage_within,
                        when,
                        captures,
                    });
                }
                ast::SequenceClause::Until(e) => {
                    let scope = Scope {
                        captures: visible.clone(),
                        ..Scope::default()
                    };
                    until = Some((e, scope));
                }
                ast::SequenceClause::Then(e) => effect = self.effect(e, clause.span),
                ast::SequenceClause::Severity(l) => severity = self.severity(l),
                ast::SequenceClause::Tags(t) => {
                    tags = Some(t.iter().map(|t| t.node.clone()).collect::<Vec<_>>())
                }
                ast::SequenceClause::Message(m) => message = self.template(m),
            }
        }
        // `until` sees every capture, wherever it is written.
        let until = until.map(|(e, _)| {
            let scope = Scope {
                captures: visible.clone(),
                ..Scope::default()
            };
            self.cond(e, &scope)
        });
        if stages.len() < 2 {
            ok = false;
            self.emit(
                err(
                    Code::E0006,
                    s.name.span,
                    format!("sequence `{}` needs at least two stages", s.name.node),
                )
                .with_help("a single-stage condition is a rule: write `rule` instead"),
            );
        }
        if stages.len() > MAX_STAGES {
            ok = false;
            self.emit(err(
                Code::E0015,
                s.name.span,
                format!(
                    "sequence `{}` has {} stages; at most {MAX_STAGES} are allowed",
                    s.name.node,
                    stages.len()
                ),
            ));
        }
        if !seen.contains_key("then") {
            ok = false;
            self.emit(
                err(Code::E0006, s.name.span, format!("sequence `{}` has no `then` clause", s.name.node))
                    .with_help("add `then alert`, `then block \"why\"` or `then require approval from \"group\"`"),
            );
        }
        let within = within?;
        let effect = effect?;
        if !ok {
            return None;
        }
        Some(SeqDef {
            name: s.name.node.as_str().into(),
            span: s.name.span,
            hash: 0,
            by,
            within,
            stages,
            until,
            effect,
            alert: AlertDef {
                severity: severity.unwrap_or(Severity::High),
                tags: tags.unwrap_or_default().into(),
                message,
            },
            slots,
        })
    }

    fn capture(
        &mut self,
        s: &ast::SequenceDecl,
        st: &ast::Stage,
        cap: &ast::CaptureDecl,
        slot: u8,
    ) -> Option<CaptureDef> {
        let limit = self.bounded(cap.limit.as_ref(), CAPTURE_LIMIT, "capture limit")?;
        let bytes = self.bounded(cap.bytes.as_ref(), CAPTURE_BYTES, "capture byte bound")?;
        let source = match &cap.source.kind {
            ExprKind::Path(p) => match self.field(p) {
                Some((f, _)) => CaptureSource::Field(f),
                None => {
                    self.unknown_field(p, cap.source.span, &Scope::default());
                    return None;
                }
            },
            ExprKind::Call(name, args) => {
                let sources = self.schema.result_sources();
                if !sources.contains(&name.node.as_str()) {
                    self.emit(
                        err(
                            Code::E0004,
                            name.span,
                            format!("unknown capture source `{}`", name.node),
                        )
                        .with_suggestion(&name.node, sources),
                    );
                    return None;
                }
                let arg = match args.as_slice() {
                    [
                        Expr {
                            kind: ExprKind::Literal(Literal::Str(a)),
                            ..
                        },
                    ] => a.clone(),
                    _ => {
                        self.emit(
                            err(
                                Code::E0003,
                                cap.source.span,
                                format!("`{}` takes one text argument", name.node),
                            )
                            .with_help(format!("write `{}(\"column\")`", name.node)),
                        );
                        return None;
                    }
                };
                CaptureSource::Result {
                    function: name.node.as_str().into(),
                    arg: arg.into(),
                }
            }
            _ => {
                self.emit(
                    err(Code::E0003, cap.source.span, "a capture source is a field or a result column")
                        .with_help("write `capture hosts = pg.result.column(\"hostname\")` or `capture host = ssh.target.host`"),
                );
                return None;
            }
        };
        Some(CaptureDef {
            slot,
            qualified: format!("{}.{}.{}", s.name.node, st.name.node, cap.name.node).into(),
            short: cap.name.node.as_str().into(),
            source,
            limit,
            bytes,
        })
    }

    fn bounded(
        &mut self,
        v: Option<&Spanned<i64>>,
        (default, max): (i64, i64),
        what: &str,
    ) -> Option<u32> {
        let Some(v) = v else {
            return u32::try_from(default).ok();
        };
        if v.node < 1 || v.node > max {
            self.emit(
                err(
                    Code::E0018,
                    v.span,
                    format!("{what} `{}` is out of range", v.node),
                )
                .with_help(format!("use a value from 1 to {max}")),
            );
            return None;
        }
        u32::try_from(v.node).ok()
    }

    // ------------------------------------------------------------ tests

    fn check_tests(&mut self, program: &Program) {
        let kinds = self.schema.test_event_kinds();
        let mut names: Vec<String> = program.rules.iter().map(|r| r.name.to_string()).collect();
        names.extend(self.seqs.keys().cloned());
        let captures: Vec<String> = program
            .sequences
            .iter()
            .flat_map(|s| s.stages.iter().flat_map(|st| st.captures.iter()))
            .flat_map(|c| [c.qualified.to_string(), c.short.to_string()])
            .collect();
        for t in &program.tests {
            for (i, step) in t.steps.iter().enumerate() {
                if i == 0 && matches!(step.time, ast::StepTime::After(_)) {
                    // A relative first step counts from the base time: fine.
                }
                if !kinds.is_empty() && !kinds.contains(&step.kind.node.as_str()) {
                    self.emit(
                        err(
                            Code::E0017,
                            step.kind.span,
                            format!("unknown test event kind `{}`", step.kind.node),
                        )
                        .with_suggestion(&step.kind.node, kinds.iter().copied())
                        .with_help(format!(
                            "kinds are {}",
                            kinds
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                }
                let is_result = step.kind.node == "result";
                for f in &step.fields {
                    if is_result && f.name.node != "status" {
                        if !captures.iter().any(|c| c == &f.name.node) {
                            self.emit(
                                err(
                                    Code::E0017,
                                    f.name.span,
                                    format!("no sequence captures `{}`", f.name.node),
                                )
                                .with_suggestion(&f.name.node, captures.iter().map(String::as_str)),
                            );
                        }
                        continue;
                    }
                    if self.schema.lookup(&f.name.node).is_none() && !is_result {
                        let paths = self.paths.clone();
                        self.emit(
                            err(
                                Code::E0017,
                                f.name.span,
                                format!("unknown field `{}` in test event", f.name.node),
                            )
                            .with_suggestion(&f.name.node, paths),
                        );
                    }
                }
                for e in &step.expect {
                    let name = match &e.node {
                        ast::Expectation::Alert(n) | ast::Expectation::Rule(n) => n,
                        _ => continue,
                    };
                    if !names.iter().any(|n| n == name) {
                        self.emit(
                            err(
                                Code::E0004,
                                e.span,
                                format!("no rule or sequence is named `{name}`"),
                            )
                            .with_suggestion(name, names.iter().map(String::as_str)),
                        );
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ expressions

    fn param_type(&mut self, t: &ast::Ident) -> Option<Ty> {
        let ty = match t.node.as_str() {
            "str" => Ty::Str,
            "int" => Ty::Int,
            "bool" => Ty::Bool,
            "list" => Ty::StrList,
            "ip" => Ty::Ip,
            "time_of_day" => Ty::TimeOfDay,
            _ => {
                self.emit(
                    err(
                        Code::E0011,
                        t.span,
                        format!("unknown parameter type `{}`", t.node),
                    )
                    .with_suggestion(&t.node, ["str", "int", "bool", "list", "ip", "time_of_day"])
                    .with_help(
                        "parameter types are `str`, `int`, `bool`, `list`, `ip`, `time_of_day`",
                    ),
                );
                return None;
            }
        };
        Some(ty)
    }

    /// Resolves a field path, including time-derived fields.
    fn field(&mut self, path: &str) -> Option<(FieldRef, Ty)> {
        if let Some(info) = self.schema.lookup(path) {
            return Some((
                FieldRef {
                    id: info.id,
                    derive: Derive::None,
                },
                field_ty(info.ty),
            ));
        }
        let (base, last) = path.rsplit_once('.')?;
        let info = self.schema.lookup(base)?;
        if info.ty != FieldType::Time {
            return None;
        }
        let (derive, ty) = match last {
            "hour" => (Derive::Hour, Ty::Int),
            "minute" => (Derive::Minute, Ty::Int),
            "weekday" => (Derive::Weekday, Ty::Enum(time::WEEKDAYS)),
            "of_day" => (Derive::OfDay, Ty::TimeOfDay),
            "date" => (Derive::Date, Ty::Date),
            _ => return None,
        };
        Some((
            FieldRef {
                id: info.id,
                derive,
            },
            ty,
        ))
    }

    fn all_names(&self, scope: &Scope) -> Vec<String> {
        let mut names: Vec<String> = self.paths.iter().map(|p| (*p).to_owned()).collect();
        for p in self.paths.iter() {
            if self
                .schema
                .lookup(p)
                .is_some_and(|i| i.ty == FieldType::Time)
            {
                for d in ["hour", "minute", "weekday", "of_day", "date"] {
                    names.push(format!("{p}.{d}"));
                }
            }
        }
        names.extend(self.lists.keys().cloned());
        names.extend(self.macros.keys().cloned());
        names.extend(scope.params.iter().map(|(n, _)| n.clone()));
        names.extend(scope.captures.iter().map(|(n, _)| n.clone()));
        names
    }

    fn unknown_field(&mut self, path: &str, span: Span, scope: &Scope) {
        if scope.later.iter().any(|c| c == path) {
            self.emit(
                err(
                    Code::E0015,
                    span,
                    format!("capture `{path}` is not available yet"),
                )
                .with_label("captured by a later stage")
                .with_help("a stage can only use captures of the stages before it"),
            );
            return;
        }
        if is_result_side(path, &self.schema.result_sources()) {
            self.emit(result_side(path, span));
            return;
        }
        let names = self.all_names(scope);
        let what = if path.contains('.') { "field" } else { "name" };
        let mut d = err(Code::E0002, span, format!("unknown {what} `{path}`"))
            .with_suggestion(path, names.iter().map(String::as_str));
        if !path.contains('.') {
            d = d.with_help(format!(
                "to compare with the text `{path}`, quote it: `\"{path}\"`"
            ));
        }
        self.emit(d);
    }

    fn mark_used(&mut self, name: &str) {
        self.used.insert(name.to_owned());
        if let Some(refs) = &mut self.refs {
            refs.insert(name.to_owned());
        }
    }

    /// A condition (boolean context).
    fn cond(&mut self, e: &Expr, scope: &Scope) -> Node {
        match &e.kind {
            ExprKind::Or(es) => Node::Or(es.iter().map(|x| self.cond(x, scope)).collect()),
            ExprKind::And(es) => Node::And(es.iter().map(|x| self.cond(x, scope)).collect()),
            ExprKind::Not(x) => Node::Not(Box::new(self.cond(x, scope))),
            ExprKind::Paren(x) => self.cond(x, scope),
            ExprKind::Literal(Literal::Bool(b)) => Node::Const(*b),
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, e.span, scope),
            ExprKind::Between(x, lo, hi) => self.between(x, lo, hi, e.span, scope),
            ExprKind::Exists(x) => match &x.kind {
                ExprKind::Path(p) => match self.field(p) {
                    Some((f, _)) => Node::Exists(f),
                    None => {
                        self.unknown_field(p, x.span, scope);
                        Node::Const(false)
                    }
                },
                _ => {
                    self.emit(err(Code::E0003, x.span, "`exists` applies to a field"));
                    Node::Const(false)
                }
            },
            ExprKind::SequenceArmed { sequence, after } => self.armed(sequence, after.as_ref()),
            ExprKind::Call(name, args) => self.macro_call(name, args, e.span, scope),
            ExprKind::Path(p) => {
                if let Some((_, bound)) = scope.params.iter().find(|(n, _)| n == p) {
                    return match bound {
                        Bound::Cond(n) => n.clone(),
                        Bound::Value(t) => self.as_cond(t.clone()),
                    };
                }
                if self.macros.contains_key(p) && !self.lists.contains_key(p) {
                    return self.macro_call(&Spanned::new(p.clone(), e.span), &[], e.span, scope);
                }
                match self.value(e, scope) {
                    Some(t) => self.as_cond(t),
                    None => Node::Const(false),
                }
            }
            _ => match self.value(e, scope) {
                Some(t) => self.as_cond(t),
                None => Node::Const(false),
            },
        }
    }

    fn as_cond(&mut self, t: Typed) -> Node {
        match (t.ty, t.op) {
            (Ty::Bool, Operand::Field(f)) => Node::Field(f),
            (Ty::Bool, Operand::Bool(b)) => Node::Const(b),
            (Ty::Bool, _) => Node::Const(false),
            (ty, _) => {
                self.emit(
                    err(
                        Code::E0003,
                        t.span,
                        format!("expected a condition, found a value of type {}", ty.name()),
                    )
                    .with_help(
                        "compare it with something, e.g. `== \"x\"`, or test it with `exists`",
                    ),
                );
                Node::Const(false)
            }
        }
    }

    fn armed(&mut self, sequence: &ast::Ident, after: Option<&ast::Ident>) -> Node {
        let Some(info) = self.seqs.get(&sequence.node) else {
            let names: Vec<String> = self.seqs.keys().cloned().collect();
            self.emit(
                err(
                    Code::E0004,
                    sequence.span,
                    format!("no sequence is named `{}`", sequence.node),
                )
                .with_suggestion(&sequence.node, names.iter().map(String::as_str)),
            );
            return Node::Const(false);
        };
        let index = info.index;
        let min_stages = match after {
            None => 1,
            Some(stage) => match info.stages.iter().position(|s| *s == stage.node) {
                Some(i) => u8::try_from(i + 1).unwrap_or(u8::MAX),
                None => {
                    let stages = info.stages.clone();
                    self.emit(
                        err(
                            Code::E0004,
                            stage.span,
                            format!("sequence `{}` has no stage `{}`", sequence.node, stage.node),
                        )
                        .with_suggestion(&stage.node, stages.iter().map(String::as_str)),
                    );
                    return Node::Const(false);
                }
            },
        };
        Node::Armed {
            seq: index,
            min_stages,
        }
    }

    fn macro_call(&mut self, name: &ast::Ident, args: &[Expr], span: Span, scope: &Scope) -> Node {
        let Some(m) = self.macros.get(&name.node).copied() else {
            if is_result_side(&name.node, &self.schema.result_sources()) {
                self.emit(result_side(&name.node, span));
                return Node::Const(false);
            }
            let names: Vec<String> = self.macros.keys().cloned().collect();
            self.emit(
                err(
                    Code::E0004,
                    name.span,
                    format!("no macro is named `{}`", name.node),
                )
                .with_suggestion(&name.node, names.iter().map(String::as_str)),
            );
            return Node::Const(false);
        };
        self.mark_used(&name.node);
        if scope.expanding.contains(&name.node) {
            self.emit(
                err(
                    Code::E0011,
                    name.span,
                    format!("macro `{}` uses itself", name.node),
                )
                .with_help("macros are expanded in place and cannot be recursive"),
            );
            return Node::Const(false);
        }
        let params: &[(ast::Ident, ast::Ident)] = m.params.as_deref().unwrap_or(&[]);
        if params.len() != args.len() {
            self.emit(
                err(
                    Code::E0011,
                    span,
                    format!(
                        "macro `{}` takes {} argument(s), {} given",
                        name.node,
                        params.len(),
                        args.len()
                    ),
                )
                .with_related(m.name.span, "defined here"),
            );
            return Node::Const(false);
        }
        let mut inner = Scope {
            expanding: scope.expanding.clone(),
            ..Scope::default()
        };
        inner.expanding.push(name.node.clone());
        for ((p, t), arg) in params.iter().zip(args) {
            let Some(ty) = self.param_type(t) else {
                return Node::Const(false);
            };
            let bound = if ty == Ty::Bool {
                Bound::Cond(self.cond(arg, scope))
            } else {
                let Some(v) = self.value(arg, scope) else {
                    return Node::Const(false);
                };
                let fits = v.ty == ty
                    || (ty == Ty::Str && (v.ty.is_str() || v.ty == Ty::Symbol))
                    || (ty == Ty::Ip && v.ty == Ty::Str && v.consts.is_some());
                if !fits {
                    self.emit(
                        err(
                            Code::E0011,
                            arg.span,
                            format!(
                                "argument `{}` of macro `{}` is {}, found {}",
                                p.node,
                                name.node,
                                ty.name(),
                                v.ty.name()
                            ),
                        )
                        .with_related(t.span, "parameter type declared here"),
                    );
                    return Node::Const(false);
                }
                Bound::Value(v)
            };
            inner.params.push((p.node.clone(), bound));
        }
        self.cond(&m.body, &inner)
    }

    /// A value (operand) of a comparison.
    fn value(&mut self, e: &Expr, scope: &Scope) -> Option<Typed> {
        let span = e.span;
        let typed = |ty, op| {
            Some(Typed {
                ty,
                op,
                span,
                consts: None,
            })
        };
        match &e.kind {
            ExprKind::Paren(x) => self.value(x, scope),
            ExprKind::Literal(lit) => match lit {
                Literal::Str(s) => Some(Typed {
                    ty: Ty::Str,
                    op: Operand::Str(s.as_str().into()),
                    span,
                    consts: Some(vec![(s.clone(), span)]),
                }),
                Literal::Int(i) => typed(Ty::Int, Operand::Int(*i)),
                Literal::Bool(b) => typed(Ty::Bool, Operand::Bool(*b)),
                Literal::Duration(d) => {
                    let v = self.duration(&Spanned::new(d.clone(), span))?;
                    typed(Ty::Duration, Operand::Int(v))
                }
                Literal::TimeOfDay(t) => match time::parse_time_of_day(t) {
                    Some(secs) => typed(Ty::TimeOfDay, Operand::Int(i64::from(secs))),
                    None => {
                        self.emit(
                            err(
                                Code::E0009,
                                span,
                                format!("`{t}` is not a valid time of day"),
                            )
                            .with_help("write times as `HH:MM` or `HH:MM:SS`, 00:00 to 23:59:59"),
                        );
                        None
                    }
                },
                Literal::Date(d) => match time::parse_date(d) {
                    Some(days) => typed(Ty::Date, Operand::Int(days)),
                    None => {
                        self.emit(err(Code::E0009, span, format!("`{d}` is not a valid date")));
                        None
                    }
                },
                Literal::Regex(r) => {
                    let re = self.regex(&Spanned::new(r.clone(), span))?;
                    typed(Ty::Regex, Operand::Regex(Box::new(re)))
                }
                Literal::Symbol(s) => Some(Typed {
                    ty: Ty::Symbol,
                    op: Operand::Str(s.as_str().into()),
                    span,
                    consts: Some(vec![(s.clone(), span)]),
                }),
            },
            ExprKind::List(items) => self.list_literal(items, span),
            ExprKind::Path(p) => {
                if let Some((_, bound)) = scope.params.iter().find(|(n, _)| n == p) {
                    return match bound {
                        Bound::Value(t) => Some(Typed { span, ..t.clone() }),
                        Bound::Cond(_) => {
                            self.emit(err(
                                Code::E0003,
                                span,
                                format!("parameter `{p}` is a condition, not a value"),
                            ));
                            None
                        }
                    };
                }
                if let Some((_, slot)) = scope.captures.iter().find(|(n, _)| n == p) {
                    return typed(Ty::StrList, Operand::Capture(*slot));
                }
                if let Some(list) = self.lists.get(p) {
                    let values = list.values.clone();
                    let ints = list.ints;
                    self.mark_used(p);
                    return Some(if ints {
                        Typed {
                            ty: Ty::IntList,
                            op: Operand::IntSet(
                                values.iter().filter_map(|(v, _)| v.parse().ok()).collect(),
                            ),
                            span,
                            consts: None,
                        }
                    } else {
                        Typed {
                            ty: Ty::StrList,
                            op: Operand::Set(StrSet::new(
                                values.iter().map(|(v, _)| v.clone()).collect(),
                            )),
                            span,
                            consts: Some(values),
                        }
                    });
                }
                if let Some((f, ty)) = self.field(p) {
                    return typed(ty, Operand::Field(f));
                }
                if !p.contains('.')
                    && !self.macros.contains_key(p)
                    && !scope.later.iter().any(|c| c == p)
                {
                    // Maybe an enum value; the comparison decides.
                    return Some(Typed {
                        ty: Ty::Symbol,
                        op: Operand::Str(p.as_str().into()),
                        span,
                        consts: Some(vec![(p.clone(), span)]),
                    });
                }
                if self.macros.contains_key(p) {
                    self.emit(
                        err(
                            Code::E0003,
                            span,
                            format!("macro `{p}` is a condition, not a value"),
                        )
                        .with_help("combine conditions with `and`, `or`, `not`"),
                    );
                    return None;
                }
                self.unknown_field(p, span, scope);
                None
            }
            ExprKind::Call(name, _) => {
                if is_result_side(&name.node, &self.schema.result_sources()) {
                    self.emit(result_side(&name.node, span));
                } else if self.macros.contains_key(&name.node) {
                    self.emit(
                        err(
                            Code::E0003,
                            span,
                            format!("macro `{}` is a condition, not a value", name.node),
                        )
                        .with_help("combine conditions with `and`, `or`, `not`"),
                    );
                } else {
                    let names: Vec<String> = self.macros.keys().cloned().collect();
                    self.emit(
                        err(
                            Code::E0004,
                            name.span,
                            format!("no macro is named `{}`", name.node),
                        )
                        .with_suggestion(&name.node, names.iter().map(String::as_str)),
                    );
                }
                None
            }
            _ => {
                // A condition used as a value: check it, then complain.
                let _ = self.cond(e, scope);
                self.emit(
                    err(Code::E0003, span, "expected a value, found a condition")
                        .with_help("add parentheses or compare values, not conditions"),
                );
                None
            }
        }
    }

    fn list_literal(&mut self, items: &[Spanned<Literal>], span: Span) -> Option<Typed> {
        let mut strs = Vec::new();
        let mut ints = Vec::new();
        for it in items {
            match &it.node {
                Literal::Str(s) | Literal::Symbol(s) => strs.push((s.clone(), it.span)),
                Literal::Int(i) => ints.push(*i),
                other => {
                    self.emit(
                        err(
                            Code::E0003,
                            it.span,
                            format!("list elements are text or numbers, not {}", lit_kind(other)),
                        )
                        .with_help("quote the value to make it text"),
                    );
                    return None;
                }
            }
        }
        if !strs.is_empty() && !ints.is_empty() {
            self.emit(err(Code::E0003, span, "list mixes text and numbers"));
            return None;
        }
        Some(if !ints.is_empty() {
            Typed {
                ty: Ty::IntList,
                op: Operand::IntSet(ints.into_boxed_slice()),
                span,
                consts: None,
            }
        } else {
            Typed {
                ty: Ty::StrList,
                op: Operand::Set(StrSet::new(strs.iter().map(|(s, _)| s.clone()).collect())),
                span,
                consts: Some(strs),
            }
        })
    }

    /// Checks constant text against an enum's values.
    fn check_enum(&mut self, values: &'static [&'static str], t: &Typed, field_span: Span) -> bool {
        let Some(consts) = &t.consts else {
            return true;
        };
        let mut ok = true;
        for (v, span) in consts {
            if !values.contains(&v.as_str()) {
                ok = false;
                let shown: Vec<String> = values.iter().take(12).map(|v| format!("`{v}`")).collect();
                let more = if values.len() > 12 { ", ..." } else { "" };
                self.emit(
                    err(
                        Code::E0013,
                        *span,
                        format!("`{v}` is not a possible value here"),
                    )
                    .with_related(field_span, "compared with this field")
                    .with_suggestion(v, values.iter().copied())
                    .with_help(format!("possible values: {}{more}", shown.join(", "))),
                );
            }
        }
        ok
    }

    /// Turns a bare word into text when compared with an enum; an error otherwise.
    fn resolve_symbol(&mut self, t: Typed, other: &Typed, scope: &Scope) -> Option<Typed> {
        if t.ty != Ty::Symbol {
            return Some(t);
        }
        if let Ty::Enum(_) = other.ty {
            return Some(Typed { ty: Ty::Str, ..t });
        }
        if other.ty == Ty::StrList && matches!(other.op, Operand::Field(_)) {
            // `x in some.list.field` where x is a bare word: still a typo of a name.
        }
        let name = match &t.op {
            Operand::Str(s) => s.to_string(),
            _ => String::new(),
        };
        self.unknown_field(&name, t.span, scope);
        None
    }

    fn binary(&mut self, op: BinOp, l: &Expr, r: &Expr, span: Span, scope: &Scope) -> Node {
        let (Some(lt), Some(rt)) = (self.value(l, scope), self.value(r, scope)) else {
            return Node::Const(false);
        };
        let Some(lt) = self.resolve_symbol(lt, &rt, scope) else {
            return Node::Const(false);
        };
        let Some(rt) = self.resolve_symbol(rt, &lt, scope) else {
            return Node::Const(false);
        };
        match self.binary_typed(op, lt, rt, span) {
            Some(n) => n,
            None => Node::Const(false),
        }
    }

    fn mismatch(
        &mut self,
        op: BinOp,
        l: &Typed,
        r: &Typed,
        span: Span,
        help: &str,
    ) -> Option<Node> {
        self.emit(
            err(
                Code::E0003,
                span,
                format!(
                    "`{}` cannot compare {} with {}",
                    op.as_str(),
                    l.ty.name(),
                    r.ty.name()
                ),
            )
            .with_help(help.to_owned()),
        );
        None
    }

    /// Checks constant text compared with a field whose values are canonical (see
    /// [`Schema::canonical`]): a constant in another form could never match.
    fn canonical_pair(&mut self, l: &Typed, r: &Typed) -> bool {
        let mut ok = true;
        for (field, other) in [(l, r), (r, l)] {
            let (Operand::Field(f), Some(consts)) = (&field.op, &other.consts) else {
                continue;
            };
            if f.derive != Derive::None {
                continue;
            }
            for (v, span) in consts {
                if let Some(canonical) = self.schema.canonical(f.id, v)
                    && canonical != *v
                {
                    ok = false;
                    self.emit(
                        err(
                            Code::E0013,
                            *span,
                            format!(
                                "`{v}` is never a value of this field: its values are in canonical form"
                            ),
                        )
                        .with_related(field.span, "compared with this field")
                        .with_help(format!("write `{canonical}`")),
                    );
                }
            }
        }
        ok
    }

    fn enum_pair(&mut self, l: &Typed, r: &Typed) -> bool {
        let mut ok = true;
        if let Ty::Enum(vs) = l.ty {
            ok &= self.check_enum(vs, r, l.span);
        }
        if let Ty::Enum(vs) = r.ty {
            ok &= self.check_enum(vs, l, r.span);
        }
        ok
    }

    fn cidrs_of(&mut self, t: &Typed) -> Option<Operand> {
        let consts = t.consts.as_ref()?;
        let mut nets = Vec::new();
        for (v, span) in consts {
            match Cidr::parse(v) {
                Some(c) => nets.push(c),
                None => {
                    self.emit(
                        err(
                            Code::E0009,
                            *span,
                            format!("`{v}` is not an IP address or CIDR block"),
                        )
                        .with_help("write `10.0.0.0/8`, `192.168.1.7` or `fd00::/8`"),
                    );
                    return None;
                }
            }
        }
        Some(Operand::Cidrs(nets.into_boxed_slice()))
    }

    fn binary_typed(&mut self, op: BinOp, l: Typed, r: Typed, span: Span) -> Option<Node> {
        let cmp = |op: Op, lhs: Operand, rhs: Operand| Node::Cmp(Box::new(Cmp { op, lhs, rhs }));
        let negate = |n: Node| Node::Not(Box::new(n));
        match op {
            BinOp::Eq | BinOp::Ne => {
                let node = match (l.ty, r.ty) {
                    (a, b) if a.is_str() && b.is_str() => {
                        if !self.enum_pair(&l, &r) || !self.canonical_pair(&l, &r) {
                            return None;
                        }
                        cmp(Op::Eq, l.op, r.op)
                    }
                    (Ty::Ip, Ty::Str) => {
                        let nets = self.cidrs_of(&r)?;
                        cmp(Op::Eq, l.op, nets)
                    }
                    (Ty::Str, Ty::Ip) => {
                        let nets = self.cidrs_of(&l)?;
                        cmp(Op::Eq, r.op, nets)
                    }
                    (a, b)
                        if a == b
                            && matches!(
                                a,
                                Ty::Int | Ty::Bool | Ty::TimeOfDay | Ty::Date | Ty::Ip | Ty::Time
                            ) =>
                    {
                        cmp(Op::Eq, l.op, r.op)
                    }
                    _ => {
                        return self.mismatch(
                            op,
                            &l,
                            &r,
                            span,
                            "both sides must have the same type",
                        );
                    }
                };
                Some(if op == BinOp::Ne { negate(node) } else { node })
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if l.ty != r.ty || !matches!(l.ty, Ty::Int | Ty::TimeOfDay | Ty::Date | Ty::Time) {
                    return self.mismatch(
                        op,
                        &l,
                        &r,
                        span,
                        "ordering compares numbers, times of day or dates of the same type",
                    );
                }
                let o = match op {
                    BinOp::Lt => Op::Lt,
                    BinOp::Le => Op::Le,
                    BinOp::Gt => Op::Gt,
                    _ => Op::Ge,
                };
                Some(cmp(o, l.op, r.op))
            }
            BinOp::In | BinOp::NotIn => {
                let node = match (l.ty, r.ty) {
                    (a, Ty::StrList) if a.is_str() => {
                        if let Ty::Enum(vs) = a
                            && !self.check_enum(vs, &r, l.span)
                        {
                            return None;
                        }
                        if !self.canonical_pair(&l, &r) {
                            return None;
                        }
                        cmp(Op::In, l.op, r.op)
                    }
                    (Ty::Int, Ty::IntList) => cmp(Op::In, l.op, r.op),
                    (Ty::Ip, Ty::StrList) => {
                        let Some(nets) = self.cidrs_of(&r) else {
                            if r.consts.is_none() {
                                return self.mismatch(
                                    op,
                                    &l,
                                    &r,
                                    span,
                                    "an address is tested against constant CIDR blocks",
                                );
                            }
                            return None;
                        };
                        cmp(Op::In, l.op, nets)
                    }
                    _ => {
                        return self.mismatch(
                            op,
                            &l,
                            &r,
                            span,
                            "`in` tests a value against a list of the same type: `x in [\"a\", \"b\"]`, a named list, a list field or a capture",
                        );
                    }
                };
                Some(if op == BinOp::NotIn {
                    negate(node)
                } else {
                    node
                })
            }
            BinOp::Contains | BinOp::IContains => {
                let ci = op == BinOp::IContains;
                match (l.ty, r.ty) {
                    (a, b) if a.is_str() && b.is_str() => Some(cmp(
                        if ci { Op::IContains } else { Op::Contains },
                        l.op,
                        r.op,
                    )),
                    (Ty::StrList, b) if b.is_str() => {
                        Some(cmp(if ci { Op::IHas } else { Op::Has }, l.op, r.op))
                    }
                    _ => self.mismatch(
                        op,
                        &l,
                        &r,
                        span,
                        "`contains` finds text in text, or an element in a list",
                    ),
                }
            }
            BinOp::StartsWith | BinOp::IStartsWith | BinOp::EndsWith | BinOp::IEndsWith => {
                if !(l.ty.is_str() || l.ty == Ty::StrList) || !r.ty.is_str() {
                    return self.mismatch(
                        op,
                        &l,
                        &r,
                        span,
                        "the left side is text (or a list: any element), the right side is text",
                    );
                }
                let o = match op {
                    BinOp::StartsWith => Op::StartsWith,
                    BinOp::IStartsWith => Op::IStartsWith,
                    BinOp::EndsWith => Op::EndsWith,
                    _ => Op::IEndsWith,
                };
                Some(cmp(o, l.op, r.op))
            }
            BinOp::Intersects => {
                if l.ty != Ty::StrList || r.ty != Ty::StrList {
                    return self.mismatch(op, &l, &r, span, "`intersects` compares two lists");
                }
                Some(cmp(Op::Intersects, l.op, r.op))
            }
            BinOp::Matches => {
                if !(l.ty.is_str() || l.ty == Ty::StrList) || r.ty != Ty::Regex {
                    return self.mismatch(op, &l, &r, span, "write `field matches /regex/flags`");
                }
                Some(cmp(Op::Matches, l.op, r.op))
            }
            BinOp::Glob => {
                let pattern = match (&r.op, r.ty) {
                    (Operand::Str(p), Ty::Str) if r.consts.is_some() => p.to_string(),
                    _ => {
                        return self.mismatch(
                            op,
                            &l,
                            &r,
                            span,
                            "write `field glob \"/etc/**\"` with a constant pattern",
                        );
                    }
                };
                if !(l.ty.is_str() || l.ty == Ty::StrList) {
                    return self.mismatch(op, &l, &r, span, "`glob` matches text");
                }
                let re = self.compile_regex(&glob_to_regex(&pattern), r.span)?;
                Some(cmp(Op::Matches, l.op, Operand::Regex(Box::new(re))))
            }
        }
    }

    fn between(&mut self, x: &Expr, lo: &Expr, hi: &Expr, span: Span, scope: &Scope) -> Node {
        let (Some(x), Some(lo), Some(hi)) = (
            self.value(x, scope),
            self.value(lo, scope),
            self.value(hi, scope),
        ) else {
            return Node::Const(false);
        };
        if x.ty != lo.ty || x.ty != hi.ty || !matches!(x.ty, Ty::Int | Ty::TimeOfDay | Ty::Date) {
            self.emit(
                err(
                    Code::E0003,
                    span,
                    format!(
                        "`between` cannot compare {} with {} and {}",
                        x.ty.name(),
                        lo.ty.name(),
                        hi.ty.name()
                    ),
                )
                .with_help("write `time.of_day between 09:00 and 17:00` or `x between 1 and 5`"),
            );
            return Node::Const(false);
        }
        Node::Between(Box::new([x.op, lo.op, hi.op]))
    }
}

type Ident = ast::Ident;

fn field_ty(t: FieldType) -> Ty {
    match t {
        FieldType::Str => Ty::Str,
        FieldType::Int => Ty::Int,
        FieldType::Bool => Ty::Bool,
        FieldType::Time => Ty::Time,
        FieldType::Ip => Ty::Ip,
        FieldType::StrList => Ty::StrList,
        FieldType::Enum(v) => Ty::Enum(v),
    }
}

fn lit_kind(l: &Literal) -> &'static str {
    match l {
        Literal::Str(_) => "text",
        Literal::Int(_) => "a number",
        Literal::Bool(_) => "a boolean",
        Literal::Duration(_) => "a duration",
        Literal::TimeOfDay(_) => "a time of day",
        Literal::Date(_) => "a date",
        Literal::Regex(_) => "a regex",
        Literal::Symbol(_) => "a name",
    }
}

fn is_result_side(path: &str, sources: &[&str]) -> bool {
    path.starts_with("pg.result") || sources.iter().any(|s| path.starts_with(s))
}

fn result_side(path: &str, span: Span) -> Diagnostic {
    err(Code::E0014, span, format!("`{path}` describes a result, not a request"))
        .with_help("capture result values in a sequence stage (`capture hosts = pg.result.column(\"hostname\")`), or mask result columns with `then mask columns [...]`")
}

fn unescape_slash(body: &str) -> String {
    body.replace("\\/", "/")
}

/// Translates a glob into an anchored regex: `*` within a path segment, `**` across
/// segments, `?` one character, `[...]` a class.
pub(crate) fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    if d == '\\' || d == '[' {
                        out.push('\\');
                    }
                    out.push(d);
                }
                out.push(']');
            }
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('$');
    out
}

/// FNV-1a, 64-bit: a stable hash (unlike `std`'s, it does not change between runs).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn conjunct_texts(e: &Expr) -> Vec<String> {
    match &e.kind {
        ExprKind::And(es) => es.iter().map(crate::fmt::format_expr).collect(),
        _ => vec![crate::fmt::format_expr(e)],
    }
}

fn placeholder_sequence(s: &ast::SequenceDecl) -> SeqDef {
    SeqDef {
        name: s.name.node.as_str().into(),
        span: s.name.span,
        hash: 0,
        by: Vec::new(),
        within: 0,
        stages: Vec::new(),
        until: None,
        effect: EffectDef::Alert,
        alert: AlertDef {
            severity: Severity::High,
            tags: Arc::from(Vec::new()),
            message: None,
        },
        slots: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let re = regex::Regex::new(&glob_to_regex("/etc/*.conf")).unwrap();
        assert!(re.is_match("/etc/a.conf"));
        assert!(!re.is_match("/etc/x/a.conf"));
        let re = regex::Regex::new(&glob_to_regex("/home/**/authorized_keys")).unwrap();
        assert!(re.is_match("/home/u/.ssh/authorized_keys"));
        let re = regex::Regex::new(&glob_to_regex("file[!0-9].txt")).unwrap();
        assert!(re.is_match("filea.txt"));
        assert!(!re.is_match("file1.txt"));
    }
}
