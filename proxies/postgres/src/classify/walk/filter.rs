//! Whether a WHERE (or MERGE's ON) can restrict the rows a statement changes.
//!
//! `has_where` is about effect, not spelling: a filter counts only when it can leave
//! rows out. Tautologies do not count (`true`, `1 = 1`, `id = id`, `id::text =
//! id::text`, `x IS NOT NULL` — a NOT NULL column cannot be told apart without the
//! catalog, so it never counts — `a OR true`, `EXISTS (SELECT 1)`, an uncorrelated
//! subquery, `id IN (SELECT id FROM same_table)`, `LIKE '%'`). The judgement errs
//! towards "no filter": a policy that blocks unfiltered deletes then blocks more, never
//! less. What a filter cannot show (`id > 0` on positive ids) is what a runtime bound
//! (`limit rows N`) is for.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, TableFactor, UnaryOperator, Value, visit_expressions,
    visit_relations,
};

use super::name;

/// Names by which a statement's target can be referred to (bare table name, alias).
#[derive(Debug, Default, Clone)]
pub(super) struct Target {
    names: Vec<String>,
    qualified: Option<String>,
}

impl Target {
    pub(super) fn of(tf: &TableFactor) -> Target {
        let mut t = Target::default();
        if let TableFactor::Table { name: n, alias, .. } = tf {
            let q = name(n);
            t.names.push(q.rsplit('.').next().unwrap_or(&q).to_owned());
            t.qualified = Some(q);
            if let Some(a) = alias {
                t.names.push(a.name.value.to_lowercase());
            }
        }
        t
    }
}

/// True when `e`, as a WHERE of a statement changing `target`, can leave rows out.
pub(super) fn restricts(e: &Expr, target: &Target) -> bool {
    match e {
        Expr::Nested(x) => restricts(x, target),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => restricts(left, target) || restricts(right, target),
            BinaryOperator::Or => restricts(left, target) && restricts(right, target),
            _ => compares(left, right, target),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => {
            // NOT of a test on a column restricts, except NOT (x IS NULL).
            !matches!(strip(expr), Expr::IsNull(_))
                && columns(expr, target).is_some_and(|c| !c.is_empty())
        }
        Expr::IsNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => reads_column(x),
        // NOT NULL columns are common and unknown here: never counts.
        Expr::IsNotNull(_) => false,
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => compares(a, b, target),
        Expr::InList { expr, list, .. } => {
            reads_column(expr) && !list.is_empty() && !list.iter().any(|x| same(x, expr))
        }
        Expr::InSubquery { expr, subquery, .. } => {
            reads_column(expr) && subquery_restricts(subquery, target)
        }
        Expr::Exists { subquery, .. } => correlated(subquery, target),
        Expr::Between {
            expr, low, high, ..
        } => reads_column(expr) && !same(low, expr) && !same(high, expr),
        Expr::Like { expr, pattern, .. }
        | Expr::ILike { expr, pattern, .. }
        | Expr::SimilarTo { expr, pattern, .. } => reads_column(expr) && !match_all(pattern),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        // A constant (`true`, `1`), a scalar subquery, a parameter: no filter.
        Expr::Value(_) | Expr::Subquery(_) => false,
        _ => reads_column(e),
    }
}

/// A comparison restricts when it relates different things, at least one a column.
fn compares(a: &Expr, b: &Expr, target: &Target) -> bool {
    if same(a, b) {
        return false;
    }
    match (columns(a, target), columns(b, target)) {
        (Some(x), Some(y)) => {
            if x.is_empty() && y.is_empty() {
                return false;
            }
            // `id = id + 0`, `lower(n) = lower(n)`: the same columns on both sides.
            x != y || x.is_empty()
        }
        // A side holding a subquery: restricts when the other side reads a column.
        (Some(x), None) | (None, Some(x)) => !x.is_empty(),
        (None, None) => true,
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(x) => strip(x),
        other => other,
    }
}

fn same(a: &Expr, b: &Expr) -> bool {
    strip(a) == strip(b)
}

