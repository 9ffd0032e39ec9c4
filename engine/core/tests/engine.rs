//! The engine facade: credentials, decisions, approvals, grants, restart.

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

use gatehouse_core::engine::{
    ApprovalError, ApprovalOutcome, Engine, EngineOptions, Reviewer, SessionInfo,
};
use gatehouse_core::identity::{AuthError, Authenticator, IssueRequest, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions};
use gatehouse_dsl::Sources;
use gatehouse_events::Protocol;
use gatehouse_events::payload::{Effect, Payload, PgKind, PgStatement, RequestDetail};

const RULES: &str = r#"
rule reads { when pg.statement.kind == select then allow }
rule no_drop { when pg.statement.kind == drop then block "drops need a change ticket" }
rule hold_delete { when pg.statement.kind == delete then require approval from "dba" timeout 2s }
rule ddl { when pg.statement.kind in [truncate, alter] then allow }
sequence truncate_then_alter by identity within 10m {
  stage emptied: pg.statement.kind == truncate
  stage altered: pg.statement.kind == alter
  then block "ALTER after TRUNCATE needs a review"
}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    key: Vec<u8>,
    log_dir: std::path::PathBuf,
}

impl Fixture {
    /// A gateway restart: the engine is dropped and a new one opens the same log.
    fn restart(self) -> Self {
        let Fixture {
            _dir,
            engine,
            key,
            log_dir,
        } = self;
        drop(engine);
        let engine = open_engine(&log_dir, &key);
        Fixture {
            _dir,
            engine,
            key,
            log_dir,
        }
    }
}

fn targets() -> BTreeMap<String, Protocol> {
    [
        ("db-a".to_owned(), Protocol::Postgres),
        ("db-b".to_owned(), Protocol::Postgres),
        ("web".to_owned(), Protocol::Ssh),
    ]
    .into()
}

fn key() -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn open_engine(log_dir: &std::path::Path, key: &[u8]) -> Arc<Engine> {
    let log = Arc::new(EventLog::open(LogConfig::new(log_dir)).unwrap());
    let mut sources = Sources::new();
    sources.add("test.rules", RULES);
    let policy = PolicyHandle::new(
        Policy::from_sources(sources, PolicyOptions::default()).unwrap(),
        PolicyOptions::default(),
    );
    let auth = Authenticator::new(TokenKeys::from_pkcs8(key).unwrap(), targets());
    Engine::open(EngineOptions::new("gw-test"), log, policy, auth).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let log_dir = dir.path().join("log");
    let engine = open_engine(&log_dir, &key);
    Fixture {
        _dir: dir,
        engine,
        key,
        log_dir,
    }
}

async fn issue(engine: &Engine, agent: &str, target: &str, ttl: Duration) -> (String, String) {
    let req = IssueRequest {
        agent: agent.into(),
        target: target.into(),
        ttl,
        on_behalf_of: Some("alice".into()),
        issued_by: None,
    };
    let (token, issued) = engine.issue_token(&req).await.unwrap();
    (token, issued.credential_id)
}

fn stmt(kind: PgKind) -> (String, RequestDetail) {
    (
        format!("{kind} ..."),
        RequestDetail::Postgres(PgStatement {
            kind,
            statement_count: 1,
            phase: "simple".into(),
            ..PgStatement::default()
        }),
    )
}

fn events(dir: &std::path::Path) -> Vec<gatehouse_events::Event> {
    LogReader::open(dir, 0)
        .map(|r| r.unwrap().event().unwrap())
        .collect()
}

fn dba(name: &str) -> Reviewer {
    Reviewer {
        name: name.into(),
        groups: vec!["dba".into()],
    }
}

