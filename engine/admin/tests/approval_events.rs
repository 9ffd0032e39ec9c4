//! `GET /v1/approvals/events` over a real socket: the stream starts with the pending
//! list, and a request held afterwards, then denied, shows up in the next events
//! without the client asking again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions, Reviewer, SessionInfo};
use gatehouse_core::identity::{Authenticator, IssueRequest, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions};
use gatehouse_dsl::Sources;
use gatehouse_events::Protocol;
use gatehouse_events::payload::{Effect, PgKind, PgStatement, RequestDetail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "admin-events-token-51aa";

/// Reads from the stream until `count` `approvals` events arrived; returns their
/// data (JSON).
async fn events(stream: &mut TcpStream, buf: &mut String, count: usize) -> Vec<serde_json::Value> {
    let mut chunk = [0u8; 4096];
    // One deadline for the whole wait: keep-alive comments must not extend it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<serde_json::Value> = buf
            .split("event: approvals\n")
            .skip(1)
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        if found.len() >= count {
            return found;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("not {count} events within 20 s: {buf}"))
            .unwrap();
        assert!(n > 0, "the stream ended: {buf}");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn held_requests_and_their_decisions_are_pushed_to_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(&format!(
        "data_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[admin.user]]\nname = \"alice@example.com\"\nrole = \"admin\"\ntoken = {{ value = \"{TOKEN}\" }}\n\
         [[target]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:1\"\nuser = \"u\"\n",
        dir.path().display()
    ))
    .unwrap();
    config.validate().unwrap();
    config.data_dir = dir.path().to_owned();
    let log = Arc::new(EventLog::open(LogConfig::new(dir.path().join("log"))).unwrap());
    let mut sources = Sources::new();
    sources.add(
        "t.rules",
        "rule hold_deletes { when pg.statement.kind == delete then require approval from \"dba\" timeout 60s }",
    );
    let policy = PolicyHandle::new(
        Policy::from_sources(sources, PolicyOptions::default()).unwrap(),
        PolicyOptions::default(),
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let auth = Authenticator::new(
        TokenKeys::from_pkcs8(key.as_ref()).unwrap(),
        BTreeMap::from([("db".to_owned(), Protocol::Postgres)]),
    );
    let engine = Engine::open(EngineOptions::new("gw-events"), log, policy, auth).unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let addr = gatehouse_admin::start(engine.clone(), Arc::new(config), shutdown)
        .await
        .unwrap();

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /v1/approvals/events HTTP/1.1\r\nhost: gatehouse\r\nauthorization: Bearer {TOKEN}\r\naccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = String::new();
    let first = events(&mut stream, &mut buf, 1).await;
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    assert!(
        buf.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{buf}"
    );
    assert!(ids(&first[0]).is_empty());

    // A request is held: the stream carries it.
    let (token, _) = engine
        .issue_token(&IssueRequest {
            agent: "etl".into(),
            target: "db".into(),
            ttl: Duration::from_secs(600),
            on_behalf_of: None,
            issued_by: None,
        })
        .await
        .unwrap();
    let principal = engine
        .authenticate(&token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    let session = engine
        .open_session(principal, SessionInfo::default())
        .await
        .unwrap();
    let held = engine
        .decide(
            &session,
            "DELETE FROM t".into(),
            RequestDetail::Postgres(PgStatement {
                kind: PgKind::Delete,
                statement_count: 1,
                phase: "simple".into(),
                ..PgStatement::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(held.effect, Effect::RequireApproval);
    let id = held.approval.as_ref().unwrap().id.clone();
    let seen = events(&mut stream, &mut buf, 2).await;
    assert_eq!(ids(&seen[1]), std::slice::from_ref(&id));
    assert_eq!(seen[1]["approvals"][0]["command"], "DELETE FROM t");

    // Denied: the next event no longer lists it.
    engine
        .deny(
            &id,
            &Reviewer {
                name: "bob".into(),
                groups: vec!["dba".into()],
            },
            "no",
        )
        .await
        .unwrap();
    let mut n = 3;
    loop {
        let seen = events(&mut stream, &mut buf, n).await;
        if ids(&seen[n - 1]).is_empty() {
            break;
        }
        n += 1;
    }
}
