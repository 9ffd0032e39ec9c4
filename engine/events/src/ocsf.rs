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
//! | approval requested / granted / denied / expired | Authorize Session (3003) |
//! | credential issued / revoked | User Access Management (3005) |
//! | authentication failure, non-SSH session open/close | Authentication (3002) |
//! | alert | Detection Finding (2004) |
//!
//! Fields OCSF has no place for are kept under `unmapped.gatehouse`, which holds the
//! native payload, so nothing is lost on the way to the SIEM.

use serde_json::{Map, Value, json};

use crate::payload::{
    AlertRaised, DecisionMade, Effect, K8sRequest, Payload, PgStatement, RequestDetail,
    ResultObserved, ResultStatus, SshRequest, SshRequestKind,
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

/// True for events that belong on the alerts topic (OCSF Detection Findings).
pub fn is_alert(event: &Event) -> bool {
    matches!(event.payload, Payload::AlertRaised(_))
}

/// The OCSF class uid an event maps to.
pub fn class_uid(event: &Event) -> u32 {
    mapping(event).0.0
}

/// Maps an event to an OCSF 1.x JSON object.
pub fn to_ocsf(event: &Event) -> Value {
    let (class, activity_id, activity_name, mut body) = mapping(event);
    let Class(class_uid, class_name, category_uid, category_name) = class;
    let mut out = Map::new();
    out.insert("class_uid".into(), json!(class_uid));
    out.insert("class_name".into(), json!(class_name));
    out.insert("category_uid".into(), json!(category_uid));
    out.insert("category_name".into(), json!(category_name));
    out.insert("activity_id".into(), json!(activity_id));
    out.insert("activity_name".into(), json!(activity_name));
    out.insert(
        "type_uid".into(),
        json!(u64::from(class_uid) * 100 + u64::from(activity_id)),
    );
    out.insert(
        "type_name".into(),
        json!(format!("{class_name}: {activity_name}")),
    );
    out.insert("time".into(), json!(event.time.timestamp_millis()));
    out.insert("time_dt".into(), json!(event.time.to_rfc3339()));
    if !body.contains_key("severity_id") {
        out.insert("severity_id".into(), json!(1));
        out.insert("severity".into(), json!("Informational"));
    }
    out.insert("metadata".into(), metadata(event));
    if let Some(actor) = actor(event) {
        out.insert("actor".into(), actor);
    }
    if let Some(target) = &event.target {
        let dst = body.entry("dst_endpoint").or_insert_with(|| json!({}));
        if let Value::Object(dst) = dst {
            dst.entry("name").or_insert_with(|| json!(target));
        }
    }
    let native = serde_json::to_value(&event.payload).unwrap_or(Value::Null);
    body.insert("unmapped".into(), json!({ "gatehouse": native }));
    out.append(&mut body);
    Value::Object(out)
}

fn metadata(event: &Event) -> Value {
    let mut m = json!({
        "version": OCSF_VERSION,
        "uid": event.id.to_string(),
        "log_name": "gatehouse",
        "product": {
            "name": "Gatehouse",
            "vendor_name": "Gatehouse",
            "version": env!("CARGO_PKG_VERSION"),
            "feature": { "name": event.protocol.map(Protocol::as_str).unwrap_or("control") },
        },
        "logged_time": event.time.timestamp_millis(),
        "extension": { "name": "gatehouse", "version": event.schema_version.to_string() },
        "loggers": [{ "name": event.gateway_id }],
    });
    if let (Some(session), Value::Object(obj)) = (&event.session_id, &mut m) {
        obj.insert("correlation_uid".into(), json!(session));
    }
    m
}

fn actor(event: &Event) -> Option<Value> {
    let identity = event.identity.as_ref()?;
    let mut user = Map::new();
    user.insert("name".into(), json!(identity.name));
    user.insert("type_id".into(), json!(99));
    user.insert("type".into(), json!("Agent"));
    if let Some(cred) = &identity.credential_id {
        user.insert("credential_uid".into(), json!(cred));
    }
    let mut actor = Map::new();
    actor.insert("user".into(), Value::Object(user));
    if let Some(session) = &event.session_id {
        actor.insert("session".into(), json!({ "uid": session }));
    }
    if let Some(person) = &identity.on_behalf_of {
        actor.insert("invoked_by".into(), json!(person));
    }
    if let Some(role) = &identity.role {
        actor.insert(
            "authorizations".into(),
            json!([{ "policy": { "name": role } }]),
        );
    }
    Some(Value::Object(actor))
}

type Mapped = (Class, u32, &'static str, Map<String, Value>);

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn mapping(event: &Event) -> Mapped {
    match &event.payload {
        Payload::SessionOpened(s) => {
            let mut body = obj(json!({ "status_id": 1, "status": "Success" }));
            if let Some(addr) = &s.client_addr {
                body.insert("src_endpoint".into(), endpoint(addr));
            }
            if let Some(host) = &s.upstream_host {
                body.insert("dst_endpoint".into(), json!({ "hostname": host }));
            }
            match event.protocol {
                Some(Protocol::Postgres) => (DATASTORE, 3, "Connect", with_database(body, event)),
                Some(Protocol::Ssh) => (SSH, 1, "Open", body),
                _ => (AUTHENTICATION, 1, "Logon", body),
            }
        }
        Payload::SessionClosed(s) => {
            let body = obj(json!({ "status_detail": s.reason, "duration": s.duration_ms }));
            match event.protocol {
                Some(Protocol::Ssh) => (SSH, 2, "Close", body),
                _ => (AUTHENTICATION, 2, "Logoff", body),
            }
        }
        Payload::AuthFailed(a) => {
            let mut body = obj(json!({
                "status_id": 2, "status": "Failure", "status_detail": a.reason,
                "is_mfa": false,
            }));
            if let Some(addr) = &a.client_addr {
                body.insert("src_endpoint".into(), endpoint(addr));
            }
            if let Some(login) = &a.login {
                body.insert("user".into(), json!({ "name": login }));
            }
            (AUTHENTICATION, 1, "Logon", body)
        }
        Payload::RequestObserved(r) => match &r.detail {
            RequestDetail::Postgres(p) => postgres_request(event, &r.command, p),
            RequestDetail::Ssh(s) => ssh_request(&r.command, s),
            RequestDetail::Kubernetes(k) => k8s_request(k),
        },
        Payload::DecisionMade(d) => decision(event, d),
        Payload::ResultObserved(r) => result(event, r),
        Payload::SessionData(d) => {
            let bytes = d
                .text
                .as_ref()
                .map(String::len)
                .or(d.base64.as_ref().map(|b| b.len() / 4 * 3));
            let dir = match d.direction {
                crate::payload::DataDirection::Input => "bytes_out",
                _ => "bytes_in",
            };
            (SSH, 6, "Traffic", obj(json!({ "traffic": { dir: bytes } })))
        }
        Payload::ApprovalRequested(a) => (
            AUTHORIZE_SESSION,
            99,
            "Approval Requested",
            obj(json!({
                "message": format!("approval {} requested by rule `{}`", a.approval_id, a.rule),
                "privileges": [a.command],
                "group": { "name": a.group },
                "status_id": 0, "status": "Pending",
                "end_time": a.deadline.timestamp_millis(),
                "session": { "uid": a.approval_id },
            })),
        ),
        Payload::ApprovalGranted(a) => (
            AUTHORIZE_SESSION,
            99,
            "Approval Granted",
            obj(json!({
                "status_id": 1, "status": "Success",
                "session": { "uid": a.approval_id },
                "user": { "name": a.reviewer },
                "end_time": a.valid_until.map(|t| t.timestamp_millis()),
            })),
        ),
        Payload::ApprovalDenied(a) => (
            AUTHORIZE_SESSION,
            99,
            "Approval Denied",
            obj(json!({
                "status_id": 2, "status": "Failure", "status_detail": a.reason,
                "session": { "uid": a.approval_id },
                "user": { "name": a.reviewer },
            })),
        ),
        Payload::ApprovalExpired(a) => (
            AUTHORIZE_SESSION,
            99,
            "Approval Expired",
            obj(json!({
                "status_id": 2, "status": "Failure", "status_detail": "expired",
                "session": { "uid": a.approval_id },
            })),
        ),
        Payload::CredentialIssued(c) => (
            USER_ACCESS,
            1,
            "Assign Privileges",
            obj(json!({
                "user": { "name": c.subject, "credential_uid": c.credential_id },
                "privileges": [format!("{}:{}", c.protocol, c.target)],
                "resource": { "name": c.target, "type": c.protocol.as_str() },
                "end_time": c.expires_at.timestamp_millis(),
            })),
        ),
        Payload::CredentialRevoked(c) => (
            USER_ACCESS,
            2,
            "Revoke Privileges",
            obj(json!({
                "user": { "credential_uid": c.credential_id },
                "message": c.reason,
            })),
        ),
        Payload::AlertRaised(a) => alert(event, a),
    }
}

fn endpoint(addr: &str) -> Value {
    match addr.rsplit_once(':') {
        Some((ip, port)) => match port.parse::<u16>() {
            Ok(port) => {
                json!({ "ip": ip.trim_start_matches('[').trim_end_matches(']'), "port": port })
            }
            Err(_) => json!({ "name": addr }),
        },
        None => json!({ "name": addr }),
    }
}

fn with_database(mut body: Map<String, Value>, event: &Event) -> Map<String, Value> {
    if let Some(target) = &event.target {
        body.insert(
            "database".into(),
            json!({ "name": target, "type_id": 99, "type": "PostgreSQL" }),
        );
    }
    body.insert("type_id".into(), json!(1));
    body.insert("type".into(), json!("Database"));
    body
}

fn postgres_activity(kind: &str) -> (u32, &'static str) {
    match kind {
        "select" => (4, "Query"),
        "insert" | "copy" => (5, "Write"),
        "update" | "merge" => (2, "Update"),
        "create" => (6, "Create"),
        "delete" | "drop" | "truncate" => (7, "Delete"),
        _ => (99, "Other"),
    }
}

fn postgres_request(event: &Event, command: &str, p: &PgStatement) -> Mapped {
    let (id, name) = postgres_activity(&p.kind);
    let mut body = obj(json!({
        "query_info": { "query_string": command, "uid": p.prepared_name },
    }));
    if let Some(table) = p.tables_written.first().or(p.tables_read.first()) {
        body.insert("table".into(), json!({ "name": table }));
    }
    (DATASTORE, id, name, with_database(body, event))
}

fn ssh_request(command: &str, s: &SshRequest) -> Mapped {
    let device = json!({ "hostname": s.host, "type_id": 1, "type": "Server" });
    match s.kind {
        SshRequestKind::Exec | SshRequestKind::ShellLine => (
            PROCESS,
            1,
            "Launch",
            obj(json!({
                "process": { "cmd_line": command, "name": s.program },
                "device": device,
            })),
        ),
        SshRequestKind::PortForward => (
            SSH,
            6,
            "Traffic",
            obj(json!({
                "dst_endpoint": { "hostname": s.forward_host, "port": s.forward_port },
                "device": device,
            })),
        ),
        SshRequestKind::Sftp => {
            let (id, name) = match s.sftp_op.as_deref() {
                Some("write" | "mkdir") => (1, "Create"),
                Some("read" | "open" | "stat" | "readdir") => (2, "Read"),
                Some("setstat") => (3, "Update"),
                Some("remove" | "rmdir") => (4, "Delete"),
                Some("rename") => (5, "Rename"),
                _ => (99, "Other"),
            };
            let mut body = obj(json!({
                "file": { "path": s.path, "name": s.path.as_deref().and_then(|p| p.rsplit('/').next()), "type_id": 1 },
                "device": device,
            }));
            if let Some(p2) = &s.path2 {
                body.insert("file_result".into(), json!({ "path": p2 }));
            }
            (FILE_SYSTEM, id, name, body)
        }
        SshRequestKind::SessionOpen => (
            SSH,
            1,
            "Open",
            obj(json!({ "dst_endpoint": { "hostname": s.host } })),
        ),
        _ => (
            SSH,
            99,
            "Other",
            obj(json!({ "dst_endpoint": { "hostname": s.host }, "message": command })),
        ),
    }
}

fn k8s_activity(verb: &str) -> (u32, &'static str) {
    match verb {
        "create" => (1, "Create"),
        "get" | "list" | "watch" => (2, "Read"),
        "update" | "patch" => (3, "Update"),
        "delete" | "deletecollection" => (4, "Delete"),
        _ => (99, "Other"),
    }
}

fn k8s_request(k: &K8sRequest) -> Mapped {
    let (id, name) = k8s_activity(&k.verb);
    let group = if k.api_group.is_empty() {
        k.api_version.clone()
    } else {
        format!("{}/{}", k.api_group, k.api_version)
    };
    let mut resource = Map::new();
    resource.insert("type".into(), json!(k.resource));
    if let Some(n) = &k.name {
        resource.insert("name".into(), json!(n));
    }
    if let Some(ns) = &k.namespace {
        resource.insert("namespace".into(), json!(ns));
    }
    let (path, query) = match k.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (k.path.as_str(), None),
    };
    (
        API,
        id,
        name,
        obj(json!({
            "api": {
                "operation": k.verb,
                "service": { "name": "kubernetes" },
                "version": group,
            },
            "http_request": {
                "http_method": k.method,
                "url": { "path": path, "query_string": query },
            },
            "resources": [Value::Object(resource)],
        })),
    )
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

fn decision(event: &Event, d: &DecisionMade) -> Mapped {
    let (disp_id, disp) = disposition(d.effect);
    let body = obj(json!({
        "disposition_id": disp_id,
        "disposition": disp,
        "action_id": if d.effect == Effect::Block { 2 } else { 1 },
        "action": if d.effect == Effect::Block { "Denied" } else { "Allowed" },
        "message": d.reason,
        "policy": { "name": d.rules.join(","), "uid": d.policy_version, "is_applied": !d.default_applied },
    }));
    (protocol_class(event), 99, "Other", body)
}

fn result(event: &Event, r: &ResultObserved) -> Mapped {
    let (status_id, status) = match r.status {
        ResultStatus::Ok => (1, "Success"),
        ResultStatus::Error | ResultStatus::Refused => (2, "Failure"),
    };
    let mut body = obj(json!({
        "status_id": status_id,
        "status": status,
        "status_code": r.code,
        "status_detail": r.message,
        "count": r.rows,
        "duration": r.duration_us.map(|us| us / 1000),
    }));
    if event.protocol == Some(Protocol::Kubernetes) {
        body.insert("api".into(), json!({ "operation": "response", "response": { "code": r.code.as_deref().and_then(|c| c.parse::<u32>().ok()) } }));
    }
    (protocol_class(event), 99, "Other", body)
}

fn attack(tag: &str) -> Option<Value> {
    let rest = tag.strip_prefix("attack.")?;
    let upper = rest.to_ascii_uppercase();
    if upper.starts_with('T') && upper.chars().nth(1).is_some_and(|c| c.is_ascii_digit()) {
        Some(json!({ "technique": { "uid": upper } }))
    } else if upper.starts_with("TA") {
        Some(json!({ "tactic": { "uid": upper } }))
    } else {
        Some(json!({ "tactic": { "name": rest.replace('_', " ") } }))
    }
}

fn alert(event: &Event, a: &AlertRaised) -> Mapped {
    let attacks: Vec<Value> = a.tags.iter().filter_map(|t| attack(t)).collect();
    let related: Vec<Value> = a
        .related_events
        .iter()
        .map(|id| json!({ "uid": id.to_string() }))
        .collect();
    let (disp_id, disp) = a.effect.map(disposition).unwrap_or((15, "Detected"));
    let mut finding = obj(json!({
        "uid": event.id.to_string(),
        "title": a.rule,
        "desc": a.message,
        "types": [if a.sequence { "sequence" } else { "rule" }],
        "related_events": related,
        "analytic": { "name": a.rule, "type_id": if a.sequence { 5 } else { 1 }, "type": if a.sequence { "Behavioral" } else { "Rule" } },
    }));
    if !attacks.is_empty() {
        finding.insert("attacks".into(), Value::Array(attacks));
    }
    (
        DETECTION,
        1,
        "Create",
        obj(json!({
            "severity_id": a.severity.ocsf_id(),
            "severity": a.severity.ocsf_caption(),
            "message": a.message,
            "is_alert": true,
            "status_id": 1,
            "status": "New",
            "disposition_id": disp_id,
            "disposition": disp,
            "finding_info": Value::Object(finding),
            "evidences": a.request.map(|r| json!([{ "data": { "request_event": r.to_string() } }])),
        })),
    )
}