#[tokio::test]
async fn tokens_are_bound_to_one_target_and_refused_otherwise() {
    let f = fixture();
    let (token, _) = issue(&f.engine, "etl", "db-a", Duration::from_secs(60)).await;
    let p = f
        .engine
        .authenticate(&token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    assert_eq!(
        (p.identity.name.as_str(), p.target.as_str()),
        ("etl", "db-a")
    );
    assert_eq!(p.identity.on_behalf_of.as_deref(), Some("alice"));
    // Target B.
    let e = f
        .engine
        .authenticate(&token, Protocol::Postgres, Some("db-b"), None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::WrongTarget { .. }), "{e:?}");
    // Another protocol's proxy.
    let e = f
        .engine
        .authenticate(&token, Protocol::Ssh, None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::WrongProtocol { .. }), "{e:?}");
    // Tampered: flip a character of the payload.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = parts[1].clone().into_bytes();
    payload[10] = if payload[10] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(payload).unwrap();
    let e = f
        .engine
        .authenticate(&parts.join("."), Protocol::Postgres, None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::BadSignature | AuthError::Malformed),
        "{e:?}"
    );
    // Forged with another key.
    let other = Authenticator::new(TokenKeys::from_pkcs8(&key()).unwrap(), targets());
    let (forged, _) = other
        .issue(&IssueRequest {
            agent: "etl".into(),
            target: "db-a".into(),
            ttl: Duration::from_secs(60),
            on_behalf_of: None,
            issued_by: None,
        })
        .unwrap();
    assert_eq!(
        f.engine
            .authenticate(&forged, Protocol::Postgres, None, None, None)
            .await
            .unwrap_err(),
        AuthError::BadSignature
    );
    // Garbage.
    assert_eq!(
        f.engine
            .authenticate("hunter2", Protocol::Postgres, None, None, None)
            .await
            .unwrap_err(),
        AuthError::Malformed
    );
    // Every refusal is an event; the token text never is.
    let log = events(&f.log_dir);
    let reasons: Vec<String> = log
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::AuthFailed(a) => Some(a.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert_eq!(&reasons[..2], ["wrong_target", "wrong_protocol"]);
    assert!(["bad_signature", "malformed"].contains(&reasons[2].as_str()));
    assert_eq!(&reasons[3..], ["bad_signature", "malformed"]);
    let raw = std::fs::read_dir(&f.log_dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .concat();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&token),
        "a token reached the log"
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let f = fixture();
    let (token, _) = issue(&f.engine, "etl", "db-a", Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        f.engine
            .authenticate(&token, Protocol::Postgres, None, None, None)
            .await
            .unwrap_err(),
        AuthError::Expired
    );
}

