//! The second classification path: PostgreSQL's own grammar (`libpg_query`, through
//! the `pg_query` crate) for statements `sqlparser` cannot parse or the walk does not
//! model (ADR 0022).
//!
//! It yields the facts a policy judges — kind, relations read and written, functions
//! called, columns named, dangerous capabilities, DDL target, privilege and
//! transaction control — and marks the event with `fallback` (why the full walk could
//! not). It does not trace column lineage: every result column of such a statement
//! is opaque, masked whole under any column mask. Statements whose effect on the
//! session the gateway follows (search path, role, prepared statements) are marked
//! `unresolved` rather than guessed.
//!
//! Relations are collected by a walk over the *whole* parse tree (its serialised
//! form, where every node is visible), so no node type is skipped: anything shaped
//! like a `RangeVar` anywhere is a relation, anything shaped like a `FuncCall` a
//! call. A relation not written is counted as read, so the error is always on the
//! side of reporting more.

use std::sync::Arc;

use gatehouse_events::payload::{PgKind, PgStatement};
use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, CmdType, ObjectType, TransactionStmtKind, VariableSetKind,
};
use serde_json::Value;

use super::lineage::Lineage;
use super::walk::{dangerous_function, dangerous_in_text};
use super::{Classified, Derived};

/// Classifies `sql` (one statement) with PostgreSQL's grammar; `why` is why the full
/// classifier could not. `Err` carries PostgreSQL's own syntax error.
pub fn classify(sql: &str, why: &str) -> Result<Classified, String> {
    // The parser is C code behind an FFI call; a panic in the crate's Rust side must
    // not take the session down with it (and must not classify).
    let parsed = std::panic::catch_unwind(|| pg_query::parse(sql, 0))
        .map_err(|_| "the PostgreSQL grammar failed on this statement".to_owned())?
        .map_err(|e| match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        })?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Err("expected exactly one statement".to_owned());
    };
    let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return Err("an empty statement".to_owned());
    };
    let tree = serde_json::to_value(node).map_err(|e| e.to_string())?;
    let mut f = Facts::default();
    f.top(node, &tree, sql);
    Ok(f.finish(sql, why))
}

#[derive(Default)]
struct Facts {
    kind: PgKind,
    read: Vec<String>,
    written: Vec<String>,
    columns: Vec<String>,
    functions: Vec<String>,
    dangerous: Vec<String>,
    has_where: Option<bool>,
    ddl_target: Option<String>,
    privilege: Option<String>,
    transaction: Option<&'static str>,
    unresolved: Option<String>,
    lineage: Lineage,
    /// Data-modifying statements found anywhere (CTEs included): (kind, has WHERE).
    dml: Vec<(PgKind, Option<bool>)>,
}

