//! Settings a client asks for in its startup packet: `options=-c name=value ...`
//! (what `PGOPTIONS` sends) and parameters PostgreSQL takes as settings
//! (`search_path=...`). Each is judged as the `SET` it amounts to and, when allowed,
//! passed on to the upstream as a startup parameter, so it applies exactly as it
//! would on a direct connection (it is the session's default: `RESET` returns to it).

/// Startup parameters with a meaning of their own (not settings).
const PROTOCOL: &[&str] = &["user", "database", "options", "replication"];

/// One setting from the startup packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The setting's name (as PostgreSQL reads it: `-` in `--name` is `_`).
    pub name: String,
    /// Its value, as sent.
    pub value: String,
}

impl Setting {
    /// The `SET` statement this setting amounts to, as recorded and judged.
    pub fn statement(&self) -> String {
        let name = self
            .name
            .split('.')
            .map(identifier)
            .collect::<Vec<_>>()
            .join(".");
        if self.name.eq_ignore_ascii_case("search_path") {
            // A list setting: its value is a list of names, as written.
            if let Some(list) = path_list(&self.value) {
                return format!("SET {name} TO {list}");
            }
        }
        format!("SET {name} TO {}", literal(&self.value))
    }
}

/// The settings a startup packet asks for, in order, besides those in `passed`
/// (forwarded as they are), or why they cannot be read (the login is refused).
pub fn from_startup(params: &[(String, String)], passed: &[&str]) -> Result<Vec<Setting>, String> {
    // PostgreSQL applies `options` first, then the other parameters.
    let mut out = Vec::new();
    for (k, v) in params {
        if k == "options" {
            out.extend(parse_options(v)?);
        }
    }
    for (k, v) in params {
        if k != "options"
            && !PROTOCOL.contains(&k.as_str())
            && !k.starts_with("_pq_.")
            && !passed.contains(&k.as_str())
        {
            out.push(Setting {
                name: k.clone(),
                value: v.clone(),
            });
        }
    }
    Ok(out)
}

/// Parses the `options` startup parameter as PostgreSQL does: arguments separated
/// by whitespace (a backslash makes the next character literal), each `-c name=value`,
/// `-cname=value` or `--name=value`. Other server switches are refused: they are
/// for starting a server, and `-c` says the same thing plainly.
pub fn parse_options(options: &str) -> Result<Vec<Setting>, String> {
    let args = split_args(options);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let assignment = if let Some(rest) = arg.strip_prefix("--") {
            rest.to_owned()
        } else if let Some(rest) = arg.strip_prefix("-c") {
            if rest.is_empty() {
                let Some(next) = args.get(i) else {
                    return Err("-c in options needs name=value after it".to_owned());
                };
                i += 1;
                next.clone()
            } else {
                rest.to_owned()
            }
        } else {
            return Err(format!(
                "the argument `{arg}` in the startup options is not supported by the gateway; use -c name=value"
            ));
        };
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(format!("-c {assignment} in options requires a value"));
        };
        if name.is_empty() {
            return Err(format!("-c {assignment} in options names no setting"));
        }
        out.push(Setting {
            name: name.replace('-', "_"),
            value: value.to_owned(),
        });
    }
    Ok(out)
}

/// `pg_split_opts`: whitespace separates arguments; a backslash escapes the next
/// character (so `\ ` is a space inside an argument and `\\` a backslash).
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut arg = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_whitespace() {
                break;
            }
            chars.next();
            if c == '\\' {
                if let Some(n) = chars.next() {
                    arg.push(n);
                }
            } else {
                arg.push(c);
            }
        }
        out.push(arg);
    }
}

/// A name as an SQL identifier: bare when it reads the same bare, quoted otherwise.
fn identifier(part: &str) -> String {
    let bare = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        part.to_owned()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}

/// A string literal (standard conforming: only quotes are doubled).
fn literal(v: &str) -> String {
    if v.contains('\\') {
        // An escape string reads the same whatever standard_conforming_strings is.
        format!("E'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A `search_path` value as the list of names PostgreSQL reads from it, written as
/// identifiers (`None` when it is not a plain list).
fn path_list(value: &str) -> Option<String> {
    let mut parts = Vec::new();
    for raw in value.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let name = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(q) if !q.contains('"') => q.to_owned(),
            Some(_) => return None,
            None if raw.contains('"') => return None,
            None => raw.to_lowercase(),
        };
        parts.push(if name == "$user" {
            "\"$user\"".to_owned()
        } else {
            identifier(&name)
        });
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Setting]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|s| (s.name.as_str(), s.value.as_str()))
            .collect()
    }

    #[test]
    fn options_are_read_as_postgres_reads_them() {
        let s = parse_options(
            "-c intervalstyle=sql_standard  -cwork_mem=64MB --search-path=app,public -c application_name=a\\ b\\\\c",
        )
        .unwrap_or_default();
        assert_eq!(
            names(&s),
            [
                ("intervalstyle", "sql_standard"),
                ("work_mem", "64MB"),
                ("search_path", "app,public"),
                ("application_name", "a b\\c"),
            ]
        );
        for bad in ["-c", "-c work_mem", "-B 100", "-c =1", "plain"] {
            assert!(parse_options(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_options("  ").unwrap_or_default(), []);
    }

    #[test]
    fn settings_are_judged_as_the_set_they_amount_to() {
        let set = |n: &str, v: &str| {
            Setting {
                name: n.into(),
                value: v.into(),
            }
            .statement()
        };
        assert_eq!(set("work_mem", "64MB"), "SET work_mem TO '64MB'");
        assert_eq!(
            set("search_path", "app, \"$user\",Pub"),
            "SET search_path TO app, \"$user\", pub"
        );
        assert_eq!(set("search_path", "a'b"), "SET search_path TO \"a'b\"");
        assert_eq!(set("x.y", "it's"), "SET x.y TO 'it''s'");
        assert_eq!(set("Odd", "a\\b"), "SET \"Odd\" TO E'a\\\\b'");
        // A value cannot end the statement: it is one literal.
        assert_eq!(
            set("work_mem", "1'; DROP TABLE t; --"),
            "SET work_mem TO '1''; DROP TABLE t; --'"
        );
    }

    #[test]
    fn startup_parameters_other_than_protocol_ones_are_settings() {
        let params: Vec<(String, String)> = [
            ("user", "agent"),
            ("database", "app"),
            ("application_name", "psql"),
            ("search_path", "app"),
            ("_pq_.x", "1"),
            ("options", "-c work_mem=1MB"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        let s = from_startup(&params, &["application_name"]).unwrap_or_default();
        assert_eq!(names(&s), [("work_mem", "1MB"), ("search_path", "app")]);
    }
}
