//! Alert and block message templates: `"{identity} ran {pg.statement.kind}"`,
//! checked at load (every `{field}` must exist), rendered when a rule fires.

use crate::ir::FieldRef;
use crate::schema::Context;

#[derive(Debug, Clone)]
pub(crate) enum Part {
    Text(Box<str>),
    Field(FieldRef),
}

/// A checked template.
#[derive(Debug, Clone, Default)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
}

/// A template piece before name resolution.
pub(crate) enum RawPart<'a> {
    Text(String),
    /// Byte offset of the name inside the template, and the name.
    Field(usize, &'a str),
}

/// Splits a template into text and `{names}`; `Err(offset)` on an unbalanced brace.
pub(crate) fn split(template: &str) -> Result<Vec<RawPart<'_>>, usize> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = template.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|(_, c)| *c) == Some('{') => {
                rest.next();
                text.push('{');
            }
            '}' if rest.peek().map(|(_, c)| *c) == Some('}') => {
                rest.next();
                text.push('}');
            }
            '{' => {
                let start = i + 1;
                let close = template.get(start..).and_then(|s| s.find('}')).ok_or(i)?;
                let name = template.get(start..start + close).ok_or(i)?;
                if name.contains('{') {
                    return Err(i);
                }
                if !text.is_empty() {
                    parts.push(RawPart::Text(std::mem::take(&mut text)));
                }
                parts.push(RawPart::Field(start, name.trim()));
                while rest.peek().is_some_and(|(j, _)| *j <= start + close) {
                    rest.next();
                }
            }
            '}' => return Err(i),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(RawPart::Text(text));
    }
    Ok(parts)
}

impl Template {
    /// Renders against an event; missing fields render as `-`.
    pub fn render<C: Context + ?Sized>(&self, ctx: &C) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    let before = out.len();
                    crate::ruleset::render_field(*f, ctx, &mut out);
                    if out.len() == before {
                        out.push('-');
                    }
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
    fn splits_and_escapes() {
        let parts = split("a {x.y} b {{c}}").unwrap();
        assert_eq!(parts.len(), 3);
        assert!(matches!(parts[1], RawPart::Field(3, "x.y")));
        assert!(matches!(&parts[2], RawPart::Text(t) if t == " b {c}"));
        assert_eq!(split("oops {x").err(), Some(5));
        assert_eq!(split("oops }").err(), Some(5));
    }
}
