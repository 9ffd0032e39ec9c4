//! Request routing: discovery, resources, watch, logs, exec.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::State;
use crate::store::{RESOURCES, pod, resource};

/// Response bodies.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// A body fed by a channel (watch events, followed logs).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn streaming(content_type: &'static str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel(64);
    let mut r = Response::new(ChannelBody(rx).boxed_unsync());
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    (tx, r)
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(what: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} not found"),
    )
}

/// Handles one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", state.token).as_str());
    if !authorized {
        *state.unauthorized.lock().unwrap() += 1;
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let target = match req.uri().query() {
        Some(q) => format!("{} {}?{q}", req.method(), req.uri().path()),
        None => format!("{} {}", req.method(), req.uri().path()),
    };
    state.requests.lock().unwrap().push(target);
    let mut frozen = state.frozen.subscribe();
    let _ = frozen.wait_for(|f| !*f).await;
    let path = req.uri().path().to_owned();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-gatehouse-test",
                    "gitCommit": "0000000", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]}),
        ),
        ["apis"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}),
        ),
        ["api", "v1"] => json_response(StatusCode::OK, &resource_list("", "v1")),
        ["openapi", "v3"] => json_response(
            StatusCode::OK,
            &json!({"paths": {
                "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=0001"},
                "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=0002"}}}),
        ),
        ["openapi", "v3", "api", "v1"] => json_response(StatusCode::OK, &openapi("")),
        ["openapi", "v3", "apis", "apps", "v1"] => json_response(StatusCode::OK, &openapi("apps")),
        ["apis", "apps", "v1"] => json_response(StatusCode::OK, &resource_list("apps", "v1")),
        ["api", "v1", rest @ ..] => resources(&state, req, "", rest).await,
        ["apis", "apps", "v1", rest @ ..] => resources(&state, req, "apps", rest).await,
        _ => not_found(&format!("path {path}")),
    }
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for (g, _, plural, kind, namespaced) in RESOURCES.iter().filter(|r| r.0 == group) {
        let _ = g;
        list.push(json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": if *plural == "pods" { json!(["po"]) } else { json!([]) }}));
        if *plural == "pods" {
            for sub in ["log", "exec", "attach", "portforward"] {
                list.push(json!({"name": format!("pods/{sub}"), "singularName": "", "namespaced": true,
                    "kind": if sub == "log" { "Pod" } else { "PodExecOptions" }, "verbs": ["create", "get"]}));
            }
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

/// Just enough OpenAPI v3 for kubectl: each kind's PATCH operation declares the
/// `fieldValidation` parameter, so kubectl leaves validation to the server (which
/// this one does not do) instead of downloading schemas.
fn openapi(group: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (_, version, plural, kind, namespaced) in RESOURCES.iter().filter(|r| r.0 == group) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if *namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{plural}/{{name}}")
        } else {
            format!("{prefix}/{plural}/{{name}}")
        };
        paths.insert(
            path,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}}}}),
        );
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths})
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True" | "t"))
}

/// Equality-only label and field selectors.
fn selected(obj: &Value, q: &[(String, String)]) -> bool {
    let pairs = |s: &str| -> Vec<(String, String)> {
        s.split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once("==").or_else(|| p.split_once('='))?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect()
    };
    let labels_ok = param(q, "labelSelector").is_none_or(|s| {
        pairs(s)
            .iter()
            .all(|(k, v)| obj["metadata"]["labels"][k].as_str() == Some(v))
    });
    let fields_ok = param(q, "fieldSelector").is_none_or(|s| {
        pairs(s).iter().all(|(k, v)| match k.as_str() {
            "metadata.name" => obj["metadata"]["name"].as_str() == Some(v),
            "metadata.namespace" => obj["metadata"]["namespace"].as_str() == Some(v),
            _ => true,
        })
    });
    labels_ok && fields_ok
}

