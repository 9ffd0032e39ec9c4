//! The starter policy against real events: the Postgres -> SSH -> Kubernetes chain,
//! inline tests, reload.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use gatehouse_core::policy::{
    Effect, Policy, PolicyHandle, PolicyOptions, Sources, alerts_raised, decision_made, run_tests,
};
use gatehouse_events::payload::{
    Capture, K8sRequest, PgKind, PgStatement, RequestDetail, RequestObserved, ResultObserved,
    ResultStatus, SessionClosed, SshRequest, SshRequestKind,
};
use gatehouse_events::{Event, EventId, Identity, Payload, Protocol};

fn starter_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/starter.rules")
}

fn starter() -> Policy {
    match Policy::load(&[starter_path()], PolicyOptions::default()) {
        Ok(p) => p,
        Err(e) => panic!("starter policy does not load:\n{}", e.render(100)),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Ids(u128);

impl Ids {
    fn next(&mut self) -> EventId {
        self.0 += 1;
        EventId::from_u128(self.0)
    }
}

fn request(
    ids: &mut Ids,
    who: &str,
    at: DateTime<Utc>,
    protocol: Protocol,
    detail: RequestDetail,
) -> Event {
    Event::builder(
        "gw-test",
        RequestObserved {
            command: String::new(),
            detail,
            reason: None,
        },
    )
    .id(ids.next())
    .time(at)
    .identity(Identity::named(who))
    .protocol(protocol)
    .target("t")
    .session(format!("{who}-{protocol}"))
    .build()
}

fn recon(ids: &mut Ids, who: &str, at: DateTime<Utc>) -> Event {
    let pg = PgStatement {
        kind: PgKind::Select,
        tables_read: vec!["infra.hosts".into()],
        columns: vec!["hostname".into()],
        phase: "simple".into(),
        statement_count: 1,
        ..PgStatement::default()
    };
    request(
        ids,
        who,
        at,
        Protocol::Postgres,
        RequestDetail::Postgres(pg),
    )
}

fn result_of(
    ids: &mut Ids,
    req: &Event,
    capture: &str,
    hosts: &[&str],
    at: DateTime<Utc>,
) -> Event {
    let r = ResultObserved {
        request: Some(req.id),
        rows: Some(hosts.len() as u64),
        captures: vec![Capture {
            name: capture.into(),
            source: "hostname".into(),
            values: hosts.iter().map(|h| (*h).to_owned()).collect(),
            truncated: false,
            hosts: vec![],
        }],
        ..ResultObserved::default()
    };
    let mut e = req.clone();
    e.id = ids.next();
    e.time = at;
    e.payload = Payload::ResultObserved(r);
    e
}

fn hop(ids: &mut Ids, who: &str, host: &str, at: DateTime<Utc>) -> Event {
    let ssh = SshRequest {
        kind: SshRequestKind::SessionOpen,
        host: host.into(),
        // What the engine's resolver gives a name it cannot resolve.
        hosts: gatehouse_events::host::target_keys([host], []),
        ..SshRequest::default()
    };
    request(ids, who, at, Protocol::Ssh, RequestDetail::Ssh(ssh))
}

fn pod(ids: &mut Ids, who: &str, at: DateTime<Utc>) -> Event {
    let k = K8sRequest {
        method: "POST".into(),
        path: "/api/v1/namespaces/default/pods".into(),
        verb: "create".into(),
        api_version: "v1".into(),
        resource: "pods".into(),
        namespace: Some("default".into()),
        ..K8sRequest::default()
    };
    request(
        ids,
        who,
        at,
        Protocol::Kubernetes,
        RequestDetail::Kubernetes(k),
    )
}

const CAPTURE: &str = "pg_ssh_k8s.recon.hosts";

#[test]
fn chain_requires_approval_on_the_third_event_and_not_before() {
    let policy = starter();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    let v = policy.decide(&r, None);
    assert_ne!(v.effect, Effect::RequireApproval);
    // Both chains that start with recon (`pg_ssh_k8s`, `pg_ssh_db`) ask for the
    // hostname column.
    assert_eq!(
        v.captures.len(),
        2,
        "the recon step asks for the hostname column"
    );
    let capture = v.captures.iter().find(|c| &*c.name == CAPTURE).unwrap();
    assert_eq!(&*capture.arg, "hostname");
    let res = result_of(
        &mut ids,
        &r,
        CAPTURE,
        &["db-1", "bastion"],
        t0() + Duration::seconds(1),
    );
    assert_eq!(policy.on_result(&res), 1);
    let h = hop(&mut ids, "agent:a", "bastion", t0() + Duration::minutes(2));
    let v = policy.decide(&h, None);
    assert_eq!(v.effect, Effect::Allow);
    assert!(!v.matched("pg_ssh_k8s"));
    let p = pod(&mut ids, "agent:a", t0() + Duration::minutes(4));
    let v = policy.decide(&p, None);
    assert_eq!(v.effect, Effect::RequireApproval);
    let approval = v.approval().unwrap();
    assert_eq!(&*approval.group, "sre-oncall");
    assert_eq!(approval.timeout_micros, 15 * 60 * 1_000_000);
    // Events for the log: the decision and a Detection Finding with every stage.
    let d = decision_made(&v, p.id, policy.version());
    assert!(d.rules.contains(&"pg_ssh_k8s".to_owned()));
    // The rules that decided (the hold) apart from those that merely matched.
    assert!(d.decided_by.contains(&"pg_ssh_k8s".to_owned()), "{d:?}");
    assert!(d.decided_by.iter().all(|r| d.rules.contains(r)), "{d:?}");
    let alerts = alerts_raised(&v, p.id);
    // One finding for the chain's occurrence, not one per rule along it.
    assert_eq!(
        alerts.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        ["pg_ssh_k8s"]
    );
    let chain = alerts.iter().find(|a| a.sequence).unwrap();
    assert_eq!(chain.related_events, vec![r.id, h.id, p.id]);
    assert_eq!(chain.severity.ocsf_id(), 5);
    // Each step was flagged as staged for the reviewer's summary.
    assert!(v.staged);
}

/// The outcome of a request, as a proxy records it.
fn outcome(ids: &mut Ids, req: &Event, status: ResultStatus, at: DateTime<Utc>) -> Event {
    let mut e = req.clone();
    e.id = ids.next();
    e.time = at;
    e.payload = Payload::ResultObserved(ResultObserved {
        request: Some(req.id),
        status,
        ..ResultObserved::default()
    });
    e
}

/// A refused completing step (blocked, or held and denied) does not use the chain up:
/// the retry is held and alerted again. Only a completing step that ran does, and a
/// policy rebuilt from the same events agrees.
#[test]
fn a_refused_completing_step_leaves_the_chain_armed_for_the_retry() {
    let policy = starter();
    let mut ids = Ids(0);
    let mut log: Vec<Event> = Vec::new();
    let r = recon(&mut ids, "agent:a", t0());
    policy.decide(&r, None);
    let res = result_of(&mut ids, &r, CAPTURE, &["bastion"], t0());
    policy.on_result(&res);
    let h = hop(&mut ids, "agent:a", "bastion", t0() + Duration::minutes(1));
    policy.decide(&h, None);
    log.extend([r, res, h]);
    let mut t = t0() + Duration::minutes(2);
    // Denied twice: each retry completes the chain again.
    for attempt in 0..2 {
        let p = pod(&mut ids, "agent:a", t);
        let v = policy.decide(&p, None);
        assert_eq!(v.effect, Effect::RequireApproval, "attempt {attempt}");
        assert!(
            v.alerts.iter().any(|a| a.sequence),
            "attempt {attempt} alerted"
        );
        let denied = outcome(&mut ids, &p, ResultStatus::Refused, t);
        policy.on_result(&denied);
        log.extend([p, denied]);
        t += Duration::seconds(30);
    }
    // Approved and run: used up.
    let p = pod(&mut ids, "agent:a", t);
    assert_eq!(policy.decide(&p, None).effect, Effect::RequireApproval);
    let ran = outcome(&mut ids, &p, ResultStatus::Ok, t + Duration::seconds(5));
    policy.on_result(&ran);
    log.extend([p, ran]);
    // Only the other chain the recon started (`pg_ssh_db`) is left.
    assert_eq!(policy.live_partials(), 1);
    let v = policy.decide(&pod(&mut ids, "agent:a", t + Duration::minutes(1)), None);
    assert_eq!(v.effect, Effect::Allow);
    assert!(v.alerts.is_empty());

    // Rebuilt from the log up to the second refusal: still armed.
    let rebuilt = starter();
    for e in log.iter().take(7) {
        rebuilt.replay(e);
    }
    let v = rebuilt.decide(&pod(&mut ids, "agent:a", t), None);
    assert_eq!(v.effect, Effect::RequireApproval);
    // Rebuilt from the whole log: used up.
    let rebuilt = starter();
    for e in &log {
        rebuilt.replay(e);
    }
    assert_eq!(rebuilt.live_partials(), 1);
}

#[test]
fn chain_with_another_identity_on_the_hop_does_not_match() {
    let policy = starter();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    policy.decide(&r, None);
    policy.on_result(&result_of(&mut ids, &r, CAPTURE, &["bastion"], t0()));
    assert_eq!(
        policy
            .decide(
                &hop(&mut ids, "agent:b", "bastion", t0() + Duration::minutes(1)),
                None
            )
            .effect,
        Effect::Allow
    );
    for who in ["agent:a", "agent:b"] {
        let v = policy.decide(&pod(&mut ids, who, t0() + Duration::minutes(2)), None);
        assert_eq!(v.effect, Effect::Allow, "{who}");
        assert!(v.alerts.is_empty());
    }
}

#[test]
fn chain_needs_a_captured_host() {
    let policy = starter();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    policy.decide(&r, None);
    policy.on_result(&result_of(&mut ids, &r, CAPTURE, &["db-1"], t0()));
    policy.decide(
        &hop(
            &mut ids,
            "agent:a",
            "somewhere-else",
            t0() + Duration::minutes(1),
        ),
        None,
    );
    let v = policy.decide(&pod(&mut ids, "agent:a", t0() + Duration::minutes(2)), None);
    assert_eq!(v.effect, Effect::Allow);
}

#[test]
fn chain_window_expiry_resets_it() {
    let policy = starter();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    policy.decide(&r, None);
    policy.on_result(&result_of(&mut ids, &r, CAPTURE, &["bastion"], t0()));
    policy.decide(
        &hop(&mut ids, "agent:a", "bastion", t0() + Duration::minutes(10)),
        None,
    );
    // 16 minutes after the hop: past the pod stage's 15m window.
    let v = policy.decide(
        &pod(&mut ids, "agent:a", t0() + Duration::minutes(26)),
        None,
    );
    assert_eq!(v.effect, Effect::Allow);
    assert_eq!(policy.live_partials(), 0);
    // A fresh chain inside the windows completes again.
    let t1 = t0() + Duration::hours(1);
    let r = recon(&mut ids, "agent:a", t1);
    policy.decide(&r, None);
    policy.on_result(&result_of(&mut ids, &r, CAPTURE, &["bastion"], t1));
    policy.decide(
        &hop(&mut ids, "agent:a", "bastion", t1 + Duration::minutes(1)),
        None,
    );
    let v = policy.decide(&pod(&mut ids, "agent:a", t1 + Duration::minutes(2)), None);
    assert_eq!(v.effect, Effect::RequireApproval);
}

#[test]
fn state_is_rebuilt_by_replay() {
    let live = starter();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    let res = result_of(&mut ids, &r, CAPTURE, &["bastion"], t0());
    let h = hop(&mut ids, "agent:a", "bastion", t0() + Duration::minutes(1));
    let closed = {
        let mut e = h.clone();
        e.id = ids.next();
        e.payload = Payload::SessionClosed(SessionClosed::default());
        e
    };
    let log = [r, res, h, closed];
    for e in &log {
        match &e.payload {
            Payload::RequestObserved(_) => {
                live.decide(e, None);
            }
            _ => {
                live.replay(e);
            }
        }
    }
    let restarted = starter();
    for e in &log {
        restarted.replay(e);
    }
    assert_eq!(restarted.live_partials(), live.live_partials());
    let p = pod(&mut ids, "agent:a", t0() + Duration::minutes(3));
    assert_eq!(restarted.decide(&p, None).effect, Effect::RequireApproval);
    assert_eq!(live.decide(&p, None).effect, Effect::RequireApproval);
}

#[test]
fn reload_keeps_last_good_and_carries_state() {
    let handle = PolicyHandle::load(&[starter_path()], PolicyOptions::default()).unwrap();
    let mut ids = Ids(0);
    let r = recon(&mut ids, "agent:a", t0());
    handle.decide(&r, None);
    handle.on_result(&result_of(&mut ids, &r, CAPTURE, &["bastion"], t0()));
    handle.decide(
        &hop(&mut ids, "agent:a", "bastion", t0() + Duration::minutes(1)),
        None,
    );
    let before = handle.current().version().to_owned();
    // A bad file: rejected with diagnostics, the last good policy stays.
    let mut bad = Sources::new();
    bad.add(
        "bad.rules",
        "rule broken { when pg.statment.kind == select then allow }",
    );
    let err = handle.reload_sources(bad).unwrap_err();
    assert!(err.render(100).contains("E0002"), "{}", err.render(100));
    assert_eq!(handle.current().version(), before);
    // A good change that leaves the sequence alone: the partial match survives.
    let text = std::fs::read_to_string(starter_path()).unwrap();
    let mut good = Sources::new();
    good.add(
        "starter.rules",
        format!("{text}\nrule extra {{ when ssh.program == \"rm\" then block }}\n"),
    );
    let report = handle.reload_sources(good).unwrap();
    assert_ne!(report.version, before);
    // The recon started `pg_ssh_k8s` (and its hop advanced it) and `pg_ssh_db`.
    assert_eq!(report.live_partials, 2);
    let (v, _) = handle.decide(&pod(&mut ids, "agent:a", t0() + Duration::minutes(2)), None);
    assert_eq!(v.effect, Effect::RequireApproval);
}

#[test]
fn starter_inline_tests_pass() {
    let sources = gatehouse_core::policy::read_sources(&[starter_path()]).unwrap();
    let outcomes = run_tests(sources, PolicyOptions::default()).unwrap();
    assert_eq!(outcomes.len(), 10);
    for o in &outcomes {
        let detail: Vec<String> = o
            .failures
            .iter()
            .map(|f| format!("{}: {}\n{}", f.location, f.step, f.diff()))
            .collect();
        assert!(
            o.failures.is_empty(),
            "test `{}` failed:\n{}",
            o.name,
            detail.join("\n")
        );
    }
}

#[test]
fn inline_test_failures_are_reported_with_a_diff() {
    let mut sources = Sources::new();
    sources.add(
        "t.rules",
        r#"rule ok { when ssh.program == "ls" then allow }
test "wrong on purpose" {
  at 09:00 ssh { identity = "a", ssh.command = "ls -l" } => block
}"#,
    );
    let outcomes = run_tests(sources, PolicyOptions::default()).unwrap();
    let f = &outcomes[0].failures[0];
    assert_eq!(f.location, "t.rules:3:3");
    assert_eq!(f.diff(), "- effect block\n+ effect allow\n");
}

#[test]
fn rules_doc_lists_every_field() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md"),
    )
    .unwrap();
    for (path, ..) in gatehouse_core::policy::fields::FIELDS {
        assert!(
            doc.contains(&format!("| `{path}` |")),
            "docs/rules.md does not document `{path}`"
        );
    }
}
