//! SQL classification: every statement of a query string becomes a [`PgStatement`]
//! (kind, tables read and written, columns, functions, dangerous capabilities, WHERE
//! presence, DDL target, privilege and transaction control), parsed with `sqlparser`'s
//! PostgreSQL dialect. Pure code, no I/O: the relay calls it and the engine judges.
//!
//! Statements are split at top-level semicolons by `sqlparser`'s tokenizer and each
//! piece is parsed alone, so one piece that does not parse yields one `unparsed`
//! statement and the others are still classified.

mod cache;
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
    /// Result labels derived from other columns (`password AS p`, `upper(token)`):
    /// label -> source columns. Masks by column name follow them.
    pub derived: Derived,
}

/// Result labels and the columns their values come from.
pub type Derived = std::sync::Arc<Vec<(String, Vec<String>)>>;

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
    let rewritten = table_command::rewrite(piece);
    let dialect = PostgreSqlDialect {};
    let parsed = Parser::new(&dialect)
        .try_with_sql(rewritten.as_deref().unwrap_or(piece))
        .and_then(|mut p| p.parse_statements());
    let statements = match parsed {
        Ok(s) => s,
        Err(e) => return unparsed(piece, e.to_string()),
    };
    let [statement] = statements.as_slice() else {
        return unparsed(piece, "expected exactly one statement");
    };
    let mut out = walk::statement(statement);
    out.text = truncate(piece);
    out.cacheable = out.cacheable && out.stmt.parse_error.is_none();
    out
}

/// Classifies a statement inside `PREPARE name AS ...` (used by the walker).
pub(crate) fn inner(statement: &Statement) -> Classified {
    walk::statement(statement)
}

#[cfg(test)]
mod tests;
