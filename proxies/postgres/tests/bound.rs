//! `limit rows N`: a statement that changes more rows than the policy allows is undone
//! and refused, whatever its text, in and out of transaction blocks, over the simple
//! and the extended protocol. Every case is judged from the database side: the rows
//! still there, counted directly, not through the gateway.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod support;

use gatehouse_events::payload::{Payload, ResultStatus};
use support::{Harness, Postgres, all, ok};

const RULES: &str = r#"
default allow
rule bound_changes {
  when pg.statement.kind in [select, update, delete, merge]
  then limit rows 3
}
"#;

fn setup(pg: &Postgres) {
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table t (id int primary key, v text not null default 'a')",
        "-c",
        "create table child (id int primary key, t_id int references t(id) on delete cascade)",
        "-c",
        "create table audit (n int)",
        "-c",
        "create function purge() returns int language sql as $$ delete from t returning 1 $$",
        "-c",
        "create function log_change() returns trigger language plpgsql as $$ begin insert into audit select g from generate_series(1, 5) g; return null; end $$",
    ]));
}

/// Puts t back to ten rows (and child to ten rows referencing them).
fn reset(pg: &Postgres) {
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "drop trigger if exists t_log on t",
        "-c",
        "delete from child",
        "-c",
        "delete from t",
        "-c",
        "delete from audit",
        "-c",
        "insert into t select g, 'a' from generate_series(1, 10) g",
        "-c",
        "insert into child select g, g from generate_series(1, 10) g",
    ]));
}

/// `select` run directly on the database (not through the gateway).
fn direct(pg: &Postgres, sql: &str) -> String {
    ok(&pg.psql_app(&["-At", "-c", sql])).trim().to_owned()
}

fn rows(pg: &Postgres) -> String {
    direct(
        pg,
        "select count(*) || '/' || count(*) filter (where v = 'a') from t",
    )
}

