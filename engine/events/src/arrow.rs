//! The Arrow schema of the audit (what Parquet files hold), and conversions.
//!
//! One row per event. Envelope columns come first; then one flat, nullable column per
//! protocol attribute (prefixed `pg_`, `ssh_`, `k8s_`), then decision, result,
//! approval and alert columns, and last `payload_json`, the native payload, so an
//! event read back from Parquet is exactly the event that was written.
//!
//! The column table [`COLUMNS`] is the single definition: the schema, the batch
//! builder and the docs are all derived from it.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, UInt16Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::payload::{Payload, RequestDetail};
use crate::{Event, EventId, Identity, Protocol};

/// Column types used by the audit schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 string.
    Str,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean.
    Bool,
    /// Timestamp, microseconds, UTC.
    Ts,
    /// List of UTF-8 strings.
    List,
    /// UTF-8 string holding the JSON of a payload (serialized straight into the
    /// column buffer).
    Json,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Str | Kind::Json => DataType::Utf8,
            Kind::U16 => DataType::UInt16,
            Kind::U32 => DataType::UInt32,
            Kind::U64 => DataType::UInt64,
            Kind::Bool => DataType::Boolean,
            Kind::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::List => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }
}

/// One value of one column for one event.
#[derive(Debug)]
pub enum Cell<'a> {
    /// String value.
    Str(Option<Cow<'a, str>>),
    /// Integer value (any width; checked against the column's width).
    Int(Option<u64>),
    /// Boolean value.
    Bool(Option<bool>),
    /// Timestamp in microseconds since the epoch.
    Ts(Option<i64>),
    /// List of strings (empty list for "none").
    List(Vec<Cow<'a, str>>),
    /// A payload, written as JSON.
    Json(&'a Payload),
}

/// A column of the audit schema.
#[derive(Debug)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Column type.
    pub kind: Kind,
    /// False for envelope columns every event has.
    pub nullable: bool,
    /// What the column holds (rendered into `docs/audit.md`).
    pub doc: &'static str,
    get: fn(&Event) -> Cell<'_>,
}

fn s(v: &str) -> Cell<'_> {
    Cell::Str(Some(Cow::Borrowed(v)))
}
fn os(v: Option<&str>) -> Cell<'_> {
    Cell::Str(v.map(Cow::Borrowed))
}
fn owned(v: Option<String>) -> Cell<'static> {
    Cell::Str(v.map(Cow::Owned))
}
fn list(v: &[String]) -> Cell<'_> {
    Cell::List(v.iter().map(|x| Cow::Borrowed(x.as_str())).collect())
}
fn ts(t: &DateTime<Utc>) -> Cell<'static> {
    Cell::Ts(Some(t.timestamp_micros()))
}
fn none() -> Cell<'static> {
    Cell::Str(None)
}

macro_rules! col {
    ($name:literal, $kind:ident, $nullable:literal, $doc:literal, $get:expr) => {
        Column {
            name: $name,
            kind: Kind::$kind,
            nullable: $nullable,
            doc: $doc,
            get: $get,
        }
    };
}

fn pod(e: &Event) -> Option<&crate::payload::PodSpecSummary> {
    e.kubernetes().and_then(|k| k.pod.as_ref())
}

fn request_event(e: &Event) -> Option<EventId> {
    match &e.payload {
        Payload::DecisionMade(d) => d.request,
        Payload::ResultObserved(r) => r.request,
        Payload::ApprovalRequested(a) => Some(a.request),
        Payload::AlertRaised(a) => a.request,
        _ => None,
    }
}

fn approval_id(e: &Event) -> Option<&str> {
    match &e.payload {
        Payload::DecisionMade(d) => d.approval_id.as_deref(),
        Payload::ApprovalRequested(a) => Some(&a.approval_id),
        Payload::ApprovalGranted(a) => Some(&a.approval_id),
        Payload::ApprovalDenied(a) => Some(&a.approval_id),
        Payload::ApprovalExpired(a) => Some(&a.approval_id),
        Payload::GrantRevoked(g) => Some(&g.approval_id),
        Payload::ApprovalWithdrawn(a) => Some(&a.approval_id),
        _ => None,
    }
}

