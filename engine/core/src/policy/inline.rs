//! Inline tests of `.rules` files: a timeline of events built from compact field
//! assignments, run through a fresh policy, compared with the expected decisions.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use gatehouse_dsl::ast::{Expectation, ExpectedEffect, Literal, StepTime, TestStep, TestValue};
use gatehouse_dsl::{Effect, Sources, Verdict, time};
use gatehouse_events::payload::{
    ApprovalDenied, ApprovalGranted, Capture, CredentialRevoked, K8sRequest, PgKind, PgStatement,
    RequestDetail, RequestObserved, ResultObserved, ResultStatus, SessionClosed, SessionOpened,
    SshRequest, SshRequestKind,
};
use gatehouse_events::{Event, EventId, Identity, Payload, Protocol};

use super::{Policy, PolicyError, PolicyOptions};

/// Base day of test timelines: 2026-01-05, a Monday.
pub const BASE_DAY: &str = "2026-01-05";

/// The result of one inline test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// File the test is in.
    pub file: String,
    /// Test name.
    pub name: String,
    /// Steps run.
    pub steps: usize,
    /// Failed steps (empty when the test passed).
    pub failures: Vec<StepFailure>,
}

/// A step whose outcome differed from its expectation.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// `file:line:col` of the step.
    pub location: String,
    /// The step as written (canonical form).
    pub step: String,
    /// Expected, one item per line.
    pub expected: Vec<String>,
    /// Found, one item per line.
    pub actual: Vec<String>,
}

impl StepFailure {
    /// A unified-diff-like rendering: `-` expected, `+` found.
    pub fn diff(&self) -> String {
        let mut out = String::new();
        for e in &self.expected {
            if !self.actual.contains(e) {
                let _ = writeln!(out, "- {e}");
            }
        }
        for a in &self.actual {
            if !self.expected.contains(a) {
                let _ = writeln!(out, "+ {a}");
            }
        }
        out
    }
}

/// Runs every inline test of a policy's files, each against a fresh sequence state.
pub fn run_tests(
    sources: Sources,
    options: PolicyOptions,
) -> Result<Vec<TestOutcome>, PolicyError> {
    let policy = Policy::from_sources(sources, options)?;
    let base = time::parse_date(BASE_DAY).unwrap_or(0) * 86_400 * time::SECOND;
    let mut outcomes = Vec::new();
    for test in policy.rules().tests() {
        let fresh = Policy::from_sources(policy.rules().sources().clone(), options)?;
        let file = policy
            .rules()
            .sources()
            .get(test.name.span.file)
            .map_or_else(String::new, |s| s.name.clone());
        let mut runner = Runner {
            now: base,
            envelope: Envelope::default(),
            last_request: None,
            seq: 0,
        };
        let mut failures = Vec::new();
        for step in &test.steps {
            let location = policy
                .rules()
                .sources()
                .get(step.span.file)
                .map(|s| {
                    let (l, c) = s.line_col(step.span.start as usize);
                    format!("{}:{l}:{c}", s.name)
                })
                .unwrap_or_default();
            let shown = policy.rules().sources().slice(step.span).trim().to_owned();
            match runner.run(&fresh, step) {
                Ok(Some(verdict)) => {
                    if let Some((expected, actual)) = compare(step, &verdict) {
                        failures.push(StepFailure {
                            location,
                            step: shown,
                            expected,
                            actual,
                        });
                    }
                }
                Ok(None) => {}
                Err(message) => failures.push(StepFailure {
                    location,
                    step: shown,
                    expected: vec!["a valid step".to_owned()],
                    actual: vec![message],
                }),
            }
        }
        outcomes.push(TestOutcome {
            file,
            name: test.name.node.clone(),
            steps: test.steps.len(),
            failures,
        });
    }
    Ok(outcomes)
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Mask => "mask",
        Effect::RequireApproval => "require approval",
        Effect::Block => "block",
    }
}

