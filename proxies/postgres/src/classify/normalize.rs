//! The cache key of a query string: its text with literal values replaced, so
//! `... WHERE aid = 1` and `... WHERE aid = 2` share one classification.
//!
//! Safety matters more than hit rate: two texts may share a key only when they differ
//! in literal values alone, so a reused classification is exactly right. The lexer
//! therefore gives up (returns `None`, and the text is parsed) on anything whose
//! lexing PostgreSQL might see differently: backslashes, dollar quotes, comments,
//! prefixed strings (`E''`, `U&''`, `B''`, `X''`), and non-ASCII text.

/// The normalised text, or `None` when the text must be parsed in full.
pub fn normalize(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0usize;
    let mut last_start = 0usize;
    let mut prev: u8 = b' ';
    while let Some(&c) = b.get(i) {
        if !c.is_ascii() || c == b'\\' {
            return None;
        }
        match c {
            b'\'' => {
                if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'&' {
                    return None; // E'', B'', X'', U&'' and friends.
                }
                out.push_str(sql.get(last_start..i)?);
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                out.push_str("'?'");
                last_start = i;
                prev = b'\'';
                continue;
            }
            b'"' => {
                // Quoted identifiers are kept verbatim.
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                prev = b'"';
                continue;
            }
            b'$' => {
                // Only parameters (`$1`) are accepted; `$tag$` quoting is not.
                let digits = b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if !digits || prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'$' {
                    return None;
                }
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                prev = b'0';
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'0'..=b'9' | b'.'
                if !(prev.is_ascii_alphanumeric()
                    || prev == b'_'
                    || prev == b'$'
                    || prev == b'"')
                    && (c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                out.push_str(sql.get(last_start..i)?);
                i = number_end(b, i)?;
                if b.get(i).is_some_and(|d| d.is_ascii_alphabetic()) {
                    return None; // `1x`, hex `0x1F`: let the parser decide.
                }
                out.push('?');
                last_start = i;
                prev = b'0';
                continue;
            }
            _ => {}
        }
        prev = c;
        i += 1;
    }
    out.push_str(sql.get(last_start..)?);
    Some(out)
}

/// The end of a numeric literal starting at `i`: `digits [. digits] [e [+-] digits]`
/// or `. digits [...]`; `None` for anything else (let the parser decide).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(|d| d.is_ascii_digit() || *d == b'_') {
            *i += 1;
        }
        *i > start
    };
    let int = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac = digits(&mut i);
        if !int && !frac {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_replaced_and_the_rest_kept() {
        assert_eq!(
            normalize("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;").as_deref(),
            Some("SELECT abalance FROM pgbench_accounts WHERE aid = ?;")
        );
        assert_eq!(
            normalize("select 'it''s', 1.5e-3, t1.c2 from t1").as_deref(),
            Some("select '?', ?, t1.c2 from t1")
        );
        assert_eq!(
            normalize("select \"a'b\" from x where y = $1").as_deref(),
            Some("select \"a'b\" from x where y = $1")
        );
        assert_eq!(normalize("select 1"), normalize("select 2"));
        assert_ne!(normalize("select 1 from a"), normalize("select 1 from b"));
    }

    #[test]
    fn gives_up_on_anything_ambiguous() {
        for sql in [
            "select E'\\''",
            "select 'a\\'; drop table t; --'",
            "select $$x$$",
            "select $a$x$a$",
            "select 1 -- c",
            "select /* c */ 1",
            "select U&'d\\0061t'",
            "select x'1f'",
            "select é1",
            "select 'unterminated",
            "select 0x1F",
            "select 1..2",
            "select 1e",
        ] {
            assert_eq!(normalize(sql), None, "{sql}");
        }
    }
}