#[tokio::test]
async fn revoking_a_token_closes_its_live_sessions() {
    let f = fixture();
    let (token, id) = issue(&f.engine, "etl", "db-a", Duration::from_secs(600)).await;
    let p = f
        .engine
        .authenticate(&token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    let session = f
        .engine
        .open_session(p, SessionInfo::default())
        .await
        .unwrap();
    assert_eq!(f.engine.sessions().len(), 1);
    let closed = f
        .engine
        .revoke_token(&id, Some("admin"), Some("test"))
        .await
        .unwrap();
    assert_eq!(closed, 1);
    let reason = tokio::time::timeout(Duration::from_secs(1), session.closed())
        .await
        .unwrap();
    assert_eq!(reason, "credential revoked");
    assert_eq!(
        f.engine
            .authenticate(&token, Protocol::Postgres, None, None, None)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
    // Revocation survives a restart (it is a fold over the log).
    drop(session);
    let engine = f.engine;
    drop(engine);
    let engine = open_engine(&f.log_dir, &f.key);
    assert_eq!(
        engine
            .authenticate(&token, Protocol::Postgres, None, None, None)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
}

async fn session(f: &Fixture, agent: &str) -> Arc<gatehouse_core::engine::Session> {
    let (token, _) = issue(&f.engine, agent, "db-a", Duration::from_secs(600)).await;
    session_with(&f.engine, &token).await
}

/// A session opened with `token`.
async fn session_with(engine: &Engine, token: &str) -> Arc<gatehouse_core::engine::Session> {
    let p = engine
        .authenticate(token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    engine
        .open_session(p, SessionInfo::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn decisions_are_logged_before_they_return() {
    let f = fixture();
    let s = session(&f, "etl").await;
    let (c, d) = stmt(PgKind::Select);
    assert_eq!(
        f.engine.decide(&s, c, d).await.unwrap().effect,
        Effect::Allow
    );
    let (c, d) = stmt(PgKind::Drop);
    let blocked = f.engine.decide(&s, c, d).await.unwrap();
    assert_eq!(blocked.effect, Effect::Block);
    assert_eq!(
        blocked.message.as_deref(),
        Some("drops need a change ticket")
    );
    let (c, d) = stmt(PgKind::Update);
    let default = f.engine.decide(&s, c, d).await.unwrap();
    assert_eq!(
        default.effect,
        Effect::Block,
        "nothing allows update: default deny"
    );
    let log = events(&f.log_dir);
    let types: Vec<&str> = log.iter().map(|e| e.event_type()).collect();
    assert!(
        types.ends_with(&[
            "request_observed",
            "decision_made",
            "request_observed",
            "decision_made",
            "alert_raised",
            "request_observed",
            "decision_made"
        ]),
        "{types:?}"
    );
    let alert = log
        .iter()
        .find_map(|e| match &e.payload {
            Payload::AlertRaised(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(alert.rule, "no_drop");
    assert_eq!(alert.related_events, vec![blocked.request]);
}

#[tokio::test]
async fn approval_granted_denied_expired_and_self_approval() {
    let f = fixture();
    let s = session(&f, "etl").await;
    // Granted.
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(&s, c, d).await.unwrap();
    assert_eq!(held.effect, Effect::RequireApproval);
    let id = held.approval.clone().unwrap().id;
    assert!(held.message.as_deref().unwrap().contains(&id));
    assert_eq!(f.engine.approvals().list().len(), 1);
    // The agent cannot approve itself, nor can the person it acts for.
    assert!(matches!(
        f.engine.approve(&id, &dba("etl"), None).await,
        Err(ApprovalError::SelfApproval(_))
    ));
    assert!(matches!(
        f.engine.approve(&id, &dba("alice"), None).await,
        Err(ApprovalError::SelfApproval(_))
    ));
    // Only the named group.
    let outsider = Reviewer {
        name: "mallory".into(),
        groups: vec!["sre".into()],
    };
    assert!(matches!(
        f.engine.approve(&id, &outsider, None).await,
        Err(ApprovalError::NotInGroup { .. })
    ));
    let waiter = {
        let e = f.engine.clone();
        let held = held.clone();
        tokio::spawn(async move { e.wait_for_approval(&held).await })
    };
    f.engine.approve(&id, &dba("bob"), None).await.unwrap();
    assert_eq!(
        waiter.await.unwrap(),
        ApprovalOutcome::Granted {
            reviewer: "bob".into()
        }
    );
    // Denied.
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(&s, c, d).await.unwrap();
    let id = held.approval.clone().unwrap().id;
    f.engine.deny(&id, &dba("bob"), "not now").await.unwrap();
    assert_eq!(
        f.engine.wait_for_approval(&held).await,
        ApprovalOutcome::Denied {
            reviewer: "bob".into(),
            reason: "not now".into()
        }
    );
    // Expired (2 s rule timeout).
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(&s, c, d).await.unwrap();
    let clock = tokio::spawn(f.engine.clone().run_expiry());
    let outcome = tokio::time::timeout(Duration::from_secs(5), f.engine.wait_for_approval(&held))
        .await
        .unwrap();
    clock.abort();
    assert_eq!(outcome, ApprovalOutcome::Expired);
    assert!(f.engine.approvals().list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviewers_produce_exactly_one_outcome() {
    let f = fixture();
    let s = session(&f, "etl").await;
    for round in 0..20 {
        let (c, d) = stmt(PgKind::Delete);
        let held = f.engine.decide(&s, c, d).await.unwrap();
        let id = held.approval.unwrap().id;
        let (a, b) = (f.engine.clone(), f.engine.clone());
        let (id_a, id_b) = (id.clone(), id.clone());
        let grant = tokio::spawn(async move { a.approve(&id_a, &dba("bob"), None).await });
        let deny = tokio::spawn(async move { b.deny(&id_b, &dba("carol"), "no").await });
        let (grant, deny) = (grant.await.unwrap(), deny.await.unwrap());
        let one_winner = matches!(
            (&grant, &deny),
            (Ok(_), Err(ApprovalError::NotFound(_))) | (Err(ApprovalError::NotFound(_)), Ok(_))
        );
        assert!(
            one_winner,
            "round {round}: exactly one reviewer must win: {grant:?} / {deny:?}"
        );
        let outcomes = events(&f.log_dir)
            .iter()
            .filter(|e| {
                matches!(&e.payload,
                    Payload::ApprovalGranted(g) if g.approval_id == id)
                    || matches!(&e.payload, Payload::ApprovalDenied(d) if d.approval_id == id)
            })
            .count();
        assert_eq!(outcomes, 1, "round {round}: one outcome in the log");
    }
}

#[tokio::test]
async fn an_over_long_grant_is_refused_not_a_crash() {
    let f = fixture();
    let s = session(&f, "etl").await;
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(&s, c, d).await.unwrap();
    let id = held.approval.unwrap().id;
    // Past `approvals.max_grant` (8 h by default), and past what a date can hold.
    for asked in [9 * 3600, 300_000 * 365 * 24 * 3600] {
        let e = f
            .engine
            .approve(&id, &dba("bob"), Some(Duration::from_secs(asked)))
            .await
            .unwrap_err();
        assert!(matches!(e, ApprovalError::GrantTooLong { .. }), "{e}");
        assert!(e.to_string().contains("approvals.max_grant = 8h"), "{e}");
    }
    // Still pending, and a sane grant still works.
    f.engine
        .approve(&id, &dba("bob"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
}

/// Holds a `delete` of `s` for approval, then bob approves it with a grant of `secs`
/// seconds; returns the approval (and grant) id.
async fn granted(f: &Fixture, s: &gatehouse_core::engine::Session, secs: u64) -> String {
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(s, c, d).await.unwrap();
    let id = held.approval.unwrap().id;
    f.engine
        .approve(&id, &dba("bob"), Some(Duration::from_secs(secs)))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_grant_for_a_duration_covers_the_same_identity_credential_target_and_rule() {
    let f = fixture();
    let (s_token, _) = issue(&f.engine, "etl", "db-a", Duration::from_secs(600)).await;
    let s = session_with(&f.engine, &s_token).await;
    let id = granted(&f, &s, 1800).await;
    let (c, d) = stmt(PgKind::Delete);
    let again = f.engine.decide(&s, c, d).await.unwrap();
    assert_eq!(again.effect, Effect::Allow, "{:?}", again.message);
    // Another identity is not covered.
    let other = session(&f, "reporting").await;
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&other, c, d).await.unwrap().effect,
        Effect::RequireApproval
    );
    // Nor is the same identity with another credential: a grant ends with the
    // credential it was given to (revoked or expired).
    let new_token = session(&f, "etl").await;
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&new_token, c, d).await.unwrap().effect,
        Effect::RequireApproval
    );
    // Reviewers can list it, and it survives a restart bound the same way.
    let grants = f.engine.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].approval_id, id);
    assert_eq!(grants[0].identity, "etl");
    assert_eq!(
        grants[0].credential_id.as_deref(),
        s.principal.identity.credential_id.as_deref()
    );
    assert_eq!(grants[0].reviewer, "bob");
    drop((other, new_token));
    let f = f.restart();
    assert_eq!(f.engine.grants().len(), 1);
    let again = session_with(&f.engine, &s_token).await;
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&again, c, d).await.unwrap().effect,
        Effect::Allow
    );
}

#[tokio::test]
async fn a_revoked_grant_covers_nothing_again_and_stays_revoked_after_a_restart() {
    let f = fixture();
    let (token, _) = issue(&f.engine, "etl", "db-a", Duration::from_secs(600)).await;
    let s = session_with(&f.engine, &token).await;
    let id = granted(&f, &s, 1800).await;
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&s, c, d).await.unwrap().effect,
        Effect::Allow
    );
    assert_eq!(f.engine.grants()[0].group, "dba");
    // A reviewer outside the rule's group may not revoke it; an unknown id is not found.
    let outsider = Reviewer {
        name: "mallory".into(),
        groups: vec!["finance".into()],
    };
    let e = f
        .engine
        .revoke_grant(&id, &outsider, false, "no")
        .await
        .unwrap_err();
    assert!(matches!(e, ApprovalError::MayNotRevoke { .. }), "{e}");
    let e = f
        .engine
        .revoke_grant("apr-nope", &dba("bob"), false, "no")
        .await
        .unwrap_err();
    assert!(matches!(e, ApprovalError::NoGrant(_)), "{e}");
    assert_eq!(f.engine.grants().len(), 1);
    // A member of the group revokes it: the next statement is held again.
    let g = f
        .engine
        .revoke_grant(&id, &dba("carol"), false, "approved by mistake")
        .await
        .unwrap();
    assert_eq!(g.approval_id, id);
    assert!(f.engine.grants().is_empty());
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&s, c, d).await.unwrap().effect,
        Effect::RequireApproval
    );
    let revoked: Vec<_> = events(&f.log_dir)
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::GrantRevoked(r) => Some((r, e.identity, e.target)),
            _ => None,
        })
        .collect();
    assert_eq!(revoked.len(), 1);
    let (r, who, target) = &revoked[0];
    assert_eq!(
        (
            r.approval_id.as_str(),
            r.revoked_by.as_str(),
            r.reason.as_str()
        ),
        (id.as_str(), "carol", "approved by mistake")
    );
    assert_eq!(who.as_ref().unwrap().name, "etl");
    assert_eq!(
        who.as_ref().unwrap().credential_id,
        s.principal.identity.credential_id
    );
    assert_eq!(target.as_deref(), Some("db-a"));
    // Revoking twice finds nothing.
    let e = f
        .engine
        .revoke_grant(&id, &dba("carol"), false, "again")
        .await
        .unwrap_err();
    assert!(matches!(e, ApprovalError::NoGrant(_)), "{e}");
    drop(s);
    // The fold over the log keeps it revoked.
    let f = f.restart();
    assert!(f.engine.grants().is_empty());
    let again = session_with(&f.engine, &token).await;
    let (c, d) = stmt(PgKind::Delete);
    assert_eq!(
        f.engine.decide(&again, c, d).await.unwrap().effect,
        Effect::RequireApproval
    );
}

