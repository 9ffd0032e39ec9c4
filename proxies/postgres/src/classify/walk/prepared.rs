//! Statements that run another statement: PREPARE, EXECUTE, DEALLOCATE, CALL and
//! EXPLAIN.

use super::statement::Acc;
use super::*;

/// Sets what `s` does when it belongs to this family; false when it does not.
pub(super) fn classify(s: &Statement, acc: &mut Acc) -> bool {
    match s {
        Statement::Prepare {
            name: n, statement, ..
        } => {
            let c = crate::classify::inner(statement);
            acc.cacheable = false;
            acc.w.effect = Some(SqlEffect::Prepare(
                n.value.to_lowercase(),
                Box::new(c.stmt.clone()),
            ));
            acc.inner = Some(c);
            acc.kind = PgKind::Prepare;
        }
        Statement::Execute { name: n, .. } => {
            acc.cacheable = false;
            acc.kind = PgKind::Execute;
            acc.executes = n.as_ref().map(name);
        }
        Statement::Deallocate { name: n, .. } => {
            acc.kind = PgKind::Prepare;
            acc.cacheable = false;
            acc.w.effect = Some(SqlEffect::Deallocate(n.value.to_lowercase()));
        }
        Statement::Call(f) => {
            acc.kind = PgKind::Call;
            acc.w.function(name(&f.name));
        }
        Statement::Explain { statement, .. } => {
            // EXPLAIN ANALYZE runs the statement: judge what is explained.
            let c = crate::classify::inner(statement);
            acc.explain = true;
            acc.inner = Some(c);
        }
        _ => return false,
    }
    true
}
