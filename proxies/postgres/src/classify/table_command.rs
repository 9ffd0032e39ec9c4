//! `TABLE name` is `SELECT * FROM name`. `sqlparser` reads the command only at the very
//! end of a statement (it consumes two tokens past the name, so `(TABLE x)`,
//! `WITH c AS (TABLE x) ...` and `TABLE x UNION ...` fail to parse), and it does not
//! report the name as a relation. The classifier therefore parses a copy of the text in
//! which every `TABLE` that starts a query body is spelled `SELECT * FROM`: the meaning
//! is the same, and the walker sees the relation wherever it is.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The text to parse for `piece`: `piece` itself unless it holds a `TABLE` command.
pub fn rewrite(piece: &str) -> Option<String> {
    if !piece
        .as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"table"))
    {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, piece)
        .tokenize()
        .ok()?;
    let mut out = String::with_capacity(piece.len() + 16);
    let mut prev: Option<&Token> = None;
    let mut changed = false;
    for t in &tokens {
        let is_table =
            matches!(t, Token::Word(w) if w.keyword == Keyword::TABLE && w.quote_style.is_none());
        if is_table && starts_query(prev) {
            out.push_str("SELECT * FROM");
            changed = true;
        } else {
            out.push_str(&t.to_string());
        }
        if !matches!(t, Token::Whitespace(_)) {
            prev = Some(t);
        }
    }
    changed.then_some(out)
}

/// Whether a `TABLE` after `prev` begins a query (rather than naming the object kind
/// of a DDL or privilege statement: `CREATE TABLE`, `LOCK TABLE`, `ON TABLE`, ...).
fn starts_query(prev: Option<&Token>) -> bool {
    match prev {
        None | Some(Token::LParen | Token::RParen) => true,
        Some(Token::Word(w)) if w.quote_style.is_some() => true,
        Some(Token::Word(w)) => match w.keyword {
            Keyword::UNION
            | Keyword::EXCEPT
            | Keyword::INTERSECT
            | Keyword::ALL
            | Keyword::DISTINCT
            | Keyword::AS
            | Keyword::EXPLAIN
            | Keyword::ANALYZE
            | Keyword::VERBOSE => true,
            // `INSERT INTO t TABLE x`: the word before is the target's name.
            Keyword::NoKeyword => true,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::rewrite;

    #[test]
    fn only_query_tables_are_rewritten() {
        assert_eq!(rewrite("TABLE s").unwrap(), "SELECT * FROM s");
        assert_eq!(
            rewrite("WITH c AS (TABLE s) TABLE c").unwrap(),
            "WITH c AS (SELECT * FROM s) SELECT * FROM c"
        );
        for ddl in [
            "CREATE TABLE t (a int)",
            "CREATE TEMP TABLE t (a int)",
            "DROP TABLE t",
            "LOCK TABLE t",
            "ALTER TABLE t RENAME TO u",
            "GRANT SELECT ON TABLE t TO x",
            "TRUNCATE TABLE t",
            "SELECT 'table'",
            "CREATE FOREIGN TABLE f () SERVER s",
        ] {
            assert_eq!(rewrite(ddl), None, "{ddl}");
        }
    }
}