fn reason(e: &Event) -> Option<&str> {
    match &e.payload {
        Payload::DecisionMade(d) => d.reason.as_deref(),
        Payload::AlertRaised(a) => Some(&a.message),
        Payload::SessionClosed(c) => Some(&c.reason),
        Payload::AuthFailed(a) => Some(&a.reason),
        Payload::ApprovalDenied(a) => Some(&a.reason),
        Payload::GrantRevoked(g) => Some(&g.reason),
        Payload::ResultObserved(r) => r.message.as_deref(),
        Payload::CredentialRevoked(c) => c.reason.as_deref(),
        Payload::ApprovalWithdrawn(a) => Some(&a.reason),
        Payload::LogOutage(o) => Some(&o.error),
        _ => None,
    }
}

fn deadline(e: &Event) -> Cell<'static> {
    match &e.payload {
        Payload::ApprovalRequested(a) => ts(&a.deadline),
        Payload::ApprovalGranted(a) => Cell::Ts(a.valid_until.map(|t| t.timestamp_micros())),
        Payload::CredentialIssued(c) => ts(&c.expires_at),
        _ => Cell::Ts(None),
    }
}

/// The columns of the audit schema, in order.
pub static COLUMNS: &[Column] = &[
    col!(
        "event_id",
        Str,
        false,
        "unique event id (UUIDv7, sorts by time)",
        |e| owned(Some(e.id.to_string()))
    ),
    col!(
        "time",
        Ts,
        false,
        "when the event happened (UTC, microseconds)",
        |e| ts(&e.time)
    ),
    col!("schema_version", U16, false, "event schema version", |e| {
        Cell::Int(Some(u64::from(e.schema_version)))
    }),
    col!(
        "gateway_id",
        Str,
        false,
        "gateway instance that observed the event",
        |e| s(&e.gateway_id)
    ),
    col!(
        "event_type",
        Str,
        false,
        "event type: request_observed, decision_made, result_observed, ...",
        |e| s(e.event_type())
    ),
    col!("session_id", Str, true, "client session id", |e| os(e
        .session_id
        .as_deref())),
    col!("identity", Str, true, "identity (agent) name", |e| os(
        e.identity_name()
    )),
    col!(
        "on_behalf_of",
        Str,
        true,
        "person the agent acts for",
        |e| os(e.identity.as_ref().and_then(|i| i.on_behalf_of.as_deref()))
    ),
    col!(
        "role",
        Str,
        true,
        "role mapped from a federated token",
        |e| os(e.identity.as_ref().and_then(|i| i.role.as_deref()))
    ),
    col!(
        "credential_id",
        Str,
        true,
        "credential (token) id",
        |e| match &e.payload {
            Payload::CredentialIssued(c) => s(&c.credential_id),
            Payload::CredentialRevoked(c) => s(&c.credential_id),
            _ => os(e.identity.as_ref().and_then(|i| i.credential_id.as_deref())),
        }
    ),
    col!("target", Str, true, "configured target name", |e| os(e
        .target
        .as_deref())),
    col!(
        "protocol",
        Str,
        true,
        "postgres, ssh or kubernetes",
        |e| os(e.protocol.map(Protocol::as_str))
    ),
    col!(
        "command",
        Str,
        true,
        "command as sent (SQL, command line, METHOD path); for approvals the held command",
        |e| match &e.payload {
            Payload::RequestObserved(r) => s(&r.command),
            Payload::ApprovalRequested(a) => s(&a.command),
            _ => none(),
        }
    ),
    col!(
        "stated_reason",
        Str,
        true,
        "the requester's stated reason (requests, approval requests)",
        |e| match &e.payload {
            Payload::RequestObserved(r) => os(r.reason.as_deref()),
            Payload::ApprovalRequested(a) => os(a.reason.as_deref()),
            _ => none(),
        }
    ),
    col!(
        "action",
        Str,
        true,
        "statement kind, SSH request kind or Kubernetes verb",
        |e| os(e.request().map(RequestDetail::action))
    ),
    col!(
        "request_event_id",
        Str,
        true,
        "for decisions, results, approvals and alerts: the request event",
        |e| owned(request_event(e).map(|id| id.to_string()))
    ),
    col!(
        "pg_statement_index",
        U32,
        true,
        "statement position in its query string",
        |e| Cell::Int(e.postgres().map(|p| u64::from(p.statement_index)))
    ),
    col!(
        "pg_statement_count",
        U32,
        true,
        "statements in the query string",
        |e| Cell::Int(e.postgres().map(|p| u64::from(p.statement_count)))
    ),
    col!("pg_tables_read", List, true, "tables read", |e| e
        .postgres()
        .map(|p| list(&p.tables_read))
        .unwrap_or(Cell::List(vec![]))),
    col!("pg_tables_written", List, true, "tables written", |e| e
        .postgres()
        .map(|p| list(&p.tables_written))
        .unwrap_or(Cell::List(vec![]))),
    col!("pg_columns", List, true, "columns referenced", |e| e
        .postgres()
        .map(|p| list(&p.columns))
        .unwrap_or(Cell::List(vec![]))),
    col!("pg_functions", List, true, "functions called", |e| e
        .postgres()
        .map(|p| list(&p.functions))
        .unwrap_or(Cell::List(vec![]))),
    col!(
        "pg_dangerous",
        List,
        true,
        "dangerous capabilities used",
        |e| e
            .postgres()
            .map(|p| list(&p.dangerous))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "pg_has_where",
        Bool,
        true,
        "UPDATE/DELETE has a WHERE clause",
        |e| Cell::Bool(e.postgres().and_then(|p| p.has_where))
    ),
    col!(
        "pg_ddl_target",
        Str,
        true,
        "object created, altered or dropped",
        |e| os(e.postgres().and_then(|p| p.ddl_target.as_deref()))
    ),
    col!(
        "pg_privilege_change",
        Str,
        true,
        "grant, revoke, create_role, alter_role, set_role, ...",
        |e| os(e.postgres().and_then(|p| p.privilege_change.as_deref()))
    ),
    col!(
        "pg_transaction_control",
        Str,
        true,
        "begin, commit, rollback, savepoint, ...",
        |e| os(e.postgres().and_then(|p| p.transaction_control.as_deref()))
    ),
    col!(
        "pg_phase",
        Str,
        true,
        "wire phase: simple, parse or execute",
        |e| os(e.postgres().map(|p| p.phase.as_str()))
    ),
    col!(
        "pg_prepared_name",
        Str,
        true,
        "prepared statement name",
        |e| os(e.postgres().and_then(|p| p.prepared_name.as_deref()))
    ),
    col!(
        "pg_parse_error",
        Str,
        true,
        "set when the statement could not be parsed",
        |e| os(e.postgres().and_then(|p| p.parse_error.as_deref()))
    ),
    col!(
        "pg_unresolved",
        Str,
        true,
        "set when what the statement reaches could not be resolved: the reason",
        |e| os(e.postgres().and_then(|p| p.unresolved.as_deref()))
    ),
    col!(
        "pg_fallback",
        Str,
        true,
        "set when PostgreSQL's own grammar classified the statement because the full classifier could not: why (result-column lineage unknown)",
        |e| os(e.postgres().and_then(|p| p.fallback.as_deref()))
    ),
    col!("ssh_host", Str, true, "SSH target host", |e| os(e
        .ssh()
        .map(|x| x.host.as_str()))),
    col!(
        "ssh_hosts",
        List,
        true,
        "SSH target host keys: names, aliases, short-name markers (`db-1.*`) and addresses",
        |e| e
            .ssh()
            .map(|x| list(&x.hosts))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!("ssh_channel", U32, true, "SSH channel number", |e| {
        Cell::Int(e.ssh().map(|x| u64::from(x.channel)))
    }),
    col!("ssh_pty", Bool, true, "channel has a PTY", |e| Cell::Bool(
        e.ssh().map(|x| x.pty)
    )),
    col!(
        "ssh_argv",
        List,
        true,
        "command split by shell rules",
        |e| e.ssh().map(|x| list(&x.argv)).unwrap_or(Cell::List(vec![]))
    ),
    col!("ssh_program", Str, true, "program run", |e| os(e
        .ssh()
        .and_then(|x| x.program.as_deref()))),
    col!(
        "ssh_programs",
        List,
        true,
        "every program the command line runs, nested pivots included",
        |e| e
            .ssh()
            .map(|x| list(&x.programs))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_pivot",
        List,
        true,
        "protocols the line's clients speak to other systems from the host",
        |e| e
            .ssh()
            .map(|x| list(&x.pivot))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_commands",
        List,
        true,
        "every simple command the line runs, evaluated",
        |e| e
            .ssh()
            .map(|x| list(&x.commands))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_dynamic",
        Str,
        true,
        "why what the line runs is not known before it runs",
        |e| os(e.ssh().and_then(|x| x.dynamic.as_deref()))
    ),
    col!(
        "ssh_inline_code",
        List,
        true,
        "languages of inline interpreter code",
        |e| e
            .ssh()
            .map(|x| list(&x.inline_code))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_fed_code",
        Str,
        true,
        "where a shell or interpreter reads code from as data",
        |e| os(e.ssh().and_then(|x| x.fed_code.as_deref()))
    ),
    col!(
        "ssh_writes",
        List,
        true,
        "files the command line writes",
        |e| e
            .ssh()
            .map(|x| list(&x.writes))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_forward_host",
        Str,
        true,
        "port-forward destination host",
        |e| os(e.ssh().and_then(|x| x.forward_host.as_deref()))
    ),
    col!(
        "ssh_forward_port",
        U32,
        true,
        "port-forward destination port",
        |e| Cell::Int(e.ssh().and_then(|x| x.forward_port.map(u64::from)))
    ),
    col!("ssh_sftp_op", Str, true, "SFTP operation", |e| os(e
        .ssh()
        .and_then(|x| x.sftp_op.as_deref()))),
    col!("ssh_path", Str, true, "SFTP path", |e| os(e
        .ssh()
        .and_then(|x| x.path.as_deref()))),
    col!("ssh_path2", Str, true, "SFTP rename target", |e| os(e
        .ssh()
        .and_then(|x| x.path2.as_deref()))),
    col!(
        "ssh_process_pid",
        U32,
        true,
        "guarded host: process id of a `process` or `connect` request",
        |e| Cell::Int(
            e.ssh()
                .and_then(|x| x.process.as_ref())
                .map(|p| u64::from(p.pid))
        )
    ),
    col!(
        "ssh_process_exe",
        Str,
        true,
        "guarded host: the real program an exec runs, or the program that connects",
        |e| os(e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .map(|p| p.exe.as_str()))
    ),
    col!(
        "ssh_process_cwd",
        Str,
        true,
        "guarded host: working directory of the exec",
        |e| os(e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .map(|p| p.cwd.as_str())
            .filter(|c| !c.is_empty()))
    ),
    col!(
        "ssh_process_parents",
        List,
        true,
        "guarded host: programs of the parent chain, nearest first",
        |e| e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .map(|p| list(&p.parents))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "ssh_process_interpreter",
        Str,
        true,
        "guarded host: interpreter of a `#!` script the exec runs",
        |e| os(e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .and_then(|p| p.interpreter.as_deref()))
    ),
    col!(
        "ssh_process_anonymous",
        Bool,
        true,
        "guarded host: the exec runs a program that is not a file on disk (memfd, deleted)",
        |e| Cell::Bool(
            e.ssh()
                .and_then(|x| x.process.as_ref())
                .map(|p| p.anonymous)
        )
    ),
    col!(
        "ssh_process_killed",
        Str,
        true,
        "guarded host: the process was killed at its exec because it loaded another image than the one judged: what it loaded",
        |e| os(e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .and_then(|p| p.killed.as_deref()))
    ),
    col!(
        "ssh_process_tasks",
        U32,
        true,
        "guarded host: live processes and threads of the session on a `spawn` request",
        |e| Cell::Int(
            e.ssh()
                .and_then(|x| x.process.as_ref())
                .and_then(|p| p.tasks)
                .map(u64::from)
        )
    ),
    col!(
        "ssh_connect_address",
        Str,
        true,
        "guarded host: destination address of a `connect` request",
        |e| os(e
            .ssh()
            .and_then(|x| x.process.as_ref())
            .and_then(|p| p.address.as_deref()))
    ),
    col!(
        "ssh_connect_port",
        U16,
        true,
        "guarded host: destination port of a `connect` request",
        |e| Cell::Int(
            e.ssh()
                .and_then(|x| x.process.as_ref())
                .and_then(|p| p.port)
                .map(u64::from)
        )
    ),
    col!("k8s_method", Str, true, "HTTP method", |e| os(e
        .kubernetes()
        .map(|k| k.method.as_str()))),
    col!("k8s_path", Str, true, "request path", |e| os(e
        .kubernetes()
        .map(|k| k.path.as_str()))),
    col!("k8s_api_group", Str, true, "API group ('' = core)", |e| os(
        e.kubernetes().map(|k| k.api_group.as_str())
    )),
    col!("k8s_api_version", Str, true, "API version", |e| os(e
        .kubernetes()
        .map(|k| k.api_version.as_str()))),
    col!("k8s_resource", Str, true, "resource", |e| os(e
        .kubernetes()
        .map(|k| k.resource.as_str()))),
    col!("k8s_namespace", Str, true, "namespace", |e| os(e
        .kubernetes()
        .and_then(|k| k.namespace.as_deref()))),
    col!("k8s_name", Str, true, "object name", |e| os(e
        .kubernetes()
        .and_then(|k| k.name.as_deref()))),
    col!("k8s_subresource", Str, true, "subresource", |e| os(e
        .kubernetes()
        .and_then(|k| k.subresource.as_deref()))),
    col!("k8s_label_selector", Str, true, "label selector", |e| os(e
        .kubernetes()
        .and_then(|k| k.label_selector.as_deref()))),
    col!("k8s_field_selector", Str, true, "field selector", |e| os(e
        .kubernetes()
        .and_then(|k| k.field_selector.as_deref()))),
    col!(
        "k8s_pod_kind",
        Str,
        true,
        "kind of the object a pod spec came from",
        |e| os(pod(e).map(|p| p.kind.as_str()))
    ),
    col!("k8s_images", List, true, "container images", |e| pod(e)
        .map(|p| list(&p.images))
        .unwrap_or(Cell::List(vec![]))),
    col!("k8s_commands", List, true, "container commands", |e| pod(e)
        .map(|p| list(&p.commands))
        .unwrap_or(Cell::List(vec![]))),
    col!(
        "k8s_privileged",
        Bool,
        true,
        "a container is privileged",
        |e| Cell::Bool(pod(e).map(|p| p.privileged))
    ),
    col!("k8s_host_paths", List, true, "hostPath volumes", |e| pod(e)
        .map(|p| list(&p.host_paths))
        .unwrap_or(Cell::List(vec![]))),
    col!("k8s_host_network", Bool, true, "hostNetwork", |e| {
        Cell::Bool(pod(e).map(|p| p.host_network))
    }),
    col!("k8s_host_pid", Bool, true, "hostPID", |e| Cell::Bool(
        pod(e).map(|p| p.host_pid)
    )),
    col!("k8s_host_ipc", Bool, true, "hostIPC", |e| Cell::Bool(
        pod(e).map(|p| p.host_ipc)
    )),
    col!("k8s_capabilities", List, true, "added capabilities", |e| {
        pod(e)
            .map(|p| list(&p.capabilities))
            .unwrap_or(Cell::List(vec![]))
    }),
    col!("k8s_service_account", Str, true, "service account", |e| os(
        pod(e).and_then(|p| p.service_account.as_deref())
    )),
    col!(
        "k8s_secrets",
        List,
        true,
        "secrets mounted or referenced",
        |e| pod(e)
            .map(|p| list(&p.secrets))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "k8s_projected_tokens",
        List,
        true,
        "projected service-account token volumes, by audience",
        |e| pod(e)
            .map(|p| list(&p.projected_tokens))
            .unwrap_or(Cell::List(vec![]))
    ),
    col!(
        "effect",
        Str,
        true,
        "decision or alert effect: allow, mask, require_approval, block",
        |e| match &e.payload {
            Payload::DecisionMade(d) => s(d.effect.as_str()),
            Payload::AlertRaised(a) => os(a.effect.map(|x| x.as_str())),
            _ => none(),
        }
    ),
    col!(
        "rules",
        List,
        true,
        "rules and sequences that matched (decisions), or fired (alerts)",
        |e| match &e.payload {
            Payload::DecisionMade(d) => list(&d.rules),
            Payload::AlertRaised(a) => Cell::List(vec![Cow::Borrowed(a.rule.as_str())]),
            Payload::ApprovalRequested(a) => Cell::List(vec![Cow::Borrowed(a.rule.as_str())]),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "decided_by",
        List,
        true,
        "rules whose effect is the decision's (the rest of `rules` merely matched)",
        |e| match &e.payload {
            Payload::DecisionMade(d) => list(&d.decided_by),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "reason",
        Str,
        true,
        "block reason, alert message, error message, close reason",
        |e| os(reason(e))
    ),
    col!(
        "default_applied",
        Bool,
        true,
        "no rule matched; the target default decided",
        |e| match &e.payload {
            Payload::DecisionMade(d) => Cell::Bool(Some(d.default_applied)),
            _ => Cell::Bool(None),
        }
    ),
    col!("approval_id", Str, true, "approval id", |e| os(
        approval_id(e)
    )),
    col!(
        "reviewer",
        Str,
        true,
        "reviewer who granted or denied, or who revoked a grant",
        |e| match &e.payload {
            Payload::ApprovalGranted(a) => s(&a.reviewer),
            Payload::ApprovalDenied(a) => s(&a.reviewer),
            Payload::GrantRevoked(g) => s(&g.revoked_by),
            _ => none(),
        }
    ),
    col!(
        "reviewer_group",
        Str,
        true,
        "reviewer group asked",
        |e| match &e.payload {
            Payload::ApprovalRequested(a) => s(&a.group),
            _ => none(),
        }
    ),
    col!(
        "deadline",
        Ts,
        true,
        "approval deadline, grant end, or credential expiry",
        deadline
    ),
    col!(
        "status",
        Str,
        true,
        "result status: ok, error, refused",
        |e| match &e.payload {
            Payload::ResultObserved(r) => s(r.status.as_str()),
            _ => none(),
        }
    ),
    col!(
        "rows",
        U64,
        true,
        "rows returned or affected",
        |e| match &e.payload {
            Payload::ResultObserved(r) => Cell::Int(r.rows),
            _ => Cell::Int(None),
        }
    ),
    col!("bytes", U64, true, "bytes returned", |e| match &e.payload {
        Payload::ResultObserved(r) => Cell::Int(r.bytes),
        _ => Cell::Int(None),
    }),
    col!(
        "code",
        Str,
        true,
        "SQLSTATE, HTTP status or exit status",
        |e| match &e.payload {
            Payload::ResultObserved(r) => os(r.code.as_deref()),
            _ => none(),
        }
    ),
    col!(
        "duration_us",
        U64,
        true,
        "time to completion, microseconds",
        |e| match &e.payload {
            Payload::ResultObserved(r) => Cell::Int(r.duration_us),
            Payload::SessionData(d) => Cell::Int(Some(d.elapsed_us)),
            _ => Cell::Int(None),
        }
    ),
    col!(
        "masked",
        U64,
        true,
        "values masked in the result",
        |e| match &e.payload {
            Payload::ResultObserved(r) => Cell::Int(Some(r.masked)),
            _ => Cell::Int(None),
        }
    ),
    col!(
        "captured_values",
        List,
        true,
        "values captured from the result for sequence rules (e.g. host names)",
        |e| match &e.payload {
            Payload::ResultObserved(r) => Cell::List(
                r.captures
                    .iter()
                    .flat_map(|c| c.values.iter().map(|v| Cow::Borrowed(v.as_str())))
                    .collect()
            ),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "captured_hosts",
        List,
        true,
        "host keys of the captured values that are host names or addresses",
        |e| match &e.payload {
            Payload::ResultObserved(r) => Cell::List(
                r.captures
                    .iter()
                    .flat_map(|c| c.hosts.iter().map(|v| Cow::Borrowed(v.as_str())))
                    .collect()
            ),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "result_sample",
        Str,
        true,
        "the first rows or bytes of a result, after masking (capped)",
        |e| match &e.payload {
            Payload::ResultObserved(r) => os(r.sample.as_deref()),
            _ => none(),
        }
    ),
    col!(
        "severity",
        Str,
        true,
        "alert severity",
        |e| match &e.payload {
            Payload::AlertRaised(a) => s(a.severity.as_str()),
            _ => none(),
        }
    ),
    col!(
        "tags",
        List,
        true,
        "alert tags (MITRE ATT&CK)",
        |e| match &e.payload {
            Payload::AlertRaised(a) => list(&a.tags),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "related_events",
        List,
        true,
        "events behind an alert, oldest first",
        |e| match &e.payload {
            Payload::AlertRaised(a) => Cell::List(
                a.related_events
                    .iter()
                    .map(|id| Cow::Owned(id.to_string()))
                    .collect()
            ),
            _ => Cell::List(vec![]),
        }
    ),
    col!(
        "client_addr",
        Str,
        true,
        "client address",
        |e| match &e.payload {
            Payload::SessionOpened(o) => os(o.client_addr.as_deref()),
            Payload::AuthFailed(a) => os(a.client_addr.as_deref()),
            _ => none(),
        }
    ),
    col!(
        "login",
        Str,
        true,
        "login name presented",
        |e| match &e.payload {
            Payload::SessionOpened(o) => os(o.login.as_deref()),
            Payload::AuthFailed(a) => os(a.login.as_deref()),
            _ => none(),
        }
    ),
    col!(
        "payload_json",
        Json,
        false,
        "the full native payload (JSON)",
        |e| Cell::Json(&e.payload)
    ),
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
        .collect();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert(
        "gatehouse.schema_version".to_owned(),
        crate::SCHEMA_VERSION.to_string(),
    );
    Arc::new(Schema::new_with_metadata(fields, metadata))
});

/// The column list as a Markdown table (for `docs/audit.md`).
pub fn markdown_columns() -> String {
    let mut out = String::from("| column | type | meaning |\n|---|---|---|\n");
    for c in COLUMNS {
        let ty = match c.kind {
            Kind::Str | Kind::Json => "string",
            Kind::U16 | Kind::U32 | Kind::U64 => "integer",
            Kind::Bool => "boolean",
            Kind::Ts => "timestamp (UTC, µs)",
            Kind::List => "list of strings",
        };
        let null = if c.nullable { "" } else { " (always set)" };
        out.push_str(&format!(
            "| `{}` | {ty} | {}{null} |\n",
            c.name,
            c.doc.replace('|', "\\|")
        ));
    }
    out
}

/// The Arrow schema of the audit.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

enum Builder {
    Str(StringBuilder),
    /// The column, and a scratch buffer the JSON is serialized into.
    Json(StringBuilder, Vec<u8>),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Str => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
            // Payloads are a few hundred bytes: reserving for that up front spares the
            // value buffer its doublings (each one a copy of everything so far).
            Kind::Json => Builder::Json(
                StringBuilder::with_capacity(capacity, capacity * 512),
                Vec::with_capacity(4096),
            ),
            Kind::U16 => Builder::U16(UInt16Builder::with_capacity(capacity)),
            Kind::U32 => Builder::U32(UInt32Builder::with_capacity(capacity)),
            Kind::U64 => Builder::U64(UInt64Builder::with_capacity(capacity)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Ts => Builder::Ts(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::List => Builder::List(ListBuilder::with_capacity(StringBuilder::new(), capacity)),
        }
    }

    fn push_all(&mut self, col: &Column, events: &[&Event]) -> Result<(), ArrowError> {
        let wrong = |cell: &Cell<'_>| {
            ArrowError::SchemaError(format!(
                "column `{}` got a value of the wrong kind: {cell:?}",
                col.name
            ))
        };
        let narrow = |v: u64| {
            ArrowError::CastError(format!("value {v} too large for column `{}`", col.name))
        };
        match self {
            Builder::Str(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Str(v) => b.append_option(v),
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::Json(b, scratch) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Json(payload) => {
                            scratch.clear();
                            serde_json::to_writer(&mut *scratch, payload)
                                .map_err(|err| ArrowError::ExternalError(Box::new(err)))?;
                            let json = std::str::from_utf8(scratch)
                                .map_err(|err| ArrowError::ExternalError(Box::new(err)))?;
                            b.append_value(json);
                        }
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::List(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::List(v) => {
                            for item in v {
                                b.values().append_value(item);
                            }
                            b.append(true);
                        }
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::Bool(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Bool(v) => b.append_option(v),
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::Ts(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Ts(v) => b.append_option(v),
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::U64(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Int(v) => b.append_option(v),
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::U32(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Int(v) => b.append_option(
                            v.map(|v| u32::try_from(v).map_err(|_| narrow(v)))
                                .transpose()?,
                        ),
                        other => return Err(wrong(&other)),
                    }
                }
            }
            Builder::U16(b) => {
                for e in events {
                    match (col.get)(e) {
                        Cell::Int(v) => b.append_option(
                            v.map(|v| u16::try_from(v).map_err(|_| narrow(v)))
                                .transpose()?,
                        ),
                        other => return Err(wrong(&other)),
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Str(mut b) | Builder::Json(mut b, _) => Arc::new(b.finish()),
            Builder::U16(mut b) => Arc::new(b.finish()),
            Builder::U32(mut b) => Arc::new(b.finish()),
            Builder::U64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
            Builder::List(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Builds a record batch (audit schema) from events.
///
/// Column-major: each column's builder is filled for all events before the next, so
/// the per-type dispatch happens once per column, not once per value.
pub fn to_record_batch<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<RecordBatch, ArrowError> {
    let events: Vec<&Event> = events.into_iter().collect();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(COLUMNS.len());
    for col in COLUMNS {
        let mut builder = Builder::new(col.kind, events.len());
        builder.push_all(col, &events)?;
        arrays.push(builder.finish());
    }
    RecordBatch::try_new(schema(), arrays)
}

/// An audit batch that cannot be turned back into events.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A required column is missing or has another type.
    #[error("column `{0}` is missing or has the wrong type")]
    Column(&'static str),
    /// A required value is null.
    #[error("row {row}: column `{column}` is null")]
    Null {
        /// Row index.
        row: usize,
        /// Column name.
        column: &'static str,
    },
    /// A value does not parse.
    #[error("row {row}: column `{column}`: {message}")]
    Value {
        /// Row index.
        row: usize,
        /// Column name.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

struct StrCol<'a> {
    name: &'static str,
    array: &'a arrow_array::StringArray,
}

impl<'a> StrCol<'a> {
    fn get(batch: &'a RecordBatch, name: &'static str) -> Result<Self, DecodeError> {
        let array = batch
            .column_by_name(name)
            .and_then(|a| a.as_string_opt::<i32>())
            .ok_or(DecodeError::Column(name))?;
        Ok(Self { name, array })
    }

    fn opt(&self, row: usize) -> Option<String> {
        (!self.array.is_null(row)).then(|| self.array.value(row).to_owned())
    }

    fn req(&self, row: usize) -> Result<&'a str, DecodeError> {
        if self.array.is_null(row) {
            return Err(DecodeError::Null {
                row,
                column: self.name,
            });
        }
        Ok(self.array.value(row))
    }
}

/// Turns an audit batch back into events (the envelope columns plus `payload_json`).
///
/// Columns this build does not know are ignored, so batches written by newer builds
/// decode too, as long as the envelope is there.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Event>, DecodeError> {
    let id = StrCol::get(batch, "event_id")?;
    let time = batch
        .column_by_name("time")
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or(DecodeError::Column("time"))?;
    let version = batch
        .column_by_name("schema_version")
        .and_then(|a| a.as_primitive_opt::<UInt16Type>())
        .ok_or(DecodeError::Column("schema_version"))?;
    let gateway = StrCol::get(batch, "gateway_id")?;
    let session = StrCol::get(batch, "session_id")?;
    let identity = StrCol::get(batch, "identity")?;
    let on_behalf_of = StrCol::get(batch, "on_behalf_of")?;
    let role = StrCol::get(batch, "role")?;
    let credential = StrCol::get(batch, "credential_id")?;
    let event_type = StrCol::get(batch, "event_type")?;
    let target = StrCol::get(batch, "target")?;
    let protocol = StrCol::get(batch, "protocol")?;
    let payload = StrCol::get(batch, "payload_json")?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let value = |column: &'static str, message: String| DecodeError::Value {
            row,
            column,
            message,
        };
        let event_id: EventId = id
            .req(row)?
            .parse()
            .map_err(|e: crate::ParseIdError| value("event_id", e.to_string()))?;
        let micros = time.value(row);
        let time = DateTime::<Utc>::from_timestamp_micros(micros)
            .ok_or_else(|| value("time", format!("{micros} out of range")))?;
        let payload: Payload = serde_json::from_str(payload.req(row)?)
            .map_err(|e| value("payload_json", e.to_string()))?;
        // Identity credential ids live in `credential_id` except for credential events,
        // where that column names the credential acted on.
        let credential_id = match payload {
            Payload::CredentialIssued(_) | Payload::CredentialRevoked(_) => None,
            _ => credential.opt(row),
        };
        if payload.type_name() != event_type.req(row)? {
            return Err(value("event_type", "does not match payload_json".into()));
        }
        let protocol = match protocol.opt(row) {
            Some(p) => Some(
                Protocol::parse(&p)
                    .ok_or_else(|| value("protocol", format!("unknown protocol `{p}`")))?,
            ),
            None => None,
        };
        out.push(Event {
            id: event_id,
            time,
            schema_version: version.value(row),
            gateway_id: gateway.req(row)?.to_owned(),
            session_id: session.opt(row),
            identity: identity.opt(row).map(|name| Identity {
                name,
                on_behalf_of: on_behalf_of.opt(row),
                role: role.opt(row),
                credential_id,
            }),
            target: target.opt(row),
            protocol,
            payload,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod column_tests {
    #[test]
    fn column_names_are_unique() {
        let schema = super::schema();
        let mut names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a column name is used twice");
    }
}