/// `None` when the verdict meets every expectation; else (expected, actual) lines.
fn compare(step: &TestStep, v: &Verdict) -> Option<(Vec<String>, Vec<String>)> {
    if step.expect.is_empty() {
        return None;
    }
    let mut ok = true;
    let mut expected = Vec::new();
    for e in &step.expect {
        match &e.node {
            Expectation::Effect(want) => {
                let want = match want {
                    ExpectedEffect::Allow => Effect::Allow,
                    ExpectedEffect::Mask => Effect::Mask,
                    ExpectedEffect::RequireApproval => Effect::RequireApproval,
                    ExpectedEffect::Block => Effect::Block,
                };
                ok &= v.effect == want;
                expected.push(format!("effect {}", effect_name(want)));
            }
            Expectation::Alert(name) => {
                ok &= v.alerts.iter().any(|a| &*a.rule == name);
                expected.push(format!("alert {name}"));
            }
            Expectation::NoAlert => {
                ok &= v.alerts.is_empty();
            }
            Expectation::Rule(name) => {
                ok &= v.matched(name);
                expected.push(format!("rule {name}"));
            }
        }
    }
    if ok {
        return None;
    }
    let mut actual = vec![format!("effect {}", effect_name(v.effect))];
    actual.extend(v.alerts.iter().map(|a| format!("alert {}", a.rule)));
    actual.extend(v.matched.iter().map(|m| format!("rule {}", m.name)));
    if let Some(r) = &v.reason {
        actual.push(format!("reason {r:?}"));
    }
    let wants_rules = step
        .expect
        .iter()
        .any(|e| matches!(e.node, Expectation::Rule(_)));
    if !wants_rules {
        actual.retain(|a| !a.starts_with("rule "));
    }
    Some((expected, actual))
}

#[derive(Debug, Clone, Default)]
struct Envelope {
    identity: Option<Identity>,
    target: Option<String>,
    session: Option<String>,
    client_ip: Option<IpAddr>,
}

struct Runner {
    now: i64,
    envelope: Envelope,
    last_request: Option<Event>,
    seq: u128,
}

fn scalar(v: &TestValue) -> Result<String, String> {
    match v {
        TestValue::Scalar(Literal::Str(s) | Literal::Symbol(s)) => Ok(s.clone()),
        TestValue::Scalar(Literal::Int(i)) => Ok(i.to_string()),
        TestValue::Scalar(Literal::Bool(b)) => Ok(b.to_string()),
        TestValue::Scalar(Literal::Duration(s) | Literal::TimeOfDay(s) | Literal::Date(s)) => {
            Ok(s.clone())
        }
        _ => Err("expected one value, found a list".to_owned()),
    }
}

