//! OCSF 1.x JSON for SIEMs.
//!
//! Each event maps to one OCSF class:
//!
//! | event | OCSF class |
//! |---|---|
//! | Postgres request, result, decision, session | Datastore Activity (6005) |
//! | SSH exec / shell line | Process Activity (1007) |
//! | SSH login, port forward, session bytes | SSH Activity (4007) |
//! | SSH sftp operation | File System Activity (1001) |
//! | Kubernetes request, result, decision | API Activity (6003) |
//! | approval requested / granted / denied / expired / withdrawn | Authorize Session (3003) |
//! | credential issued / revoked | User Access Management (3005) |
//! | authentication failure, non-SSH session open/close | Authentication (3002) |
//! | alert | Detection Finding (2004) |
//! | event log outage, shipper rewound | Application Lifecycle (6002) |
//!
//! Fields OCSF has no place for are kept under `unmapped.gatehouse`, which holds the
//! native payload, so nothing is lost on the way to the SIEM.
//!
//! The record is one borrowed struct serialized straight to bytes (no intermediate
//! JSON tree): Kafka shipping encodes every event through here.

use serde::Serialize;

use crate::payload::{
    AlertRaised, DataDirection, DecisionMade, Effect, K8sRequest, Payload, PgStatement,
    RequestDetail, ResultObserved, ResultStatus, SshRequest, SshRequestKind,
};
use crate::{Event, Protocol};

/// OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// A class: uid, name, category uid, category name.
#[derive(Debug, Clone, Copy)]
struct Class(u32, &'static str, u32, &'static str);

const DATASTORE: Class = Class(6005, "Datastore Activity", 6, "Application Activity");
const API: Class = Class(6003, "API Activity", 6, "Application Activity");
const PROCESS: Class = Class(1007, "Process Activity", 1, "System Activity");
const FILE_SYSTEM: Class = Class(1001, "File System Activity", 1, "System Activity");
const SSH: Class = Class(4007, "SSH Activity", 4, "Network Activity");
const NETWORK: Class = Class(4001, "Network Activity", 4, "Network Activity");
const AUTHENTICATION: Class = Class(3002, "Authentication", 3, "Identity & Access Management");
const AUTHORIZE_SESSION: Class =
    Class(3003, "Authorize Session", 3, "Identity & Access Management");
const USER_ACCESS: Class = Class(
    3005,
    "User Access Management",
    3,
    "Identity & Access Management",
);
const DETECTION: Class = Class(2004, "Detection Finding", 2, "Findings");
const LIFECYCLE: Class = Class(6002, "Application Lifecycle", 6, "Application Activity");

/// True for events that belong on the alerts topic (OCSF Detection Findings).
pub fn is_alert(event: &Event) -> bool {
    matches!(event.payload, Payload::AlertRaised(_))
}

/// The OCSF class uid an event maps to.
pub fn class_uid(event: &Event) -> u32 {
    build(event).class_uid
}

/// Maps an event to an OCSF 1.x JSON value (tests, tools).
pub fn to_ocsf(event: &Event) -> serde_json::Value {
    serde_json::to_value(build(event)).unwrap_or(serde_json::Value::Null)
}

/// Appends an event's OCSF JSON to `out` (the fast path).
pub fn write_ocsf(event: &Event, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, &build(event))
}

macro_rules! opt {
    ($($name:ident : $ty:ty),* $(,)?) => {
        /// One OCSF record: common attributes, then every class-specific attribute
        /// Gatehouse fills (absent ones are omitted).
        #[derive(Serialize, Default)]
        struct Record<'a> {
            class_uid: u32,
            class_name: &'static str,
            category_uid: u32,
            category_name: &'static str,
            activity_id: u32,
            activity_name: &'static str,
            type_uid: u64,
            type_name: String,
            time: i64,
            time_dt: String,
            severity_id: u8,
            severity: &'static str,
            metadata: Metadata<'a>,
            $(#[serde(skip_serializing_if = "Option::is_none")] $name: Option<$ty>,)*
            unmapped: Unmapped<'a>,
        }
    };
}

