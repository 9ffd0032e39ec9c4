//! Enforcement: masks, captures, approvals (granted, denied, expired), revocation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::time::Duration;

use gatehouse_events::payload::{Payload, ResultObserved};
use support::{Harness, Postgres, all, ok, starter};

fn setup(pg: &Postgres) {
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table users (id bigint primary key, email text, password text, card text, big bigint)",
        "-c",
        "insert into users values (1, 'a@example.com', 'hunter2', '4111-1111-1111-1111', 4111111111111111), (2, 'b@example.com', 's3cret', 'none', 7)",
        "-c",
        "create schema infra",
        "-c",
        "create table infra.hosts (hostname text, role text)",
        "-c",
        "insert into infra.hosts values ('db-1.internal', 'db'), ('bastion.internal', 'jump'), ('db-1.internal', 'db')",
    ]));
}

fn results(h: &Harness) -> Vec<ResultObserved> {
    h.events()
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::ResultObserved(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn masks_apply_by_column_and_value_and_binary_fails_closed() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup);
    let out = ok(&h.psql(&[
        "-At",
        "-c",
        "select id, email, password, card from users order by id",
    ]));
    assert_eq!(
        out,
        "1|a@example.com|****|****-****-****-1111\n2|b@example.com|****|none\n"
    );
    // Text format: the value pattern rewrites the number's text.
    let out = ok(&h.psql(&["-At", "-c", "select big from users where id = 1"]));
    assert_eq!(out.trim(), "************1111");
    // Binary format: a bigint cannot be re-encoded masked, so the result is refused;
    // a value that needs no mask passes.
    let script = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
print(conn.cursor(binary=True).execute("select big from users where id = 2").fetchall())
try:
    conn.cursor(binary=True).execute("select big from users where id = 1").fetchall()
except psycopg.Error as e:
    print("refused", e.sqlstate, e)
print(conn.execute("select 42").fetchone())
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(h.dsn(&h.token()))
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("[(7,)]"), "{text}");
    assert!(
        text.contains("refused 42501") && text.contains("binary format"),
        "{text}"
    );
    assert!(text.contains("(42,)"), "{text}");
    let logged = serde_json::to_string(&h.events()).unwrap();
    assert!(
        !logged.contains("hunter2") && !logged.contains("4111111111111111"),
        "unmasked values in the log"
    );
}

#[test]
fn captures_keep_host_names_for_sequences() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup);
    ok(&h.psql(&["-At", "-c", "select hostname, role from infra.hosts"]));
    let r = results(&h);
    let cap = r
        .iter()
        .flat_map(|r| r.captures.iter())
        .find(|c| c.name.ends_with("recon.hosts"))
        .expect("a capture");
    assert_eq!(cap.values, ["db-1.internal", "bastion.internal"]);
    assert_eq!(cap.source, "hostname");
}

const HOLD_RULES: &str = r#"
rule allow_all { when pg.statement.kind exists then allow }
rule hold_grants { when pg.statement.kind == grant then require approval from "security" timeout 2s }
"#;

