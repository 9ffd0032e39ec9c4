//! The lateral-movement chain's second step: a host name captured from a Postgres
//! result earlier makes the SSH login to that host complete stage `hop` inline.
//! The Postgres step is driven through the engine (the same calls the Postgres proxy
//! makes); the SSH step is a real `ssh` through the proxy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use gatehouse_core::engine::SessionInfo;
use gatehouse_events::Protocol;
use gatehouse_events::payload::{
    Capture, Payload, PgKind, PgStatement, RequestDetail, ResultObserved,
};
use support::*;

const CHAIN: &str = r#"
rule allow_all_ssh { when ssh.kind in [session_open, exec, shell, shell_line, sftp, port_forward, env] then allow }
rule allow_sql { when pg.statement.kind == select then allow }
sequence pg_then_ssh by identity within 30m {
  stage recon: pg.statement.kind == select and pg.statement.tables contains "infra.hosts"
    capture hosts = pg.result.column("hostname") limit 64
  stage hop within 15m: ssh.session.open and ssh.target.host in recon.hosts
  then block "ssh to a host read from the inventory needs a change ticket"
  severity critical
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_captured_from_postgres_completes_the_ssh_stage() {
    let f = fixture_with(Setup {
        rules: CHAIN.into(),
        host: "localhost".into(),
        ..Setup::default()
    })
    .await;
    // Before the capture: the login is allowed.
    let ssh_token = f.token("deploy-bot", "web").await;
    let o = run(f.ssh(&ssh_token, "deploy-bot", &["echo before"])).await;
    assert_eq!(text(&o.stdout), "before\n", "{}", text(&o.stderr));

    // Step 1 (Postgres): the same identity reads infra.hosts; the result names `localhost`.
    let pg_token = f.token("deploy-bot", "inventory-db").await;
    let p = f
        .engine
        .authenticate(&pg_token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    let pg = f
        .engine
        .open_session(p, SessionInfo::default())
        .await
        .unwrap();
    let d = f
        .engine
        .decide(
            &pg,
            "select hostname from infra.hosts".into(),
            RequestDetail::Postgres(PgStatement {
                kind: PgKind::Select,
                tables_read: vec!["infra.hosts".into()],
                statement_count: 1,
                phase: "simple".into(),
                ..PgStatement::default()
            }),
        )
        .await
        .unwrap();
    let wanted = d
        .captures()
        .first()
        .expect("the recon stage asks for a capture")
        .clone();
    f.engine
        .record_result(
            &pg,
            ResultObserved {
                request: Some(d.request),
                rows: Some(2),
                captures: vec![Capture {
                    name: wanted.name.to_string(),
                    source: wanted.arg.to_string(),
                    values: vec!["db-1.internal".into(), "localhost".into()],
                    truncated: false,
                }],
                ..ResultObserved::default()
            },
        )
        .await
        .unwrap();

    // Step 2 (SSH): the login to `localhost` completes the hop stage and is blocked.
    let o = run(f.ssh(&ssh_token, "deploy-bot", &["echo after"])).await;
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert_eq!(o.status.code(), Some(126));
    assert!(
        text(&o.stderr).contains("needs a change ticket"),
        "{}",
        text(&o.stderr)
    );
    let events = f.events();
    assert!(events.iter().any(
        |e| matches!(&e.payload, Payload::AlertRaised(a) if a.rule == "pg_then_ssh" && a.sequence)
    ));
}