opt! {
    actor: Actor<'a>,
    src_endpoint: Endpoint<'a>,
    dst_endpoint: Endpoint<'a>,
    device: Device<'a>,
    database: Named<'a>,
    table: Named<'a>,
    query_info: QueryInfo<'a>,
    process: Process<'a>,
    file: File<'a>,
    file_result: File<'a>,
    api: Api<'a>,
    http_request: HttpRequest<'a>,
    resources: [Resource<'a>; 1],
    resource: Resource<'a>,
    user: User<'a>,
    group: Named<'a>,
    session: Uid<'a>,
    privileges: Vec<String>,
    traffic: Traffic,
    finding_info: FindingInfo<'a>,
    evidences: [Evidence; 1],
    policy: Policy<'a>,
    type_id: u32,
    r#type: &'static str,
    is_alert: bool,
    is_mfa: bool,
    status_id: u32,
    status: &'static str,
    status_code: &'a str,
    status_detail: &'a str,
    disposition_id: u32,
    disposition: &'static str,
    action_id: u32,
    action: &'static str,
    message: String,
    count: u64,
    duration: u64,
    end_time: i64,
}

#[derive(Serialize, Default)]
struct Metadata<'a> {
    version: &'static str,
    uid: String,
    log_name: &'static str,
    product: Product,
    logged_time: i64,
    extension: Extension,
    loggers: [Named<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_uid: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
    feature: Named<'static>,
}

#[derive(Serialize, Default)]
struct Extension {
    name: &'static str,
    version: String,
}

#[derive(Serialize, Default)]
struct Named<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
}

fn named(name: &str) -> Named<'_> {
    Named {
        name,
        type_id: None,
        r#type: None,
    }
}

#[derive(Serialize, Default)]
struct Uid<'a> {
    uid: &'a str,
}

#[derive(Serialize, Default)]
struct Actor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizations: Option<[Authorization<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Uid<'a>>,
    user: User<'a>,
}

#[derive(Serialize, Default)]
struct Authorization<'a> {
    policy: Named<'a>,
}

#[derive(Serialize, Default)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u32>,
}

#[derive(Serialize, Default)]
struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Serialize, Default)]
struct Device<'a> {
    hostname: &'a str,
    r#type: &'static str,
    type_id: u32,
}

#[derive(Serialize, Default)]
struct QueryInfo<'a> {
    query_string: &'a str,
    uid: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Process<'a> {
    cmd_line: &'a str,
    name: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct File<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u32>,
}

#[derive(Serialize, Default)]
struct Api<'a> {
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ApiResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Named<'static>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

#[derive(Serialize, Default)]
struct ApiResponse {
    code: Option<u32>,
}

#[derive(Serialize, Default)]
struct HttpRequest<'a> {
    http_method: &'a str,
    url: Url<'a>,
}

#[derive(Serialize, Default)]
struct Url<'a> {
    path: &'a str,
    query_string: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    r#type: &'a str,
}

#[derive(Serialize, Default)]
struct Traffic {
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_in: Option<Option<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_out: Option<Option<usize>>,
}

#[derive(Serialize, Default)]
struct FindingInfo<'a> {
    analytic: Analytic<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attacks: Vec<Attack>,
    desc: &'a str,
    related_events: Vec<UidOwned>,
    title: &'a str,
    types: [&'static str; 1],
    uid: String,
}

#[derive(Serialize, Default)]
struct Analytic<'a> {
    name: &'a str,
    r#type: &'static str,
    type_id: u32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Attack {
    Technique { technique: UidOwned },
    TacticUid { tactic: UidOwned },
    TacticName { tactic: NameOwned },
}

#[derive(Serialize, Default)]
struct UidOwned {
    uid: String,
}

#[derive(Serialize, Default)]
struct NameOwned {
    name: String,
}

#[derive(Serialize, Default)]
struct Evidence {
    data: EvidenceData,
}

#[derive(Serialize, Default)]
struct EvidenceData {
    request_event: String,
}

#[derive(Serialize, Default)]
struct Policy<'a> {
    is_applied: bool,
    name: String,
    uid: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Unmapped<'a> {
    gatehouse: Option<&'a Payload>,
}