impl Facts {
    /// What the top-level statement is; then every relation and call in its tree.
    fn top(&mut self, node: &NodeEnum, tree: &Value, sql: &str) {
        use NodeEnum as N;
        let (tag, body) = tagged(tree).unwrap_or(("", &Value::Null));
        // The statement's own object, when it names a relation directly: the table
        // of CREATE TABLE, ALTER TABLE, CREATE INDEX, COPY; the view, sequence or
        // type created; the table CREATE TABLE AS and SELECT INTO fill.
        let own_node = [
            "/relation",
            "/view",
            "/sequence",
            "/typevar",
            "/into/rel",
            "/into_clause/rel",
        ]
        .iter()
        .find_map(|p| body.pointer(p).filter(|v| range_var(v).is_some()));
        let own = own_node.and_then(range_var);
        self.kind = PgKind::Other;
        match node {
            N::SelectStmt(s) => {
                self.kind = PgKind::Select;
                self.lineage = Lineage::Unknown;
                if s.into_clause
                    .as_ref()
                    .and_then(|i| i.rel.as_ref())
                    .is_some()
                {
                    // SELECT ... INTO creates a table (its name is `own`).
                    self.kind = PgKind::Create;
                    self.lineage = Lineage::Rows(Vec::new());
                }
            }
            N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_) => {
                // Set below, from the data-modifying statements found in the walk.
            }
            N::CopyStmt(c) => {
                self.kind = PgKind::Copy;
                if c.is_program {
                    push(&mut self.dangerous, "copy_program");
                } else if !c.filename.is_empty() {
                    push(&mut self.dangerous, "copy_file");
                }
                if let Some(t) = &own {
                    if c.is_from {
                        self.written.push(t.clone());
                    } else {
                        self.read.push(t.clone());
                    }
                }
                if c.is_from || c.is_program || !c.filename.is_empty() {
                    self.lineage = Lineage::Rows(Vec::new());
                }
            }
            N::TruncateStmt(_) => self.kind = PgKind::Truncate,
            N::GrantStmt(g) => self.grant(g.is_grant, if g.is_grant { "grant" } else { "revoke" }),
            N::GrantRoleStmt(g) => {
                self.grant(g.is_grant, if g.is_grant { "grant" } else { "revoke" })
            }
            N::AlterDefaultPrivilegesStmt(a) => {
                let is_grant = a.action.as_ref().is_some_and(|g| g.is_grant);
                self.grant(is_grant, "default_privileges");
            }
            N::CreateRoleStmt(_) => self.ddl(PgKind::Create, Some("create_role")),
            N::AlterRoleStmt(_) => self.ddl(PgKind::Alter, Some("alter_role")),
            N::AlterRoleSetStmt(_) => {
                // A role's default settings apply to its future sessions.
                self.ddl(PgKind::Alter, Some("alter_role"));
                push(&mut self.dangerous, "session_defaults");
            }
            N::AlterDatabaseSetStmt(_) => {
                self.ddl(PgKind::Alter, None);
                push(&mut self.dangerous, "session_defaults");
            }
            N::DropRoleStmt(_) => self.ddl(PgKind::Drop, Some("drop_role")),
            N::DropOwnedStmt(_) => self.ddl(PgKind::Drop, Some("drop_owned")),
            N::ReassignOwnedStmt(_) => self.ddl(PgKind::Alter, Some("reassign_owned")),
            N::TransactionStmt(t) => {
                let (kind, control) = match t.kind() {
                    TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
                        (PgKind::Begin, "begin")
                    }
                    TransactionStmtKind::TransStmtSavepoint => (PgKind::Begin, "savepoint"),
                    TransactionStmtKind::TransStmtCommit => (PgKind::Commit, "commit"),
                    TransactionStmtKind::TransStmtRelease => (PgKind::Commit, "release_savepoint"),
                    TransactionStmtKind::TransStmtPrepare => {
                        (PgKind::Commit, "prepare_transaction")
                    }
                    TransactionStmtKind::TransStmtCommitPrepared => {
                        (PgKind::Commit, "commit_prepared")
                    }
                    TransactionStmtKind::TransStmtRollbackTo => {
                        (PgKind::Rollback, "rollback_to_savepoint")
                    }
                    TransactionStmtKind::TransStmtRollback => (PgKind::Rollback, "rollback"),
                    TransactionStmtKind::TransStmtRollbackPrepared => {
                        (PgKind::Rollback, "rollback_prepared")
                    }
                    TransactionStmtKind::Undefined => (PgKind::Other, "unknown"),
                };
                self.kind = kind;
                self.transaction = Some(control);
                if matches!(kind, PgKind::Commit | PgKind::Rollback)
                    && !matches!(control, "release_savepoint" | "rollback_to_savepoint")
                {
                    self.lineage = Lineage::EndTransaction;
                }
            }
            N::VariableSetStmt(v) => {
                self.kind = PgKind::Set;
                let name = v.name.to_lowercase();
                let followed = matches!(
                    name.as_str(),
                    "search_path" | "role" | "session_authorization" | "gatehouse.reason"
                ) || v.kind() == VariableSetKind::VarResetAll;
                if followed {
                    self.unresolved = Some(format!(
                        "this form of SET {} is not followed by the gateway",
                        if name.is_empty() { "ALL" } else { &name }
                    ));
                }
                self.lineage = Lineage::Rows(Vec::new());
            }
            N::VariableShowStmt(_) => self.kind = PgKind::Select,
            N::DiscardStmt(_) => {
                self.kind = PgKind::Set;
                self.unresolved =
                    Some("this form of DISCARD is not followed by the gateway".to_owned());
            }
            N::PrepareStmt(_) | N::DeallocateStmt(_) => {
                self.kind = PgKind::Prepare;
                self.unresolved = Some(
                    "prepared statements in this form are not followed by the gateway".to_owned(),
                );
            }
            N::ExecuteStmt(_) => {
                self.kind = PgKind::Execute;
                self.unresolved = Some(
                    "prepared statements in this form are not followed by the gateway".to_owned(),
                );
            }
            N::DeclareCursorStmt(d) => {
                self.kind = PgKind::Select;
                // A cursor of this name now returns rows of unknown lineage.
                let hold = d.options & 0x0020 != 0; // CURSOR_OPT_HOLD
                self.lineage = Lineage::Declare(
                    d.portalname.to_lowercase(),
                    hold,
                    Arc::new(Lineage::Unknown),
                );
            }
            N::ClosePortalStmt(c) => {
                self.lineage =
                    Lineage::Close((!c.portalname.is_empty()).then(|| c.portalname.to_lowercase()));
            }
            N::FetchStmt(_) => self.kind = PgKind::Select,
            N::CallStmt(_) => {
                self.kind = PgKind::Call;
                self.lineage = Lineage::Calls(Arc::new(Lineage::Unknown));
            }
            N::ExplainStmt(e) => {
                if let (Some(inner), Some(inner_tree)) = (
                    e.query.as_ref().and_then(|q| q.node.as_ref()),
                    body.get("query").and_then(|q| q.get("node")),
                ) {
                    // EXPLAIN is judged as what it explains (ANALYZE runs it).
                    self.top(inner, inner_tree, sql);
                    self.lineage = Lineage::Unknown;
                    return;
                }
            }
            N::CreateFunctionStmt(f) => {
                self.ddl(PgKind::Create, None);
                let lang = f
                    .options
                    .iter()
                    .filter_map(|o| match &o.node {
                        Some(NodeEnum::DefElem(d)) if d.defname == "language" => d
                            .arg
                            .as_ref()
                            .and_then(|a| a.node.as_ref())
                            .and_then(|a| match a {
                                NodeEnum::String(s) => Some(s.sval.to_lowercase()),
                                _ => None,
                            }),
                        _ => None,
                    })
                    .next()
                    .unwrap_or_default();
                if matches!(lang.as_str(), "c" | "internal") || lang.ends_with('u') {
                    push(&mut self.dangerous, "untrusted_language");
                }
                // The body is code the gateway does not walk: name what it mentions.
                dangerous_in_text(sql, &mut self.dangerous);
            }
            N::CreatePlangStmt(l) => {
                self.ddl(PgKind::Create, None);
                if !l.pltrusted {
                    push(&mut self.dangerous, "untrusted_language");
                }
            }
            N::CreateExtensionStmt(_) => {
                self.ddl(PgKind::Create, None);
                push(&mut self.dangerous, "create_extension");
            }
            N::CreateForeignServerStmt(_)
            | N::CreateFdwStmt(_)
            | N::CreateUserMappingStmt(_)
            | N::ImportForeignSchemaStmt(_) => {
                self.ddl(PgKind::Create, None);
                push(&mut self.dangerous, "foreign_server");
            }
            N::AlterForeignServerStmt(_) | N::AlterFdwStmt(_) | N::AlterUserMappingStmt(_) => {
                self.ddl(PgKind::Alter, None);
                push(&mut self.dangerous, "foreign_server");
            }
            N::CreateSubscriptionStmt(_) | N::AlterSubscriptionStmt(_) => {
                self.ddl(
                    if matches!(node, N::CreateSubscriptionStmt(_)) {
                        PgKind::Create
                    } else {
                        PgKind::Alter
                    },
                    None,
                );
                push(&mut self.dangerous, "subscription");
            }
            N::AlterSystemStmt(_) => {
                self.ddl(PgKind::Alter, None);
                push(&mut self.dangerous, "alter_system");
            }
            N::LoadStmt(_) => push(&mut self.dangerous, "load_library"),
            N::DoStmt(_) => {
                // An anonymous code block runs whatever its body says.
                push(&mut self.dangerous, "dynamic_sql");
                dangerous_in_text(sql, &mut self.dangerous);
                self.lineage = Lineage::Calls(Arc::new(Lineage::Unknown));
            }
            N::AlterTableStmt(a) => {
                self.ddl(PgKind::Alter, None);
                for cmd in &a.cmds {
                    let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                        continue;
                    };
                    let label = match c.subtype() {
                        AlterTableType::AtDropColumn => "drop_column",
                        AlterTableType::AtAlterColumnType => "alter_column_type",
                        AlterTableType::AtDisableRowSecurity
                        | AlterTableType::AtNoForceRowSecurity => "disable_row_security",
                        AlterTableType::AtDisableTrig
                        | AlterTableType::AtDisableTrigAll
                        | AlterTableType::AtDisableTrigUser
                        | AlterTableType::AtDisableRule => "disable_trigger",
                        _ => continue,
                    };
                    push(&mut self.dangerous, label);
                }
            }
            N::AlterObjectSchemaStmt(_) => {
                // Moving an object to another schema renames it: every query naming
                // it the old way breaks.
                self.ddl(PgKind::Alter, None);
                push(&mut self.dangerous, "rename");
            }
            N::RenameStmt(_) => {
                self.ddl(PgKind::Alter, None);
                push(&mut self.dangerous, "rename");
            }
            N::DropStmt(d) => {
                self.ddl(PgKind::Drop, None);
                if matches!(
                    d.remove_type(),
                    ObjectType::ObjectTable
                        | ObjectType::ObjectView
                        | ObjectType::ObjectMatview
                        | ObjectType::ObjectForeignTable
                ) {
                    for o in body
                        .get("objects")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let n = string_list(o);
                        if !n.is_empty() {
                            self.written.push(n);
                        }
                    }
                }
            }
            N::RefreshMatViewStmt(_) => self.kind = PgKind::Other,
            _ => {
                self.kind = family(tag);
            }
        }
        if (matches!(
            self.kind,
            PgKind::Create | PgKind::Alter | PgKind::Drop | PgKind::Truncate
        ) || matches!(node, N::RefreshMatViewStmt(_)))
            && let Some(t) = &own
        {
            // The object the statement changes is written (as ALTER TABLE is by the
            // full walk): a policy on writes to it sees the change.
            self.written.push(t.clone());
        }
        if self.ddl_target.is_none()
            && matches!(
                self.kind,
                PgKind::Create | PgKind::Alter | PgKind::Drop | PgKind::Truncate
            )
        {
            self.ddl_target = own.clone().or_else(|| object_name(body));
        }
        self.walk(tree, own_node);
    }

    fn grant(&mut self, is_grant: bool, privilege: &str) {
        self.kind = if is_grant {
            PgKind::Grant
        } else {
            PgKind::Revoke
        };
        self.privilege = Some(if privilege == "default_privileges" {
            if is_grant {
                "grant".to_owned()
            } else {
                "revoke".to_owned()
            }
        } else {
            privilege.to_owned()
        });
    }

    fn ddl(&mut self, kind: PgKind, privilege: Option<&str>) {
        self.kind = kind;
        if let Some(p) = privilege {
            self.privilege = Some(p.to_owned());
        }
    }

    /// Every relation, call, column and data-modifying statement in `v`; `skip` is
    /// the top-level statement's own relation, already accounted for.
    fn walk(&mut self, v: &Value, skip: Option<&Value>) {
        match v {
            Value::Array(items) => {
                for i in items {
                    self.walk(i, skip);
                }
            }
            Value::Object(map) => {
                if skip.is_some_and(|s| std::ptr::eq(s, v)) {
                    return;
                }
                if let Some(t) = range_var(v) {
                    if t.split('.').count() > 2 {
                        self.unresolved = Some(format!("{t} names another database"));
                    }
                    self.read.push(t);
                    return;
                }
                if let Some((tag, body)) = tagged(v) {
                    match tag {
                        "FuncCall" => self.call(body),
                        "ColumnRef" => {
                            if let Some(last) = body
                                .get("fields")
                                .and_then(Value::as_array)
                                .and_then(|f| f.last())
                                .and_then(|f| f.pointer("/node/String/sval"))
                                .and_then(Value::as_str)
                            {
                                push(&mut self.columns, &last.to_lowercase());
                            }
                        }
                        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                            self.dml(tag, body);
                            // The target is written (and read back by RETURNING or
                            // a WHERE: counted as read too, except by INSERT).
                            if let Some(t) = body.get("relation").and_then(range_var) {
                                self.written.push(t.clone());
                                if tag != "InsertStmt" {
                                    self.read.push(t);
                                }
                            }
                            if let Some(Value::Object(m)) = Some(body) {
                                for (k, x) in m {
                                    if k != "relation" {
                                        self.walk(x, skip);
                                    }
                                }
                            }
                            return;
                        }
                        _ => {}
                    }
                } else if map.contains_key("funcname") && map.contains_key("agg_star") {
                    // A FuncCall held directly by a typed field (CALL's funccall).
                    self.call(v);
                }
                for x in map.values() {
                    self.walk(x, skip);
                }
            }
            _ => {}
        }
    }

    fn call(&mut self, body: &Value) {
        let name = body.get("funcname").map(string_list).unwrap_or_default();
        if name.is_empty() {
            return;
        }
        if let Some(d) = dangerous_function(&name) {
            push(&mut self.dangerous, d);
        }
        push(&mut self.functions, &name);
    }

    fn dml(&mut self, tag: &str, body: &Value) {
        let has_where = body.get("where_clause").map(|w| !w.is_null());
        let kind = match tag {
            "InsertStmt" => PgKind::Insert,
            "UpdateStmt" => PgKind::Update,
            "DeleteStmt" => PgKind::Delete,
            _ => {
                // MERGE: as strong as its strongest action.
                let mut k = PgKind::Merge;
                for c in body
                    .get("merge_when_clauses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let ct = c
                        .pointer("/node/MergeWhenClause/command_type")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if ct == CmdType::CmdDelete as i64 {
                        k = PgKind::Delete;
                    } else if ct == CmdType::CmdUpdate as i64 && k != PgKind::Delete {
                        k = PgKind::Update;
                    }
                }
                k
            }
        };
        let has_where = match kind {
            PgKind::Update | PgKind::Delete if tag != "MergeStmt" => has_where,
            // Whether a MERGE's join leaves rows out is not judged here: no filter.
            PgKind::Update | PgKind::Delete => Some(false),
            _ => None,
        };
        self.dml.push((kind, has_where));
    }

    fn finish(mut self, sql: &str, why: &str) -> Classified {
        if let Some((k, _)) = self.dml.iter().max_by_key(|(k, _)| weight(*k))
            && matches!(self.kind, PgKind::Select | PgKind::Other)
        {
            // Rows come back only through RETURNING: opaque, as the lineage is.
            self.kind = *k;
        }
        if matches!(self.kind, PgKind::Update | PgKind::Delete) {
            self.has_where = Some(
                self.dml
                    .iter()
                    .filter(|(k, _)| matches!(k, PgKind::Update | PgKind::Delete))
                    .all(|(_, w)| w.unwrap_or(false)),
            );
        }
        let mut tables_written = Vec::new();
        for t in self.written {
            push(&mut tables_written, &t);
        }
        let mut tables_read = Vec::new();
        for t in self.read {
            push(&mut tables_read, &t);
        }
        if !self.functions.is_empty() {
            // Code the gateway does not know may open cursors or prepare statements.
            self.lineage = match self.lineage {
                l @ (Lineage::Calls(_) | Lineage::Declare(..)) => l,
                l => Lineage::Calls(Arc::new(l)),
            };
        }
        Classified {
            text: super::truncate(sql),
            stmt: PgStatement {
                kind: self.kind,
                tables_read,
                tables_written,
                columns: self.columns,
                functions: self.functions,
                dangerous: self.dangerous,
                has_where: self.has_where,
                ddl_target: self.ddl_target,
                privilege_change: self.privilege,
                transaction_control: self.transaction.map(str::to_owned),
                unresolved: self.unresolved,
                fallback: Some(why.to_owned()),
                ..PgStatement::default()
            },
            effect: None,
            executes: None,
            cacheable: false,
            derived: Derived::new(self.lineage),
        }
    }
}