#[tokio::test]
async fn an_admin_may_revoke_a_grant_outside_their_groups() {
    let f = fixture();
    let s = session(&f, "etl").await;
    let id = granted(&f, &s, 600).await;
    let admin = Reviewer {
        name: "root".into(),
        groups: Vec::new(),
    };
    f.engine
        .revoke_grant(&id, &admin, true, "incident")
        .await
        .unwrap();
    assert!(f.engine.grants().is_empty());
}

#[tokio::test]
async fn pending_approvals_survive_a_restart_and_expire_at_their_deadline() {
    let f = fixture();
    let s = session(&f, "etl").await;
    let (c, d) = stmt(PgKind::Delete);
    let held = f.engine.decide(&s, c, d).await.unwrap();
    let pending = held.approval.unwrap();
    drop(s);
    let Fixture {
        _dir,
        engine,
        key,
        log_dir,
    } = f;
    drop(engine);
    let engine = open_engine(&log_dir, &key);
    let listed = engine.approvals().list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, pending.id);
    assert!(!listed[0].waiting, "the client that waited is gone");
    let clock = tokio::spawn(engine.clone().run_expiry());
    tokio::time::sleep(Duration::from_millis(3200)).await;
    clock.abort();
    assert!(engine.approvals().list().is_empty());
    let log = events(&log_dir);
    assert!(
        log.iter().any(
            |e| matches!(&e.payload, Payload::ApprovalExpired(x) if x.approval_id == pending.id)
        )
    );
    // The session the first run left open was closed on restart.
    assert!(log.iter().any(
        |e| matches!(&e.payload, Payload::SessionClosed(c) if c.reason == "gateway_restarted")
    ));
}