fn build(event: &Event) -> Record<'_> {
    let mut r = Record {
        time: event.time.timestamp_millis(),
        time_dt: event.time.to_rfc3339(),
        severity_id: 1,
        severity: "Informational",
        metadata: Metadata {
            version: OCSF_VERSION,
            uid: event.id.to_string(),
            log_name: "gatehouse",
            product: Product {
                name: "Gatehouse",
                vendor_name: "Gatehouse",
                version: env!("CARGO_PKG_VERSION"),
                feature: named(event.protocol.map(Protocol::as_str).unwrap_or("control")),
            },
            logged_time: event.time.timestamp_millis(),
            extension: Extension {
                name: "gatehouse",
                version: event.schema_version.to_string(),
            },
            loggers: [named(&event.gateway_id)],
            correlation_uid: event.session_id.as_deref(),
        },
        actor: actor(event),
        unmapped: Unmapped {
            gatehouse: Some(&event.payload),
        },
        ..Record::default()
    };
    let (class, activity_id, activity_name) = fill(event, &mut r);
    let Class(class_uid, class_name, category_uid, category_name) = class;
    r.class_uid = class_uid;
    r.class_name = class_name;
    r.category_uid = category_uid;
    r.category_name = category_name;
    r.activity_id = activity_id;
    r.activity_name = activity_name;
    r.type_uid = u64::from(class_uid) * 100 + u64::from(activity_id);
    r.type_name = format!("{class_name}: {activity_name}");
    if let Some(target) = &event.target {
        r.dst_endpoint
            .get_or_insert_with(Endpoint::default)
            .name
            .get_or_insert(target);
    }
    r
}

fn actor(event: &Event) -> Option<Actor<'_>> {
    let identity = event.identity.as_ref()?;
    Some(Actor {
        authorizations: identity.role.as_deref().map(|role| {
            [Authorization {
                policy: named(role),
            }]
        }),
        invoked_by: identity.on_behalf_of.as_deref(),
        session: event.session_id.as_deref().map(|uid| Uid { uid }),
        user: User {
            credential_uid: identity.credential_id.as_deref(),
            name: Some(&identity.name),
            r#type: Some("Agent"),
            type_id: Some(99),
        },
    })
}

fn endpoint(addr: &str) -> Endpoint<'_> {
    if let Some((ip, port)) = addr.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return Endpoint {
            ip: Some(ip.trim_start_matches('[').trim_end_matches(']')),
            port: Some(port),
            ..Endpoint::default()
        };
    }
    Endpoint {
        name: Some(addr),
        ..Endpoint::default()
    }
}

fn with_database<'a>(r: &mut Record<'a>, event: &'a Event) {
    if let Some(target) = &event.target {
        r.database = Some(Named {
            name: target,
            type_id: Some(99),
            r#type: Some("PostgreSQL"),
        });
    }
    r.type_id = Some(1);
    r.r#type = Some("Database");
}

fn success<'a>(r: &mut Record<'a>, ok: bool, detail: Option<&'a str>) {
    r.status_id = Some(if ok { 1 } else { 2 });
    r.status = Some(if ok { "Success" } else { "Failure" });
    r.status_detail = detail;
}

