//! What the classification of a statement depends on in its session: SQL-level
//! prepared statements (`PREPARE`/`EXECUTE`) and the search path.

use std::collections::HashMap;

use gatehouse_events::payload::{PgKind, PgStatement};

use super::Classified;
use crate::catalog::Snapshot;

/// A change to session state a statement makes when it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlEffect {
    /// `PREPARE name AS ...`, with the inner statement's classification.
    Prepare(String, Box<PgStatement>),
    /// `DEALLOCATE name` (`all` drops every one).
    Deallocate(String),
    /// `SET search_path` / `set_config('search_path', ...)` to a known list.
    SearchPath(Vec<String>),
    /// `SET LOCAL search_path`: until the end of the transaction.
    LocalSearchPath(Vec<String>),
    /// The search path changed to something not known (or back to the default,
    /// for `RESET`/`DISCARD`, handled as unknown only when it cannot be told).
    SearchPathUnknown,
    /// `SET gatehouse.reason = '...'`: the reason the requester states for its next
    /// statements (recorded on them and shown to reviewers; the server keeps it as a
    /// custom setting, so `SHOW gatehouse.reason` works too).
    Reason(String),
}

/// Search path as the proxy knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SearchPath {
    /// The server default (`"$user", public`): names are reported as written.
    #[default]
    Default,
    /// Set by the session: unqualified names are also reported qualified by each schema.
    Set(Vec<String>),
    /// Changed in a way the proxy cannot follow: unqualified names are not classified.
    Unknown,
}

/// The search path's transaction semantics, as PostgreSQL applies them: `SET` in a
/// transaction is undone by `ROLLBACK` (and by `ROLLBACK TO` a savepoint set before
/// it); `SET LOCAL` lasts until the transaction ends either way.
#[derive(Debug, Clone, Default)]
struct Transaction {
    /// The path at `BEGIN` (restored by `ROLLBACK`).
    at_begin: SearchPath,
    /// The path without `SET LOCAL`s (kept by `COMMIT`).
    session: SearchPath,
    /// Savepoints: name, then the path in effect and the session path when set.
    savepoints: Vec<(String, SearchPath, SearchPath)>,
}

/// The savepoint named by `SAVEPOINT a`, `ROLLBACK TO [SAVEPOINT] a`, `RELEASE a`.
fn savepoint_name(text: &str) -> Option<String> {
    let last = text
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .last()?;
    Some(
        match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(quoted) => quoted.to_owned(),
            None => last.to_lowercase(),
        },
    )
}

impl SearchPath {
    fn of(path: &[String]) -> Self {
        if path.is_empty() || path.iter().any(|p| p == "default") {
            SearchPath::Default
        } else {
            SearchPath::Set(path.to_vec())
        }
    }
}

