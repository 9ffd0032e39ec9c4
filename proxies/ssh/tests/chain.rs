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

/// The Postgres step, driven through the engine as the Postgres proxy drives it: `who`
/// reads `infra.hosts` and the result names `hosts`.
async fn recon(f: &Fixture, who: &str, hosts: &[&str]) {
    let pg_token = f.token(who, "inventory-db").await;
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
                rows: Some(hosts.len() as u64),
                captures: vec![Capture {
                    name: wanted.name.to_string(),
                    source: wanted.arg.to_string(),
                    values: hosts.iter().map(|h| (*h).to_owned()).collect(),
                    truncated: false,
                    // Resolved by the engine when the result is recorded.
                    hosts: vec![],
                }],
                ..ResultObserved::default()
            },
        )
        .await
        .unwrap();
}

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
    recon(&f, "deploy-bot", &["db-1.internal", "localhost"]).await;

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

const PIVOT: &str = r#"
rule allow_all_ssh { when ssh.kind in [session_open, exec, shell, shell_line, sftp, port_forward, env] then allow }
rule allow_sql { when pg.statement.kind == select then allow }
sequence pg_then_kubectl by identity within 30m {
  stage recon: pg.statement.kind == select and pg.statement.tables contains "infra.hosts"
    capture hosts = pg.result.column("hostname") limit 64
  stage pivot within 15m: ssh.pivot intersects [kubernetes] and ssh.target.host in recon.hosts
  then block "no cluster clients on inventory hosts"
  severity critical
}
"#;

/// A Kubernetes client run over SSH on a host a Postgres result named completes the
/// chain (`ssh.pivot`), and the refusal does not disarm it: the retry is refused and
/// alerted again. Judged on the host: the command's marker file is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_client_run_over_ssh_completes_the_chain_every_time() {
    let f = fixture_with(Setup {
        rules: PIVOT.into(),
        host: "localhost".into(),
        ..Setup::default()
    })
    .await;
    let ssh_token = f.token("deploy-bot", "web").await;
    let marker = f.dir.path().join("kubectl-ran");
    let command = format!(
        "kubectl --request-timeout=1s get pods -A >/dev/null 2>&1; touch {}",
        marker.display()
    );
    // Before the recon: the client runs (nothing links it to an inventory read).
    let o = run(f.ssh(&ssh_token, "deploy-bot", &[&command])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    recon(&f, "deploy-bot", &["localhost"]).await;

    for attempt in 0..2 {
        let o = run(f.ssh(&ssh_token, "deploy-bot", &[&command])).await;
        assert_eq!(o.status.code(), Some(126), "attempt {attempt}");
        assert!(
            text(&o.stderr).contains("no cluster clients"),
            "attempt {attempt}: {}",
            text(&o.stderr)
        );
        assert!(!marker.exists(), "attempt {attempt} ran on the host");
    }
    let events = f.events();
    let alerts = events
        .iter()
        .filter(|e| {
            matches!(&e.payload, Payload::AlertRaised(a) if a.rule == "pg_then_kubectl" && a.sequence)
        })
        .count();
    assert_eq!(alerts, 2, "one finding per attempt");
    assert!(
        events
            .iter()
            .filter_map(|e| e.ssh())
            .any(|s| s.pivot == ["kubernetes"])
    );
}

const HOSTS: &str = r#"
rule allow_all_ssh { when ssh.kind in [session_open, exec, shell, shell_line, sftp, port_forward, env] then allow }
rule allow_sql { when pg.statement.kind == select then allow }
sequence pg_then_host by identity within 30m {
  stage recon: pg.statement.kind == select and pg.statement.tables contains "infra.hosts"
    capture hosts = pg.result.column("hostname") limit 64
  stage hop within 15m: ssh.kind == exec and ssh.target.hosts intersects recon.hosts
  then block "inventory host"
  severity critical
}
"#;

/// Hosts compare as hosts: a value read in any spelling of the target (short or
/// qualified name, an address, a configured alias, an IPv4-mapped address) makes the
/// command on that target the chain's step; names of other hosts do not. Judged on
/// the host: the command's marker file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_read_in_any_spelling_completes_the_chain() {
    let f = fixture_with(Setup {
        rules: HOSTS.into(),
        host: "127.0.0.1".into(),
        aliases: vec!["bastion.prod".into()],
        // No short alias for the target: `db-1` then names any `db-1.*`, `db-1.staging` too.
        hosts_file: Some("127.0.0.1 db-1.internal\n10.9.9.9 db-2.internal\n".into()),
        ..Setup::default()
    })
    .await;
    let cases: &[(&str, bool)] = &[
        ("db-1", true),
        ("DB-1.Internal.", true),
        ("127.0.0.1", true),
        ("::ffff:127.0.0.1", true),
        ("bastion.prod", true),
        ("bastion", true),
        ("db-1.staging", false),
        ("db-2.internal", false),
        ("10.9.9.9", false),
        ("db", false),
        ("internal", false),
    ];
    let mut wrong = Vec::new();
    for (i, (spelling, chain)) in cases.iter().enumerate() {
        let who = format!("agent-{i}");
        let ssh_token = f.token(&who, "web").await;
        recon(&f, &who, &[spelling]).await;
        let marker = f.dir.path().join(format!("ran-{i}"));
        let o = run(f.ssh(&ssh_token, &who, &[&format!("touch {}", marker.display())])).await;
        if marker.exists() == *chain {
            wrong.push(format!(
                "{spelling}: chain expected {chain}, command ran {} (exit {:?}, {})",
                marker.exists(),
                o.status.code(),
                text(&o.stderr).trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The keys are on the events, for the hunt and for replay.
    let events = f.events();
    let ssh = events
        .iter()
        .filter_map(|e| e.ssh())
        .find(|s| !s.hosts.is_empty())
        .unwrap();
    for k in [
        "127.0.0.1",
        "db-1.internal",
        "db-1.*",
        "bastion.prod",
        "bastion.*",
    ] {
        assert!(ssh.hosts.iter().any(|h| h == k), "{k} in {:?}", ssh.hosts);
    }
    let captured = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::ResultObserved(r) => r.captures.first(),
            _ => None,
        })
        .find(|c| c.values == ["DB-1.Internal."])
        .unwrap();
    for k in ["db-1.internal", "db-1", "127.0.0.1"] {
        assert!(
            captured.hosts.iter().any(|h| h == k),
            "{k} in {:?}",
            captured.hosts
        );
    }
}