/// Fills the class-specific attributes; returns class and activity.
fn fill<'a>(event: &'a Event, r: &mut Record<'a>) -> (Class, u32, &'static str) {
    match &event.payload {
        Payload::SessionOpened(s) => {
            success(r, true, None);
            r.src_endpoint = s.client_addr.as_deref().map(endpoint);
            if let Some(host) = &s.upstream_host {
                r.dst_endpoint = Some(Endpoint {
                    hostname: Some(host),
                    ..Endpoint::default()
                });
            }
            match event.protocol {
                Some(Protocol::Postgres) => {
                    with_database(r, event);
                    (DATASTORE, 3, "Connect")
                }
                Some(Protocol::Ssh) => (SSH, 1, "Open"),
                _ => (AUTHENTICATION, 1, "Logon"),
            }
        }
        Payload::SessionClosed(s) => {
            r.status_detail = Some(&s.reason);
            r.duration = s.duration_ms;
            match event.protocol {
                Some(Protocol::Ssh) => (SSH, 2, "Close"),
                _ => (AUTHENTICATION, 2, "Logoff"),
            }
        }
        Payload::AuthFailed(a) => {
            success(r, false, Some(&a.reason));
            r.is_mfa = Some(false);
            r.src_endpoint = a.client_addr.as_deref().map(endpoint);
            r.user = a.login.as_deref().map(|login| User {
                name: Some(login),
                ..User::default()
            });
            (AUTHENTICATION, 1, "Logon")
        }
        Payload::RequestObserved(req) => match &req.detail {
            RequestDetail::Postgres(p) => postgres_request(event, r, &req.command, p),
            RequestDetail::Ssh(s) => ssh_request(r, &req.command, s),
            RequestDetail::Kubernetes(k) => k8s_request(r, k),
        },
        Payload::DecisionMade(d) => decision(event, r, d),
        Payload::ResultObserved(res) => result(event, r, res),
        Payload::SessionData(d) => {
            let bytes = d
                .text
                .as_ref()
                .map(String::len)
                .or(d.base64.as_ref().map(|b| b.len() / 4 * 3));
            r.traffic = Some(match d.direction {
                DataDirection::Input => Traffic {
                    bytes_out: Some(bytes),
                    bytes_in: None,
                },
                _ => Traffic {
                    bytes_in: Some(bytes),
                    bytes_out: None,
                },
            });
            (SSH, 6, "Traffic")
        }
        Payload::ApprovalRequested(a) => {
            r.message = Some(format!(
                "approval {} requested by rule `{}`",
                a.approval_id, a.rule
            ));
            r.privileges = Some(vec![a.command.clone()]);
            r.group = Some(named(&a.group));
            r.status_id = Some(0);
            r.status = Some("Pending");
            r.end_time = Some(a.deadline.timestamp_millis());
            r.session = Some(Uid {
                uid: &a.approval_id,
            });
            (AUTHORIZE_SESSION, 99, "Approval Requested")
        }
        Payload::ApprovalGranted(a) => {
            success(r, true, None);
            r.session = Some(Uid {
                uid: &a.approval_id,
            });
            r.user = Some(User {
                name: Some(&a.reviewer),
                ..User::default()
            });
            r.end_time = a.valid_until.map(|t| t.timestamp_millis());
            (AUTHORIZE_SESSION, 99, "Approval Granted")
        }
        Payload::ApprovalDenied(a) => {
            success(r, false, Some(&a.reason));
            r.session = Some(Uid {
                uid: &a.approval_id,
            });
            r.user = Some(User {
                name: Some(&a.reviewer),
                ..User::default()
            });
            (AUTHORIZE_SESSION, 99, "Approval Denied")
        }
        Payload::ApprovalExpired(a) => {
            success(r, false, Some("expired"));
            r.session = Some(Uid {
                uid: &a.approval_id,
            });
            (AUTHORIZE_SESSION, 99, "Approval Expired")
        }
        Payload::GrantRevoked(g) => {
            success(r, true, None);
            r.session = Some(Uid {
                uid: &g.approval_id,
            });
            r.user = Some(User {
                name: Some(&g.revoked_by),
                ..User::default()
            });
            r.message = Some(g.reason.clone());
            (AUTHORIZE_SESSION, 99, "Grant Revoked")
        }
        Payload::CredentialIssued(c) => {
            r.user = Some(User {
                name: Some(&c.subject),
                credential_uid: Some(&c.credential_id),
                ..User::default()
            });
            r.privileges = Some(vec![format!("{}:{}", c.protocol, c.target)]);
            r.resource = Some(Resource {
                name: Some(&c.target),
                namespace: None,
                r#type: c.protocol.as_str(),
            });
            r.end_time = Some(c.expires_at.timestamp_millis());
            (USER_ACCESS, 1, "Assign Privileges")
        }
        Payload::CredentialRevoked(c) => {
            r.user = Some(User {
                credential_uid: Some(&c.credential_id),
                ..User::default()
            });
            r.message = c.reason.clone();
            (USER_ACCESS, 2, "Revoke Privileges")
        }
        Payload::AlertRaised(a) => alert(event, r, a),
        Payload::ApprovalWithdrawn(a) => {
            success(r, false, Some(&a.reason));
            r.session = Some(Uid {
                uid: &a.approval_id,
            });
            (AUTHORIZE_SESSION, 99, "Approval Withdrawn")
        }
        Payload::LogOutage(o) => {
            success(r, false, Some(&o.error));
            r.severity_id = 4;
            r.severity = "High";
            r.message = Some(format!(
                "the event log refused appends from {} to {} ({} refused): {}",
                o.started_at.to_rfc3339(),
                o.ended_at.to_rfc3339(),
                o.refused_appends,
                o.error
            ));
            r.end_time = Some(o.ended_at.timestamp_millis());
            (LIFECYCLE, 99, "Event Log Outage")
        }
        Payload::ShipperRewound(w) => {
            success(r, true, None);
            r.severity_id = 3;
            r.severity = "Medium";
            r.message = Some(format!(
                "the {} shipper's cursor {} was past the log's end {}: moved back; records the sink holds at offsets {}..{} are no longer in the log",
                w.sink, w.cursor, w.log_end, w.log_end, w.cursor
            ));
            (LIFECYCLE, 99, "Shipper Rewound")
        }
    }
}

