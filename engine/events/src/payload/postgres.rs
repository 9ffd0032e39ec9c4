use serde::{Deserialize, Serialize};

use crate::EventId;

/// What a SQL statement does, as rules see it (`pg.statement.kind`). One table: the
/// rules' field catalogue, the event encodings and the classifier all use it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PgKind {
    /// Reads rows: `SELECT`, `TABLE`, `VALUES`, `SHOW`, cursors.
    Select,
    /// `INSERT`.
    Insert,
    /// `UPDATE` (or a statement whose strongest data change is one).
    Update,
    /// `DELETE` (or a statement whose strongest data change is one).
    Delete,
    /// `MERGE` with only inserting actions.
    Merge,
    /// `COPY` to or from anywhere.
    Copy,
    /// `CREATE ...`.
    Create,
    /// `ALTER ...`, `COMMENT ON`.
    Alter,
    /// `DROP ...`.
    Drop,
    /// `TRUNCATE`.
    Truncate,
    /// `GRANT`.
    Grant,
    /// `REVOKE`.
    Revoke,
    /// `SET`, `RESET`, `DISCARD`.
    Set,
    /// `BEGIN`, `START TRANSACTION`, `SAVEPOINT`.
    Begin,
    /// `COMMIT`, `RELEASE SAVEPOINT`.
    Commit,
    /// `ROLLBACK`, `ROLLBACK TO SAVEPOINT`.
    Rollback,
    /// `EXECUTE` of a prepared statement.
    Execute,
    /// `PREPARE`, `DEALLOCATE`.
    Prepare,
    /// `CALL`.
    Call,
    /// Anything else the classifier understood. Also what a kind written by a newer
    /// gateway decodes to.
    #[default]
    Other,
    /// Not understood: `parse_error` says why.
    Unparsed,
}

impl PgKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [PgKind] = &[
        PgKind::Select,
        PgKind::Insert,
        PgKind::Update,
        PgKind::Delete,
        PgKind::Merge,
        PgKind::Copy,
        PgKind::Create,
        PgKind::Alter,
        PgKind::Drop,
        PgKind::Truncate,
        PgKind::Grant,
        PgKind::Revoke,
        PgKind::Set,
        PgKind::Begin,
        PgKind::Commit,
        PgKind::Rollback,
        PgKind::Execute,
        PgKind::Prepare,
        PgKind::Call,
        PgKind::Other,
        PgKind::Unparsed,
    ];

    /// The name of every kind, in the order of [`ALL`](Self::ALL) (the values of
    /// `pg.statement.kind` in rules).
    pub const NAMES: &'static [&'static str] = &[
        "select", "insert", "update", "delete", "merge", "copy", "create", "alter", "drop",
        "truncate", "grant", "revoke", "set", "begin", "commit", "rollback", "execute", "prepare",
        "call", "other", "unparsed",
    ];

    /// Lowercase name (as in rules and events).
    pub fn as_str(self) -> &'static str {
        match self {
            PgKind::Select => "select",
            PgKind::Insert => "insert",
            PgKind::Update => "update",
            PgKind::Delete => "delete",
            PgKind::Merge => "merge",
            PgKind::Copy => "copy",
            PgKind::Create => "create",
            PgKind::Alter => "alter",
            PgKind::Drop => "drop",
            PgKind::Truncate => "truncate",
            PgKind::Grant => "grant",
            PgKind::Revoke => "revoke",
            PgKind::Set => "set",
            PgKind::Begin => "begin",
            PgKind::Commit => "commit",
            PgKind::Rollback => "rollback",
            PgKind::Execute => "execute",
            PgKind::Prepare => "prepare",
            PgKind::Call => "call",
            PgKind::Other => "other",
            PgKind::Unparsed => "unparsed",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<PgKind> {
        PgKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// True for statements that change rows (`insert`, `update`, `delete`, `merge`).
    pub fn changes_rows(self) -> bool {
        matches!(
            self,
            PgKind::Insert | PgKind::Update | PgKind::Delete | PgKind::Merge
        )
    }
}

impl Serialize for PgKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PgKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PgKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a statement kind")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PgKind, E> {
                Ok(PgKind::parse(v).unwrap_or(PgKind::Other))
            }
        }
        d.deserialize_str(V)
    }
}

impl std::fmt::Display for PgKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SQL statement, classified.
///
/// A multi-statement query string yields one of these per statement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgStatement {
    /// Statement kind.
    pub kind: PgKind,
    /// Position of the statement in its query string (0-based).
    pub statement_index: u32,
    /// Number of statements in the query string.
    pub statement_count: u32,
    /// Tables read, schema-qualified as written (`infra.hosts`), lowercased.
    pub tables_read: Vec<String>,
    /// Tables written (insert/update/delete/merge/copy from/truncate targets).
    pub tables_written: Vec<String>,
    /// Columns referenced, as written.
    pub columns: Vec<String>,
    /// Functions called, lowercased, schema-qualified when written so.
    pub functions: Vec<String>,
    /// Dangerous capabilities used (`pg_read_file`, `copy_program`, `dblink`, ...).
    pub dangerous: Vec<String>,
    /// For UPDATE and DELETE: whether a WHERE clause is present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_where: Option<bool>,
    /// For DDL: the object created, altered or dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddl_target: Option<String>,
    /// Role or privilege change: `grant`, `revoke`, `create_role`, `alter_role`, `set_role`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privilege_change: Option<String>,
    /// Transaction control: `begin`, `commit`, `rollback`, `savepoint`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_control: Option<String>,
    /// Wire phase: `simple`, `parse` or `execute`.
    pub phase: String,
    /// Prepared statement name (extended protocol), empty for unnamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared_name: Option<String>,
    /// For `execute`: the event that classified the statement at Parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared_event: Option<EventId>,
    /// Bound parameter values (text form, truncated), for `execute`.
    pub params: Vec<Option<String>>,
    /// Set when `sqlparser` could not parse the statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Set when what the statement reaches could not be resolved (the upstream
    /// catalog could not be read, a function body is unknown, a name is dynamic or
    /// names another database): the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    /// Set when the statement was classified by PostgreSQL's own grammar because the
    /// full classifier could not (why it could not): kind, objects, calls and
    /// capabilities are known; result-column lineage is not (every result column
    /// is treated as possibly holding any column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::PgKind;

    #[test]
    fn kinds_have_one_name_each_in_every_encoding() {
        assert_eq!(PgKind::ALL.len(), PgKind::NAMES.len());
        for (k, n) in PgKind::ALL.iter().zip(PgKind::NAMES) {
            assert_eq!(k.as_str(), *n);
            assert_eq!(PgKind::parse(n), Some(*k));
            let json = serde_json::to_string(k).unwrap_or_default();
            assert_eq!(json, format!("\"{n}\""));
            assert_eq!(serde_json::from_str::<PgKind>(&json).ok(), Some(*k));
        }
        // A kind from a newer writer decodes as `other`.
        assert_eq!(
            serde_json::from_str::<PgKind>("\"vacuum\"").ok(),
            Some(PgKind::Other)
        );
    }
}
