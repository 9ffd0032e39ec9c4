//! The AST walk: one pass of `sqlparser`'s visitor collects relations (with CTE
//! scoping), functions, columns and data-modifying statements; then the top-level
//! statement sets the kind and the statement-specific fields, one module per family:
//! [`rows`] (queries, DML, COPY, cursors), [`ddl`] (schema objects and privileges),
//! [`session`] (settings and transactions) and [`prepared`] (PREPARE, EXECUTE, CALL,
//! EXPLAIN).

mod ddl;
mod filter;
mod prepared;
mod rows;
mod session;
mod statement;

pub use statement::statement;

use std::ops::ControlFlow;
use std::sync::Arc;

use gatehouse_events::payload::{PgKind, PgStatement};
use sqlparser::ast::{
    AssignmentTarget, CopySource, CopyTarget, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, MergeAction, ObjectName, ObjectNamePart, ObjectType, Query, Set, Statement,
    TableFactor, TableObject, Value, Visit, Visitor,
};

use super::{Classified, SqlEffect};

/// Lowercased, dot-joined name parts, quotes removed.
pub fn name(n: &ObjectName) -> String {
    let mut out = String::new();
    for (i, part) in n.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match part {
            ObjectNamePart::Identifier(id) => out.push_str(&id.value.to_lowercase()),
            ObjectNamePart::Function(f) => out.push_str(&f.to_string().to_lowercase()),
        }
    }
    out
}

fn bare(n: &str) -> &str {
    n.rsplit('.').next().unwrap_or(n)
}

/// Capability label of a dangerous function, by its unqualified name.
pub fn dangerous_function(qualified: &str) -> Option<&'static str> {
    let f = bare(qualified);
    if f.starts_with("dblink") {
        return Some("dblink");
    }
    const NAMED: &[&str] = &[
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_ls_logicalmapdir",
        "pg_ls_logicalsnapdir",
        "pg_ls_replslotdir",
        "lo_import",
        "lo_export",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "set_config",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "pg_logdir_ls",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_create_logical_replication_slot",
        "pg_create_physical_replication_slot",
        "pg_drop_replication_slot",
        "pg_logical_emit_message",
    ];
    const DYNAMIC_SQL: &[&str] = &[
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
    ];
    if let Some(n) = NAMED.iter().find(|n| **n == f) {
        return Some(n);
    }
    if DYNAMIC_SQL.contains(&f) {
        return Some("dynamic_sql");
    }
    None
}

