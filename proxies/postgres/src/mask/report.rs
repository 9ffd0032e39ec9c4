//! Error and notice text under a mask: PostgreSQL quotes values in its messages (a
//! failed cast names the value it could not read), so a statement that runs under
//! a mask gets its `ErrorResponse` and `NoticeResponse` fields redacted — quoted
//! text in the message, hint, context and internal query replaced, the detail
//! withheld — while the SQLSTATE, severity and the rest are kept.

/// What replaces a quoted value.
const HIDDEN: &str = "***";

/// The message of a report raised by the statement's own code under a mask.
const MESSAGE: &str = "gatehouse: message withheld (raised by code that runs under a mask)";

/// The detail of a report under a mask.
const DETAIL: &str = "gatehouse: detail withheld (the statement runs under a mask)";

/// The body of an `ErrorResponse` or `NoticeResponse` with its value-bearing fields
/// redacted; `None` when it does not decode (the caller sends a report of its own).
pub fn redact(body: &[u8]) -> Option<Vec<u8>> {
    let user = raised(body);
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let (&field, after) = rest.split_first()?;
        if field == 0 {
            out.push(0);
            return Some(out);
        }
        let end = after.iter().position(|&b| b == 0)?;
        let value = after.get(..end)?;
        rest = after.get(end + 1..)?;
        out.push(field);
        match field {
            b'D' => out.extend_from_slice(DETAIL.as_bytes()),
            b'M' if user => out.extend_from_slice(MESSAGE.as_bytes()),
            b'M' | b'H' | b'W' | b'q' => {
                out.extend_from_slice(quoted(&String::from_utf8_lossy(value)).as_bytes());
            }
            _ => out.extend_from_slice(value),
        }
        out.push(0);
    }
}

/// Whether the report was written by the statement's own code (PL/pgSQL `RAISE`,
/// `ASSERT`; any notice or warning): its message may be any value, quoted or not.
fn raised(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some((&field, after)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Some(end) = after.iter().position(|&b| b == 0) else {
            return true;
        };
        let value = after.get(..end).unwrap_or_default();
        match field {
            b'R' if value.starts_with(b"exec_stmt_") => return true,
            b'V' if !matches!(value, b"ERROR" | b"FATAL" | b"PANIC") => return true,
            _ => {}
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    false
}

/// `text` with every quoted part (`"..."` or `'...'`) replaced; an unclosed quote
/// hides the rest.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' || c == '\'' {
            out.push_str(HIDDEN);
            if chars.by_ref().any(|x| x == c) {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn quoted_values_and_details_are_hidden() {
        let body = b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"hunter2\"\0Dthe value hunter2\0\0";
        let out = redact(body).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("C22P02"));
        assert!(text.contains("integer: \"***\""));
        assert_eq!(quoted("a 'b' c \"d"), "a '***' c \"***");
        let raised = b"SERROR\0VERROR\0CP0001\0Mhunter2\0Rexec_stmt_raise\0\0";
        let out = redact(raised).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("hunter2"));
    }
}