/// Parses a `search_path` value: `a, "B", public`.
pub fn parse_path(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Some(quoted) => quoted.to_lowercase(),
                None => s.trim_matches('\'').to_lowercase(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Per-session SQL state.
#[derive(Debug, Clone, Default)]
pub struct SessionSql {
    prepared: HashMap<String, PgStatement>,
    /// The search path in effect.
    search_path: SearchPath,
    /// The session's default, which `RESET` and `DISCARD ALL` return to: the server's,
    /// or the one the startup packet set (`options=-c search_path=...`).
    startup_path: SearchPath,
    /// In a transaction block: what its end and its savepoints restore.
    transaction: Option<Transaction>,
    /// The upstream role (`$user` in the search path).
    pub user: String,
    /// `standard_conforming_strings` is off: backslashes in strings escape.
    pub backslash_strings: bool,
    /// The database the session is connected to: `db.schema.table` is `schema.table`
    /// when `db` is this one.
    pub database: String,
    /// The session sent DDL since the catalog was last invalidated for it.
    pub catalog_dirty: bool,
}

/// PostgreSQL's default `search_path`.
static DEFAULT_PATH: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| vec!["$user".to_owned(), "public".to_owned()]);

/// Whether running `stmt` may change what names are (relations, functions, schemas).
pub fn is_ddl(stmt: &PgStatement) -> bool {
    matches!(
        stmt.kind,
        PgKind::Create | PgKind::Alter | PgKind::Drop | PgKind::Grant | PgKind::Revoke
    ) || stmt.ddl_target.is_some()
}

impl SessionSql {
    /// State for a session logged in upstream as `user`.
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            ..Self::default()
        }
    }

    /// Starts the session on the search path the server starts it on when a
    /// database's or role's default sets one (`ALTER ROLE r SET search_path = ...`).
    pub fn default_search_path(&mut self, value: &str) {
        self.search_path = SearchPath::of(&parse_path(value));
        self.startup_path = self.search_path.clone();
    }

    /// Applies a setting of the startup packet (`options=-c name=value`), judged as
    /// the `SET` in `c`: a search path set this way is also the session's default.
    pub fn startup(&mut self, c: &Classified) -> PgStatement {
        let stmt = self.resolve(c);
        self.startup_path = self.search_path.clone();
        stmt
    }

    /// The event fields of a classified statement in this session, then the session
    /// state updated by it (statements of one string are resolved in order).
    pub fn resolve(&mut self, c: &Classified) -> PgStatement {
        self.resolve_in(c, None)
    }

    /// [`resolve`](Self::resolve), with the names expanded through the target's
    /// catalog when one was read (views, functions, canonical `schema.name`).
    pub fn resolve_in(&mut self, c: &Classified, catalog: Option<&Snapshot>) -> PgStatement {
        let mut stmt = c.stmt.clone();
        if let Some(name) = &c.executes {
            match self.prepared.get(name) {
                Some(p) => {
                    let (index, count) = (stmt.statement_index, stmt.statement_count);
                    stmt = p.clone();
                    stmt.statement_index = index;
                    stmt.statement_count = count;
                    stmt.prepared_name = Some(name.clone());
                }
                None => {
                    stmt.parse_error = Some(format!(
                        "EXECUTE of prepared statement `{name}`, which this session did not prepare through the gateway"
                    ));
                }
            }
        }
        database_names(&self.database, &mut stmt);
        if let Some(snap) = catalog {
            let path = match &self.search_path {
                SearchPath::Default => Some(DEFAULT_PATH.as_slice()),
                SearchPath::Set(p) => Some(p.as_slice()),
                SearchPath::Unknown => None,
            };
            // After DDL not yet run (earlier in the same batch), the reading may be
            // out of date for any name.
            let doubt = self
                .catalog_dirty
                .then_some("an earlier statement of the same batch changes the schema");
            crate::catalog::reach(&mut stmt, snap, path, &self.user, doubt);
        }
        if is_ddl(&stmt) {
            // What names are changes when this runs: read the catalog again before the
            // session's next statement (see `catalog`).
            self.catalog_dirty = true;
        }
        if self.backslash_strings && c.text.contains('\\') {
            stmt.parse_error.get_or_insert_with(|| {
                "standard_conforming_strings is off and the statement holds a backslash".into()
            });
        }
        match &self.search_path {
            SearchPath::Default => {}
            SearchPath::Set(path) => {
                for list in [&mut stmt.tables_read, &mut stmt.tables_written] {
                    let unqualified: Vec<String> =
                        list.iter().filter(|t| !t.contains('.')).cloned().collect();
                    for t in unqualified {
                        for schema in path {
                            let schema = if schema == "$user" {
                                &self.user
                            } else {
                                schema
                            };
                            let q = format!("{schema}.{t}");
                            if !list.contains(&q) {
                                list.push(q);
                            }
                        }
                    }
                }
            }
            SearchPath::Unknown => {
                let unqualified = stmt
                    .tables_read
                    .iter()
                    .chain(&stmt.tables_written)
                    .any(|t| !t.contains('.'));
                if unqualified {
                    stmt.parse_error.get_or_insert_with(|| {
                        "the session changed search_path in a way the gateway cannot follow; qualify table names".into()
                    });
                }
            }
        }
        if stmt.parse_error.is_some() && stmt.kind != PgKind::Unparsed {
            stmt.kind = PgKind::Unparsed;
        }
        self.apply(c);
        stmt
    }

    fn apply(&mut self, c: &Classified) {
        self.transaction_control(c);
        let before = self.search_path.clone();
        self.apply_effect(c);
        // A session-level change inside a transaction is what COMMIT keeps.
        if let Some(t) = &mut self.transaction
            && !matches!(c.effect, Some(SqlEffect::LocalSearchPath(_)))
            && self.search_path != before
        {
            t.session = self.search_path.clone();
        }
    }

    fn transaction_control(&mut self, c: &Classified) {
        let Some(tc) = c.stmt.transaction_control.as_deref() else {
            return;
        };
        match tc {
            "begin" if self.transaction.is_none() => {
                self.transaction = Some(Transaction {
                    at_begin: self.search_path.clone(),
                    session: self.search_path.clone(),
                    savepoints: Vec::new(),
                });
            }
            "commit" => {
                if let Some(t) = self.transaction.take() {
                    self.search_path = t.session;
                }
            }
            "rollback" => {
                if let Some(t) = self.transaction.take() {
                    self.search_path = t.at_begin;
                }
            }
            "savepoint" => {
                if let (Some(t), Some(name)) = (&mut self.transaction, savepoint_name(&c.text)) {
                    t.savepoints
                        .push((name, self.search_path.clone(), t.session.clone()));
                }
            }
            "rollback_to_savepoint" | "release_savepoint" => {
                let Some(t) = &mut self.transaction else {
                    return;
                };
                let name = savepoint_name(&c.text);
                let at = name
                    .as_ref()
                    .and_then(|n| t.savepoints.iter().rposition(|(s, ..)| s == n));
                match (tc, at) {
                    ("rollback_to_savepoint", Some(i)) => {
                        // The savepoint stays; later ones go.
                        t.savepoints.truncate(i + 1);
                        if let Some((_, path, session)) = t.savepoints.get(i) {
                            self.search_path = path.clone();
                            t.session = session.clone();
                        }
                    }
                    ("release_savepoint", Some(i)) => t.savepoints.truncate(i),
                    // A savepoint the gateway did not see: the path cannot be told.
                    _ => {
                        self.search_path = SearchPath::Unknown;
                        t.session = SearchPath::Unknown;
                    }
                }
            }
            _ => {}
        }
    }

    fn apply_effect(&mut self, c: &Classified) {
        match &c.effect {
            Some(SqlEffect::Prepare(name, stmt)) => {
                self.prepared.insert(name.clone(), (**stmt).clone());
            }
            Some(SqlEffect::Deallocate(name)) => {
                if name == "all" {
                    self.prepared.clear();
                } else {
                    self.prepared.remove(name);
                }
            }
            Some(SqlEffect::SearchPath(path)) => self.search_path = SearchPath::of(path),
            // Outside a transaction block SET LOCAL has no effect.
            Some(SqlEffect::LocalSearchPath(path)) if self.transaction.is_some() => {
                self.search_path = SearchPath::of(path);
            }
            Some(SqlEffect::LocalSearchPath(_) | SqlEffect::Reason(_)) => {}
            Some(SqlEffect::SearchPathUnknown) => {
                let resets = c.stmt.kind == PgKind::Set
                    && c.text.trim_start().get(..5).is_some_and(|p| {
                        p.eq_ignore_ascii_case("reset") || p.eq_ignore_ascii_case("disca")
                    });
                self.search_path = if resets {
                    self.startup_path.clone()
                } else {
                    SearchPath::Unknown
                };
            }
            None => {}
        }
    }
}

/// Rewrites `db.schema.table` names to `schema.table` when `db` is the session's
/// database; a name in another database (or with more parts) makes the statement
/// unresolved.
fn database_names(database: &str, stmt: &mut PgStatement) {
    let mut unresolved = None;
    for list in [&mut stmt.tables_read, &mut stmt.tables_written] {
        if !list.iter().any(|t| t.matches('.').count() >= 2) {
            continue;
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for t in list.drain(..) {
            let parts: Vec<&str> = t.split('.').collect();
            let name = match parts.as_slice() {
                [db, schema, table] if !database.is_empty() && *db == database => {
                    format!("{schema}.{table}")
                }
                [_, _, _] => {
                    unresolved.get_or_insert_with(|| {
                        format!("`{t}` names a database other than the session's (`{database}`)")
                    });
                    t
                }
                [..] if parts.len() > 3 => {
                    unresolved.get_or_insert_with(|| format!("`{t}` is not a relation name"));
                    t
                }
                _ => t,
            };
            if !out.contains(&name) {
                out.push(name);
            }
        }
        *list = out;
    }
    if let Some(u) = unresolved {
        stmt.unresolved.get_or_insert(u);
    }
}
