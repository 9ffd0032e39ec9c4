//! The canonical formatter: one layout for every file, so `fmt` output is stable and
//! parse -> format -> parse gives back the same tree.

use std::fmt::Write as _;

use crate::ast::*;

const INDENT: &str = "  ";

/// Formats a whole file.
pub fn format_file(file: &File) -> String {
    let mut out = String::new();
    for (i, item) in file.items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        comments(&mut out, &item.comments, "");
        out.push_str(&format_item(&item.kind));
    }
    if !file.trailing_comments.is_empty() {
        if !file.items.is_empty() {
            out.push('\n');
        }
        comments(&mut out, &file.trailing_comments, "");
    }
    out
}

fn comments(out: &mut String, comments: &[String], indent: &str) {
    // Comment text is kept exactly (after `//`), so formatting never changes it.
    for c in comments {
        let _ = writeln!(out, "{indent}//{}", c.trim_end());
    }
}

/// Formats one item (with a trailing newline).
pub fn format_item(item: &ItemKind) -> String {
    let mut out = String::new();
    match item {
        ItemKind::Default(d) => {
            out.push_str(if d.allow {
                "default allow"
            } else {
                "default deny"
            });
            if let Some(w) = &d.when {
                out.push_str(" when ");
                out.push_str(&format_expr(w));
            }
            out.push('\n');
        }
        ItemKind::List(l) => {
            let _ = writeln!(out, "list {} = {}", l.name.node, list(&l.elems));
        }
        ItemKind::Macro(m) => {
            out.push_str("macro ");
            out.push_str(&m.name.node);
            if let Some(params) = &m.params {
                out.push('(');
                let ps: Vec<String> = params
                    .iter()
                    .map(|(n, t)| format!("{}: {}", n.node, t.node))
                    .collect();
                out.push_str(&ps.join(", "));
                out.push(')');
            }
            let _ = writeln!(out, " = {}", format_expr(&m.body));
        }
        ItemKind::Rule(r) => {
            let _ = writeln!(out, "rule {} {{", r.name.node);
            for c in &r.clauses {
                comments(&mut out, &c.comments, INDENT);
                out.push_str(INDENT);
                out.push_str(&rule_clause(&c.kind));
                out.push('\n');
            }
            comments(&mut out, &r.trailing_comments, INDENT);
            out.push_str("}\n");
        }
        ItemKind::Sequence(s) => {
            let _ = write!(out, "sequence {}", s.name.node);
            if !s.by.is_empty() {
                let keys: Vec<&str> = s.by.iter().map(|k| k.node.as_str()).collect();
                let _ = write!(out, " by {}", keys.join(", "));
            }
            if let Some(w) = &s.within {
                let _ = write!(out, " within {}", w.node);
            }
            out.push_str(" {\n");
            for c in &s.clauses {
                comments(&mut out, &c.comments, INDENT);
                out.push_str(INDENT);
                out.push_str(&sequence_clause(&c.kind));
                out.push('\n');
            }
            comments(&mut out, &s.trailing_comments, INDENT);
            out.push_str("}\n");
        }
        ItemKind::Test(t) => {
            let _ = writeln!(out, "test {} {{", string(&t.name.node));
            for step in &t.steps {
                out.push_str(INDENT);
                out.push_str(&test_step(step));
                out.push('\n');
            }
            out.push_str("}\n");
        }
    }
    out
}

fn rule_clause(c: &RuleClause) -> String {
    match c {
        RuleClause::When(e) => format!("when {}", format_expr(e)),
        RuleClause::Unless(ex) => {
            let mut s = format!(
                "unless {} when {} owner {} expires {}",
                ex.name.node,
                format_expr(&ex.when),
                string(&ex.owner.node),
                ex.expires.node
            );
            if let Some(r) = &ex.reason {
                let _ = write!(s, " reason {}", string(&r.node));
            }
            s
        }
        RuleClause::Then(e) => format!("then {}", effect(e)),
        RuleClause::Severity(s) => format!("severity {}", s.node),
        RuleClause::Tags(t) => tags(t),
        RuleClause::Message(m) => format!("message {}", string(&m.node)),
    }
}

fn sequence_clause(c: &SequenceClause) -> String {
    match c {
        SequenceClause::Stage(st) => {
            let mut s = format!("stage {}", st.name.node);
            if let Some(w) = &st.within {
                let _ = write!(s, " within {}", w.node);
            }
            let _ = write!(s, ": {}", format_expr(&st.when));
            for cap in &st.captures {
                let _ = write!(
                    s,
                    "\n{INDENT}{INDENT}capture {} = {}",
                    cap.name.node,
                    format_expr(&cap.source)
                );
                if let Some(l) = &cap.limit {
                    let _ = write!(s, " limit {}", l.node);
                }
                if let Some(b) = &cap.bytes {
                    let _ = write!(s, " bytes {}", b.node);
                }
            }
            s
        }
        SequenceClause::Until(e) => format!("until {}", format_expr(e)),
        SequenceClause::Then(e) => format!("then {}", effect(e)),
        SequenceClause::Severity(s) => format!("severity {}", s.node),
        SequenceClause::Tags(t) => tags(t),
        SequenceClause::Message(m) => format!("message {}", string(&m.node)),
    }
}

fn tags(t: &[Ident]) -> String {
    let t: Vec<&str> = t.iter().map(|t| t.node.as_str()).collect();
    format!("tags [{}]", t.join(", "))
}

