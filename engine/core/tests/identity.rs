//! Identity names compare in one canonical form (ADR 0010): a request made on behalf
//! of `Bob@Example.COM` cannot be approved by `bob@example.com`, grants and reviewer
//! groups ignore case, and a sequence keyed by identity joins across spellings.

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
    ApprovalError, Engine, EngineOptions, Reviewer, Session, SessionInfo,
};
use gatehouse_core::identity::{Authenticator, IssueRequest, Principal, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions, Sources};
use gatehouse_events::payload::{Effect, Payload, PgKind, PgStatement, RequestDetail};
use gatehouse_events::{Identity, Protocol};

const RULES: &str = r#"
rule reads { when pg.statement.kind == select then allow }
rule hold_delete { when pg.statement.kind == delete then require approval from "DBA" timeout 60s }
rule allow_truncate { when pg.statement.kind == truncate then allow }
sequence select_then_truncate by identity within 10m {
  stage look: pg.statement.kind == select
  stage wipe: pg.statement.kind == truncate
  then block "a read followed by a truncate needs a change ticket"
}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    log_dir: std::path::PathBuf,
    engine: Arc<Engine>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let log = Arc::new(EventLog::open(LogConfig::new(&log_dir)).unwrap());
    let mut sources = Sources::new();
    sources.add("test.rules", RULES);
    let policy = PolicyHandle::new(
        Policy::from_sources(sources, PolicyOptions::default())
            .unwrap_or_else(|e| panic!("{}", e.render(100))),
        PolicyOptions::default(),
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let targets: BTreeMap<String, Protocol> = [("db".to_owned(), Protocol::Postgres)].into();
    let auth = Authenticator::new(TokenKeys::from_pkcs8(pkcs8.as_ref()).unwrap(), targets);
    let engine = Engine::open(EngineOptions::new("gw-id"), log, policy, auth).unwrap();
    Fixture {
        _dir: dir,
        log_dir,
        engine,
    }
}

/// A session of a token issued for `agent` on behalf of `obo`, by `issued_by`.
async fn session(
    f: &Fixture,
    agent: &str,
    obo: Option<&str>,
    issued_by: Option<&str>,
) -> Arc<Session> {
    let (token, _) = f
        .engine
        .issue_token(&IssueRequest {
            agent: agent.into(),
            target: "db".into(),
            ttl: Duration::from_secs(600),
            on_behalf_of: obo.map(str::to_owned),
            issued_by: issued_by.map(str::to_owned),
        })
        .await
        .unwrap();
    let p = f
        .engine
        .authenticate(&token, Protocol::Postgres, None, None, None)
        .await
        .unwrap();
    f.engine
        .open_session(p, SessionInfo::default())
        .await
        .unwrap()
}

