//! The checked, typed program the evaluator runs. Built only by the checker, so the
//! evaluator trusts it (operand types are known to fit their operators).

use std::collections::HashSet;
use std::net::IpAddr;

use crate::schema::FieldId;

/// A condition.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    /// A boolean field used as a condition.
    Field(FieldRef),
    Not(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Cmp(Box<Cmp>),
    Between(Box<[Operand; 3]>),
    Exists(FieldRef),
    /// `sequence S armed [after STAGE]`: a live partial match of sequence `seq` for
    /// this event's key has matched at least `min_stages` stages.
    Armed {
        seq: u16,
        min_stages: u8,
    },
}

/// A field access, possibly derived from a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldRef {
    pub id: FieldId,
    pub derive: Derive,
}

/// Values computed from a timestamp field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derive {
    None,
    Hour,
    Minute,
    Weekday,
    OfDay,
    Date,
}

#[derive(Debug, Clone)]
pub(crate) struct Cmp {
    pub op: Op,
    pub lhs: Operand,
    pub rhs: Operand,
}

/// Typed comparison operators (after desugaring `!=` and `not in` into `not`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    /// Scalar in a set/list/CIDR blocks.
    In,
    /// Substring.
    Contains,
    /// Substring, ASCII case-insensitive (rhs already lowercased when constant).
    IContains,
    /// List membership.
    Has,
    /// List membership, ASCII case-insensitive.
    IHas,
    StartsWith,
    IStartsWith,
    EndsWith,
    IEndsWith,
    Intersects,
    Matches,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Field(FieldRef),
    Capture(u8),
    Str(Box<str>),
    Int(i64),
    Bool(bool),
    Set(StrSet),
    IntSet(Box<[i64]>),
    Cidrs(Box<[Cidr]>),
    Regex(Box<regex::Regex>),
    /// A macro parameter while the macro body is checked on its own; never evaluated.
    Abstract,
}

/// A set of strings: linear for a handful, hashed beyond.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Small(Box<[Box<str>]>),
    Large(HashSet<Box<str>>),
}

impl StrSet {
    pub fn new(items: Vec<String>) -> Self {
        let mut items: Vec<Box<str>> = items.into_iter().map(String::into_boxed_str).collect();
        items.sort_unstable();
        items.dedup();
        if items.len() <= 8 {
            StrSet::Small(items.into_boxed_slice())
        } else {
            StrSet::Large(items.into_iter().collect())
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(items) => items.iter().any(|i| &**i == s),
            StrSet::Large(set) => set.contains(s),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            StrSet::Small(items) => Box::new(items.iter().map(|s| &**s)),
            StrSet::Large(set) => Box::new(set.iter().map(|s| &**s)),
        }
    }
}

/// An IPv4 or IPv6 block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(ip)) => Cidr {
                addr: self.addr,
                prefix: self.prefix,
            }
            .contains(IpAddr::V6(ip.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        let host = Cidr::parse("fd00::1").unwrap();
        assert!(host.contains("fd00::1".parse().unwrap()));
        assert!(!host.contains("fd00::2".parse().unwrap()));
    }
}