#[tokio::test]
async fn the_reviewer_who_issued_the_agents_credential_cannot_decide() {
    let f = fixture();
    let req = IssueRequest {
        agent: "etl".into(),
        target: "db-a".into(),
        ttl: Duration::from_secs(600),
        on_behalf_of: None,
        issued_by: Some("bob".into()),
    };
    let (token, _) = f.engine.issue_token(&req).await.unwrap();
    let s = session_with(&f.engine, &token).await;
    let (c, d) = stmt(PgKind::Delete);
    let id = f
        .engine
        .decide(&s, c, d)
        .await
        .unwrap()
        .approval
        .unwrap()
        .id;
    let e = f.engine.approve(&id, &dba("bob"), None).await.unwrap_err();
    assert!(matches!(e, ApprovalError::IssuedByReviewer(_)), "{e}");
    let e = f.engine.deny(&id, &dba("bob"), "no").await.unwrap_err();
    assert!(matches!(e, ApprovalError::IssuedByReviewer(_)), "{e}");
    // Still pending after a restart, with the issuer known from the log.
    drop(s);
    let f = f.restart();
    let e = f.engine.approve(&id, &dba("bob"), None).await.unwrap_err();
    assert!(matches!(e, ApprovalError::IssuedByReviewer(_)), "{e}");
    f.engine.approve(&id, &dba("carol"), None).await.unwrap();
}