fn postgres_request<'a>(
    event: &'a Event,
    r: &mut Record<'a>,
    command: &'a str,
    p: &'a PgStatement,
) -> (Class, u32, &'static str) {
    let (id, name) = match p.kind.as_str() {
        "select" => (4, "Query"),
        "insert" | "copy" => (5, "Write"),
        "update" | "merge" => (2, "Update"),
        "create" => (6, "Create"),
        "delete" | "drop" | "truncate" => (7, "Delete"),
        _ => (99, "Other"),
    };
    r.query_info = Some(QueryInfo {
        query_string: command,
        uid: p.prepared_name.as_deref(),
    });
    r.table = p
        .tables_written
        .first()
        .or(p.tables_read.first())
        .map(|t| named(t));
    with_database(r, event);
    (DATASTORE, id, name)
}

fn ssh_request<'a>(
    r: &mut Record<'a>,
    command: &'a str,
    s: &'a SshRequest,
) -> (Class, u32, &'static str) {
    let device = Device {
        hostname: &s.host,
        r#type: "Server",
        type_id: 1,
    };
    match s.kind {
        SshRequestKind::Exec | SshRequestKind::ShellLine => {
            r.process = Some(Process {
                cmd_line: command,
                name: s.program.as_deref(),
            });
            r.device = Some(device);
            (PROCESS, 1, "Launch")
        }
        SshRequestKind::Process => {
            // A guarded host's exec (ADR 0023); a kill at the exec stop terminates.
            r.process = Some(Process {
                cmd_line: command,
                name: s.program.as_deref(),
            });
            r.device = Some(device);
            if s.process.as_ref().is_some_and(|p| p.killed.is_some()) {
                (PROCESS, 2, "Terminate")
            } else {
                (PROCESS, 1, "Launch")
            }
        }
        SshRequestKind::Spawn => {
            // A guarded session's growth past another step of tasks: a process made
            // a new one (fork without exec).
            r.process = Some(Process {
                cmd_line: command,
                name: s.program.as_deref(),
            });
            r.device = Some(device);
            (PROCESS, 1, "Launch")
        }
        SshRequestKind::Connect => {
            let p = s.process.as_ref();
            r.process = Some(Process {
                cmd_line: command,
                name: s.program.as_deref(),
            });
            r.dst_endpoint = Some(Endpoint {
                ip: p.and_then(|p| p.address.as_deref()),
                port: p.and_then(|p| p.port),
                ..Endpoint::default()
            });
            r.device = Some(device);
            (NETWORK, 1, "Open")
        }
        SshRequestKind::PortForward => {
            r.dst_endpoint = Some(Endpoint {
                hostname: s.forward_host.as_deref(),
                port: s.forward_port,
                ..Endpoint::default()
            });
            r.device = Some(device);
            (SSH, 6, "Traffic")
        }
        SshRequestKind::Sftp => {
            let (id, name) = match s.sftp_op.as_deref() {
                Some("write" | "mkdir") => (1, "Create"),
                Some("read" | "open" | "stat" | "readdir") => (2, "Read"),
                Some("setstat") => (3, "Update"),
                Some("remove" | "rmdir") => (4, "Delete"),
                Some("rename") => (5, "Rename"),
                _ => (99, "Other"),
            };
            r.file = Some(File {
                name: s.path.as_deref().and_then(|p| p.rsplit('/').next()),
                path: s.path.as_deref(),
                type_id: Some(1),
            });
            r.file_result = s.path2.as_deref().map(|p| File {
                path: Some(p),
                ..File::default()
            });
            r.device = Some(device);
            (FILE_SYSTEM, id, name)
        }
        SshRequestKind::SessionOpen => {
            r.dst_endpoint = Some(Endpoint {
                hostname: Some(&s.host),
                ..Endpoint::default()
            });
            (SSH, 1, "Open")
        }
        _ => {
            r.dst_endpoint = Some(Endpoint {
                hostname: Some(&s.host),
                ..Endpoint::default()
            });
            r.message = Some(command.to_owned());
            (SSH, 99, "Other")
        }
    }
}

fn k8s_request<'a>(r: &mut Record<'a>, k: &'a K8sRequest) -> (Class, u32, &'static str) {
    let (id, name) = match k.verb.as_str() {
        "create" => (1, "Create"),
        "get" | "list" | "watch" => (2, "Read"),
        "update" | "patch" => (3, "Update"),
        "delete" | "deletecollection" => (4, "Delete"),
        _ => (99, "Other"),
    };
    let version = if k.api_group.is_empty() {
        k.api_version.clone()
    } else {
        format!("{}/{}", k.api_group, k.api_version)
    };
    let (path, query) = match k.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (k.path.as_str(), None),
    };
    r.api = Some(Api {
        operation: &k.verb,
        response: None,
        service: Some(named("kubernetes")),
        version: Some(version),
    });
    r.http_request = Some(HttpRequest {
        http_method: &k.method,
        url: Url {
            path,
            query_string: query,
        },
    });
    r.resources = Some([Resource {
        name: k.name.as_deref(),
        namespace: k.namespace.as_deref(),
        r#type: &k.resource,
    }]);
    (API, id, name)
}

