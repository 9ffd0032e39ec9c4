//! Splits a query string into statements at top-level semicolons, with the same
//! tokenizer the parser uses (so quotes, dollar quotes and comments agree), and flags
//! constructs the classifier does not trust.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

/// One statement of a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Its text, as sent.
    pub text: String,
    /// Why it must not be classified (it is then `unparsed`).
    pub distrust: Option<String>,
}

/// A query string holds more statements than the gateway judges in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the query string holds more than {limit} statements")]
pub struct TooMany {
    /// The most statements one query string may hold.
    pub limit: usize,
}

/// Splits `sql`, or stops at the first statement past `limit`. Pieces holding only
/// whitespace and comments are dropped, as PostgreSQL drops them. A string the
/// tokenizer rejects is one distrusted piece.
///
/// Linear in the length of `sql`: the tokenizer reads it once, and token locations
/// are turned into byte offsets by a cursor that only moves forward.
pub fn split(sql: &str, limit: usize) -> Result<Vec<Piece>, TooMany> {
    split_walking(sql, limit).map(|(pieces, _)| pieces)
}

/// [`split`], and how many characters its cursor walked (the work it did beyond
/// tokenizing, for tests).
fn split_walking(sql: &str, limit: usize) -> Result<(Vec<Piece>, usize), TooMany> {
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => {
            let piece = Piece {
                text: sql.to_owned(),
                distrust: Some(e.to_string()),
            };
            return Ok((vec![piece], 0));
        }
    };
    let mut cursor = Cursor::new(sql);
    let mut pieces = Vec::new();
    let mut start = 0usize;
    let mut meaningful = false;
    let mut distrust = None;
    let mut prev: [Option<&Token>; 2] = [None, None];
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let end = cursor.byte(t.span.start);
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
            _ if !meaningful => {
                if pieces.len() >= limit {
                    return Err(TooMany { limit });
                }
                meaningful = true;
            }
            _ => {}
        }
        if let Some(why) = distrusted(prev, &t.token) {
            distrust.get_or_insert_with(|| why.to_owned());
        }
        prev = [prev[1], Some(&t.token)];
    }
    if meaningful {
        pieces.push(piece(sql, start, sql.len(), distrust));
    }
    Ok((pieces, cursor.walked))
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

/// Maps token locations (1-based line, column in characters) to byte offsets by
/// walking forward from the last location mapped. Tokens come in order, so one
/// split walks the string once (mapping each location from the start of its line
/// instead made a string of `n` statements on one line cost `n²`).
struct Cursor<'a> {
    sql: &'a str,
    at: (u64, u64),
    byte: usize,
    /// Characters walked so far.
    walked: usize,
}

impl<'a> Cursor<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            at: (1, 1),
            byte: 0,
            walked: 0,
        }
    }

    /// The byte offset of `loc` (the end of the string if it lies beyond it).
    fn byte(&mut self, loc: Location) -> usize {
        let target = (loc.line, loc.column);
        if target < self.at {
            // Not expected (locations come in order); start over rather than guess.
            self.at = (1, 1);
            self.byte = 0;
        }
        while self.at < target {
            let Some(c) = self.sql.get(self.byte..).and_then(|r| r.chars().next()) else {
                return self.sql.len();
            };
            self.byte += c.len_utf8();
            self.walked += 1;
            self.at = if c == '\n' {
                (self.at.0 + 1, 1)
            } else {
                (self.at.0, self.at.1 + 1)
            };
        }
        self.byte
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
        split(sql, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|p| p.text)
            .collect()
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
        let p = split(r#"select * from U&"\0073ecrets""#, 1).unwrap();
        assert!(p[0].distrust.is_some());
        assert!(split("select u & \"x\"", 1).unwrap()[0].distrust.is_none());
    }

    /// A string of many statements on one line is split with one walk over it: the
    /// cursor's work is bounded by the string's length, whatever the statement count
    /// (mapping each semicolon from the start of its line walked `n²/2` characters).
    #[test]
    fn splitting_is_linear_in_the_statements() {
        for n in [1_000usize, 20_000] {
            let sql = "SELECT 1;".repeat(n);
            let started = std::time::Instant::now();
            let (pieces, walked) = split_walking(&sql, usize::MAX).unwrap();
            assert_eq!(pieces.len(), n);
            assert!(
                walked <= sql.chars().count(),
                "{n} statements: the cursor walked {walked} characters of {}",
                sql.len()
            );
            // Generous, for a debug build on a busy machine; quadratic took minutes.
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        // Several lines and multibyte text agree with the pieces' texts.
        assert_eq!(
            texts("select 'é'\n;\nselect 'ü'; select\n'x';"),
            ["select 'é'", "select 'ü'", "select\n'x'"]
        );
    }

    #[test]
    fn stops_past_the_limit() {
        assert_eq!(split("select 1; select 2;", 2).unwrap().len(), 2);
        // Empty pieces do not count.
        assert_eq!(split("select 1;;; -- x\n; select 2", 2).unwrap().len(), 2);
        assert_eq!(
            split("select 1; select 2; select 3", 2),
            Err(TooMany { limit: 2 })
        );
        assert_eq!(
            split(&"SELECT 1;".repeat(20_000), 1_000),
            Err(TooMany { limit: 1_000 })
        );
    }
}
