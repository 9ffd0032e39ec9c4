use serde::{Deserialize, Serialize};

use crate::EventId;

/// One SQL statement, classified.
///
/// A multi-statement query string yields one of these per statement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgStatement {
    /// Statement kind: `select`, `insert`, `update`, `delete`, `merge`, `copy`, `create`,
    /// `alter`, `drop`, `truncate`, `grant`, `revoke`, `set`, `begin`, `commit`,
    /// `rollback`, `execute`, `prepare`, `call`, `other`, or `unparsed`.
    pub kind: String,
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
}