/// The kind of a statement from its node's name, for the families the match above
/// does not single out.
fn family(tag: &str) -> PgKind {
    if tag.starts_with("Create")
        || matches!(
            tag,
            "DefineStmt" | "IndexStmt" | "ViewStmt" | "CompositeTypeStmt" | "RuleStmt"
        )
    {
        PgKind::Create
    } else if tag.starts_with("Alter")
        || matches!(tag, "CommentStmt" | "SecLabelStmt" | "RenameStmt")
    {
        PgKind::Alter
    } else if tag.starts_with("Drop") {
        PgKind::Drop
    } else {
        PgKind::Other
    }
}

/// How strongly a data-modifying kind changes data (the strongest decides).
fn weight(k: PgKind) -> u8 {
    match k {
        PgKind::Delete => 4,
        PgKind::Update => 3,
        PgKind::Merge => 2,
        PgKind::Insert => 1,
        _ => 0,
    }
}

/// `{"Tag": {...}}` or `{"node": {"Tag": {...}}}`: the tag and its body.
fn tagged(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    let m = match m.get("node") {
        Some(Value::Object(inner)) if m.len() == 1 => inner,
        _ => m,
    };
    if m.len() != 1 {
        return None;
    }
    let (k, body) = m.iter().next()?;
    k.starts_with(|c: char| c.is_ascii_uppercase())
        .then_some((k.as_str(), body))
}

