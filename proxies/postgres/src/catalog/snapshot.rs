//! One reading of an upstream catalog: relations by schema and name (with view bodies
//! classified), user-defined functions (bodies classified), and the names of the
//! built-in functions.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use gatehouse_events::payload::{PgKind, PgStatement};

use super::plpgsql;
use crate::classify;

/// What kind of relation a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// A table (or a partitioned table).
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign table.
    Foreign,
}

impl RelKind {
    /// From `pg_class.relkind`.
    pub fn from_relkind(k: &str) -> Option<Self> {
        Some(match k {
            "r" | "p" => RelKind::Table,
            "v" => RelKind::View,
            "m" => RelKind::MaterializedView,
            "f" => RelKind::Foreign,
            _ => return None,
        })
    }
}

/// A relation.
#[derive(Debug, Clone)]
pub struct Relation {
    /// Its kind.
    pub kind: RelKind,
    /// A view's body, classified (names qualified as `pg_get_viewdef` wrote them).
    pub body: Option<PgStatement>,
}

/// A user-defined function (all overloads of one name are merged).
#[derive(Debug, Clone, Default)]
pub struct Function {
    /// What its body does (tables, functions, kind, dangerous calls).
    pub body: PgStatement,
    /// `SET search_path` of the function, when it has one.
    pub search_path: Option<Vec<String>>,
}

/// One reading of the catalog.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Relations: schema -> name -> relation.
    pub relations: HashMap<String, HashMap<String, Relation>>,
    /// Every relation name, unqualified (to tell a name the catalog does not know).
    pub relation_names: HashSet<String>,
    /// User-defined functions: schema -> name -> function.
    pub functions: HashMap<String, HashMap<String, Function>>,
    /// Names of the functions in `pg_catalog`.
    pub builtins: HashSet<String>,
    /// Every function by OID: schema and name.
    pub function_oids: HashMap<u32, (String, String)>,
    /// Default settings of databases and roles.
    pub role_settings: Vec<RoleSetting>,
    /// When it was read (or when reading it last failed).
    pub loaded: Instant,
    /// Why the last reading failed (the data is then the last good reading, if any).
    pub error: Option<String>,
    /// Whether any reading ever succeeded.
    pub ever_loaded: bool,
}

/// `ALTER DATABASE d SET`, `ALTER ROLE r SET`, `ALTER ROLE r IN DATABASE d SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSetting {
    /// The database (`None`: every database).
    pub database: Option<String>,
    /// The role (`None`: every role).
    pub role: Option<String>,
    /// `name=value` lines.
    pub settings: Vec<String>,
}

impl Snapshot {
    /// The value a session of `role` in `database` starts with for `name`, from the
    /// defaults of databases and roles, as PostgreSQL applies them (role in database
    /// first, then role, then database); `None` when none sets it.
    pub fn session_default(&self, database: &str, role: &str, name: &str) -> Option<String> {
        let rank = |s: &RoleSetting| match (s.database.as_deref(), s.role.as_deref()) {
            (Some(d), Some(r)) if d == database && r == role => Some(0),
            (None, Some(r)) if r == role => Some(1),
            (Some(d), None) if d == database => Some(2),
            _ => None,
        };
        let mut best: Option<(u8, String)> = None;
        for s in &self.role_settings {
            let Some(r) = rank(s) else { continue };
            let value = s.settings.iter().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.eq_ignore_ascii_case(name).then(|| v.to_owned())
            });
            if let Some(v) = value
                && best.as_ref().is_none_or(|(b, _)| r < *b)
            {
                best = Some((r, v));
            }
        }
        best.map(|(_, v)| v)
    }

    /// An empty catalog that was never read, because of `error`.
    pub fn unreadable(error: String) -> Self {
        Self {
            relations: HashMap::new(),
            relation_names: HashSet::new(),
            functions: HashMap::new(),
            builtins: HashSet::new(),
            function_oids: HashMap::new(),
            role_settings: Vec::new(),
            loaded: Instant::now(),
            error: Some(error),
            ever_loaded: false,
        }
    }

    /// The relation `schema.name`.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(schema)?.get(name)
    }

    /// The user-defined function `schema.name`.
    pub fn function(&self, schema: &str, name: &str) -> Option<&Function> {
        self.functions.get(schema)?.get(name)
    }

    /// Whether every relation and function `stmt` names is known to this reading (by
    /// unqualified name; a cheap test before a lookup through the search path).
    pub fn knows(&self, stmt: &PgStatement) -> bool {
        fn bare(n: &str) -> &str {
            n.rsplit('.').next().unwrap_or(n)
        }
        stmt.tables_read
            .iter()
            .chain(&stmt.tables_written)
            .all(|t| self.relation_names.contains(bare(t)))
            && stmt.functions.iter().all(|f| {
                let b = bare(f);
                self.is_builtin(b)
                    || classify::dangerous_function(b).is_some()
                    || self.functions.values().any(|m| m.contains_key(b))
            })
    }

    /// Whether `name` (unqualified) is a built-in function or an SQL construct the
    /// parser reports as a call.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtins.contains(name)
            || SQL_FORMS.contains(&name)
            || (!self.ever_loaded && COMMON.contains(&name))
    }
}