fn list(v: &TestValue) -> Result<Vec<String>, String> {
    match v {
        TestValue::List(items) => items
            .iter()
            .map(|l| scalar(&TestValue::Scalar(l.clone())))
            .collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn boolean(v: &TestValue) -> Result<bool, String> {
    match v {
        TestValue::Scalar(Literal::Bool(b)) => Ok(*b),
        _ => Err("expected `true` or `false`".to_owned()),
    }
}

fn int(v: &TestValue) -> Result<i64, String> {
    match v {
        TestValue::Scalar(Literal::Int(i)) => Ok(*i),
        _ => Err("expected a number".to_owned()),
    }
}

impl Runner {
    fn run(&mut self, policy: &Policy, step: &TestStep) -> Result<Option<Verdict>, String> {
        self.now = match &step.time {
            StepTime::After(d) => self.now + time::parse_duration(&d.node).ok_or("bad duration")?,
            StepTime::At { date, time: tod } => {
                let day = match date {
                    Some(d) => time::parse_date(&d.node).ok_or("bad date")?,
                    None => time::parse_date(BASE_DAY).unwrap_or(0),
                };
                let secs = time::parse_time_of_day(&tod.node).ok_or("bad time of day")?;
                day * 86_400 * time::SECOND + i64::from(secs) * time::SECOND
            }
        };
        self.seq += 1;
        let event = self.build(step)?;
        match &event.payload {
            Payload::RequestObserved(_) => {
                let v = policy.decide(&event, self.envelope.client_ip);
                self.last_request = Some(event);
                Ok(Some(v))
            }
            Payload::ResultObserved(_) => {
                policy.on_result(&event);
                Ok(None)
            }
            _ => {
                policy.observe(&event);
                Ok(None)
            }
        }
    }

    fn build(&mut self, step: &TestStep) -> Result<Event, String> {
        let kind = step.kind.node.as_str();
        // Envelope fields first: they carry over to later steps.
        for f in &step.fields {
            let v = &f.value.node;
            match f.name.node.as_str() {
                "identity" => {
                    self.envelope.identity = Some(Identity::named(scalar(v)?));
                }
                "identity.on_behalf_of" => {
                    if let Some(i) = self.envelope.identity.as_mut() {
                        i.on_behalf_of = Some(scalar(v)?);
                    }
                }
                "identity.role" => {
                    if let Some(i) = self.envelope.identity.as_mut() {
                        i.role = Some(scalar(v)?);
                    }
                }
                "target" => self.envelope.target = Some(scalar(v)?),
                "session" => self.envelope.session = Some(scalar(v)?),
                "client.ip" => {
                    self.envelope.client_ip = Some(
                        scalar(v)?
                            .parse()
                            .map_err(|_| "bad ip address".to_owned())?,
                    );
                }
                _ => {}
            }
        }
        let (payload, protocol) = match kind {
            "pg" => (self.postgres(step)?, Some(Protocol::Postgres)),
            "ssh" => (self.ssh(step)?, Some(Protocol::Ssh)),
            "k8s" => (self.kubernetes(step)?, Some(Protocol::Kubernetes)),
            "result" => return self.result(step),
            "session_opened" => (
                Payload::SessionOpened(SessionOpened {
                    client_addr: self.envelope.client_ip.map(|ip| ip.to_string()),
                    ..SessionOpened::default()
                }),
                None,
            ),
            "session_closed" => {
                let mut reason = "client_closed".to_owned();
                for f in &step.fields {
                    if f.name.node == "session.close_reason" {
                        reason = scalar(&f.value.node)?;
                    }
                }
                (
                    Payload::SessionClosed(SessionClosed {
                        reason,
                        duration_ms: None,
                    }),
                    None,
                )
            }
            "credential_revoked" => {
                let mut credential_id = String::new();
                for f in &step.fields {
                    if f.name.node == "identity.credential" {
                        credential_id = scalar(&f.value.node)?;
                    }
                }
                (
                    Payload::CredentialRevoked(CredentialRevoked {
                        credential_id,
                        revoked_by: None,
                        reason: None,
                    }),
                    None,
                )
            }
            "approval_granted" => (
                Payload::ApprovalGranted(ApprovalGranted {
                    approval_id: format!("test-{}", self.seq),
                    reviewer: "reviewer".to_owned(),
                    valid_until: None,
                }),
                None,
            ),
            "approval_denied" => (
                Payload::ApprovalDenied(ApprovalDenied {
                    approval_id: format!("test-{}", self.seq),
                    reviewer: "reviewer".to_owned(),
                    reason: String::new(),
                }),
                None,
            ),
            other => return Err(format!("unknown test event kind `{other}`")),
        };
        Ok(self.envelope_event(payload, protocol))
    }

    fn envelope_event(&self, payload: Payload, protocol: Option<Protocol>) -> Event {
        let time = DateTime::<Utc>::from_timestamp_micros(self.now).unwrap_or_default();
        let mut b = Event::builder("test", payload)
            .id(EventId::from_u128(self.seq))
            .time(time);
        if let Some(i) = &self.envelope.identity {
            b = b.identity(i.clone());
        }
        if let Some(t) = &self.envelope.target {
            b = b.target(t.clone());
        }
        if let Some(s) = &self.envelope.session {
            b = b.session(s.clone());
        }
        if let Some(p) = protocol {
            b = b.protocol(p);
        }
        b.build()
    }

    fn postgres(&self, step: &TestStep) -> Result<Payload, String> {
        let mut p = PgStatement {
            kind: PgKind::Select,
            phase: "simple".to_owned(),
            statement_count: 1,
            ..PgStatement::default()
        };
        let mut command = String::new();
        for f in &step.fields {
            let v = &f.value.node;
            match f.name.node.as_str() {
                "pg.statement.kind" => {
                    let k: String = scalar(v)?;
                    p.kind =
                        PgKind::parse(&k).ok_or_else(|| format!("unknown statement kind `{k}`"))?;
                }
                "pg.statement.text" => command = scalar(v)?,
                "pg.statement.tables" | "pg.statement.tables_read" => p.tables_read = list(v)?,
                "pg.statement.tables_written" => p.tables_written = list(v)?,
                "pg.statement.columns" => p.columns = list(v)?,
                "pg.statement.functions" => p.functions = list(v)?,
                "pg.statement.dangerous" => p.dangerous = list(v)?,
                "pg.statement.has_where" => p.has_where = Some(boolean(v)?),
                "pg.statement.index" => p.statement_index = u32::try_from(int(v)?).unwrap_or(0),
                "pg.statement.count" => p.statement_count = u32::try_from(int(v)?).unwrap_or(1),
                "pg.statement.ddl_target" => p.ddl_target = Some(scalar(v)?),
                "pg.statement.privilege_change" => p.privilege_change = Some(scalar(v)?),
                "pg.statement.transaction_control" => p.transaction_control = Some(scalar(v)?),
                "pg.statement.phase" => p.phase = scalar(v)?,
                "pg.statement.parse_error" => p.parse_error = Some(scalar(v)?),
                "pg.statement.unresolved" => p.unresolved = Some(scalar(v)?),
                "pg.statement.fallback" => p.fallback = Some(scalar(v)?),
                "pg.statement.parsed" => {
                    if !boolean(v)? {
                        p.parse_error = Some("unparsed".to_owned());
                        p.kind = PgKind::Unparsed;
                    }
                }
                other => not_for(other, "pg")?,
            }
        }
        Ok(Payload::RequestObserved(RequestObserved {
            reason: None,
            command,
            detail: RequestDetail::Postgres(p),
        }))
    }

    fn ssh(&self, step: &TestStep) -> Result<Payload, String> {
        let mut s = SshRequest {
            kind: SshRequestKind::Exec,
            ..SshRequest::default()
        };
        let mut command = String::new();
        for f in &step.fields {
            let v = &f.value.node;
            match f.name.node.as_str() {
                "ssh.kind" => {
                    let k = scalar(v)?;
                    s.kind = ssh_kind(&k).ok_or_else(|| format!("unknown ssh kind `{k}`"))?;
                }
                "ssh.session.open" => {
                    if boolean(v)? {
                        s.kind = SshRequestKind::SessionOpen;
                    }
                }
                "ssh.target.host" => s.host = scalar(v)?,
                "ssh.target.hosts" => s.hosts = list(v)?,
                "ssh.command" => command = scalar(v)?,
                "ssh.argv" => s.argv = list(v)?,
                "ssh.program" => s.program = Some(scalar(v)?),
                "ssh.programs" => s.programs = list(v)?,
                "ssh.commands" => s.commands = list(v)?,
                "ssh.dynamic" => s.dynamic = Some(scalar(v)?),
                "ssh.inline_code" => s.inline_code = list(v)?,
                "ssh.fed_code" => s.fed_code = Some(scalar(v)?),
                "ssh.scripts" => s.scripts = list(v)?,
                "ssh.redirects" => s.redirects = list(v)?,
                "ssh.writes" => s.writes = list(v)?,
                "ssh.parse_error" => s.parse_error = Some(scalar(v)?),
                "ssh.runs_written" => s.runs_written = Some(scalar(v)?),
                "ssh.urls" => s.urls = list(v)?,
                "ssh.transfer" => s.transfer = Some(scalar(v)?),
                "ssh.pivot" => s.pivot = list(v)?,
                "ssh.pty" => s.pty = boolean(v)?,
                "ssh.forward.host" => s.forward_host = Some(scalar(v)?),
                "ssh.forward.port" => {
                    s.forward_port = Some(u16::try_from(int(v)?).map_err(|_| "bad port")?);
                }
                "ssh.sftp.op" => s.sftp_op = Some(scalar(v)?),
                "ssh.sftp.path" => s.path = Some(scalar(v)?),
                "ssh.sftp.path2" => s.path2 = Some(scalar(v)?),
                "ssh.process.pid" => {
                    s.process.get_or_insert_default().pid =
                        u32::try_from(int(v)?).map_err(|_| "bad pid")?;
                }
                "ssh.process.exe" => s.process.get_or_insert_default().exe = scalar(v)?,
                "ssh.process.cwd" => s.process.get_or_insert_default().cwd = scalar(v)?,
                "ssh.process.parents" => s.process.get_or_insert_default().parents = list(v)?,
                "ssh.process.interpreter" => {
                    s.process.get_or_insert_default().interpreter = Some(scalar(v)?);
                }
                "ssh.process.anonymous" => {
                    s.process.get_or_insert_default().anonymous = boolean(v)?;
                }
                "ssh.process.killed" => {
                    s.process.get_or_insert_default().killed = Some(scalar(v)?);
                }
                "ssh.process.tasks" => {
                    s.process.get_or_insert_default().tasks =
                        Some(u32::try_from(int(v)?).map_err(|_| "bad task count")?);
                }
                "ssh.connect.address" => {
                    s.process.get_or_insert_default().address = Some(scalar(v)?);
                }
                "ssh.connect.port" => {
                    s.process.get_or_insert_default().port =
                        Some(u16::try_from(int(v)?).map_err(|_| "bad port")?);
                }
                other => not_for(other, "ssh")?,
            }
        }
        // A command line alone is enough: derive argv and programs the simple way.
        if s.argv.is_empty() && !command.is_empty() {
            s.argv = command.split_whitespace().map(str::to_owned).collect();
        }
        if s.program.is_none() {
            s.program = s
                .argv
                .first()
                .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned());
        }
        if s.programs.is_empty() {
            s.programs = s.program.iter().cloned().collect();
        }
        if command.is_empty() {
            command = s.argv.join(" ");
        }
        if s.hosts.is_empty() && !s.host.is_empty() {
            s.hosts = gatehouse_events::host::target_keys([s.host.as_str()], []);
        }
        Ok(Payload::RequestObserved(RequestObserved {
            reason: None,
            command,
            detail: RequestDetail::Ssh(s),
        }))
    }

    fn kubernetes(&self, step: &TestStep) -> Result<Payload, String> {
        let mut k = K8sRequest {
            method: "GET".to_owned(),
            api_version: "v1".to_owned(),
            verb: "get".to_owned(),
            ..K8sRequest::default()
        };
        for f in &step.fields {
            let v = &f.value.node;
            let name = f.name.node.as_str();
            if let Some(field) = name.strip_prefix("k8s.pod.") {
                let pod = k.pod.get_or_insert_with(Default::default);
                match field {
                    "kind" => pod.kind = scalar(v)?,
                    "images" => pod.images = list(v)?,
                    "commands" => pod.commands = list(v)?,
                    "privileged" => pod.privileged = boolean(v)?,
                    "host_paths" => pod.host_paths = list(v)?,
                    "host_network" => pod.host_network = boolean(v)?,
                    "host_pid" => pod.host_pid = boolean(v)?,
                    "host_ipc" => pod.host_ipc = boolean(v)?,
                    "capabilities" => pod.capabilities = list(v)?,
                    "service_account" => pod.service_account = Some(scalar(v)?),
                    "secrets" => pod.secrets = list(v)?,
                    "projected_tokens" => pod.projected_tokens = list(v)?,
                    _ => not_for(name, "k8s")?,
                }
                continue;
            }
            match name {
                "k8s.verb" => k.verb = scalar(v)?,
                "k8s.method" => k.method = scalar(v)?,
                "k8s.path" => k.path = scalar(v)?,
                "k8s.api_group" => k.api_group = scalar(v)?,
                "k8s.api_version" => k.api_version = scalar(v)?,
                "k8s.resource" => k.resource = scalar(v)?,
                "k8s.namespace" => k.namespace = Some(scalar(v)?),
                "k8s.name" => k.name = Some(scalar(v)?),
                "k8s.subresource" => k.subresource = Some(scalar(v)?),
                "k8s.label_selector" => k.label_selector = Some(scalar(v)?),
                other => not_for(other, "k8s")?,
            }
        }
        let command = format!("{} {}", k.method, k.path);
        Ok(Payload::RequestObserved(RequestObserved {
            reason: None,
            command,
            detail: RequestDetail::Kubernetes(k),
        }))
    }

    fn result(&self, step: &TestStep) -> Result<Event, String> {
        let request = self
            .last_request
            .as_ref()
            .ok_or("a `result` step needs a request before it")?;
        let mut r = ResultObserved {
            request: Some(request.id),
            ..ResultObserved::default()
        };
        for f in &step.fields {
            if f.name.node == "status" {
                r.status = match scalar(&f.value.node)?.as_str() {
                    "ok" => ResultStatus::Ok,
                    "error" => ResultStatus::Error,
                    _ => ResultStatus::Refused,
                };
                continue;
            }
            let values = list(&f.value.node)?;
            // Host keys as the engine makes them, without a resolver: spelling only.
            let mut hosts: Vec<String> = Vec::new();
            for v in &values {
                for k in gatehouse_events::host::value_keys([v.as_str()], []) {
                    if !hosts.contains(&k) {
                        hosts.push(k);
                    }
                }
            }
            r.captures.push(Capture {
                name: f.name.node.clone(),
                source: String::new(),
                values,
                truncated: false,
                hosts,
            });
        }
        let time = DateTime::<Utc>::from_timestamp_micros(self.now).unwrap_or_default();
        let mut event = request.clone();
        event.id = EventId::from_u128(self.seq);
        event.time = time;
        event.payload = Payload::ResultObserved(r);
        Ok(event)
    }
}

fn not_for(field: &str, kind: &str) -> Result<(), String> {
    const ENVELOPE: &[&str] = &[
        "identity",
        "identity.on_behalf_of",
        "identity.role",
        "target",
        "session",
        "client.ip",
    ];
    if ENVELOPE.contains(&field) {
        Ok(())
    } else {
        Err(format!("field `{field}` cannot be set on a `{kind}` event"))
    }
}

fn ssh_kind(s: &str) -> Option<SshRequestKind> {
    Some(match s {
        "session_open" => SshRequestKind::SessionOpen,
        "exec" => SshRequestKind::Exec,
        "shell_line" => SshRequestKind::ShellLine,
        "shell" => SshRequestKind::Shell,
        "port_forward" => SshRequestKind::PortForward,
        "sftp" => SshRequestKind::Sftp,
        "subsystem" => SshRequestKind::Subsystem,
        "env" => SshRequestKind::Env,
        "forwarding" => SshRequestKind::Forwarding,
        "process" => SshRequestKind::Process,
        "connect" => SshRequestKind::Connect,
        "spawn" => SshRequestKind::Spawn,
        _ => return None,
    })
}