/// A `RangeVar` (tagged or held directly): its name, lowercased and qualified as
/// written.
fn range_var(v: &Value) -> Option<String> {
    let v = match tagged(v) {
        Some(("RangeVar", body)) => body,
        _ => v,
    };
    let m = v.as_object()?;
    if !(m.contains_key("relname") && m.contains_key("schemaname") && m.contains_key("inh")) {
        return None;
    }
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    Some(qualified(s("catalogname"), s("schemaname"), s("relname")))
}

fn qualified(catalog: &str, schema: &str, rel: &str) -> String {
    [catalog, schema, rel]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// A name written as a list of `String` nodes (`a.b`), a plain string, or a list
/// wrapped in a `List` node.
fn string_list(v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_lowercase();
    }
    let items = v
        .as_array()
        .or_else(|| v.pointer("/node/List/items").and_then(Value::as_array))
        .or_else(|| v.pointer("/List/items").and_then(Value::as_array));
    let Some(items) = items else {
        if let Some(s) = v.pointer("/node/String/sval").and_then(Value::as_str) {
            return s.to_lowercase();
        }
        if let Some(o) = v.pointer("/node/ObjectWithArgs/objname") {
            return string_list(o);
        }
        if let Some(t) = v.pointer("/node/TypeName/names") {
            return string_list(t);
        }
        return String::new();
    };
    items
        .iter()
        .filter_map(|i| {
            i.pointer("/node/String/sval")
                .or_else(|| i.pointer("/String/sval"))
                .and_then(Value::as_str)
        })
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// The object a DDL statement names when it is not a relation.
fn object_name(body: &Value) -> Option<String> {
    const KEYS: &[&str] = &[
        "dbname",
        "servername",
        "subname",
        "extname",
        "schemaname",
        "trigname",
        "policy_name",
        "idxname",
        "conversion_name",
        "defnames",
        "funcname",
        "type_name",
        "typevar",
        "object",
        "objects",
        "plname",
        "fdwname",
        "pubname",
        "tablespacename",
        "eventname",
        "role",
        "roles",
        "user",
    ];
    for k in KEYS {
        let Some(v) = body.get(*k) else { continue };
        let n = match v {
            // A name (a list of strings), or a list of objects: the first.
            Value::Array(a) => a.first().map(|first| {
                if first.pointer("/node/String").is_some() {
                    string_list(v)
                } else {
                    range_var(first).unwrap_or_else(|| string_list(first))
                }
            }),
            Value::Object(_) => range_var(v)
                .or_else(|| {
                    v.get("rolename")
                        .and_then(Value::as_str)
                        .map(str::to_lowercase)
                })
                .or_else(|| Some(string_list(v))),
            other => Some(string_list(other)),
        };
        if let Some(n) = n.filter(|n| !n.is_empty()) {
            return Some(n);
        }
    }
    None
}

fn push(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}
