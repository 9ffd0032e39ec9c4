//! Evaluation of checked conditions over one event, in three-valued (Kleene) logic:
//! a comparison involving a missing field is *unknown*, `not unknown` is unknown, and
//! a rule fires only when its condition is *true*. No allocation on this path.

use std::cell::Cell;
use std::net::IpAddr;

use crate::ir::{Cidr, Cmp, Derive, FieldRef, Node, Op, Operand, StrSet};
use crate::schema::{Context, ListRef, Value};
use crate::time;

/// A three-valued truth value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tri {
    /// Definitely false.
    False,
    /// Definitely true.
    True,
    /// A field it depends on is missing.
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tri::False => "false",
            Tri::True => "true",
            Tri::Unknown => "unknown",
        }
    }
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b { Tri::True } else { Tri::False }
    }
}

/// Values a sequence captured, as stored in a partial match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Captured {
    /// Values, then the host keys of values (compared alike).
    pub values: Vec<Box<str>>,
    /// Bytes of the values (not keys).
    pub bytes: u32,
    /// How many entries of `values` are keys, and their bytes.
    pub keys: u32,
    pub key_bytes: u32,
    pub truncated: bool,
}

/// Host keys a capture keeps, per value its bound allows.
pub(crate) const KEYS_PER_VALUE: u32 = 4;

impl Captured {
    /// Adds a value unless it is already there or a bound is reached.
    pub fn push(&mut self, value: &str, limit: u32, max_bytes: u32) {
        if self.values.iter().any(|v| &**v == value) {
            return;
        }
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        let values = self.values.len().saturating_sub(self.keys as usize);
        if values >= limit as usize || self.bytes.saturating_add(len) > max_bytes {
            self.truncated = true;
            return;
        }
        self.bytes += len;
        self.values.push(value.into());
    }

    /// Adds a host key of a value (`db-1.*`, an address), within
    /// [`KEYS_PER_VALUE`] times the value bounds.
    pub fn push_key(&mut self, key: &str, limit: u32, max_bytes: u32) {
        if self.values.iter().any(|v| &**v == key) {
            return;
        }
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        if self.keys >= limit.saturating_mul(KEYS_PER_VALUE)
            || self.key_bytes.saturating_add(len) > max_bytes.saturating_mul(KEYS_PER_VALUE)
        {
            self.truncated = true;
            return;
        }
        self.keys += 1;
        self.key_bytes += len;
        self.values.push(key.into());
    }
}

/// Everything a condition can look at.
pub(crate) struct Env<'a, C: Context + ?Sized> {
    pub ctx: &'a C,
    /// Captures of the partial match a sequence stage is tested against.
    pub captures: Option<&'a [Captured]>,
    /// Answers `sequence S armed` for this event's key.
    pub armed: Option<&'a dyn Fn(u16, u8) -> bool>,
    /// Set when the context returned a value of the wrong type (fail closed).
    pub error: &'a Cell<Option<&'static str>>,
    /// Captures and `armed` are not known (asking whether a stage could match once
    /// partial matches held elsewhere are known): they read as unknown, not empty.
    pub unknown_state: bool,
}

