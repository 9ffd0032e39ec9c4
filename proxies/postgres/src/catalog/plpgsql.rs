//! The SQL statements inside a PL/pgSQL body. PL/pgSQL is not SQL, so the body is not
//! parsed as a whole: every place where an SQL statement can start (`SELECT`,
//! `INSERT`, `PERFORM`, ...) is tried with the longest span that parses, cut at the
//! statement's `;` or at the PL/pgSQL word that ends an embedded query (`THEN`,
//! `LOOP`, `INTO`, an unbalanced `)`). A start that parses under no cut leaves the
//! function unresolved. `EXECUTE` (dynamic SQL) and dangerous functions are flagged
//! wherever they appear.

use gatehouse_events::payload::{PgKind, PgStatement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::snapshot::merge;
use crate::classify;

/// Most candidate spans tried per body (a pathological body is unresolved instead).
const MAX_TRIES: usize = 2_000;

/// Adds what the PL/pgSQL body `src` of `function` does to `out`.
pub fn classify(function: &str, src: &str, out: &mut PgStatement) {
    let tokens = match Tokenizer::new(&PostgreSqlDialect {}, src).tokenize() {
        Ok(t) => t,
        Err(e) => {
            out.unresolved = Some(format!(
                "the body of function `{function}` could not be read: {e}"
            ));
            return;
        }
    };
    let text: Vec<String> = tokens.iter().map(ToString::to_string).collect();
    for t in &tokens {
        if let Token::Word(w) = t
            && w.quote_style.is_none()
        {
            let lower = w.value.to_lowercase();
            if let Some(d) = classify::dangerous_function(&lower) {
                push(&mut out.dangerous, d);
            }
            if lower == "execute" {
                push(&mut out.dangerous, "dynamic_sql");
            }
        }
    }
    let mut tries = 0usize;
    let mut i = 0usize;
    while i < tokens.len() {
        let Some(first) = starter(tokens.get(i)) else {
            i += 1;
            continue;
        };
        let cuts = cuts(&tokens, i);
        let mut parsed = None;
        for &end in cuts.iter().rev() {
            tries += 1;
            if tries > MAX_TRIES {
                out.unresolved.get_or_insert_with(|| {
                    format!("the body of function `{function}` is too complex to classify")
                });
                return;
            }
            let mut sql = first.to_owned();
            for t in text.get(i + 1..end).unwrap_or_default() {
                sql.push_str(t);
            }
            if let Ok(all) = classify::classify(&sql, 1)
                && let [one] = all.as_slice()
                && one.stmt.kind != PgKind::Unparsed
            {
                parsed = Some((end, one.stmt.clone()));
                break;
            }
        }
        match parsed {
            Some((end, stmt)) => {
                merge(out, &stmt);
                i = end.max(i + 1);
            }
            None => {
                let snippet: String = text
                    .get(i..cuts.last().copied().unwrap_or(i))
                    .unwrap_or_default()
                    .concat();
                out.unresolved.get_or_insert_with(|| {
                    format!(
                        "a statement of function `{function}` was not understood: `{}`",
                        snippet.trim().chars().take(80).collect::<String>()
                    )
                });
                i += 1;
            }
        }
    }
}

fn push(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_owned());
    }
}

/// The SQL text that replaces the word at a statement start (`PERFORM` is `SELECT`).
fn starter(t: Option<&Token>) -> Option<&'static str> {
    let Some(Token::Word(w)) = t else { return None };
    if w.quote_style.is_some() {
        return None;
    }
    Some(match w.keyword {
        Keyword::SELECT => "SELECT",
        Keyword::INSERT => "INSERT",
        Keyword::UPDATE => "UPDATE",
        Keyword::DELETE => "DELETE",
        Keyword::MERGE => "MERGE",
        Keyword::WITH => "WITH",
        Keyword::TRUNCATE => "TRUNCATE",
        Keyword::COPY => "COPY",
        Keyword::CREATE => "CREATE",
        Keyword::DROP => "DROP",
        Keyword::ALTER => "ALTER",
        Keyword::GRANT => "GRANT",
        Keyword::REVOKE => "REVOKE",
        Keyword::CALL => "CALL",
        Keyword::TABLE => "TABLE",
        _ if w.value.eq_ignore_ascii_case("perform") => "SELECT",
        _ => return None,
    })
}

/// Token positions where a statement starting at `start` may end, nearest first: the
/// statement's `;` (or the body's end) is last.
fn cuts(tokens: &[Token], start: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    for (j, t) in tokens.iter().enumerate().skip(start + 1) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth < 0 {
                    out.push(j);
                    return out;
                }
            }
            Token::SemiColon => {
                out.push(j);
                return out;
            }
            Token::Word(w) if w.quote_style.is_none() && depth == 0 && ends_query(w) => {
                out.push(j);
            }
            _ => {}
        }
    }
    out.push(tokens.len());
    out
}

/// A PL/pgSQL word that ends an embedded query.
fn ends_query(w: &sqlparser::tokenizer::Word) -> bool {
    matches!(
        w.keyword,
        Keyword::THEN | Keyword::INTO | Keyword::ELSE | Keyword::ELSEIF | Keyword::END
    ) || ["loop", "elsif"]
        .iter()
        .any(|k| w.value.eq_ignore_ascii_case(k))
}
