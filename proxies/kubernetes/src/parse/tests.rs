#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use hyper::http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use super::*;

fn parse(method: &str, target: &str) -> Result<Parsed, ParseError> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    parse_request(
        &Method::from_bytes(method.as_bytes()).unwrap(),
        path,
        query,
        &HeaderMap::new(),
    )
}

fn fields(
    p: &Parsed,
) -> (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let d = &p.detail;
    (
        d.verb.clone(),
        d.api_group.clone(),
        d.api_version.clone(),
        d.resource.clone(),
        d.namespace.clone(),
        d.name.clone(),
        d.subresource.clone(),
    )
}

fn s(v: &str) -> String {
    v.to_owned()
}

type Want<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

#[test]
fn verbs_resources_and_namespaces() {
    let cases: &[(&str, &str, Want<'_>)] = &[
        (
            "GET",
            "/api/v1/pods",
            ("list", "", "v1", "pods", None, None, None),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            ("list", "", "v1", "pods", Some("default"), None, None),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web",
            ("get", "", "v1", "pods", Some("default"), Some("web"), None),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?watch=1",
            ("watch", "", "v1", "pods", Some("default"), None, None),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/default/pods",
            ("watch", "", "v1", "pods", Some("default"), None, None),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            ("create", "", "v1", "pods", Some("default"), None, None),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/prod/deployments/api",
            (
                "update",
                "apps",
                "v1",
                "deployments",
                Some("prod"),
                Some("api"),
                None,
            ),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/api/scale",
            (
                "patch",
                "apps",
                "v1",
                "deployments",
                Some("prod"),
                Some("api"),
                Some("scale"),
            ),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods/web",
            (
                "delete",
                "",
                "v1",
                "pods",
                Some("default"),
                Some("web"),
                None,
            ),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods",
            (
                "deletecollection",
                "",
                "v1",
                "pods",
                Some("default"),
                None,
                None,
            ),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/exec?command=sh",
            (
                "exec",
                "",
                "v1",
                "pods",
                Some("default"),
                Some("web"),
                Some("exec"),
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web/attach",
            (
                "attach",
                "",
                "v1",
                "pods",
                Some("default"),
                Some("web"),
                Some("attach"),
            ),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/portforward",
            (
                "portforward",
                "",
                "v1",
                "pods",
                Some("default"),
                Some("web"),
                Some("portforward"),
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services/web/proxy/metrics/x",
            (
                "proxy",
                "",
                "v1",
                "services",
                Some("default"),
                Some("web"),
                Some("proxy"),
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web/log?follow=true",
            (
                "get",
                "",
                "v1",
                "pods",
                Some("default"),
                Some("web"),
                Some("log"),
            ),
        ),
        (
            "POST",
            "/api/v1/namespaces/ci/serviceaccounts/builder/token",
            (
                "create",
                "",
                "v1",
                "serviceaccounts",
                Some("ci"),
                Some("builder"),
                Some("token"),
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces",
            ("list", "", "v1", "namespaces", None, None, None),
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system",
            (
                "get",
                "",
                "v1",
                "namespaces",
                Some("kube-system"),
                Some("kube-system"),
                None,
            ),
        ),
        (
            "PUT",
            "/api/v1/namespaces/old/finalize",
            (
                "update",
                "",
                "v1",
                "namespaces",
                Some("old"),
                Some("old"),
                Some("finalize"),
            ),
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:admin",
            (
                "get",
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                None,
                Some("system:admin"),
                None,
            ),
        ),
        ("GET", "/version", ("get", "", "", "", None, None, None)),
        (
            "GET",
            "/apis/apps/v1",
            ("get", "apps", "v1", "", None, None, None),
        ),
        ("GET", "/api", ("get", "", "", "", None, None, None)),
        (
            "GET",
            "/openapi/v3/api/v1",
            ("get", "", "", "", None, None, None),
        ),
    ];
    for (method, target, want) in cases {
        let p = parse(method, target).unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        let want = (
            s(want.0),
            s(want.1),
            s(want.2),
            s(want.3),
            want.4.map(s),
            want.5.map(s),
            want.6.map(s),
        );
        assert_eq!(fields(&p), want, "{method} {target}");
    }
}

#[test]
fn selectors_streaming_and_exec_arguments() {
    let p = parse(
        "GET",
        "/api/v1/pods?labelSelector=app%3Dweb%2Ctier+in+(a)&fieldSelector=spec.nodeName%3Dn1&watch=true",
    )
    .unwrap();
    assert_eq!(
        p.detail.label_selector.as_deref(),
        Some("app=web,tier in (a)")
    );
    assert_eq!(p.detail.field_selector.as_deref(), Some("spec.nodeName=n1"));
    assert!(p.streaming && p.is_resource);
    assert!(
        parse("GET", "/api/v1/namespaces/d/pods/w/log?follow=true")
            .unwrap()
            .streaming
    );
    assert!(
        !parse("GET", "/api/v1/namespaces/d/pods/w/log")
            .unwrap()
            .streaming
    );
    let p = parse(
        "POST",
        "/api/v1/namespaces/d/pods/w/exec?command=sh&command=-c&command=echo+hi&container=app&stdout=true",
    )
    .unwrap();
    let exec = p.exec.clone().unwrap();
    assert_eq!(exec.command, ["sh", "-c", "echo hi"]);
    assert_eq!(
        p.command(Some("ignored")),
        "POST /api/v1/namespaces/d/pods/w/exec -c app -- sh -c 'echo hi'"
    );
    let p = parse("GET", "/api/v1/pods?limit=500").unwrap();
    assert_eq!(p.command(Some("limit=500")), "GET /api/v1/pods?limit=500");
}

#[test]
fn unparseable_requests_are_errors() {
    for (method, target) in [
        ("GET", "/"),
        ("GET", "/ui/index.html"),
        ("GET", "/api/v1/namespaces/default/pods/../secrets"),
        ("GET", "/api/v1/namespaces/default/pods/a%2Fb"),
        ("GET", "/api/v1//pods"),
        ("GET", "/api/V1/pods"),
        ("GET", "/api/v1/namespaces/default/pods/web/status/extra"),
        ("GET", "/api/v1/pods?labelSelector=a&labelSelector=b"),
        ("GET", "/api/v1/pods?watch=maybe"),
        ("GET", "/api/v1/pods?labelSelector=a;fieldSelector=b"),
        ("OPTIONS", "/api/v1/pods"),
        ("POST", "/api/v1/pods?watch=1"),
        ("POST", "/version"),
        ("DELETE", "/apis/apps/v1"),
        ("GET", "/api/v1/namespaces/default/pods/we b"),
    ] {
        assert!(parse(method, target).is_err(), "{method} {target} parsed");
    }
}

#[test]
fn impersonation_and_stray_upgrades_are_refused() {
    let mut h = HeaderMap::new();
    h.insert("Impersonate-User", HeaderValue::from_static("admin"));
    let e = parse_request(&Method::GET, "/api/v1/pods", None, &h).unwrap_err();
    assert!(e.0.contains("impersonate-user"), "{e}");
    let mut h = HeaderMap::new();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    assert!(parse_request(&Method::GET, "/api/v1/pods", None, &h).is_err());
    let p = parse_request(&Method::GET, "/api/v1/namespaces/d/pods/w/exec", None, &h).unwrap();
    assert_eq!(p.upgrade, Some(Upgrade::WebSocket));
    h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
    let p = parse_request(&Method::POST, "/api/v1/namespaces/d/pods/w/exec", None, &h).unwrap();
    assert_eq!(p.upgrade, Some(Upgrade::Spdy));
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    assert!(parse_request(&Method::POST, "/api/v1/namespaces/d/pods/w/exec", None, &h).is_err());
}

fn pod(body: serde_json::Value, resource: &str) -> gatehouse_events::payload::PodSpecSummary {
    parse_body(
        Some("application/json"),
        body.to_string().as_bytes(),
        resource,
        None,
    )
    .unwrap()
    .unwrap()
}

#[test]
fn pod_specs_of_pods_and_workloads() {
    let spec = json!({
        "serviceAccountName": "builder",
        "hostNetwork": true,
        "hostPID": false,
        "imagePullSecrets": [{"name": "regcred"}],
        "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "echo init"]}],
        "containers": [{
            "name": "app",
            "image": "nginx:1.27",
            "args": ["--port", "80"],
            "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}},
            "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-pass", "key": "p"}}}],
            "envFrom": [{"secretRef": {"name": "api-keys"}}]
        }],
        "volumes": [
            {"name": "root", "hostPath": {"path": "/"}},
            {"name": "s", "secret": {"secretName": "tls"}},
            {"name": "p", "projected": {"sources": [
                {"secret": {"name": "proj"}},
                {"serviceAccountToken": {"audience": "vault", "path": "t"}},
                {"serviceAccountToken": {"path": "t2"}}
            ]}}
        ]
    });
    let check = |p: gatehouse_events::payload::PodSpecSummary, kind: &str| {
        assert_eq!(p.kind, kind);
        // Keys are visited in sorted order: `containers` before `initContainers`.
        assert_eq!(p.images, ["nginx:1.27", "busybox:1.36"]);
        assert_eq!(p.commands, ["--port 80", "sh -c 'echo init'"]);
        assert!(p.privileged && p.host_network && !p.host_pid && !p.host_ipc);
        assert_eq!(p.host_paths, ["/"]);
        assert_eq!(p.capabilities, ["NET_ADMIN", "SYS_ADMIN"]);
        assert_eq!(p.service_account.as_deref(), Some("builder"));
        assert_eq!(p.secrets, ["db-pass", "api-keys", "regcred", "tls", "proj"]);
        assert_eq!(p.projected_tokens, ["vault", "default"]);
    };
    check(pod(json!({"kind": "Pod", "spec": spec}), "pods"), "Pod");
    check(
        pod(
            json!({"kind": "Deployment", "spec": {"template": {"spec": spec}}}),
            "deployments",
        ),
        "Deployment",
    );
    check(
        pod(
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            "cronjobs",
        ),
        "CronJob",
    );
    // A custom resource embedding a pod template counts too.
    check(
        pod(
            json!({"kind": "Workflow", "spec": {"templates": [{"podSpecPatch": "x", "spec": spec}]}}),
            "workflows",
        ),
        "Workflow",
    );
    // A patch has no kind: it comes from the resource.
    let p = pod(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "evil"}]}}}}),
        "statefulsets",
    );
    assert_eq!(
        (p.kind.as_str(), p.images.as_slice()),
        ("StatefulSet", &["evil".to_owned()][..])
    );
    // Other resources without pod fields have no summary.
    assert!(
        parse_body(
            Some("application/json"),
            br#"{"kind":"ConfigMap","data":{"containers":"x"}}"#,
            "configmaps",
            None
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn json_patches_are_judged_by_what_they_write() {
    let ops = json!([
        {"op": "replace", "path": "/spec/containers/0/securityContext/privileged", "value": true},
        {"op": "add", "path": "/spec/volumes/-", "value": {"name": "h", "hostPath": {"path": "/etc"}}},
        {"op": "add", "path": "/spec/hostPID", "value": true},
        {"op": "remove", "path": "/spec/hostNetwork"}
    ]);
    let p = parse_body(
        Some("application/json-patch+json"),
        ops.to_string().as_bytes(),
        "pods",
        None,
    )
    .unwrap()
    .unwrap();
    assert!(p.privileged && p.host_pid && !p.host_network);
    assert_eq!(p.host_paths, ["/etc"]);
    let copy = json!([{"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/1"}]);
    assert!(
        parse_body(
            Some("application/json-patch+json"),
            copy.to_string().as_bytes(),
            "pods",
            None
        )
        .is_err()
    );
}

#[test]
fn unreadable_pod_bodies_are_errors() {
    assert!(
        parse_body(
            Some("application/vnd.kubernetes.protobuf"),
            b"\x6b\x38\x73",
            "pods",
            None
        )
        .is_err()
    );
    assert!(
        parse_body(
            Some("application/json"),
            b"apiVersion: v1\nkind: Pod\n",
            "deployments",
            None
        )
        .is_err()
    );
    assert!(parse_body(Some("application/json"), b"{not json", "configmaps", None).is_err());
    // Protobuf writes of resources without pod specs pass unread.
    assert!(
        parse_body(
            Some("application/vnd.kubernetes.protobuf"),
            b"\x00",
            "leases",
            None
        )
        .unwrap()
        .is_none()
    );
    // Status writes do not carry a pod template.
    assert!(
        parse_body(
            Some("application/vnd.kubernetes.protobuf"),
            b"\x00",
            "pods",
            Some("status")
        )
        .unwrap()
        .is_none()
    );
}
