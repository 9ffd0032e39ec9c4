//! Differential: sequence rules evaluated inline by the engine and over the shipped
//! Parquet audit by `backfill` find the same matches.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gatehouse_core::engine::{Engine, EngineOptions, SessionInfo};
use gatehouse_core::identity::{Authenticator, IssueRequest, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::backfill::backfill;
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions};
use gatehouse_dsl::Sources;
use gatehouse_events::payload::{
    Capture, K8sRequest, Payload, PgKind, PgStatement, RequestDetail, ResultObserved, SshRequest,
    SshRequestKind,
};
use gatehouse_events::{EventId, Protocol};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink};
use gatehouse_ship::{ShipOptions, Source};

const RULES: &str = r#"
default allow

list infra_tables = ["infra.hosts"]

sequence chain by identity within 30m {
  stage recon: pg.statement.tables intersects infra_tables
    capture hosts = pg.result.column("hostname") limit 16
  stage hop: ssh.session.open and ssh.target.host in recon.hosts
  stage pod: k8s.verb == create and k8s.resource == "pods"
  then alert
  severity high
}

sequence ssh_then_pod by identity within 10m {
  stage login: ssh.session.open
  stage pod: k8s.verb == create
  then alert
}
"#;

type Match = (String, EventId, Vec<EventId>);

