//! One statement's facts: the visitor's findings, completed by its family.

use super::*;

/// What the families fill in while looking at the top-level statement.
pub(super) struct Acc {
    pub w: Walk,
    pub written: Vec<String>,
    pub executes: Option<String>,
    pub cacheable: bool,
    pub kind: PgKind,
    /// EXPLAIN: the explained statement's kind and effect are what is judged.
    pub explain: bool,
    pub ddl_target: Option<String>,
    pub transaction: Option<&'static str>,
    /// PREPARE and EXPLAIN: the statement inside.
    pub inner: Option<Classified>,
}

/// Classifies one parsed statement.
pub fn statement(s: &Statement) -> Classified {
    let mut w = Walk::default();
    let _ = s.visit(&mut w);
    let mut acc = Acc {
        w,
        written: Vec::new(),
        executes: None,
        cacheable: true,
        kind: PgKind::Other,
        explain: false,
        ddl_target: None,
        transaction: None,
        inner: None,
    };
    let known = rows::classify(s, &mut acc)
        || ddl::classify(s, &mut acc)
        || session::classify(s, &mut acc)
        || prepared::classify(s, &mut acc)
        || other(s, &mut acc);
    let Acc {
        w,
        mut written,
        mut executes,
        mut cacheable,
        mut kind,
        explain,
        ddl_target,
        transaction,
        inner,
    } = acc;
    let mut stmt = PgStatement::default();
    if !known {
        // Parsed, but no family knows what it does: say which construct, so the
        // refusal and the event name it.
        kind = PgKind::Unparsed;
        stmt.parse_error = Some(format!(
            "{} is not supported",
            crate::classify::construct(&s.to_string())
        ));
    }

    // Data-modifying statements, top-level or inside CTEs, decide the kind.
    if let Some(d) = w.dml.iter().max_by_key(|d| weight(d.kind))
        && (weight(d.kind) > 0 && matches!(kind, PgKind::Select | PgKind::Other))
    {
        kind = d.kind;
    }
    let wheres: Vec<bool> = w
        .dml
        .iter()
        .filter(|d| matches!(d.kind, PgKind::Update | PgKind::Delete))
        .filter_map(|d| d.has_where)
        .collect();
    if matches!(kind, PgKind::Update | PgKind::Delete) {
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

    stmt.kind = kind;
    stmt.tables_read = tables_read;
    stmt.tables_written = tables_written;
    stmt.columns = w.columns;
    stmt.functions = w.functions;
    stmt.dangerous = w.dangerous;
    stmt.ddl_target = ddl_target;
    stmt.privilege_change = w.privilege;
    stmt.transaction_control = transaction.map(str::to_owned);
    let mut effect = w.effect;
    if let Some(c) = inner {
        // PREPARE and EXPLAIN: what the inner statement does is what is judged.
        merge(&mut stmt, &c.stmt);
        if explain {
            stmt.kind = c.stmt.kind;
            stmt.has_where = c.stmt.has_where;
            effect = effect.or(c.effect);
            executes = executes.or(c.executes);
        }
        cacheable = cacheable && c.cacheable;
    }
    let lineage = crate::classify::lineage::of(s);
    // COPY's format options are literals, which the cache key does not keep.
    let copies = matches!(lineage.rows(), crate::classify::lineage::Lineage::Copy(..));
    Classified {
        text: String::new(),
        stmt,
        effect,
        executes,
        cacheable: cacheable && !w.literal_dependent && !copies,
        derived: Arc::new(lineage),
    }
}

/// Statements understood to touch no data and no privileges: kind `other`.
fn other(s: &Statement, acc: &mut Acc) -> bool {
    match s {
        Statement::Analyze { .. }
        | Statement::Vacuum(_)
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. } => {}
        _ => return false,
    }
    acc.kind = PgKind::Other;
    true
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