/// Every dangerous function name that appears as a word in `text` (function bodies).
pub(crate) fn dangerous_in_text(text: &str, out: &mut Vec<String>) {
    let lower = text.to_lowercase();
    for word in lower.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if let Some(d) = dangerous_function(word) {
            push_unique(out, d.to_owned());
        }
    }
    if lower.contains("execute ") || lower.contains("execute\n") || lower.contains("execute\t") {
        push_unique(out, "dynamic_sql".to_owned());
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn has_where(selection: Option<&Expr>, target: &filter::Target) -> Option<bool> {
    Some(selection.is_some_and(|e| filter::restricts(e, target)))
}

fn string_arg(args: &FunctionArguments, i: usize) -> Option<String> {
    let FunctionArguments::List(l) = args else {
        return None;
    };
    match l.args.get(i)? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `set_config`'s third argument (`is_local`) when it is a boolean literal.
fn is_local(args: &FunctionArguments) -> Option<bool> {
    let FunctionArguments::List(l) = args else {
        return None;
    };
    match l.args.get(2)? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Debug)]
struct Frame {
    ctes: Vec<(String, usize)>,
    recursive: bool,
    visible: usize,
}

#[derive(Debug)]
struct Dml {
    kind: PgKind,
    has_where: Option<bool>,
    target: Option<String>,
}

#[derive(Debug, Default)]
struct Walk {
    relations: Vec<String>,
    functions: Vec<String>,
    columns: Vec<String>,
    dangerous: Vec<String>,
    frames: Vec<Frame>,
    skip_relation: Option<String>,
    dml: Vec<Dml>,
    privilege: Option<String>,
    effect: Option<SqlEffect>,
    literal_dependent: bool,
}

fn addr(q: &Query) -> usize {
    std::ptr::from_ref(q) as usize
}

impl Walk {
    fn is_cte(&self, n: &str) -> bool {
        self.frames.iter().rev().any(|f| {
            f.ctes
                .get(..f.visible.min(f.ctes.len()))
                .unwrap_or_default()
                .iter()
                .any(|(c, _)| c == n)
        })
    }

    fn function(&mut self, qualified: String) {
        if let Some(d) = dangerous_function(&qualified) {
            push_unique(&mut self.dangerous, d.to_owned());
        }
        let b = bare(&qualified).to_owned();
        if b != qualified {
            push_unique(&mut self.functions, qualified);
        }
        push_unique(&mut self.functions, b);
    }
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let me = addr(q);
        if let Some(top) = self.frames.last_mut()
            && let Some(i) = top.ctes.iter().position(|(_, p)| *p == me)
        {
            top.visible = if top.recursive { top.ctes.len() } else { i };
        }
        let (ctes, recursive) = q.with.as_ref().map_or((Vec::new(), false), |w| {
            (
                w.cte_tables
                    .iter()
                    .map(|c| (c.alias.name.value.to_lowercase(), addr(&c.query)))
                    .collect(),
                w.recursive,
            )
        });
        let visible = ctes.len();
        self.frames.push(Frame {
            ctes,
            recursive,
            // Until a CTE body is entered, the body of this query sees every CTE.
            visible,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        self.frames.pop();
        let me = addr(q);
        if let Some(top) = self.frames.last_mut()
            && top.ctes.iter().any(|(_, p)| *p == me)
        {
            top.visible = top.ctes.len();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let n = name(relation);
        if self.skip_relation.as_deref() == Some(n.as_str()) {
            self.skip_relation = None;
            return ControlFlow::Continue(());
        }
        if relation.0.len() == 1 && self.is_cte(&n) {
            return ControlFlow::Continue(());
        }
        self.relations.push(n);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name: n,
            args: Some(_),
            ..
        } = tf
        {
            let n = name(n);
            self.skip_relation = Some(n.clone());
            self.function(n);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => {
                let n = name(&f.name);
                if bare(&n) == "set_config" {
                    self.literal_dependent = true;
                    match string_arg(&f.args, 0).map(|s| s.to_lowercase()).as_deref() {
                        Some("role" | "session_authorization") => {
                            self.privilege = Some("set_role".into());
                        }
                        Some("search_path") => {
                            self.effect = Some(match (string_arg(&f.args, 1), is_local(&f.args)) {
                                (Some(v), Some(false)) => {
                                    SqlEffect::SearchPath(super::session::parse_path(&v))
                                }
                                (Some(v), Some(true)) => {
                                    SqlEffect::LocalSearchPath(super::session::parse_path(&v))
                                }
                                _ => SqlEffect::SearchPathUnknown,
                            });
                        }
                        Some(_) => {}
                        None => {
                            // A computed setting name could be anything, role included.
                            self.privilege = Some("set_config".into());
                            self.effect = Some(SqlEffect::SearchPathUnknown);
                        }
                    }
                }
                self.function(n);
            }
            Expr::Identifier(i) => push_unique(&mut self.columns, i.value.to_lowercase()),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    push_unique(&mut self.columns, last.value.to_lowercase());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        match s {
            Statement::Insert(i) => {
                for c in &i.columns {
                    push_unique(&mut self.columns, bare(&name(c)).to_owned());
                }
                self.dml.push(Dml {
                    kind: PgKind::Insert,
                    has_where: None,
                    target: match &i.table {
                        TableObject::TableName(n) => Some(name(n)),
                        TableObject::TableFunction(_) => None,
                        _ => None,
                    },
                });
            }
            Statement::Update(u) => {
                // `UPDATE pg_settings` is `set_config` for every setting it matches:
                // the role and the search path included.
                if table_name(&u.table.relation).is_some_and(|t| bare(&t) == "pg_settings") {
                    self.privilege = Some("set_config".into());
                    self.effect = Some(SqlEffect::SearchPathUnknown);
                }
                for a in &u.assignments {
                    match &a.target {
                        AssignmentTarget::ColumnName(c) => {
                            push_unique(&mut self.columns, bare(&name(c)).to_owned());
                        }
                        AssignmentTarget::Tuple(cs) => {
                            for c in cs {
                                push_unique(&mut self.columns, bare(&name(c)).to_owned());
                            }
                        }
                    }
                }
                self.dml.push(Dml {
                    kind: PgKind::Update,
                    has_where: has_where(
                        u.selection.as_ref(),
                        &filter::Target::of(&u.table.relation),
                    ),
                    target: table_name(&u.table.relation),
                });
            }
            Statement::Delete(d) => {
                let from = match &d.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                let target = d
                    .tables
                    .first()
                    .map(name)
                    .or_else(|| from.first().and_then(|t| table_name(&t.relation)));
                let names = from
                    .first()
                    .map(|t| filter::Target::of(&t.relation))
                    .unwrap_or_default();
                self.dml.push(Dml {
                    kind: PgKind::Delete,
                    has_where: has_where(d.selection.as_ref(), &names),
                    target,
                });
            }
            Statement::Merge(m) => {
                // What MERGE does is what its actions do: a DELETE action makes it a
                // delete, an UPDATE an update. It is filtered when its join condition
                // restricts the target's rows, or every changing action has a
                // restricting condition of its own.
                let names = filter::Target::of(&m.table);
                let mut kind = PgKind::Merge;
                let mut guarded = true;
                for c in &m.clauses {
                    let k = match c.action {
                        MergeAction::Delete { .. } => PgKind::Delete,
                        MergeAction::Update(_) => PgKind::Update,
                        MergeAction::Insert(_) => PgKind::Insert,
                    };
                    if matches!(k, PgKind::Delete | PgKind::Update) {
                        guarded &= c
                            .predicate
                            .as_ref()
                            .is_some_and(|p| filter::restricts(p, &names));
                    }
                    if weight(k) > weight(kind) {
                        kind = k;
                    }
                }
                let on = filter::restricts(&m.on, &names);
                self.dml.push(Dml {
                    kind,
                    has_where: Some(on || guarded),
                    target: table_name(&m.table),
                });
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn table_name(tf: &TableFactor) -> Option<String> {
    match tf {
        TableFactor::Table { name: n, .. } => Some(name(n)),
        _ => None,
    }
}

/// How destructive a data-modifying kind is (for a statement holding several).
fn weight(kind: PgKind) -> u8 {
    match kind {
        PgKind::Delete => 4,
        PgKind::Update => 3,
        PgKind::Merge => 2,
        PgKind::Insert => 1,
        _ => 0,
    }
}