fn protocol_class(event: &Event) -> Class {
    match event.protocol {
        Some(Protocol::Postgres) | None => DATASTORE,
        Some(Protocol::Ssh) => PROCESS,
        Some(Protocol::Kubernetes) => API,
    }
}

fn disposition(effect: Effect) -> (u32, &'static str) {
    match effect {
        Effect::Allow => (1, "Allowed"),
        Effect::Mask => (7, "Custom Action"),
        Effect::RequireApproval => (14, "Delayed"),
        Effect::Block => (2, "Blocked"),
    }
}

fn decision<'a>(
    event: &'a Event,
    r: &mut Record<'a>,
    d: &'a DecisionMade,
) -> (Class, u32, &'static str) {
    let (disp_id, disp) = disposition(d.effect);
    let blocked = d.effect == Effect::Block;
    r.disposition_id = Some(disp_id);
    r.disposition = Some(disp);
    r.action_id = Some(if blocked { 2 } else { 1 });
    r.action = Some(if blocked { "Denied" } else { "Allowed" });
    r.message = d.reason.clone();
    r.policy = Some(Policy {
        is_applied: !d.default_applied,
        name: d.rules.join(","),
        uid: d.policy_version.as_deref(),
    });
    (protocol_class(event), 99, "Other")
}

fn result<'a>(
    event: &'a Event,
    r: &mut Record<'a>,
    res: &'a ResultObserved,
) -> (Class, u32, &'static str) {
    success(r, res.status == ResultStatus::Ok, res.message.as_deref());
    r.status_code = res.code.as_deref();
    r.count = res.rows;
    r.duration = res.duration_us.map(|us| us / 1000);
    if event.protocol == Some(Protocol::Kubernetes) {
        r.api = Some(Api {
            operation: "response",
            response: Some(ApiResponse {
                code: res.code.as_deref().and_then(|c| c.parse().ok()),
            }),
            service: None,
            version: None,
        });
    }
    (protocol_class(event), 99, "Other")
}

fn attack(tag: &str) -> Option<Attack> {
    let rest = tag.strip_prefix("attack.")?;
    let upper = rest.to_ascii_uppercase();
    Some(
        if upper.starts_with('T') && upper.chars().nth(1).is_some_and(|c| c.is_ascii_digit()) {
            Attack::Technique {
                technique: UidOwned { uid: upper },
            }
        } else if upper.starts_with("TA")
            && upper.chars().nth(2).is_some_and(|c| c.is_ascii_digit())
        {
            Attack::TacticUid {
                tactic: UidOwned { uid: upper },
            }
        } else {
            Attack::TacticName {
                tactic: NameOwned {
                    name: rest.replace('_', " "),
                },
            }
        },
    )
}

fn alert<'a>(
    event: &'a Event,
    r: &mut Record<'a>,
    a: &'a AlertRaised,
) -> (Class, u32, &'static str) {
    let (disp_id, disp) = a.effect.map(disposition).unwrap_or((15, "Detected"));
    r.severity_id = a.severity.ocsf_id();
    r.severity = a.severity.ocsf_caption();
    r.message = Some(a.message.clone());
    r.is_alert = Some(true);
    r.status_id = Some(1);
    r.status = Some("New");
    r.disposition_id = Some(disp_id);
    r.disposition = Some(disp);
    r.finding_info = Some(FindingInfo {
        analytic: Analytic {
            name: &a.rule,
            r#type: if a.sequence { "Behavioral" } else { "Rule" },
            type_id: if a.sequence { 5 } else { 1 },
        },
        attacks: a.tags.iter().filter_map(|t| attack(t)).collect(),
        desc: &a.message,
        related_events: a
            .related_events
            .iter()
            .map(|id| UidOwned {
                uid: id.to_string(),
            })
            .collect(),
        title: &a.rule,
        types: [if a.sequence { "sequence" } else { "rule" }],
        uid: event.id.to_string(),
    });
    r.evidences = a.request.map(|req| {
        [Evidence {
            data: EvidenceData {
                request_event: req.to_string(),
            },
        }]
    });
    (DETECTION, 1, "Create")
}
