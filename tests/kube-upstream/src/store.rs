//! Objects by (resource, namespace, name), with resource versions and watch events.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Resources the server knows: (group, version, plural, kind, namespaced).
pub const RESOURCES: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "pods", "Pod", true),
    ("", "v1", "secrets", "Secret", true),
    ("", "v1", "configmaps", "ConfigMap", true),
    ("", "v1", "namespaces", "Namespace", false),
    ("apps", "v1", "deployments", "Deployment", true),
];

/// Key of an object: (plural, namespace or "", name).
type Key = (String, String, String);

/// A watch event: (plural, type, object).
pub type WatchEvent = (String, String, Value);

/// The object store.
pub struct Store {
    objects: Mutex<(u64, BTreeMap<Key, Value>)>,
    events: broadcast::Sender<WatchEvent>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    /// A store with namespaces `default` and `kube-system`, pods `default/web` and
    /// `kube-system/coredns`, secret `default/db-credentials` (password `hunter2`),
    /// and config map `default/app-config`.
    pub fn seeded() -> Self {
        let (events, _) = broadcast::channel(1024);
        let s = Self {
            objects: Mutex::new((1, BTreeMap::new())),
            events,
        };
        for ns in ["default", "kube-system"] {
            s.put(
                "namespaces",
                json!({"metadata": {"name": ns}, "status": {"phase": "Active"}}),
            );
        }
        s.put("pods", pod("default", "web", "nginx:1.27"));
        s.put("pods", pod("kube-system", "coredns", "coredns:1.11"));
        s.put(
            "secrets",
            json!({
                "metadata": {"name": "db-credentials", "namespace": "default"},
                "type": "Opaque",
                "data": {
                    "username": STANDARD.encode("app"),
                    "password": STANDARD.encode("hunter2"),
                }
            }),
        );
        s.put(
            "configmaps",
            json!({"metadata": {"name": "app-config", "namespace": "default"}, "data": {"mode": "fast"}}),
        );
        s
    }

    /// Subscribes to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }

    /// The current resource version.
    pub fn version(&self) -> u64 {
        self.objects.lock().unwrap().0
    }

    /// Stores `obj` (completing kind, apiVersion and metadata); returns it.
    pub fn put(&self, plural: &str, mut obj: Value) -> Value {
        let (group, version, _, kind, _) = resource(plural).unwrap();
        let mut guard = self.objects.lock().unwrap();
        guard.0 += 1;
        let rv = guard.0;
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        obj["kind"] = json!(kind);
        obj["apiVersion"] = json!(api_version);
        let md = obj["metadata"].as_object_mut().unwrap();
        md.insert("resourceVersion".into(), json!(rv.to_string()));
        md.entry("uid")
            .or_insert_with(|| json!(format!("00000000-0000-0000-0000-{rv:012}")));
        md.entry("creationTimestamp")
            .or_insert_with(|| json!(now()));
        let key = (
            plural.to_owned(),
            md.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            md.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        );
        let kind = if guard.1.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        guard.1.insert(key, obj.clone());
        drop(guard);
        let _ = self
            .events
            .send((plural.to_owned(), kind.to_owned(), obj.clone()));
        obj
    }

    /// One object.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .lock()
            .unwrap()
            .1
            .get(&(plural.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Objects of a resource, in a namespace or all.
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .lock()
            .unwrap()
            .1
            .iter()
            .filter(|((p, ns, _), _)| p == plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Removes an object; returns it.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut guard = self.objects.lock().unwrap();
        guard.0 += 1;
        let removed = guard
            .1
            .remove(&(plural.to_owned(), namespace.to_owned(), name.to_owned()));
        drop(guard);
        if let Some(obj) = &removed {
            let _ = self
                .events
                .send((plural.to_owned(), "DELETED".to_owned(), obj.clone()));
        }
        removed
    }
}

/// A resource by plural name.
pub fn resource(
    plural: &str,
) -> Option<(&'static str, &'static str, &'static str, &'static str, bool)> {
    RESOURCES.iter().copied().find(|r| r.2 == plural)
}

/// A running pod with one container.
pub fn pod(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": name, "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": name, "ready": true, "restartCount": 0}]}
    })
}