/// Sorted column names `e` reads (qualified unless by the target); `None` when it
/// holds a subquery.
fn columns(e: &Expr, target: &Target) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut subquery = false;
    let _ = visit_expressions(e, |x| {
        match x {
            Expr::Identifier(i) => out.push(i.value.to_lowercase()),
            Expr::CompoundIdentifier(p) => {
                let parts: Vec<String> = p.iter().map(|i| i.value.to_lowercase()).collect();
                match parts.as_slice() {
                    [.., q, column] if target.names.contains(q) => out.push(column.clone()),
                    _ => out.push(parts.join(".")),
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                subquery = true;
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if subquery {
        return None;
    }
    out.sort();
    out.dedup();
    Some(out)
}

fn reads_column(e: &Expr) -> bool {
    let found = visit_expressions(e, |x| match x {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}

/// `LIKE '%'` and friends match every non-null value.
fn match_all(pattern: &Expr) -> bool {
    match strip(pattern) {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                !s.is_empty() && s.chars().all(|c| c == '%')
            }
            _ => false,
        },
        _ => false,
    }
}

/// `x IN (subquery)` restricts unless the subquery is a plain read of the target
/// itself with no filter of its own (`id IN (SELECT id FROM t)`).
fn subquery_restricts(q: &Query, target: &Target) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return true;
    };
    if s.selection.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return true;
    }
    let mut others = false;
    let mut reads_target = false;
    let _ = visit_relations(q, |r| {
        if Some(name(r)) == target.qualified || target.names.first().is_some_and(|n| *n == name(r))
        {
            reads_target = true;
        } else {
            others = true;
        }
        ControlFlow::<()>::Continue(())
    });
    others || !reads_target
}

/// An EXISTS restricts when its subquery refers to the target's rows.
fn correlated(q: &Query, target: &Target) -> bool {
    let mut found = false;
    let _ = visit_expressions(q, |x| {
        if let Expr::CompoundIdentifier(p) = x
            && let [.., q, _] = p.as_slice()
            && target.names.contains(&q.value.to_lowercase())
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::Statement;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn check(sql: &str) -> bool {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Delete(d) = stmt else {
            panic!("not a delete: {sql}");
        };
        let sqlparser::ast::FromTable::WithFromKeyword(from) = &d.from else {
            panic!("{sql}");
        };
        let target = Target::of(&from[0].relation);
        restricts(d.selection.as_ref().unwrap(), &target)
    }

    #[test]
    fn tautologies_do_not_count_as_filters() {
        for sql in [
            "delete from t where true",
            "delete from t where 1 = 1",
            "delete from t where id = id",
            "delete from t where t.id = id",
            "delete from t where id::text = id::text",
            "delete from t where lower(n) = lower(n)",
            "delete from t where id = id + 0",
            "delete from t where id is not null",
            "delete from t where id = 5 or true",
            "delete from t where id = 5 or 1 = 1",
            "delete from t where (id = id)",
            "delete from t where exists (select 1)",
            "delete from t where exists (select 1 from u where u.x = 1)",
            "delete from t where (select true)",
            "delete from t where id in (select id from t)",
            "delete from t where n like '%'",
            "delete from t where not (id is null)",
            "delete from t where 'a' = 'a'",
            "delete from t where id between id and id",
            "delete from t where id in (id)",
            "delete from t where id is not distinct from id",
        ] {
            assert!(!check(sql), "counted as a filter: {sql}");
        }
    }

    #[test]
    fn real_filters_count() {
        for sql in [
            "delete from t where id = 5",
            "delete from t where id = $1",
            "delete from t where id in (1, 2)",
            "delete from t where id = 5 and true",
            "delete from t where n like 'a%'",
            "delete from t where archived",
            "delete from t where id is null",
            "delete from t where a = b",
            "delete from t where id between 1 and 9",
            "delete from t where id = (select max(id) from u)",
            "delete from t where id in (select t_id from u)",
            "delete from t as x where exists (select 1 from u where u.id = x.id)",
            "delete from t where exists (select 1 from u where u.id = t.id)",
            "delete from t using u where t.id = u.id",
            "delete from t where not (id = 4)",
        ] {
            assert!(check(sql), "not counted as a filter: {sql}");
        }
    }
}
