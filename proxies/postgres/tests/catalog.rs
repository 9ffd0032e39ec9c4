//! What a statement reaches, resolved against the real catalog: views over a secret
//! table, views of views, SQL and PL/pgSQL functions, dynamic SQL, `search_path`,
//! database-qualified names and `TABLE` in a CTE, each tried through the gateway
//! with `psql` against a real PostgreSQL and judged from the database side (the
//! secret is absent from what the client received, the rows are still there). Then
//! the catalog made unreadable: statements that need it are `unresolved` and blocked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{Harness, Postgres, all, ok};

const SECRET: &str = "s3cr3t-7f4a9";

const POLICY: &str = r#"default allow

rule no_secret_reads {
  when pg.statement.tables_read intersects ["public.secrets"]
  then block "the secrets table is not readable"
}

rule no_deletes {
  when pg.statement.kind == delete
  then block "no deletes"
}

rule no_dynamic_sql {
  when pg.statement.dangerous contains "dynamic_sql"
  then block "dynamic SQL"
}
"#;

fn setup(pg: &Postgres) {
    let s = format!("insert into secrets values (1, '{SECRET}'), (2, '{SECRET}-2')");
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table secrets (id int, s text)",
        "-c",
        &s,
        "-c",
        "create table orders (id int, note text)",
        "-c",
        "insert into orders values (1, 'ok')",
        "-c",
        "create view v_secrets as select id, s from secrets",
        "-c",
        "create view v_v as select s from v_secrets",
        "-c",
        "create function peek() returns setof text language sql as 'select s from secrets'",
        "-c",
        "create function wipe() returns int language plpgsql as $$ begin delete from secrets; return 1; end $$",
        "-c",
        "create function dyn(t text) returns int language plpgsql as $$ begin execute format('delete from %I', t); return 1; end $$",
        "-c",
        "create schema vault",
        "-c",
        "create table vault.secrets (id int, s text)",
        "-c",
        "create view vault.passthrough as select s from public.secrets",
        "-c",
        "create table vault.notes (s text)",
        "-c",
        "create view notes as select s from secrets",
    ]));
}

fn secret_rows(pg: &Postgres) -> String {
    ok(&pg.psql_app(&["-At", "-c", "select count(*) from secrets"]))
        .trim()
        .to_owned()
}

