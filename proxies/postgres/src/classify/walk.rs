//! The AST walk: one pass of `sqlparser`'s visitor collects relations (with CTE
//! scoping), functions, columns and data-modifying statements; a match on the
//! top-level statement sets the kind and the statement-specific fields.

use std::ops::ControlFlow;
use std::sync::Arc;

use gatehouse_events::payload::PgStatement;
use sqlparser::ast::{
    AssignmentTarget, CopySource, CopyTarget, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectName, ObjectNamePart, ObjectType, Query, SelectItem, Set, SetExpr,
    Statement, TableFactor, TableObject, Value, Visit, Visitor,
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
fn dangerous_in_text(text: &str, out: &mut Vec<String>) {
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

/// True when the expression reads a column or a subquery (a WHERE that filters rows).
fn filters_rows(e: &Expr) -> bool {
    let found = sqlparser::ast::visit_expressions(e, |e| match e {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Subquery(_)
        | Expr::Exists { .. }
        | Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}

fn has_where(selection: Option<&Expr>) -> Option<bool> {
    Some(selection.is_some_and(filters_rows))
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

#[derive(Debug)]
struct Frame {
    ctes: Vec<(String, usize)>,
    recursive: bool,
    visible: usize,
}

#[derive(Debug)]
struct Dml {
    kind: &'static str,
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
    derived: Vec<(String, Vec<String>)>,
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
        projections(&q.body, &mut self.derived);
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
                            self.effect = Some(match string_arg(&f.args, 1) {
                                Some(v) => SqlEffect::SearchPath(super::session::parse_path(&v)),
                                None => SqlEffect::SearchPathUnknown,
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
                    kind: "insert",
                    has_where: None,
                    target: match &i.table {
                        TableObject::TableName(n) => Some(name(n)),
                        TableObject::TableFunction(_) => None,
                        _ => None,
                    },
                });
            }
            Statement::Update(u) => {
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
                    kind: "update",
                    has_where: has_where(u.selection.as_ref()),
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
                self.dml.push(Dml {
                    kind: "delete",
                    has_where: has_where(d.selection.as_ref()),
                    target,
                });
            }
            Statement::Merge(m) => self.dml.push(Dml {
                kind: "merge",
                has_where: None,
                target: table_name(&m.table),
            }),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Result labels and the columns their values come from, for every SELECT list of
/// a query (masks follow a column through aliases and expressions).
fn projections(body: &SetExpr, out: &mut Vec<(String, Vec<String>)>) {
    match body {
        SetExpr::Select(select) => {
            for item in &select.projection {
                let (label, expr) = match item {
                    SelectItem::UnnamedExpr(e) => (label_of(e), e),
                    SelectItem::ExprWithAlias { expr, alias } => (alias.value.to_lowercase(), expr),
                    SelectItem::ExprWithAliases { expr, aliases } => (
                        aliases
                            .first()
                            .map(|a| a.value.to_lowercase())
                            .unwrap_or_default(),
                        expr,
                    ),
                    _ => continue,
                };
                let mut sources = Vec::new();
                let _ = sqlparser::ast::visit_expressions(expr, |e| {
                    match e {
                        Expr::Identifier(i) => push_unique(&mut sources, i.value.to_lowercase()),
                        Expr::CompoundIdentifier(parts) => {
                            if let Some(l) = parts.last() {
                                push_unique(&mut sources, l.value.to_lowercase());
                            }
                        }
                        _ => {}
                    }
                    ControlFlow::<()>::Continue(())
                });
                sources.retain(|c| *c != label);
                if !sources.is_empty() {
                    out.push((label, sources));
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            projections(left, out);
            projections(right, out);
        }
        _ => {}
    }
}

/// The label of an unaliased result column when it is a bare column reference;
/// empty otherwise (PostgreSQL's label for an expression is not predicted: such
/// columns are matched by having no source table in the row description).
fn label_of(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.to_lowercase())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn table_name(tf: &TableFactor) -> Option<String> {
    match tf {
        TableFactor::Table { name: n, .. } => Some(name(n)),
        _ => None,
    }
}

/// How destructive a data-modifying kind is (for a statement holding several).
fn weight(kind: &str) -> u8 {
    match kind {
        "delete" => 4,
        "update" => 3,
        "merge" => 2,
        "insert" => 1,
        _ => 0,
    }
}

/// Classifies one parsed statement.
pub fn statement(s: &Statement) -> Classified {
    let mut w = Walk::default();
    let _ = s.visit(&mut w);
    let mut stmt = PgStatement::default();
    let mut written: Vec<String> = Vec::new();
    let mut executes = None;
    let mut cacheable = true;
    let mut kind: &str = "other";
    let mut ddl_target: Option<String> = None;
    let mut transaction: Option<&str> = None;
    let mut inner: Option<Classified> = None;

    match s {
        Statement::Query(_) => kind = "select",
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => {
            // Filled from the DML list below.
        }
        Statement::Copy {
            source, to, target, ..
        } => {
            kind = "copy";
            if let CopySource::Table {
                table_name,
                columns,
            } = source
            {
                let n = name(table_name);
                for c in columns {
                    push_unique(&mut w.columns, c.value.to_lowercase());
                }
                if *to {
                    // COPY table TO: a read (the visitor does not report COPY's table).
                    if !w.relations.contains(&n) {
                        w.relations.push(n);
                    }
                } else {
                    w.relations.retain(|r| r != &n);
                    written.push(n);
                }
            }
            match target {
                CopyTarget::Program { .. } => push_unique(&mut w.dangerous, "copy_program".into()),
                CopyTarget::File { .. } => push_unique(&mut w.dangerous, "copy_file".into()),
                CopyTarget::Stdin | CopyTarget::Stdout => {}
            }
        }
        Statement::Truncate(t) => {
            kind = "truncate";
            for n in &t.table_names {
                written.push(name(&n.name));
            }
            ddl_target = written.first().cloned();
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            kind = "drop";
            ddl_target = names.first().map(name);
            if matches!(
                object_type,
                ObjectType::Table | ObjectType::View | ObjectType::MaterializedView
            ) {
                written.extend(names.iter().map(name));
            }
            if *object_type == ObjectType::Role || *object_type == ObjectType::User {
                w.privilege = Some("drop_role".into());
            }
        }
        Statement::DropFunction(f) => {
            kind = "drop";
            ddl_target = f.func_desc.first().map(|d| name(&d.name));
        }
        Statement::CreateTable(t) => {
            kind = "create";
            ddl_target = Some(name(&t.name));
        }
        Statement::CreateView(v) => {
            kind = "create";
            ddl_target = Some(name(&v.name));
        }
        Statement::CreateIndex(i) => {
            kind = "create";
            ddl_target = Some(name(&i.table_name));
        }
        Statement::CreateFunction(f) => {
            kind = "create";
            ddl_target = Some(name(&f.name));
            let lang = f
                .language
                .as_ref()
                .map(|l| l.value.to_lowercase())
                .unwrap_or_default();
            if matches!(lang.as_str(), "c" | "internal") || lang.ends_with('u') {
                push_unique(&mut w.dangerous, "untrusted_language".into());
            }
            dangerous_in_text(&s.to_string(), &mut w.dangerous);
        }
        Statement::CreateProcedure { name: n, .. } => {
            kind = "create";
            ddl_target = Some(name(n));
            dangerous_in_text(&s.to_string(), &mut w.dangerous);
        }
        Statement::CreateExtension(e) => {
            kind = "create";
            ddl_target = Some(e.name.value.to_lowercase());
            push_unique(&mut w.dangerous, "create_extension".into());
        }
        Statement::CreateRole(r) => {
            kind = "create";
            ddl_target = r.names.first().map(name);
            w.privilege = Some("create_role".into());
        }
        Statement::CreateUser(_) => {
            kind = "create";
            w.privilege = Some("create_role".into());
        }
        Statement::AlterRole { name: n, .. } => {
            kind = "alter";
            ddl_target = Some(n.value.to_lowercase());
            w.privilege = Some("alter_role".into());
        }
        Statement::AlterUser(_) => {
            kind = "alter";
            w.privilege = Some("alter_role".into());
        }
        Statement::AlterTable(t) => {
            kind = "alter";
            ddl_target = Some(name(&t.name));
            written.push(name(&t.name));
        }
        Statement::AlterView { name: n, .. } | Statement::AlterIndex { name: n, .. } => {
            kind = "alter";
            ddl_target = Some(name(n));
        }
        Statement::Comment { object_name, .. } => {
            kind = "alter";
            ddl_target = Some(name(object_name));
        }
        Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateTrigger(_)
        | Statement::CreatePolicy(_)
        | Statement::CreateServer(_) => {
            kind = "create";
            if matches!(s, Statement::CreateServer(_)) {
                push_unique(&mut w.dangerous, "foreign_server".into());
            }
        }
        Statement::AlterSchema(_)
        | Statement::AlterFunction(_)
        | Statement::AlterType(_)
        | Statement::AlterPolicy(_) => kind = "alter",
        Statement::DropDomain(_)
        | Statement::DropTrigger(_)
        | Statement::DropPolicy(_)
        | Statement::DropExtension(_)
        | Statement::DropProcedure { .. } => kind = "drop",
        Statement::Grant(_) => {
            kind = "grant";
            w.privilege = Some("grant".into());
        }
        Statement::Revoke(_) => {
            kind = "revoke";
            w.privilege = Some("revoke".into());
        }
        Statement::Set(set) => {
            kind = "set";
            cacheable = false;
            match set {
                Set::SetRole { .. } => w.privilege = Some("set_role".into()),
                Set::SetSessionAuthorization(_) => {
                    w.privilege = Some("set_session_authorization".into());
                }
                Set::SingleAssignment {
                    variable, values, ..
                } => {
                    let v = name(variable);
                    match bare(&v) {
                        "role" | "session_authorization" => w.privilege = Some("set_role".into()),
                        "search_path" => {
                            let text: Vec<String> = values
                                .iter()
                                .map(|e| match e {
                                    Expr::Value(v) => match &v.value {
                                        Value::SingleQuotedString(s) => s.clone(),
                                        other => other.to_string(),
                                    },
                                    Expr::Identifier(i) => i.value.clone(),
                                    other => other.to_string(),
                                })
                                .collect();
                            w.effect = Some(SqlEffect::SearchPath(super::session::parse_path(
                                &text.join(","),
                            )));
                        }
                        "standard_conforming_strings" => {}
                        _ => {}
                    }
                }
                Set::MultipleAssignments { assignments } => {
                    for a in assignments {
                        let v = name(&a.name);
                        if matches!(bare(&v), "role" | "session_authorization") {
                            w.privilege = Some("set_role".into());
                        }
                        if bare(&v) == "search_path" {
                            w.effect = Some(SqlEffect::SearchPathUnknown);
                        }
                    }
                }
                _ => {}
            }
        }
        Statement::Reset(_) | Statement::Discard { .. } => {
            kind = "set";
            cacheable = false;
            w.effect = Some(SqlEffect::SearchPathUnknown);
        }
        Statement::ShowVariable { .. } => kind = "select",
        Statement::StartTransaction { .. } => {
            kind = "begin";
            transaction = Some("begin");
        }
        Statement::Commit { .. } => {
            kind = "commit";
            transaction = Some("commit");
        }
        Statement::Rollback { savepoint, .. } => {
            kind = "rollback";
            transaction = Some(if savepoint.is_some() {
                "rollback_to_savepoint"
            } else {
                "rollback"
            });
        }
        Statement::Savepoint { .. } => {
            kind = "begin";
            transaction = Some("savepoint");
        }
        Statement::ReleaseSavepoint { .. } => {
            kind = "commit";
            transaction = Some("release_savepoint");
        }
        Statement::Prepare {
            name: n, statement, ..
        } => {
            let c = super::inner(statement);
            cacheable = false;
            w.effect = Some(SqlEffect::Prepare(
                n.value.to_lowercase(),
                Box::new(c.stmt.clone()),
            ));
            inner = Some(c);
            kind = "prepare";
        }
        Statement::Execute { name: n, .. } => {
            cacheable = false;
            kind = "execute";
            executes = n.as_ref().map(name);
        }
        Statement::Deallocate { name: n, .. } => {
            kind = "prepare";
            cacheable = false;
            w.effect = Some(SqlEffect::Deallocate(n.value.to_lowercase()));
        }
        Statement::Call(f) => {
            kind = "call";
            w.function(name(&f.name));
        }
        Statement::Explain { statement, .. } => {
            // EXPLAIN ANALYZE runs the statement: judge what is explained.
            let c = super::inner(statement);
            kind = "explain";
            inner = Some(c);
        }
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
            kind = "select";
        }
        _ => {}
    }

    // Data-modifying statements, top-level or inside CTEs, decide the kind.
    if let Some(d) = w.dml.iter().max_by_key(|d| weight(d.kind))
        && (weight(d.kind) > 0 && (kind == "select" || kind == "other"))
    {
        kind = d.kind;
    }
    let wheres: Vec<bool> = w
        .dml
        .iter()
        .filter(|d| d.kind == "update" || d.kind == "delete")
        .filter_map(|d| d.has_where)
        .collect();
    if matches!(kind, "update" | "delete") {
        stmt.has_where = Some(wheres.iter().all(|h| *h));
    }
    for d in &w.dml {
        if let Some(t) = &d.target {
            written.push(t.clone());
        }
    }
    // Relations read: every occurrence not accounted for by a write target.
    let mut reads = w.relations.clone();
    for t in &written {
        if let Some(i) = reads.iter().position(|r| r == t) {
            reads.remove(i);
        }
    }
    let mut tables_read = Vec::new();
    for r in reads {
        push_unique(&mut tables_read, r);
    }
    let mut tables_written = Vec::new();
    for t in written {
        push_unique(&mut tables_written, t);
    }

    stmt.kind = kind.to_owned();
    stmt.tables_read = tables_read;
    stmt.tables_written = tables_written;
    stmt.columns = w.columns;
    stmt.functions = w.functions;
    stmt.dangerous = w.dangerous;
    stmt.ddl_target = ddl_target;
    stmt.privilege_change = w.privilege;
    stmt.transaction_control = transaction.map(str::to_owned);
    let mut effect = w.effect;
    let inner_derived = inner.as_ref().map(|c| c.derived.clone());
    if let Some(c) = inner {
        // PREPARE and EXPLAIN: what the inner statement does is what is judged.
        merge(&mut stmt, &c.stmt);
        if kind == "explain" {
            stmt.kind = c.stmt.kind.clone();
            stmt.has_where = c.stmt.has_where;
            effect = effect.or(c.effect);
            executes = executes.or(c.executes);
        }
        cacheable = cacheable && c.cacheable;
    }
    let mut derived = w.derived;
    if let Some(c) = &inner_derived {
        derived.extend(c.iter().cloned());
    }
    Classified {
        text: String::new(),
        stmt,
        effect,
        executes,
        cacheable: cacheable && !w.literal_dependent,
        derived: Arc::new(derived),
    }
}

/// Adds the lists and flags of `from` to `into`.
pub fn merge(into: &mut PgStatement, from: &PgStatement) {
    for (a, b) in [
        (&mut into.tables_read, &from.tables_read),
        (&mut into.tables_written, &from.tables_written),
        (&mut into.columns, &from.columns),
        (&mut into.functions, &from.functions),
        (&mut into.dangerous, &from.dangerous),
    ] {
        for x in b {
            push_unique(a, x.clone());
        }
    }
    if into.has_where.is_none() {
        into.has_where = from.has_where;
    }
    if into.ddl_target.is_none() {
        into.ddl_target.clone_from(&from.ddl_target);
    }
    if into.privilege_change.is_none() {
        into.privilege_change.clone_from(&from.privilege_change);
    }
    if into.transaction_control.is_none() {
        into.transaction_control
            .clone_from(&from.transaction_control);
    }
}