#[test]
fn inline_and_backfilled_sequence_matches_agree() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let log = Arc::new(EventLog::open(LogConfig::new(tmp.path().join("log"))).unwrap());
        let mut sources = Sources::new();
        sources.add("diff.rules", RULES);
        let policy = PolicyHandle::new(
            Policy::from_sources(sources.clone(), PolicyOptions::default()).unwrap(),
            PolicyOptions::default(),
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let targets = [
            ("db", Protocol::Postgres),
            ("web", Protocol::Ssh),
            ("k8s", Protocol::Kubernetes),
        ]
        .map(|(n, p)| (n.to_owned(), p))
        .into();
        let auth = Authenticator::new(TokenKeys::from_pkcs8(key.as_ref()).unwrap(), targets);
        let engine =
            Engine::open(EngineOptions::new("gw-diff"), log.clone(), policy, auth).unwrap();

        let session = |agent: String, target: &'static str, protocol| {
            let engine = engine.clone();
            async move {
                let req = IssueRequest {
                    agent,
                    target: target.into(),
                    ttl: Duration::from_secs(600),
                    on_behalf_of: None,
                    issued_by: None,
                };
                let (token, _) = engine.issue_token(&req).await.unwrap();
                let p = engine
                    .authenticate(&token, protocol, None, None, None)
                    .await
                    .unwrap();
                engine
                    .open_session(p, SessionInfo::default())
                    .await
                    .unwrap()
            }
        };
        // Six agents: full chains, chains to a host never read, benign reads, logins
        // without pods, in interleaved order.
        for round in 0..3 {
            for agent in 0..6u32 {
                let who = format!("agent:{agent}");
                let host = format!("node-{}.internal", agent % 3);
                let pg = session(who.clone(), "db", Protocol::Postgres).await;
                if agent % 2 == 0 {
                    let d = engine
                        .decide(
                            &pg,
                            "SELECT hostname FROM infra.hosts".into(),
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
                    let captures = d
                        .captures()
                        .iter()
                        .map(|c| Capture {
                            name: c.name.to_string(),
                            source: c.arg.to_string(),
                            values: vec![host.clone()],
                            truncated: false,
                            hosts: vec![],
                        })
                        .collect();
                    engine
                        .record_result(
                            &pg,
                            ResultObserved {
                                request: Some(d.request),
                                rows: Some(1),
                                captures,
                                ..ResultObserved::default()
                            },
                        )
                        .await
                        .unwrap();
                }
                if agent != 5 {
                    let ssh = session(who.clone(), "web", Protocol::Ssh).await;
                    let target_host = if agent == 4 && round == 1 {
                        "elsewhere.internal".to_owned()
                    } else {
                        host.clone()
                    };
                    engine
                        .decide(
                            &ssh,
                            format!("login {target_host}"),
                            RequestDetail::Ssh(SshRequest {
                                kind: SshRequestKind::SessionOpen,
                                host: target_host,
                                ..SshRequest::default()
                            }),
                        )
                        .await
                        .unwrap();
                }
                if agent % 3 != 2 {
                    let k8s = session(who.clone(), "k8s", Protocol::Kubernetes).await;
                    engine
                        .decide(
                            &k8s,
                            "POST /api/v1/namespaces/default/pods".into(),
                            RequestDetail::Kubernetes(K8sRequest {
                                method: "POST".into(),
                                verb: "create".into(),
                                resource: "pods".into(),
                                api_version: "v1".into(),
                                ..K8sRequest::default()
                            }),
                        )
                        .await
                        .unwrap();
                }
            }
        }
        // Inline matches: sequence alerts in the log.
        let inline: BTreeSet<Match> = LogReader::open(log.dir(), 0)
            .filter_map(|r| match r.unwrap().event().unwrap().payload {
                Payload::AlertRaised(a) if a.sequence => {
                    Some((a.rule, a.request.unwrap(), a.related_events))
                }
                _ => None,
            })
            .collect();
        assert!(
            inline.iter().any(|m| m.0 == "chain") && inline.iter().any(|m| m.0 == "ssh_then_pod"),
            "{inline:?}"
        );

        // The same evaluator over the log in log order.
        let log_events: Vec<gatehouse_events::Event> = LogReader::open(log.dir(), 0)
            .map(|r| r.unwrap().event().unwrap())
            .collect();
        let from_log: BTreeSet<Match> = backfill(
            &Policy::from_sources(sources.clone(), PolicyOptions::default()).unwrap(),
            log_events.clone(),
            true,
        )
        .into_iter()
        .map(|m| (m.rule, m.request, m.related))
        .collect();
        let order = |events: &[gatehouse_events::Event]| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.identity_name() == Some("agent:4"))
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e.time.format("%H:%M:%S%.6f"),
                        e.id,
                        e.event_type()
                    )
                })
                .collect()
        };
        assert_eq!(
            inline,
            from_log,
            "inline and log-order backfill differ:\n{}",
            order(&log_events).join("\n")
        );

        // Ship to Parquet, read back with DataFusion, backfill.
        let audit_dir = tmp.path().join("audit");
        let mut opts = ShipOptions::new(tmp.path().join("cursors"));
        opts.stop_at = Some(log.next_offset());
        let (_stop, rx) = tokio::sync::watch::channel(false);
        gatehouse_ship::run(
            Source::Live(log.clone()),
            ParquetSink::new(ParquetOptions::new(&audit_dir)).unwrap(),
            opts,
            rx,
        )
        .await
        .unwrap();
        let audit = gatehouse_analytics::Audit::open(&audit_dir).await.unwrap();
        let fresh = Policy::from_sources(sources, PolicyOptions::default()).unwrap();
        let mut stream = audit.events_in_order(None).await.unwrap();
        let mut backfilled = BTreeSet::new();
        let mut parquet_events = Vec::new();
        while let Some(batch) = stream.next().await {
            let events = gatehouse_events::arrow::from_record_batch(&batch.unwrap()).unwrap();
            parquet_events.extend(events.iter().cloned());
            for m in backfill(&fresh, events, true) {
                backfilled.insert((m.rule, m.request, m.related));
            }
        }
        assert_eq!(
            inline,
            backfilled,
            "inline and backfilled matches differ; log order:\n{}\nParquet order:\n{}",
            order(&log_events).join("\n"),
            order(&parquet_events).join("\n")
        );
        eprintln!("{} sequence matches agree", inline.len());
    });
}
