//! Request paths: `/api/v1/...`, `/apis/GROUP/VERSION/...`, discovery and the
//! non-resource paths kubectl uses.

use super::ParseError;

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`, `/healthz`, `/openapi/...` and the like.
    NonResource,
    /// `/api`, `/api/v1`, `/apis`, `/apis/GROUP`, `/apis/GROUP/VERSION`.
    Discovery {
        /// API group (`""` for the core group).
        group: String,
        /// API version, when the path names one.
        version: Option<String>,
    },
    /// A resource request.
    Resource {
        /// API group (`""` for the core group).
        group: String,
        /// API version.
        version: String,
        /// The deprecated `/watch/` path prefix was used.
        watch_prefix: bool,
        /// Namespace.
        namespace: Option<String>,
        /// Resource.
        resource: String,
        /// Object name.
        name: Option<String>,
        /// Subresource.
        subresource: Option<String>,
    },
}

/// First segments of the non-resource paths the gateway forwards (GET only).
const NON_RESOURCE: &[&str] = &[
    "version",
    "healthz",
    "livez",
    "readyz",
    "metrics",
    "openapi",
    ".well-known",
    "openid",
    "logs",
];

/// Subresources of a namespace object (`/api/v1/namespaces/NAME/status`).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

fn decode(segment: &str) -> Result<String, ParseError> {
    let s = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ParseError::new("the path is not valid UTF-8 once decoded"))?;
    if s.is_empty() {
        return Err(ParseError::new("the path has an empty segment"));
    }
    if s == "." || s == ".." {
        return Err(ParseError::new("the path has a `.` or `..` segment"));
    }
    if s.chars()
        .any(|c| c == '/' || c.is_control() || c.is_whitespace())
    {
        return Err(ParseError::new(
            "a path segment holds `/`, a space or a control character once decoded",
        ));
    }
    Ok(s.into_owned())
}

fn check(what: &str, value: &str, allowed: impl Fn(char) -> bool) -> Result<(), ParseError> {
    if value.chars().all(allowed) {
        Ok(())
    } else {
        Err(ParseError::new(format!("`{value}` is not a valid {what}")))
    }
}

fn is_group_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
}

fn is_version_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._:@~+".contains(c)
}

/// Parses a request path (without the query string).
pub fn parse_route(path: &str) -> Result<Route, ParseError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ParseError::new("the path does not start with `/`"));
    };
    if rest.is_empty() {
        return Err(ParseError::new("`/` is not an API path"));
    }
    let segments = rest.split('/').map(decode).collect::<Result<Vec<_>, _>>()?;
    let mut it = segments.into_iter();
    let first = it.next().unwrap_or_default();
    let (group, version) = match first.as_str() {
        "api" => {
            let Some(version) = it.next() else {
                return Ok(Route::Discovery {
                    group: String::new(),
                    version: None,
                });
            };
            (String::new(), version)
        }
        "apis" => {
            let Some(group) = it.next() else {
                return Ok(Route::Discovery {
                    group: String::new(),
                    version: None,
                });
            };
            check("API group", &group, is_group_char)?;
            let Some(version) = it.next() else {
                return Ok(Route::Discovery {
                    group,
                    version: None,
                });
            };
            (group, version)
        }
        other if NON_RESOURCE.contains(&other) => return Ok(Route::NonResource),
        other => {
            return Err(ParseError::new(format!(
                "`/{other}` is not a Kubernetes API path"
            )));
        }
    };
    check("API version", &version, is_version_char)?;
    let mut parts: Vec<String> = it.collect();
    if parts.is_empty() {
        return Ok(Route::Discovery {
            group,
            version: Some(version),
        });
    }
    let mut watch_prefix = false;
    if parts.first().map(String::as_str) == Some("watch") {
        watch_prefix = true;
        parts.remove(0);
    }
    let mut namespace = None;
    if parts.first().map(String::as_str) == Some("namespaces") && parts.len() >= 2 {
        let ns = parts.get(1).cloned().unwrap_or_default();
        check("namespace", &ns, is_name_char)?;
        let namespace_object = parts.len() == 2
            || parts
                .get(2)
                .is_some_and(|p| NAMESPACE_SUBRESOURCES.contains(&p.as_str()));
        if !namespace_object {
            parts.drain(..2);
        }
        namespace = Some(ns);
    }
    let mut parts = parts.into_iter();
    let resource = parts
        .next()
        .ok_or_else(|| ParseError::new("the path names no resource"))?;
    check("resource", &resource, is_group_char)?;
    let name = parts.next();
    if let Some(n) = &name {
        check("object name", n, is_name_char)?;
    }
    let subresource = parts.next();
    if let Some(s) = &subresource {
        check("subresource", s, is_group_char)?;
    }
    // Only the proxy subresource takes a path of its own (`pods/NAME/proxy/PATH`).
    if parts.next().is_some() && subresource.as_deref() != Some("proxy") {
        return Err(ParseError::new(format!(
            "`{path}` has more segments than resource/name/subresource"
        )));
    }
    Ok(Route::Resource {
        group,
        version,
        watch_prefix,
        namespace,
        resource,
        name,
        subresource,
    })
}
