//! [`Context`] for a Gatehouse [`Event`]: field values borrowed from the event, by id.

use std::borrow::Cow;
use std::net::IpAddr;

use gatehouse_dsl::{Context, FieldId, ListRef, Value};
use gatehouse_events::Event;
use gatehouse_events::payload::{Payload, PgKind, RequestDetail, SshRequestKind};

use super::fields::id;

/// An event as the rules see it. Identity names are seen in their canonical form
/// ([`normalize`](crate::identity::normalize)), whatever an older event recorded, so
/// that rules and sequence keys compare one spelling.
#[derive(Debug, Clone)]
pub struct EventContext<'e> {
    event: &'e Event,
    client_ip: Option<IpAddr>,
    time: i64,
    identity: Option<Cow<'e, str>>,
    on_behalf_of: Option<Cow<'e, str>>,
}

impl<'e> EventContext<'e> {
    /// Wraps an event.
    pub fn new(event: &'e Event) -> Self {
        let client_ip = match &event.payload {
            Payload::SessionOpened(s) => s.client_addr.as_deref().and_then(parse_addr),
            Payload::AuthFailed(a) => a.client_addr.as_deref().and_then(parse_addr),
            _ => None,
        };
        let identity = event.identity.as_ref();
        Self {
            event,
            client_ip,
            time: event.time.timestamp_micros(),
            identity: identity.map(|i| crate::identity::normalize(&i.name)),
            on_behalf_of: identity
                .and_then(|i| i.on_behalf_of.as_deref())
                .map(crate::identity::normalize),
        }
    }

    /// Sets the client address (known from the session, not carried by requests).
    pub fn with_client_ip(mut self, ip: Option<IpAddr>) -> Self {
        if ip.is_some() {
            self.client_ip = ip;
        }
        self
    }
}

/// Parses `ip:port`, `[v6]:port` or a bare address.
pub fn parse_addr(addr: &str) -> Option<IpAddr> {
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    addr.parse().ok()
}

fn opt(s: &Option<String>) -> Value<'_> {
    s.as_deref().map_or(Value::Missing, Value::Str)
}

fn list(l: &[String]) -> Value<'_> {
    Value::List(ListRef::new(l))
}

impl Context for EventContext<'_> {
    fn get(&self, field: FieldId) -> Value<'_> {
        let e = self.event;
        match field.0 {
            id::IDENTITY => self.identity.as_deref().map_or(Value::Missing, Value::Str),
            id::ON_BEHALF_OF => self
                .on_behalf_of
                .as_deref()
                .map_or(Value::Missing, Value::Str),
            id::ROLE => e.identity.as_ref().map_or(Value::Missing, |i| opt(&i.role)),
            id::CREDENTIAL => match &e.payload {
                Payload::CredentialRevoked(c) => Value::Str(&c.credential_id),
                Payload::CredentialIssued(c) => Value::Str(&c.credential_id),
                _ => e
                    .identity
                    .as_ref()
                    .map_or(Value::Missing, |i| opt(&i.credential_id)),
            },
            id::TARGET => opt(&e.target),
            id::PROTOCOL => e
                .protocol
                .map_or(Value::Missing, |p| Value::Str(p.as_str())),
            id::SESSION => opt(&e.session_id),
            id::TIME => Value::Time(self.time),
            id::CLIENT_IP => self.client_ip.map_or(Value::Missing, Value::Ip),
            id::EVENT_TYPE => Value::Str(e.event_type()),
            id::SESSION_CLOSE_REASON => match &e.payload {
                Payload::SessionClosed(s) => Value::Str(&s.reason),
                _ => Value::Missing,
            },
            id::RESULT_STATUS => match &e.payload {
                Payload::ResultObserved(r) => Value::Str(r.status.as_str()),
                _ => Value::Missing,
            },
            f if (id::PG_KIND..=id::PG_PARSED).contains(&f) => self.postgres(f),
            f if (id::SSH_KIND..=id::SSH_CONNECT_PORT).contains(&f) => self.ssh(f),
            f if (id::K8S_VERB..=id::K8S_POD_PROJECTED_TOKENS).contains(&f) => self.kubernetes(f),
            _ => Value::Missing,
        }
    }

    fn event_ref(&self) -> u128 {
        self.event.id.as_uuid().as_u128()
    }
}

