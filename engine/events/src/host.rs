//! Host names compared as hosts: the one definition of "the same machine" that
//! inline sequences, `audit chains` and `audit backfill` share.
//!
//! When an event is made, the gateway resolves a host (its configured aliases, the
//! hosts file, the system resolver) and stores **keys** on the event: every name in
//! canonical form, every address, and short-name markers. Two hosts are the same
//! when their key lists intersect. Which keys a name yields depends on its side, so
//! that a plain set intersection answers the question exactly:
//!
//! | keys of | a fully qualified name `db-1.internal` | a short name `db-1` |
//! | --- | --- | --- |
//! | a session's target ([`target_keys`]) | `db-1.internal`, `db-1.*` | `db-1` |
//! | a value read from a result ([`value_keys`]) | `db-1.internal`, `db-1` | `db-1`, `db-1.*` |
//!
//! so a short name matches any fully qualified name it begins, in either direction,
//! while two fully qualified names match only when equal (`db-1.prod` is not
//! `db-1.staging`), or when they share an address or a resolved name.

use std::net::IpAddr;

/// Longest host name (RFC 1035).
const MAX_NAME: usize = 253;

/// `s` as a canonical host name or address, or `None` when it is not one: lowercase,
/// no trailing dot, IPv6 in compressed form (brackets removed), IPv4-mapped IPv6 as
/// IPv4. Names are labels of letters, digits, `-` and `_`.
pub fn normalize(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = inner.parse::<IpAddr>() {
        return Some(ip.to_canonical().to_string());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split('.').all(label_ok) {
        return None;
    }
    // All digits and dots is an address spelling, not a name (`10.1`, `2130706433`).
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// Whether a canonical key is an address.
pub fn is_address(key: &str) -> bool {
    key.parse::<IpAddr>().is_ok()
}

/// The short-name marker of a fully qualified name (`db-1.*`), or `None`.
fn short_marker(name: &str) -> Option<String> {
    if is_address(name) {
        return None;
    }
    name.split_once('.').map(|(l, _)| format!("{l}.*"))
}

/// The first label of a fully qualified name, or `None`.
fn first_label(name: &str) -> Option<&str> {
    if is_address(name) {
        return None;
    }
    name.split_once('.').map(|(l, _)| l)
}

fn push(keys: &mut Vec<String>, k: String) {
    if !keys.contains(&k) {
        keys.push(k);
    }
}

/// Keys of a session's target host, from its `names` (as configured, its aliases,
/// names the resolver gave; any spelling, normalised here) and `addresses`.
pub fn target_keys<'a>(
    names: impl IntoIterator<Item = &'a str>,
    addresses: impl IntoIterator<Item = IpAddr>,
) -> Vec<String> {
    let mut keys = Vec::new();
    for n in names.into_iter().filter_map(normalize) {
        let marker = short_marker(&n);
        push(&mut keys, n);
        if let Some(m) = marker {
            push(&mut keys, m);
        }
    }
    for a in addresses {
        push(&mut keys, a.to_canonical().to_string());
    }
    keys
}

/// Keys of one value read from a result (a host name or address in a row), from
/// its `names` (the value and names the resolver gave) and `addresses`.
pub fn value_keys<'a>(
    names: impl IntoIterator<Item = &'a str>,
    addresses: impl IntoIterator<Item = IpAddr>,
) -> Vec<String> {
    let mut keys = Vec::new();
    for n in names.into_iter().filter_map(normalize) {
        let extra = if is_address(&n) {
            None
        } else if let Some(l) = first_label(&n) {
            Some(l.to_owned())
        } else {
            Some(format!("{n}.*"))
        };
        push(&mut keys, n);
        if let Some(e) = extra {
            push(&mut keys, e);
        }
    }
    for a in addresses {
        push(&mut keys, a.to_canonical().to_string());
    }
    keys
}

/// Whether two key lists name the same host.
pub fn same(a: &[String], b: &[String]) -> bool {
    a.iter().any(|k| b.contains(k))
}

/// The host-like tokens of free text (a recorded result sample), normalised: the
/// text is cut at every character that cannot be part of a host name or address,
/// so `db` never matches inside `db-1.internal` and a name matches only whole.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            normalize(t).or_else(|| {
                // `host:port`.
                let (h, port) = t.rsplit_once(':')?;
                (!h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| normalize(h))
                    .flatten()
            })
        })
}

/// Whether free text names a host with keys `keys`, as a whole token: its exact
/// names and addresses (short-name markers do not apply to text).
pub fn mentioned(text: &str, keys: &[String]) -> bool {
    tokens(text).any(|t| keys.contains(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(names: &[&str], addrs: &[&str]) -> Vec<String> {
        target_keys(
            names.iter().copied(),
            addrs
                .iter()
                .map(|a| a.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
        )
    }

    fn v(names: &[&str]) -> Vec<String> {
        value_keys(names.iter().copied(), [])
    }

    #[test]
    fn names_and_addresses_are_normalised() {
        assert_eq!(
            normalize("DB-1.Internal.").as_deref(),
            Some("db-1.internal")
        );
        assert_eq!(normalize("[::FFFF:10.0.0.5]").as_deref(), Some("10.0.0.5"));
        assert_eq!(normalize("2001:DB8:0::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(normalize(" 10.0.0.5 ").as_deref(), Some("10.0.0.5"));
        for bad in [
            "",
            "a b",
            "db..1",
            "x/y",
            "10.1",
            "2130706433",
            "-",
            "é.example",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn short_names_match_the_names_they_begin() {
        let fqdn = t(&["db-1.internal"], &[]);
        let short = t(&["db-1"], &[]);
        assert!(same(&v(&["db-1"]), &fqdn));
        assert!(same(&v(&["DB-1.internal."]), &fqdn));
        assert!(same(&v(&["db-1.internal"]), &short));
        assert!(same(&v(&["db-1"]), &short));
        // Two qualified names with the same first label are different hosts.
        assert!(!same(&v(&["db-1.staging"]), &fqdn));
        assert!(!same(&v(&["db-10"]), &fqdn));
        assert!(!same(&v(&["db"]), &fqdn));
        assert!(!same(&v(&["internal"]), &fqdn));
    }

    #[test]
    fn addresses_and_resolved_names_match() {
        let target = t(&["db-1.internal", "bastion.prod"], &["10.0.0.5"]);
        assert!(same(&v(&["10.0.0.5"]), &target));
        assert!(same(&v(&["::ffff:10.0.0.5"]), &target));
        assert!(same(&v(&["bastion.prod"]), &target));
        assert!(same(&v(&["bastion"]), &target));
        assert!(!same(&v(&["10.0.0.50"]), &target));
        let value = value_keys(
            ["inventory-7.corp"],
            ["10.0.0.5".parse().unwrap_or(IpAddr::from([0; 4]))],
        );
        assert!(same(&value, &target));
    }

    #[test]
    fn text_matches_whole_tokens_only() {
        let target = t(&["db-1.internal"], &["10.0.0.5"]);
        assert!(mentioned("hostname\ndb-1.internal\n", &target));
        assert!(mentioned("(DB-1.INTERNAL.) and more", &target));
        assert!(mentioned("addr=10.0.0.5:5432", &target));
        assert!(!mentioned("sub.db-1.internal", &target));
        assert!(!mentioned("db-1.internal-old", &target));
        assert!(!mentioned("10.0.0.55", &target));
        let short = t(&["db"], &[]);
        assert!(!mentioned("db-1.internal mydb db_1", &short));
        assert!(mentioned("the db is down", &short));
    }
}