/// Judge, commit, apply (ADR 0024): a request whose events cannot be appended changes
/// nothing: no sequence stage, no pending approval. Then the same requests, committed,
/// do.
#[tokio::test]
async fn a_request_that_is_not_logged_changes_no_state() {
    let f = fixture();
    let s = session(&f, "etl").await;
    // Over the log's record limit: the append fails.
    let huge = |kind| {
        let (_, d) = stmt(kind);
        ("x".repeat(17 * 1024 * 1024), d)
    };
    let (c, d) = huge(PgKind::Truncate);
    assert!(f.engine.decide(&s, c, d).await.is_err());
    let (c, d) = stmt(PgKind::Alter);
    assert_eq!(
        f.engine.decide(&s, c, d).await.unwrap().effect,
        Effect::Allow,
        "the unlogged TRUNCATE did not start the sequence"
    );
    let (c, d) = huge(PgKind::Delete);
    assert!(f.engine.decide(&s, c, d).await.is_err());
    assert!(
        f.engine.approvals().list().is_empty(),
        "the unlogged DELETE left no pending approval"
    );
    // Logged, they do.
    let (c, d) = stmt(PgKind::Truncate);
    assert_eq!(
        f.engine.decide(&s, c, d).await.unwrap().effect,
        Effect::Allow
    );
    let (c, d) = stmt(PgKind::Alter);
    let blocked = f.engine.decide(&s, c, d).await.unwrap();
    assert_eq!(blocked.effect, Effect::Block);
    assert_eq!(
        blocked.message.as_deref(),
        Some("ALTER after TRUNCATE needs a review")
    );
}

/// Requests of one identity that share sequence keys, decided concurrently, are
/// logged in the order they were judged: walking the log in order and applying each
/// TRUNCATE gives every ALTER the decision it got live (ADR 0024: the state is a fold
/// over the log, and a restart rebuilds the same one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_identity_are_logged_in_the_order_they_were_judged() {
    let f = fixture();
    for round in 0..24 {
        let agent = format!("etl-{round}");
        let mut tasks = Vec::new();
        for i in 0..12 {
            let engine = f.engine.clone();
            let s = session(&f, &agent).await;
            tasks.push(tokio::spawn(async move {
                let kind = if i % 3 == 0 {
                    PgKind::Truncate
                } else {
                    PgKind::Alter
                };
                let (c, d) = stmt(kind);
                engine.decide(&s, c, d).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let log = events(&f.log_dir);
    let mut truncated = std::collections::HashSet::new();
    let mut checked = 0;
    for e in &log {
        let Payload::RequestObserved(r) = &e.payload else {
            continue;
        };
        let RequestDetail::Postgres(p) = &r.detail else {
            continue;
        };
        let who = e.identity_name().unwrap().to_owned();
        match p.kind {
            PgKind::Truncate => {
                truncated.insert(who);
            }
            PgKind::Alter => {
                let live = log
                    .iter()
                    .find_map(|d| match &d.payload {
                        Payload::DecisionMade(d) if d.request == Some(e.id) => Some(d.effect),
                        _ => None,
                    })
                    .unwrap();
                let folded = if truncated.contains(&who) {
                    Effect::Block
                } else {
                    Effect::Allow
                };
                assert_eq!(live, folded, "ALTER {} of {who}", e.id);
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 24 * 8);
}