impl EventContext<'_> {
    fn postgres(&self, f: u16) -> Value<'_> {
        let Some(p) = self.event.postgres() else {
            return Value::Missing;
        };
        match f {
            id::PG_KIND => Value::Str(p.kind.as_str()),
            id::PG_TEXT => match &self.event.payload {
                Payload::RequestObserved(r) => Value::Str(&r.command),
                _ => Value::Missing,
            },
            id::PG_TABLES => Value::List(ListRef::concat(&p.tables_read, &p.tables_written)),
            id::PG_TABLES_READ => list(&p.tables_read),
            id::PG_TABLES_WRITTEN => list(&p.tables_written),
            id::PG_COLUMNS => list(&p.columns),
            id::PG_FUNCTIONS => list(&p.functions),
            id::PG_DANGEROUS => list(&p.dangerous),
            id::PG_HAS_WHERE => p.has_where.map_or(Value::Missing, Value::Bool),
            id::PG_INDEX => Value::Int(i64::from(p.statement_index)),
            id::PG_COUNT => Value::Int(i64::from(p.statement_count)),
            id::PG_DDL_TARGET => opt(&p.ddl_target),
            id::PG_PRIVILEGE_CHANGE => opt(&p.privilege_change),
            id::PG_TRANSACTION_CONTROL => opt(&p.transaction_control),
            id::PG_PHASE => Value::Str(&p.phase),
            id::PG_PARSE_ERROR => opt(&p.parse_error),
            id::PG_UNRESOLVED => opt(&p.unresolved),
            id::PG_FALLBACK => opt(&p.fallback),
            id::PG_PARSED => Value::Bool(p.parse_error.is_none() && p.kind != PgKind::Unparsed),
            _ => Value::Missing,
        }
    }

    fn ssh(&self, f: u16) -> Value<'_> {
        let Some(s) = self.event.ssh() else {
            return Value::Missing;
        };
        let sftp = s.kind == SshRequestKind::Sftp;
        match f {
            id::SSH_KIND => Value::Str(s.kind.as_str()),
            id::SSH_SESSION_OPEN => Value::Bool(s.kind == SshRequestKind::SessionOpen),
            id::SSH_HOST => Value::Str(&s.host),
            id::SSH_HOSTS => list(&s.hosts),
            id::SSH_COMMAND => match &self.event.payload {
                Payload::RequestObserved(r) if matches!(r.detail, RequestDetail::Ssh(_)) => {
                    Value::Str(&r.command)
                }
                _ => Value::Missing,
            },
            id::SSH_ARGV => list(&s.argv),
            id::SSH_PROGRAM => opt(&s.program),
            id::SSH_PROGRAMS => list(&s.programs),
            id::SSH_COMMANDS => list(&s.commands),
            id::SSH_DYNAMIC => opt(&s.dynamic),
            id::SSH_INLINE_CODE => list(&s.inline_code),
            id::SSH_FED_CODE => opt(&s.fed_code),
            id::SSH_SCRIPTS => list(&s.scripts),
            id::SSH_REDIRECTS => list(&s.redirects),
            id::SSH_WRITES => list(&s.writes),
            id::SSH_PARSE_ERROR => opt(&s.parse_error),
            id::SSH_RUNS_WRITTEN => opt(&s.runs_written),
            id::SSH_URLS => list(&s.urls),
            id::SSH_TRANSFER => opt(&s.transfer),
            id::SSH_PIVOT => list(&s.pivot),
            id::SSH_PTY => Value::Bool(s.pty),
            id::SSH_FORWARD_HOST => opt(&s.forward_host),
            id::SSH_FORWARD_PORT => s
                .forward_port
                .map_or(Value::Missing, |p| Value::Int(i64::from(p))),
            id::SSH_SFTP_OP => opt(&s.sftp_op),
            id::SSH_SFTP_PATH if sftp => opt(&s.path),
            id::SSH_SFTP_PATH2 if sftp => opt(&s.path2),
            id::SSH_PROCESS_PID => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| Value::Int(i64::from(p.pid))),
            id::SSH_PROCESS_EXE => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| Value::Str(&p.exe)),
            id::SSH_PROCESS_CWD => s
                .process
                .as_ref()
                .filter(|p| !p.cwd.is_empty())
                .map_or(Value::Missing, |p| Value::Str(&p.cwd)),
            id::SSH_PROCESS_PARENTS => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| list(&p.parents)),
            id::SSH_PROCESS_INTERPRETER => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| opt(&p.interpreter)),
            id::SSH_PROCESS_ANONYMOUS => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| Value::Bool(p.anonymous)),
            id::SSH_PROCESS_KILLED => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| opt(&p.killed)),
            id::SSH_PROCESS_TASKS => s
                .process
                .as_ref()
                .and_then(|p| p.tasks)
                .map_or(Value::Missing, |t| Value::Int(i64::from(t))),
            id::SSH_CONNECT_ADDRESS => s
                .process
                .as_ref()
                .map_or(Value::Missing, |p| opt(&p.address)),
            id::SSH_CONNECT_PORT => s
                .process
                .as_ref()
                .and_then(|p| p.port)
                .map_or(Value::Missing, |p| Value::Int(i64::from(p))),
            _ => Value::Missing,
        }
    }

    fn kubernetes(&self, f: u16) -> Value<'_> {
        let Some(k) = self.event.kubernetes() else {
            return Value::Missing;
        };
        let pod = k.pod.as_ref();
        match f {
            id::K8S_VERB => Value::Str(&k.verb),
            id::K8S_METHOD => Value::Str(&k.method),
            id::K8S_PATH => Value::Str(&k.path),
            id::K8S_API_GROUP => Value::Str(&k.api_group),
            id::K8S_API_VERSION => Value::Str(&k.api_version),
            id::K8S_RESOURCE => Value::Str(&k.resource),
            id::K8S_NAMESPACE => opt(&k.namespace),
            id::K8S_NAME => opt(&k.name),
            id::K8S_SUBRESOURCE => opt(&k.subresource),
            id::K8S_LABEL_SELECTOR => opt(&k.label_selector),
            _ => {
                let Some(p) = pod else {
                    return Value::Missing;
                };
                match f {
                    id::K8S_POD_KIND => Value::Str(&p.kind),
                    id::K8S_POD_IMAGES => list(&p.images),
                    id::K8S_POD_COMMANDS => list(&p.commands),
                    id::K8S_POD_PRIVILEGED => Value::Bool(p.privileged),
                    id::K8S_POD_HOST_PATHS => list(&p.host_paths),
                    id::K8S_POD_HOST_NETWORK => Value::Bool(p.host_network),
                    id::K8S_POD_HOST_PID => Value::Bool(p.host_pid),
                    id::K8S_POD_HOST_IPC => Value::Bool(p.host_ipc),
                    id::K8S_POD_CAPABILITIES => list(&p.capabilities),
                    id::K8S_POD_SERVICE_ACCOUNT => opt(&p.service_account),
                    id::K8S_POD_SECRETS => list(&p.secrets),
                    id::K8S_POD_PROJECTED_TOKENS => list(&p.projected_tokens),
                    _ => Value::Missing,
                }
            }
        }
    }
}