/// Constructs `sqlparser` reports as function calls that are not in `pg_proc`.
const SQL_FORMS: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "current_catalog",
    "current_schema",
    "system_user",
    "grouping",
    "row",
    "trim",
    "xmlelement",
    "xmlforest",
    "xmlconcat",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmlexists",
    "json_object",
    "json_array",
    "json_objectagg",
    "json_arrayagg",
    "json_scalar",
    "json_serialize",
    "json_query",
    "json_value",
    "json_exists",
    "merge_action",
];

/// Built-ins taken as such before the catalog was ever read.
const COMMON: &[&str] = &[
    "count", "sum", "avg", "min", "max", "now", "lower", "upper", "length", "abs", "round",
    "random", "version",
];

/// Classifies a view body (a query).
pub fn view_body(def: &str) -> PgStatement {
    let mut out = PgStatement::default();
    match classify::classify(def, 10_000) {
        Ok(all) => {
            for c in all {
                merge(&mut out, &c.stmt);
            }
        }
        Err(e) => out.unresolved = Some(e.to_string()),
    }
    if out.kind == PgKind::Unparsed || out.parse_error.is_some() {
        out.unresolved.get_or_insert_with(|| {
            format!(
                "the view's definition was not understood: {}",
                out.parse_error.clone().unwrap_or_default()
            )
        });
    }
    out
}

/// Classifies one function body in language `lang`.
pub fn function_body(qualified: &str, lang: &str, src: &str, config: &[String]) -> Function {
    let mut f = Function::default();
    match lang {
        "sql" => match classify::classify(src, 10_000) {
            Ok(all) => {
                for c in all {
                    if c.stmt.kind == PgKind::Unparsed {
                        f.body.unresolved.get_or_insert_with(|| {
                            format!("a statement of function `{qualified}` was not understood")
                        });
                    }
                    merge(&mut f.body, &c.stmt);
                }
            }
            Err(e) => f.body.unresolved = Some(e.to_string()),
        },
        "plpgsql" => plpgsql::classify(qualified, src, &mut f.body),
        // Compiled code installed by a superuser (extensions): no SQL to read. Untrusted
        // languages are flagged when a function is created in them.
        "internal" | "c" => {}
        other => {
            f.body.unresolved = Some(format!(
                "function `{qualified}` is written in `{other}`, whose body the gateway does not read"
            ));
        }
    }
    for setting in config {
        let (k, v) = setting.split_once('=').unwrap_or((setting.as_str(), ""));
        match k.trim().to_lowercase().as_str() {
            "role" | "session_authorization" => {
                f.body
                    .privilege_change
                    .get_or_insert_with(|| "set_role".into());
            }
            "search_path" => f.search_path = Some(classify::parse_path(v)),
            _ => {}
        }
    }
    f
}

/// How destructive a kind is, for a statement whose functions do more than it says.
pub fn weight(kind: PgKind) -> u8 {
    match kind {
        PgKind::Drop => 6,
        PgKind::Truncate => 5,
        PgKind::Delete => 4,
        PgKind::Update => 3,
        PgKind::Merge => 2,
        PgKind::Insert => 1,
        _ => 0,
    }
}

/// Adds what `from` does to `into`: lists, flags, the strongest data change.
pub fn merge(into: &mut PgStatement, from: &PgStatement) {
    for (a, b) in [
        (&mut into.tables_read, &from.tables_read),
        (&mut into.tables_written, &from.tables_written),
        (&mut into.columns, &from.columns),
        (&mut into.functions, &from.functions),
        (&mut into.dangerous, &from.dangerous),
    ] {
        for x in b {
            if !a.contains(x) {
                a.push(x.clone());
            }
        }
    }
    if weight(from.kind) > weight(into.kind) {
        into.kind = from.kind;
        into.has_where = from.has_where;
        into.ddl_target.clone_from(&from.ddl_target);
    } else if into.kind == PgKind::Other && from.kind == PgKind::Select {
        into.kind = PgKind::Select;
    }
    if into.privilege_change.is_none() {
        into.privilege_change.clone_from(&from.privilege_change);
    }
    if into.unresolved.is_none() {
        into.unresolved.clone_from(&from.unresolved);
    }
    if into.parse_error.is_none() {
        into.parse_error.clone_from(&from.parse_error);
    }
}