fn age(obj: &Value) -> String {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_seconds()
                .max(0);
            if s < 120 {
                format!("{s}s")
            } else {
                format!("{}m", s / 60)
            }
        })
        .unwrap_or_else(|| "<unknown>".into())
}

/// Server-side printing: a `meta.k8s.io/v1` `Table`.
fn table(plural: &str, objs: &[Value], include_object: Option<&str>) -> Value {
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": 0});
    let columns = match plural {
        "pods" => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Status", "string"),
            col("Restarts", "string"),
            col("Age", "string"),
        ],
        "secrets" => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Data", "string"),
            col("Age", "string"),
        ],
        _ => vec![col("Name", "string"), col("Age", "string")],
    };
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].clone();
            let cells = match plural {
                "pods" => json!([name, "1/1", o["status"]["phase"].as_str().unwrap_or("Pending"), "0", age(o)]),
                "secrets" => json!([name, o["type"].as_str().unwrap_or("Opaque"),
                    o["data"].as_object().map_or(0, serde_json::Map::len).to_string(), age(o)]),
                _ => json!([name, age(o)]),
            };
            let object = if include_object == Some("Object") {
                o.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns, "rows": rows})
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|_| status(StatusCode::BAD_REQUEST, "BadRequest", "unreadable body"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("body is not JSON: {e}"),
        )
    })
}

/// JSON merge patch; strategic-merge directives (`$...` keys) are dropped.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn resources(
    state: &Arc<State>,
    req: Request<Incoming>,
    group: &str,
    rest: &[&str],
) -> Response<Body> {
    let q = query(&req);
    let (watch_prefix, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(*ns), r),
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return not_found("resource"),
    };
    let Some((g, _, _, _, namespaced)) = resource(plural) else {
        return not_found(&format!("resource {plural}"));
    };
    if g != group {
        return not_found(&format!("resource {plural}"));
    }
    let ns = if namespaced {
        namespace.unwrap_or("")
    } else {
        ""
    };
    let as_table = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let include = param(&q, "includeObject").map(str::to_owned);
    let method = req.method().as_str().to_owned();
    match (method.as_str(), name, sub) {
        ("GET", None, None) if watch_prefix || truthy(param(&q, "watch")) => {
            watch(state, plural, namespace, q, as_table).await
        }
        ("GET", None, None) => {
            let items: Vec<Value> = state
                .store
                .list(plural, namespace)
                .into_iter()
                .filter(|o| selected(o, &q))
                .collect();
            if as_table {
                let mut t = table(plural, &items, include.as_deref());
                t["metadata"]["resourceVersion"] = json!(state.store.version().to_string());
                return json_response(StatusCode::OK, &t);
            }
            let kind = resource(plural).map(|r| r.3).unwrap_or_default();
            json_response(
                StatusCode::OK,
                &json!({"kind": format!("{kind}List"), "apiVersion": if g.is_empty() { "v1".to_owned() } else { format!("{g}/v1") },
                        "metadata": {"resourceVersion": state.store.version().to_string()}, "items": items}),
            )
        }
        ("GET", Some(n), None) => match state.store.get(plural, ns, n) {
            Some(o) if as_table => {
                json_response(StatusCode::OK, &table(plural, &[o], include.as_deref()))
            }
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(&format!("{plural} \"{n}\"")),
        },
        ("GET", Some(n), Some("log")) => {
            if state.store.get(plural, ns, n).is_none() {
                return not_found(&format!("{plural} \"{n}\""));
            }
            logs(state, truthy(param(&q, "follow")))
        }
        ("GET" | "POST", Some(n), Some("exec" | "attach")) => {
            if state.store.get(plural, ns, n).is_none() {
                return not_found(&format!("{plural} \"{n}\""));
            }
            crate::exec::upgrade(req, &q)
        }
        ("POST", None, None) => {
            let mut obj = match read_json(req).await {
                Ok(o) => o,
                Err(r) => return r,
            };
            if !obj["metadata"].is_object() {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "metadata is required",
                );
            }
            if namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let Some(n) = obj["metadata"]["name"].as_str().map(str::to_owned) else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "name is required",
                );
            };
            if state.store.get(plural, ns, &n).is_some() {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{plural} \"{n}\" already exists"),
                );
            }
            if plural == "pods" {
                let image = obj["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("busybox");
                obj["status"] = pod(ns, &n, image)["status"].clone();
            }
            if param(&q, "dryRun").is_some() {
                return json_response(StatusCode::CREATED, &obj);
            }
            json_response(StatusCode::CREATED, &state.store.put(plural, obj))
        }
        ("PUT" | "PATCH", Some(n), None) => {
            let Some(mut current) = state.store.get(plural, ns, n) else {
                return not_found(&format!("{plural} \"{n}\""));
            };
            let patch = match read_json(req).await {
                Ok(o) => o,
                Err(r) => return r,
            };
            if method == "PUT" {
                current = patch;
            } else {
                merge(&mut current, &patch);
            }
            json_response(StatusCode::OK, &state.store.put(plural, current))
        }
        ("DELETE", Some(n), None) => match state.store.delete(plural, ns, n) {
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(&format!("{plural} \"{n}\"")),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the test upstream",
        ),
    }
}

