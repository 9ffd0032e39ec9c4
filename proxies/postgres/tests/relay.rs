//! The relay with real clients: psql through the gateway against a real PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use gatehouse_events::payload::{Payload, ResultStatus};
use support::{Harness, all, ok, starter};

#[test]
fn psql_runs_allowed_statements_and_refuses_blocked_ones_keeping_the_session() {
    let h = Harness::start(&starter());
    let out = h.psql(&["-At", "-c", "select 1 + 1 as two"]);
    assert_eq!(ok(&out).trim(), "2");

    // One psql session: a refused statement, then more work on the same connection.
    let out = h.psql(&[
        "-At",
        "-c",
        "create table app_orders (id int primary key, note text)",
        "-c",
        "insert into app_orders values (1, 'a'), (2, 'b')",
        "-c",
        "delete from app_orders",
        "-c",
        "select count(*) from app_orders",
    ]);
    let text = all(&out);
    assert!(
        text.contains("destructive statements need a change ticket"),
        "{text}"
    );
    assert!(text.contains("ERROR:  destructive"), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim_end().ends_with('2'),
        "rows survived and the session went on: {text}"
    );

    let stmts = h.statements();
    let kinds: Vec<&str> = stmts.iter().map(|(_, s)| s.kind.as_str()).collect();
    assert!(
        kinds.contains(&"create") && kinds.contains(&"delete"),
        "{kinds:?}"
    );
    let refused = h
        .events()
        .into_iter()
        .filter(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused))
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn one_blocked_statement_blocks_the_whole_string() {
    let h = Harness::start(&starter());
    ok(&h.psql(&["-c", "create table t (a int)"]));
    let out = h.psql(&[
        "-c",
        "insert into t values (1); drop table t; insert into t values (2)",
    ]);
    assert!(all(&out).contains("destructive"), "{}", all(&out));
    let out = h.psql(&["-At", "-c", "select count(*) from t"]);
    assert_eq!(ok(&out).trim(), "0", "nothing of the string ran");
}

#[test]
fn bad_tokens_are_refused() {
    let h = Harness::start(&starter());
    let out = h
        .psql_cmd("not-a-token")
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(all(&out).contains("not a valid token"), "{}", all(&out));
    // A token for another target, when the client names this one.
    let other = h.token_for("agent:test", "other-db", std::time::Duration::from_secs(60));
    let out = h
        .psql_cmd(&other)
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(
        all(&out).contains("is for target `other-db`"),
        "{}",
        all(&out)
    );
}