fn effect(e: &Effect) -> String {
    match e {
        Effect::Allow => "allow".to_owned(),
        Effect::Alert => "alert".to_owned(),
        Effect::Block(None) => "block".to_owned(),
        Effect::LimitRows(n) => format!("limit rows {}", n.node),
        Effect::Block(Some(m)) => format!("block {}", string(&m.node)),
        Effect::RequireApproval { group, timeout } => {
            let mut s = "require approval".to_owned();
            if let Some(g) = group {
                let _ = write!(s, " from {}", string(&g.node));
            }
            if let Some(t) = timeout {
                let _ = write!(s, " timeout {}", t.node);
            }
            s
        }
        Effect::Mask(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| {
                    let mut s = match &i.target {
                        MaskTarget::Columns(c) => format!("columns {}", list(c)),
                        MaskTarget::ColumnsMatching(r) => {
                            format!("columns matching {}", regex(&r.node))
                        }
                        MaskTarget::ValuesMatching(r) => {
                            format!("values matching {}", regex(&r.node))
                        }
                    };
                    match &i.replacement {
                        None => {}
                        Some(MaskReplacement::With(w)) => {
                            let _ = write!(s, " with {}", string(&w.node));
                        }
                        Some(MaskReplacement::Keep { last, count }) => {
                            let _ = write!(
                                s,
                                " keep {} {}",
                                if *last { "last" } else { "first" },
                                count.node
                            );
                        }
                    }
                    s
                })
                .collect();
            format!("mask {}", parts.join(", "))
        }
    }
}

fn test_step(step: &TestStep) -> String {
    let mut s = String::from("at ");
    match &step.time {
        StepTime::After(d) => {
            let _ = write!(s, "+{}", d.node);
        }
        StepTime::At { date, time } => {
            if let Some(d) = date {
                let _ = write!(s, "{} ", d.node);
            }
            s.push_str(&time.node);
        }
    }
    let _ = write!(s, " {} {{", step.kind.node);
    let fields: Vec<String> = step
        .fields
        .iter()
        .map(|f| {
            let name = if f.quoted {
                string(&f.name.node)
            } else {
                f.name.node.clone()
            };
            let value = match &f.value.node {
                TestValue::Scalar(l) => literal(l),
                TestValue::List(items) => {
                    let items: Vec<String> = items.iter().map(literal).collect();
                    format!("[{}]", items.join(", "))
                }
            };
            format!("{name} = {value}")
        })
        .collect();
    if fields.is_empty() {
        s.push_str(" }");
    } else {
        let _ = write!(s, " {} }}", fields.join(", "));
    }
    if !step.expect.is_empty() {
        let items: Vec<String> = step
            .expect
            .iter()
            .map(|e| match &e.node {
                Expectation::Effect(ExpectedEffect::Allow) => "allow".to_owned(),
                Expectation::Effect(ExpectedEffect::Block) => "block".to_owned(),
                Expectation::Effect(ExpectedEffect::Mask) => "mask".to_owned(),
                Expectation::Effect(ExpectedEffect::RequireApproval) => {
                    "require approval".to_owned()
                }
                Expectation::Alert(n) => format!("alert {n}"),
                Expectation::NoAlert => "no alert".to_owned(),
                Expectation::Rule(n) => format!("rule {n}"),
            })
            .collect();
        let _ = write!(s, " => {}", items.join(", "));
    }
    s
}

/// A string literal with escapes.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn regex(r: &RegexLit) -> String {
    format!("/{}/{}", r.body, r.flags)
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Str(s) => string(s),
        Literal::Int(i) => i.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Duration(s) | Literal::TimeOfDay(s) | Literal::Date(s) | Literal::Symbol(s) => {
            s.clone()
        }
        Literal::Regex(r) => regex(r),
    }
}

fn list(items: &[crate::span::Spanned<Literal>]) -> String {
    let items: Vec<String> = items.iter().map(|i| literal(&i.node)).collect();
    format!("[{}]", items.join(", "))
}

/// Binding strength, loosest first.
fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(_) => 0,
        ExprKind::And(_) => 1,
        ExprKind::Not(_) => 2,
        ExprKind::Binary(..) | ExprKind::Between(..) | ExprKind::Exists(_) => 3,
        _ => 4,
    }
}

fn wrapped(e: &Expr, min: u8) -> String {
    if prec(e) < min {
        format!("({})", format_expr(e))
    } else {
        format_expr(e)
    }
}

/// Formats an expression on one line.
pub fn format_expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Or(es) => es
            .iter()
            .map(|x| wrapped(x, 1))
            .collect::<Vec<_>>()
            .join(" or "),
        ExprKind::And(es) => es
            .iter()
            .map(|x| wrapped(x, 2))
            .collect::<Vec<_>>()
            .join(" and "),
        ExprKind::Not(x) => format!("not {}", wrapped(x, 2)),
        ExprKind::Binary(op, l, r) => {
            format!("{} {} {}", wrapped(l, 4), op.as_str(), wrapped(r, 4))
        }
        ExprKind::Between(x, lo, hi) => format!(
            "{} between {} and {}",
            wrapped(x, 4),
            wrapped(lo, 4),
            wrapped(hi, 4)
        ),
        ExprKind::Exists(x) => format!("{} exists", wrapped(x, 4)),
        ExprKind::Path(p) => p.clone(),
        ExprKind::Call(name, args) => {
            let args: Vec<String> = args.iter().map(format_expr).collect();
            format!("{}({})", name.node, args.join(", "))
        }
        ExprKind::Literal(l) => literal(l),
        ExprKind::List(items) => list(items),
        ExprKind::SequenceArmed { sequence, after } => match after {
            Some(a) => format!("sequence {} armed after {}", sequence.node, a.node),
            None => format!("sequence {} armed", sequence.node),
        },
        ExprKind::Paren(x) => format!("({})", format_expr(x)),
    }
}