async fn watch(
    state: &Arc<State>,
    plural: &str,
    namespace: Option<&str>,
    q: Vec<(String, String)>,
    as_table: bool,
) -> Response<Body> {
    // Subscribe before listing, so no change falls between the two.
    let mut events = state.store.subscribe();
    let initial = match param(&q, "resourceVersion") {
        None | Some("" | "0") => state.store.list(plural, namespace),
        Some(_) => Vec::new(),
    };
    let timeout = param(&q, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(60)
        .min(120);
    let (tx, response) = streaming("application/json");
    let plural = plural.to_owned();
    let namespace = namespace.map(str::to_owned);
    let include = param(&q, "includeObject").map(str::to_owned);
    tokio::spawn(async move {
        let render = |kind: &str, obj: Value| -> Bytes {
            let object = if as_table {
                table(&plural, &[obj], include.as_deref())
            } else {
                obj
            };
            let mut line = json!({"type": kind, "object": object}).to_string();
            line.push('\n');
            Bytes::from(line)
        };
        for obj in initial.into_iter().filter(|o| selected(o, &q)) {
            if tx.send(render("ADDED", obj)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                e = events.recv() => {
                    let Ok((p, kind, obj)) = e else { return };
                    let in_namespace = namespace
                        .as_deref()
                        .is_none_or(|n| obj["metadata"]["namespace"].as_str() == Some(n));
                    if p == plural && in_namespace && selected(&obj, &q)
                        && tx.send(render(&kind, obj)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    response
}

/// `log`: one line at once, the rest after [`crate::KubeUpstream::release_logs`]
/// when following (so a test can see that the first line arrived unbuffered).
/// Line `i` of the test pod's log; line 3 prints a card number (for masking tests).
pub fn log_line(i: usize) -> String {
    if i == 3 {
        "log line 3 card 4111 1111 1111 1111\n".to_owned()
    } else {
        format!("log line {i}\n")
    }
}

fn logs(state: &Arc<State>, follow: bool) -> Response<Body> {
    let rest = state.log_lines_after_release;
    if !follow {
        let text: String = (1..=rest + 1).map(log_line).collect();
        let mut r = Response::new(full(text));
        r.headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        return r;
    }
    let (tx, response) = streaming("text/plain");
    let state = state.clone();
    tokio::spawn(async move {
        let released = state.log_release.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        if tx.send(Bytes::from("log line 1\n")).await.is_err() {
            return;
        }
        tokio::select! {
            () = released => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            () = tx.closed() => return,
        }
        for i in 2..=rest + 1 {
            if tx.send(Bytes::from(log_line(i))).await.is_err() {
                return;
            }
        }
    });
    response
}
