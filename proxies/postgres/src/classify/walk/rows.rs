//! Statements that read or write rows: queries, INSERT/UPDATE/DELETE/MERGE (their
//! facts come from the visitor's DML list), COPY, SHOW and cursors.

use super::statement::Acc;
use super::*;

/// Sets what `s` does when it belongs to this family; false when it does not.
pub(super) fn classify(s: &Statement, acc: &mut Acc) -> bool {
    match s {
        Statement::Query(_) => acc.kind = PgKind::Select,
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => {
            // Filled from the DML list below.
        }
        Statement::Copy {
            source, to, target, ..
        } => {
            acc.kind = PgKind::Copy;
            if let CopySource::Table {
                table_name,
                columns,
            } = source
            {
                let n = name(table_name);
                for c in columns {
                    push_unique(&mut acc.w.columns, c.value.to_lowercase());
                }
                if *to {
                    // COPY table TO: a read (the visitor does not report COPY's table).
                    if !acc.w.relations.contains(&n) {
                        acc.w.relations.push(n);
                    }
                } else {
                    acc.w.relations.retain(|r| r != &n);
                    acc.written.push(n);
                }
            }
            match target {
                CopyTarget::Program { .. } => {
                    push_unique(&mut acc.w.dangerous, "copy_program".into())
                }
                CopyTarget::File { .. } => push_unique(&mut acc.w.dangerous, "copy_file".into()),
                CopyTarget::Stdin | CopyTarget::Stdout => {}
            }
        }
        Statement::ShowVariable { .. } => acc.kind = PgKind::Select,
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
            acc.kind = PgKind::Select;
        }
        _ => return false,
    }
    true
}
