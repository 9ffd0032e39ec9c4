//! Expands a classified statement with what the catalog says its names are: relations
//! resolved to canonical `schema.name` through the search path, views to their base
//! relations, calls of user-defined functions to what their bodies do, recursively.
//! Additive: names as written stay in the lists, so rules written either way match.

use std::collections::HashSet;

use gatehouse_events::payload::{PgKind, PgStatement};

use super::snapshot::{RelKind, Snapshot, weight};
use crate::classify;

/// Most objects expanded for one statement (deeper nesting is unresolved).
const MAX_STEPS: usize = 10_000;

struct Cx<'a> {
    snap: &'a Snapshot,
    user: &'a str,
    doubt: Option<&'a str>,
}

impl Cx<'_> {
    fn unsure(&self, what: &str) -> Option<String> {
        self.doubt.map(|d| format!("{d}, and {what}"))
    }
}

enum Item {
    Relation {
        name: String,
        written: bool,
        /// Whether a view's body is followed (not for the object of DDL: renaming
        /// or dropping a view neither reads nor writes its base tables).
        expand: bool,
        path: Option<Vec<String>>,
    },
    Function {
        name: String,
        path: Option<Vec<String>>,
    },
}

/// Expands `stmt` against `snap`. `path` is the session's search path (`None` when
/// the gateway cannot tell it: unqualified names are then left as written), `user`
/// stands for `$user`. `doubt`: why the reading may not hold (relations not known
/// as plain tables and user-defined functions are then unresolved), besides the
/// catalog being unreadable.
pub fn reach(
    stmt: &mut PgStatement,
    snap: &Snapshot,
    path: Option<&[String]>,
    user: &str,
    doubt: Option<&str>,
) {
    if snap.error.is_none() && doubt.is_none() && plain(stmt, snap, path, user) {
        return;
    }
    let doubt = snap
        .error
        .as_ref()
        .map(|e| format!("the catalog could not be read ({e})"))
        .or(doubt.map(str::to_owned));
    let cx = Cx {
        snap,
        user,
        doubt: doubt.as_deref(),
    };
    let path = path.map(<[String]>::to_vec);
    let mut work = Vec::new();
    let ddl = matches!(
        stmt.kind,
        PgKind::Alter | PgKind::Drop | PgKind::Create | PgKind::Grant | PgKind::Revoke
    );
    let object = |t: &String| ddl && stmt.ddl_target.as_ref() == Some(t);
    for t in &stmt.tables_read {
        work.push(Item::Relation {
            name: t.clone(),
            written: false,
            expand: !object(t),
            path: path.clone(),
        });
    }
    for t in &stmt.tables_written {
        work.push(Item::Relation {
            name: t.clone(),
            written: true,
            expand: !object(t),
            path: path.clone(),
        });
    }
    // `ALTER SCHEMA s RENAME ...` changes the name of every relation in it.
    if stmt.kind == PgKind::Alter
        && let Some(schema) = stmt.ddl_target.as_deref()
        && !schema.contains('.')
        && let Some(rels) = snap.relations.get(schema)
    {
        let mut names: Vec<String> = rels.keys().map(|r| format!("{schema}.{r}")).collect();
        names.sort();
        for n in names {
            if !stmt.tables_written.contains(&n) {
                stmt.tables_written.push(n);
            }
        }
    }
    for f in &stmt.functions {
        // A qualified call is listed both ways; the qualified name is the call.
        let qualified_too = !f.contains('.')
            && stmt
                .functions
                .iter()
                .any(|g| g.rsplit_once('.').is_some_and(|(_, b)| b == f));
        if !qualified_too {
            work.push(Item::Function {
                name: f.clone(),
                path: path.clone(),
            });
        }
    }
    let mut seen: HashSet<(bool, String)> = HashSet::new();
    let mut steps = 0usize;
    while let Some(item) = work.pop() {
        steps += 1;
        if steps > MAX_STEPS {
            stmt.unresolved
                .get_or_insert_with(|| "views and functions nest too deeply to follow".into());
            return;
        }
        match item {
            Item::Relation {
                name,
                written,
                expand,
                path,
            } => relation(
                stmt,
                &cx,
                (&name, written, expand),
                path,
                &mut seen,
                &mut work,
            ),
            Item::Function { name, path } => {
                function(stmt, &cx, &name, path, &mut seen, &mut work);
            }
        }
    }
}

/// The common case without the walk: no function calls, and every relation a plain
/// table (or unknown); adds the canonical names and says whether that was all.
fn plain(stmt: &mut PgStatement, snap: &Snapshot, path: Option<&[String]>, user: &str) -> bool {
    if !stmt.functions.is_empty() || stmt.kind == PgKind::Alter {
        return false;
    }
    let mut found: [Option<(&str, &str, bool)>; 4] = [None; 4];
    let mut n = 0usize;
    for (t, written) in stmt
        .tables_read
        .iter()
        .map(|t| (t, false))
        .chain(stmt.tables_written.iter().map(|t| (t, true)))
    {
        let hit = match t.split_once('.') {
            Some((schema, rel)) => snap.relation(schema, rel).map(|r| (schema, rel, r)),
            None => path.and_then(|p| {
                schemas(p, user).find_map(|s| snap.relation(s, t).map(|r| (s, t.as_str(), r)))
            }),
        };
        match hit {
            Some((schema, rel, r)) if r.kind == RelKind::Table && r.body.is_none() => {
                let Some(slot) = found.get_mut(n) else {
                    return false;
                };
                *slot = Some((schema, rel, written));
                n += 1;
            }
            Some(_) => return false,
            None => {}
        }
    }
    let names: Vec<(String, bool)> = found
        .iter()
        .flatten()
        .map(|(s, r, w)| (format!("{s}.{r}"), *w))
        .collect();
    for (name, written) in names {
        let list = if written {
            &mut stmt.tables_written
        } else {
            &mut stmt.tables_read
        };
        push(list, name);
    }
    true
}

