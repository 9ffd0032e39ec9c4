//! The bypass corpus: statements that try to slip past the starter policy with
//! comments, dollar quoting, Unicode escapes, several statements, CTE-wrapped DML,
//! prepared statements, case tricks, the search path, EXPLAIN ANALYZE, constant
//! WHEREs and more. Each must be refused (blocked, or held and then denied) and
//! nothing it asked for may happen.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{Harness, Postgres, all, ok, starter};

/// How the starter policy must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Block,
    Hold,
}

const CORPUS: &[(&str, Want)] = &[
    // Comments.
    ("DELETE /* harmless */ FROM orders", Want::Block),
    ("DELETE FROM orders -- WHERE id = 1", Want::Block),
    ("/* maintenance */ DROP TABLE orders", Want::Block),
    (
        "SELECT 1; -- nothing to see\nDROP TABLE orders",
        Want::Block,
    ),
    ("SELECT * FROM /* /* nested */ */ secrets", Want::Block),
    // Dollar quoting and strings that hide statement boundaries.
    ("SELECT $$;$$; DROP TABLE orders", Want::Block),
    ("SELECT $tag$ ' $tag$; DELETE FROM orders", Want::Block),
    (r"SELECT 'a\'; DROP TABLE orders; --'", Want::Block),
    // Unicode escapes.
    (r#"SELECT * FROM U&"\0073ecrets""#, Want::Block),
    (r#"SELECT * FROM U&"!0073ecrets" UESCAPE '!'"#, Want::Block),
    // Several statements.
    ("SELECT 1; DELETE FROM orders", Want::Block),
    ("select 1;truncate orders", Want::Block),
    // DML wrapped in CTEs.
    (
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
        Want::Block,
    ),
    (
        "WITH u AS (UPDATE orders SET note = 'x' RETURNING 1) SELECT 1",
        Want::Block,
    ),
    ("WITH s AS (SELECT * FROM secrets) SELECT 1", Want::Block),
    (
        "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets",
        Want::Block,
    ),
    // Prepared statements.
    ("PREPARE p AS DELETE FROM orders; EXECUTE p", Want::Block),
    ("EXECUTE never_prepared", Want::Block),
    // Case and quoting.
    ("DeLeTe FrOm OrDeRs", Want::Block),
    ("SELECT * FROM PUBLIC.SECRETS", Want::Block),
    (r#"SELECT * FROM "secrets""#, Want::Block),
    ("SELECT (SELECT count(*) FROM public.secrets)", Want::Block),
    // The search path.
    (
        "SET search_path = auth, public; SELECT * FROM api_keys",
        Want::Block,
    ),
    (
        "SELECT set_config('search_path', 'auth', false); SELECT * FROM api_keys",
        Want::Block,
    ),
    (
        "SELECT ext.dblink_exec('host=10.0.0.1', 'select 1')",
        Want::Hold,
    ),
    (
        "CREATE FUNCTION public.innocent() RETURNS text LANGUAGE sql AS $$ SELECT dblink_exec('host=x', 'x') $$",
        Want::Hold,
    ),
    (
        "SELECT pg_catalog.set_config('role', 'postgres', false)",
        Want::Hold,
    ),
    // Statements that run what they explain, or filter nothing.
    ("EXPLAIN ANALYZE DELETE FROM orders", Want::Block),
    ("DELETE FROM orders WHERE 1 = 1", Want::Block),
    ("UPDATE orders SET note = 'x' WHERE true", Want::Block),
    // Other doors.
    ("COPY secrets TO STDOUT", Want::Block),
    ("COPY orders FROM PROGRAM 'curl -s http://x'", Want::Hold),
    // Dynamic SQL: held for a reviewer, who sees the text.
    (
        "DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$",
        Want::Hold,
    ),
    ("SELEC * FROM orders", Want::Block),
    ("GRANT ALL ON orders TO PUBLIC", Want::Hold),
    ("SET ROLE postgres", Want::Hold),
];

fn setup(pg: &Postgres) {
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table orders (id int primary key, note text)",
        "-c",
        "insert into orders select g, 'n' from generate_series(1, 10) g",
        "-c",
        "create table secrets (k text, v text)",
        "-c",
        "insert into secrets values ('root', 'hunter2')",
        "-c",
        "create schema auth",
        "-c",
        "create table auth.api_keys (k text)",
        "-c",
        "insert into auth.api_keys values ('sk_live_123')",
    ]));
}

