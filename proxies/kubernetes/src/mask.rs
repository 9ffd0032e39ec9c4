//! Masking of `Secret` (and `ConfigMap`) data in responses, per the rules: each data
//! value is masked as a column named by its key (`mask columns matching /pass/`).
//!
//! Secret values are base64 on the wire; a value is decoded, masked and encoded
//! again, so clients still get valid base64 (`kubectl get secret -o
//! jsonpath='{.data.password}' | base64 -d` prints `****`) and typed clients still
//! decode the object. Objects, lists, `Table` rows (with their objects) and watch
//! events are handled; the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, which repeats the data, is masked too.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The annotation kubectl apply stores the whole applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What a resource's objects are, for masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maskable {
    /// `secrets`: base64 `data`, plain `stringData`.
    Secret,
    /// `configmaps`: plain `data`, base64 `binaryData`.
    ConfigMap,
}

impl Maskable {
    /// The maskable kind of a resource, if any.
    pub fn of(api_group: &str, resource: &str) -> Option<Self> {
        match (api_group, resource) {
            ("", "secrets") => Some(Maskable::Secret),
            ("", "configmaps") => Some(Maskable::ConfigMap),
            _ => None,
        }
    }

    fn of_kind(kind: &str) -> Option<Self> {
        match kind {
            "Secret" => Some(Maskable::Secret),
            "ConfigMap" => Some(Maskable::ConfigMap),
            _ => None,
        }
    }
}

/// Masks one value of a column (the engine's `Decision` is one).
pub trait MaskValue {
    /// The value after masking.
    fn mask<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str>;
}

impl MaskValue for gatehouse_core::engine::Decision {
    fn mask<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
        self.mask_value(column, value)
    }
}

impl<T: MaskValue + ?Sized> MaskValue for &T {
    fn mask<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
        (**self).mask(column, value)
    }
}

impl<T: MaskValue + ?Sized> MaskValue for std::sync::Arc<T> {
    fn mask<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
        (**self).mask(column, value)
    }
}

/// Masks values with a [`MaskValue`], counting the values it changed.
pub struct Masker<F> {
    mask: F,
    kind: Maskable,
    /// Values changed so far.
    pub masked: u64,
    /// Objects seen (list items, table rows, watch events).
    pub objects: u64,
}

impl<F: MaskValue> Masker<F> {
    /// A masker for responses about `kind` objects.
    pub fn new(kind: Maskable, mask: F) -> Self {
        Self {
            mask,
            kind,
            masked: 0,
            objects: 0,
        }
    }