/// A session whose principal carries `name` exactly as written: the names of events
/// logged before names were normalised, or built by another path.
async fn raw_session(f: &Fixture, name: &str, obo: Option<&str>) -> Arc<Session> {
    let p = Principal {
        identity: Identity {
            name: name.into(),
            on_behalf_of: obo.map(str::to_owned),
            role: None,
            credential_id: None,
        },
        target: "db".into(),
        protocol: Protocol::Postgres,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
        method: "test",
    };
    f.engine
        .open_session(p, SessionInfo::default())
        .await
        .unwrap()
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

fn reviewer(name: &str, group: &str) -> Reviewer {
    Reviewer {
        name: name.into(),
        groups: vec![group.into()],
    }
}

async fn held(f: &Fixture, s: &Session) -> String {
    let (c, d) = stmt(PgKind::Delete);
    let decision = f.engine.decide(s, c, d).await.unwrap();
    assert_eq!(decision.effect, Effect::RequireApproval);
    decision.approval.clone().unwrap().id
}

#[tokio::test]
async fn a_request_on_behalf_of_bob_cannot_be_approved_by_bob_in_another_spelling() {
    let f = fixture();
    let s = session(&f, "etl", Some("Bob@Example.COM"), None).await;
    let id = held(&f, &s).await;
    for bob in [
        "bob@example.com",
        "BOB@EXAMPLE.COM",
        " bob@example.com ",
        "Ｂｏｂ@example.com",
        "bob\u{200b}@example.com",
    ] {
        assert!(
            matches!(
                f.engine.approve(&id, &reviewer(bob, "dba"), None).await,
                Err(ApprovalError::SelfApproval(_))
            ),
            "`{bob}` approved a request made on behalf of `Bob@Example.COM`"
        );
    }
    // Nor the agent itself, in another spelling.
    assert!(matches!(
        f.engine.deny(&id, &reviewer("ETL", "dba"), "no").await,
        Err(ApprovalError::SelfApproval(_))
    ));
    // The recorded names are canonical.
    let p = f.engine.approvals().get(&id).unwrap();
    assert_eq!(p.on_behalf_of.as_deref(), Some("bob@example.com"));
    // Someone else may, and the rule's group `DBA` is the reviewer's `dba`.
    f.engine
        .approve(&id, &reviewer("carol@example.com", "dba"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn names_recorded_in_another_spelling_are_still_compared_canonically() {
    // As if replayed from a log written before names were normalised.
    let f = fixture();
    let s = raw_session(&f, "Agent:ETL", Some("Dana@Example.COM")).await;
    let id = held(&f, &s).await;
    for who in ["agent:etl", "dana@example.com", "DANA@example.com"] {
        assert!(
            matches!(
                f.engine.approve(&id, &reviewer(who, "DBA"), None).await,
                Err(ApprovalError::SelfApproval(_))
            ),
            "`{who}` approved its own request"
        );
    }
}

#[tokio::test]
async fn the_issuer_of_the_token_cannot_approve_in_another_spelling() {
    let f = fixture();
    let s = session(&f, "etl", None, Some("Ops@Example.com")).await;
    let id = held(&f, &s).await;
    assert!(matches!(
        f.engine
            .approve(&id, &reviewer("ops@example.COM", "dba"), None)
            .await,
        Err(ApprovalError::IssuedByReviewer(_))
    ));
}

#[tokio::test]
async fn a_sequence_keyed_by_identity_joins_across_spellings() {
    let f = fixture();
    // Two tokens for one agent, issued in two spellings.
    let a = session(&f, "Agent:Deploy-Bot", None, None).await;
    let b = session(&f, "agent:deploy-bot", None, None).await;
    assert_eq!(a.principal.identity.name, "agent:deploy-bot");
    let (c, d) = stmt(PgKind::Select);
    assert_eq!(
        f.engine.decide(&a, c, d).await.unwrap().effect,
        Effect::Allow
    );
    let (c, d) = stmt(PgKind::Truncate);
    let second = f.engine.decide(&b, c, d).await.unwrap();
    assert_eq!(
        second.effect,
        Effect::Block,
        "the sequence did not join `Agent:Deploy-Bot` and `agent:deploy-bot`"
    );

    // A principal whose name was recorded in yet another spelling joins too.
    let c1 = raw_session(&f, "ＣＡＲＬ", None).await;
    let c2 = raw_session(&f, "carl", None).await;
    let (c, d) = stmt(PgKind::Select);
    f.engine.decide(&c1, c, d).await.unwrap();
    let (c, d) = stmt(PgKind::Truncate);
    assert_eq!(
        f.engine.decide(&c2, c, d).await.unwrap().effect,
        Effect::Block
    );

    // Other identities do not.
    let other = session(&f, "agent:other", None, None).await;
    let (c, d) = stmt(PgKind::Truncate);
    assert_eq!(
        f.engine.decide(&other, c, d).await.unwrap().effect,
        Effect::Allow
    );

    // The log records one canonical name for the agent.
    let names: std::collections::BTreeSet<String> = LogReader::open(&f.log_dir, 0)
        .map(|r| r.unwrap().event().unwrap())
        .filter(|e| matches!(e.payload, Payload::RequestObserved(_)))
        .filter_map(|e| e.identity.map(|i| i.name))
        .filter(|n| n.contains("deploy"))
        .collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["agent:deploy-bot"]);
}

#[tokio::test]
async fn oidc_subjects_people_and_roles_are_canonical() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": B64.encode(key.public_key().as_ref()),
    }]});
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let mut config = gatehouse_core::config::Config::parse(&format!(
        "[[oidc]]\nissuer = \"https://idp.test\"\naudiences = [\"gatehouse\"]\njwks_file = \"{}\"\n\
         on_behalf_of_claim = \"act.sub\"\nrole_claim = \"role\"\n\
         [roles.Db-Reader]\ntargets = [\"db\"]\n\
         [[target]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:1\"\nuser = \"u\"\n",
        dir.path().join("jwks.json").display()
    ))
    .unwrap();
    config.validate().unwrap();
    config.data_dir = dir.path().to_owned();
    let auth = Authenticator::from_config(&config, None).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "https://idp.test", "aud": "gatehouse", "sub": "CI-Bot", "exp": now + 600,
        "iat": now, "act": {"sub": "Ｂｏｂ@Example.COM"}, "role": "DB-READER",
    });
    let header = B64.encode(r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let token = format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).as_ref())
    );
    let p = auth
        .verify(&token, Protocol::Postgres, Some("db"))
        .await
        .unwrap();
    assert_eq!(p.identity.name, "oidc:ci-bot");
    assert_eq!(p.identity.on_behalf_of.as_deref(), Some("bob@example.com"));
    assert_eq!(p.identity.role.as_deref(), Some("db-reader"));
}

#[test]
fn identity_literals_in_another_form_are_load_errors() {
    let load = |text: &str| {
        let mut sources = Sources::new();
        sources.add("t.rules", text);
        Policy::from_sources(sources, PolicyOptions::default())
    };
    for (text, want) in [
        (
            r#"rule r { when identity == "Agent:Deploy-Bot" then block }"#,
            "agent:deploy-bot",
        ),
        (
            r#"rule r { when identity.on_behalf_of in ["bob@example.com", "Carol@Example.com"] then block }"#,
            "carol@example.com",
        ),
        (r#"rule r { when "Ｂｏｂ" != identity then block }"#, "bob"),
        (
            r#"rule r { when identity.role == "DB-Reader" then block }"#,
            "db-reader",
        ),
        (
            "list people = [\"Dana\"]\nrule r { when identity in people then block }",
            "dana",
        ),
    ] {
        let e = load(text).expect_err(text);
        let rendered = e.render(120);
        assert!(
            rendered.contains("E0013") && rendered.contains(&format!("write `{want}`")),
            "{text}:\n{rendered}"
        );
    }
    // Canonical literals load; other fields keep their case.
    load(
        r#"rule r { when identity == "agent:deploy-bot" and identity.role == "db-reader" and target == "Prod-DB" then block }"#,
    )
    .unwrap();
}
