//! Masking of result values: what a `mask` effect asks the proxy to rewrite.
//!
//! Column decisions are made once per result description ([`MaskSpec::column`]);
//! value patterns apply per value ([`MaskSpec::apply`]).

use std::borrow::Cow;

/// How a masked value is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// Replace the whole value (or the matched text) with this string.
    With(String),
    /// Keep the last `n` letters and digits, replace the other letters and digits with
    /// `*`, keep punctuation: `4111-1111-1111-1234` -> `****-****-****-1234`.
    KeepLast(usize),
    /// Keep the first `n` letters and digits, mask the rest the same way.
    KeepFirst(usize),
}

impl Replacement {
    /// Applies the replacement to one value.
    pub fn apply(&self, value: &str) -> String {
        match self {
            Replacement::With(s) => s.clone(),
            Replacement::KeepLast(n) | Replacement::KeepFirst(n) => {
                let total = value.chars().filter(|c| c.is_alphanumeric()).count();
                let keep_from_last = matches!(self, Replacement::KeepLast(_));
                let mut seen = 0usize;
                value
                    .chars()
                    .map(|c| {
                        if !c.is_alphanumeric() {
                            return c;
                        }
                        seen += 1;
                        let keep = if keep_from_last {
                            seen + n > total
                        } else {
                            seen <= *n
                        };
                        if keep { c } else { '*' }
                    })
                    .collect()
            }
        }
    }
}

/// Which values a mask item applies to.
#[derive(Debug, Clone)]
pub enum MaskTarget {
    /// Whole columns, by exact (case-insensitive) name.
    Columns(Vec<String>),
    /// Whole columns whose name matches.
    ColumnsMatching(regex::Regex),
    /// The parts of any value that match.
    ValuesMatching(regex::Regex),
}

/// One `mask` item.
#[derive(Debug, Clone)]
pub struct MaskItem {
    /// What.
    pub target: MaskTarget,
    /// How.
    pub replacement: Replacement,
}

/// The mask items of one rule.
#[derive(Debug, Clone, Default)]
pub struct MaskSpec {
    /// Items, in the order written.
    pub items: Vec<MaskItem>,
}

impl MaskSpec {
    /// The replacement for a whole column, if a column item names it.
    pub fn column(&self, name: &str) -> Option<&Replacement> {
        self.items.iter().find_map(|item| match &item.target {
            MaskTarget::Columns(names) if names.iter().any(|n| n.eq_ignore_ascii_case(name)) => {
                Some(&item.replacement)
            }
            MaskTarget::ColumnsMatching(re) if re.is_match(name) => Some(&item.replacement),
            _ => None,
        })
    }

    /// True when some item rewrites values by pattern (so every value must be looked at).
    pub fn has_value_patterns(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.target, MaskTarget::ValuesMatching(_)))
    }

    /// Masks one value of a column.
    pub fn apply<'v>(&self, column: &str, value: &'v str) -> Cow<'v, str> {
        if let Some(r) = self.column(column) {
            return Cow::Owned(r.apply(value));
        }
        let mut out = Cow::Borrowed(value);
        for item in &self.items {
            if let MaskTarget::ValuesMatching(re) = &item.target
                && re.is_match(&out)
            {
                {
                    let replaced = re
                        .replace_all(&out, |caps: &regex::Captures<'_>| {
                            caps.get(0)
                                .map_or_else(String::new, |m| item.replacement.apply(m.as_str()))
                        })
                        .into_owned();
                    out = Cow::Owned(replaced);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_masks_keep_format() {
        assert_eq!(
            Replacement::KeepLast(4).apply("4111-1111-1111-1234"),
            "****-****-****-1234"
        );
        assert_eq!(Replacement::KeepFirst(2).apply("ab-cd"), "ab-**");
        assert_eq!(Replacement::With("x".into()).apply("secret"), "x");
    }

    #[test]
    fn columns_and_values() {
        let spec = MaskSpec {
            items: vec![
                MaskItem {
                    target: MaskTarget::Columns(vec!["password".into()]),
                    replacement: Replacement::With("****".into()),
                },
                MaskItem {
                    target: MaskTarget::ValuesMatching(regex::Regex::new(r"\d{4}-\d{4}").unwrap()),
                    replacement: Replacement::KeepLast(2),
                },
            ],
        };
        assert_eq!(spec.apply("PASSWORD", "hunter2"), "****");
        assert_eq!(spec.apply("note", "card 1234-5678 ok"), "card ****-**78 ok");
        assert!(spec.column("note").is_none());
    }
}