#[test]
fn every_way_of_reaching_a_secret_is_judged_from_the_catalog() {
    let h = Harness::start_with(POLICY, support::Options::default(), setup);
    // The policy lets ordinary statements through (the test can fail).
    let out = ok(&h.psql(&["-At", "-c", "select note from orders"]));
    assert_eq!(out.trim(), "ok");
    let reads = [
        "select * from secrets",
        "select * from v_secrets",
        "select * from v_v",
        "select * from peek()",
        "select peek()",
        "with x as (table secrets) select * from x",
        "select * from (table secrets) t",
        "select 1, 'x' union all table secrets",
        "select * from app.public.secrets",
        "copy (table secrets) to stdout",
        "select * from vault.passthrough",
        "set search_path = vault, public; select * from passthrough",
        "set search_path = public; select * from secrets",
        "select * from orders where exists (select 1 from v_secrets)",
        "prepare p as select * from v_v; execute p",
        // `notes` is the harmless vault.notes only while the path says so.
        "begin; set local search_path = vault, public; commit; select * from notes",
        "begin; set search_path = vault, public; rollback; select * from notes",
        "begin; savepoint a; set search_path = vault, public; rollback to a; select * from notes; commit",
    ];
    let mut failures = Vec::new();
    for sql in reads {
        let out = all(&h.psql(&["-At", "-c", sql]));
        if out.contains(SECRET) {
            failures.push(format!("`{sql}` read the secret: {out}"));
        } else if !out.contains("secrets table is not readable") {
            failures.push(format!("`{sql}` was not refused by the rule: {out}"));
        }
    }
    let before = secret_rows(&h.pg);
    assert_eq!(before, "2");
    for sql in [
        "select wipe()",
        "select * from wipe()",
        "delete from v_secrets",
        "select dyn('secrets')",
    ] {
        let out = all(&h.psql(&["-At", "-c", sql]));
        if secret_rows(&h.pg) != before {
            failures.push(format!("`{sql}` deleted rows: {out}"));
        }
        if !out.contains("ERROR") {
            failures.push(format!("`{sql}` was not refused: {out}"));
        }
    }
    // A table of the same name in another schema is not the secret one.
    let out = all(&h.psql(&["-At", "-c", "select count(*) from vault.secrets"]));
    if out.trim() != "0" {
        failures.push(format!("vault.secrets was refused: {out}"));
    }
    // A view the gateway has read, replaced elsewhere to show the secret: DDL that
    // then passes through the gateway invalidates the reading, so the next statement
    // sees the new definition (not after the TTL).
    ok(&h.psql(&["-c", "create view flip as select note from orders"]));
    let out = ok(&h.psql(&["-At", "-c", "select * from flip"]));
    assert_eq!(out.trim(), "ok");
    ok(&h.pg.psql_app(&[
        "-c",
        "create or replace view flip as select s as note from secrets",
    ]));
    ok(&h.psql(&["-c", "create table unrelated (a int)"]));
    let out = all(&h.psql(&["-At", "-c", "select * from flip"]));
    if out.contains(SECRET) || !out.contains("not readable") {
        failures.push(format!(
            "a view replaced elsewhere leaked after gateway DDL: {out}"
        ));
    }
    // A view created elsewhere is found by the reading done on an unknown name.
    ok(&h
        .pg
        .psql_app(&["-c", "create view elsewhere as select s from secrets"]));
    let out = all(&h.psql(&["-At", "-c", "select * from elsewhere"]));
    if out.contains(SECRET) || !out.contains("not readable") {
        failures.push(format!("a view created elsewhere leaked: {out}"));
    }
    // Renames are judged (the relation is written) and followed.
    let out = all(&h.psql(&["-At", "-c", "alter table v_v rename to v_renamed"]));
    assert!(out.contains("ALTER TABLE"), "{out}");
    let out = all(&h.psql(&["-At", "-c", "select * from v_renamed"]));
    if out.contains(SECRET) || !out.contains("not readable") {
        failures.push(format!("a renamed view leaked: {out}"));
    }
    let out = all(&h.psql(&["-At", "-c", "alter schema vault rename to attic"]));
    assert!(out.contains("ALTER SCHEMA"), "{out}");
    let out = all(&h.psql(&["-At", "-c", "select * from attic.passthrough"]));
    if out.contains(SECRET) || !out.contains("not readable") {
        failures.push(format!("a view in a renamed schema leaked: {out}"));
    }
    let judged = h.statements();
    let rename = judged.iter().find(|(t, _)| t.contains("rename to attic"));
    match rename {
        Some((_, s)) if s.tables_written.contains(&"vault.passthrough".to_owned()) => {}
        other => failures.push(format!(
            "the schema rename was not judged as writing its relations: {other:?}"
        )),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_unreadable_catalog_makes_statements_unresolved_and_they_are_blocked() {
    // The catalog is read from a port nothing listens on.
    let options = support::Options {
        catalog_upstream: Some(format!("127.0.0.1:{}", gatehouse_testkit::free_port())),
        ..support::Options::default()
    };
    let policy = format!(
        "{POLICY}\nrule unresolved {{\n  when pg.statement.unresolved exists\n  then block \"unresolved\"\n}}\n"
    );
    let h = Harness::start_with(&policy, options, setup);
    // Statements that need no catalog still run.
    let out = ok(&h.psql(&["-At", "-c", "select 1"]));
    assert_eq!(out.trim(), "1");
    for sql in [
        "select * from v_secrets",
        "select * from orders",
        "select peek()",
        "select wipe()",
    ] {
        let out = all(&h.psql(&["-At", "-c", sql]));
        assert!(!out.contains(SECRET), "`{sql}` read the secret: {out}");
        assert!(
            out.contains("unresolved"),
            "`{sql}` was not refused as unresolved: {out}"
        );
    }
    assert_eq!(secret_rows(&h.pg), "2", "rows were deleted");
    let events = h.statements();
    let (_, s) = events
        .iter()
        .find(|(text, _)| text.contains("v_secrets"))
        .expect("an event for the view read");
    let why = s.unresolved.as_deref().unwrap_or_default();
    assert!(why.contains("catalog could not be read"), "{s:?}");
}
