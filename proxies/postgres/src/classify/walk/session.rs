//! Statements that change the session: SET, RESET, DISCARD and transaction control.

use super::statement::Acc;
use super::*;

/// Sets what `s` does when it belongs to this family; false when it does not.
pub(super) fn classify(s: &Statement, acc: &mut Acc) -> bool {
    match s {
        Statement::Set(set) => {
            acc.kind = PgKind::Set;
            acc.cacheable = false;
            match set {
                Set::SetRole { .. } => acc.w.privilege = Some("set_role".into()),
                Set::SetSessionAuthorization(_) => {
                    acc.w.privilege = Some("set_session_authorization".into());
                }
                Set::SingleAssignment {
                    scope,
                    variable,
                    values,
                    ..
                } => {
                    let v = name(variable);
                    match bare(&v) {
                        "role" | "session_authorization" => {
                            acc.w.privilege = Some("set_role".into())
                        }
                        "search_path" => {
                            let path = crate::classify::session::parse_path(
                                &setting_values(values).join(","),
                            );
                            acc.w.effect = Some(
                                if matches!(scope, Some(sqlparser::ast::ContextModifier::Local)) {
                                    SqlEffect::LocalSearchPath(path)
                                } else {
                                    SqlEffect::SearchPath(path)
                                },
                            );
                        }
                        "standard_conforming_strings" => {}
                        _ if v == "gatehouse.reason" => {
                            acc.w.effect =
                                Some(SqlEffect::Reason(setting_values(values).join(", ")));
                        }
                        _ => {}
                    }
                }
                Set::MultipleAssignments { assignments } => {
                    for a in assignments {
                        let v = name(&a.name);
                        if matches!(bare(&v), "role" | "session_authorization") {
                            acc.w.privilege = Some("set_role".into());
                        }
                        if bare(&v) == "search_path" {
                            acc.w.effect = Some(SqlEffect::SearchPathUnknown);
                        }
                    }
                }
                _ => {}
            }
        }
        Statement::Reset(_) | Statement::Discard { .. } => {
            acc.kind = PgKind::Set;
            acc.cacheable = false;
            acc.w.effect = Some(SqlEffect::SearchPathUnknown);
        }
        Statement::StartTransaction { .. } => {
            acc.kind = PgKind::Begin;
            acc.transaction = Some("begin");
        }
        Statement::Commit { .. } => {
            acc.kind = PgKind::Commit;
            acc.transaction = Some("commit");
        }
        Statement::Rollback { savepoint, .. } => {
            acc.kind = PgKind::Rollback;
            acc.transaction = Some(if savepoint.is_some() {
                "rollback_to_savepoint"
            } else {
                "rollback"
            });
        }
        Statement::Savepoint { .. } => {
            acc.kind = PgKind::Begin;
            acc.transaction = Some("savepoint");
        }
        Statement::ReleaseSavepoint { .. } => {
            acc.kind = PgKind::Commit;
            acc.transaction = Some("release_savepoint");
        }
        _ => return false,
    }
    true
}

/// The values of a `SET name = ...` as text (quotes removed from string literals).
fn setting_values(values: &[Expr]) -> Vec<String> {
    values
        .iter()
        .map(|e| match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect()
}
