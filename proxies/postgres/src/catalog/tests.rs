#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use gatehouse_events::payload::{PgKind, PgStatement};

use super::snapshot::{self, RelKind, Relation, Snapshot};
use crate::classify::{SessionSql, classify};

fn snap() -> Snapshot {
    let mut relations: HashMap<String, HashMap<String, Relation>> = HashMap::new();
    let mut add = |schema: &str, name: &str, kind, def: Option<&str>| {
        relations.entry(schema.into()).or_default().insert(
            name.into(),
            Relation {
                kind,
                body: def.map(snapshot::view_body),
            },
        );
    };
    add("public", "secrets", RelKind::Table, None);
    add("public", "orders", RelKind::Table, None);
    add("auth", "api_keys", RelKind::Table, None);
    add(
        "public",
        "v1",
        RelKind::View,
        Some(" SELECT secrets.s FROM public.secrets;"),
    );
    add(
        "public",
        "v2",
        RelKind::View,
        Some(" SELECT v1.s FROM public.v1;"),
    );
    add(
        "public",
        "vf",
        RelKind::View,
        Some(" SELECT public.peek() AS peek;"),
    );
    add("pg_catalog", "pg_class", RelKind::Table, None);
    let names = relations
        .values()
        .flat_map(|m| m.keys().cloned())
        .collect::<HashSet<_>>();
    let mut functions: HashMap<String, HashMap<String, snapshot::Function>> = HashMap::new();
    let mut f = |name: &str, lang: &str, src: &str, config: &[&str]| {
        let config: Vec<String> = config.iter().map(|s| (*s).to_owned()).collect();
        functions.entry("public".into()).or_default().insert(
            name.into(),
            snapshot::function_body(&format!("public.{name}"), lang, src, &config),
        );
    };
    f("peek", "sql", "SELECT s FROM secrets", &[]);
    f(
        "wipe",
        "plpgsql",
        "BEGIN\n  IF EXISTS (SELECT 1 FROM orders) THEN\n    DELETE FROM secrets;\n  END IF;\n  RETURN 1;\nEND",
        &[],
    );
    f(
        "dyn",
        "plpgsql",
        "BEGIN EXECUTE format('DELETE FROM %I', t); END",
        &[],
    );
    f("as_admin", "sql", "SELECT 1", &["role=postgres"]);
    f(
        "keys",
        "sql",
        "SELECT k FROM api_keys",
        &["search_path=auth"],
    );
    f("outer_fn", "sql", "SELECT peek()", &[]);
    f("py", "plpython3u", "return 1", &[]);
    Snapshot {
        relations,
        relation_names: names,
        functions,
        builtins: ["count", "lower", "now", "format"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        function_oids: std::collections::HashMap::new(),
        role_settings: Vec::new(),
        loaded: Instant::now(),
        error: None,
        ever_loaded: true,
    }
}

fn resolve(sql: &str, s: &Snapshot) -> PgStatement {
    let mut session = SessionSql::new("app");
    let mut last = PgStatement::default();
    for c in classify(sql, 100).unwrap() {
        last = session.resolve_in(&c, Some(s));
    }
    last
}

#[test]
fn views_expand_to_base_tables() {
    let s = snap();
    let r = resolve("SELECT * FROM v2", &s);
    for t in ["v2", "public.v2", "public.v1", "public.secrets"] {
        assert!(r.tables_read.contains(&t.to_owned()), "{t}: {r:?}");
    }
    assert!(r.unresolved.is_none(), "{r:?}");
    let r = resolve("DELETE FROM v1", &s);
    assert!(
        r.tables_written.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    let r = resolve("SELECT * FROM vf", &s);
    assert!(
        r.tables_read.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
}

#[test]
fn functions_are_what_their_bodies_do() {
    let s = snap();
    let r = resolve("SELECT peek()", &s);
    assert!(
        r.tables_read.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    let r = resolve("SELECT outer_fn()", &s);
    assert!(
        r.tables_read.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    let r = resolve("SELECT wipe()", &s);
    assert_eq!(
        (r.kind, r.has_where),
        (PgKind::Delete, Some(false)),
        "{r:?}"
    );
    assert!(
        r.tables_written.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    assert!(r.tables_read.contains(&"public.orders".to_owned()), "{r:?}");
    let r = resolve("SELECT public.dyn()", &s);
    assert!(r.dangerous.contains(&"dynamic_sql".to_owned()), "{r:?}");
    let r = resolve("SELECT as_admin()", &s);
    assert_eq!(r.privilege_change.as_deref(), Some("set_role"), "{r:?}");
    let r = resolve("SELECT keys()", &s);
    assert!(r.tables_read.contains(&"auth.api_keys".to_owned()), "{r:?}");
    let r = resolve("SELECT py()", &s);
    assert!(r.unresolved.is_some(), "{r:?}");
    let r = resolve("SELECT nosuch(1)", &s);
    assert!(r.unresolved.is_some(), "{r:?}");
    let r = resolve(
        "SELECT count(*), lower('A'), coalesce(1, 2) FROM orders",
        &s,
    );
    assert!(r.unresolved.is_none(), "{r:?}");
}

#[test]
fn search_path_picks_the_first_schema_holding_the_name() {
    let s = snap();
    let r = resolve("SET search_path = auth, public; SELECT * FROM api_keys", &s);
    assert!(r.tables_read.contains(&"auth.api_keys".to_owned()), "{r:?}");
    let r = resolve("SELECT * FROM pg_class", &s);
    assert!(
        r.tables_read.contains(&"pg_catalog.pg_class".to_owned()),
        "{r:?}"
    );
}

#[test]
fn an_unreadable_catalog_leaves_only_known_tables_resolved() {
    let mut s = snap();
    s.error = Some("connection refused".into());
    assert!(resolve("SELECT * FROM secrets", &s).unresolved.is_none());
    assert!(resolve("SELECT 1", &s).unresolved.is_none());
    assert!(resolve("SELECT * FROM v1", &s).unresolved.is_some());
    assert!(resolve("SELECT peek()", &s).unresolved.is_some());
    assert!(resolve("SELECT * FROM newtable", &s).unresolved.is_some());
    let never = Snapshot::unreadable("connection refused".into());
    let r = resolve("SELECT * FROM secrets", &never);
    assert!(
        r.unresolved
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{r:?}"
    );
}

#[test]
fn ddl_earlier_in_the_batch_makes_later_names_unresolved() {
    let s = snap();
    let r = resolve(
        "CREATE OR REPLACE VIEW v1 AS SELECT * FROM orders; SELECT * FROM v1",
        &s,
    );
    assert!(r.unresolved.is_some(), "{r:?}");
}

#[test]
fn plpgsql_statements_are_found() {
    let mut out = PgStatement::default();
    super::plpgsql::classify(
        "f",
        "DECLARE n int; BEGIN\n SELECT count(*) INTO n FROM a;\n FOR r IN SELECT * FROM b LOOP\n  UPDATE c SET x = 1 WHERE id = r.id;\n END LOOP;\n INSERT INTO d VALUES (1) RETURNING id INTO n;\n PERFORM pg_sleep(1);\n RETURN n;\nEND",
        &mut out,
    );
    for t in ["a", "b"] {
        assert!(out.tables_read.contains(&t.to_owned()), "{t}: {out:?}");
    }
    for t in ["c", "d"] {
        assert!(out.tables_written.contains(&t.to_owned()), "{t}: {out:?}");
    }
    assert_eq!(out.kind, PgKind::Update, "{out:?}");
    assert!(out.unresolved.is_none(), "{out:?}");
}

#[test]
fn renames_are_judged_as_writes_of_the_relation() {
    let s = snap();
    let r = resolve("ALTER TABLE secrets RENAME TO s2", &s);
    assert_eq!(r.ddl_target.as_deref(), Some("secrets"));
    assert!(
        r.tables_written.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    // Renaming a view is not a read of its base tables.
    let r = resolve("ALTER TABLE v1 RENAME TO v9", &s);
    assert!(
        !r.tables_read
            .iter()
            .chain(&r.tables_written)
            .any(|t| t == "public.secrets"),
        "{r:?}"
    );
    let r = resolve("ALTER SCHEMA auth RENAME TO auth2", &s);
    assert_eq!(r.ddl_target.as_deref(), Some("auth"));
    assert_eq!(r.tables_written, ["auth.api_keys"], "{r:?}");
}

#[test]
fn procedures_called_are_what_their_bodies_do() {
    let s = snap();
    let r = resolve("CALL wipe()", &s);
    assert!(
        r.tables_written.contains(&"public.secrets".to_owned()),
        "{r:?}"
    );
    let r = resolve("SELECT * FROM public.wipe() AS w", &s);
    assert_eq!(r.kind, PgKind::Delete, "{r:?}");
}
