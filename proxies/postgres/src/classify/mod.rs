//! SQL classification: every statement of a query string becomes a [`PgStatement`]
//! (kind, tables read and written, columns, functions, dangerous capabilities, WHERE
//! presence, DDL target, privilege and transaction control), parsed with `sqlparser`'s
//! PostgreSQL dialect. Pure code, no I/O: the relay calls it and the engine judges.
//!
//! Statements are split at top-level semicolons by `sqlparser`'s tokenizer and each
//! piece is parsed alone, so one piece that does not parse yields one `unparsed`
//! statement and the others are still classified.

mod cache;
#[doc(hidden)]
pub mod corpus;
mod grammar;
pub mod lineage;
mod normalize;
mod session;
mod split;
mod table_command;
mod walk;

use gatehouse_events::payload::{PgKind, PgStatement};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

pub use cache::{Cache, Classification};
pub use normalize::normalize;
pub use session::{SessionSql, SqlEffect, parse_path};
pub use split::TooMany;
pub use walk::dangerous_function;

/// Longest statement text kept in an event (the classification uses all of it).
pub const MAX_TEXT: usize = 4096;

/// One classified statement, before the session's state is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The statement text (the piece of the query string).
    pub text: String,
    /// Fields for the event. `statement_index`/`statement_count` are filled;
    /// `phase` is left to the caller.
    pub stmt: PgStatement,
    /// What running it changes in the session (prepared statements, search path).
    pub effect: Option<SqlEffect>,
    /// `EXECUTE name`: resolved against the session's prepared statements.
    pub executes: Option<String>,
    /// Whether this result depends only on the normalised text (cacheable).
    pub cacheable: bool,
    /// What each result column's value derives from: masks by column name follow it.
    pub derived: Derived,
}

/// The lineage of a statement's result columns (shared by cached classifications).
pub type Derived = std::sync::Arc<lineage::Lineage>;

/// Classifies every statement of a query string, or none if it holds more than
/// `limit` (the cost is then that of tokenizing it).
pub fn classify(sql: &str, limit: usize) -> Result<Vec<Classified>, TooMany> {
    let pieces = split::split(sql, limit)?;
    let count = u32::try_from(pieces.len().max(1)).unwrap_or(u32::MAX);
    if pieces.is_empty() {
        // An empty query string: PostgreSQL answers EmptyQueryResponse.
        return Ok(vec![Classified {
            text: String::new(),
            stmt: PgStatement {
                kind: PgKind::Other,
                statement_count: 1,
                ..PgStatement::default()
            },
            effect: None,
            executes: None,
            cacheable: true,
            derived: Derived::default(),
        }]);
    }
    Ok(pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut c = classify_one(&piece);
            c.stmt.statement_index = u32::try_from(i).unwrap_or(u32::MAX);
            c.stmt.statement_count = count;
            c
        })
        .collect())
}

