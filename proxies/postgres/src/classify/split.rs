//! Splits a query string into statements at top-level semicolons, with the same
//! tokenizer the parser uses (so quotes, dollar quotes and comments agree), and flags
//! constructs the classifier does not trust.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// One statement of a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Its text, as sent.
    pub text: String,
    /// Why it must not be classified (it is then `unparsed`).
    pub distrust: Option<String>,
}

/// Splits `sql`. Pieces holding only whitespace and comments are dropped, as
/// PostgreSQL drops them. A string the tokenizer rejects is one distrusted piece.
pub fn split(sql: &str) -> Vec<Piece> {
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => {
            return vec![Piece {
                text: sql.to_owned(),
                distrust: Some(e.to_string()),
            }];
        }
    };
    let offsets = LineOffsets::new(sql);
    let mut pieces = Vec::new();
    let mut start = 0usize;
    let mut meaningful = false;
    let mut distrust = None;
    let mut prev: [Option<&Token>; 2] = [None, None];
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let end = offsets.byte(sql, t);
                if meaningful {
                    pieces.push(piece(sql, start, end, distrust.take()));
                }
                distrust = None;
                start = end + 1;
                meaningful = false;
                prev = [None, None];
                continue;
            }
            Token::Whitespace(_) => {}
            _ => meaningful = true,
        }
        if let Some(why) = distrusted(prev, &t.token) {
            distrust.get_or_insert_with(|| why.to_owned());
        }
        prev = [prev[1], Some(&t.token)];
    }
    if meaningful {
        pieces.push(piece(sql, start, sql.len(), distrust));
    }
    pieces
}

fn piece(sql: &str, start: usize, end: usize, distrust: Option<String>) -> Piece {
    Piece {
        text: sql
            .get(start.min(sql.len())..end.min(sql.len()))
            .unwrap_or_default()
            .trim()
            .to_owned(),
        distrust,
    }
}

/// Constructs whose meaning `sqlparser` and PostgreSQL may not agree on.
fn distrusted(prev: [Option<&Token>; 2], t: &Token) -> Option<&'static str> {
    match (prev, t) {
        // U&"..." identifiers: sqlparser tokenizes `U`, `&`, `"..."` without decoding.
        ([Some(Token::Word(u)), Some(Token::Ampersand)], Token::Word(w))
            if u.value.eq_ignore_ascii_case("u")
                && u.quote_style.is_none()
                && w.quote_style == Some('"') =>
        {
            Some("unicode-escaped identifiers (U&\"...\") are not classified")
        }
        (_, Token::Word(w))
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("uescape") =>
        {
            Some("UESCAPE is not classified")
        }
        (
            _,
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ),
        ) => None,
        _ => None,
    }
}

/// Maps token locations (1-based line, column in characters) to byte offsets.
struct LineOffsets {
    starts: Vec<usize>,
}

impl LineOffsets {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn byte(&self, sql: &str, t: &TokenWithSpan) -> usize {
        let loc = t.span.start;
        let line = usize::try_from(loc.line.saturating_sub(1)).unwrap_or(usize::MAX);
        let Some(&line_start) = self.starts.get(line) else {
            return sql.len();
        };
        let col = usize::try_from(loc.column.saturating_sub(1)).unwrap_or(usize::MAX);
        sql.get(line_start..)
            .and_then(|rest| rest.char_indices().nth(col).map(|(i, _)| line_start + i))
            .unwrap_or(sql.len())
    }
}

/// Why a statement must not be classified, before parsing it.
pub fn suspicious(piece: &Piece) -> Option<&str> {
    piece.distrust.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split(sql).into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(texts("select 1; select 2"), ["select 1", "select 2"]);
        assert_eq!(
            texts("select ';'; select $$;$$ ;"),
            ["select ';'", "select $$;$$"]
        );
        assert_eq!(
            texts("select 1 -- ;\n; /* ; */ ;; select\n2"),
            ["select 1 -- ;", "select\n2"]
        );
        assert_eq!(texts("  ; -- only a comment\n"), Vec::<String>::new());
        assert_eq!(texts("select 'é'; select 2"), ["select 'é'", "select 2"]);
    }

    #[test]
    fn flags_unicode_identifiers() {
        let p = split(r#"select * from U&"\0073ecrets""#);
        assert!(p[0].distrust.is_some());
        assert!(split("select u & \"x\"")[0].distrust.is_none());
    }
}
