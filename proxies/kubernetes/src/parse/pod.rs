//! The pod spec fields that matter, from a pod, a workload's pod template, a patch of
//! either, or any object that embeds containers (custom resources that run pods).
//!
//! The scan is by shape, not by path: every `containers`/`initContainers`/
//! `ephemeralContainers` list, `volumes` list and host-namespace flag anywhere in the
//! body counts. A patch is judged by what it sets; fields it leaves alone are not seen.

use gatehouse_events::payload::PodSpecSummary;
use serde_json::{Map, Value};

/// Resources whose objects carry a pod spec or pod template.
const POD_BEARING: &[(&str, &str)] = &[
    ("pods", "Pod"),
    ("podtemplates", "PodTemplate"),
    ("replicationcontrollers", "ReplicationController"),
    ("deployments", "Deployment"),
    ("replicasets", "ReplicaSet"),
    ("statefulsets", "StatefulSet"),
    ("daemonsets", "DaemonSet"),
    ("jobs", "Job"),
    ("cronjobs", "CronJob"),
];

/// True for resources whose writes carry a pod spec: their bodies must be parsed.
pub fn is_pod_bearing(resource: &str, subresource: Option<&str>) -> bool {
    POD_BEARING.iter().any(|(r, _)| *r == resource)
        && matches!(subresource, None | Some("ephemeralcontainers"))
}

/// Summarises `body` (an object, a patch in object shape, or several of them in an
/// array). Returns `None` when the body has no pod fields and the resource is not
/// pod-bearing.
pub fn summarize(
    body: &Value,
    resource: &str,
    subresource: Option<&str>,
) -> Option<PodSpecSummary> {
    let mut s = Scan::default();
    s.value(body, 0);
    let bearing = is_pod_bearing(resource, subresource);
    if !bearing && !s.found {
        return None;
    }
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            POD_BEARING
                .iter()
                .find(|(r, _)| *r == resource)
                .map(|(_, k)| (*k).to_owned())
        })
        .unwrap_or_default();
    let object_name = str_at(body, &["metadata", "name"])
        .or_else(|| str_at(body, &["metadata", "generateName"]))
        .map(str::to_owned);
    Some(PodSpecSummary {
        kind,
        object_name,
        images: s.images,
        commands: s.commands,
        privileged: s.privileged,
        host_paths: s.host_paths,
        host_network: s.host_network,
        host_pid: s.host_pid,
        host_ipc: s.host_ipc,
        capabilities: s.capabilities,
        service_account: s.service_account,
        secrets: s.secrets,
        projected_tokens: s.projected_tokens,
    })
}

/// Deeper nesting is not a Kubernetes object (serde_json stops at 128 anyway).
const MAX_DEPTH: usize = 100;

#[derive(Default)]
struct Scan {
    found: bool,
    images: Vec<String>,
    commands: Vec<String>,
    privileged: bool,
    host_paths: Vec<String>,
    host_network: bool,
    host_pid: bool,
    host_ipc: bool,
    capabilities: Vec<String>,
    service_account: Option<String>,
    secrets: Vec<String>,
    projected_tokens: Vec<String>,
}

fn push(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn objects(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

impl Scan {
    fn value(&mut self, v: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::Object(map) => self.object(map, depth),
            Value::Array(items) => items.iter().for_each(|i| self.value(i, depth + 1)),
            _ => {}
        }
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) {
        for (key, v) in map {
            match key.as_str() {
                "containers" | "initContainers" | "ephemeralContainers" if v.is_array() => {
                    self.found = true;
                    for c in objects(Some(v)) {
                        self.container(c);
                    }
                }
                "volumes" if v.is_array() => {
                    self.found = true;
                    for vol in objects(Some(v)) {
                        self.volume(vol);
                    }
                }
                "hostNetwork" | "hostPID" | "hostIPC" => {
                    self.found = true;
                    let on = v.as_bool() == Some(true);
                    match key.as_str() {
                        "hostNetwork" => self.host_network |= on,
                        "hostPID" => self.host_pid |= on,
                        _ => self.host_ipc |= on,
                    }
                }
                "serviceAccountName" | "serviceAccount" => {
                    if let Some(sa) = v.as_str().filter(|s| !s.is_empty()) {
                        self.found = true;
                        // `serviceAccountName` wins over the deprecated alias.
                        if key == "serviceAccountName" || self.service_account.is_none() {
                            self.service_account = Some(sa.to_owned());
                        }
                    }
                }
                "imagePullSecrets" if v.is_array() => {
                    for s in objects(Some(v)) {
                        if let Some(n) = s.get("name").and_then(Value::as_str) {
                            push(&mut self.secrets, n);
                        }
                    }
                }
                _ => self.value(v, depth + 1),
            }
        }
    }

    fn container(&mut self, c: &Map<String, Value>) {
        if let Some(image) = c.get("image").and_then(Value::as_str) {
            push(&mut self.images, image);
        }
        let argv: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| c.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !argv.is_empty() {
            let line = argv
                .iter()
                .map(|a| super::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            self.commands.push(line);
        }
        if let Some(sc) = c.get("securityContext") {
            if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
                self.privileged = true;
            }
            if let Some(add) = sc
                .get("capabilities")
                .and_then(|caps| caps.get("add"))
                .and_then(Value::as_array)
            {
                for cap in add.iter().filter_map(Value::as_str) {
                    push(&mut self.capabilities, cap);
                }
            }
        }
        for env in objects(c.get("env")) {
            if let Some(n) = env
                .get("valueFrom")
                .and_then(|v| str_at(v, &["secretKeyRef", "name"]))
            {
                push(&mut self.secrets, n);
            }
        }
        for from in objects(c.get("envFrom")) {
            if let Some(n) = from
                .get("secretRef")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
            {
                push(&mut self.secrets, n);
            }
        }
    }

    fn volume(&mut self, vol: &Map<String, Value>) {
        if let Some(hp) = vol.get("hostPath").filter(|h| h.is_object()) {
            // A hostPath without a path (a patch) still mounts the host: record it.
            let path = hp.get("path").and_then(Value::as_str).unwrap_or("/");
            push(&mut self.host_paths, path);
        }
        if let Some(n) = vol
            .get("secret")
            .and_then(|s| s.get("secretName"))
            .and_then(Value::as_str)
        {
            push(&mut self.secrets, n);
        }
        if let Some(projected) = vol.get("projected") {
            for source in objects(projected.get("sources")) {
                if let Some(n) = source
                    .get("secret")
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                {
                    push(&mut self.secrets, n);
                }
                if let Some(token) = source.get("serviceAccountToken") {
                    let audience = token
                        .get("audience")
                        .and_then(Value::as_str)
                        .filter(|a| !a.is_empty())
                        .unwrap_or("default");
                    push(&mut self.projected_tokens, audience);
                }
            }
        }
    }
}