#[test]
fn approvals_granted_denied_and_expired() {
    let h = Harness::start_with(HOLD_RULES, support::Options::default(), setup);
    // Granted: the NOTICE names the approval, then the statement runs.
    let token = h.token();
    let mut cmd = h.psql_cmd(&token);
    cmd.args(["-c", "grant select on users to public"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = h.decide_approval(true);
    let out = child.join().unwrap();
    let text = all(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("held for approval {id}")) && text.contains("GRANT"),
        "{text}"
    );
    // Denied.
    let mut cmd = h.psql_cmd(&token);
    cmd.args(["-c", "grant select on users to public", "-c", "select 1"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = h.decide_approval(false);
    let text = all(&child.join().unwrap());
    assert!(
        text.contains(&format!(
            "approval {id} was denied by bob@example.com: not today"
        )),
        "{text}"
    );
    // Expired (the rule's timeout is 2 s).
    let out = h.psql(&["-c", "grant select on users to public"]);
    let text = all(&out);
    assert!(!out.status.success());
    assert!(text.contains("expired before a reviewer decided"), "{text}");
}

/// Waits for a held statement's approval to appear.
fn pending(h: &Harness) -> gatehouse_core::engine::PendingApproval {
    let start = std::time::Instant::now();
    loop {
        if let Some(p) = h.engine.approvals().list().into_iter().find(|p| p.waiting) {
            return p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing was held"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the approval was withdrawn and that a reviewer can no longer grant it.
fn assert_withdrawn(h: &Harness, id: &str) {
    let start = std::time::Instant::now();
    while !h
        .events_now()
        .iter()
        .any(|e| matches!(&e.payload, Payload::ApprovalWithdrawn(w) if w.approval_id == id))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "approval {id} was not withdrawn"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let reviewer = gatehouse_core::engine::Reviewer {
        name: "bob@example.com".into(),
        groups: vec!["security".into()],
    };
    let late = h.rt.block_on(h.engine.approve(id, &reviewer, None));
    assert!(late.is_err(), "a withdrawn approval was granted");
}

/// The grant the held statement would make, read on the database itself.
fn public_can_read_users(h: &Harness) -> bool {
    ok(&h.pg.psql_app(&[
        "-At",
        "-c",
        "select coalesce(array_to_string(relacl, ','), '') from pg_class where relname = 'users'",
    ]))
    .contains("=r/")
}

#[test]
fn a_held_statement_never_runs_once_its_client_left_or_cancelled_it() {
    let h = Harness::start_with(HOLD_RULES, support::Options::default(), setup);
    let token = h.token();

    // The client dies while its statement waits for a reviewer.
    let mut child = h
        .psql_cmd(&token)
        .args(["-c", "grant select on users to public"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let held = pending(&h);
    child.kill().unwrap();
    let _ = child.wait();
    assert_withdrawn(&h, &held.id);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !public_can_read_users(&h),
        "the held GRANT ran after its client left"
    );

    // The client cancels it (psql sends a CancelRequest on SIGINT).
    let child = h
        .psql_cmd(&token)
        .args(["-c", "grant select on users to public"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = pending(&h);
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let text = all(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("canceling statement due to user request"),
        "{text}"
    );
    assert_withdrawn(&h, &held.id);
    assert!(!public_can_read_users(&h), "the cancelled GRANT ran");
}

/// The FATAL `57P01` a client connection ends with once the gateway closes its session.
async fn gateway_fatal(
    conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) -> tokio_postgres::error::DbError {
    let e = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let db = e
        .as_db_error()
        .expect("a FATAL error from the gateway")
        .clone();
    assert_eq!(db.code().code(), "57P01");
    db
}

#[test]
fn a_gateway_shutdown_closes_live_sessions_with_a_fatal_error() {
    let h = Harness::start(&starter());
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, conn) = Harness::connect(&dsn).await;
        client.simple_query("select 1").await.unwrap();
        h.shutdown();
        let db = gateway_fatal(conn).await;
        assert!(
            db.message().contains("the gateway is shutting down"),
            "{db:?}"
        );
    });
}

#[test]
fn revoking_the_token_closes_the_session() {
    let h = Harness::start(&starter());
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, conn) = Harness::connect(&dsn).await;
        client.simple_query("select 1").await.unwrap();
        let cred = h.engine.sessions()[0].credential_id.clone().unwrap();
        assert_eq!(
            h.engine
                .revoke_token(&cred, Some("admin"), None)
                .await
                .unwrap(),
            1
        );
        let db = gateway_fatal(conn).await;
        assert!(db.message().contains("credential revoked"), "{db:?}");
    });
}

/// psql's large-object commands use the function-call protocol: under a policy that
/// allows them they work (judged on the server: the object's bytes), and a rule on a
/// function's name refuses that call only.
#[test]
fn large_objects_work_through_the_gateway_and_calls_are_judged_by_name() {
    let rules = r#"
default allow
rule keep_large_objects {
  when pg.statement.functions intersects ["lo_unlink"]
  then block "large objects are kept"
}
"#;
    let h = Harness::start_with(rules, support::Options::default(), setup);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &payload).unwrap();
    let out = h.psql(&["-c", &format!("\\lo_import {}", input.display())]);
    let text = ok(&out);
    let oid: u32 = text
        .trim()
        .strip_prefix("lo_import ")
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    // On the server: the object holds the file's bytes.
    let stored = h.pg.psql_app(&[
        "-At",
        "-c",
        &format!("select length(lo_get({oid})), md5(lo_get({oid}))"),
    ]);
    let md5 = {
        let out = std::process::Command::new("md5sum")
            .arg(&input)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(ok(&stored).trim(), format!("70000|{md5}"));
    ok(&h.psql(&["-c", &format!("\\lo_export {oid} {}", output.display())]));
    assert_eq!(std::fs::read(&output).unwrap(), payload);
    // Refused by name: the object is still there.
    let out = h.psql(&["-c", &format!("\\lo_unlink {oid}")]);
    let text = all(&out);
    assert!(
        !out.status.success() && text.contains("large objects are kept"),
        "{text}"
    );
    let still = h.pg.psql_app(&[
        "-At",
        "-c",
        &format!("select count(*) from pg_largeobject_metadata where oid = {oid}"),
    ]);
    assert_eq!(ok(&still).trim(), "1", "{text}");
    let calls: Vec<_> = h
        .statements()
        .into_iter()
        .filter(|(_, p)| p.phase == "function_call")
        .collect();
    for f in ["lo_open", "lowrite", "loread", "lo_close", "lo_unlink"] {
        assert!(
            calls
                .iter()
                .any(|(_, p)| p.functions.iter().any(|x| x == &format!("pg_catalog.{f}"))),
            "{f}: {calls:?}"
        );
    }
    let refused = results(&h)
        .into_iter()
        .filter(|r| r.status == gatehouse_events::payload::ResultStatus::Refused)
        .count();
    assert_eq!(refused, 1);
}

/// Settings in the startup packet (`PGOPTIONS`) are judged as the SETs they amount
/// to, applied upstream when allowed (the session's defaults, as directly), and
/// followed: a search path set this way resolves unqualified names, `RESET` returns
/// to it.
#[test]
fn startup_options_are_judged_applied_and_followed() {
    let rules = r#"
default allow
rule fixed_timeout {
  when pg.statement.phase == startup and pg.statement.text contains "statement_timeout"
  then block "statement_timeout is fixed by the DBA"
}
rule hosts_off_limits {
  when pg.statement.tables_read intersects ["infra.hosts"]
  then block "infra.hosts is off limits"
}
"#;
    let h = Harness::start_with(rules, support::Options::default(), setup);
    let run = |options: &str, sql: &[&str]| {
        let mut c = h.psql_cmd(&h.token());
        c.env("PGOPTIONS", options).arg("-At");
        for s in sql {
            c.args(["-c", s]);
        }
        c.output().unwrap()
    };
    // Applied as on a direct connection.
    let out = run(
        "-c intervalstyle=sql_standard --work-mem=5MB",
        &[
            "show intervalstyle",
            "show work_mem",
            "select interval '1 day 2 hours'",
        ],
    );
    assert_eq!(ok(&out), "sql_standard\n5MB\n1 2:00:00\n");
    // Judged: a refused setting refuses the login, with the rule's message.
    let out = run("-c statement_timeout=0", &["select 1"]);
    let text = all(&out);
    assert!(
        !out.status.success() && text.contains("statement_timeout is fixed by the DBA"),
        "{text}"
    );
    // An unknown setting is the server's error, as directly.
    let out = run("-c no_such_setting=1", &["select 1"]);
    assert!(
        all(&out).contains("unrecognized configuration parameter"),
        "{}",
        all(&out)
    );
    // A switch that is not a setting is refused with a clear error.
    let out = run("-B 100", &["select 1"]);
    assert!(all(&out).contains("use -c name=value"), "{}", all(&out));
    // Followed: `hosts` is infra.hosts on this search path, before and after RESET.
    for sql in [
        "select hostname from hosts",
        "reset search_path; select hostname from hosts",
    ] {
        let out = run("-c search_path=infra,public", &[sql]);
        let text = all(&out);
        assert!(text.contains("infra.hosts is off limits"), "{sql}: {text}");
    }
    let out = run("-c search_path=infra,public", &["show search_path"]);
    assert_eq!(ok(&out).trim(), "infra,public");
    // Every setting is an event of phase `startup`, with its outcome.
    let startup: Vec<_> = h
        .statements()
        .into_iter()
        .filter(|(_, p)| p.phase == "startup")
        .collect();
    assert!(
        startup.iter().any(|(t, p)| t == "SET work_mem TO '5MB'"
            && p.kind == gatehouse_events::payload::PgKind::Set),
        "{startup:?}"
    );
    assert!(
        startup
            .iter()
            .any(|(t, _)| t == "SET search_path TO infra, public")
    );
    let refused = results(&h)
        .into_iter()
        .filter(|r| r.status == gatehouse_events::payload::ResultStatus::Refused)
        .filter(|r| {
            r.message
                .as_deref()
                .is_some_and(|m| m.contains("statement_timeout"))
        })
        .count();
    assert_eq!(refused, 1);
}