fn push(list: &mut Vec<String>, s: String) {
    if !list.contains(&s) {
        list.push(s);
    }
}

/// The schemas an unqualified name is looked up in, in order.
fn schemas<'a>(path: &'a [String], user: &'a str) -> impl Iterator<Item = &'a str> {
    let implicit = (!path.iter().any(|s| s == "pg_catalog")).then_some("pg_catalog");
    implicit.into_iter().chain(path.iter().map(
        move |s| {
            if s == "$user" { user } else { s.as_str() }
        },
    ))
}

fn relation(
    stmt: &mut PgStatement,
    cx: &Cx<'_>,
    (name, written, expand): (&str, bool, bool),
    path: Option<Vec<String>>,
    seen: &mut HashSet<(bool, String)>,
    work: &mut Vec<Item>,
) {
    let (snap, user) = (cx.snap, cx.user);
    let found = match name.split_once('.') {
        Some((schema, rel)) => snap
            .relation(schema, rel)
            .map(|r| (format!("{schema}.{rel}"), r)),
        None => path.as_deref().and_then(|p| {
            schemas(p, user)
                .find_map(|s| snap.relation(s, name).map(|r| (format!("{s}.{name}"), r)))
        }),
    };
    let list = if written {
        &mut stmt.tables_written
    } else {
        &mut stmt.tables_read
    };
    let Some((canonical, rel)) = found else {
        push(list, name.to_owned());
        if let Some(u) = cx.unsure(&format!("`{name}` is not known")) {
            stmt.unresolved.get_or_insert(u);
        }
        return;
    };
    push(list, canonical.clone());
    if rel.kind != RelKind::Table
        && let Some(u) = cx.unsure(&format!("`{canonical}` is not known to be a plain table"))
    {
        stmt.unresolved.get_or_insert(u);
    }
    if !expand || !seen.insert((written, canonical)) {
        return;
    }
    let Some(body) = &rel.body else { return };
    for t in body.tables_read.iter().chain(&body.tables_written) {
        work.push(Item::Relation {
            name: t.clone(),
            written,
            expand: true,
            path: Some(Vec::new()),
        });
    }
    for f in &body.functions {
        if f.contains('.') || !body.functions.iter().any(|g| g.ends_with(&format!(".{f}"))) {
            // Qualified by `pg_get_viewdef`; its body runs under the caller's path.
            work.push(Item::Function {
                name: f.clone(),
                path: path.clone(),
            });
        }
    }
    for d in &body.dangerous {
        push(&mut stmt.dangerous, d.clone());
    }
    if let Some(u) = &body.unresolved {
        stmt.unresolved.get_or_insert_with(|| u.clone());
    }
}

fn function(
    stmt: &mut PgStatement,
    cx: &Cx<'_>,
    name: &str,
    path: Option<Vec<String>>,
    seen: &mut HashSet<(bool, String)>,
    work: &mut Vec<Item>,
) {
    let (snap, user) = (cx.snap, cx.user);
    let found = match name.split_once('.') {
        Some(("pg_catalog", _)) => return,
        Some((schema, f)) => snap
            .function(schema, f)
            .map(|x| (format!("{schema}.{f}"), x)),
        None => {
            let mut found = None;
            if let Some(p) = path.as_deref() {
                for s in schemas(p, user) {
                    if s == "pg_catalog" && snap.is_builtin(name) {
                        return;
                    }
                    if let Some(f) = snap.function(s, name) {
                        found = Some((format!("{s}.{name}"), f));
                        break;
                    }
                }
            }
            found
        }
    };
    let Some((canonical, f)) = found else {
        let bare = name.rsplit('.').next().unwrap_or(name);
        if snap.is_builtin(bare) || classify::dangerous_function(bare).is_some() {
            return;
        }
        let why = cx
            .unsure(&format!("function `{name}` is not known"))
            .unwrap_or_else(|| format!("function `{name}` is not in the catalog"));
        stmt.unresolved.get_or_insert(why);
        return;
    };
    push(&mut stmt.functions, canonical.clone());
    if let Some(u) = cx.unsure(&format!("`{canonical}` is a user-defined function")) {
        stmt.unresolved.get_or_insert(u);
    }
    if !seen.insert((false, format!("{canonical}()"))) {
        return;
    }
    let body = &f.body;
    let inner = f.search_path.clone().or(path);
    for (t, written) in body
        .tables_read
        .iter()
        .map(|t| (t, false))
        .chain(body.tables_written.iter().map(|t| (t, true)))
    {
        work.push(Item::Relation {
            name: t.clone(),
            written,
            expand: true,
            path: inner.clone(),
        });
    }
    for g in &body.functions {
        if g.contains('.') || !body.functions.iter().any(|h| h.ends_with(&format!(".{g}"))) {
            work.push(Item::Function {
                name: g.clone(),
                path: inner.clone(),
            });
        }
    }
    for d in &body.dangerous {
        push(&mut stmt.dangerous, d.clone());
    }
    if weight(body.kind) > weight(stmt.kind) {
        stmt.kind = body.kind;
        stmt.has_where = body.has_where;
        if stmt.ddl_target.is_none() {
            stmt.ddl_target.clone_from(&body.ddl_target);
        }
    }
    if stmt.privilege_change.is_none() {
        stmt.privilege_change.clone_from(&body.privilege_change);
    }
    if let Some(u) = &body.unresolved {
        stmt.unresolved.get_or_insert_with(|| u.clone());
    }
}
