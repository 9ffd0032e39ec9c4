//! Request bodies of writes: objects and patches, read for their pod fields.

use gatehouse_events::payload::PodSpecSummary;
use serde_json::Value;

use super::{ParseError, is_pod_bearing, summarize};

/// How a body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON object: create, update, merge and strategic-merge patches, and
    /// server-side apply (kubectl sends apply patches as JSON).
    Json,
    /// `application/json-patch+json`: a list of operations.
    JsonPatch,
    /// Protobuf, or anything else Gatehouse does not read.
    Opaque,
}

impl BodyKind {
    /// Classifies a `Content-Type` value (`None`: absent).
    pub fn of(content_type: Option<&str>) -> Self {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match media.as_str() {
            "application/json-patch+json" => BodyKind::JsonPatch,
            ""
            | "application/json"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml"
            | "application/yaml" => BodyKind::Json,
            _ => BodyKind::Opaque,
        }
    }
}

/// Turns JSON-patch operations into objects of the shape they write, so the scan
/// sees `{"spec":{"containers":[{"securityContext":{"privileged":true}}]}}` for
/// `add /spec/containers/0/securityContext/privileged true`.
fn patch_to_objects(ops: &[Value], pod_bearing: bool) -> Result<Value, ParseError> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "add" | "replace" => {
                let path = op
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ParseError::new("a JSON patch operation has no `path`"))?;
                let mut value = op.get("value").cloned().unwrap_or(Value::Null);
                for token in path
                    .split('/')
                    .skip(1)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    let token = token.replace("~1", "/").replace("~0", "~");
                    value = if token == "-" || token.parse::<usize>().is_ok() {
                        Value::Array(vec![value])
                    } else {
                        let mut m = serde_json::Map::new();
                        m.insert(token, value);
                        Value::Object(m)
                    };
                }
                out.push(value);
            }
            "remove" | "test" => {}
            // `copy` and `move` write values from the stored object, which Gatehouse
            // does not see: a pod spec changed that way cannot be judged.
            "copy" | "move" if pod_bearing => {
                return Err(ParseError::new(format!(
                    "a JSON patch `{kind}` of a pod spec cannot be judged; use add or replace"
                )));
            }
            "copy" | "move" => {}
            other => {
                return Err(ParseError::new(format!(
                    "`{other}` is not a JSON patch operation"
                )));
            }
        }
    }
    Ok(Value::Array(out))
}

/// Parses the body of a create, update or patch for its pod fields. Bodies of
/// pod-bearing resources must be readable; other bodies are read when they are JSON
/// (custom resources that embed containers count too).
pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
    resource: &str,
    subresource: Option<&str>,
) -> Result<Option<PodSpecSummary>, ParseError> {
    let pod_bearing = is_pod_bearing(resource, subresource);
    let kind = BodyKind::of(content_type);
    if kind == BodyKind::Opaque {
        if pod_bearing {
            return Err(ParseError::new(format!(
                "the `{}` body of a {resource} write cannot be read: send JSON",
                content_type.unwrap_or_default()
            )));
        }
        return Ok(None);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(if pod_bearing {
            summarize(&Value::Null, resource, subresource)
        } else {
            None
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ParseError::new(format!(
            "the request body is not JSON ({e}); Gatehouse reads JSON bodies only"
        ))
    })?;
    let value = match kind {
        BodyKind::JsonPatch => {
            let ops = value
                .as_array()
                .ok_or_else(|| ParseError::new("a JSON patch must be a list of operations"))?;
            patch_to_objects(ops, pod_bearing)?
        }
        _ => value,
    };
    Ok(summarize(&value, resource, subresource))
}
