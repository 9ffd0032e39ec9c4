//! Shared helpers of the rules-language benches (included with `#[path]`).

#![allow(dead_code, reason = "shared by several benches; each uses a part")]

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use gatehouse_events::payload::{
    K8sRequest, PgKind, PgStatement, RequestDetail, RequestObserved, SshRequest, SshRequestKind,
};
use gatehouse_events::{Event, EventId, Identity, Protocol};

pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_600_000, 0).unwrap_or_default()
}

pub fn event(
    n: u128,
    who: &str,
    at: DateTime<Utc>,
    protocol: Protocol,
    detail: RequestDetail,
) -> Event {
    Event::builder(
        "bench",
        RequestObserved {
            command: String::from("x"),
            detail,
            reason: None,
        },
    )
    .id(EventId::from_u128(n))
    .time(at)
    .identity(Identity::named(who))
    .protocol(protocol)
    .target("prod")
    .build()
}

pub fn pg(kind: PgKind, tables: &[&str]) -> RequestDetail {
    RequestDetail::Postgres(PgStatement {
        kind,
        tables_read: tables.iter().map(|t| (*t).to_owned()).collect(),
        phase: "simple".into(),
        statement_count: 1,
        has_where: Some(true),
        ..PgStatement::default()
    })
}

pub fn ssh_exec(argv: &[&str], host: &str) -> RequestDetail {
    RequestDetail::Ssh(SshRequest {
        kind: SshRequestKind::Exec,
        host: host.into(),
        argv: argv.iter().map(|t| (*t).to_owned()).collect(),
        program: argv.first().map(|s| (*s).to_owned()),
        programs: argv
            .first()
            .map(|s| vec![(*s).to_owned()])
            .unwrap_or_default(),
        ..SshRequest::default()
    })
}

pub fn ssh_open(host: &str) -> RequestDetail {
    RequestDetail::Ssh(SshRequest {
        kind: SshRequestKind::SessionOpen,
        host: host.into(),
        ..SshRequest::default()
    })
}

pub fn k8s(verb: &str, resource: &str, ns: &str) -> RequestDetail {
    RequestDetail::Kubernetes(K8sRequest {
        method: "GET".into(),
        path: "/api".into(),
        verb: verb.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        namespace: Some(ns.into()),
        ..K8sRequest::default()
    })
}

/// A realistic mix of request events.
pub fn mixed_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let at = t0() + Duration::milliseconds(i as i64);
            let who = format!("agent:{}", i % 97);
            let (p, d) = match i % 6 {
                0 => (
                    Protocol::Postgres,
                    pg(PgKind::Select, &["app.orders", "app.customers"]),
                ),
                1 => (Protocol::Postgres, pg(PgKind::Update, &["app.t17"])),
                2 => (Protocol::Ssh, ssh_exec(&["ls", "-la", "/var/log"], "web-1")),
                3 => (Protocol::Ssh, ssh_exec(&["prog33", "--flag7"], "host7")),
                4 => (Protocol::Kubernetes, k8s("get", "pods", "default")),
                _ => (Protocol::Kubernetes, k8s("create", "res12", "ns12")),
            };
            event(i as u128 + 1, &who, at, p, d)
        })
        .collect()
}

/// `n` stateless rules over every protocol, plus the allow rules a default-deny
/// policy needs.
pub fn stateless_rules(n: usize) -> String {
    let mut s = String::from(
        "rule allow_sql { when pg.statement.kind in [select, insert, update, delete] then allow }\n\
         rule allow_ssh { when ssh.kind in [exec, session_open] then allow }\n\
         rule allow_k8s { when k8s.verb in [get, list, create] then allow }\n",
    );
    let kinds = ["select", "update", "delete", "insert"];
    for i in 0..n.saturating_sub(3) {
        let rule = match i % 6 {
            0 => format!(
                "rule r{i} {{ when pg.statement.kind == {} and pg.statement.tables intersects [\"s{i}.t{i}\", \"s{i}.u\"] then block \"r{i}\" }}",
                kinds[i % 4]
            ),
            1 => format!(
                "rule r{i} {{ when ssh.programs contains \"prog{i}\" then require approval from \"ops\" severity low }}"
            ),
            2 => format!(
                "rule r{i} {{ when k8s.resource == \"res{i}\" and k8s.namespace in [\"ns{i}\", \"ns{}\"] then block }}",
                i + 1
            ),
            3 => format!(
                "rule r{i} {{ when pg.statement.tables intersects [\"app.t{i}\"] and identity starts_with \"agent:\" then alert severity medium tags [attack.t{i}] }}"
            ),
            4 => format!(
                "rule r{i} {{ when ssh.target.host == \"host{i}\" and ssh.argv contains \"--flag{i}\" then block }}"
            ),
            _ => format!(
                "rule r{i} {{ when k8s.verb == create and k8s.namespace == \"ns{i}\" and not (identity in [\"agent:{i}\"]) then require approval from \"sre\" }}"
            ),
        };
        s.push_str(&rule);
        s.push('\n');
    }
    s
}

/// p50 and p99 in nanoseconds of `f` over `events`, timing each call.
pub fn percentiles(
    events: &[Event],
    rounds: usize,
    mut f: impl FnMut(&Event),
) -> (u128, u128, u128) {
    let mut samples = Vec::with_capacity(events.len() * rounds);
    for _ in 0..rounds {
        for e in events {
            let start = Instant::now();
            f(e);
            samples.push(start.elapsed().as_nanos());
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99), at(0.999))
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}
