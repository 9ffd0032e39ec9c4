//! Text -> spanned AST. Pest stays private to this module.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::*;
use crate::diag::{Code, Diagnostic};
use crate::span::{Span, Spanned};

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/rules.pest"]
struct RulesParser;

/// Deepest nesting of `(` and `[` accepted: the parser and checker recurse on it, so
/// it bounds their stack use (hostile input cannot overflow the stack).
pub const MAX_NESTING: usize = 24;

/// Most `not`s in a row.
const MAX_NOTS: usize = 8;

/// Parses one file. `file` is the index the spans will carry.
pub fn parse(file: u32, text: &str) -> Result<File, Diagnostic> {
    check_nesting(file, text)?;
    let mut pairs =
        RulesParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, &e))?;
    let Some(root) = pairs.next() else {
        return Ok(File::default());
    };
    let comments = scan_comments(text);
    let mut b = Builder {
        file,
        comments,
        next_comment: 0,
    };
    let mut items = Vec::new();
    for pair in root.into_inner() {
        if pair.as_rule() == Rule::EOI {
            continue;
        }
        let span = b.span(&pair);
        let comments = b.comments_before(span.start as usize);
        let kind = b.item(pair)?;
        items.push(Item {
            comments,
            kind,
            span,
        });
    }
    let trailing_comments = b.comments_before(usize::MAX);
    Ok(File {
        items,
        trailing_comments,
    })
}