    /// Masks a response document: an object, a list, a `Table`, or a watch event.
    pub fn document(&mut self, v: &mut Value) {
        let Some(map) = v.as_object_mut() else {
            return;
        };
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind == "Table" {
            if let Some(rows) = map.get_mut("rows").and_then(Value::as_array_mut) {
                for row in rows {
                    self.objects += 1;
                    if let Some(obj) = row.get_mut("object") {
                        self.object(obj);
                    }
                }
            }
        } else if let Some(items) = map.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                self.objects += 1;
                self.object(item);
            }
        } else if map.contains_key("type") && map.contains_key("object") {
            // A watch event; its object may itself be a Table (kubectl get -w).
            self.objects += 1;
            if let Some(obj) = map.get_mut("object") {
                self.document(obj);
            }
        } else {
            self.objects += 1;
            self.object(v);
        }
    }

    fn object(&mut self, v: &mut Value) {
        let Some(map) = v.as_object_mut() else {
            return;
        };
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Maskable::of_kind)
            .unwrap_or(self.kind);
        match kind {
            Maskable::Secret => {
                self.field(map, "data", true);
                self.field(map, "stringData", false);
            }
            Maskable::ConfigMap => {
                self.field(map, "data", false);
                self.field(map, "binaryData", true);
            }
        }
        self.last_applied(map);
    }

    fn field(&mut self, obj: &mut Map<String, Value>, field: &str, base64: bool) {
        let Some(data) = obj.get_mut(field).and_then(Value::as_object_mut) else {
            return;
        };
        for (key, value) in data.iter_mut() {
            let Some(s) = value.as_str() else { continue };
            let masked = if base64 {
                match STANDARD.decode(s) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        let out = self.mask.mask(key, &text);
                        (out != text).then(|| STANDARD.encode(out.as_bytes()))
                    }
                    // Not base64 (cannot come from a real API server): mask as is.
                    Err(_) => {
                        let out = self.mask.mask(key, s);
                        (out != s).then(|| out.into_owned())
                    }
                }
            } else {
                let out = self.mask.mask(key, s);
                (out != s).then(|| out.into_owned())
            };
            if let Some(m) = masked {
                self.masked += 1;
                *value = Value::String(m);
            }
        }
    }

    fn last_applied(&mut self, obj: &mut Map<String, Value>) {
        let Some(annotation) = obj
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(|a| a.get_mut(LAST_APPLIED))
        else {
            return;
        };
        let Some(text) = annotation.as_str() else {
            return;
        };
        let before = self.masked;
        let replaced = match serde_json::from_str::<Value>(text) {
            Ok(mut applied) => {
                self.object(&mut applied);
                (self.masked != before).then(|| applied.to_string())
            }
            // Unreadable: it may hold the data in any form, so it goes.
            Err(_) => {
                self.masked += 1;
                Some("****".to_owned())
            }
        };
        if let Some(r) = replaced {
            *annotation = Value::String(r);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use serde_json::json;

    use super::*;

    struct Stars;

    impl MaskValue for Stars {
        fn mask<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
            if column.contains("pass") || column == "token" {
                Cow::Owned("****".into())
            } else {
                Cow::Borrowed(value)
            }
        }
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn secrets_lists_tables_and_watch_events() {
        let secret = json!({
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED: json!({"kind": "Secret", "data": {"password": b64("hunter2")}}).to_string()}},
            "data": {"password": b64("hunter2"), "user": b64("app")},
            "stringData": {"token": "t0k3n"}
        });
        let mut doc = secret.clone();
        let mut m = Masker::new(Maskable::Secret, Stars);
        m.document(&mut doc);
        assert_eq!(doc["data"]["password"], b64("****"));
        assert_eq!(doc["data"]["user"], b64("app"));
        assert_eq!(doc["stringData"]["token"], "****");
        let annotation = doc["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(!annotation.contains(&b64("hunter2")), "{annotation}");
        assert_eq!(m.masked, 3);

        let mut list = json!({"kind": "SecretList", "items": [
            {"metadata": {"name": "a"}, "data": {"password": b64("x1")}},
            {"metadata": {"name": "b"}, "data": {"password": b64("x2")}}
        ]});
        let mut m = Masker::new(Maskable::Secret, Stars);
        m.document(&mut list);
        assert_eq!((m.masked, m.objects), (2, 2));
        assert!(!list.to_string().contains(&b64("x1")));

        let mut table =
            json!({"kind": "Table", "rows": [{"cells": ["a"], "object": secret.clone()}]});
        let mut m = Masker::new(Maskable::Secret, Stars);
        m.document(&mut table);
        assert!(!table.to_string().contains(&b64("hunter2")));

        let mut event = json!({"type": "ADDED", "object": secret});
        let mut m = Masker::new(Maskable::Secret, Stars);
        m.document(&mut event);
        assert!(!event.to_string().contains(&b64("hunter2")));
    }

    #[test]
    fn config_maps_mask_plain_values() {
        let mut cm =
            json!({"kind": "ConfigMap", "data": {"db_password": "hunter2", "mode": "fast"}});
        let mut m = Masker::new(Maskable::ConfigMap, Stars);
        m.document(&mut cm);
        assert_eq!(cm["data"]["db_password"], "****");
        assert_eq!(cm["data"]["mode"], "fast");
    }
}