#[test]
fn statements_changing_more_rows_than_allowed_are_undone() {
    let h = Harness::start_with(RULES, support::Options::default(), setup);
    // (what a client sends through psql -c / a script, what must be left in t as
    // "rows/unchanged", whether the client must see the 54000 refusal)
    let cases: &[(&str, &[&str], &str, bool)] = &[
        (
            "a delete within the bound runs",
            &["-c", "delete from t where id = 1"],
            "9/9",
            false,
        ),
        (
            "an unfiltered delete",
            &["-c", "delete from t"],
            "10/10",
            true,
        ),
        (
            "a tautological filter",
            &["-c", "delete from t where id = id"],
            "10/10",
            true,
        ),
        (
            "a filter that holds for every row",
            &["-c", "delete from t where id > 0"],
            "10/10",
            true,
        ),
        ("an update", &["-c", "update t set v = 'b'"], "10/10", true),
        (
            "a merge",
            &[
                "-c",
                "merge into t using (select 1) s on true when matched then delete",
            ],
            "10/10",
            true,
        ),
        (
            "a writable CTE hidden in a select",
            &[
                "-c",
                "with d as (delete from t returning *) select count(*) from d",
            ],
            "10/10",
            true,
        ),
        (
            "a function that deletes",
            &["-c", "select purge()"],
            "10/10",
            true,
        ),
        (
            "several small statements in one string",
            &[
                "-c",
                "delete from t where id = 1; delete from t where id = 2; delete from t where id between 3 and 4",
            ],
            "10/10",
            true,
        ),
        (
            "a prepared statement",
            &["-c", "prepare p as delete from t", "-c", "execute p"],
            "10/10",
            true,
        ),
        (
            "inside the client's transaction, then COMMIT",
            &["-c", "begin", "-c", "delete from t", "-c", "commit"],
            "10/10",
            true,
        ),
        (
            "a savepoint taken before it undoes it",
            &[
                "-c",
                "begin",
                "-c",
                "savepoint s",
                "-c",
                "delete from t",
                "-c",
                "rollback to savepoint s",
                "-c",
                "delete from t where id = 1",
                "-c",
                "commit",
            ],
            "9/9",
            true,
        ),
        (
            "within the bound inside a transaction, committed",
            &[
                "-c",
                "begin",
                "-c",
                "delete from t where id = 1",
                "-c",
                "delete from t where id = 2",
                "-c",
                "commit",
            ],
            "8/8",
            false,
        ),
        (
            "a cascade through a foreign key",
            &["-c", "delete from t where id <= 2"],
            "10/10",
            true,
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, want, refused) in cases {
        reset(&h.pg);
        let mut a = vec!["-v", "VERBOSITY=verbose"];
        a.extend_from_slice(args);
        let out = h.psql(&a);
        let text = all(&out);
        let got = rows(&h.pg);
        let saw = text.contains("54000");
        if got != *want || saw != *refused {
            failures.push(format!(
                "{what}: rows {got}, want {want}; refused {saw}, want {refused}\n{text}"
            ));
        }
    }
    // A trigger's changes count too: one row changed by the statement, five by the
    // trigger it fires.
    reset(&h.pg);
    ok(&h.pg.psql_app(&[
        "-c",
        "create trigger t_log after update on t for each row execute function log_change()",
    ]));
    let text = all(&h.psql(&[
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "update t set v = 'c' where id = 1",
    ]));
    let got = direct(&h.pg, "select count(*) from audit")
        + "/"
        + &direct(&h.pg, "select count(*) from t where v = 'c'");
    if got != "0/0" || !text.contains("54000") {
        failures.push(format!(
            "a trigger's changes: audit/changed {got}, want 0/0\n{text}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The session stays usable and transaction state is right after a refusal.
    reset(&h.pg);
    let out = h.psql(&["-c", "delete from t", "-c", "select 'still here'"]);
    assert!(all(&out).contains("still here"), "{}", all(&out));
    let out = h.psql(&["-c", "begin", "-c", "delete from t", "-c", "select 1"]);
    assert!(
        all(&out).contains("current transaction is aborted"),
        "a refusal inside a block fails the block, as any error does: {}",
        all(&out)
    );

    // The refusal is in the log: the result of the undone statement is `refused`.
    let refused = h
        .events()
        .iter()
        .filter(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused && r.code.as_deref() == Some("54000")))
        .count();
    assert!(refused >= 5, "refused results in the log: {refused}");
    let decided = h
        .events()
        .iter()
        .any(|e| matches!(&e.payload, Payload::DecisionMade(d) if d.row_limit == Some(3)));
    assert!(decided, "the decision records the bound");
}

#[test]
fn the_bound_holds_over_the_extended_protocol() {
    let h = Harness::start_with(RULES, support::Options::default(), setup);
    reset(&h.pg);
    let script = r#"
import sys, psycopg
def run(autocommit, steps):
    conn = psycopg.connect(sys.argv[1], autocommit=autocommit)
    out = []
    for sql, params in steps:
        try:
            cur = conn.execute(sql, params)
            out.append("ok %s" % cur.rowcount)
        except psycopg.Error as e:
            out.append("err %s" % e.sqlstate)
            if not autocommit:
                conn.rollback()
    if not autocommit:
        try:
            conn.commit()
        except psycopg.Error as e:
            out.append("commit err %s" % e.sqlstate)
    conn.close()
    print(" | ".join(out))
run(True, [("delete from t where id > %s", (0,)), ("delete from t where id = %s", (1,))])
run(False, [("delete from t where id = %s", (2,)), ("update t set v = %s", ("z",))])
run(False, [("delete from t where id = %s", (3,)), ("delete from t where id = %s", (4,))])
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    try:
        with conn.pipeline():
            conn.execute("delete from t where id >= %s", (5,))
            conn.execute("select %s", (1,))
    except psycopg.Error as e:
        print("pipeline err", e.sqlstate)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(h.dsn(&h.token()))
        .output()
        .unwrap();
    let text = all(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("err 54000 | ok 1"),
        "autocommit: the wide delete is undone, the narrow one runs: {text}"
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("ok 1 | err 54000"),
        "a transaction whose update exceeds is rolled back whole: {text}"
    );
    assert_eq!(lines.get(2).copied(), Some("ok 1 | ok 1"), "{text}");
    assert!(text.contains("pipeline err 54000"), "{text}");
    // id 1 (autocommit), 3 and 4 (committed) are gone; 2 was rolled back with the
    // exceeded update; the pipelined wide delete was undone.
    assert_eq!(
        direct(
            &h.pg,
            "select string_agg(id::text, ',' order by id) || ' ' || count(*) filter (where v = 'a') from t"
        ),
        "2,5,6,7,8,9,10 7",
        "{text}"
    );
}