fn syntax_error(file: u32, text: &str, e: &pest::error::Error<Rule>) -> Diagnostic {
    let (start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((s, e)) => (s, e),
    };
    // Point at the whole offending token, not just its first byte.
    let end = if end > start {
        end
    } else {
        let rest = text.get(start..).unwrap_or("");
        let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
        let len = match rest.chars().next() {
            None => 0,
            Some(c) if word(c) => rest.find(|c: char| !word(c)).unwrap_or(rest.len()),
            Some(c) => rest
                .char_indices()
                .skip(1)
                .find(|(_, d)| d.is_alphanumeric() || d.is_whitespace() || d != &c)
                .map_or(rest.len(), |(i, _)| i)
                .min(c.len_utf8() * 2),
        };
        start + len
    };
    let found = text.get(start..end).unwrap_or("");
    let expected = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&'static str> =
                positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            names
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let message = if found.is_empty() {
        "unexpected end of file".to_owned()
    } else {
        format!("unexpected `{found}`")
    };
    let mut d = Diagnostic::error(Code::E0001, message, Span::new(file, start, end));
    if !expected.is_empty() {
        d = d.with_help(format!("expected {}", join_or(&expected)));
    }
    if found == "=" {
        d = d.with_help("comparisons use `==`");
    } else if found == "&&" || found == "||" || found == "!" {
        d = d.with_help("boolean operators are written `and`, `or`, `not`");
    }
    d
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::item | Rule::default_decl | Rule::list_decl | Rule::macro_decl => {
            "an item (`rule`, `sequence`, `list`, `macro`, `default`, `test`)"
        }
        Rule::rule_decl | Rule::sequence_decl | Rule::test_decl => {
            "an item (`rule`, `sequence`, `list`, `macro`, `default`, `test`)"
        }
        Rule::ident | Rule::path | Rule::segment | Rule::symbol => "a name",
        Rule::string => "a string",
        Rule::regex => "a regex `/.../`",
        Rule::int => "a number",
        Rule::duration => "a duration (`30m`)",
        Rule::date => "a date (`2026-12-31`)",
        Rule::time_of_day => "a time of day (`09:00`)",
        Rule::expr | Rule::and_expr | Rule::unary | Rule::predicate | Rule::paren => {
            "an expression"
        }
        Rule::cmp_op | Rule::binary_tail | Rule::between_tail | Rule::exists_tail => "an operator",
        Rule::and_op => "`and`",
        Rule::or_op => "`or`",
        Rule::when_clause => "`when`",
        Rule::unless_clause => "`unless`",
        Rule::then_clause => "`then`",
        Rule::severity_clause => "`severity`",
        Rule::tags_clause => "`tags`",
        Rule::message_clause => "`message`",
        Rule::stage_clause => "`stage`",
        Rule::until_clause => "`until`",
        Rule::capture_clause => "`capture`",
        Rule::allow_effect
        | Rule::block_effect
        | Rule::alert_effect
        | Rule::approval_effect
        | Rule::mask_effect => "an effect (`allow`, `block`, `mask`, `require approval`, `alert`)",
        Rule::mask_item | Rule::mask_columns | Rule::mask_columns_matching | Rule::mask_values => {
            "`columns` or `values`"
        }
        Rule::mask_with | Rule::mask_keep => "`with` or `keep`",
        Rule::list_lit => "a list `[...]`",
        Rule::seq_by => "`by`",
        Rule::seq_within => "`within`",
        Rule::default_effect => "`allow` or `deny`",
        Rule::macro_params => "`(`",
        Rule::macro_param => "a parameter `name: type`",
        Rule::test_step => "`at`",
        Rule::step_time | Rule::rel_time | Rule::abs_time => "a time (`+1m` or `09:00`)",
        Rule::assign => "a field assignment",
        Rule::expectation
        | Rule::expect_effect
        | Rule::expect_alert
        | Rule::expect_no_alert
        | Rule::expect_rule => "an expectation",
        Rule::seq_state => "`sequence NAME armed`",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

/// Rejects input nested deeper than [`MAX_NESTING`] before the recursive parser sees it.
fn check_nesting(file: u32, text: &str) -> Result<(), Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => {
                i += 1;
                while let Some(&d) = bytes.get(i) {
                    i += if d == b'\\' { 2 } else { 1 };
                    if d == b'"' || d == b'\n' {
                        break;
                    }
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while bytes.get(i).is_some_and(|d| *d != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' => {
                i += 1;
                while let Some(&d) = bytes.get(i) {
                    i += if d == b'\\' { 2 } else { 1 };
                    if d == b'/' || d == b'\n' {
                        break;
                    }
                }
                continue;
            }
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        format!("expression nests more than {MAX_NESTING} levels deep"),
                        Span::new(file, i, i + 1),
                    )
                    .with_help("split it into macros"));
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// `//` comments with the byte offset where each starts, in order.
fn scan_comments(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => {
                i += 1;
                while let Some(&d) = bytes.get(i) {
                    i += if d == b'\\' { 2 } else { 1 };
                    if d == b'"' || d == b'\n' {
                        break;
                    }
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text
                    .get(i..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(text.len(), |n| i + n);
                let body = text.get(i + 2..end).unwrap_or("");
                out.push((i, body.trim_end().to_owned()));
                i = end;
            }
            b'/' => {
                // A regex literal: skip to its closing slash.
                i += 1;
                while let Some(&d) = bytes.get(i) {
                    i += if d == b'\\' { 2 } else { 1 };
                    if d == b'/' || d == b'\n' {
                        break;
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

struct Builder {
    file: u32,
    comments: Vec<(usize, String)>,
    next_comment: usize,
}

type R<T> = Result<T, Diagnostic>;

fn unescape(raw: &str) -> String {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Builder {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn comments_before(&mut self, offset: usize) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((at, text)) = self.comments.get(self.next_comment) {
            if *at >= offset {
                break;
            }
            out.push(text.clone());
            self.next_comment += 1;
        }
        out
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Spanned::new(pair.as_str().to_owned(), self.span(&pair))
    }

    fn string(&self, pair: Pair<'_, Rule>) -> Spanned<String> {
        Spanned::new(unescape(pair.as_str()), self.span(&pair))
    }

    fn raw(&self, pair: Pair<'_, Rule>) -> Spanned<String> {
        Spanned::new(pair.as_str().to_owned(), self.span(&pair))
    }

    fn int(&self, pair: Pair<'_, Rule>) -> R<Spanned<i64>> {
        let span = self.span(&pair);
        pair.as_str()
            .parse::<i64>()
            .map(|v| Spanned::new(v, span))
            .map_err(|_| {
                Diagnostic::error(
                    Code::E0009,
                    format!("number `{}` is out of range", pair.as_str()),
                    span,
                )
            })
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> R<ItemKind> {
        Ok(match pair.as_rule() {
            Rule::default_decl => {
                let mut inner = pair.into_inner();
                let allow = inner.next().is_some_and(|p| p.as_str() == "allow");
                let when = inner.next().map(|p| self.expr(p)).transpose()?;
                ItemKind::Default(DefaultDecl { allow, when })
            }
            Rule::list_decl => {
                let mut inner = pair.into_inner();
                let name = self.next_ident(&mut inner);
                let elems = match inner.next() {
                    Some(p) => self.list_lit(p)?,
                    None => Vec::new(),
                };
                ItemKind::List(ListDecl { name, elems })
            }
            Rule::macro_decl => {
                let mut name = None;
                let mut params = None;
                let mut body = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::ident => name = Some(self.ident(p)),
                        Rule::macro_params => {
                            let mut ps = Vec::new();
                            for param in p.into_inner() {
                                let mut pi = param.into_inner();
                                let n = self.next_ident(&mut pi);
                                let t = self.next_ident(&mut pi);
                                ps.push((n, t));
                            }
                            params = Some(ps);
                        }
                        _ => body = Some(self.expr(p)?),
                    }
                }
                ItemKind::Macro(MacroDecl {
                    name: name.unwrap_or_else(|| Spanned::new(String::new(), Span::default())),
                    params,
                    body: body.unwrap_or_else(empty_expr),
                })
            }
            Rule::rule_decl => ItemKind::Rule(self.rule_decl(pair)?),
            Rule::sequence_decl => ItemKind::Sequence(self.sequence_decl(pair)?),
            Rule::test_decl => ItemKind::Test(self.test_decl(pair)?),
            other => {
                return Err(Diagnostic::error(
                    Code::E0001,
                    format!("unexpected {other:?}"),
                    self.span(&pair),
                ));
            }
        })
    }

    fn next_ident(&self, inner: &mut pest::iterators::Pairs<'_, Rule>) -> Ident {
        inner
            .next()
            .map(|p| self.ident(p))
            .unwrap_or_else(|| Spanned::new(String::new(), Span::default()))
    }

    fn rule_decl(&mut self, pair: Pair<'_, Rule>) -> R<RuleDecl> {
        let end = pair.as_span().end();
        let mut inner = pair.into_inner();
        let name = self.next_ident(&mut inner);
        let mut clauses = Vec::new();
        for p in inner {
            let span = self.span(&p);
            let comments = self.comments_before(span.start as usize);
            let kind = match p.as_rule() {
                Rule::when_clause => RuleClause::When(self.first_expr(p)?),
                Rule::unless_clause => RuleClause::Unless(self.exception(p)?),
                Rule::then_clause => RuleClause::Then(self.then_clause(p)?),
                Rule::severity_clause => RuleClause::Severity(self.first_ident(p)),
                Rule::tags_clause => {
                    RuleClause::Tags(p.into_inner().map(|t| self.ident(t)).collect())
                }
                Rule::message_clause => RuleClause::Message(self.first_string(p)),
                _ => continue,
            };
            clauses.push(Clause {
                comments,
                kind,
                span,
            });
        }
        let trailing_comments = self.comments_before(end);
        Ok(RuleDecl {
            name,
            clauses,
            trailing_comments,
        })
    }

    fn first_expr(&self, pair: Pair<'_, Rule>) -> R<Expr> {
        match pair.into_inner().next() {
            Some(p) => self.expr(p),
            None => Ok(empty_expr()),
        }
    }

    fn first_ident(&self, pair: Pair<'_, Rule>) -> Ident {
        self.next_ident(&mut pair.into_inner())
    }

    fn first_string(&self, pair: Pair<'_, Rule>) -> Spanned<String> {
        pair.into_inner()
            .next()
            .map(|p| self.string(p))
            .unwrap_or_else(|| Spanned::new(String::new(), Span::default()))
    }

    fn exception(&self, pair: Pair<'_, Rule>) -> R<Exception> {
        let mut inner = pair.into_inner();
        let name = self.next_ident(&mut inner);
        let when = match inner.next() {
            Some(p) => self.expr(p)?,
            None => empty_expr(),
        };
        let owner = inner
            .next()
            .map(|p| self.string(p))
            .unwrap_or_else(|| Spanned::new(String::new(), Span::default()));
        let expires = inner
            .next()
            .map(|p| self.raw(p))
            .unwrap_or_else(|| Spanned::new(String::new(), Span::default()));
        let reason = inner.next().map(|p| self.string(p));
        Ok(Exception {
            name,
            when,
            owner,
            expires,
            reason,
        })
    }

    fn then_clause(&self, pair: Pair<'_, Rule>) -> R<Effect> {
        let Some(effect) = pair.into_inner().next() else {
            return Ok(Effect::Allow);
        };
        Ok(match effect.as_rule() {
            Rule::allow_effect => Effect::Allow,
            Rule::alert_effect => Effect::Alert,
            Rule::block_effect => Effect::Block(
                effect
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::string)
                    .map(|p| self.string(p)),
            ),
            Rule::approval_effect => {
                let mut group = None;
                let mut timeout = None;
                for p in effect.into_inner() {
                    match p.as_rule() {
                        Rule::string => group = Some(self.string(p)),
                        Rule::duration => timeout = Some(self.raw(p)),
                        _ => {}
                    }
                }
                Effect::RequireApproval { group, timeout }
            }
            Rule::limit_effect => {
                let span = self.span(&effect);
                match effect.into_inner().find(|p| p.as_rule() == Rule::int) {
                    Some(n) => Effect::LimitRows(self.int(n)?),
                    None => Effect::LimitRows(Spanned::new(0, span)),
                }
            }
            Rule::mask_effect => {
                let mut items = Vec::new();
                for item in effect.into_inner() {
                    let span = self.span(&item);
                    let mut ii = item.into_inner();
                    let Some(target) = ii.next() else { continue };
                    let target = match target.as_rule() {
                        Rule::mask_columns => {
                            let list = target.into_inner().next();
                            MaskTarget::Columns(match list {
                                Some(l) => self.list_lit(l)?,
                                None => Vec::new(),
                            })
                        }
                        Rule::mask_columns_matching => {
                            MaskTarget::ColumnsMatching(self.first_regex(target))
                        }
                        _ => MaskTarget::ValuesMatching(self.first_regex(target)),
                    };
                    let replacement = match ii.next() {
                        Some(r) if r.as_rule() == Rule::mask_with => {
                            Some(MaskReplacement::With(self.first_string(r)))
                        }
                        Some(r) => {
                            let mut ri = r.into_inner();
                            let last = ri.next().is_some_and(|s| s.as_str() == "last");
                            let count = match ri.next() {
                                Some(n) => self.int(n)?,
                                None => Spanned::new(0, span),
                            };
                            Some(MaskReplacement::Keep { last, count })
                        }
                        None => None,
                    };
                    items.push(MaskItem {
                        target,
                        replacement,
                        span,
                    });
                }
                Effect::Mask(items)
            }
            _ => Effect::Allow,
        })
    }

    fn first_regex(&self, pair: Pair<'_, Rule>) -> Spanned<RegexLit> {
        match pair.into_inner().next() {
            Some(p) => self.regex(p),
            None => Spanned::new(
                RegexLit {
                    body: String::new(),
                    flags: String::new(),
                },
                Span::default(),
            ),
        }
    }

    fn regex(&self, pair: Pair<'_, Rule>) -> Spanned<RegexLit> {
        let span = self.span(&pair);
        let mut body = String::new();
        let mut flags = String::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::regex_body => body = p.as_str().to_owned(),
                Rule::regex_flags => flags = p.as_str().to_owned(),
                _ => {}
            }
        }
        Spanned::new(RegexLit { body, flags }, span)
    }

    fn sequence_decl(&mut self, pair: Pair<'_, Rule>) -> R<SequenceDecl> {
        let end = pair.as_span().end();
        let mut inner = pair.into_inner();
        let name = self.next_ident(&mut inner);
        let mut by = Vec::new();
        let mut within = None;
        let mut clauses = Vec::new();
        for p in inner {
            match p.as_rule() {
                Rule::seq_by => by = p.into_inner().map(|k| self.ident(k)).collect(),
                Rule::seq_within => within = p.into_inner().next().map(|d| self.raw(d)),
                _ => {
                    let span = self.span(&p);
                    let comments = self.comments_before(span.start as usize);
                    let kind = match p.as_rule() {
                        Rule::stage_clause => SequenceClause::Stage(self.stage(p)?),
                        Rule::until_clause => SequenceClause::Until(self.first_expr(p)?),
                        Rule::then_clause => SequenceClause::Then(self.then_clause(p)?),
                        Rule::severity_clause => SequenceClause::Severity(self.first_ident(p)),
                        Rule::tags_clause => {
                            SequenceClause::Tags(p.into_inner().map(|t| self.ident(t)).collect())
                        }
                        Rule::message_clause => SequenceClause::Message(self.first_string(p)),
                        _ => continue,
                    };
                    clauses.push(Clause {
                        comments,
                        kind,
                        span,
                    });
                }
            }
        }
        let trailing_comments = self.comments_before(end);
        Ok(SequenceDecl {
            name,
            by,
            within,
            clauses,
            trailing_comments,
        })
    }

    fn stage(&self, pair: Pair<'_, Rule>) -> R<Stage> {
        let mut name = Spanned::new(String::new(), Span::default());
        let mut within = None;
        let mut when = empty_expr();
        let mut captures = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = self.ident(p),
                Rule::seq_within => within = p.into_inner().next().map(|d| self.raw(d)),
                Rule::expr => when = self.expr(p)?,
                Rule::capture_clause => {
                    let span = self.span(&p);
                    let mut ci = p.into_inner();
                    let cname = self.next_ident(&mut ci);
                    let source = match ci.next().and_then(|s| s.into_inner().next()) {
                        Some(s) => self.operand(s)?,
                        None => empty_expr(),
                    };
                    let mut limit = None;
                    let mut bytes = None;
                    // `limit N` then `bytes N`; both optional, so tell them apart by text.
                    for n in ci {
                        let before = self.keyword_before(&n);
                        let v = self.int(n)?;
                        if before == "bytes" {
                            bytes = Some(v);
                        } else {
                            limit = Some(v);
                        }
                    }
                    captures.push(CaptureDecl {
                        name: cname,
                        source,
                        limit,
                        bytes,
                        span,
                    });
                }
                _ => {}
            }
        }
        Ok(Stage {
            name,
            within,
            when,
            captures,
        })
    }

    /// The keyword written just before a token (`limit` or `bytes`).
    fn keyword_before(&self, pair: &Pair<'_, Rule>) -> &'static str {
        let text = pair.get_input();
        let prefix = text.get(..pair.as_span().start()).unwrap_or("").trim_end();
        if prefix.ends_with("bytes") {
            "bytes"
        } else {
            "limit"
        }
    }

    fn test_decl(&self, pair: Pair<'_, Rule>) -> R<TestDecl> {
        let mut inner = pair.into_inner();
        let name = inner
            .next()
            .map(|p| self.string(p))
            .unwrap_or_else(|| Spanned::new(String::new(), Span::default()));
        let mut steps = Vec::new();
        for step in inner {
            let span = self.span(&step);
            let mut time = StepTime::After(Spanned::new("0s".to_owned(), span));
            let mut kind = Spanned::new(String::new(), span);
            let mut fields = Vec::new();
            let mut expect = Vec::new();
            for p in step.into_inner() {
                match p.as_rule() {
                    Rule::step_time => {
                        if let Some(t) = p.into_inner().next() {
                            time = if t.as_rule() == Rule::rel_time {
                                StepTime::After(
                                    t.into_inner()
                                        .next()
                                        .map(|d| self.raw(d))
                                        .unwrap_or_else(|| Spanned::new("0s".to_owned(), span)),
                                )
                            } else {
                                let mut date = None;
                                let mut tod = Spanned::new("00:00".to_owned(), span);
                                for q in t.into_inner() {
                                    if q.as_rule() == Rule::date {
                                        date = Some(self.raw(q));
                                    } else {
                                        tod = self.raw(q);
                                    }
                                }
                                StepTime::At { date, time: tod }
                            };
                        }
                    }
                    Rule::ident => kind = self.ident(p),
                    Rule::assign => {
                        let mut ai = p.into_inner();
                        let (name, quoted) = match ai.next() {
                            Some(n) if n.as_rule() == Rule::string => (self.string(n), true),
                            Some(n) => (self.raw(n), false),
                            None => (Spanned::new(String::new(), span), false),
                        };
                        let value = match ai.next() {
                            Some(v) => self.test_value(v)?,
                            None => Spanned::new(TestValue::Scalar(Literal::Bool(true)), span),
                        };
                        fields.push(TestField {
                            name,
                            quoted,
                            value,
                        });
                    }
                    Rule::expectation => {
                        for e in p.into_inner() {
                            let espan = self.span(&e);
                            let ex = match e.as_rule() {
                                Rule::expect_alert => Expectation::Alert(self.first_ident(e).node),
                                Rule::expect_rule => Expectation::Rule(self.first_ident(e).node),
                                Rule::expect_no_alert => Expectation::NoAlert,
                                _ => Expectation::Effect(match e.as_str() {
                                    "allow" => ExpectedEffect::Allow,
                                    "block" => ExpectedEffect::Block,
                                    "mask" => ExpectedEffect::Mask,
                                    _ => ExpectedEffect::RequireApproval,
                                }),
                            };
                            expect.push(Spanned::new(ex, espan));
                        }
                    }
                    _ => {}
                }
            }
            steps.push(TestStep {
                time,
                kind,
                fields,
                expect,
                span,
            });
        }
        Ok(TestDecl { name, steps })
    }

    fn test_value(&self, pair: Pair<'_, Rule>) -> R<Spanned<TestValue>> {
        let span = self.span(&pair);
        if pair.as_rule() == Rule::list_lit {
            let elems = self.list_lit(pair)?;
            return Ok(Spanned::new(
                TestValue::List(elems.into_iter().map(|e| e.node).collect()),
                span,
            ));
        }
        Ok(Spanned::new(
            TestValue::Scalar(self.literal(pair)?.node),
            span,
        ))
    }

    fn list_lit(&self, pair: Pair<'_, Rule>) -> R<Vec<Spanned<Literal>>> {
        pair.into_inner().map(|p| self.literal(p)).collect()
    }

    fn literal(&self, pair: Pair<'_, Rule>) -> R<Spanned<Literal>> {
        let span = self.span(&pair);
        let lit = match pair.as_rule() {
            Rule::string => Literal::Str(unescape(pair.as_str())),
            Rule::int => Literal::Int(self.int(pair)?.node),
            Rule::bool => Literal::Bool(pair.as_str() == "true"),
            Rule::duration => Literal::Duration(pair.as_str().to_owned()),
            Rule::time_of_day => Literal::TimeOfDay(pair.as_str().to_owned()),
            Rule::date => Literal::Date(pair.as_str().to_owned()),
            Rule::regex => Literal::Regex(self.regex(pair).node),
            _ => Literal::Symbol(pair.as_str().to_owned()),
        };
        Ok(Spanned::new(lit, span))
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> R<Expr> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => {
                let parts: Vec<Expr> = pair
                    .into_inner()
                    .filter(|p| p.as_rule() != Rule::or_op)
                    .map(|p| self.expr(p))
                    .collect::<R<_>>()?;
                Ok(collapse(parts, span, ExprKind::Or))
            }
            Rule::and_expr => {
                let parts: Vec<Expr> = pair
                    .into_inner()
                    .filter(|p| p.as_rule() != Rule::and_op)
                    .map(|p| self.expr(p))
                    .collect::<R<_>>()?;
                Ok(collapse(parts, span, ExprKind::And))
            }
            Rule::unary => {
                let mut nots = 0usize;
                let mut inner = None;
                for p in pair.into_inner() {
                    if p.as_rule() == Rule::not_op {
                        nots += 1;
                    } else {
                        inner = Some(self.expr(p)?);
                    }
                }
                if nots > MAX_NOTS {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        format!("more than {MAX_NOTS} `not` in a row"),
                        span,
                    )
                    .with_help("`not not x` is `x`"));
                }
                let mut e = inner.unwrap_or_else(empty_expr);
                for _ in 0..nots {
                    e = Expr {
                        kind: ExprKind::Not(Box::new(e)),
                        span,
                    };
                }
                Ok(e)
            }
            Rule::predicate => {
                let mut inner = pair.into_inner();
                let lhs = match inner.next() {
                    Some(p) => self.operand(p)?,
                    None => empty_expr(),
                };
                let Some(tail) = inner.next() else {
                    return Ok(lhs);
                };
                let kind = match tail.as_rule() {
                    Rule::exists_tail => ExprKind::Exists(Box::new(lhs)),
                    Rule::between_tail => {
                        let mut ti = tail.into_inner();
                        let lo = ti.next().map(|p| self.operand(p)).transpose()?;
                        let hi = ti.next().map(|p| self.operand(p)).transpose()?;
                        ExprKind::Between(
                            Box::new(lhs),
                            Box::new(lo.unwrap_or_else(empty_expr)),
                            Box::new(hi.unwrap_or_else(empty_expr)),
                        )
                    }
                    _ => {
                        let mut ti = tail.into_inner();
                        let op = ti
                            .next()
                            .and_then(|o| BinOp::parse(o.as_str()))
                            .unwrap_or(BinOp::Eq);
                        let rhs = ti.next().map(|p| self.operand(p)).transpose()?;
                        ExprKind::Binary(
                            op,
                            Box::new(lhs),
                            Box::new(rhs.unwrap_or_else(empty_expr)),
                        )
                    }
                };
                Ok(Expr { kind, span })
            }
            _ => self.operand(pair),
        }
    }

    fn operand(&self, pair: Pair<'_, Rule>) -> R<Expr> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::paren => {
                let inner = self.first_expr(pair)?;
                ExprKind::Paren(Box::new(inner))
            }
            Rule::seq_state => {
                let mut inner = pair.into_inner();
                let sequence = self.next_ident(&mut inner);
                let after = inner.next().map(|p| self.ident(p));
                ExprKind::SequenceArmed { sequence, after }
            }
            Rule::call => {
                let mut inner = pair.into_inner();
                let name = self.next_ident(&mut inner);
                let args = inner.map(|p| self.expr(p)).collect::<R<_>>()?;
                ExprKind::Call(name, args)
            }
            Rule::path | Rule::ident => ExprKind::Path(pair.as_str().to_owned()),
            Rule::list_lit => ExprKind::List(self.list_lit(pair)?),
            Rule::expr | Rule::and_expr | Rule::unary | Rule::predicate => return self.expr(pair),
            _ => ExprKind::Literal(self.literal(pair)?.node),
        };
        Ok(Expr { kind, span })
    }
}

fn collapse(mut parts: Vec<Expr>, span: Span, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if parts.len() == 1
        && let Some(only) = parts.pop()
    {
        return only;
    }
    Expr {
        kind: make(parts),
        span,
    }
}

fn empty_expr() -> Expr {
    Expr {
        kind: ExprKind::Literal(Literal::Bool(false)),
        span: Span::default(),
    }
}