/// A statement that could not be classified (the rules decide; the starter blocks).
pub fn unparsed(text: &str, error: impl Into<String>) -> Classified {
    Classified {
        text: truncate(text),
        stmt: PgStatement {
            kind: PgKind::Unparsed,
            parse_error: Some(error.into()),
            ..PgStatement::default()
        },
        effect: None,
        executes: None,
        cacheable: false,
        derived: Derived::default(),
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

fn classify_one(piece: &split::Piece) -> Classified {
    if let Some(why) = split::suspicious(piece) {
        return unparsed(&piece.text, why);
    }
    let piece = piece.text.as_str();
    if let Some(c) = do_block(piece) {
        return c;
    }
    let rewritten = table_command::rewrite(piece);
    let dialect = PostgreSqlDialect {};
    // `FROM ONLY t` reads t (without its inheritance children); sqlparser takes ONLY
    // for the table and t for its alias. Classify the text without the keyword.
    let rewritten = rewritten.as_deref().unwrap_or(piece);
    let without_only = strip_only(rewritten);
    let piece_for_parse = without_only.as_deref().unwrap_or(rewritten);
    let parsed = Parser::new(&dialect)
        .try_with_sql(piece_for_parse)
        .and_then(|mut p| p.parse_statements());
    let statements = match parsed {
        Ok(s) => s,
        Err(e) => {
            return fall_back(piece, format!("the full classifier cannot parse it ({e})"));
        }
    };
    let [statement] = statements.as_slice() else {
        return fall_back(
            piece,
            "the full classifier does not read it as one statement".to_owned(),
        );
    };
    let mut out = walk::statement(statement);
    if out.stmt.kind == PgKind::Unparsed {
        // Parsed, but the walk does not model it.
        let why = out.stmt.parse_error.take().unwrap_or_default();
        return fall_back(
            piece,
            format!("the full classifier does not model it ({why})"),
        );
    }
    out.text = truncate(piece);
    out.cacheable = out.cacheable && out.stmt.parse_error.is_none();
    out
}

/// The second path (ADR 0022): PostgreSQL's own grammar classifies what the full
/// classifier could not (`why`). A statement is `unparsed` only when PostgreSQL's
/// grammar rejects it too; its error then names the construct and PostgreSQL's
/// message.
fn fall_back(piece: &str, why: String) -> Classified {
    match grammar::classify(piece, &why) {
        Ok(c) => c,
        Err(e) => unparsed(
            piece,
            format!("{} does not parse as PostgreSQL: {e}", construct(piece)),
        ),
    }
}

/// The statement without the `ONLY` of `FROM ONLY t`, `JOIN ONLY t`, `UPDATE ONLY t`,
/// `DELETE FROM ONLY t`, `TRUNCATE ONLY t`, `TABLE ONLY t` and `, ONLY t` (`None` when
/// there is none: the common case costs a case-insensitive search).
fn strip_only(sql: &str) -> Option<String> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !sql
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"only"))
    {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let mut out = String::with_capacity(sql.len());
    let mut previous: Option<&Token> = None;
    let mut changed = false;
    for (i, t) in tokens.iter().enumerate() {
        if let Token::Word(w) = t
            && w.keyword == Keyword::ONLY
            && w.quote_style.is_none()
        {
            let after_relation_keyword = match previous {
                Some(Token::Word(p)) => matches!(
                    p.keyword,
                    Keyword::FROM
                        | Keyword::JOIN
                        | Keyword::UPDATE
                        | Keyword::TRUNCATE
                        | Keyword::TABLE
                ),
                Some(Token::Comma) => true,
                _ => false,
            };
            let next = tokens
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .find(|t| !matches!(t, Token::Whitespace(_)));
            if after_relation_keyword && matches!(next, Some(Token::Word(_))) {
                changed = true;
                continue;
            }
        }
        if !matches!(t, Token::Whitespace(_)) {
            previous = Some(t);
        }
        out.push_str(&t.to_string());
    }
    changed.then_some(out)
}

/// `DO $$ ... $$`: an anonymous code block runs whatever its body says, dynamic SQL
/// included, so it is `other` with `dynamic_sql` (and whatever dangerous function its
/// body names): a policy holds it for a reviewer, who sees the text.
fn do_block(piece: &str) -> Option<Classified> {
    let t = piece.trim_start();
    let head = t.get(..2)?;
    let next = t.get(2..)?.chars().next()?;
    if !head.eq_ignore_ascii_case("do") || !(next.is_whitespace() || next == '$' || next == '\'') {
        return None;
    }
    let mut dangerous = vec!["dynamic_sql".to_owned()];
    walk::dangerous_in_text(piece, &mut dangerous);
    Some(Classified {
        text: truncate(piece),
        stmt: PgStatement {
            kind: PgKind::Other,
            dangerous,
            ..PgStatement::default()
        },
        effect: None,
        executes: None,
        cacheable: false,
        derived: Derived::default(),
    })
}

/// The construct a statement starts with, for saying what was not understood: its
/// leading keywords (`ALTER DEFAULT PRIVILEGES`), at most three.
pub(crate) fn construct(sql: &str) -> String {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = PostgreSqlDialect {};
    let mut words = Vec::new();
    // Only the start is needed: a bounded prefix keeps this cheap for any input.
    let mut end = sql.len().min(256);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    let head = sql.get(..end).unwrap_or_default();
    for token in Tokenizer::new(&dialect, head)
        .tokenize()
        .unwrap_or_default()
    {
        match token {
            Token::Whitespace(_) => {}
            Token::Word(w) if w.keyword != Keyword::NoKeyword && w.quote_style.is_none() => {
                words.push(w.value.to_uppercase());
                if words.len() == 3 {
                    break;
                }
            }
            _ => break,
        }
    }
    if words.is_empty() {
        "this statement".to_owned()
    } else {
        words.join(" ")
    }
}

/// Classifies a statement inside `PREPARE name AS ...` (used by the walker).
pub(crate) fn inner(statement: &Statement) -> Classified {
    walk::statement(statement)
}

#[cfg(test)]
mod tests;
