//! Statements that change schema objects or privileges: CREATE, ALTER, DROP,
//! TRUNCATE, COMMENT, GRANT and REVOKE.

use super::statement::Acc;
use sqlparser::ast::{AlterColumnOperation, AlterTableOperation};

use super::*;

/// Sets what `s` does when it belongs to this family; false when it does not.
pub(super) fn classify(s: &Statement, acc: &mut Acc) -> bool {
    match s {
        Statement::Truncate(t) => {
            acc.kind = PgKind::Truncate;
            for n in &t.table_names {
                acc.written.push(name(&n.name));
            }
            acc.ddl_target = acc.written.first().cloned();
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            acc.kind = PgKind::Drop;
            acc.ddl_target = names.first().map(name);
            if matches!(
                object_type,
                ObjectType::Table | ObjectType::View | ObjectType::MaterializedView
            ) {
                acc.written.extend(names.iter().map(name));
            }
            if *object_type == ObjectType::Role || *object_type == ObjectType::User {
                acc.w.privilege = Some("drop_role".into());
            }
        }
        Statement::DropFunction(f) => {
            acc.kind = PgKind::Drop;
            acc.ddl_target = f.func_desc.first().map(|d| name(&d.name));
        }
        Statement::CreateTable(t) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(name(&t.name));
        }
        Statement::CreateView(v) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(name(&v.name));
        }
        Statement::CreateIndex(i) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(name(&i.table_name));
        }
        Statement::CreateFunction(f) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(name(&f.name));
            let lang = f
                .language
                .as_ref()
                .map(|l| l.value.to_lowercase())
                .unwrap_or_default();
            if matches!(lang.as_str(), "c" | "internal") || lang.ends_with('u') {
                push_unique(&mut acc.w.dangerous, "untrusted_language".into());
            }
            dangerous_in_text(&s.to_string(), &mut acc.w.dangerous);
        }
        Statement::CreateProcedure { name: n, .. } => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(name(n));
            dangerous_in_text(&s.to_string(), &mut acc.w.dangerous);
        }
        Statement::CreateExtension(e) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = Some(e.name.value.to_lowercase());
            push_unique(&mut acc.w.dangerous, "create_extension".into());
        }
        Statement::CreateRole(r) => {
            acc.kind = PgKind::Create;
            acc.ddl_target = r.names.first().map(name);
            acc.w.privilege = Some("create_role".into());
        }
        Statement::CreateUser(_) => {
            acc.kind = PgKind::Create;
            acc.w.privilege = Some("create_role".into());
        }
        Statement::AlterRole { name: n, .. } => {
            acc.kind = PgKind::Alter;
            acc.ddl_target = Some(n.value.to_lowercase());
            acc.w.privilege = Some("alter_role".into());
        }
        Statement::AlterUser(_) => {
            acc.kind = PgKind::Alter;
            acc.w.privilege = Some("alter_role".into());
        }
        Statement::AlterTable(t) => {
            acc.kind = PgKind::Alter;
            acc.ddl_target = Some(name(&t.name));
            acc.written.push(name(&t.name));
            // What the change does to the data and its protections.
            for op in &t.operations {
                let label = match op {
                    AlterTableOperation::DropColumn { .. } => "drop_column",
                    AlterTableOperation::AlterColumn {
                        op: AlterColumnOperation::SetDataType { .. },
                        ..
                    }
                    | AlterTableOperation::ChangeColumn { .. }
                    | AlterTableOperation::ModifyColumn { .. } => "alter_column_type",
                    AlterTableOperation::DisableRowLevelSecurity => "disable_row_security",
                    AlterTableOperation::DisableTrigger { .. }
                    | AlterTableOperation::DisableRule { .. } => "disable_trigger",
                    // Every query naming the old name breaks.
                    AlterTableOperation::RenameTable { .. }
                    | AlterTableOperation::RenameColumn { .. } => "rename",
                    _ => continue,
                };
                push_unique(&mut acc.w.dangerous, label.to_owned());
            }
        }
        Statement::AlterView { name: n, .. } | Statement::AlterIndex { name: n, .. } => {
            acc.kind = PgKind::Alter;
            acc.ddl_target = Some(name(n));
        }
        Statement::Comment { object_name, .. } => {
            acc.kind = PgKind::Alter;
            acc.ddl_target = Some(name(object_name));
        }
        Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateTrigger(_)
        | Statement::CreatePolicy(_)
        | Statement::CreateServer(_) => {
            acc.kind = PgKind::Create;
            if matches!(s, Statement::CreateServer(_)) {
                push_unique(&mut acc.w.dangerous, "foreign_server".into());
            }
        }
        Statement::AlterSchema(a) => {
            acc.kind = PgKind::Alter;
            acc.ddl_target = Some(name(&a.name));
        }
        Statement::AlterFunction(_) | Statement::AlterType(_) | Statement::AlterPolicy(_) => {
            acc.kind = PgKind::Alter
        }
        Statement::DropDomain(_)
        | Statement::DropTrigger(_)
        | Statement::DropPolicy(_)
        | Statement::DropExtension(_)
        | Statement::DropProcedure { .. } => acc.kind = PgKind::Drop,
        Statement::Grant(_) => {
            acc.kind = PgKind::Grant;
            acc.w.privilege = Some("grant".into());
        }
        Statement::Revoke(_) => {
            acc.kind = PgKind::Revoke;
            acc.w.privilege = Some("revoke".into());
        }
        _ => return false,
    }
    true
}