#[test]
fn the_starter_policy_refuses_every_bypass_attempt() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup);
    let mut failures = Vec::new();
    for (sql, want) in CORPUS {
        let mut cmd = h.psql_cmd(&h.token());
        cmd.args(["-v", "VERBOSITY=verbose", "-c", sql]);
        let out = if *want == Want::Hold {
            let child = std::thread::spawn(move || cmd.output().unwrap());
            h.decide_approval(false);
            child.join().unwrap()
        } else {
            cmd.output().unwrap()
        };
        let text = all(&out);
        let refused = text.contains("ERROR:  42501");
        let held = text.contains("held for approval") && text.contains("was denied");
        let ok = match want {
            Want::Block => refused && !text.contains("held for approval"),
            Want::Hold => held && refused,
        };
        if !ok || text.contains("hunter2") || text.contains("sk_live") {
            failures.push(format!("{sql}\n  wanted {want:?}, got:\n{text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bypass(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing happened.
    let out = ok(&h.pg.psql_app(&[
        "-At",
        "-c",
        "select count(*), count(*) filter (where note = 'n') from orders",
    ]));
    assert_eq!(out.trim(), "10|10");
    let out = ok(&h.pg.psql_app(&[
        "-At",
        "-c",
        "select count(*) from pg_proc where proname = 'innocent'",
    ]));
    assert_eq!(out.trim(), "0");
}

#[test]
fn masked_columns_stay_masked_under_aliases_and_expressions() {
    let h = Harness::start_with(&starter(), support::Options::default(), |pg| {
        ok(&pg.psql_app(&[
            "-c",
            "create table users (id int, password text)",
            "-c",
            "insert into users values (1, 'hunter2')",
        ]));
    });
    for sql in [
        "SELECT password AS p FROM users",
        "SELECT upper(password) FROM users",
        "SELECT password || '' FROM users",
        "SELECT row(password) FROM users",
        "SELECT * FROM (SELECT password AS x FROM users) s",
        "WITH c AS (SELECT password AS y FROM users) SELECT y FROM c",
        "SELECT password::text AS z FROM users",
        "SELECT id, (SELECT password FROM users LIMIT 1) AS q FROM users",
        "SELECT * FROM users",
    ] {
        let out = ok(&h.psql(&["-At", "-c", sql]));
        assert!(!out.to_lowercase().contains("hunter2"), "{sql}: {out}");
    }
}

#[test]
fn prepared_statements_across_messages_and_the_extended_protocol() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup);
    // PREPARE in one query string, EXECUTE in the next, same session.
    let out = h.psql(&[
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "PREPARE p2 AS DELETE FROM orders",
        "-c",
        "EXECUTE p2",
    ]);
    assert!(all(&out).contains("ERROR:  42501"), "{}", all(&out));
    // Extended protocol: the Parse itself is refused.
    let script = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
for sql in ["delete from orders", "select * from secrets", "with d as (delete from orders returning 1) select 1"]:
    try:
        conn.execute(sql, prepare=True)
        print("ran", sql)
    except psycopg.Error as e:
        print("refused", e.sqlstate)
print(conn.execute("select count(*) from orders").fetchone())
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(h.dsn(&h.token()))
        .output()
        .unwrap();
    let text = ok(&out);
    assert_eq!(text.matches("refused 42501").count(), 3, "{text}");
    assert!(text.contains("(10,)"), "{text}");
}
