//! Query parameters that change what a request does.

use super::ParseError;

/// The query parameters rules care about. Parameters that would be judged must be
/// unambiguous: a repeated `labelSelector`, `fieldSelector` or `watch` is refused, so
/// Gatehouse and the API server cannot read different values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `watch=true`.
    pub watch: bool,
    /// `follow=true` (logs).
    pub follow: bool,
    /// `command` (exec), in order.
    pub command: Vec<String>,
    /// `container` (exec, attach, logs).
    pub container: Option<String>,
}

/// Go's `strconv.ParseBool`, which the API server uses for boolean parameters.
fn parse_bool(key: &str, value: &str) -> Result<bool, ParseError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ParseError::new(format!(
            "`{key}={value}` is not a boolean parameter"
        ))),
    }
}

fn once(slot: &mut Option<String>, key: &str, value: String) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::new(format!(
            "the `{key}` parameter is given twice"
        )));
    }
    *slot = Some(value);
    Ok(())
}

impl Query {
    /// Parses a raw query string (`a=b&c=d`, percent- and plus-encoded).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        // Go drops `;`-separated pairs that this parser would read: refuse them so
        // both sides see the same parameters.
        if raw.contains(';') {
            return Err(ParseError::new("the query string holds `;`"));
        }
        let mut q = Query::default();
        let mut watch = None;
        let mut follow = None;
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.into_owned();
            match &*key {
                "labelSelector" => once(&mut q.label_selector, &key, value)?,
                "fieldSelector" => once(&mut q.field_selector, &key, value)?,
                "watch" => once(&mut watch, &key, value)?,
                "follow" => once(&mut follow, &key, value)?,
                "container" => once(&mut q.container, &key, value)?,
                "command" => q.command.push(value),
                _ => {}
            }
        }
        q.watch = watch
            .map(|v| parse_bool("watch", &v))
            .transpose()?
            .unwrap_or(false);
        q.follow = follow
            .map(|v| parse_bool("follow", &v))
            .transpose()?
            .unwrap_or(false);
        Ok(q)
    }
}