#[derive(Clone, Copy)]
enum Rv<'a> {
    Missing,
    Str(&'a str),
    Int(i64),
    Bool(bool),
    List(ListRef<'a>),
    Captured(&'a [Box<str>]),
    Ip(IpAddr),
    Set(&'a StrSet),
    IntSet(&'a [i64]),
    Cidrs(&'a [Cidr]),
    Regex(&'a regex::Regex),
}

impl<'a> Rv<'a> {
    /// Calls `f` on each element of a list-like value; `None` when not a list.
    fn any(self, mut f: impl FnMut(&str) -> bool) -> Option<bool> {
        match self {
            Rv::List(l) => Some(l.iter().any(&mut f)),
            Rv::Captured(c) => Some(c.iter().any(|s| f(s))),
            Rv::Set(s) => Some(s.iter().any(f)),
            _ => None,
        }
    }
}

pub(crate) fn eval<C: Context + ?Sized>(node: &Node, env: &Env<'_, C>) -> Tri {
    match node {
        Node::Const(b) => (*b).into(),
        Node::Field(f) => match field(*f, env) {
            Rv::Bool(b) => b.into(),
            Rv::Missing => Tri::Unknown,
            _ => mismatch(env),
        },
        Node::Not(n) => eval(n, env).not(),
        Node::And(ns) => {
            let mut out = Tri::True;
            for n in ns.iter() {
                match eval(n, env) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::True => {}
                }
            }
            out
        }
        Node::Or(ns) => {
            let mut out = Tri::False;
            for n in ns.iter() {
                match eval(n, env) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::False => {}
                }
            }
            out
        }
        Node::Cmp(c) => cmp(c, env),
        Node::Between(ops) => {
            let [x, lo, hi] = &**ops;
            match (operand(x, env), operand(lo, env), operand(hi, env)) {
                (Rv::Missing, _, _) | (_, Rv::Missing, _) | (_, _, Rv::Missing) => Tri::Unknown,
                (Rv::Int(x), Rv::Int(lo), Rv::Int(hi)) => {
                    if lo <= hi {
                        (lo <= x && x <= hi).into()
                    } else {
                        // A range across midnight: `22:00 and 06:00`.
                        (x >= lo || x <= hi).into()
                    }
                }
                _ => mismatch(env),
            }
        }
        Node::Exists(f) => (!matches!(field(*f, env), Rv::Missing)).into(),
        Node::Armed { .. } if env.unknown_state => Tri::Unknown,
        Node::Armed { seq, min_stages } => env.armed.is_some_and(|f| f(*seq, *min_stages)).into(),
    }
}

fn mismatch<C: Context + ?Sized>(env: &Env<'_, C>) -> Tri {
    env.error
        .set(Some("a field had a value of the wrong type for its schema"));
    Tri::Unknown
}

fn field<'a, C: Context + ?Sized>(f: FieldRef, env: &Env<'a, C>) -> Rv<'a> {
    let v = env.ctx.get(f.id);
    match (f.derive, v) {
        (_, Value::Missing) => Rv::Missing,
        (Derive::None, Value::Str(s)) => Rv::Str(s),
        (Derive::None, Value::Int(i)) => Rv::Int(i),
        (Derive::None, Value::Bool(b)) => Rv::Bool(b),
        (Derive::None, Value::List(l)) => Rv::List(l),
        (Derive::None, Value::Time(t)) => Rv::Int(t),
        (Derive::None, Value::Ip(ip)) => Rv::Ip(ip),
        (Derive::Hour, Value::Time(t)) => Rv::Int(time::seconds_of_day(t) / 3600),
        (Derive::Minute, Value::Time(t)) => Rv::Int((time::seconds_of_day(t) / 60) % 60),
        (Derive::OfDay, Value::Time(t)) => Rv::Int(time::seconds_of_day(t)),
        (Derive::Date, Value::Time(t)) => Rv::Int(time::day_number(t)),
        (Derive::Weekday, Value::Time(t)) => Rv::Str(
            time::WEEKDAYS
                .get(time::weekday(t))
                .copied()
                .unwrap_or("mon"),
        ),
        _ => {
            env.error
                .set(Some("a time-derived field was read from a non-time value"));
            Rv::Missing
        }
    }
}

fn operand<'a, C: Context + ?Sized>(op: &'a Operand, env: &Env<'a, C>) -> Rv<'a> {
    match op {
        Operand::Field(f) => field(*f, env),
        Operand::Capture(_) if env.unknown_state => Rv::Missing,
        Operand::Capture(slot) => match env.captures.and_then(|c| c.get(usize::from(*slot))) {
            Some(c) => Rv::Captured(&c.values),
            None => Rv::Captured(&[]),
        },
        Operand::Str(s) => Rv::Str(s),
        Operand::Int(i) => Rv::Int(*i),
        Operand::Bool(b) => Rv::Bool(*b),
        Operand::Set(s) => Rv::Set(s),
        Operand::IntSet(s) => Rv::IntSet(s),
        Operand::Cidrs(c) => Rv::Cidrs(c),
        Operand::Regex(r) => Rv::Regex(r),
        Operand::Abstract => Rv::Missing,
    }
}

fn ci_contains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn ci_starts(hay: &str, prefix: &str) -> bool {
    hay.as_bytes()
        .get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ci_ends(hay: &str, suffix: &str) -> bool {
    hay.len() >= suffix.len()
        && hay
            .as_bytes()
            .get(hay.len() - suffix.len()..)
            .is_some_and(|h| h.eq_ignore_ascii_case(suffix.as_bytes()))
}

fn cmp<C: Context + ?Sized>(c: &Cmp, env: &Env<'_, C>) -> Tri {
    let l = operand(&c.lhs, env);
    let r = operand(&c.rhs, env);
    if matches!(l, Rv::Missing) || matches!(r, Rv::Missing) {
        return Tri::Unknown;
    }
    let out = match c.op {
        Op::Eq => match (l, r) {
            (Rv::Str(a), Rv::Str(b)) => Some(a == b),
            (Rv::Int(a), Rv::Int(b)) => Some(a == b),
            (Rv::Bool(a), Rv::Bool(b)) => Some(a == b),
            (Rv::Ip(a), Rv::Ip(b)) => Some(a == b),
            (Rv::Ip(a), Rv::Cidrs(n)) => Some(n.iter().any(|n| n.contains(a))),
            _ => None,
        },
        Op::Lt | Op::Le | Op::Gt | Op::Ge => match (l, r) {
            (Rv::Int(a), Rv::Int(b)) => Some(match c.op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                _ => a >= b,
            }),
            _ => None,
        },
        Op::In => match (l, r) {
            (Rv::Str(a), Rv::Set(s)) => Some(s.contains(a)),
            (Rv::Str(a), list) => list.any(|x| x == a),
            (Rv::Int(a), Rv::IntSet(s)) => Some(s.contains(&a)),
            (Rv::Ip(a), Rv::Cidrs(n)) => Some(n.iter().any(|n| n.contains(a))),
            _ => None,
        },
        Op::Contains => match (l, r) {
            (Rv::Str(a), Rv::Str(b)) => Some(a.contains(b)),
            _ => None,
        },
        Op::IContains => match (l, r) {
            (Rv::Str(a), Rv::Str(b)) => Some(ci_contains(a, b)),
            _ => None,
        },
        Op::Has | Op::IHas => match r {
            Rv::Str(b) => {
                if c.op == Op::Has {
                    l.any(|x| x == b)
                } else {
                    l.any(|x| x.eq_ignore_ascii_case(b))
                }
            }
            _ => None,
        },
        Op::StartsWith | Op::IStartsWith | Op::EndsWith | Op::IEndsWith => match r {
            Rv::Str(b) => {
                let test = |x: &str| match c.op {
                    Op::StartsWith => x.starts_with(b),
                    Op::IStartsWith => ci_starts(x, b),
                    Op::EndsWith => x.ends_with(b),
                    _ => ci_ends(x, b),
                };
                match l {
                    Rv::Str(a) => Some(test(a)),
                    other => other.any(test),
                }
            }
            _ => None,
        },
        Op::Intersects => match r {
            Rv::Set(s) => l.any(|x| s.contains(x)),
            other => l.any(|x| other.any(|y| x == y).unwrap_or(false)),
        },
        Op::Matches => match r {
            Rv::Regex(re) => match l {
                Rv::Str(a) => Some(re.is_match(a)),
                other => other.any(|x| re.is_match(x)),
            },
            _ => None,
        },
    };
    match out {
        Some(b) => b.into(),
        None => mismatch(env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_helpers() {
        assert!(ci_contains("Hello World", "o w"));
        assert!(!ci_contains("abc", "abcd"));
        assert!(ci_starts("CURL http", "curl"));
        assert!(ci_ends("/etc/SUDOERS", "sudoers"));
        assert!(!ci_ends("rs", "sudoers"));
    }
}
