//! Kubernetes API requests parsed into what rules judge: verb, group, version,
//! resource, namespace, name, subresource, selectors, and — for pods and workload
//! resources — the pod template fields that matter.
//!
//! Pure code, no I/O. The grammar follows the API server's own request-info
//! resolution (`k8s.io/apiserver/pkg/endpoints/request`), and anything it cannot
//! place is an error: a request Gatehouse cannot parse is refused, never forwarded.

mod body;
mod path;
mod pod;
mod query;

pub use body::{BodyKind, parse_body};
pub use path::{Route, parse_route};
pub use pod::{is_pod_bearing, summarize};
pub use query::Query;

use gatehouse_events::payload::K8sRequest;
use hyper::http::{HeaderMap, Method};

/// Why a request cannot be parsed. The message goes to the client and the audit log;
/// it never contains header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// How a client asks to switch protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// `Upgrade: websocket` (kubectl ≥ 1.30 for exec, attach and port-forward).
    WebSocket,
    /// `Upgrade: SPDY/3.1` (the older streaming protocol, kubectl's fallback).
    Spdy,
}

/// `exec`/`attach` parameters from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecArgs {
    /// `command` parameters, in order (exec only).
    pub command: Vec<String>,
    /// `container`.
    pub container: Option<String>,
}

/// A request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The event fields.
    pub detail: K8sRequest,
    /// A streaming request: `watch`, `log?follow=true`.
    pub streaming: bool,
    /// The protocol upgrade asked for.
    pub upgrade: Option<Upgrade>,
    /// exec/attach parameters.
    pub exec: Option<ExecArgs>,
    /// False for discovery, version, health and OpenAPI paths.
    pub is_resource: bool,
}

impl Parsed {
    /// The command recorded and shown to reviewers: `METHOD path?query`, or for exec
    /// and attach `METHOD path -- argv` (container noted).
    pub fn command(&self, raw_query: Option<&str>) -> String {
        let mut c = format!("{} {}", self.detail.method, self.detail.path);
        match &self.exec {
            Some(exec) => {
                if let Some(container) = &exec.container {
                    c.push_str(" -c ");
                    c.push_str(container);
                }
                if !exec.command.is_empty() {
                    c.push_str(" --");
                    for arg in &exec.command {
                        c.push(' ');
                        c.push_str(&shell_quote(arg));
                    }
                }
            }
            None => {
                if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
                    c.push('?');
                    c.push_str(q);
                }
            }
        }
        truncate(c, 4096)
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Quotes an argument for display when it holds spaces or shell metacharacters.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Headers a client may not send through the gateway: impersonation would let an
/// agent act as someone else with the credential Gatehouse holds.
fn forbidden_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("impersonate-")
}

fn upgrade_of(headers: &HeaderMap) -> Result<Option<Upgrade>, ParseError> {
    let connection_upgrade = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let Some(up) = headers.get(hyper::header::UPGRADE) else {
        return Ok(None);
    };
    if !connection_upgrade {
        return Ok(None);
    }
    let up = up
        .to_str()
        .map_err(|_| ParseError::new("the `Upgrade` header is not text"))?;
    if up.eq_ignore_ascii_case("websocket") {
        Ok(Some(Upgrade::WebSocket))
    } else if up.to_ascii_uppercase().starts_with("SPDY/") {
        Ok(Some(Upgrade::Spdy))
    } else {
        Err(ParseError::new(format!(
            "upgrade to `{up}` is not supported (websocket or SPDY/3.1)"
        )))
    }
}

/// Parses the request line and headers (the body, when there is one, is parsed by
/// [`parse_body`] afterwards).
pub fn parse_request(
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Parsed, ParseError> {
    if let Some(h) = headers.keys().find(|h| forbidden_header(h.as_str())) {
        return Err(ParseError::new(format!(
            "`{h}` headers are not allowed through the gateway"
        )));
    }
    let query = Query::parse(raw_query.unwrap_or(""))?;
    let route = parse_route(path)?;
    let upgrade = upgrade_of(headers)?;
    let mut detail = K8sRequest {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        label_selector: query.label_selector.clone(),
        field_selector: query.field_selector.clone(),
        ..K8sRequest::default()
    };
    let get = *method == Method::GET || *method == Method::HEAD;
    let (is_resource, streaming, exec) = match route {
        Route::NonResource => {
            if !get {
                return Err(ParseError::new(format!(
                    "{method} is not allowed on non-resource path `{path}`"
                )));
            }
            detail.verb = "get".into();
            (false, false, None)
        }
        Route::Discovery { group, version } => {
            if !get {
                return Err(ParseError::new(format!(
                    "{method} is not allowed on discovery path `{path}`"
                )));
            }
            detail.verb = "get".into();
            detail.api_group = group;
            detail.api_version = version.unwrap_or_default();
            (false, false, None)
        }
        Route::Resource {
            group,
            version,
            watch_prefix,
            namespace,
            resource,
            name,
            subresource,
        } => {
            let watch = watch_prefix || query.watch;
            let special = subresource
                .as_deref()
                .filter(|s| matches!(*s, "exec" | "attach" | "portforward" | "proxy"));
            detail.verb = match (special, method.as_str()) {
                (Some(s), _) => s.to_owned(),
                (None, "GET" | "HEAD") if watch => "watch".into(),
                (None, "GET" | "HEAD") if name.is_some() => "get".into(),
                (None, "GET" | "HEAD") => "list".into(),
                (None, "POST") => "create".into(),
                (None, "PUT") => "update".into(),
                (None, "PATCH") => "patch".into(),
                (None, "DELETE") if name.is_some() => "delete".into(),
                (None, "DELETE") => "deletecollection".into(),
                (None, m) => {
                    return Err(ParseError::new(format!(
                        "method {m} is not a Kubernetes API verb"
                    )));
                }
            };
            if watch && !get {
                return Err(ParseError::new(format!("{method} cannot watch")));
            }
            if special.is_none() && upgrade.is_some() {
                return Err(ParseError::new(
                    "protocol upgrades are only allowed for exec, attach, portforward and proxy",
                ));
            }
            let exec = matches!(special, Some("exec" | "attach")).then(|| ExecArgs {
                command: query.command.clone(),
                container: query.container.clone(),
            });
            let streaming = watch || (subresource.as_deref() == Some("log") && query.follow);
            detail.api_group = group;
            detail.api_version = version;
            detail.namespace = namespace;
            detail.resource = resource;
            detail.name = name;
            detail.subresource = subresource;
            (true, streaming, exec)
        }
    };
    Ok(Parsed {
        detail,
        streaming,
        upgrade,
        exec,
        is_resource,
    })
}

#[cfg(test)]
mod tests;
